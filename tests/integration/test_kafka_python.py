"""Round trips and admin calls with kafka-python 2.0.2 (python3-kafka), a client
independent of librdkafka.

kafka-python probes ApiVersions v0, then Metadata v0, and guesses the broker release from
the advertised ranges; it then uses hard-wired request versions (Produce 7, Fetch 4,
ListOffsets 1, Metadata 1/5, CreateTopics 3 ...). These tests show that guess lands on a
release with record batches (magic 2, headers) and that its requests work.
"""
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import (InvalidPartitionsError, InvalidReplicationFactorError, TopicAlreadyExistsError,
                          UnknownTopicOrPartitionError)

N_RECORDS = 20_000
PARTITIONS = 6
CLIENT_TIMEOUTS = dict(request_timeout_ms=15000, api_version_auto_timeout_ms=10000)


def admin_client(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="it-admin", **CLIENT_TIMEOUTS)


def consumer(bootstrap, **extra):
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         client_id="it-consumer", fetch_max_wait_ms=200, **CLIENT_TIMEOUTS, **extra)


def produce_keyed(bootstrap, topic, n, compression):
    codec = compression or "none"
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=compression, linger_ms=5,
                      batch_size=64 * 1024, max_block_ms=30000, retries=0, **CLIENT_TIMEOUTS)
    try:
        assert p.config["api_version"] >= (2, 4, 0), \
            f"kafka-python guessed broker {p.config['api_version']}: too old for Produce v7 / headers"
        futures = []
        for i in range(n):
            futures.append(p.send(topic, key=f"key-{i % 1000}".encode(), value=f"value-{i}".encode(),
                                  headers=[("seq", str(i).encode()), ("codec", codec.encode())]))
        p.flush(timeout=60)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        p.close(timeout=10)
    # Delivery reports carry the assigned offsets: dense per partition.
    per_part = {}
    for m in metas:
        per_part.setdefault(m.partition, []).append(m.offset)
    for part, offs in per_part.items():
        assert sorted(offs) == list(range(len(offs))), f"partition {part}: offsets dense from 0"
    return per_part


