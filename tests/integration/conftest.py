"""Fixtures for integration tests: real `stratus broker` processes on 127.0.0.1.

Each test gets its own data directory and a free port. Processes are ended by pid at
teardown. Broker logs are printed when a test fails (pytest shows captured output).
"""
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

STRATUS_BIN = os.environ.get("STRATUS_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "asan", "stratus")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Broker:
    def __init__(self, workdir, port=None, overrides=None):
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.port = port or free_port()
        self.overrides = dict(overrides or {})
        self.proc = None
        self.log_path = os.path.join(workdir, "broker.log")
        self.starts = 0

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def args(self):
        conf = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": self.data_dir,
        }
        conf.update(self.overrides)
        args = [STRATUS_BIN, "broker"]
        for k, v in conf.items():
            args += ["--override", f"{k}={v}"]
        return args

    def start(self, wait=True):
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"--- start #{self.starts}\n".encode())
        log.flush()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, env=env)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_until(ready, timeout, "broker to listen")

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Stops the broker; returns its exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("broker did not stop within %ss" % timeout)

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="stratus-it-")
    yield d
    subprocess.run(["rm", "-rf", d])


@pytest.fixture
def broker_factory(workdir, request):
    brokers = []

    def make(overrides=None, start=True, port=None):
        sub = os.path.join(workdir, f"b{len(brokers)}")
        os.makedirs(sub, exist_ok=True)
        b = Broker(sub, port=port, overrides=overrides)
        brokers.append(b)
        if start:
            b.start()
        return b

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for b in brokers:
        code = b.stop()
        log = b.log()
        # AddressSanitizer/UBSan reports are failures even when the test passed.
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
            print(log)
            pytest.fail("sanitizer report in broker log")
        if failed:
            print(f"=== broker log ({b.log_path}) exit={code}\n{log[-20000:]}")


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def create_topic(bootstrap, name, partitions, config=None):
    """Creates a topic with librdkafka's AdminClient and waits for the result."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                       config=config or {})])
    fs[name].result(timeout=30)


def consume_all(bootstrap, topic, expected, timeout=90):
    """Reads every partition of <topic> from offset 0 with an assign()-consumer until
    <expected> records arrived (or <timeout>), then checks that nothing more follows.
    Returns the messages."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                assert m.error() is None, m.error()
                got.append(m)
        assert not c.consume(1000, 0.3), "no records beyond those produced"
    finally:
        c.close()
    return got


def check_keyed_records(got, n_records, partitions, codec):
    """Checks messages produced as record i = key "key-{i % 1000}", value "value-{i}",
    headers seq=i and codec=<codec>: every partition used, dense ordered offsets, produce
    order kept per partition, each record exactly once. Returns {partition: [messages]}."""
    assert len(got) == n_records
    per_partition = {}
    for m in got:
        per_partition.setdefault(m.partition(), []).append(m)
    assert set(per_partition) == set(range(partitions)), "keys spread over every partition"
    seen = set()
    for p, msgs in per_partition.items():
        assert [m.offset() for m in msgs] == list(range(len(msgs))), f"partition {p}: dense, ordered offsets"
        seqs = [int(dict(m.headers())["seq"]) for m in msgs]
        assert seqs == sorted(seqs), f"partition {p}: records in produce order"
        for m in msgs:
            h = dict(m.headers())
            i = int(h["seq"])
            assert m.key() == f"key-{i % 1000}".encode()
            assert m.value() == f"value-{i}".encode()
            assert h["codec"] == codec.encode()
            seen.add(i)
    assert seen == set(range(n_records))
    return per_partition


# ---- raw Kafka wire helpers for protocol-level tests ---------------------------------

def frame(api_key, version, corr, body=b"", client_id=b"it", flexible=False):
    hdr = struct.pack(">hhi", api_key, version, corr) + struct.pack(">h", len(client_id)) + client_id
    if flexible:
        hdr += b"\x00"
    payload = hdr + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_frame(sock):
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)
