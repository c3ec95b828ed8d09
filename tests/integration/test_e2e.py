"""End to end through `stratus up`, the REST API and real Kafka clients: two logical
clusters isolated on one physical cluster (confluent_kafka and kafka-python), and the
faults of the control plane: kill -9 of the mothership in the middle of ten creations
(retried with their Idempotency-Keys: each cluster made once), of the satellite under a
running producer (no failed delivery, brokers adopted, not restarted) and of a tenant
broker (status degraded, then running; the producer recovers). Every wait has a deadline."""
import glob
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import wait_until
from test_up import Up, have, up  # noqa: F401  (the `up` fixture: `stratus up` in a temp dir)

pytestmark = pytest.mark.skipif(not (have("mothership") and have("satellite")),
                                reason="`stratus mothership` and `stratus satellite` are not in this build")


class Api:
    """The mothership's REST API with the endpoint and token `stratus up` wrote."""

    def __init__(self, u):
        conf = json.load(open(u.config))
        self.base, self.token = conf["endpoint"], conf["token"]

    def call(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers, json). Connection errors raise (the caller may retry)."""
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, dict(r.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, dict(e.headers), json.loads(raw) if raw else None

    def get(self, path):
        status, _, doc = self.call("GET", path)
        assert status == 200, (path, status, doc)
        return doc

    def create(self, name, ingress=5, partitions=10, key=None):
        status, _, doc = self.call("POST", "/v1/clusters",
                                   {"name": name, "region": "local", "type": "basic", "ingress_mbps": ingress,
                                    "egress_mbps": ingress, "partitions": partitions},
                                   headers={"Idempotency-Key": key} if key else None)
        assert status == 202, (status, doc)
        return doc

    def wait_running(self, lkc_id, timeout=60):
        def running():
            doc = self.get(f"/v1/clusters/{lkc_id}")
            return doc if doc["status"]["phase"] == "running" else None
        wait_until(running, timeout, f"{lkc_id} running")
        return self.get(f"/v1/clusters/{lkc_id}")

    def api_key(self, lkc_id):
        status, _, doc = self.call("POST", f"/v1/clusters/{lkc_id}/api-keys")
        assert status == 201, (status, doc)
        return doc["key"], doc["secret"]

    def clusters(self):
        return self.get("/v1/clusters?page_size=500")["clusters"]

    def pkcs(self):
        return self.get("/v1/physical-clusters?page_size=500")["physical_clusters"]


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def pid_of(u, sub):
    """The pid of `stratus <sub>` started by <u> (its command line names the data dir)."""
    found = [p for p in u.pids() if len(cmdline(p)) > 1 and cmdline(p)[1] == sub.encode()]
    return found[0] if len(found) == 1 else None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def data_plane_pids(u, pkc):
    """{"broker-0": pid, "lb": pid} from the pid files of <pkc>."""
    out = {}
    for path in glob.glob(os.path.join(u.data, pkc, "*", "*.pid")):
        with open(path) as f:
            out[os.path.basename(os.path.dirname(path))] = int(f.read().split()[0])
    return out


def rd_conf(bootstrap, key, secret, **extra):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": key, "sasl.password": secret, **extra}


def kp_conf(bootstrap, key, secret):
    return {"bootstrap_servers": bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
            "sasl_plain_username": key, "sasl_plain_password": secret, "request_timeout_ms": 15000,
            "api_version_auto_timeout_ms": 10000}


class SteadyProducer:
    """A confluent_kafka idempotent producer on a thread, counting deliveries and failures."""

    def __init__(self, bootstrap, key, secret, topic):
        from confluent_kafka import Producer
        self.p = Producer(rd_conf(bootstrap, key, secret, **{"enable.idempotence": True, "linger.ms": 5}))
        self.topic, self.delivered, self.failures = topic, 0, []
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _on_delivery(self, err, msg):
        if err:
            self.failures.append(err)
        else:
            self.delivered += 1

    def _run(self):
        i = 0
        while not self.stop_ev.is_set():
            self.p.produce(self.topic, value=b"%d" % i, on_delivery=self._on_delivery)
            self.p.poll(0.005)
            i += 1

    def wait_more(self, n, timeout, what):
        start = self.delivered
        wait_until(lambda: self.delivered >= start + n, timeout, what)

    def stop(self):
        self.stop_ev.set()
        self.t.join(10)
        assert self.p.flush(60) == 0


# ---- (a) two LKCs on one PKC -----------------------------------------------------------


def confluent_consume(bootstrap, key, secret, topic, group, expected, timeout=30):
    from confluent_kafka import Consumer
    c = Consumer(rd_conf(bootstrap, key, secret, **{"group.id": group, "auto.offset.reset": "earliest",
                                                     "enable.auto.commit": False}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        for m in c.consume(100, 0.5):
            if m.error() is None:
                got.append(m.value())
    end = time.monotonic() + 1.0  # nothing beyond this tenant's records arrives
    while time.monotonic() < end:
        got += [m.value() for m in c.consume(100, 0.2) if m.error() is None]
    c.commit(asynchronous=False)
    c.close()
    return got


def test_e2e_two_lkcs_on_one_pkc_are_isolated(up):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    up.start()
    api = Api(up)
    a, b = api.create("tenant-a"), api.create("tenant-b")
    a, b = api.wait_running(a["id"]), api.wait_running(b["id"])
    assert a["status"]["pkc_id"] == b["status"]["pkc_id"], (a["status"], b["status"])
    bootstrap = a["status"]["bootstrap"]
    assert b["status"]["bootstrap"] == bootstrap, "one bootstrap address for both"
    creds = {a["id"]: api.api_key(a["id"]), b["id"]: api.api_key(b["id"])}
    sent = {}
    for i, (lkc, (key, secret)) in enumerate(creds.items()):
        values = [b"%s-rd-%d" % (lkc.encode(), j) for j in range(100 + 50 * i)]
        p = Producer(rd_conf(bootstrap, key, secret, **{"enable.idempotence": True}))
        for v in values:
            p.produce("orders", v)
        p.produce(f"only-{lkc}", b"x")
        assert p.flush(30) == 0
        sent[lkc] = values
    for lkc, (key, secret) in creds.items():
        got = confluent_consume(bootstrap, key, secret, "orders", "app", len(sent[lkc]))
        assert sorted(got) == sorted(sent[lkc]), f"{lkc} sees only its own records"
    # kafka-python: more records, then group "app" resumes from this tenant's own offsets.
    for lkc, (key, secret) in creds.items():
        p = KafkaProducer(**kp_conf(bootstrap, key, secret))
        more = [b"%s-kp-%d" % (lkc.encode(), j) for j in range(30)]
        for v in more:
            p.send("orders", v)
        p.flush(30)
        p.close()
        c = KafkaConsumer("orders", group_id="app", auto_offset_reset="earliest", consumer_timeout_ms=6000,
                          **kp_conf(bootstrap, key, secret))
        got = [m.value for m in c]
        c.commit()
        c.close()
        assert sorted(got) == sorted(more), f"{lkc} (kafka-python) resumes at its own committed offsets"
    # Metadata of one never lists the other's topics, with either client.
    for lkc, (key, secret) in creds.items():
        md = AdminClient(rd_conf(bootstrap, key, secret)).list_topics(timeout=10)
        assert set(md.topics) == {"orders", f"only-{lkc}"}, md.topics
        assert md.cluster_id == lkc
        admin = KafkaAdminClient(**kp_conf(bootstrap, key, secret))
        try:
            assert set(admin.list_topics()) == {"orders", f"only-{lkc}"}
            assert [g[0] for g in admin.list_consumer_groups()] == ["app"]
        finally:
            admin.close()
    pkc = api.get(f"/v1/physical-clusters/{a['status']['pkc_id']}")
    assert sorted(pkc["tenants"]) == sorted(creds)


# ---- (b) kill -9 the mothership in the middle of ten creations -------------------------


def test_e2e_mothership_kill9_mid_creation_converges_each_cluster_once(up):
    up.start()
    api = Api(up)
    old_pid = pid_of(up, "mothership")
    assert old_pid
    # 25 MB/s each: four fit the 100 MB/s of a multi-tenant PKC, so ten need three PKCs.
    n, ingress, per_pkc = 10, 25, 4
    keys = [f"e2e-{uuid.uuid4()}" for _ in range(n)]
    bodies = [{"name": f"burst-{i}", "region": "local", "type": "basic", "ingress_mbps": ingress,
               "egress_mbps": ingress, "partitions": 10} for i in range(n)]
    ids, failed_attempts, answered = [None] * n, [0] * n, threading.Semaphore(0)

    def create(i):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _, doc = api.call("POST", "/v1/clusters", bodies[i],
                                          headers={"Idempotency-Key": keys[i]}, timeout=5)
            except OSError:
                failed_attempts[i] += 1  # refused, reset, timed out: retried with the same key
                time.sleep(0.05)
                continue
            assert status == 202, (status, doc)
            ids[i] = doc["id"]
            answered.release()
            return

    threads = []
    for i in range(n):
        t = threading.Thread(target=create, args=(i,), daemon=True)
        threads.append(t)
        t.start()
        if i == 3:
            for _ in range(2):
                assert answered.acquire(timeout=20)
            os.kill(old_pid, signal.SIGKILL)  # with requests in flight
        time.sleep(0.02)
    for t in threads:
        t.join(70)
    assert all(ids), f"every creation answered after retries: {ids}"
    print(f"attempts refused or cut by the kill, per request: {failed_attempts}")
    assert sum(failed_attempts) >= 1, "the kill hit requests in flight or after it"
    new_pid = pid_of(up, "mothership")
    assert new_pid and new_pid != old_pid, "`stratus up` restarted the mothership"
    # Each key made exactly one cluster; a retry now replays the stored answer.
    assert len(set(ids)) == n
    for i in (0, n - 1):
        status, headers, doc = api.call("POST", "/v1/clusters", bodies[i], headers={"Idempotency-Key": keys[i]})
        assert status == 202 and doc["id"] == ids[i]
        assert headers.get("Idempotent-Replayed") == "true"
    listed = api.clusters()
    assert sorted(c["id"] for c in listed) == sorted(ids), "the list holds the ten, nothing twice"

    def all_running():
        return all(c["status"]["phase"] == "running" for c in api.clusters())
    wait_until(all_running, 90, "all ten clusters running")
    pkcs = api.pkcs()
    need = -(-n // per_pkc)
    assert len(pkcs) == need, f"{len(pkcs)} PKCs for {n} clusters of {ingress} MB/s: {need} needed"
    tenants = [t for p in pkcs for t in api.get(f"/v1/physical-clusters/{p['id']}")["tenants"]]
    assert sorted(tenants) == sorted(ids), "each cluster on exactly one PKC"


# ---- (c) kill -9 the satellite under a running producer -------------------------------


def test_e2e_satellite_kill9_keeps_producers_and_brokers(up):
    up.start()
    api = Api(up)
    c = api.wait_running(api.create("steady")["id"])
    key, secret = api.api_key(c["id"])
    pkc = c["status"]["pkc_id"]
    before = data_plane_pids(up, pkc)
    assert set(before) == {"broker-0", "lb"} and all(alive(p) for p in before.values())
    old_sat = pid_of(up, "satellite")
    prod = SteadyProducer(c["status"]["bootstrap"], key, secret, "steady")
    try:
        prod.wait_more(200, 20, "deliveries before the kill")
        os.kill(old_sat, signal.SIGKILL)
        prod.wait_more(200, 20, "deliveries while the satellite is dead or restarting")
        wait_until(lambda: pid_of(up, "satellite") not in (None, old_sat), 20, "the satellite restarted")
        log = os.path.join(up.data, "logs", "satellite.log")
        wait_until(lambda: "adopted pid=%d" % before["broker-0"] in open(log, errors="replace").read(), 20,
                   "the restarted satellite adopting the broker")

        def fresh_and_running():
            sats = api.get("/v1/satellites")["satellites"]
            return (all(not s["stale"] for s in sats) and
                    api.get(f"/v1/physical-clusters/{pkc}")["phase"] == "running")
        wait_until(fresh_and_running, 30, "a fresh satellite heartbeat and the PKC running")
        prod.wait_more(200, 20, "deliveries after the restart")
    finally:
        prod.stop()
    assert prod.failures == [], prod.failures[:5]
    assert data_plane_pids(up, pkc) == before and all(alive(p) for p in before.values()), "no broker restarted"
    assert api.get(f"/v1/clusters/{c['id']}")["status"]["phase"] == "running"


# ---- (d) kill -9 a tenant broker --------------------------------------------------------


def test_e2e_broker_kill9_degraded_then_running_and_producer_recovers(up):
    up.start()
    api = Api(up)
    c = api.wait_running(api.create("healing")["id"])
    key, secret = api.api_key(c["id"])
    pkc = c["status"]["pkc_id"]
    broker = data_plane_pids(up, pkc)["broker-0"]
    phases, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                p = api.get(f"/v1/physical-clusters/{pkc}")["phase"]
                lkc = api.get(f"/v1/clusters/{c['id']}")["status"]["phase"]
            except (OSError, AssertionError):
                continue
            if not phases or phases[-1] != (p, lkc):
                phases.append((p, lkc))
            time.sleep(0.01)

    prod = SteadyProducer(c["status"]["bootstrap"], key, secret, "healing")
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        prod.wait_more(200, 20, "deliveries before the kill")
        watcher.start()
        wait_until(lambda: phases, 10, "a first status")
        os.kill(broker, signal.SIGKILL)
        wait_until(lambda: ("degraded", "degraded") in phases, 20, f"degraded after the kill: {phases}")
        wait_until(lambda: phases[-1] == ("running", "running") and
                   phases.index(("degraded", "degraded")) < len(phases) - 1, 30, f"running again: {phases}")
        print(f"phases (pkc, lkc) seen: {phases}")
        new = data_plane_pids(up, pkc)["broker-0"]
        assert new != broker and alive(new), "the broker was restarted"
        prod.wait_more(200, 30, "deliveries after the broker came back")
    finally:
        stop.set()
        prod.stop()
    assert prod.failures == [], prod.failures[:5]
