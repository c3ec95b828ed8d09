"""Admin API through librdkafka (python3-confluent-kafka 1.7.0): CreatePartitions,
DescribeConfigs on topics, CreateTopics validate_only."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewPartitions, NewTopic

TIMEOUT = 30


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create(a, *topics, **kwargs):
    futures = a.create_topics(list(topics), **kwargs)
    return {name: f.result(TIMEOUT) for name, f in futures.items()}


def error_of(future):
    with pytest.raises(KafkaException) as ei:
        future.result(TIMEOUT)
    return ei.value.args[0]


def partition_counts(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        assert md.error is None, md.error
        return len(md.partitions)
    finally:
        c.close()


def watermarks(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
    finally:
        c.close()


def test_create_partitions_grows_topic_and_new_partitions_take_records(broker):
    a = admin(broker.bootstrap)
    create(a, NewTopic("grow", 2, 1))
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
    for i in range(100):
        p.produce("grow", key=f"k{i}".encode(), value=b"before")
    assert p.flush(TIMEOUT) == 0

    a.create_partitions([NewPartitions("grow", 5)])["grow"].result(TIMEOUT)
    assert partition_counts(broker.bootstrap, "grow") == 5

    # A producer started now sees five partitions: keyed records spread over all of them,
    # and explicitly addressed records land in the new ones.
    p2 = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
    delivered = []
    for i in range(500):
        p2.produce("grow", key=f"key-{i}".encode(), value=b"after",
                   on_delivery=lambda err, msg: delivered.append((err, msg.partition())))
    for part in (2, 3, 4):
        p2.produce("grow", value=f"direct-{part}".encode(), partition=part,
                   on_delivery=lambda err, msg: delivered.append((err, msg.partition())))
    assert p2.flush(TIMEOUT) == 0
    assert all(err is None for err, _ in delivered), delivered[:5]
    assert {part for _, part in delivered} == {0, 1, 2, 3, 4}
    marks = watermarks(broker.bootstrap, "grow", 5)
    assert sum(hi for _, hi in marks.values()) == 603
    assert all(lo == 0 for lo, _ in marks.values())

    # Existing partitions kept their records: the first records of partition 0 are "before".
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("grow", 4, 0)])
        vals = []
        deadline = time.monotonic() + 20
        while len(vals) < marks[4][1] and time.monotonic() < deadline:
            vals += [m.value() for m in c.consume(1000, 0.5) if m.error() is None]
        assert b"direct-4" in vals and set(vals) <= {b"after", b"direct-4"}
    finally:
        c.close()

    # Shrinking, or asking for the current count, is refused and changes nothing.
    err = error_of(a.create_partitions([NewPartitions("grow", 3)])["grow"])
    assert err.code() == KafkaError.INVALID_PARTITIONS
    err = error_of(a.create_partitions([NewPartitions("nope", 3)])["nope"])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    # validate_only checks without creating.
    a.create_partitions([NewPartitions("grow", 8)], validate_only=True)["grow"].result(TIMEOUT)
    assert partition_counts(broker.bootstrap, "grow") == 5


def test_describe_configs_topic_shows_override_and_default(broker):
    a = admin(broker.bootstrap)
    create(a, NewTopic("described", 1, 1, config={"retention.ms": "3600000", "segment.bytes": "1048576"}))
    res = ConfigResource("TOPIC", "described")
    entries = a.describe_configs([res])[res].result(TIMEOUT)

    ret = entries["retention.ms"]
    assert ret.value == "3600000"
    assert ret.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and not ret.is_default
    # Synonyms: the override, then the broker setting it overrides with its value.
    assert ret.synonyms["log.retention.ms"].value == "604800000"
    assert entries["segment.bytes"].value == "1048576" and not entries["segment.bytes"].is_default

    # Not overridden: the default, sourced from the broker setting.
    rb = entries["retention.bytes"]
    assert rb.value == "-1" and rb.is_default and rb.source == ConfigSource.DEFAULT_CONFIG.value
    assert entries["cleanup.policy"].value == "delete" and entries["cleanup.policy"].is_default
    assert entries["max.message.bytes"].value == "1048588"

    missing = ConfigResource("TOPIC", "no-such-topic")
    err = error_of(a.describe_configs([missing])[missing])
    assert err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_configs_topic_default_from_static_broker_setting(broker_factory):
    """A topic without an override inherits log.retention.ms set on the broker; the
    entry says so (STATIC_BROKER_CONFIG, not default), as Kafka reports it."""
    b = broker_factory({"log.retention.ms": "7200000"})
    a = admin(b.bootstrap)
    create(a, NewTopic("inherits", 1, 1))
    res = ConfigResource("TOPIC", "inherits")
    ret = a.describe_configs([res])[res].result(TIMEOUT)["retention.ms"]
    assert ret.value == "7200000"
    assert ret.source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert not ret.is_default
    assert ret.synonyms["log.retention.ms"].value == "7200000"


def test_create_topics_validate_only_creates_nothing(broker):
    a = admin(broker.bootstrap)
    assert create(a, NewTopic("dry-run", 3, 1, config={"retention.ms": "1000"}), validate_only=True) == {
        "dry-run": None}
    md = a.list_topics(timeout=10)
    assert "dry-run" not in md.topics

    # Errors are still reported in validate_only mode.
    fs = a.create_topics([NewTopic("dry-rf3", 1, 3), NewTopic("dry-badcfg", 1, 1, config={"retention.ms": "soon"})],
                         validate_only=True)
    assert error_of(fs["dry-rf3"]).code() == KafkaError.INVALID_REPLICATION_FACTOR
    assert error_of(fs["dry-badcfg"]).code() == KafkaError.INVALID_CONFIG

    create(a, NewTopic("real", 1, 1))
    assert error_of(a.create_topics([NewTopic("real", 1, 1)], validate_only=True)["real"]).code() == \
        KafkaError.TOPIC_ALREADY_EXISTS

    # And the same request without validate_only does create it.
    create(a, NewTopic("dry-run", 3, 1))
    assert partition_counts(broker.bootstrap, "dry-run") == 3
    assert set(a.list_topics(timeout=10).topics) == {"real", "dry-run"}
