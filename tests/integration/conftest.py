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


# ---- consumer-group members (tests/integration/clients/README.md) --------------------

import json  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.path.join(_HERE, "..", ".."))
GROUP_MEMBER_PY = os.path.join(_HERE, "clients", "group_member.py")
GROUP_MEMBER_JS = os.path.join(_HERE, "js", "group_member.js")
SARAMA_MEMBER = os.environ.get("SARAMA_MEMBER") or os.path.join(_REPO, "build", "clients", "sarama_member")
GROUP_LIBS = ("confluent", "kafka-python", "kafkajs", "sarama")


def member_command(lib):
    """Returns (argv prefix, None) to run <lib>'s group member, or (None, why it can't run)."""
    if lib in ("confluent", "kafka-python"):
        return ["/usr/bin/python3", GROUP_MEMBER_PY, "--lib", lib], None
    if lib == "kafkajs":
        if shutil.which("node") is None:
            return None, "node missing: run scripts/install-deps.sh"
        if not os.path.isdir(os.path.join(_HERE, "node_modules", "kafkajs")):
            return None, "kafkajs missing in tests/integration/node_modules: run scripts/install-deps.sh"
        if not os.path.exists(GROUP_MEMBER_JS):
            return None, f"{GROUP_MEMBER_JS} missing"
        return ["node", GROUP_MEMBER_JS], None
    if lib == "sarama":
        if not os.access(SARAMA_MEMBER, os.X_OK):
            return None, f"{SARAMA_MEMBER} missing: run scripts/build-test-clients.sh"
        return [SARAMA_MEMBER], None
    raise ValueError(f"unknown group member library {lib!r}")


def require_member_lib(*libs):
    """Skips the calling test unless every library in <libs> can run a group member here."""
    for lib in libs:
        _, why = member_command(lib)
        if why:
            pytest.skip(f"{lib} group member unavailable: {why}")


class Member:
    """One consumer-group member process (clients/README.md has the contract). Its JSON
    events are read on a thread into <events> as (monotonic time, dict); lines that are
    not JSON objects become {"event": "bad_line"} (the contract forbids them)."""

    def __init__(self, lib, bootstrap, group, topics, client_id, workdir, instance_id=None,
                 assignor=None, session_timeout_ms=6000, heartbeat_ms=1000, commit="sync",
                 from_="earliest"):
        self.lib = lib
        self.client_id = client_id
        self.argv_tail = ["--bootstrap", bootstrap, "--group", group, "--client-id", client_id,
                          "--session-timeout-ms", str(session_timeout_ms),
                          "--heartbeat-ms", str(heartbeat_ms), "--commit", commit, "--from", from_]
        for t in [topics] if isinstance(topics, str) else topics:
            self.argv_tail += ["--topic", t]
        if instance_id is not None:
            self.argv_tail += ["--instance-id", instance_id]
        if assignor is not None:
            self.argv_tail += ["--assignor", assignor]
        self.stderr_path = os.path.join(workdir, f"member-{client_id}.stderr")
        self.events = []
        self.cond = threading.Condition()
        self.proc = None
        self.reader = None
        self.eof = False

    def start(self):
        prefix, why = member_command(self.lib)
        if why:
            pytest.skip(f"{self.lib} group member unavailable: {why}")
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(prefix + self.argv_tail, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=_HERE)
        err.close()
        self.reader = threading.Thread(target=self._read, name=f"member-{self.client_id}", daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                ev = json.loads(line)
                if not isinstance(ev, dict) or "event" not in ev:
                    raise ValueError
            except ValueError:
                ev = {"event": "bad_line", "line": line}
            with self.cond:
                self.events.append((time.monotonic(), ev))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    # -- reading events

    def of(self, kind, since=0.0):
        """Events of <kind> received at or after monotonic time <since>, as dicts."""
        with self.cond:
            return [e for t, e in self.events if e["event"] == kind and t >= since]

    def timed(self, kind):
        """[(monotonic time, event)] of <kind>."""
        with self.cond:
            return [(t, e) for t, e in self.events if e["event"] == kind]

    def wait_for(self, pred, timeout, what):
        """Waits until pred(self) is true; fails with the member's recent output if not."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred(self)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.2))
        raise AssertionError(f"{self}: timed out after {timeout}s waiting for {what}; "
                             f"last events {self.tail()}")

    def wait_event(self, kind, timeout=30.0, since=0.0):
        return self.wait_for(lambda m: (m.of(kind, since) or [None])[0], timeout, f"event {kind}")

    def wait_ready(self, timeout=30.0):
        return self.wait_event("ready", timeout)

    @property
    def assignment(self):
        """The current assignment {(topic, partition)} after the last assigned/revoked event."""
        with self.cond:
            for _, e in reversed(self.events):
                if e["event"] in ("assigned", "revoked"):
                    return {(t, p) for t, p in e["all"]}
        return set()

    def wait_assignment(self, pred=lambda a: a, timeout=30.0, what="an assignment"):
        """Waits until pred(current assignment) holds; returns the assignment."""
        self.wait_for(lambda m: pred(m.assignment), timeout, what)
        return self.assignment

    def records(self):
        return self.of("record")

    def record_keys(self):
        """[(topic, partition, offset)] of printed records, in print order."""
        return [(e["topic"], e["partition"], e["offset"]) for e in self.records()]

    def tail(self, n=8):
        with self.cond:
            return [e for _, e in self.events[-n:]]

    def stderr_tail(self, n=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    # -- process control

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=30.0):
        """SIGTERM, then waits for exit; returns the exit code (the caller checks "closed")."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self}: no exit within {timeout}s of SIGTERM; last events {self.tail()}")
        self.reader.join(5)
        return code

    def kill9(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(10)
        self.reader.join(5)
        return code

    def __repr__(self):
        return f"Member({self.lib} {self.client_id} pid={self.proc.pid if self.proc else None})"


@pytest.fixture
def member_factory(workdir, request):
    """make(lib, bootstrap, group, topics, client_id, **kw) starts a Member; every member
    still running at teardown is killed by pid. On failure their last events and stderr
    are printed."""
    members = []

    def make(lib, bootstrap, group, topics, client_id, **kw):
        m = Member(lib, bootstrap, group, topics, client_id, workdir, **kw)
        members.append(m)
        return m.start()

    yield make
    for m in members:
        if m.proc is not None and m.alive():
            m.kill9()
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    dump_dir = os.environ.get("STRATUS_IT_MEMBER_DUMP")  # debugging: keep every event
    if dump_dir:
        os.makedirs(dump_dir, exist_ok=True)
        for m in members:
            with open(os.path.join(dump_dir, f"{request.node.name}-{m.client_id}.jsonl"), "w") as f:
                for t, e in m.events:
                    f.write(json.dumps({"t": round(t, 3), **e}) + "\n")
            shutil.copy(m.stderr_path, os.path.join(dump_dir, f"{request.node.name}-{m.client_id}.stderr"))
    if failed:
        for m in members:
            if m.proc is None:
                continue
            print(f"=== {m} exit={m.proc.returncode} last events: {m.tail(15)}")
            print(f"--- stderr ({m.stderr_path}):\n{m.stderr_tail()}")
