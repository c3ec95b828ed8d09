"""The mothership CLI (`stratus cluster|api-key|satellite list|pkc`, docs/cli.md).

Two kinds of peer: a recording HTTP peer in this process (the way haproxy's reg-tests put
fake servers around the real proxy) for what a real mothership cannot be made to do on
demand (answers page by page, a 500, exactly which token arrived), and the real
`stratus mothership` with a real control-plane broker when the binary has it."""
import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import STRATUS_BIN, free_port, wait_until


def run(args, env=None, timeout=30):
    full_env = dict(os.environ)
    full_env.pop("STRATUS_CONFIG", None)
    full_env.update(env or {})
    r = subprocess.run([STRATUS_BIN] + args, capture_output=True, text=True, env=full_env, timeout=timeout)
    assert "AddressSanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    return r


class Peer:
    """An HTTP peer speaking the mothership's API shapes; <routes> maps (method, path) to
    a function(handler, body) -> (status, json)."""

    def __init__(self):
        self.requests = []
        self.routes = {}
        peer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                path, _, query = self.path.partition("?")
                peer.requests.append({"method": self.command, "path": path, "query": query,
                                      "headers": dict(self.headers), "body": body})
                fn = peer.routes.get((self.command, path))
                status, answer = fn(self, body) if fn else (404, {"error": {"code": "not_found",
                                                                            "message": f"no route {path}"}})
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", '"7"')
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def write_config(path, endpoint, token):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"endpoint": endpoint, "token": token}, f)


def cluster(id_, phase="provisioning", bootstrap=None):
    status = {"phase": phase}
    if bootstrap:
        status["bootstrap"] = bootstrap
    return {"id": id_, "name": "orders", "region": "local", "type": "basic", "ingress_mbps": 10,
            "egress_mbps": 30, "partitions": 20, "resource_version": 1, "status": status}


