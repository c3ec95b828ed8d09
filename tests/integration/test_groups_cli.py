"""`stratus groups`: the command-line view of consumer groups and lag, against a broker
with a real librdkafka group member."""
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import STRATUS_BIN, create_topic, free_port, wait_until


def stratus(*args):
    return subprocess.run([STRATUS_BIN, *args], capture_output=True, text=True, timeout=30)


def test_groups_list_describe_lag_and_delete(broker_factory):
    broker = broker_factory(overrides={"group.initial.rebalance.delay.ms": "0"})
    bs = broker.bootstrap
    create_topic(bs, "lagged", 3)
    p = Producer({"bootstrap.servers": bs})
    for i in range(30):
        p.produce("lagged", key=b"k%d" % i, value=b"v", partition=i % 3)
    p.flush(10)
    c = Consumer({"bootstrap.servers": bs, "group.id": "cli-group", "client.id": "cli-test-member",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["lagged"])
    got = []
    deadline = time.time() + 30
    while len(got) < 30 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m)
    assert len(got) == 30
    # Commit 4 of each partition's 10 records: lag 6 per partition.
    c.commit(offsets=[TopicPartition("lagged", part, 4) for part in range(3)], asynchronous=False)

    out = stratus("groups", "--bootstrap", bs)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("cli-group"))
    assert "Stable" in line and "consumer" in line and line.split()[-1] == "1"

    out = stratus("groups", "--bootstrap", bs, "describe", "cli-group")
    assert out.returncode == 0, out.stderr
    assert "cli-test-member" in out.stdout
    rows = [ln.split() for ln in out.stdout.splitlines() if ln.startswith("lagged ")]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [(str(part), "4", "10", "6") for part in range(3)]
    assert all(r[5].startswith("cli-test-member") for r in rows)  # the owner, from the assignment
    assert "total lag: 18" in out.stdout

    # A group with members cannot be deleted; once empty it can, and is gone.
    out = stratus("groups", "--bootstrap", bs, "delete", "cli-group")
    assert out.returncode == 1 and "NON_EMPTY_GROUP" in out.stderr
    c.close()
    wait_until(lambda: "Empty" in stratus("groups", "--bootstrap", bs).stdout, what="group empty")
    out = stratus("groups", "--bootstrap", bs, "delete", "cli-group")
    assert out.returncode == 0, out.stderr
    out = stratus("groups", "--bootstrap", bs, "describe", "cli-group")
    assert out.returncode == 1 and "does not exist" in out.stderr


def test_groups_unreachable_broker_and_bad_usage():
    out = stratus("groups", "--bootstrap", "127.0.0.1:%d" % free_port())
    assert out.returncode == 1 and "cannot connect" in out.stderr
    out = stratus("groups", "frobnicate")
    assert out.returncode == 2 and "usage" in out.stderr
    out = stratus("groups", "--help")
    assert out.returncode == 0 and "describe" in out.stdout
