"""`stratus satellite` with the local driver, end to end: a real control-plane broker, the
real satellite process, PSCs produced by the test (JSON per docs/psc.md), and real Kafka
clients through the PKC's bootstrap listener. Also the broker's SIGHUP reload.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import STRATUS_BIN, create_topic, free_port, wait_until
from test_sasl import key_entry, write_tenants

SAT_ID = "sat-test-1"
PKC = "pkc-abc123"
LKC = "lkc-aaaaaa"
SANITIZER = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")


def psc_doc(generation, keys, revision="rev-1", deleted=False, brokers=1, broker_config=None, pkc=PKC,
            tenants=None):
    """A full PSC (docs/psc.md) for one tenant <LKC> with API keys <keys> {key: secret}, or
    for <tenants> {lkc id: {key: secret}}."""
    if tenants is None:
        tenants = {LKC: keys}
    return {
        "api_version": "stratus/v1",
        "kind": "PhysicalStatefulCluster",
        "id": pkc,
        "product": "kafka",
        "satellite": SAT_ID,
        "region": "test",
        "generation": generation,
        "revision": revision,
        "deleted": deleted,
        "type": "multi_tenant",
        "ingress_mbps": 10,
        "egress_mbps": 30,
        "partitions": 100,
        "tenants": [{"id": lkc, "quotas": {},
                     "api_keys": [key_entry(k, s) for k, s in sorted(tkeys.items())]}
                    for lkc, tkeys in tenants.items()],
        "policy_version": "test-1",
        "broker_version": "stratus-test",
        "broker_count": brokers,
        "disk_type": "local",
        "disk_bytes": 1 << 30,
        "broker_config": broker_config if broker_config is not None else {"num.partitions": "1"},
        "client_security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "internal_security_protocol": "PLAINTEXT",
        "lb_bootstrap": True,
    }


class Satellite:
    def __init__(self, workdir, bootstrap):
        self.dir = os.path.join(workdir, "satellite")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data, exist_ok=True)
        self.bootstrap = bootstrap
        self.log_path = os.path.join(self.dir, "satellite.log")
        self.proc = None
        self.starts = 0

    def start(self, extra=()):
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        with open(self.log_path, "ab") as log:
            log.write(f"--- start #{self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen([STRATUS_BIN, "satellite", "--region", "test", "--id", SAT_ID,
                                          "--data", self.data, "--bootstrap", self.bootstrap, *extra],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"satellite did not stop within {timeout}s")

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def pkc_dir(self, pkc=PKC):
        return os.path.join(self.data, pkc)

    def pid_of(self, what, pkc=PKC):
        """The pid in <pkc>/<what>/*.pid (what: broker-0, lb), or None."""
        for path in glob.glob(os.path.join(self.pkc_dir(pkc), what, "*.pid")):
            with open(path) as f:
                return int(f.read().split()[0])
        return None

    def data_plane_pids(self):
        """Every pid in a pid file under the data dir whose process is ours and alive."""
        pids = []
        for path in glob.glob(os.path.join(self.data, "pkc-*", "*", "*.pid")):
            try:
                with open(path) as f:
                    pid = int(f.read().split()[0])
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
            except (OSError, ValueError, IndexError):
                continue
            if len(cmd) > 1 and cmd[1] in (b"broker", b"lb") and b"stratus" in cmd[0]:
                pids.append(pid)
        return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class StatusReader:
    """Reads stratus.status from the beginning on a thread: [(key, dict)]."""

    def __init__(self, bootstrap):
        self.items = []
        self.cond = threading.Condition()
        self.stopped = False
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "status-reader",
                           "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        self.c.assign([TopicPartition("stratus.status", 0, 0)])
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopped:
            for m in self.c.consume(100, 0.1):
                if m.error() or m.value() is None:
                    continue
                with self.cond:
                    self.items.append((m.key().decode(), json.loads(m.value())))
                    self.cond.notify_all()

    def close(self):
        self.stopped = True
        self.t.join(5)
        self.c.close()

    def of(self, key):
        with self.cond:
            return [v for k, v in self.items if k == key]

    def wait(self, pred, key=PKC, timeout=30, what="status"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for k, v in self.items:
                    if k == key and pred(v):
                        return v
                left = deadline - time.monotonic()
                if left <= 0:
                    last = [v for k, v in self.items if k == key][-3:]
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last {last}")
                self.cond.wait(min(left, 0.2))

    def wait_new(self, pred, since, key=PKC, timeout=30, what="status"):
        """Like wait(), for statuses after the first <since> items."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for k, v in self.items[since:]:
                    if k == key and pred(v):
                        return v
                left = deadline - time.monotonic()
                if left <= 0:
                    last = [v for k, v in self.items if k == key][-3:]
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last {last}")
                self.cond.wait(min(left, 0.2))

    def count(self):
        with self.cond:
            return len(self.items)


@pytest.fixture
def cp(broker_factory):
    """The control-plane broker with the satellite's topics."""
    b = broker_factory()
    create_topic(b.bootstrap, f"psc.{SAT_ID}", 1)
    create_topic(b.bootstrap, "stratus.status", 1)
    return b


@pytest.fixture
def env(cp, workdir, request):
    sat = Satellite(workdir, cp.bootstrap)
    status = StatusReader(cp.bootstrap)
    producer = Producer({"bootstrap.servers": cp.bootstrap, "enable.idempotence": True})

    def send(doc, key=PKC):
        producer.produce(f"psc.{SAT_ID}", key=key.encode(), value=None if doc is None else json.dumps(doc).encode())
        assert producer.flush(10) == 0

    e = type("Env", (), {})()
    e.cp, e.sat, e.status, e.send = cp, sat, status, send
    yield e
    status.close()
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    sat.stop()
    # The data plane outlives the satellite by design: end it by pid.
    for pid in sat.data_plane_pids():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in sat.data_plane_pids():
        wait_until(lambda: not alive(pid), 15, f"pid {pid} to exit")
    logs = {sat.log_path: sat.log()}
    for path in glob.glob(os.path.join(sat.data, "pkc-*", "*", "*.log")):
        with open(path, "rb") as f:
            logs[path] = f.read().decode(errors="replace")
    bad = [p for p, text in logs.items() if any(s in text for s in SANITIZER)]
    if failed or bad:
        for p, text in logs.items():
            print(f"=== {p}\n{text[-15000:]}")
    if bad:
        pytest.fail(f"sanitizer report in {bad}")


def sasl_conf(bootstrap, user, secret, mech="PLAIN"):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": mech,
            "sasl.username": user, "sasl.password": secret}


def running(v):
    return v.get("phase") == "running"


def provision(e, keys={"KEYA": "secret-a"}, generation=1, **kw):
    e.send(psc_doc(generation, keys, **kw))
    e.sat.start()
    st = e.status.wait(lambda v: running(v) and v.get("observed_generation") == generation, timeout=30,
                       what="phase running")
    return st


def produce_consume(bootstrap, user, secret, topic, n=20, mech="PLAIN"):
    p = Producer(dict(sasl_conf(bootstrap, user, secret, mech), **{"enable.idempotence": True}))
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert p.flush(30) == 0
    c = Consumer(dict(sasl_conf(bootstrap, user, secret, mech), **{
        "group.id": "g-" + topic, "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        for m in c.consume(100, 0.5):
            assert m.error() is None, m.error()
            got.append(m.value())
    c.close()
    assert sorted(got) == sorted(b"v%d" % i for i in range(n))


def key_works(bootstrap, user, secret, timeout=2.0):
    """Whether <user>/<secret> authenticates through <bootstrap> (a Metadata request)."""
    p = Producer(dict(sasl_conf(bootstrap, user, secret), **{"socket.timeout.ms": 1000,
                                                              "reconnect.backoff.ms": 20}))
    try:
        p.list_topics(timeout=timeout)
        return True
    except Exception:
        return False


def test_satellite_reconciles_spec(env):
    st = provision(env)
    assert st["bootstrap"].startswith("127.0.0.1:")
    assert st["lb_healthy"] is True
    assert st["satellite"] == SAT_ID and st["revision"] == "rev-1"
    [b] = st["brokers"]
    assert b["healthy"] and b["pid"] == env.sat.pid_of("broker-0") and b["restarts"] == 0
    # The layout of docs/satellite.md.
    d = env.sat.pkc_dir()
    for f in ("broker-0/server.properties", "broker-0/tenants.json", "broker-0/log", "lb/lb.conf"):
        assert os.path.exists(os.path.join(d, f)), f
    props = open(os.path.join(d, "broker-0/server.properties")).read()
    assert "listener.security.protocol.map=INTERNAL:PLAINTEXT,CLIENT:SASL_PLAINTEXT" in props
    assert f"CLIENT://{b['address']}" in props  # advertises its lb listener
    assert "num.partitions=1" in props and "node.id=0" in props
    state = json.load(open(os.path.join(env.sat.data, "satellites", SAT_ID, "state.json")))
    assert state["pkcs"][PKC]["applied_generation"] == 1
    # Heartbeats keyed by the satellite id.
    hb = env.status.wait(lambda v: v.get("satellite") == SAT_ID, key=SAT_ID, what="heartbeat")
    assert hb["region"] == "test"
    # Real clients over SASL through the bootstrap listener.
    produce_consume(st["bootstrap"], "KEYA", "secret-a", "orders")
    produce_consume(st["bootstrap"], "KEYA", "secret-a", "orders-scram", mech="SCRAM-SHA-256")
    assert not key_works(st["bootstrap"], "KEYA", "wrong")
    if shutil.which("kcat"):
        args = ["kcat", "-b", st["bootstrap"], "-X", "security.protocol=SASL_PLAINTEXT", "-X",
                "sasl.mechanisms=PLAIN", "-X", "sasl.username=KEYA", "-X", "sasl.password=secret-a"]
        subprocess.run(args + ["-P", "-t", "kcat-topic"], input=b"one\ntwo\n", check=True, timeout=30)
        out = subprocess.run(args + ["-C", "-t", "kcat-topic", "-o", "beginning", "-c", "2", "-e"],
                             capture_output=True, check=True, timeout=30).stdout
        assert out.split() == [b"one", b"two"]


def test_tenants_change_applied_without_restart(env):
    st = provision(env)
    pid = st["brokers"][0]["pid"]
    lb_pid = env.sat.pid_of("lb")
    props = os.path.join(env.sat.pkc_dir(), "broker-0/server.properties")
    props_mtime = os.stat(props).st_mtime_ns
    lb_conf_mtime = os.stat(os.path.join(env.sat.pkc_dir(), "lb/lb.conf")).st_mtime_ns
    t0 = time.monotonic()
    env.send(psc_doc(2, {"KEYA": "secret-a", "KEYB": "secret-b"}))
    wait_until(lambda: key_works(st["bootstrap"], "KEYB", "secret-b", timeout=1.0), 5, "KEYB to work")
    took = time.monotonic() - t0
    assert took < 1.0, f"new key usable after {took:.2f}s"
    st2 = env.status.wait(lambda v: v.get("observed_generation") == 2 and running(v), what="generation 2")
    assert st2["brokers"][0]["pid"] == pid and alive(pid)
    assert env.sat.pid_of("lb") == lb_pid
    assert os.stat(props).st_mtime_ns == props_mtime, "server.properties not rewritten"
    assert os.stat(os.path.join(env.sat.pkc_dir(), "lb/lb.conf")).st_mtime_ns == lb_conf_mtime
    assert "step=write-tenants" in env.sat.log() and "step=restart-broker" not in env.sat.log()
    # Removing the key: refused again, still no restart.
    env.send(psc_doc(3, {"KEYB": "secret-b"}))
    wait_until(lambda: not key_works(st["bootstrap"], "KEYA", "secret-a", timeout=1.0), 5, "KEYA refused")
    assert key_works(st["bootstrap"], "KEYB", "secret-b")
    assert alive(pid) and env.sat.pid_of("broker-0") == pid


def test_old_or_duplicated_psc_changes_nothing(env):
    provision(env)
    env.send(psc_doc(2, {"KEYA": "secret-a", "KEYB": "secret-b"}))
    st = env.status.wait(lambda v: v.get("observed_generation") == 2 and running(v), what="generation 2")
    d = env.sat.pkc_dir()
    files = ["broker-0/server.properties", "broker-0/tenants.json", "lb/lb.conf"]

    def snapshot():
        return {f: (os.stat(os.path.join(d, f)).st_mtime_ns, open(os.path.join(d, f)).read()) for f in files}
    before = snapshot()
    pids = (env.sat.pid_of("broker-0"), env.sat.pid_of("lb"))
    ignored = env.sat.log().count("ignored (have generation=")
    env.send(psc_doc(1, {"KEYC": "secret-c"}))                    # older
    env.send(psc_doc(2, {"KEYD": "secret-d"}))                    # same generation, other content
    env.send(psc_doc(2, {"KEYA": "secret-a", "KEYB": "secret-b"}))  # exact duplicate
    wait_until(lambda: env.sat.log().count("ignored (have generation=") >= ignored + 3, 10, "3 PSCs ignored")
    since = env.status.count()
    env.status.wait_new(running, since, what="a status after the injected PSCs")
    assert snapshot() == before
    assert (env.sat.pid_of("broker-0"), env.sat.pid_of("lb")) == pids and all(alive(p) for p in pids)
    assert not key_works(st["bootstrap"], "KEYC", "secret-c", timeout=1.0)
    assert key_works(st["bootstrap"], "KEYB", "secret-b")
    # A restarted satellite reading the topic from the start changes nothing either.
    env.sat.stop()
    env.sat.start()
    wait_until(lambda: "read to its end" in env.sat.log().rsplit("--- start #2", 1)[1], 20, "caught up")
    since = env.status.count()
    env.status.wait_new(lambda v: running(v) and v["observed_generation"] == 2, since, what="running after restart")
    assert snapshot() == before and (env.sat.pid_of("broker-0"), env.sat.pid_of("lb")) == pids


def test_satellite_kill9_keeps_data_plane_and_adopts(env):
    st = provision(env)
    pids = (env.sat.pid_of("broker-0"), env.sat.pid_of("lb"))
    failures, delivered = [], [0]

    def on_delivery(err, msg):
        if err:
            failures.append(err)
        else:
            delivered[0] += 1
    p = Producer(dict(sasl_conf(st["bootstrap"], "KEYA", "secret-a"), **{"enable.idempotence": True,
                                                                         "linger.ms": 5}))
    stop = threading.Event()

    def run():
        i = 0
        while not stop.is_set():
            p.produce("steady", value=b"%d" % i, on_delivery=on_delivery)
            p.poll(0.005)
            i += 1
    t = threading.Thread(target=run)
    t.start()
    try:
        wait_until(lambda: delivered[0] > 200, 20, "deliveries before the kill")
        env.sat.stop(signal.SIGKILL)
        n = delivered[0]
        wait_until(lambda: delivered[0] > n + 200, 20, "deliveries with the satellite dead")
        assert all(alive(x) for x in pids)
        env.sat.start()
        since = env.status.count()
        env.status.wait_new(running, since, what="running after the satellite restart")
        n = delivered[0]
        wait_until(lambda: delivered[0] > n + 200, 20, "deliveries after the restart")
    finally:
        stop.set()
        t.join(10)
        assert p.flush(30) == 0
    assert failures == []
    log = env.sat.log().rsplit("--- start #2", 1)[1]
    assert "broker=0 adopted pid=%d" % pids[0] in log and "lb adopted pid=%d" % pids[1] in log
    assert "step=start-broker" not in log and "step=start-lb" not in log
    assert (env.sat.pid_of("broker-0"), env.sat.pid_of("lb")) == pids


def test_broker_kill9_restarted_degraded_then_running(env):
    st = provision(env)
    pid = st["brokers"][0]["pid"]
    since = env.status.count()
    os.kill(pid, signal.SIGKILL)
    env.status.wait_new(lambda v: v["phase"] == "degraded", since, what="degraded")
    st2 = env.status.wait_new(lambda v: running(v) and v["brokers"][0]["pid"] != pid, since, what="running again")
    assert st2["brokers"][0]["restarts"] == 1
    new_pid = st2["brokers"][0]["pid"]
    assert alive(new_pid) and env.sat.pid_of("broker-0") == new_pid
    produce_consume(st2["bootstrap"], "KEYA", "secret-a", "after-restart")


@pytest.mark.parametrize("how", ["deleted", "tombstone"])
def test_deletion_stops_processes_and_removes_data(env, how):
    st = provision(env)
    produce_consume(st["bootstrap"], "KEYA", "secret-a", "doomed", n=5)
    pids = env.sat.data_plane_pids()
    assert len(pids) == 2
    env.send(psc_doc(2, {"KEYA": "secret-a"}, deleted=True) if how == "deleted" else None)
    env.status.wait(lambda v: v["phase"] == "deleted", what="phase deleted")
    assert not any(alive(p) for p in pids)
    assert not os.path.exists(env.sat.pkc_dir())
    state = json.load(open(os.path.join(env.sat.data, "satellites", SAT_ID, "state.json")))
    assert PKC not in state["pkcs"]
    assert not key_works(st["bootstrap"], "KEYA", "secret-a", timeout=1.0)


def test_tombstone_while_satellite_down_deletes_after_restart(env):
    """The satellite is down while its PKC is deleted: the restarted satellite adopts the
    processes, reads the topic to its end, and only then tears the PKC down."""
    provision(env)
    pids = env.sat.data_plane_pids()
    env.sat.stop()
    env.send(None)  # tombstone
    env.sat.start()
    env.status.wait(lambda v: v["phase"] == "deleted", what="deleted after catching up")
    assert not any(alive(p) for p in pids)


def test_bad_arguments_are_refused_with_a_reason(tmp_path):
    r = subprocess.run([STRATUS_BIN, "satellite", "--region", "test"], capture_output=True, timeout=20)
    assert r.returncode == 2 and b"--data" in r.stderr
    r = subprocess.run([STRATUS_BIN, "satellite", "--help"], capture_output=True, timeout=20)
    assert r.returncode == 0 and b"--stop-on-exit" in r.stdout


def test_broker_sighup_reloads_tenants_now(broker_factory, workdir):
    tenants = os.path.join(workdir, "tenants.json")
    write_tenants(tenants, [{"id": LKC, "api_keys": [key_entry("KEYA", "secret-a")]}])
    port, sasl_port = free_port(), free_port()
    b = broker_factory(port=port, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "tenants.file": tenants, "connection.failed.authentication.delay.ms": "10"})
    bootstrap = f"127.0.0.1:{sasl_port}"
    assert key_works(bootstrap, "KEYA", "secret-a")
    for i in range(3):
        key = f"KEYNEW{i}"
        reloads = b.log().count("tenants file reloaded")
        write_tenants(tenants, [{"id": LKC, "api_keys": [key_entry("KEYA", "secret-a"),
                                                         key_entry(key, "s")]}])
        t0 = time.monotonic()
        b.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: b.log().count("tenants file reloaded") > reloads, 2, "reload")
        took = time.monotonic() - t0
        assert took < 0.3, f"reload {took:.2f}s after SIGHUP"
        assert key_works(bootstrap, key, "s")
    assert b.log().count("SIGHUP: checking tenants.file") == 3
    # A SIGHUP without a change reloads nothing and keeps the broker running.
    reloads = b.log().count("tenants file reloaded")
    b.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: b.log().count("SIGHUP: checking tenants.file") == 4, 2, "SIGHUP seen")
    assert b.log().count("tenants file reloaded") == reloads and b.alive()


def test_port_taken_by_another_process_fails_then_recovers(env):
    import socket
    st = provision(env)
    pid = st["brokers"][0]["pid"]
    env.sat.stop()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 10, "broker gone")
    state = json.load(open(os.path.join(env.sat.data, "satellites", SAT_ID, "state.json")))
    port = state["pkcs"][PKC]["brokers"][0]["internal_port"]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        since = env.status.count()
        env.sat.start()
        failed = env.status.wait_new(lambda v: v["phase"] == "failed", since, what="phase failed")
        assert str(port) in failed["message"] and "in use" in failed["message"]
    finally:
        squatter.close()
    st2 = env.status.wait_new(running, since, what="running once the port is free")
    assert st2["brokers"][0]["pid"] != pid


def test_stop_on_exit_stops_the_data_plane(env):
    env.send(psc_doc(1, {"KEYA": "secret-a"}))
    env.sat.start(extra=("--stop-on-exit",))
    env.status.wait(running, what="running")
    pids = env.sat.data_plane_pids()
    assert len(pids) == 2
    assert env.sat.stop() == 0
    assert not any(alive(p) for p in pids)
    assert os.path.exists(env.sat.pkc_dir()), "data is kept"


LKC_B = "lkc-bbbbbb"
TWO = {LKC: {"KEYA": "secret-a"}, LKC_B: {"KEYB": "secret-b"}}


def internal_view(sat, pkc=PKC):
    """(topics, groups) as the operator sees them on broker 0's INTERNAL listener (every
    stored name, tenants' prefixes included)."""
    from confluent_kafka.admin import AdminClient
    state = json.load(open(os.path.join(sat.data, "satellites", SAT_ID, "state.json")))
    port = state["pkcs"][pkc]["brokers"][0]["internal_port"]
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    topics = set(admin.list_topics(timeout=10).topics)
    groups = {g.id for g in admin.list_groups(timeout=10)}
    return topics, groups


def tenant_dirs(sat, lkc, pkc=PKC):
    return glob.glob(os.path.join(sat.pkc_dir(pkc), "broker-*", "log", f"{lkc}_*"))


def use_tenant(bootstrap, user, secret, topic="orders", group="app", stay=False):
    """Produces to <topic> and consumes it with <group> (offsets committed); with <stay> the
    consumer is returned still in the group (a member the broker must time out)."""
    produce_consume(bootstrap, user, secret, topic, n=5)
    c = Consumer(dict(sasl_conf(bootstrap, user, secret), **{
        "group.id": group, "auto.offset.reset": "earliest", "session.timeout.ms": 6000}))
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < 5 and time.monotonic() < deadline:
        got += sum(1 for m in c.consume(10, 0.5) if m.error() is None)
    assert got == 5
    c.commit(asynchronous=False)
    if stay:
        return c
    c.close()
    return None


def test_removed_tenant_data_is_deleted_and_other_tenants_keep_theirs(env):
    st = provision(env, tenants=TWO)
    use_tenant(st["bootstrap"], "KEYA", "secret-a")
    member = use_tenant(st["bootstrap"], "KEYB", "secret-b", stay=True)
    use_tenant(st["bootstrap"], "KEYB", "secret-b", topic="events", group="idle")
    topics, groups = internal_view(env.sat)
    assert {f"{LKC}_orders", f"{LKC_B}_orders", f"{LKC_B}_events"} <= topics
    assert {f"{LKC}_app", f"{LKC_B}_app", f"{LKC_B}_idle"} <= groups
    assert tenant_dirs(env.sat, LKC_B)
    pid = st["brokers"][0]["pid"]
    try:
        # lkc-bbbbbb leaves the PKC: its key goes, then its topics and groups.
        env.send(psc_doc(2, None, tenants={LKC: {"KEYA": "secret-a"}}))
        env.status.wait(lambda v: v.get("observed_generation") == 2 and running(v), what="generation 2")
        wait_until(lambda: not tenant_dirs(env.sat, LKC_B), 10, f"the partition dirs of {LKC_B} to go")
        topics, groups = internal_view(env.sat)
        assert not any(t.startswith(LKC_B) for t in topics), topics
        assert f"{LKC_B}_idle" not in groups, groups
        # The group with a live member goes once the broker timed the member out (its
        # connection closed with its key); meanwhile the PKC is not degraded for it.
        wait_until(lambda: f"{LKC_B}_app" not in internal_view(env.sat)[1], 20, f"group {LKC_B}_app to go")
        assert "still has members" in env.sat.log()
    finally:
        member.close()
    # The tenant that stays keeps its topic, its group and its committed offsets.
    topics, groups = internal_view(env.sat)
    assert f"{LKC}_orders" in topics and f"{LKC}_app" in groups
    assert tenant_dirs(env.sat, LKC)
    c = Consumer(dict(sasl_conf(st["bootstrap"], "KEYA", "secret-a"), **{"group.id": "app"}))
    try:
        [tp] = c.committed([TopicPartition("orders", 0)], timeout=10)
        assert tp.offset == 5
    finally:
        c.close()
    assert env.status.of(PKC)[-1]["phase"] == "running"
    assert alive(pid) and env.sat.pid_of("broker-0") == pid, "no restart"
    # Idempotent: a restarted satellite sweeps again and finds nothing to delete.
    env.sat.stop()
    env.sat.start()
    wait_until(lambda: "step=delete-tenant-data topics=0 groups=0" in env.sat.log().rsplit("--- start #2", 1)[1],
               20, "the sweep after the restart")
    assert f"{LKC}_orders" in internal_view(env.sat)[0]


def test_tenant_data_that_cannot_be_deleted_is_degraded_then_retried(env):
    no_delete = {"num.partitions": "1", "delete.topic.enable": "false"}
    st = provision(env, tenants=TWO, broker_config=no_delete)
    use_tenant(st["bootstrap"], "KEYB", "secret-b")
    since = env.status.count()
    env.send(psc_doc(2, None, tenants={LKC: {"KEYA": "secret-a"}}, broker_config=no_delete))
    bad = env.status.wait_new(lambda v: v["phase"] == "degraded", since, what="degraded for the data left")
    assert "TOPIC_DELETION_DISABLED" in bad["message"] and f"{LKC_B}_orders" in bad["message"], bad
    assert bad["observed_generation"] == 2, "the tenant's removal itself is applied"
    assert not key_works(st["bootstrap"], "KEYB", "secret-b", timeout=1.0)
    assert tenant_dirs(env.sat, LKC_B)
    # A broker configuration that allows deletion: restarted, retried, running, data gone.
    env.send(psc_doc(3, None, tenants={LKC: {"KEYA": "secret-a"}}))
    env.status.wait_new(lambda v: running(v) and v["observed_generation"] == 3, since, what="running at 3")
    wait_until(lambda: not tenant_dirs(env.sat, LKC_B), 10, f"the data of {LKC_B} to go")
