"""Durability and operations: restarts and kill -9 under an idempotent acks=all load, torn
segment tails, segment roll and retention on disk, clean shutdown, fsync mode,
configuration handling and idle connections. Clients: librdkafka (confluent_kafka, in
this process and as a subprocess in clients/seq_producer.py) and raw wire requests."""
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import create_topic, STRATUS_BIN, frame, free_port, recv_frame, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "clients"))
import wire  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEQ_PRODUCER = os.path.join(HERE, "clients", "seq_producer.py")

EXPECTED_WHILE_DOWN = (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
OUT_OF_ORDER_SEQUENCE_NUMBER = 45


# ---- helpers -------------------------------------------------------------------------

def produce(bootstrap, topic, values, partition=0, timestamps=None, extra=None):
    """Produces <values> in order to one partition, acks=all; returns [(offset, value)]."""
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}
    conf.update(extra or {})
    p = Producer(conf)
    acked, errors = [], []

    def on_delivery(err, msg):
        if err:
            errors.append(err)
        else:
            acked.append((msg.offset(), msg.value()))

    for i, v in enumerate(values):
        kw = {"timestamp": timestamps[i]} if timestamps else {}
        while True:
            try:
                p.produce(topic, value=v, partition=partition, on_delivery=on_delivery, **kw)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0, "records left undelivered"
    assert not errors, errors[:5]
    return sorted(acked)


