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
        self.preexec = None  # run in the child before exec (e.g. resource limits)

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
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, env=env, preexec_fn=self.preexec)
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


# ---- `stratus lb` (docs/lb.md) --------------------------------------------------------

import re  # noqa: E402


def parse_prometheus(text):
    """Prometheus text format -> [(name, {label: value}, float)]; comments skipped."""
    samples = []
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
        if not m:
            raise AssertionError(f"not a Prometheus sample line: {line!r}")
        labels = {}
        if m.group(2):
            labels = {k: v.replace('\\"', '"').replace("\\\\", "\\")
                      for k, v in label_re.findall(m.group(2))}
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


class Metrics:
    """One GET /metrics of an lb."""

    def __init__(self, text):
        self.text = text
        self.samples = parse_prometheus(text)

    def find(self, name, **labels):
        return [(lb, v) for n, lb, v in self.samples
                if n == name and all(lb.get(k) == str(x) for k, x in labels.items())]

    def value(self, name, default=0.0, **labels):
        """The sum of the samples of <name> whose labels include <labels>; <default>
        when there is none."""
        found = self.find(name, **labels)
        return sum(v for _, v in found) if found else default

    def target_up(self, addr):
        """stratus_lb_target_up{target=<addr>}: 1.0, 0.0 or None when not exported."""
        return self.value("stratus_lb_target_up", default=None, target=addr)

    def __repr__(self):
        return "Metrics(\n" + "\n".join(l for l in self.text.splitlines() if not l.startswith("#")) + ")"


