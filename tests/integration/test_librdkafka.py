"""Round trips with librdkafka clients: python3-confluent-kafka and kcat."""
import subprocess

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from conftest import check_keyed_records, consume_all, create_topic

N_RECORDS = 100_000
PARTITIONS = 6


def produce_keyed(bootstrap, topic, n, codec, extra=None):
    conf = {"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5,
            "acks": "all", "batch.num.messages": 10000, "queue.buffering.max.messages": 200000}
    conf.update(extra or {})
    p = Producer(conf)
    errors = []

    def on_delivery(err, msg):
        if err:
            errors.append(err)

    for i in range(n):
        key = f"key-{i % 1000}".encode()
        while True:
            try:
                p.produce(topic, key=key, value=f"value-{i}".encode(),
                          headers=[("seq", str(i).encode()), ("codec", codec.encode())],
                          on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} records not delivered"
    assert not errors, errors[:5]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_100k_keyed_with_headers(broker, codec):
    topic = f"rt-{codec}"
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce_keyed(broker.bootstrap, topic, N_RECORDS, codec)
    got = consume_all(broker.bootstrap, topic, N_RECORDS)
    check_keyed_records(got, N_RECORDS, PARTITIONS, codec)


def test_kcat_produce_consume_and_metadata(broker):
    lines = "".join(f"k{i}:hello {i}\n" for i in range(200))
    r = subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", "kcat-topic", "-K:", "-z", "snappy"],
                       input=lines.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    r = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "kcat-topic", "-e", "-o", "beginning",
                        "-f", "%k:%s\\n"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == lines
    r = subprocess.run(["kcat", "-L", "-b", broker.bootstrap, "-t", "kcat-topic"], capture_output=True,
                       timeout=30)
    out = r.stdout.decode()
    assert "1 brokers:" in out and f"127.0.0.1:{broker.port}" in out
    assert 'topic "kcat-topic" with 1 partitions' in out


def test_auto_create_disabled_gives_unknown_topic(broker_factory):
    b = broker_factory({"auto.create.topics.enable": "false"})
    p = Producer({"bootstrap.servers": b.bootstrap, "message.timeout.ms": 3000})
    errors = []
    p.produce("nope", b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert "nope" not in md.topics
