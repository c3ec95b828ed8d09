"""Log compaction (cleanup.policy=compact): librdkafka produces keyed records and
tombstones to a compacted topic with small segments; the broker cleans closed segments;
librdkafka and kafka-python consumers (and kafkajs and sarama group members) reading from
the beginning see at least the newest value of every key, in offset order, and fewer
records than were written; the result
survives a restart; a compacted topic is never trimmed by time retention."""
import os
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from conftest import member_command, wait_until

FAST = {"log.cleaner.backoff.ms": "200", "log.retention.check.interval.ms": "200"}


def create(broker, name, config):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(20)
    return admin


def produce(broker, topic, items, **extra):
    p = Producer(dict({"bootstrap.servers": broker.bootstrap, "linger.ms": 0}, **extra))
    for key, value in items:
        p.produce(topic, key=key, value=value)
        p.poll(0)
    assert p.flush(30) == 0


def read_rdkafka(broker, topic, timeout=20):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                break
            continue
        got.append((m.offset(), m.key(), m.value()))
    c.close()
    return got


def read_kafka_python(broker, topic):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=4000)
    tp = KpTopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = [(m.offset, m.key, m.value) for m in c]
    c.close()
    return got


def newest_by_key(items):
    newest = {}
    for offset, key, value in items:
        newest[key] = (offset, value)
    return newest


def test_compacted_topic_keeps_the_newest_value_of_every_key(broker_factory, member_factory):
    b = broker_factory(overrides=FAST)
    admin = create(b, "state", {"cleanup.policy": "compact", "segment.bytes": "2048", "delete.retention.ms": "100",
                                "retention.ms": "1"})
    res = ConfigResource("topic", "state")
    assert admin.describe_configs([res])[res].result(20)["cleanup.policy"].value == "compact"
    # One flush with a long linger: librdkafka sends the 600 records in one batch, which
    # the cleaner must open (the newest value of every key sits beside superseded ones).
    produce(b, "state", [(b"key-%d" % (i % 10), b"value-%d" % i) for i in range(600)], **{"linger.ms": 200})
    produce(b, "state", [(b"key-3", None)])  # a tombstone, in a batch of its own
    written = read_rdkafka(b, "state")
    assert len(written) == 601
    expected = newest_by_key(written)
    # More writes roll the tombstone into a closed segment; then wait for the cleaner.
    produce(b, "state", [(b"filler", b"x" * 100) for _ in range(60)])
    wait_until(lambda: "compacted dir=" in b.log(), timeout=30, what="a compaction pass")
    # A pass cleans the segments closed by then; the batches may have landed in several
    # segments, the last closed only by the fillers: wait for the pass that follows.
    wait_until(lambda: len(read_rdkafka(b, "state")) <= 10 + 60, timeout=30, what="every closed segment cleaned")

    for got in (read_rdkafka(b, "state"), read_kafka_python(b, "state")):
        offsets = [o for o, _k, _v in got]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        # Left: the newest value of each key (key-3's tombstone, or nothing once it is
        # past delete.retention.ms: key-3's older values must not come back) and the
        # fillers, some of them still in the active segment.
        assert len(got) <= 10 + 60, "compaction removed the superseded records inside the batch"
        newest = newest_by_key(got)
        for key, (offset, value) in expected.items():
            if key != b"key-3":
                assert newest[key] == (offset, value), key
        # key-3 ends in a tombstone: kept, or gone with every older value of key-3 once
        # it is older than delete.retention.ms.
        if b"key-3" in newest:
            assert newest[b"key-3"][1] is None
    # kafkajs and sarama, as group members, read the compacted batches (gaps inside them) too.
    got = read_rdkafka(b, "state")
    for lib in ("kafkajs", "sarama"):
        _, why = member_command(lib)
        if why:
            continue  # not on this machine: the other readers above still ran
        m = member_factory(lib, b.bootstrap, f"g-{lib}", "state", f"reader-{lib}", commit="none",
                           assignor="roundrobin")
        m.wait_for(lambda mm: len(mm.records()) >= len(got), 60, f"{lib} reading {len(got)} records")
        seen = [(e["offset"], e["key"], e["value"]) for e in m.records()]
        assert seen == [(o, k.decode(), v.decode() if v is not None else None) for o, k, v in got], lib
        m.terminate()
    # Time retention (retention.ms=1) did not trim the compacted topic.
    low, _high = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "w"}).get_watermark_offsets(
        TopicPartition("state", 0), timeout=10)
    assert low == 0
    before = read_rdkafka(b, "state")
    b.restart()
    assert read_rdkafka(b, "state") == before


def test_compressed_batches_are_kept_whole_and_readable(broker_factory):
    b = broker_factory(overrides=FAST)
    create(b, "zipped", {"cleanup.policy": "compact,delete", "segment.bytes": "4096"})
    # Values that compress well: librdkafka sends a batch uncompressed when lz4 would not
    # make it smaller, as it did in CI for a one-record batch of b"v%d" (then cleaned).
    produce(b, "zipped", [(b"k%d" % (i % 3), b"v%d-" % i + b"z" * 200) for i in range(300)],
            **{"compression.type": "lz4", "linger.ms": 5})
    for start in range(0, 1500, 50):  # separate flushes: many small uncompressed batches
        produce(b, "zipped", [(b"k%d" % (i % 3), b"plain-%d" % i) for i in range(start, start + 50)])
    wait_until(lambda: "compacted dir=" in b.log(), timeout=30, what="a compaction pass")
    got = read_rdkafka(b, "zipped")
    newest = newest_by_key(got)
    assert {k: v for k, (_o, v) in newest.items()} == {b"k0": b"plain-1497", b"k1": b"plain-1498", b"k2": b"plain-1499"}
    # The lz4 batches are not opened: all 300 of their records are still there.
    assert sum(1 for _o, _k, v in got if v.startswith(b"v")) == 300
    assert len(got) < 1800


def test_cleanup_policy_values_are_checked(broker_factory):
    b = broker_factory()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = admin.create_topics([NewTopic("bad-policy", 1, 1, config={"cleanup.policy": "forever"})])
    try:
        fs["bad-policy"].result(20)
        raise AssertionError("an unknown cleanup.policy must be refused")
    except Exception as e:  # KafkaException with INVALID_CONFIG
        assert "cleanup.policy" in str(e) and "compact" in str(e)
