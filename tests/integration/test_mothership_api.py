"""`stratus mothership` through its REST API, with a real control-plane broker (`stratus
broker`) and the real mothership process. The test plays the satellite: it produces
heartbeats and status documents to stratus.status and reads PSCs from psc.<satellite>
with confluent_kafka (docs/api.md, docs/psc.md)."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import stat
import subprocess
import threading
import time
import uuid

import pytest

from conftest import STRATUS_BIN, free_port, wait_until

SAT = "sat-local-1"
REGION = "local"


class Mothership:
    def __init__(self, workdir, bootstrap):
        self.workdir = workdir
        self.data = os.path.join(workdir, "msdata")
        self.port = free_port()
        self.bootstrap = bootstrap
        self.log_path = os.path.join(workdir, "mothership.log")
        self.proc = None
        self.token = None

    def start(self):
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen([STRATUS_BIN, "mothership", "--data", self.data, "--listen",
                                      f"127.0.0.1:{self.port}", "--bootstrap", self.bootstrap],
                                     stdout=log, stderr=log, env=env)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"mothership exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return self.request("GET", "/healthz", auth=False)[0] == 200
            except OSError:
                return False
        wait_until(ready, 30, "the mothership to answer /healthz")
        with open(os.path.join(self.data, "mothership", "tokens")) as f:
            self.token = f.read().split()[0]
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("mothership did not stop within 20 s")
        return self.proc.returncode if self.proc else None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def request(self, method, path, body=None, auth=True, token=None, headers=None, raw=None):
        """Returns (status, headers dict with lower-case names, parsed JSON or None)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if auth:
            h["Authorization"] = f"Bearer {token or self.token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, hdrs, (json.loads(text) if text else None)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body if body is not None else {}, **kw)


@pytest.fixture
def control_plane(broker_factory):
    return broker_factory()


@pytest.fixture
def mothership(control_plane, workdir, request):
    ms = Mothership(workdir, control_plane.bootstrap)
    ms.start()
    yield ms
    code = ms.stop()
    log = ms.log()
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        print(f"=== mothership log exit={code}\n{log[-30000:]}")
    if "ERROR: AddressSanitizer" in log or "runtime error:" in log or "LeakSanitizer" in log:
        print(log[-30000:])
        pytest.fail("sanitizer report in the mothership log")


# ---- the test as a satellite ------------------------------------------------------------

def producer(bootstrap):
    from confluent_kafka import Producer
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})


def send(p, key, doc):
    p.produce("stratus.status", key=key.encode(), value=json.dumps(doc).encode())
    assert p.flush(10) == 0


def heartbeat(p, sat=SAT, region=REGION, time_ms=None):
    send(p, sat, {"api_version": "stratus/v1", "kind": "SatelliteHeartbeat", "satellite": sat,
                  "region": region, "version": "test", "time_ms": time_ms or int(time.time() * 1000),
                  "pkcs": 0})


def report(p, pkc, observed_generation, phase="running", bootstrap="127.0.0.1:39092", message=None):
    doc = {"api_version": "stratus/v1", "kind": "PhysicalStatefulClusterStatus", "pkc_id": pkc["id"],
           "satellite": pkc["satellite"], "revision": pkc["revision"],
           "observed_generation": observed_generation, "phase": phase,
           "lb_healthy": True, "time_ms": int(time.time() * 1000),
           "brokers": [{"id": 1, "healthy": phase == "running", "pid": 1234, "restarts": 0,
                        "address": "127.0.0.1:39093"}]}
    if message:
        doc["message"] = message
    if bootstrap:
        doc["bootstrap"] = bootstrap
    send(p, pkc["id"], doc)


def register(ms, p, sat=SAT, region=REGION):
    heartbeat(p, sat, region)
    wait_until(lambda: any(s["id"] == sat for s in ms.get("/v1/satellites")[2]["satellites"]), 20,
               f"satellite {sat} registered")


