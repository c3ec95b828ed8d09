"""kafkajs 2.2.4 (Node) against stratus: produce round trips and the admin API.

Records produced by kafkajs are read back with a librdkafka assign()-consumer (kafkajs
only consumes through a group; its group members are tested in test_groups.py and
test_compaction.py). The node script (js/kafkajs_client.js) prints one JSON object; these
tests assert on it.
"""
import json
import os
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import check_keyed_records, consume_all

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "js", "kafkajs_client.js")
N_RECORDS = 20_000
PARTITIONS = 6

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.isdir(os.path.join(HERE, "node_modules", "kafkajs")),
    reason="node or kafkajs missing: run scripts/install-deps.sh")


def run_js(*args, timeout=60):
    r = subprocess.run(["node", SCRIPT, *map(str, args)], capture_output=True, timeout=timeout, cwd=HERE)
    assert r.returncode == 0, f"kafkajs script failed ({r.returncode}):\n{r.stderr.decode()}\n{r.stdout.decode()}"
    return json.loads(r.stdout)


@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_kafkajs_produce_20k_keyed_with_headers(broker, codec):
    topic = f"js-rt-{codec}"
    t_start = int(time.time() * 1000)
    out = run_js("produce", broker.bootstrap, topic, N_RECORDS, PARTITIONS, codec)
    assert out["created"] is True
    got = consume_all(broker.bootstrap, topic, N_RECORDS)
    per_partition = check_keyed_records(got, N_RECORDS, PARTITIONS, codec)
    now = int(time.time() * 1000)
    for p, msgs in per_partition.items():
        # The last acknowledged base offset kafkajs saw lies inside the partition.
        assert 0 <= int(out["baseOffsets"][str(p)]) < len(msgs)
        for m in msgs:
            assert t_start - 1000 <= m.timestamp()[1] <= now + 1000


def by_partition(offsets):
    return {o["partition"]: o for o in offsets}


def test_kafkajs_admin(broker):
    out = run_js("admin", broker.bootstrap, "jsa")
    assert out["created"] is True
    assert out["createdAgain"] is False, "kafkajs reports an existing topic as not created"
    assert out["rf3"]["name"] == "KafkaJSAggregateError"
    assert [e["type"] for e in out["rf3"]["errors"]] == ["INVALID_REPLICATION_FACTOR"]
    assert out["topics"] == ["jsa-admin", "jsa-cfg"], "the failed creation made no topic"

    # 10 records per partition, timestamps base + 0..9 s.
    offs = by_partition(out["offsets"])
    assert set(offs) == {0, 1, 2}
    assert all((o["low"], o["high"], o["offset"]) == ("0", "10", "10") for o in offs.values())
    # First record at/after base+4.5s is the sixth (offset 5); past the end kafkajs gives the high mark.
    assert {p: o["offset"] for p, o in by_partition(out["byTimestamp"]).items()} == {0: "5", 1: "5", 2: "5"}
    assert {p: o["offset"] for p, o in by_partition(out["byTimestampFuture"]).items()} == {0: "10", 1: "10", 2: "10"}

    # deleteTopicRecords: partition 0 up to offset 4, partition 1 everything (-1 = high watermark).
    after = by_partition(out["offsetsAfterDelete"])
    assert (after[0]["low"], after[0]["high"]) == ("4", "10")
    assert (after[1]["low"], after[1]["high"]) == ("10", "10")
    assert (after[2]["low"], after[2]["high"]) == ("0", "10")

    grown = by_partition(out["offsetsAfterCreatePartitions"])
    assert set(grown) == {0, 1, 2, 3, 4}
    assert (grown[3]["low"], grown[3]["high"]) == ("0", "0")
    assert grown[0]["low"] == "4", "existing partitions keep their data"
    assert out["shrink"]["type"] == "INVALID_PARTITIONS"

    cluster = out["cluster"]
    assert cluster["brokers"] == [{"nodeId": 0, "host": "127.0.0.1", "port": broker.port}]
    assert cluster["controller"] == 0
    assert cluster["clusterId"]

    topic_cfg, broker_cfg = out["configs"]
    assert (topic_cfg["type"], topic_cfg["name"], topic_cfg["errorCode"]) == (2, "jsa-cfg", 0)
    assert topic_cfg["entries"]["retention.ms"] == {"value": "3600000", "isDefault": False, "source": 1}
    assert topic_cfg["entries"]["cleanup.policy"]["value"] == "delete"
    assert topic_cfg["entries"]["cleanup.policy"]["isDefault"] is True
    assert (broker_cfg["type"], broker_cfg["name"], broker_cfg["errorCode"]) == (4, "0", 0)
    assert set(broker_cfg["entries"]) == {"log.retention.ms", "num.partitions"}
    assert broker_cfg["entries"]["log.retention.ms"]["value"] == "604800000"

    assert out["topicsAfterDelete"] == ["jsa-admin"]


def test_kafkajs_admin_records_visible_to_librdkafka(broker):
    """What kafkajs' deleteTopicRecords removed is gone for another client too."""
    run_js("admin", broker.bootstrap, "jsb")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        lo_hi = {p: c.get_watermark_offsets(TopicPartition("jsb-admin", p), timeout=10) for p in range(5)}
        assert lo_hi == {0: (4, 10), 1: (10, 10), 2: (0, 10), 3: (0, 0), 4: (0, 0)}
        # Offset 0 is below the log start now: OFFSET_OUT_OF_RANGE, reset to earliest = 4.
        c.assign([TopicPartition("jsb-admin", 0, 0)])
        vals = []
        deadline = time.monotonic() + 20
        while len(vals) < 6 and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                assert m.error() is None, m.error()
                vals.append((m.offset(), m.value()))
        assert vals == [(i, f"p0-{i}".encode()) for i in range(4, 10)]
    finally:
        c.close()
