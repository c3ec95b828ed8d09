"""`stratus up` end to end: the embedded control plane (broker, mothership, satellite) in a
temp dir, the CLI configured by it, a logical cluster created and used by kcat and
python3-confluent-kafka over SASL through its bootstrap address, deleted (key refused,
data gone), Ctrl-C stopping every process, and a second `stratus up` on the same dir."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import STRATUS_BIN, free_port, wait_until

KCAT = "/usr/bin/kcat"


def have(cmd):
    return subprocess.run([STRATUS_BIN, cmd, "--help"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not (have("mothership") and have("satellite")),
                                reason="`stratus mothership` and `stratus satellite` are not in this build")


class Up:
    def __init__(self, workdir, api_port=None):
        self.data = os.path.join(workdir, "data")
        self.config = os.path.join(workdir, "cli", "config.json")
        self.api_port = api_port or free_port()
        self.env = dict(os.environ, STRATUS_CONFIG=self.config)
        self.out = []
        self.proc = None
        self.starts = 0

    def start(self, timeout=60):
        self.starts += 1
        self.out = []
        self.proc = subprocess.Popen([STRATUS_BIN, "up", "--data", self.data, "--api", f"127.0.0.1:{self.api_port}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env)
        threading.Thread(target=self._read, daemon=True).start()
        t0 = time.monotonic()
        wait_until(lambda: self._ready(), timeout, "`stratus up` to print that it is up")
        return time.monotonic() - t0

    def _read(self):
        for raw in self.proc.stdout:
            self.out.append(raw.decode(errors="replace"))

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"stratus up exited {self.proc.returncode}:\n{self.output()}\n{self.logs()}")
        return any("Stratus is up" in line for line in self.out)

    def output(self):
        return "".join(self.out)

    def logs(self):
        d = os.path.join(self.data, "logs")
        text = ""
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), errors="replace") as f:
                text += f"=== {name}\n{f.read()[-6000:]}\n"
        return text

    def cli(self, *args, timeout=120):
        r = subprocess.run([STRATUS_BIN, *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        assert "AddressSanitizer" not in r.stderr, r.stderr
        return r

    def cli_json(self, *args):
        r = self.cli(*args, "--output", "json")
        assert r.returncode == 0, f"{args}: {r.stderr}\n{self.logs()}"
        return json.loads(r.stdout)

    def pids(self):
        """Every process whose command line mentions the data dir (all of ours do)."""
        found = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
                with open(f"/proc/{p}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if self.data in cmd and state != "Z":
                found.append(int(p))
        return found

    def interrupt(self, timeout=60):
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        return code


@pytest.fixture
def up(workdir, request):
    u = Up(workdir)
    yield u
    if u.proc and u.proc.poll() is None:
        u.proc.send_signal(signal.SIGTERM)
        try:
            u.proc.wait(60)
        except subprocess.TimeoutExpired:
            u.proc.kill()
    for pid in u.pids():
        os.kill(pid, signal.SIGKILL)
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    logs = u.logs()
    if failed:
        print(u.output())
        print(logs)
    if "ERROR: AddressSanitizer" in logs or "runtime error:" in logs:
        print(logs)
        pytest.fail("sanitizer report in a `stratus up` log")


def sasl(bootstrap, key, secret):
    return ["-b", bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
            "-X", f"sasl.username={key}", "-X", f"sasl.password={secret}"]


def kcat_produce(bootstrap, key, secret, topic, lines):
    r = subprocess.run([KCAT, *sasl(bootstrap, key, secret), "-P", "-t", topic, "-K:"],
                       input="".join(f"{ln}\n" for ln in lines), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def kcat_consume(bootstrap, key, secret, topic):
    r = subprocess.run([KCAT, *sasl(bootstrap, key, secret), "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                        "-f", "%k:%s\n"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def confluent_conf(bootstrap, key, secret):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": key, "sasl.password": secret}


def confluent_round_trip(bootstrap, key, secret, topic, n=50):
    from confluent_kafka import Consumer, Producer, TopicPartition
    p = Producer({**confluent_conf(bootstrap, key, secret), "enable.idempotence": True})
    errors = []
    for i in range(n):
        p.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(60) == 0 and not errors, errors
    c = Consumer({**confluent_conf(bootstrap, key, secret), "group.id": "it", "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=20).topics[topic].partitions
        c.assign([TopicPartition(topic, pid, 0) for pid in parts])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                assert m.error() is None, m.error()
                got.append(m.value().decode())
        assert sorted(got) == sorted(f"v{i}" for i in range(n))
    finally:
        c.close()


def key_refused(bootstrap, key, secret):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient
    admin = AdminClient(confluent_conf(bootstrap, key, secret))
    try:
        admin.list_topics(timeout=5)
        return False
    except KafkaException:
        return True


def test_up_end_to_end_cluster_key_produce_consume_delete_and_restart(up):
    ready_s = up.start()
    out = up.output()
    assert ready_s < 30, f"ready in {ready_s:.1f} s"
    assert f"http://127.0.0.1:{up.api_port}" in out and up.config in out
    assert os.stat(up.config).st_mode & 0o777 == 0o600
    conf = json.load(open(up.config))
    assert conf["endpoint"] == f"http://127.0.0.1:{up.api_port}" and conf["token"]
    sats = up.cli_json("satellite", "list")
    assert any(s.get("region") == "local" for s in sats), sats

    # A cluster to keep and one to delete.
    keep = up.cli_json("cluster", "create", "keep", "--region", "local", "--ingress", "5", "--egress", "5",
                       "--partitions", "10", "--wait")
    t0 = time.monotonic()
    r = up.cli("cluster", "create", "gone", "--region", "local", "--ingress", "5", "--egress", "5",
               "--partitions", "10", "--wait")
    assert r.returncode == 0, r.stderr + up.logs()
    assert "provisioning..." in r.stderr or "running (" in r.stderr
    gone_id = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("id ")][0]
    gone_bootstrap = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("bootstrap ")][0]
    print(f"second cluster running after {time.monotonic() - t0:.2f} s")
    keep_bootstrap = keep["status"]["bootstrap"]
    keep_key = up.cli_json("api-key", "create", "--cluster", keep["id"])
    gone_key = up.cli_json("api-key", "create", "--cluster", gone_id)
    keys = up.cli_json("api-key", "list", "--cluster", gone_id)
    assert [k.get("key") for k in keys] == [gone_key["key"]] and "secret" not in keys[0]

    kcat_produce(gone_bootstrap, gone_key["key"], gone_key["secret"], "orders", ["a:1", "b:2", "c:3"])
    assert sorted(kcat_consume(gone_bootstrap, gone_key["key"], gone_key["secret"], "orders")) == ["a:1", "b:2", "c:3"]
    confluent_round_trip(gone_bootstrap, gone_key["key"], gone_key["secret"], "events")
    kcat_produce(keep_bootstrap, keep_key["key"], keep_key["secret"], "kept", ["x:kept-1"])

    r = up.cli("cluster", "delete", gone_id, "--wait")
    assert r.returncode == 0, r.stderr + up.logs()
    assert up.cli("cluster", "describe", gone_id).returncode == 1
    wait_until(lambda: key_refused(keep_bootstrap, gone_key["key"], gone_key["secret"]), 20,
               "the deleted cluster's key to be refused")

    # Ctrl-C stops everything, in order, and leaves no process.
    pids_before = up.pids()
    assert len(pids_before) >= 3
    assert up.interrupt() == 0, up.output()
    wait_until(lambda: not up.pids(), 10, "every process of `stratus up` to be gone")

    # The same dir comes back with the kept cluster, its key and its data.
    up.start()
    ids = [c["id"] for c in up.cli_json("cluster", "list")]
    assert ids == [keep["id"]]
    r = up.cli("cluster", "describe", keep["id"])
    assert r.returncode == 0
    wait_until(lambda: "running" in up.cli("cluster", "describe", keep["id"]).stdout, 60, "the kept cluster running")
    # The phase stored before the restart may still show until the restarted satellite's
    # first status arrives: wait for the data plane itself to serve.
    got = []

    def consumed():
        r = subprocess.run([KCAT, *sasl(keep_bootstrap, keep_key["key"], keep_key["secret"]), "-C", "-t", "kept",
                            "-o", "beginning", "-e", "-q", "-f", "%k:%s\n"], capture_output=True, text=True, timeout=60)
        got[:] = r.stdout.splitlines()
        return r.returncode == 0
    wait_until(consumed, 30, "the kept cluster's brokers serving again")
    assert got == ["x:kept-1"]
    assert up.interrupt() == 0
    wait_until(lambda: not up.pids(), 10, "every process gone")


def leftovers_of(data_dir, lkc_id):
    found = []
    for root, dirs, files in os.walk(data_dir):
        found += [os.path.join(root, d) for d in dirs if lkc_id in d]
    return found


def test_up_deleted_cluster_data_is_gone(up):
    up.start()
    other = up.cli_json("cluster", "create", "stays", "--region", "local", "--ingress", "5", "--egress", "5",
                        "--partitions", "10", "--wait")
    c = up.cli_json("cluster", "create", "goes", "--region", "local", "--ingress", "5", "--egress", "5",
                    "--partitions", "10", "--wait")
    assert c["status"]["pkc_id"] == other["status"]["pkc_id"], "both on one multi-tenant PKC"
    k = up.cli_json("api-key", "create", "--cluster", c["id"])
    kcat_produce(c["status"]["bootstrap"], k["key"], k["secret"], "orders", ["a:1"])
    assert leftovers_of(up.data, c["id"]), "the topic is on disk while the cluster exists"
    r = up.cli("cluster", "delete", c["id"], "--wait")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: not leftovers_of(up.data, c["id"]), 10, f"the data of {c['id']} to be removed")


def test_up_refuses_a_second_instance_on_the_same_dir(up):
    up.start()
    r = subprocess.run([STRATUS_BIN, "up", "--data", up.data, "--api", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, env=up.env, timeout=30)
    assert r.returncode == 1 and "another `stratus up`" in r.stderr and str(up.proc.pid) in r.stderr
    assert up.interrupt() == 0