def read_topic(bootstrap, topic, timeout=20):
    """Every record of partition 0 of <topic> up to its current end: [(key, value or None)]."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        out = []
        if high == 0:
            return out
        c.assign([TopicPartition(topic, 0, 0)])
        while len(out) < high and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                assert m.error() is None, m.error()
                out.append((m.key().decode(), None if m.value() is None else json.loads(m.value())))
        return out
    finally:
        c.close()


def pscs_of(bootstrap, pkc_id, sat=SAT):
    return [v for k, v in read_topic(bootstrap, f"psc.{sat}") if k == pkc_id]


def create(ms, name="orders", type_="basic", ingress=10, egress=30, partitions=100, region=REGION,
           headers=None):
    return ms.post("/v1/clusters", {"name": name, "region": region, "type": type_, "ingress_mbps": ingress,
                                    "egress_mbps": egress, "partitions": partitions}, headers=headers)


def pkc_of(ms, cluster):
    status, _, pkc = ms.get(f"/v1/physical-clusters/{cluster['status']['pkc_id']}")
    assert status == 200, pkc
    return pkc


# ---- tests ------------------------------------------------------------------------------

def test_cluster_create_list_describe_update_delete(mothership, control_plane):
    ms = mothership
    p = producer(control_plane.bootstrap)
    register(ms, p)
    status, hdrs, c = create(ms)
    assert status == 202, c
    assert c["id"].startswith("lkc-") and len(c["id"]) == 10
    assert all(ch in "abcdefghijklmnopqrstuvwxyz234567" for ch in c["id"][4:])
    assert c["status"]["phase"] == "provisioning" and c["status"]["bootstrap"] is None
    assert c["status"]["pkc_id"].startswith("pkc-") and c["status"]["placement_reason"]
    assert hdrs["location"] == f"/v1/clusters/{c['id']}"
    assert hdrs["etag"] == f'"{c["resource_version"]}"'

    status, hdrs, got = ms.get(f"/v1/clusters/{c['id']}")
    assert status == 200 and got["name"] == "orders" and got["partitions"] == 100
    assert hdrs["etag"] == f'"{got["resource_version"]}"'
    status, _, lst = ms.get("/v1/clusters")
    assert status == 200 and [x["id"] for x in lst["clusters"]] == [c["id"]]
    assert "next_page_token" not in lst

    status, hdrs, upd = ms.request("PATCH", f"/v1/clusters/{c['id']}", {"ingress_mbps": 20, "partitions": 200})
    assert status == 200, upd
    assert upd["ingress_mbps"] == 20 and upd["partitions"] == 200 and upd["egress_mbps"] == 30
    assert int(upd["resource_version"]) > int(c["resource_version"])

    pkc = pkc_of(ms, c)
    assert pkc["load"]["ingress_mbps"] == 20 and pkc["tenants"] == [c["id"]]
    status, _, d = ms.request("DELETE", f"/v1/clusters/{c['id']}")
    assert status == 202 and d["status"]["phase"] == "deleting"
    # Still there until the PKC reports the generation without it.
    assert ms.get(f"/v1/clusters/{c['id']}")[0] == 200
    pkc = pkc_of(ms, c)
    assert pkc["tenants"] == [c["id"]] and pkc["load"]["tenants"] == 0
    report(p, pkc, pkc["generation"] - 1)
    time.sleep(0.3)  # an older generation must not complete the deletion
    assert ms.get(f"/v1/clusters/{c['id']}")[0] == 200
    report(p, pkc, pkc["generation"])
    wait_until(lambda: ms.get(f"/v1/clusters/{c['id']}")[0] == 404, 20, "the deleted cluster to be gone")
    # The multi-tenant PKC stays, empty (docs/api.md).
    assert pkc_of(ms, c)["tenants"] == []


def test_validation_errors_name_the_field(mothership, control_plane):
    ms = mothership
    register(ms, producer(control_plane.bootstrap))
    good = {"name": "a", "region": REGION, "type": "basic", "ingress_mbps": 1, "egress_mbps": 1, "partitions": 1}
    cases = [
        ({k: v for k, v in good.items() if k != "name"}, "name", "required"),
        ({**good, "name": "has space"}, "name", "letters"),
        ({**good, "name": "x" * 65}, "name", "64"),
        ({**good, "type": "huge"}, "type", "basic, standard, dedicated"),
        ({**good, "ingress_mbps": -1}, "ingress_mbps", "above 0"),
        ({**good, "egress_mbps": "fast"}, "egress_mbps", "number"),
        ({**good, "partitions": 1.5}, "partitions", "integer"),
        ({**good, "partitions": 0}, "partitions", "1 to"),
        ({**good, "colour": "blue"}, "colour", "unknown field"),
        ({**good, "region": "Upper"}, "region", "lower-case"),
    ]
    for body, field, words in cases:
        status, _, e = ms.post("/v1/clusters", body)
        assert status == 400, (body, e)
        assert e["error"]["code"] == "invalid_argument" and e["error"]["field"] == field, e
        assert words in e["error"]["message"], e
    status, _, e = ms.request("POST", "/v1/clusters", raw=b"{not json")
    assert status == 400 and "not JSON" in e["error"]["message"]
    status, _, e = ms.request("POST", "/v1/clusters", raw=b"[1, 2]")
    assert status == 400 and "object" in e["error"]["message"]
    status, _, e = ms.request("POST", "/v1/clusters", raw=b'{"name": "' + b"x" * 200000 + b'"}')
    assert status == 413 and e["error"]["code"] == "payload_too_large"
    status, _, e = ms.post("/v1/clusters", {**good, "region": "mars"})
    assert status == 422 and e["error"]["field"] == "region"
    assert '"mars"' in e["error"]["message"] and REGION in e["error"]["message"], e
    status, _, e = ms.post("/v1/clusters", {**good, "ingress_mbps": 99999})
    assert status == 422 and e["error"]["field"] == "ingress_mbps", e
    status, _, lst = ms.get("/v1/clusters")
    assert lst["clusters"] == [], "nothing was created by a refused request"
    status, _, c = create(ms)
    status, _, e = ms.request("PATCH", f"/v1/clusters/{c['id']}", {"name": "renamed"})
    assert status == 400 and e["error"]["field"] == "name" and "cannot be changed" in e["error"]["message"]
    status, _, e = ms.request("PATCH", f"/v1/clusters/{c['id']}", {"partitions": -3})
    assert status == 400 and e["error"]["field"] == "partitions"


def test_unknown_ids_and_paths(mothership):
    ms = mothership
    for method, path in [("GET", "/v1/clusters/lkc-zzzzzz"), ("PATCH", "/v1/clusters/lkc-zzzzzz"),
                         ("DELETE", "/v1/clusters/lkc-zzzzzz"), ("GET", "/v1/clusters/lkc-zzzzzz/api-keys"),
                         ("POST", "/v1/clusters/lkc-zzzzzz/api-keys"),
                         ("DELETE", "/v1/clusters/lkc-zzzzzz/api-keys/ABCDEFGHIJKLMNOP"),
                         ("GET", "/v1/physical-clusters/pkc-zzzzzz"), ("GET", "/v1/nothing-here")]:
        body = {} if method in ("POST", "PATCH") else None
        status, _, e = ms.request(method, path, body)
        assert status == 404, (method, path, e)
        assert e["error"]["code"] == "not_found" and e["error"]["message"]
    status, hdrs, e = ms.request("PUT", "/v1/clusters")
    assert status == 405 and e["error"]["code"] == "method_not_allowed"
    assert set(hdrs["allow"].split(", ")) == {"GET", "POST"}


def test_missing_or_wrong_token_is_401(mothership):
    ms = mothership
    mode = stat.S_IMODE(os.stat(os.path.join(ms.data, "mothership", "tokens")).st_mode)
    assert mode == 0o600
    for kw in ({"auth": False}, {"token": "wrong"}, {"auth": False, "headers": {"Authorization": "Basic eDp5"}}):
        status, hdrs, e = ms.get("/v1/clusters", **kw)
        assert status == 401, kw
        assert e["error"]["code"] == "unauthenticated"
        assert hdrs["www-authenticate"].startswith("Bearer")
    # Even unknown paths and mutations say 401 first, revealing nothing.
    assert ms.request("DELETE", "/v1/clusters/lkc-aaaaaa", auth=False)[0] == 401
    assert ms.get("/v1/nothing", auth=False)[0] == 401
    assert ms.get("/healthz", auth=False)[0] == 200
    assert ms.get("/v1/openapi.json", auth=False)[0] == 200


def test_idempotent_retries_return_the_same_cluster(mothership, control_plane):
    ms = mothership
    register(ms, producer(control_plane.bootstrap))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    s1, h1, c1 = create(ms, headers=key)
    s2, h2, c2 = create(ms, headers=key)
    assert s1 == s2 == 202
    assert c1["id"] == c2["id"] and h2.get("idempotent-replayed") == "true"
    assert len(ms.get("/v1/clusters")[2]["clusters"]) == 1
    s3, _, e = create(ms, name="other", headers=key)
    assert s3 == 422 and e["error"]["code"] == "idempotency_key_reused", e
    # Another key is another cluster.
    s4, _, c4 = create(ms, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert s4 == 202 and c4["id"] != c1["id"]
    # API keys: the replay has the same key and no secret (it is stored nowhere).
    k = {"Idempotency-Key": "key-1"}
    s5, _, a = ms.post(f"/v1/clusters/{c1['id']}/api-keys", headers=k)
    s6, _, b = ms.post(f"/v1/clusters/{c1['id']}/api-keys", headers=k)
    assert s5 == s6 == 201
    assert a["key"] == b["key"] and len(a["secret"]) == 64 and b["secret"] is None
    assert len(ms.get(f"/v1/clusters/{c1['id']}/api-keys")[2]["api_keys"]) == 1


def test_pagination_over_120_clusters(mothership, control_plane):
    ms = mothership
    register(ms, producer(control_plane.bootstrap))
    made = []
    for i in range(120):
        status, _, c = create(ms, name=f"c{i}", ingress=1, egress=1, partitions=1)
        assert status == 202, c
        made.append(c["id"])
    seen, token, pages = [], None, 0
    while True:
        q = "/v1/clusters?page_size=50" + (f"&page_token={token}" if token else "")
        status, _, page = ms.get(q)
        assert status == 200, page
        pages += 1
        seen += [c["id"] for c in page["clusters"]]
        token = page.get("next_page_token")
        if not token:
            break
    assert pages == 3 and seen == made, "every cluster once, in creation order"
    assert len(ms.get("/v1/clusters")[2]["clusters"]) == 50, "page_size defaults to 50"
    assert len(ms.get("/v1/clusters?page_size=500")[2]["clusters"]) == 120
    for bad in ("0", "501", "ten"):
        status, _, e = ms.get(f"/v1/clusters?page_size={bad}")
        assert status == 400 and e["error"]["field"] == "page_size"
    status, _, e = ms.get("/v1/clusters?page_token=garbage!")
    assert status == 400 and e["error"]["field"] == "page_token"


def test_if_match_mismatch_is_412(mothership, control_plane):
    ms = mothership
    register(ms, producer(control_plane.bootstrap))
    _, hdrs, c = create(ms)
    etag = hdrs["etag"]
    status, h2, upd = ms.request("PATCH", f"/v1/clusters/{c['id']}", {"egress_mbps": 40}, headers={"If-Match": etag})
    assert status == 200 and h2["etag"] != etag
    status, _, e = ms.request("PATCH", f"/v1/clusters/{c['id']}", {"egress_mbps": 50}, headers={"If-Match": etag})
    assert status == 412 and e["error"]["code"] == "precondition_failed"
    status, _, e = ms.request("DELETE", f"/v1/clusters/{c['id']}", headers={"If-Match": etag})
    assert status == 412
    assert ms.get(f"/v1/clusters/{c['id']}")[2]["egress_mbps"] == 40
    status, _, d = ms.request("DELETE", f"/v1/clusters/{c['id']}", headers={"If-Match": h2["etag"]})
    assert status == 202


def test_openapi_document_matches_the_routes(mothership):
    ms = mothership
    out = subprocess.run([STRATUS_BIN, "mothership", "--routes"], capture_output=True, text=True, check=True)
    routes = {tuple(line.split()) for line in out.stdout.splitlines() if line.strip()}
    assert ("POST", "/v1/clusters") in routes and len(routes) >= 14
    status, _, doc = ms.get("/v1/openapi.json", auth=False)
    assert status == 200 and doc["openapi"].startswith("3.")
    documented = {(m.upper(), path) for path, item in doc["paths"].items() for m in item
                  if m in ("get", "post", "put", "patch", "delete")}
    assert documented == routes, f"only in the document: {documented - routes}; only in the router: {routes - documented}"
    # And every route of the table is really served (no 404 for its path, no 405).
    for method, path in routes:
        real = path.replace("{id}", "lkc-zzzzzz").replace("{key}", "ABCDEFGHIJKLMNOP")
        status, _, body = ms.request(method, real, {} if method in ("POST", "PATCH") else None)
        assert status != 405, (method, path)
        if status == 404:
            assert "no such path" not in body["error"]["message"], (method, path)


def scram_matches(cred, secret, algo):
    salted = hashlib.pbkdf2_hmac(algo, secret.encode(), base64.b64decode(cred["salt"]), cred["iterations"])
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    return (base64.b64encode(hashlib.new(algo, client_key).digest()).decode() == cred["stored_key"] and
            base64.b64encode(hmac.new(salted, b"Server Key", algo).digest()).decode() == cred["server_key"])


def test_psc_published_with_growing_generations(mothership, control_plane):
    ms = mothership
    register(ms, producer(control_plane.bootstrap))
    _, _, c = create(ms, ingress=10, egress=30, partitions=100)
    pkc_id = c["status"]["pkc_id"]
    status, _, k = ms.post(f"/v1/clusters/{c['id']}/api-keys")
    assert status == 201 and len(k["key"]) == 16 and len(k["secret"]) == 64
    ms.request("PATCH", f"/v1/clusters/{c['id']}", {"ingress_mbps": 12})
    pscs = wait_until(lambda: (lambda v: v if len(v) >= 3 else None)(pscs_of(control_plane.bootstrap, pkc_id)),
                      20, "three PSCs on psc.sat-local-1")
    gens = [v["generation"] for v in pscs]
    assert gens == sorted(gens) and len(set(gens)) == len(gens) and gens[0] == 1, gens
    last = pscs[-1]
    assert last["kind"] == "PhysicalStatefulCluster" and last["id"] == pkc_id and last["satellite"] == SAT
    assert last["product"] == "kafka" and last["broker_count"] >= 1, "a full (completed) PSC"
    (tenant,) = last["tenants"]
    assert tenant["id"] == c["id"]
    assert tenant["quotas"]["produce_bytes_per_sec"] == 12e6, "MB = 10^6 bytes"
    assert tenant["quotas"]["fetch_bytes_per_sec"] == 30e6 and tenant["quotas"]["max_partitions"] == 100
    (key,) = tenant["api_keys"]
    assert key["key"] == k["key"]
    assert key["scram_sha_256"]["iterations"] == 4096
    assert scram_matches(key["scram_sha_256"], k["secret"], "sha256")
    assert scram_matches(key["scram_sha_512"], k["secret"], "sha512")
    assert k["secret"] not in json.dumps(pscs), "the secret itself never leaves the API response"
    # The key list has no secrets; deleting a key rewrites the PSC without it.
    status, _, keys = ms.get(f"/v1/clusters/{c['id']}/api-keys")
    assert [x["key"] for x in keys["api_keys"]] == [k["key"]] and "secret" not in keys["api_keys"][0]
    assert ms.request("DELETE", f"/v1/clusters/{c['id']}/api-keys/{k['key']}")[0] == 204
    assert ms.request("DELETE", f"/v1/clusters/{c['id']}/api-keys/{k['key']}")[0] == 404
    pscs = wait_until(lambda: (lambda v: v if len(v) >= 4 else None)(pscs_of(control_plane.bootstrap, pkc_id)),
                      20, "a fourth PSC")
    assert pscs[-1]["generation"] == gens[-1] + 1 and pscs[-1]["tenants"][0]["api_keys"] == []
    with open(os.path.join(ms.data, "mothership", "stratus.db"), "rb") as f:
        assert k["secret"].encode() not in f.read(), "the store keeps no secret"


def test_status_turns_the_cluster_running(mothership, control_plane):
    ms = mothership
    p = producer(control_plane.bootstrap)
    register(ms, p)
    _, _, c = create(ms)
    pkc = pkc_of(ms, c)
    report(p, pkc, 0, phase="provisioning", bootstrap="")
    time.sleep(0.3)
    assert ms.get(f"/v1/clusters/{c['id']}")[2]["status"]["phase"] == "provisioning"
    report(p, pkc, pkc["generation"], phase="running", bootstrap="127.0.0.1:39092")
    got = wait_until(lambda: (lambda x: x if x["status"]["phase"] == "running" else None)(
        ms.get(f"/v1/clusters/{c['id']}")[2]), 20, "the cluster to run")
    assert got["status"]["bootstrap"] == "127.0.0.1:39092"
    assert got["status"]["observed_generation"] == pkc["generation"]
    report(p, pkc, pkc["generation"], phase="degraded", message="broker 1 restarting")
    got = wait_until(lambda: (lambda x: x if x["status"]["phase"] == "degraded" else None)(
        ms.get(f"/v1/clusters/{c['id']}")[2]), 20, "the cluster degraded")
    assert got["status"]["bootstrap"] and "restarting" in got["status"]["message"]
    # A second LKC on the same PKC is provisioning until a generation with it is observed.
    _, _, c2 = create(ms, name="second")
    assert c2["status"]["pkc_id"] == pkc["id"] and c2["status"]["phase"] == "provisioning"
    status, _, pk = ms.get(f"/v1/physical-clusters/{pkc['id']}")
    assert pk["phase"] == "degraded" and pk["observed_generation"] == pkc["generation"]
    assert pk["generation"] == pkc["generation"] + 1 and sorted(pk["tenants"]) == sorted([c["id"], c2["id"]])
    # Regions count what they hold; the satellite goes stale once heartbeats stop.
    status, _, regions = ms.get("/v1/regions")
    assert regions["regions"] == [{"name": REGION, "satellites": 1, "stale_satellites": 0,
                                   "physical_clusters": 1, "logical_clusters": 2}]
    sat = wait_until(lambda: (lambda s: s if s["stale"] else None)(ms.get("/v1/satellites")[2]["satellites"][0]),
                     15, "the satellite to turn stale")
    assert sat["heartbeat_age_ms"] > 5000


def test_placement_shares_then_plans_then_dedicates(mothership, control_plane):
    ms = mothership
    register(ms, producer(control_plane.bootstrap))
    ids = [create(ms, name=f"b{i}", ingress=5, egress=5, partitions=10)[2] for i in range(3)]
    pkcs = {c["status"]["pkc_id"] for c in ids}
    assert len(pkcs) == 1, "three basic clusters share one PKC"
    first = pkc_of(ms, ids[0])
    assert first["type"] == "multi_tenant" and first["load"]["tenants"] == 3
    cap = first["capacity"]
    # Fill what is left of its ingress and go one over: a second PKC is planned.
    room = cap["ingress_mbps"] - first["load"]["ingress_mbps"]
    status, _, big = create(ms, name="big", ingress=room + 1, egress=1, partitions=1)
    assert status == 202, big
    assert big["status"]["pkc_id"] != first["id"]
    assert "new" in big["status"]["placement_reason"].lower(), big["status"]["placement_reason"]
    # Updating one of the first three beyond its PKC's room is refused with 409.
    status, _, e = ms.request("PATCH", f"/v1/clusters/{ids[0]['id']}", {"ingress_mbps": cap["ingress_mbps"]})
    assert status == 409 and e["error"]["code"] == "conflict" and e["error"]["field"] == "ingress_mbps"
    status, _, d = create(ms, name="mine", type_="dedicated", ingress=5, egress=5, partitions=10)
    assert status == 202, d
    assert d["status"]["pkc_id"] not in (first["id"], big["status"]["pkc_id"])
    ded = pkc_of(ms, d)
    assert ded["type"] == "dedicated" and ded["tenants"] == [d["id"]]
    assert "dedicated" in d["status"]["placement_reason"].lower()
    status, _, lst = ms.get("/v1/physical-clusters")
    assert len(lst["physical_clusters"]) == 3


def test_deleting_a_dedicated_cluster_deletes_its_pkc(mothership, control_plane):
    ms = mothership
    p = producer(control_plane.bootstrap)
    register(ms, p)
    _, _, d = create(ms, name="mine", type_="dedicated")
    pkc = pkc_of(ms, d)
    assert ms.request("DELETE", f"/v1/clusters/{d['id']}")[0] == 202
    pkc = pkc_of(ms, d)
    assert pkc["deleted"] is True and pkc["phase"] == "deleting"
    last = wait_until(lambda: (lambda v: v[-1] if v and v[-1] and v[-1].get("deleted") else None)(
        pscs_of(control_plane.bootstrap, pkc["id"])), 20, "a PSC with deleted: true")
    assert last["generation"] == pkc["generation"] and last["tenants"] == []
    report(p, pkc, pkc["generation"], phase="deleted", bootstrap="")
    wait_until(lambda: ms.get(f"/v1/physical-clusters/{pkc['id']}")[0] == 404, 20, "the PKC to be gone")
    assert ms.get(f"/v1/clusters/{d['id']}")[0] == 404
    wait_until(lambda: (lambda v: v and v[-1] is None)(pscs_of(control_plane.bootstrap, pkc["id"])), 20,
               "a tombstone on psc.sat-local-1")


def test_kill9_mid_burst_then_restart(mothership, control_plane):
    ms = mothership
    register(ms, producer(control_plane.bootstrap))
    keys = [f"burst-{i}" for i in range(100)]
    answered = {}
    stop = threading.Event()

    def burst():
        for k in keys:
            if stop.is_set():
                return
            try:
                status, _, c = create(ms, name=k, ingress=1, egress=1, partitions=1, headers={"Idempotency-Key": k})
                if status == 202:
                    answered[k] = c["id"]
            except OSError:
                return
    t = threading.Thread(target=burst)
    t.start()
    wait_until(lambda: len(answered) >= 15, 60, "some creates answered")
    ms.proc.send_signal(signal.SIGKILL)
    ms.proc.wait(10)
    stop.set()
    t.join(30)
    before = len(answered)
    ms.start()
    # Retry every key: answered ones return the same id, the rest are created once.
    ids = {}
    for k in keys:
        status, _, c = create(ms, name=k, ingress=1, egress=1, partitions=1, headers={"Idempotency-Key": k})
        assert status == 202, c
        ids[k] = c["id"]
    for k, cid in answered.items():
        assert ids[k] == cid, f"{k}: the retry after the crash returned another cluster"
    _, _, lst = ms.get("/v1/clusters?page_size=500")
    names = [c["name"] for c in lst["clusters"]]
    assert sorted(names) == sorted(keys), "each cluster once: nothing created twice, nothing lost"
    # Nothing half-made: every cluster is on a PKC whose latest PSC has it.
    pkc_ids = {c["status"]["pkc_id"] for c in lst["clusters"]}
    want = {pid: {c["id"] for c in lst["clusters"] if c["status"]["pkc_id"] == pid} for pid in pkc_ids}

    def latest_matches():
        latest = {}
        for k, v in read_topic(control_plane.bootstrap, f"psc.{SAT}"):
            latest[k] = v
        return all(pid in latest and {t["id"] for t in latest[pid]["tenants"]} == want[pid] for pid in pkc_ids)
    for pid in pkc_ids:
        assert ms.get(f"/v1/physical-clusters/{pid}")[0] == 200
    wait_until(latest_matches, 20, "the latest PSC of every PKC to hold exactly its clusters")
    assert 15 <= before < len(keys), "killed in the middle of the burst"
    assert "republished the latest PSC of every physical cluster" in ms.log()
