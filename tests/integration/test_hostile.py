"""Hostile and broken peers on raw sockets while a well-behaved librdkafka producer and
consumer keep working: the broker answers each bad connection with the Kafka-conventional
error or closes it, never stalls or crashes, serves everyone else, and logs at most about
a line per bad connection."""
import os
import random
import socket
import struct
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import frame, recv_frame, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "clients"))
import wire  # noqa: E402

REQUEST_MAX = 1024 * 1024
CORRUPT_MESSAGE = 2
UNSUPPORTED_VERSION = 35
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43


class GoodClients:
    """An idempotent producer paced at <rate> records/s and an assign()-style consumer,
    each in a thread, for at most <max_records> records / <max_seconds> seconds."""

    def __init__(self, bootstrap, topic, partitions, rate=2000, max_records=20000, max_seconds=60):
        self.bootstrap, self.topic, self.partitions, self.rate = bootstrap, topic, partitions, rate
        self.max_records, self.max_seconds = max_records, max_seconds
        self.stop = threading.Event()
        self.producer_done = threading.Event()
        self.errors = []
        self.acked = set()
        self.received = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._produce), threading.Thread(target=self._consume)]

    def _on_error(self, err):
        self.errors.append(("client", err))

    def _produce(self):
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "error_cb": self._on_error})

        def on_delivery(err, msg):
            if err:
                self.errors.append(("delivery", err))
            else:
                with self.lock:
                    self.acked.add(msg.value())

        start = time.monotonic()
        i = 0
        try:
            while not self.stop.is_set() and i < self.max_records and time.monotonic() < start + self.max_seconds:
                ahead = i / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    p.poll(ahead)  # returns early on delivery reports: loop re-checks
                    continue
                p.produce(self.topic, value=f"good-{i}".encode(), partition=i % self.partitions,
                          on_delivery=on_delivery)
                i += 1
                p.poll(0)
            left = p.flush(30)
            if left:
                self.errors.append(("undelivered", left))
        finally:
            self.producer_done.set()

    def _consume(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "it-unused", "enable.auto.commit": False,
                      "fetch.wait.max.ms": 100, "error_cb": self._on_error})
        c.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        deadline = time.monotonic() + self.max_seconds + 40
        try:
            while time.monotonic() < deadline:
                if self.producer_done.is_set():
                    with self.lock:
                        if len(self.received) >= len(self.acked):
                            break
                for m in c.consume(500, 0.1):
                    if m.error():
                        self.errors.append(("consume", m.error()))
                    else:
                        with self.lock:
                            self.received.append(m.value())
        finally:
            c.close()

    def start(self):
        for t in self.threads:
            t.start()

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)
        assert not any(t.is_alive() for t in self.threads), "good clients did not finish"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def expect_closed(sock, timeout=5.0):
    """Waits for the broker to close <sock>; returns whatever it sent first."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        raise AssertionError(f"broker kept the connection open after {timeout}s (got {data[:40]!r})")
    finally:
        sock.close()


def api_versions_ok(sock, corr=77):
    sock.sendall(frame(18, 0, corr))
    resp = recv_frame(sock)
    assert struct.unpack(">i", resp[:4])[0] == corr
    err, apis = wire.parse_api_versions_v0(resp)
    assert err == 0 and 0 in apis
    return True


def probe(port):
    """A fresh connection gets an ApiVersions answer promptly."""
    with connect(port) as s:
        s.settimeout(5)
        return api_versions_ok(s)


def raw_produce(sock, version, topic, records, corr):
    sock.sendall(frame(0, version, corr, wire.produce_body(topic, 0, records, version=version)))
    resp = recv_frame(sock)
    assert struct.unpack(">i", resp[:4])[0] == corr
    [(_, partition, err, base)] = wire.parse_produce_response(resp, version)
    assert partition == 0
    return err, base


def test_broker_survives_hostile_peers(broker_factory):
    b = broker_factory({"socket.request.max.bytes": REQUEST_MAX, "message.max.bytes": 1000000})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    fs = admin.create_topics([NewTopic("good", num_partitions=3, replication_factor=1),
                              NewTopic("target", num_partitions=1, replication_factor=1)])
    for f in fs.values():
        f.result(timeout=30)
    good = GoodClients(b.bootstrap, "good", 3)
    good.start()
    try:
        wait_until(lambda: good.acked_count() >= 200, 30, "good producer to get going")
        log_before = len(b.log().splitlines())
        bad = 0  # connections that may each leave one log line

        # Random garbage: the first 4 bytes are taken as a frame size.
        for seed in range(6):
            junk = random.Random(seed).randbytes(4096)
            (size,) = struct.unpack(">i", junk[:4])
            s = connect(b.port)
            s.sendall(junk)
            bad += 1
            if 8 <= size <= REQUEST_MAX and size > len(junk) - 4:
                s.close()  # a plausible frame still arriving: waiting is right
            else:
                expect_closed(s)

        # A truncated frame, then the peer goes away.
        s = connect(b.port)
        s.sendall(frame(3, 1, 1, struct.pack(">i", -1))[:9])
        s.close()

        # Frame sizes out of bounds: too large, negative, smaller than a request header.
        for size in (REQUEST_MAX + 1, 2**31 - 1, -1, -2**31, 0, 4, 7):
            s = connect(b.port)
            s.sendall(struct.pack(">i", size) + b"\x00" * 16)
            assert expect_closed(s) == b"", f"size {size}: closed without an answer"
            bad += 1

        # Valid header, unknown or unserved API keys: closed, as Kafka does.
        for key in (1000, -1, 11):  # 11 = JoinGroup v0 with no body: malformed
            s = connect(b.port)
            s.sendall(frame(key, 0, 5))
            assert expect_closed(s) == b""
            bad += 1

        # Unsupported Metadata version: closed.
        s = connect(b.port)
        s.sendall(frame(3, 99, 6, struct.pack(">i", -1)))
        assert expect_closed(s) == b""
        bad += 1

        # Unsupported ApiVersions version: answered with UNSUPPORTED_VERSION and a v0 body
        # listing our range, on a connection that stays usable.
        with connect(b.port) as s:
            s.sendall(frame(18, 99, 7, flexible=True))
            err, apis = wire.parse_api_versions_v0(recv_frame(s))
            assert err == UNSUPPORTED_VERSION and apis[18][1] >= 3
            assert api_versions_ok(s)

        # Produce claiming 0x7fffffff topics, with three bytes behind the count.
        s = connect(b.port)
        s.sendall(frame(0, 7, 8, struct.pack(">hhi", -1, -1, 1000) + struct.pack(">i", 0x7FFFFFFF) + b"abc"))
        assert expect_closed(s) == b""
        bad += 1

        # String lengths past the end of the frame: in the body, and in the header.
        s = connect(b.port)
        s.sendall(frame(3, 1, 9, struct.pack(">ih", 1, 30000) + b"abc"))
        assert expect_closed(s) == b""
        bad += 1
        s = connect(b.port)
        payload = struct.pack(">hhih", 18, 0, 10, 30000) + b"it"
        s.sendall(struct.pack(">i", len(payload)) + payload)
        assert expect_closed(s) == b""
        bad += 1

        # Bad records are errors in the produce response; the connection stays usable.
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "it-unused"})
        _, hw_before = c.get_watermark_offsets(TopicPartition("target", 0), timeout=10)
        c.close()
        with connect(b.port) as s:
            s.settimeout(10)
            batch = bytearray(wire.record_batch([b"payload-%d" % i for i in range(5)]))
            batch[-2] ^= 0x55
            assert raw_produce(s, 7, "target", bytes(batch), 11)[0] == CORRUPT_MESSAGE
            assert raw_produce(s, 7, "target", wire.legacy_message_v1(b"v" * 80), 12)[0] == \
                UNSUPPORTED_FOR_MESSAGE_FORMAT
            assert raw_produce(s, 2, "target", wire.legacy_message_v1(b"v" * 80), 13)[0] == \
                UNSUPPORTED_FOR_MESSAGE_FORMAT
            # One record claiming 2^31 offsets, and a batch of no records: Kafka's
            # LogValidator rejects both as corrupt.
            assert raw_produce(s, 7, "target", wire.record_batch([b"x"], last_offset_delta=2**31 - 1), 16)[0] == \
                CORRUPT_MESSAGE
            assert raw_produce(s, 7, "target", wire.record_batch([], last_offset_delta=0), 17)[0] == \
                CORRUPT_MESSAGE
            assert api_versions_ok(s)
            ok = wire.record_batch([b"fine"], base_timestamp=int(time.time() * 1000))
            assert raw_produce(s, 7, "target", ok, 14) == (0, hw_before), "nothing bad was written"
        # With acks=0 there is no response to carry the error: the connection is closed.
        s = connect(b.port)
        s.sendall(frame(0, 7, 15, wire.produce_body("target", 0, bytes(batch), acks=0, version=7)))
        assert expect_closed(s) == b""
        bad += 1

        # Slowloris: a frame header and then nothing. Others keep being served meanwhile.
        slow = connect(b.port)
        slow.sendall(struct.pack(">i", 1000) + b"\x00\x03")
        acked = good.acked_count()
        t0 = time.monotonic()
        assert probe(b.port)
        assert time.monotonic() - t0 < 2, "a new connection is served while another stalls"
        wait_until(lambda: good.acked_count() >= acked + 200, 20, "good producer to progress during slowloris")

        # Many simultaneous connections, each asking ApiVersions.
        conns = []
        try:
            for _ in range(200):
                conns.append(connect(b.port))
            for i, s in enumerate(conns):
                s.sendall(frame(18, 0, 1000 + i))
            for i, s in enumerate(conns):
                s.settimeout(10)
                assert struct.unpack(">i", recv_frame(s)[:4])[0] == 1000 + i
        finally:
            for s in conns:
                s.close()

        # The slowloris connection is still just waiting (not answered, not crashed).
        slow.settimeout(0.2)
        with pytest.raises(socket.timeout):
            slow.recv(1)
        slow.close()
        assert probe(b.port)
    finally:
        good.finish()

    assert b.alive(), "broker still running"
    assert not good.errors, good.errors[:5]
    assert good.acked_count() >= 400
    assert len(good.received) == len(set(good.received)), "no duplicates"
    assert set(good.received) == good.acked, "the good consumer got every acknowledged record"

    log = b.log()
    new_lines = log.splitlines()[log_before:]
    assert len(new_lines) <= bad + 3, f"{len(new_lines)} log lines for {bad} bad connections:\n" + \
        "\n".join(new_lines[:60])
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert marker not in log


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_accepting_and_recovers(broker_factory):
    # An open-files limit the broker cannot raise: connections beyond it wait in the
    # listen backlog. The broker must not spin on the listener meanwhile, must keep serving
    # the connections it has, and must accept again once descriptors are free.
    import resource
    limit = 96
    b = broker_factory(start=False)
    b.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    b.start()
    assert f"open files limit={limit}" in b.log()
    first = connect(b.port)
    first.settimeout(5)
    assert api_versions_ok(first)
    flood = []
    try:
        for _ in range(limit + 40):  # connect() completes from the backlog, accepted or not
            flood.append(socket.create_connection(("127.0.0.1", b.port), timeout=5))
        wait_until(lambda: "not accepting for 100 ms" in b.log(), timeout=10, what="the accept pause")
        cpu0 = cpu_seconds(b.proc.pid)
        time.sleep(2)
        spent = cpu_seconds(b.proc.pid) - cpu0
        assert spent < 0.6, f"broker used {spent:.2f} CPU-s in 2 s while out of descriptors"
        assert api_versions_ok(first, corr=78), "an accepted connection is still served"
        lines = b.log().count("not accepting for 100 ms")
        assert lines <= 2 * 25, f"{lines} log lines in about 2 s"
    finally:
        for s in flood:
            s.close()
    first.close()

    def served_again():
        try:
            return probe(b.port)
        except OSError:
            return False
    wait_until(served_again, timeout=10, what="accepting again")