def watermarks(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-unused"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def consume(bootstrap, topic, partitions, start=None, timeout=60):
    """Reads every partition from <start> (default: its low watermark) up to the high
    watermark seen at the beginning. Returns {partition: [(offset, value, timestamp)]}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-unused", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    try:
        ends, assign = {}, []
        for p in range(partitions):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            first = low if start is None else start
            ends[p] = high
            if high > first:
                assign.append(TopicPartition(topic, p, first))
        got = {p: [] for p in range(partitions)}
        c.assign(assign)

        def behind():
            return [tp.partition for tp in assign
                    if (got[tp.partition][-1][0] + 1 if got[tp.partition] else tp.offset) < ends[tp.partition]]

        deadline = time.monotonic() + timeout
        while behind():
            assert time.monotonic() < deadline, "consume timed out: %s of %s" % (
                {p: len(v) for p, v in got.items()}, ends)
            for m in c.consume(1000, 0.5):
                assert m.error() is None, m.error()
                if m.offset() < ends[m.partition()]:
                    got[m.partition()].append((m.offset(), m.value(), m.timestamp()[1]))
        return got
    finally:
        c.close()


def segment_files(data_dir, topic, partition, suffix=".log"):
    d = os.path.join(data_dir, f"{topic}-{partition}")
    return sorted(f for f in os.listdir(d) if f.endswith(suffix))


def start_seq_producer(broker, workdir, topic, count, rate, name="acks.txt"):
    out = os.path.join(workdir, name)
    proc = subprocess.Popen([sys.executable, SEQ_PRODUCER, "--bootstrap", broker.bootstrap, "--topic", topic,
                             "--partitions", "3", "--count", str(count), "--rate", str(rate), "--out", out],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, out


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def acked_count(path):
    return sum(1 for line in read_lines(path) if line.startswith("ok "))


def finish_seq_producer(proc, out, timeout=120):
    try:
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode(errors="replace")
    lines = read_lines(out)
    assert lines and lines[-1].startswith("done "), f"producer did not finish: {lines[-3:]} {output}"
    problems = [line for line in lines if line.startswith(("fail ", "error "))]
    assert not problems, problems[:10]
    assert proc.returncode == 0, f"{lines[-1]}\n{output}"
    acked = {}
    for line in lines:
        if line.startswith("ok "):
            _, p, off, seq = line.split()
            key = (int(p), int(off))
            assert key not in acked, f"offset {key} acknowledged twice"
            acked[key] = int(seq)
    return acked


def check_sequences(bootstrap, topic, acked, count):
    """Every acknowledged record is at its acknowledged offset, and each partition holds
    its sequence numbers 0..n-1 exactly once, in order."""
    got = consume(bootstrap, topic, 3)
    for p in range(3):
        seqs = [int(v.split(b":", 2)[1]) for _, v, _ in got[p]]
        offsets = [off for off, _, _ in got[p]]
        assert offsets == list(range(len(offsets))), f"partition {p}: offsets dense from 0"
        expected = len(range(p, count, 3))
        dups = len(seqs) - len(set(seqs))
        assert dups == 0, f"partition {p}: {dups} duplicated records"
        missing = sorted(set(range(expected)) - set(seqs))
        assert not missing, f"partition {p}: {len(missing)} missing, first {missing[:5]}"
        assert seqs == list(range(expected)), f"partition {p}: records out of order"
    stored = {(p, off): int(v.split(b":", 2)[1]) for p in got for off, v, _ in got[p]}
    wrong = [(k, s, stored.get(k)) for k, s in acked.items() if stored.get(k) != s]
    assert not wrong, f"{len(wrong)} acknowledged records not at their offsets: {wrong[:5]}"
    assert len(acked) == count


def section_after(log, start_no):
    marker = f"--- start #{start_no}\n"
    return log[log.index(marker):] if marker in log else ""


# ---- restarts and crashes under load ------------------------------------------------

@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_idempotent_producer_across_broker_restart(broker_factory, workdir, how):
    b = broker_factory()
    create_topic(b.bootstrap, "idem", 3)
    count = 24000
    proc, out = start_seq_producer(b, workdir, "idem", count, rate=6000)
    try:
        wait_until(lambda: acked_count(out) >= 6000 or proc.poll() is not None, 60, "first acks")
        assert proc.poll() is None, "producer finished before the restart"
        if how == "sigterm":
            assert b.stop() == 0
        else:
            b.kill9()
        b.start()
    finally:
        acked = finish_seq_producer(proc, out)
    check_sequences(b.bootstrap, "idem", acked, count)


def test_acked_records_survive_repeated_kill9(broker_factory, workdir):
    b = broker_factory()
    create_topic(b.bootstrap, "crash", 3)
    count = 30000
    proc, out = start_seq_producer(b, workdir, "crash", count, rate=6000)
    try:
        for threshold in (5000, 15000):
            wait_until(lambda: acked_count(out) >= threshold or proc.poll() is not None, 60,
                       f"{threshold} acks")
            assert proc.poll() is None, "producer finished before the kill"
            b.kill9()
            b.start()
    finally:
        acked = finish_seq_producer(proc, out)
    log = b.log()
    assert log.count("recovered=yes") >= 3, "each start after kill -9 ran recovery"
    check_sequences(b.bootstrap, "crash", acked, count)


# ---- torn tail -----------------------------------------------------------------------

def first_batch(log_path):
    with open(log_path, "rb") as f:
        head = f.read(12)
        (length,) = struct.unpack(">i", head[8:12])
        return head + f.read(length)


@pytest.mark.parametrize("tail", ["partial_batch", "partial_batch_then_garbage", "zeros", "bad_crc_batch"])
def test_torn_segment_tail_is_truncated_on_restart(broker_factory, tail):
    b = broker_factory()
    n = 500
    create_topic(b.bootstrap, "torn", 1)
    produce(b.bootstrap, "torn", [f"r{i}".encode() * 20 for i in range(n)],
            extra={"batch.num.messages": 50})
    b.kill9()
    seg = os.path.join(b.data_dir, "torn-0", segment_files(b.data_dir, "torn", 0)[-1])
    good_size = os.path.getsize(seg)
    batch = bytearray(first_batch(seg))
    batch[0:8] = struct.pack(">q", n)  # looks like the next batch
    if tail == "partial_batch":
        junk = bytes(batch[:len(batch) // 2])
    elif tail == "partial_batch_then_garbage":
        junk = bytes(batch[:len(batch) - 7]) + random.Random(7).randbytes(3000)
    elif tail == "zeros":
        junk = b"\0" * 4096
    else:
        batch[-3] ^= 0xFF  # inside the last record: CRC no longer matches
        junk = bytes(batch)
    with open(seg, "ab") as f:
        f.write(junk)
    b.start()
    since = section_after(b.log(), 2)
    assert "segment data invalid" in since and "action=truncate" in since, since[-3000:]
    assert f"valid_bytes={good_size} " in since
    assert os.path.getsize(seg) == good_size, "torn tail cut off the file"

    got = consume(b.bootstrap, "torn", 1)[0]
    assert [(o, v) for o, v, _ in got] == [(i, f"r{i}".encode() * 20) for i in range(n)]
    mid = consume(b.bootstrap, "torn", 1, start=n // 2)[0]  # index rebuilt: seeks work
    assert mid and mid[0][0] == n // 2 and len(mid) == n - n // 2

    more = produce(b.bootstrap, "torn", [f"new{i}".encode() for i in range(100)])
    assert [o for o, _ in more] == list(range(n, n + 100)), "produces continue at the next offset"
    got = consume(b.bootstrap, "torn", 1)[0]
    assert len(got) == n + 100 and got[-1][1] == b"new99"


# ---- roll and retention ----------------------------------------------------------------

def test_segments_roll_and_size_retention_deletes_oldest(broker_factory):
    b = broker_factory({"log.segment.bytes": 16384, "log.retention.bytes": 49152,
                        "log.retention.check.interval.ms": 200})
    create_topic(b.bootstrap, "sized", 1)
    create_topic(b.bootstrap, "keep", 1, {"retention.bytes": "-1"})  # topic-level override
    values = [f"{i:06d}".encode() + b"v" * 1000 for i in range(300)]
    for t in ("sized", "keep"):
        produce(b.bootstrap, t, values, extra={"batch.num.messages": 4})

    keep = segment_files(b.data_dir, "keep", 0)
    assert len(keep) >= 12, f"about 300 KB in 16 KB segments: {keep}"
    assert keep[0] == "00000000000000000000.log"
    for f in keep:  # each segment has its indexes, named by its 20-digit base offset
        base = f[:-4]
        assert len(base) == 20 and base.isdigit()
        assert os.path.exists(os.path.join(b.data_dir, "keep-0", base + ".index"))
        assert os.path.exists(os.path.join(b.data_dir, "keep-0", base + ".timeindex"))

    def trimmed():
        # Stable and consistent: the same files before and after asking for the log
        # start, which is the base offset of the oldest segment left.
        logs = segment_files(b.data_dir, "sized", 0)
        low, _ = watermarks(b.bootstrap, "sized")
        return (len(logs) <= 5 and low > 0 and low == int(logs[0][:-4]) and
                logs == segment_files(b.data_dir, "sized", 0) and (logs, low))

    logs, low = wait_until(trimmed, 20, "size retention to delete old segments")
    d = os.path.join(b.data_dir, "sized-0")
    assert sum(os.path.getsize(os.path.join(d, f)) for f in logs) <= 49152 + 16384
    assert not [f for f in os.listdir(d) if f.endswith(".index") and f[:-6] + ".log" not in logs], \
        "indexes of deleted segments are gone too"
    got = consume(b.bootstrap, "sized", 1)[0]
    assert [(o, v) for o, v, _ in got] == [(i, values[i]) for i in range(low, 300)]
    assert "retention deleted segments=" in b.log()

    assert watermarks(b.bootstrap, "keep") == (0, 300), "retention.bytes=-1 on the topic keeps all"
    assert len(segment_files(b.data_dir, "keep", 0)) == len(keep)


def test_time_retention_deletes_segments_of_old_records(broker_factory):
    b = broker_factory({"log.segment.bytes": 16384, "log.retention.ms": 60000,
                        "log.retention.check.interval.ms": 200})
    for t in ("old", "fresh"):
        create_topic(b.bootstrap, t, 1)
    create_topic(b.bootstrap, "old-kept", 1, {"retention.ms": "-1"})
    now = int(time.time() * 1000)
    values = [b"t" * 1000 for _ in range(100)]
    two_hours_ago = [now - 7_200_000 + i for i in range(100)]
    produce(b.bootstrap, "old", values, timestamps=two_hours_ago, extra={"batch.num.messages": 4})
    produce(b.bootstrap, "old-kept", values, timestamps=two_hours_ago, extra={"batch.num.messages": 4})
    produce(b.bootstrap, "fresh", values, extra={"batch.num.messages": 4})

    def old_gone():
        logs = segment_files(b.data_dir, "old", 0)
        return watermarks(b.bootstrap, "old") == (100, 100) and len(logs) == 1 and logs
    logs = wait_until(old_gone, 20, "time retention to delete every segment of old records")
    assert logs == ["00000000000000000100.log"], "only a fresh, empty active segment is left"
    assert watermarks(b.bootstrap, "fresh") == (0, 100)
    assert watermarks(b.bootstrap, "old-kept") == (0, 100), "retention.ms=-1 topic override"
    assert len(segment_files(b.data_dir, "old-kept", 0)) > 1
    # The emptied log still takes records, at the next offset.
    assert produce(b.bootstrap, "old", [b"later"]) == [(100, b"later")]


def test_delete_topic_removes_its_directories(broker_factory):
    b = broker_factory()
    create_topic(b.bootstrap, "doomed", 3)
    create_topic(b.bootstrap, "stays", 1)
    for p in range(3):
        produce(b.bootstrap, "doomed", [b"x"] * 10, partition=p)
    dirs = [os.path.join(b.data_dir, f"doomed-{p}") for p in range(3)]
    assert all(os.path.isdir(d) for d in dirs)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.delete_topics(["doomed"])["doomed"].result(timeout=30)
    wait_until(lambda: not any(os.path.exists(d) for d in dirs), 10, "partition directories removed")
    assert "doomed" not in admin.list_topics(timeout=10).topics
    assert os.path.isdir(os.path.join(b.data_dir, "stays-0"))
    b.restart()
    assert not any(os.path.exists(d) for d in dirs)
    topics = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10).topics
    assert "doomed" not in topics and "stays" in topics


# ---- clean shutdown and producer state ---------------------------------------------------

def raw_request(sock, api_key, version, corr, body):
    sock.sendall(frame(api_key, version, corr, body))
    resp = recv_frame(sock)
    assert struct.unpack(">i", resp[:4])[0] == corr
    return resp


def raw_produce(sock, topic, batch, corr):
    resp = raw_request(sock, 0, 7, corr, wire.produce_body(topic, 0, batch))
    [(_, _, err, base)] = wire.parse_produce_response(resp, 7)
    return err, base


def test_clean_shutdown_keeps_data_and_producer_state(broker_factory):
    b = broker_factory()
    create_topic(b.bootstrap, "clean", 1)
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 250,
                  "error_cb": lambda e: errors.append(e) if e.code() not in EXPECTED_WHILE_DOWN else None})
    acked = []

    def on_delivery(err, msg):
        (errors if err else acked).append(err or (msg.offset(), msg.value()))

    def send(lo, hi):
        for i in range(lo, hi):
            p.produce("clean", value=f"c{i}".encode(), partition=0, on_delivery=on_delivery)
        assert p.flush(60) == 0

    send(0, 2000)
    assert b.stop() == 0, "SIGTERM: exit code 0"
    marker = os.path.join(b.data_dir, ".clean-shutdown")
    assert os.path.exists(marker)
    assert os.path.exists(os.path.join(b.data_dir, "clean-0", "00000000000000002000.snapshot")), \
        "producer state snapshotted at the log end"
    b.start()
    since = section_after(b.log(), 2)
    assert "recovered=no" in since and "recovered=yes" not in since, "a clean start skips recovery"
    assert not os.path.exists(marker), "marker consumed, so a later crash is noticed"
    send(2000, 4000)
    p.flush(10)
    assert not errors, errors[:5]
    assert sorted(acked) == [(i, f"c{i}".encode()) for i in range(4000)]
    got = consume(b.bootstrap, "clean", 1)[0]
    assert [(o, v) for o, v, _ in got] == [(i, f"c{i}".encode()) for i in range(4000)]


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_retried_batch_is_deduplicated_after_restart(broker_factory, how):
    """The broker remembers idempotent producers across restarts: a batch retried after
    the restart gets its original offsets instead of being written twice."""
    b = broker_factory()
    create_topic(b.bootstrap, "dedup", 1)
    now = int(time.time() * 1000)  # replay dates producers by their batches' timestamps

    def batch(values, seq):
        return wire.record_batch(values, base_timestamp=now, producer_id=pid, producer_epoch=epoch,
                                 base_sequence=seq)

    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        resp = raw_request(s, 22, 1, 1, wire.init_producer_id_body())
        err, pid, epoch = wire.parse_init_producer_id_response(resp)
        assert err == 0 and pid >= 0
        first, second = batch([b"a", b"b", b"c"], 0), batch([b"d", b"e"], 3)
        assert raw_produce(s, "dedup", first, 2) == (0, 0)
        assert raw_produce(s, "dedup", second, 3) == (0, 3)
    if how == "sigterm":
        assert b.stop() == 0
    else:
        b.kill9()
    b.start()
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        assert raw_produce(s, "dedup", second, 4) == (0, 3), "retry answered with the original offset"
        assert raw_produce(s, "dedup", first, 5) == (0, 0)
        assert raw_produce(s, "dedup", batch([b"f"], 5), 6) == (0, 5)
        assert raw_produce(s, "dedup", batch([b"g"], 9), 7)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
    got = consume(b.bootstrap, "dedup", 1)[0]
    assert [v for _, v, _ in got] == [b"a", b"b", b"c", b"d", b"e", b"f"]


# ---- fsync mode ----------------------------------------------------------------------------

def test_fsync_before_ack_round_trip(broker_factory):
    b = broker_factory({"log.flush.interval.messages": 1})
    create_topic(b.bootstrap, "synced", 3)
    t0 = time.monotonic()
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for i in range(10000):
        while True:
            try:
                p.produce("synced", value=f"s{i}".encode(), partition=i % 3,
                          on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0 and not errors
    bulk = time.monotonic() - t0
    assert bulk < 15, f"10k records with fsync before ack took {bulk:.1f}s"
    lat = []
    for i in range(30):
        t = time.monotonic()
        p.produce("synced", value=b"one", partition=0)
        assert p.flush(10) == 0
        lat.append(time.monotonic() - t)
    lat.sort()
    assert lat[len(lat) // 2] < 0.25 and lat[-1] < 2.0, f"single-record latencies {lat}"
    got = consume(b.bootstrap, "synced", 3)
    values = {v for p_ in got.values() for _, v, _ in p_}
    assert {f"s{i}".encode() for i in range(10000)} <= values
    assert sum(len(v) for v in got.values()) == 10030


# ---- configuration ---------------------------------------------------------------------------

def run_broker_cmd(args, timeout=20):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run([STRATUS_BIN, "broker"] + args, capture_output=True, timeout=timeout, env=env)


@pytest.mark.parametrize("key,value", [("num.partitions", "abc"), ("log.segment.bytes", "-5"),
                                       ("auto.create.topics.enable", "maybe"), ("log.retention.ms", "7d")])
def test_bad_config_value_exits_2_naming_the_key(workdir, key, value):
    r = run_broker_cmd(["--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
                        "--override", f"log.dirs={workdir}/d", "--override", f"{key}={value}"])
    assert r.returncode == 2, r.stderr.decode()
    assert key in r.stderr.decode()
    assert not os.path.exists(f"{workdir}/d"), "nothing created before the config was checked"


@pytest.mark.parametrize("line,expect", [("log.segment.bytes = lots", "log.segment.bytes"),
                                         ("num.partitions=0", "num.partitions"),
                                         ("just some words", "expected key=value")])
def test_bad_config_file_line_exits_2(workdir, line, expect):
    path = os.path.join(workdir, "server.properties")
    with open(path, "w") as f:
        f.write(f"# comment\nlisteners=PLAINTEXT://127.0.0.1:{free_port()}\n{line}\nlog.dirs={workdir}/d\n")
    r = run_broker_cmd([path])
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert expect in err and "server.properties:3" in err, err


def test_unknown_key_is_a_warning(broker_factory):
    b = broker_factory({"no.such.setting": "1", "num.network.threads": "8"})
    assert b.alive()
    log = b.log()
    warnings = [line for line in log.splitlines() if "no.such.setting" in line]
    assert len(warnings) == 1 and "warn" in warnings[0], log
    assert "num.network.threads" not in log, "Kafka keys that do not apply are accepted silently"


def test_config_file_is_read(workdir):
    port = free_port()
    data = os.path.join(workdir, "data")
    path = os.path.join(workdir, "server.properties")
    with open(path, "w") as f:
        f.write("# Kafka-style properties\n\n"
                f"listeners = PLAINTEXT://127.0.0.1:{port}\n"
                f"log.dirs={data}\n"
                "num.partitions=4\n"
                "log.retention.hours=2\n"
                "mystery.key=1\n")
    log_path = os.path.join(workdir, "file-broker.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([STRATUS_BIN, "broker", path, "--override", "num.partitions=5"],
                                stdout=log, stderr=log)
    try:
        def up():
            assert proc.poll() is None, open(log_path).read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 20, "broker from config file to listen")
        produce(f"127.0.0.1:{port}", "auto", [b"x"], partition=-1)
        md = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10)
        assert len(md.topics["auto"].partitions) == 5, "--override wins over the file"
        assert os.path.isdir(os.path.join(data, "auto-4")), "log.dirs from the file"
        res = ConfigResource(ConfigResource.Type.TOPIC, "auto")
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        cfg = admin.describe_configs([res])[res].result(10)
        assert cfg["retention.ms"].value == "7200000", "log.retention.hours from the file"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log = open(log_path).read()
    assert proc.returncode == 0, log
    assert "mystery.key" in log and "server.properties:7" in log, "unknown key warned with file:line"
    assert "Sanitizer" not in log and "runtime error:" not in log, log


def test_help_lists_config_keys():
    r = run_broker_cmd(["--help"])
    assert r.returncode == 0
    out = r.stdout.decode()
    for key in ("listeners", "log.dirs", "num.partitions", "log.segment.bytes", "log.retention.ms",
                "log.retention.bytes", "log.flush.interval.messages", "socket.request.max.bytes",
                "connections.max.idle.ms", "message.max.bytes"):
        assert f"  {key} " in out, key


def test_second_broker_on_same_log_dirs_fails(broker_factory):
    first = broker_factory()
    second = broker_factory({"log.dirs": first.data_dir}, start=False)
    second.start(wait=False)
    code = second.proc.wait(20)
    assert code not in (0, None)
    assert "in use by another broker" in second.log() and first.data_dir in second.log()
    assert first.alive()
    create_topic(first.bootstrap, "still-fine", 1)
    assert produce(first.bootstrap, "still-fine", [b"ok"]) == [(0, b"ok")]


# ---- idle connections ---------------------------------------------------------------------

def test_idle_connections_are_closed(broker_factory):
    b = broker_factory({"connections.max.idle.ms": 500})
    idle = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    busy = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    try:
        for s in (idle, busy):
            s.sendall(frame(18, 0, 1))
            assert wire.parse_api_versions_v0(recv_frame(s))[0] == 0
        t0 = time.monotonic()
        # The busy connection keeps talking every 100 ms for 1.5 s and stays open.
        corr = 2
        while time.monotonic() - t0 < 1.5:
            busy.sendall(frame(18, 0, corr))
            assert struct.unpack(">i", recv_frame(busy)[:4])[0] == corr
            corr += 1
            time.sleep(0.1)
        idle.settimeout(5)
        assert idle.recv(1) == b"", "the broker closed the idle connection (EOF)"
        assert time.monotonic() - t0 < 5
    finally:
        idle.close()
        busy.close()
    assert "closing idle connection" in b.log()


def test_recovery_scans_only_the_active_segment(broker_factory):
    # Recovery time must depend on the segment size, not the log size: after kill -9 only
    # the last segment of a partition is scanned, however many closed segments precede it,
    # and the (at most two) rolled segments whose background fsync was still in flight.
    b = broker_factory({"log.segment.bytes": "16384"})
    create_topic(b.bootstrap, "longlog", 1)
    produce(b.bootstrap, "longlog", [b"%05d-" % i + b"x" * 300 for i in range(2000)],
            extra={"linger.ms": 0, "batch.num.messages": 20})
    closed = len(segment_files(b.data_dir, "longlog", 0)) - 1
    assert closed >= 20, f"only {closed} closed segments"
    b.kill9()
    b.start()
    lines = [l for l in section_after(b.log(), b.starts).splitlines()
             if "segment recovered" in l and "longlog-0" in l]
    assert 1 <= len(lines) <= 3, lines
    for line in lines:
        scanned = int(line.split("scanned_bytes=")[1].split()[0])
        assert 0 < scanned <= 16384 + 8192, line
    # And the whole log is still there.
    assert watermarks(b.bootstrap, "longlog") == (0, 2000)