def test_cli_unreachable_mothership_says_to_start_stratus_up(workdir):
    port = free_port()
    cfg = os.path.join(workdir, "config.json")
    write_config(cfg, f"http://127.0.0.1:{port}", "t")
    r = run(["cluster", "list"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 1
    assert f"cannot reach the mothership at http://127.0.0.1:{port}: connection refused" in r.stderr
    assert "is `stratus up` running?" in r.stderr and cfg in r.stderr


def test_cli_without_config_names_the_file_and_stratus_up(workdir):
    cfg = os.path.join(workdir, "missing", "config.json")
    r = run(["cluster", "describe", "lkc-aaaaaa"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 1
    assert cfg in r.stderr and "stratus up" in r.stderr and "--endpoint" in r.stderr


def test_cli_bad_config_file_says_how_to_fix_it(workdir):
    cfg = os.path.join(workdir, "config.json")
    with open(cfg, "w") as f:
        f.write("{not json")
    r = run(["pkc", "list"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 1 and cfg in r.stderr and "stratus up" in r.stderr


def test_cli_usage_errors_name_the_flag(workdir):
    r = run(["cluster", "create", "x", "--region", "local", "--egress", "1", "--partitions", "1"])
    assert r.returncode == 2 and "--ingress MBPS is required" in r.stderr
    r = run(["cluster", "create", "x", "--region", "local", "--ingress", "-3"])
    assert r.returncode == 2 and "--ingress must be a positive number" in r.stderr
    r = run(["cluster", "create", "x", "--region", "l", "--type", "huge", "--ingress", "1", "--egress", "1",
             "--partitions", "1"])
    assert r.returncode == 2 and "--type must be basic, standard or dedicated" in r.stderr
    r = run(["cluster", "update", "lkc-aaaaaa"])
    assert r.returncode == 2 and "nothing to update" in r.stderr
    r = run(["api-key", "create"])
    assert r.returncode == 2 and "--cluster ID is required" in r.stderr
    r = run(["cluster", "list", "--output", "yaml"])
    assert r.returncode == 2 and "--output must be table or json" in r.stderr
    r = run(["cluster", "frobnicate"])
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr
    for args in (["cluster", "--help"], ["cluster", "create", "--help"], ["api-key", "list", "--help"],
                 ["satellite", "list", "--help"], ["pkc", "list", "--help"], ["up", "--help"]):
        r = run(args)
        assert r.returncode == 0 and r.stdout.startswith("usage: stratus"), args


def test_cli_config_precedence(workdir, peer):
    peer.routes[("GET", "/v1/clusters")] = lambda h, b: (200, {"clusters": [], "next_page_token": None})
    home = os.path.join(workdir, "home")
    xdg = os.path.join(workdir, "xdg")
    explicit = os.path.join(workdir, "explicit.json")
    write_config(os.path.join(home, ".config", "stratus", "config.json"), peer.url, "from-home")
    env = {"HOME": home, "XDG_CONFIG_HOME": ""}

    def token_seen(extra_env, args=()):
        before = len(peer.requests)
        r = run(["cluster", "list", *args], env={**env, **extra_env})
        assert r.returncode == 0, r.stderr
        return peer.requests[before]["headers"].get("Authorization")

    assert token_seen({}) == "Bearer from-home"
    write_config(os.path.join(xdg, "stratus", "config.json"), peer.url, "from-xdg")
    assert token_seen({"XDG_CONFIG_HOME": xdg}) == "Bearer from-xdg"
    write_config(explicit, peer.url, "from-stratus-config")
    assert token_seen({"XDG_CONFIG_HOME": xdg, "STRATUS_CONFIG": explicit}) == "Bearer from-stratus-config"
    assert token_seen({"STRATUS_CONFIG": explicit}, ["--token", "from-flag"]) == "Bearer from-flag"
    # --endpoint overrides the file's endpoint (the file points nowhere), the token stays the file's.
    write_config(explicit, f"http://127.0.0.1:{free_port()}", "kept")
    assert token_seen({"STRATUS_CONFIG": explicit}, ["--endpoint", peer.url]) == "Bearer kept"


def test_cli_output_json_and_tables_over_every_page(workdir, peer):
    pages = {"": ([cluster(f"lkc-{i:06d}", "running", "127.0.0.1:9") for i in range(3)], "p2"),
             "p2": ([cluster("lkc-000003")], None)}

    def list_clusters(h, body):
        token = dict(kv.split("=", 1) for kv in h.path.partition("?")[2].split("&") if "=" in kv).get("page_token", "")
        items, nxt = pages[token]
        return 200, {"clusters": items, "next_page_token": nxt}
    peer.routes[("GET", "/v1/clusters")] = list_clusters
    cfg = os.path.join(workdir, "c.json")
    write_config(cfg, peer.url, "t")
    r = run(["cluster", "list", "--output", "json"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 0, r.stderr
    assert [c["id"] for c in json.loads(r.stdout)] == ["lkc-000000", "lkc-000001", "lkc-000002", "lkc-000003"]
    r = run(["cluster", "list"], env={"STRATUS_CONFIG": cfg})
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "REGION", "TYPE", "INGRESS", "EGRESS", "PARTITIONS", "PHASE",
                                "BOOTSTRAP"]
    assert len(lines) == 5 and lines[4].split()[0] == "lkc-000003" and "127.0.0.1:9" in lines[1]


def test_cli_api_errors_tell_what_to_do(workdir, peer):
    cfg = os.path.join(workdir, "c.json")
    write_config(cfg, peer.url, "t")
    env = {"STRATUS_CONFIG": cfg}
    peer.routes[("POST", "/v1/clusters")] = lambda h, b: (400, {"error": {
        "code": "invalid_argument", "message": "ingress_mbps must be at most 100", "field": "ingress_mbps"}})
    r = run(["cluster", "create", "x", "--region", "local", "--ingress", "1000", "--egress", "1",
             "--partitions", "1"], env=env)
    assert r.returncode == 1
    assert "--ingress: ingress_mbps must be at most 100" in r.stderr and "fix --ingress" in r.stderr
    req = peer.requests[-1]
    assert req["body"] == {"name": "x", "region": "local", "type": "basic", "ingress_mbps": 1000,
                           "egress_mbps": 1, "partitions": 1}
    assert req["headers"].get("Idempotency-Key", "").startswith("cli-")
    peer.routes[("GET", "/v1/clusters")] = lambda h, b: (401, {"error": {"code": "unauthenticated",
                                                                         "message": "bad token"}})
    r = run(["cluster", "list"], env=env)
    assert r.returncode == 1 and "refused the token" in r.stderr and "--token" in r.stderr
    r = run(["cluster", "describe", "lkc-zzzzzz"], env=env)
    assert r.returncode == 1 and "not found" in r.stderr and "stratus cluster list" in r.stderr
    peer.routes[("GET", "/v1/satellites")] = lambda h, b: (500, {"error": {"code": "internal",
                                                                           "message": "disk full"}})
    r = run(["satellite", "list"], env=env)
    assert r.returncode == 1 and "disk full" in r.stderr and "mothership.log" in r.stderr


def test_cli_create_wait_shows_progress_then_bootstrap(workdir, peer):
    polls = []
    peer.routes[("POST", "/v1/clusters")] = lambda h, b: (202, cluster("lkc-abcdef"))

    def get(h, b):
        polls.append(time.monotonic())
        done = len(polls) >= 3
        return 200, cluster("lkc-abcdef", "running" if done else "provisioning",
                            "127.0.0.1:30001" if done else None)
    peer.routes[("GET", "/v1/clusters/lkc-abcdef")] = get
    cfg = os.path.join(workdir, "c.json")
    write_config(cfg, peer.url, "t")
    r = run(["cluster", "create", "orders", "--region", "local", "--ingress", "10", "--egress", "30",
             "--partitions", "20", "--wait"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 0, r.stderr
    assert "provisioning..." in r.stderr
    assert "running (" in r.stderr and "s): bootstrap 127.0.0.1:30001" in r.stderr
    assert "bootstrap   127.0.0.1:30001" in r.stdout and "stratus api-key create --cluster lkc-abcdef" in r.stdout

    # --timeout bounds the wait and says what to look at.
    peer.routes[("GET", "/v1/clusters/lkc-abcdef")] = lambda h, b: (200, cluster("lkc-abcdef"))
    t0 = time.monotonic()
    r = run(["cluster", "create", "orders", "--region", "local", "--ingress", "10", "--egress", "30",
             "--partitions", "20", "--wait", "--timeout", "1"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 1 and time.monotonic() - t0 < 5
    assert "timed out after 1 s" in r.stderr and "stratus pkc list" in r.stderr


def test_cli_api_key_create_shows_the_secret_once(workdir, peer):
    peer.routes[("POST", "/v1/clusters/lkc-abcdef/api-keys")] = lambda h, b: (201, {
        "key": "ABCDEFGHIJKLMNOP", "secret": "s" * 64, "created_at": "2026-01-01T00:00:00Z"})
    cfg = os.path.join(workdir, "c.json")
    write_config(cfg, peer.url, "t")
    r = run(["api-key", "create", "--cluster", "lkc-abcdef"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 0, r.stderr
    assert "ABCDEFGHIJKLMNOP" in r.stdout and "s" * 64 in r.stdout and "will not be shown again" in r.stdout
    r = run(["api-key", "create", "--cluster", "lkc-abcdef", "--output", "json"], env={"STRATUS_CONFIG": cfg})
    assert json.loads(r.stdout)["secret"] == "s" * 64


def test_cli_update_sends_if_match_from_the_etag(workdir, peer):
    peer.routes[("GET", "/v1/clusters/lkc-abcdef")] = lambda h, b: (200, cluster("lkc-abcdef", "running"))
    peer.routes[("PATCH", "/v1/clusters/lkc-abcdef")] = lambda h, b: (200, {**cluster("lkc-abcdef", "running"),
                                                                           "ingress_mbps": 20})
    cfg = os.path.join(workdir, "c.json")
    write_config(cfg, peer.url, "t")
    r = run(["cluster", "update", "lkc-abcdef", "--ingress", "20"], env={"STRATUS_CONFIG": cfg})
    assert r.returncode == 0, r.stderr
    patch = [q for q in peer.requests if q["method"] == "PATCH"][0]
    assert patch["body"] == {"ingress_mbps": 20} and patch["headers"].get("If-Match") == '"7"'
    assert "ingress     20 MB/s" in r.stdout


# ---- against the real mothership -----------------------------------------------------

def mothership_available():
    r = subprocess.run([STRATUS_BIN, "mothership", "--help"], capture_output=True, text=True)
    return r.returncode == 0


@pytest.fixture
def mothership(workdir, broker):
    if not mothership_available():
        pytest.skip("`stratus mothership` is not in this build")
    port = free_port()
    data = os.path.join(workdir, "ms")
    token_file = os.path.join(workdir, "token")
    log = open(os.path.join(workdir, "mothership.log"), "ab")
    proc = subprocess.Popen([STRATUS_BIN, "mothership", "--data", data, "--listen", f"127.0.0.1:{port}",
                             "--bootstrap", broker.bootstrap, "--token-file", token_file], stdout=log, stderr=log)
    log.close()

    def up():
        assert proc.poll() is None, "mothership exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return os.path.exists(token_file) and open(token_file).read().strip()
        except OSError:
            return False
    wait_until(up, 30, "the mothership to listen")
    token = [ln for ln in open(token_file).read().split("\n") if ln.strip() and not ln.startswith("#")][0]
    cfg = os.path.join(workdir, "config.json")
    write_config(cfg, f"http://127.0.0.1:{port}", token.strip())
    yield {"env": {"STRATUS_CONFIG": cfg}, "url": f"http://127.0.0.1:{port}"}
    proc.terminate()
    proc.wait(20)


def test_cli_against_the_real_mothership(mothership):
    env = mothership["env"]
    r = run(["cluster", "list", "--output", "json"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    r = run(["cluster", "list", "--token", "wrong"], env=env)
    assert r.returncode == 1 and "refused the token" in r.stderr
    r = run(["cluster", "describe", "lkc-zzzzzz"], env=env)
    assert r.returncode == 1 and "not found" in r.stderr
    r = run(["satellite", "list", "--output", "json"], env=env)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)
    r = run(["pkc", "list", "--output", "json"], env=env)
    assert r.returncode == 0, r.stderr