def listen_inode(port):
    """The inode of the socket LISTENing on 127.0.0.1:<port> (/proc/net/tcp), or None."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            ip, p = parts[1].split(":")
            if int(p, 16) == port and parts[3] == "0A" and ip in ("0100007F", "00000000"):
                return int(parts[9])
    return None


class Lb:
    """One `stratus lb --config FILE` process with its own directory. The config text is
    written by atomic replacement (write a temporary file, rename), so the lb never sees a
    half-written file. When the text has no `admin` line, `admin 127.0.0.1:<free port>` is
    put first (tests that check line numbers write their own)."""

    def __init__(self, workdir, name="lb"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config_path = os.path.join(self.dir, "lb.conf")
        self.out_path = os.path.join(self.dir, "lb.stdout")
        self.err_path = os.path.join(self.dir, "lb.stderr")
        self.admin_port = free_port()
        self.proc = None
        self.config = ""
        self.starts = 0
        self.preexec = None  # run in the child before exec (e.g. resource limits)

    @property
    def admin(self):
        return f"127.0.0.1:{self.admin_port}"

    @property
    def pid(self):
        return self.proc.pid

    # -- configuration

    def full_text(self, text):
        if not any(l.split()[:1] == ["admin"] for l in text.splitlines()):
            text = f"admin {self.admin}\n" + text
        return text

    def write_config(self, text, in_place=False):
        text = self.full_text(text)
        if in_place:   # like an editor that truncates and rewrites the file
            with open(self.config_path, "w") as f:
                f.write(text)
            self.config = text
            return text
        # The temporary file lives in a subdirectory: the lb may watch the config's
        # directory, and only the rename itself should be seen there.
        tmp_dir = os.path.join(self.dir, "tmp")
        os.makedirs(tmp_dir, exist_ok=True)
        tmp = os.path.join(tmp_dir, "lb.conf.new")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self.config = text
        return text

    def listener_ports(self, text=None):
        """{name: port} of the listener lines of <text> (default: the current config)."""
        ports = {}
        for line in (text or self.config).splitlines():
            f = line.split("#", 1)[0].split()
            if len(f) >= 3 and f[0] == "listener":
                ports[f[1]] = int(f[2].rsplit(":", 1)[1])
        return ports

    # -- process

    def start(self, text, wait=True, args=()):
        self.write_config(text)
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            err.write(f"--- start #{self.starts}\n".encode())
            err.flush()
            self.proc = subprocess.Popen([STRATUS_BIN, "lb", "--config", self.config_path, *args],
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                         preexec_fn=self.preexec)
        if wait:
            self.wait_ready()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise AssertionError(f"lb exited with {self.proc.returncode}:\n{self.stderr()[-6000:]}")

    def owns_socket(self, inode):
        fd_dir = f"/proc/{self.pid}/fd"
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(os.path.join(fd_dir, fd)) == f"socket:[{inode}]":
                        return True
                except OSError:
                    pass
        except OSError:
            pass
        return False

    def listening(self, port):
        """True when the lb itself has a socket LISTENing on <port> (no connection made)."""
        inode = listen_inode(port)
        return inode is not None and self.owns_socket(inode)

    def wait_ready(self, timeout=20.0):
        """Waits until every listener of the config and the admin address are listening
        and /metrics answers."""
        ports = list(self.listener_ports().values()) + [self.admin_port]

        def ready():
            self.check_alive()
            if not all(self.listening(p) for p in ports):
                return False
            try:
                self.metrics(timeout=1.0)
                return True
            except (OSError, AssertionError):
                return False
        wait_until(ready, timeout, f"lb to listen on {ports}")

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stops the lb by pid; returns its exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"lb did not stop within {timeout}s of signal {sig}")

    def wait_exit(self, timeout=10.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"lb still running after {timeout}s")

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # -- admin

    def http_get(self, path, timeout=5.0):
        """(status, body) of GET <path> on the admin address."""
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            c.request("GET", path, headers={"Connection": "close"})
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()

    def metrics(self, timeout=5.0):
        status, body = self.http_get("/metrics", timeout)
        assert status == 200, f"GET /metrics: {status} {body[:200]}"
        return Metrics(body)

    def wait_metrics(self, pred, timeout=10.0, what="metrics condition"):
        """Polls /metrics until pred(Metrics) is true; returns those Metrics."""
        last = [None]

        def check():
            self.check_alive()
            m = self.metrics()
            last[0] = m
            return m if pred(m) else None
        try:
            return wait_until(check, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; last {last[0]!r}") from None

    def wait_target(self, addr, up=True, timeout=10.0):
        want = 1.0 if up else 0.0
        return self.wait_metrics(lambda m: m.target_up(addr) == want, timeout,
                                 f"target {addr} {'up' if up else 'down'}")

    # -- reload

    def reload(self, text=None, how="sighup", expect="ok", timeout=10.0, in_place=False):
        """Reloads: writes <text> (when given) by atomic rename (or <in_place>), then sends
        SIGHUP when <how> is "sighup" (with "file" only the file change triggers it). Waits until
        stratus_lb_reloads_total{result=<expect>} increased; returns the Metrics."""
        self.check_alive()
        before = self.metrics().value("stratus_lb_reloads_total", result=expect)
        if text is not None:
            self.write_config(text, in_place)
        if how == "sighup":
            os.kill(self.pid, signal.SIGHUP)
        else:
            assert how == "file" and text is not None
        return self.wait_metrics(
            lambda m: m.value("stratus_lb_reloads_total", result=expect) > before, timeout,
            f"reloads_total{{result={expect}}} to pass {before} after a {how} reload")

    # -- resources

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fd_links(self):
        out = {}
        d = f"/proc/{self.pid}/fd"
        for fd in os.listdir(d):
            try:
                out[int(fd)] = os.readlink(os.path.join(d, fd))
            except OSError:
                pass
        return out

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settled_fd_count(self, samples=5, interval=0.05):
        """The smallest fd count over a few samples (health checks and admin connections
        hold an fd for a moment)."""
        n = None
        for _ in range(samples):
            c = self.fd_count()
            n = c if n is None else min(n, c)
            time.sleep(interval)
        return n

    def fd_kinds(self):
        """{"socket": n, "pipe": n, "other": n} of the lb's open file descriptors."""
        kinds = {"socket": 0, "pipe": 0, "other": 0}
        for link in self.fd_links().values():
            k = link.split(":", 1)[0]
            kinds[k if k in kinds else "other"] += 1
        return kinds

    def settled_fd_kinds(self, samples=5, interval=0.05):
        """fd_kinds() with the smallest total over a few samples."""
        best = None
        for _ in range(samples):
            k = self.fd_kinds()
            if best is None or sum(k.values()) < sum(best.values()):
                best = k
            time.sleep(interval)
        return best

    def wait_fds_back(self, base, margin=4, max_pipes=None, timeout=10.0):
        """Waits until the lb holds at most <margin> sockets and other fds more than in
        <base> (a settled_fd_kinds()), and at most <max_pipes> pipe fds (default: as many
        as in <base>). Returns the fd kinds then."""
        max_pipes = base["pipe"] if max_pipes is None else max_pipes

        def back():
            k = self.fd_kinds()
            ok = (k["socket"] <= base["socket"] + margin and k["other"] <= base["other"] + margin
                  and k["pipe"] <= max_pipes)
            return k if ok else None
        try:
            return wait_until(back, timeout, "lb fds back to the baseline")
        except AssertionError:
            links = sorted(self.fd_links().items())
            raise AssertionError(f"lb fds {self.fd_kinds()}, baseline {base} (+{margin}, pipes <= "
                                 f"{max_pipes}): {links[:40]}") from None

    def wait_fds_at_most(self, limit, timeout=10.0):
        try:
            return wait_until(lambda: self.settled_fd_count(3, 0.02) <= limit, timeout,
                              f"lb fd count <= {limit}")
        except AssertionError:
            links = sorted(self.fd_links().items())
            raise AssertionError(f"lb holds {len(links)} fds, expected at most {limit}: {links[:60]}") from None


@pytest.fixture
def lb_factory(workdir, request):
    """make(text, start=True, name=None) -> Lb started with <text> (waits until it listens).
    At teardown every lb still running is stopped by pid with SIGTERM and must exit 0;
    a sanitizer report in its stderr fails the test; stderr is printed on failure."""
    lbs = []

    def make(text=None, start=True, name=None):
        lb = Lb(workdir, name or f"lb{len(lbs)}")
        lbs.append(lb)
        if start:
            lb.start(text)
        return lb

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    problems = []
    for lb in lbs:
        running = lb.alive()
        try:
            code = lb.stop()
        except AssertionError as e:
            code = None
            problems.append(str(e))
        if running and code != 0:
            problems.append(f"lb {lb.dir} exited {code} on SIGTERM (docs/lb.md: exits 0)")
        err = lb.stderr()
        if "ERROR: AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
            print(err[-30000:])
            problems.append(f"sanitizer report in lb stderr ({lb.err_path})")
        if failed or problems:
            print(f"=== lb stderr ({lb.err_path}) exit={code}\n{err[-20000:]}")
            print(f"=== lb config ({lb.config_path})\n{lb.config}")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def targets():
    """A tcp_targets.TargetLoop (clients/tcp_targets.py); closed at teardown."""
    import sys
    sys.path.insert(0, os.path.join(_HERE, "clients"))
    import tcp_targets
    tl = tcp_targets.TargetLoop()
    yield tl
    tl.close()