def consume_all(bootstrap, topic, expected, timeout=60):
    c = consumer(bootstrap, max_poll_records=5000)
    try:
        parts = c.partitions_for_topic(topic)
        assert parts == set(range(PARTITIONS))
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning()
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                got.extend(recs)
        # Nothing more arrives after the expected count.
        extra = c.poll(timeout_ms=300)
        assert not any(extra.values()), "no records beyond those produced"
        end = c.end_offsets(tps)
        begin = c.beginning_offsets(tps)
    finally:
        c.close()
    return got, begin, end


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_produce_consume_20k_keyed_with_headers(broker, compression):
    codec = compression or "none"
    topic = f"kp-rt-{codec}"
    admin = admin_client(broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    t_start = int(time.time() * 1000)
    produced = produce_keyed(broker.bootstrap, topic, N_RECORDS, compression)
    got, begin, end = consume_all(broker.bootstrap, topic, N_RECORDS)

    assert len(got) == N_RECORDS
    assert set(produced) == set(range(PARTITIONS)), "keys spread over every partition"
    assert sum(end.values()) == N_RECORDS and set(begin.values()) == {0}
    per_partition = {}
    for r in got:
        per_partition.setdefault(r.partition, []).append(r)
    seen = set()
    for part, recs in per_partition.items():
        assert [r.offset for r in recs] == list(range(len(recs))), f"partition {part}: dense, ordered offsets"
        assert end[TopicPartition(topic, part)] == len(recs)
        seqs = [int(dict(r.headers)["seq"]) for r in recs]
        assert seqs == sorted(seqs), f"partition {part}: records in produce order"
        for r in recs:
            h = dict(r.headers)
            i = int(h["seq"])
            assert r.key == f"key-{i % 1000}".encode()
            assert r.value == f"value-{i}".encode()
            assert h["codec"] == codec.encode()
            assert r.timestamp_type == 0 and t_start - 1000 <= r.timestamp <= int(time.time() * 1000) + 1000
            assert i not in seen, f"record {i} delivered twice"
            seen.add(i)
    assert seen == set(range(N_RECORDS))


def config_entries(describe_response):
    (resp,) = describe_response
    (res,) = resp.resources
    error_code, _, _, _, entries = res[:5]
    assert error_code == 0, res
    # (name, value, read_only, config_source, is_sensitive, synonyms)
    return {e[0]: e for e in entries}


def test_admin_create_list_describe_delete_topics(broker):
    admin = admin_client(broker.bootstrap)
    c = consumer(broker.bootstrap)
    try:
        resp = admin.create_topics([
            NewTopic("kp-plain", 4, 1),
            NewTopic("kp-configured", 2, 1, topic_configs={"retention.ms": "3600000", "cleanup.policy": "delete"}),
        ])
        assert [(t[0], t[1]) for t in resp.topic_errors] == [("kp-plain", 0), ("kp-configured", 0)]
        assert {"kp-plain", "kp-configured"} <= c.topics()
        assert c.partitions_for_topic("kp-plain") == {0, 1, 2, 3}
        assert c.partitions_for_topic("kp-configured") == {0, 1}

        entries = config_entries(admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "kp-configured")]))
        assert entries["retention.ms"][1] == "3600000"
        assert entries["retention.ms"][3] == 1, "DYNAMIC_TOPIC_CONFIG"
        assert entries["segment.bytes"][1] == "1073741824"
        assert entries["segment.bytes"][3] == 5, "DEFAULT_CONFIG"
        plain = config_entries(admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "kp-plain", {"retention.ms": None})]))
        assert set(plain) == {"retention.ms"}, "asking for one key returns just it"
        assert plain["retention.ms"][1] == "604800000" and plain["retention.ms"][3] == 5

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic("kp-plain", 4, 1)])
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topics([NewTopic("kp-rf3", 1, 3)])
        with pytest.raises(InvalidPartitionsError):
            admin.create_topics([NewTopic("kp-zero", 0, 1)])
        assert not {"kp-rf3", "kp-zero"} & c.topics(), "failed creations create nothing"

        resp = admin.delete_topics(["kp-plain"])
        assert [(t[0], t[1]) for t in resp.topic_error_codes] == [("kp-plain", 0)]
        topics = c.topics()
        assert "kp-plain" not in topics and "kp-configured" in topics
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics(["kp-plain"])
    finally:
        c.close()
        admin.close()


def test_admin_describe_broker_configs(broker_factory):
    b = broker_factory({"num.partitions": "3"})
    admin = admin_client(b.bootstrap)
    try:
        entries = config_entries(admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")]))
    finally:
        admin.close()
    assert entries["num.partitions"][1] == "3"
    assert entries["num.partitions"][3] == 4, "STATIC_BROKER_CONFIG"
    assert entries["log.retention.ms"][1] == "604800000"


def test_auto_created_topic_and_offsets_for_times(broker_factory):
    """A produce to an unknown topic auto-creates it (Metadata v1 from kafka-python) with
    num.partitions; ListOffsets v1 by timestamp finds the first record at/after it."""
    b = broker_factory({"num.partitions": "2"})
    base = int(time.time() * 1000) - 60_000
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks=1, max_block_ms=20000, **CLIENT_TIMEOUTS)
    try:
        for i in range(5):
            p.send("kp-auto", value=f"t{i}".encode(), partition=1, timestamp_ms=base + 1000 * i).get(timeout=20)
    finally:
        p.close(timeout=10)
    c = consumer(b.bootstrap)
    try:
        assert c.partitions_for_topic("kp-auto") == {0, 1}
        tp = TopicPartition("kp-auto", 1)
        found = c.offsets_for_times({tp: base + 2500})
        assert found[tp].offset == 3 and found[tp].timestamp == base + 3000
        assert c.offsets_for_times({tp: base + 10_000})[tp] is None, "after the last record: none"
        assert c.end_offsets([tp])[tp] == 5
    finally:
        c.close()
