#!/usr/bin/python3
"""Runs the tenancy and TLS benchmark and writes the "## Tenancy and TLS" section of
docs/benchmarks.md (the rest of the file is kept as it is).

1. The cost of tenancy and of TLS. The same release broker binary in four configurations,
   a fresh broker (data directory, port) for every run: (a) PLAINTEXT without a tenants
   file (the plain single-tenant broker); (b) SASL_PLAINTEXT with a tenants file, the
   client authenticated as a tenant (SCRAM-SHA-256; names prefixed, quotas present but
   far above what the run can reach); (c) SSL (TLS, no SASL, no tenant); (d) SASL_SSL
   with a tenant. build/bench/stratus_bench produces 1 KiB records with acks=all (1 and
   16 partitions; the topic is created by stratus_bench through the same client
   configuration, so a tenant's topic is created by the tenant), then consumes the
   backlog. Broker CPU (se.sum_exec_runtime of its threads) per GiB in and out. The four
   run back to back in an order rotated every repetition, and every ratio is to (a) in
   the same repetition; medians over the repetitions.
2. 1,000 tenants on one broker. A tenants file of 1,000 tenants with one API key each
   (SCRAM-SHA-256 and -512 credentials at 4096 iterations, cached in build/bench/), each
   tenant with 2 topics of 3 partitions (created through the PLAINTEXT listener under
   their stored names <lkc-id>_<topic>). Against 1 tenant with the same 2 topics: idle
   RSS, start to serving, the tenants-file load (broker log) and reload (the broker's
   CPU time for it, and the time until the "tenants file reloaded" line), and the
   latency of Metadata requests (v4, sequential, from a raw socket authenticated with
   SASL PLAIN) of one tenant for all its topics and for its 2 topics by name.
3. With perf installed (and without --no-profile): where the broker's CPU goes in the
   SASL_SSL and PLAINTEXT produce and consume runs.

Every run is bounded in records and seconds; only 127.0.0.1 and free ports are used;
temporary files go under /tmp/stratus-tenancy-*; only the processes started here are
stopped, by pid. Standard library only.

Usage: bench/tenancy_run.py [--reps N] [--quick] [--out docs/benchmarks.md] [--render] [--no-profile]
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (bench/run.py: process CPU and RSS, machine probes, splice_section)

ROOT = base.ROOT
BROKER = base.BROKER
BENCH = base.BENCH
SECTION = "## Tenancy and TLS"
STATE = os.path.join(ROOT, "build/bench/tenancy_state.json")
RESULTS = os.path.join(ROOT, "build/bench/tenancy_results.jsonl")
TENANTS_CACHE = os.path.join(ROOT, "build/bench/tenants-1000.json")
GIB = base.GIB
MIB = base.MIB
log = base.log
median = base.median

ITERATIONS = 4096
N_TENANTS = 1000
TOPICS_PER_TENANT = 2
PARTITIONS_PER_TOPIC = 3
# "Present but unlimited": every quota set, each far above what one run can reach, so the
# token buckets are charged on every request but never throttle.
QUOTAS = {"produce_bytes_per_sec": 10 ** 15, "fetch_bytes_per_sec": 10 ** 15, "burst_seconds": 1,
          "requests_per_sec": 10 ** 15, "max_connections": 1000000, "connections_per_sec": 10 ** 15,
          "max_partitions": 1000000}
SASL_MECHANISM = "SCRAM-SHA-256"

# name, listener security protocol, tenant?, TLS?
CONFIGS = (("plain", "PLAINTEXT", False, False), ("sasl", "SASL_PLAINTEXT", True, False),
           ("ssl", "SSL", False, True), ("sasl_ssl", "SASL_SSL", True, True))
CONFIG_NAMES = {"plain": "(a) PLAINTEXT, no tenants file", "sasl": "(b) SASL_PLAINTEXT, tenant",
                "ssl": "(c) SSL, no tenant", "sasl_ssl": "(d) SASL_SSL, tenant"}


def tenant_id(i):
    return "lkc-bench%04d" % i


def tenant_key(i):
    return "BENCHKEY%04d" % i


def tenant_secret(i):
    return "bench-secret-%04d" % i


def topic_names(i):
    return ["t%d" % j for j in range(TOPICS_PER_TENANT)]


# ---- tenants file ----------------------------------------------------------------------

def credential(secret, algo, iterations=ITERATIONS):
    """Salted SCRAM credential of <secret> (RFC 5802), as tests/integration/test_sasl.py."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac(algo, secret.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    return {"salt": base64.b64encode(salt).decode(), "iterations": iterations,
            "stored_key": base64.b64encode(hashlib.new(algo, client_key).digest()).decode(),
            "server_key": base64.b64encode(hmac.new(salted, b"Server Key", algo).digest()).decode()}


def tenant_entry(i):
    return {"id": tenant_id(i), "quotas": dict(QUOTAS),
            "api_keys": [{"key": tenant_key(i),
                          "scram_sha_256": credential(tenant_secret(i), "sha256"),
                          "scram_sha_512": credential(tenant_secret(i), "sha512")}]}


def cached_tenants(n=N_TENANTS):
    """The <n> tenants of the cached file (built/bench/tenants-1000.json), made once: the
    PBKDF2 of 2,000 credentials takes about 7 s here."""
    try:
        with open(TENANTS_CACHE) as f:
            tenants = json.load(f)["tenants"]
        ok = (len(tenants) == n and all(t["id"] == tenant_id(i) and t.get("quotas") == QUOTAS and
                                        t["api_keys"][0]["scram_sha_256"]["iterations"] == ITERATIONS
                                        for i, t in enumerate(tenants)))
        if ok:
            return tenants, False
    except (OSError, ValueError, KeyError, IndexError):
        pass
    t0 = time.monotonic()
    tenants = [tenant_entry(i) for i in range(n)]
    write_tenants(TENANTS_CACHE, tenants)
    log("generated %d tenants (%d iterations) in %.1f s: %s" % (n, ITERATIONS, time.monotonic() - t0,
                                                                base.rel(TENANTS_CACHE)))
    return tenants, True


def write_tenants(path, tenants):
    """Replaces <path> atomically (the broker watches modification time, size and inode)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"tenants": tenants}, f)
    os.replace(tmp, path)


# ---- certificates --------------------------------------------------------------------

def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(d):
    """A CA and a server certificate for 127.0.0.1 it signs (as tests/integration/test_tls.py)."""
    os.makedirs(d, exist_ok=True)
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    key, csr, ext, cert = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.ext", "server.pem"))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
            "-subj", "/CN=Stratus bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", "4097", "-days", "2",
            "-extfile", ext, "-out", cert)
    return {"ca": ca, "cert": cert, "key": key}


def tls_session_info(port, ca):
    """(version, cipher) a Python TLS client negotiates with the broker on <port>."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            c = s.cipher()
            return s.version(), c[0] if c else "?"


# ---- the broker ----------------------------------------------------------------------

LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def log_ts(line):
    mo = LOG_TS.match(line)
    if not mo:
        return None
    return datetime.datetime.strptime(mo.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()


class Broker:
    """A release broker on a fresh data directory under <workdir>: a PLAINTEXT listener
    (the operator's, used for readiness and topic creation) and, unless <protocol> is
    PLAINTEXT, a CLIENTS listener with that security protocol."""

    def __init__(self, workdir, name, protocol="PLAINTEXT", tenants_file=None, pki=None):
        self.port = base.free_port()
        self.dir = os.path.join(workdir, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.log_path = self.dir + ".log"
        overrides = ["log.dirs=%s" % self.dir]
        if protocol == "PLAINTEXT":
            self.client_port = self.port
            overrides.insert(0, "listeners=PLAINTEXT://127.0.0.1:%d" % self.port)
        else:
            self.client_port = base.free_port()
            overrides.insert(0, "listeners=PLAINTEXT://127.0.0.1:%d,CLIENTS://127.0.0.1:%d" % (
                self.port, self.client_port))
            overrides.insert(1, "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CLIENTS:%s" % protocol)
        if tenants_file:
            overrides.append("tenants.file=%s" % tenants_file)
        if pki and "SSL" in protocol:
            overrides += ["ssl.certificate.location=%s" % pki["cert"], "ssl.key.location=%s" % pki["key"]]
        self.args = [BROKER, "broker"]
        for o in overrides:
            self.args += ["--override", o]
        self.proc = None
        self.start_ms = None

    def start(self):
        logf = open(self.log_path, "w")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = t0 + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited with %d, see %s" % (self.proc.returncode, self.log_path))
            if base.api_versions_ok(self.port, 1.0):
                self.start_ms = (time.monotonic() - t0) * 1000
                return self
            time.sleep(0.0002)
        self.stop()
        raise RuntimeError("broker did not answer within 20 s, see %s" % self.log_path)

    @property
    def pid(self):
        return self.proc.pid

    @property
    def client_bootstrap(self):
        return "127.0.0.1:%d" % self.client_port

    def cpu_s(self):
        return base.proc_cpu_s(self.proc.pid)

    def rss_kib(self):
        return base.proc_status_kib(self.proc.pid, "VmRSS")

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def log_lines(self):
        with open(self.log_path, errors="replace") as f:
            return f.read().splitlines()

    def stop(self, keep_log=None):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if keep_log:
            try:
                shutil.copy(self.log_path, keep_log)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def log_problems(lines):
    return [x for x in lines if len(x.split(" ", 2)) > 1 and x.split(" ", 2)[1] in ("warn", "error")]


# ---- a raw Kafka connection ----------------------------------------------------------

def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Reader:
    def __init__(self, data):
        self.d, self.o = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)
        self.o += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.d[self.o:self.o + n].decode()
        self.o += n
        return s

    def array(self, item):
        n = self.take(">i")
        return [item(self) for _ in range(max(n, 0))]


class Conn:
    """One connection to 127.0.0.1:<port>, one request at a time (request header v1,
    response header v0: the non-flexible versions used here). With <key>, it first
    authenticates with SaslHandshake v1 (PLAIN) and SaslAuthenticate v0."""

    def __init__(self, port, key=None, secret=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0
        if key:
            r = Reader(self.call(17, 1, kstr("PLAIN")))
            if r.take(">h") != 0:
                raise RuntimeError("SaslHandshake PLAIN refused")
            token = b"\0" + key.encode() + b"\0" + secret.encode()
            r = Reader(self.call(36, 0, struct.pack(">i", len(token)) + token))
            err = r.take(">h")
            if err != 0:
                raise RuntimeError("SaslAuthenticate failed: %d %s" % (err, r.string()))

    def call(self, api, version, body):
        """Sends one request; returns the response after its correlation id."""
        self.corr += 1
        payload = struct.pack(">hhih", api, version, self.corr, 5) + b"bench" + body
        self.s.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", recv_exact(self.s, 4))[0]
        resp = recv_exact(self.s, size)
        if struct.unpack(">i", resp[:4])[0] != self.corr:
            raise RuntimeError("correlation id mismatch")
        return resp[4:]

    def close(self):
        self.s.close()


def metadata_v4_body(topics):
    """Metadata v4: topics (None: all of them), allow_auto_topic_creation false."""
    if topics is None:
        arr = struct.pack(">i", -1)
    else:
        arr = struct.pack(">i", len(topics)) + b"".join(kstr(t) for t in topics)
    return arr + b"\x00"


def parse_metadata_v4(payload):
    """(cluster_id, {topic: (error_code, partitions)})."""
    r = Reader(payload)
    r.take(">i")  # throttle
    r.array(lambda x: (x.take(">i"), x.string(), x.take(">i"), x.string()))
    cluster_id = r.string()
    r.take(">i")
    topics = {}

    def partition(x):
        x.take(">hii")
        x.array(lambda y: y.take(">i"))
        x.array(lambda y: y.take(">i"))

    def topic(x):
        err, name = x.take(">h"), x.string()
        x.take(">b")
        topics[name] = (err, len(x.array(partition)))
    r.array(topic)
    return cluster_id, topics


def create_topics(port, names, partitions, batch=250):
    """CreateTopics v4 through the PLAINTEXT listener, <batch> topics a request. Returns
    the seconds it took; raises on any topic error."""
    c = Conn(port)
    t0 = time.monotonic()
    try:
        for i in range(0, len(names), batch):
            chunk = names[i:i + batch]
            body = struct.pack(">i", len(chunk)) + b"".join(
                kstr(n) + struct.pack(">ihii", partitions, 1, 0, 0) for n in chunk) + struct.pack(">ib", 60000, 0)
            r = Reader(c.call(19, 4, body))
            r.take(">i")
            for name, err, msg in r.array(lambda x: (x.string(), x.take(">h"), x.string())):
                if err != 0:
                    raise RuntimeError("CreateTopics %s: error %d %s" % (name, err, msg))
    finally:
        c.close()
    return time.monotonic() - t0


def pct(sorted_xs, p):
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, int(round(p / 100.0 * (len(sorted_xs) - 1))))]


def summarize(lat_us, cpu_s, wall_s):
    lat = sorted(lat_us)
    n = len(lat)
    return {"count": n, "p50_us": pct(lat, 50), "p90_us": pct(lat, 90), "p99_us": pct(lat, 99),
            "p999_us": pct(lat, 99.9), "max_us": lat[-1] if lat else None, "per_s": n / wall_s if wall_s else None,
            "broker_cpu_us": cpu_s / n * 1e6 if n else None}


def metadata_interleaved(series, count, block=20, warmup=200):
    """Sequential Metadata v4 round trips for each of <series> [(key, broker, tenant,
    topics or None)], <block> requests of one series, then <block> of the next, until each
    has <count>; one connection per series, authenticated with SASL PLAIN as <tenant>. So
    the series share the machine's conditions over the whole measurement. Checks each
    series' first answer: the tenant's cluster id and exactly its topics, unprefixed.
    Returns {key: summary}; broker CPU is summed over the series' own blocks."""
    conns = []
    try:
        for key, broker, tenant, topics in series:
            c = Conn(broker.client_port, tenant_key(tenant), tenant_secret(tenant))
            conns.append(c)
            body = metadata_v4_body(topics)
            cluster_id, seen = parse_metadata_v4(c.call(3, 4, body))
            want = {t: (0, PARTITIONS_PER_TOPIC) for t in topic_names(tenant)}
            if cluster_id != tenant_id(tenant) or seen != want:
                raise RuntimeError("Metadata of %s: cluster %r, topics %r" % (tenant_id(tenant), cluster_id, seen))
            for _ in range(warmup):
                c.call(3, 4, body)
        lat = {k[0]: [] for k in series}
        cpu = {k[0]: 0.0 for k in series}
        wall = {k[0]: 0.0 for k in series}
        done = 0
        while done < count:
            n = min(block, count - done)
            for (key, broker, _tenant, topics), c in zip(series, conns):
                body = metadata_v4_body(topics)
                out = lat[key]
                cpu0 = broker.cpu_s()
                t_all = time.perf_counter()
                for _ in range(n):
                    t0 = time.perf_counter_ns()
                    c.call(3, 4, body)
                    out.append((time.perf_counter_ns() - t0) / 1000.0)
                wall[key] += time.perf_counter() - t_all
                cpu[key] += broker.cpu_s() - cpu0
            done += n
    finally:
        for c in conns:
            c.close()
    return {k: summarize(lat[k], cpu[k], wall[k]) for k in lat}


# ---- the load tool --------------------------------------------------------------------

class Recorder(base.Recorder):
    def __init__(self):
        super().__init__(RESULTS)

    def bench(self, args, timeout_s, label=""):
        cmd = [BENCH] + args
        line = base.rel_cmd(cmd)
        line = re.sub(r"/tmp/stratus-tenancy-[^/ ]+/", "", line)
        self.note(line)
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log("  TIMEOUT: " + line)
            return {"error": "timeout", "command": line}
        res = None
        for out in p.stdout.splitlines():
            if out.startswith("{"):
                res = json.loads(out)
            elif out.startswith("#"):
                log("  %s%s" % (label and label + ": ", out))
        if res is None:
            log("  FAILED (%d): %s\n%s" % (p.returncode, line, p.stderr[-2000:]))
            return {"error": "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]), "command": line}
        if p.returncode != 0 and not res.get("error"):
            res["error"] = "exit %d" % p.returncode
        res["command"] = line
        return res

    def save(self, res):
        self.results.write(json.dumps(res) + "\n")
        self.results.flush()


def client_args(conf, broker, pki):
    _name, protocol, tenant, tls = conf
    args = ["--bootstrap", broker.client_bootstrap]
    if protocol != "PLAINTEXT":
        args += ["-X", "security.protocol=" + protocol]
    if tls:
        args += ["-X", "ssl.ca.location=" + pki["ca"]]
    if tenant:
        args += ["-X", "sasl.mechanisms=" + SASL_MECHANISM, "-X", "sasl.username=" + tenant_key(0),
                 "-X", "sasl.password=" + tenant_secret(0)]
    return args


def stored_topic_dirs(broker, topic):
    """The partition directories of <topic> in the broker's data directory (which name it
    is stored under)."""
    try:
        return sorted({d.rsplit("-", 1)[0] for d in os.listdir(broker.dir)
                       if d.rsplit("-", 1)[0].endswith(topic) and d.rsplit("-", 1)[-1].isdigit()})
    except OSError:
        return []


class Perf:
    """perf record (cpu-clock, 2000 Hz) of <pid> while a run goes, stopped by its pid."""

    def __init__(self, pid, data):
        self.data = data
        self.proc = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-p", str(pid),
                                      "-o", data, "--", "sleep", "60"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def report(self):
        """[(percent, dso, symbol)] of self time, most first, and the kernel's share."""
        out = []
        try:
            rep = subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children", "-g", "none",
                                  "--sort", "dso,sym", "--percent-limit", "1.5"],
                                 capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return out
        for x in rep.stdout.splitlines():
            mo = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.+?)\s*$", x)
            if mo:
                out.append((float(mo.group(1)), mo.group(2), mo.group(4)))
        return out[:14]


def dso_shares(data):
    """{dso: percent} of self time."""
    out = {}
    try:
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", "dso"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return out
    for x in rep.stdout.splitlines():
        f = x.split()
        if len(f) >= 2 and f[0].endswith("%"):
            try:
                out[f[1]] = float(f[0][:-1])
            except ValueError:
                pass
    return out


# ---- part 1: the cost of tenancy and TLS ----------------------------------------------

def throughput_run(rec, workdir, pki, tenants_1, conf, parts, count, prefault, profile=None):
    """One fresh broker in configuration <conf>: produce <count> 1 KiB records (acks=all)
    to a new <parts>-partition topic, then consume the backlog. Returns (produce, consume)."""
    name, protocol, tenant, tls = conf
    b = Broker(workdir, "run-" + name, protocol, tenants_1 if tenant else None, pki if tls else None).start()
    prof = {}
    try:
        common = client_args(conf, b, pki) + ["--topic", "bench", "--size", "1024", "--partitions", str(parts)]
        prefault(count * 1024 + 256 * MIB)
        perf = Perf(b.pid, os.path.join(workdir, "perf-%s-produce.data" % name)) if profile else None
        cpu0 = b.cpu_s()
        with base.RssSampler(b.pid) as rs:
            p = rec.bench(["produce"] + common + ["--acks", "all", "--count", str(count), "--seconds", "20"], 60,
                          label=name)
        cpu1 = b.cpu_s()
        if perf:
            perf.stop()
            prof["produce"] = {"top": perf.report(), "dso": dso_shares(perf.data)}
        p.update(config=name, parts=parts, kind="produce", broker_cpu_s=cpu1 - cpu0, broker_rss_peak_kib=rs.peak_kib)
        p["broker_cpu_s_per_gib"] = (cpu1 - cpu0) / (p["bytes"] / GIB) if p.get("bytes") else None
        p["stored_as"] = stored_topic_dirs(b, "bench")
        c = {"error": "no records produced"}
        if p.get("records"):
            time.sleep(0.2)
            perf = Perf(b.pid, os.path.join(workdir, "perf-%s-consume.data" % name)) if profile else None
            cpu0 = b.cpu_s()
            with base.RssSampler(b.pid) as rs:
                c = rec.bench(["consume"] + common + ["--count", str(p["records"]), "--seconds", "20"], 60, label=name)
            cpu1 = b.cpu_s()
            if perf:
                perf.stop()
                prof["consume"] = {"top": perf.report(), "dso": dso_shares(perf.data)}
            c.update(config=name, parts=parts, kind="consume", broker_cpu_s=cpu1 - cpu0,
                     broker_rss_peak_kib=rs.peak_kib)
            c["broker_cpu_s_per_gib"] = (cpu1 - cpu0) / (c["bytes"] / GIB) if c.get("bytes") else None
        problems = log_problems(b.log_lines())
    finally:
        b.stop()
    p["log_problems"] = problems[:10]
    return p, c, prof


# ---- part 2: 1,000 tenants ------------------------------------------------------------

def wait_log(broker, needle, after_lines, timeout_s):
    """Polls the broker log until a line after the first <after_lines> contains <needle>;
    returns (monotonic time seen, line) or (None, None)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = broker.log_lines()
        for x in lines[after_lines:]:
            if needle in x:
                return time.monotonic(), x
        time.sleep(0.005)
    return None, None


def tenants_broker(workdir, all_tenants, n):
    """A fresh SASL_PLAINTEXT broker with the first <n> tenants, each with its topics
    (created through the PLAINTEXT listener under their stored names). Returns (broker,
    its tenants file, the tenants, the measurements so far)."""
    path = os.path.join(workdir, "tenants-%d.json" % n)
    tenants = all_tenants[:n]
    write_tenants(path, tenants)
    r = {"tenants": n, "file_bytes": os.path.getsize(path)}
    b = Broker(workdir, "tenants%d" % n, "SASL_PLAINTEXT", path).start()
    try:
        r["start_ms"] = b.start_ms
        lines = b.log_lines()
        for i, x in enumerate(lines):
            if "tenants file loaded" in x and i > 0:
                r["load_log_ms"] = (log_ts(x) - log_ts(lines[i - 1])) * 1000
                r["load_line"] = x.split(": ", 1)[-1]
                break
        time.sleep(0.5)
        r["rss_no_topics_kib"] = b.rss_kib()
        names = ["%s_%s" % (tenant_id(i), t) for i in range(n) for t in topic_names(i)]
        cpu0 = b.cpu_s()
        r["create_s"] = create_topics(b.port, names, PARTITIONS_PER_TOPIC)
        r["create_cpu_s"] = b.cpu_s() - cpu0
        r["topics"], r["partitions"] = len(names), len(names) * PARTITIONS_PER_TOPIC
    except Exception:
        b.stop()
        raise
    return b, path, tenants, r


def reload_once(b, path, tenants, k):
    """Replaces the tenants file (one quota changed: a new size and inode) and waits for
    the reload line. Returns (broker CPU ms from the rename to the line, wall ms) or None.
    The broker checks the file every second, so the wall time is mostly that wait; its CPU
    time over the window (it is otherwise idle) is the reload's cost."""
    changed = list(tenants)
    changed[0] = dict(changed[0], quotas=dict(QUOTAS, requests_per_sec=10 ** 15 - 1 - k))
    mark = len(b.log_lines())
    cpu0 = b.cpu_s()
    t0 = time.monotonic()
    write_tenants(path, changed)
    seen, _line = wait_log(b, "tenants file reloaded", mark, 5)
    if seen is None:
        return None
    time.sleep(0.05)
    return (b.cpu_s() - cpu0) * 1000, (seen - t0) * 1000


def many_tenants_rep(workdir, all_tenants, meta_count, reloads, rep):
    """One repetition of part 2: a broker with 1 tenant and one with N_TENANTS run side by
    side (started one after the other, in an order that alternates), and every measurement
    alternates between them. Returns {"1": result, "1000": result}."""
    order = (1, N_TENANTS) if rep % 2 == 0 else (N_TENANTS, 1)
    brokers = {}
    res = {}
    try:
        for n in order:
            b, path, tenants, r = tenants_broker(workdir, all_tenants, n)
            brokers[n] = (b, path, tenants)
            res[n] = r
        # Creating 6,000 partitions (18,000 files) leaves the kernel writing them back for a
        # few seconds, and Metadata round trips measured then were up to 7x slower on that
        # broker: flush the file system (writeback only) and let the machine settle first.
        t0 = time.monotonic()
        os.sync()
        res[order[0]]["sync_s"] = time.monotonic() - t0
        time.sleep(3.0)
        for n in order:
            b = brokers[n][0]
            res[n]["rss_idle_kib"] = b.rss_kib()
            res[n]["hwm_kib"] = base.proc_status_kib(b.pid, "VmHWM")
            res[n]["fds"] = b.fds()
        series = []
        for n in order:
            who = n // 2
            series.append(("%d|all" % n, brokers[n][0], who, None))
            series.append(("%d|named" % n, brokers[n][0], who, topic_names(who)))
        meta = metadata_interleaved(series, meta_count)
        for n in order:
            res[n]["meta_all"] = meta["%d|all" % n]
            res[n]["meta_named"] = meta["%d|named" % n]
            res[n]["reload_cpu_ms"], res[n]["reload_wall_ms"] = [], []
        for k in range(reloads):
            for n in (order if k % 2 == 0 else order[::-1]):
                time.sleep(1.1)
                got = reload_once(*brokers[n], k)
                if got is None:
                    res[n]["reload_error"] = "no reload line within 5 s"
                    continue
                res[n]["reload_cpu_ms"].append(got[0])
                res[n]["reload_wall_ms"].append(got[1])
        for n in order:
            res[n]["idle_cpu_ms_per_s"] = idle_cpu(brokers[n][0], 1.0)
            res[n]["log_problems"] = log_problems(brokers[n][0].log_lines())[:10]
    finally:
        for b, _p, _t in brokers.values():
            b.stop()
    return {str(n): r for n, r in res.items()}


def idle_cpu(b, seconds):
    """The broker's CPU milliseconds per second while nobody talks to it."""
    cpu0 = b.cpu_s()
    time.sleep(seconds)
    return (b.cpu_s() - cpu0) * 1000 / seconds


# ---- the report -----------------------------------------------------------------------

def fmt(x, spec="%.0f"):
    return "n/a" if x is None else spec % x


def ok_runs(runs):
    return [r for r in runs if not r.get("error")]


def med(runs, key):
    return median([r.get(key) for r in ok_runs(runs)])


def render_section(st):
    L = []
    out = L.append
    m = st["machine"]
    T = st["throughput"]       # "config|parts|kind" -> [result per rep, None when it failed]
    M = st["many"]             # str(n) -> [result per rep]
    parts_list = st["partitions"]
    reps = st["reps"]

    def runs(conf, parts, kind):
        return [r for r in T.get("%s|%d|%s" % (conf, parts, kind), []) if r and not r.get("error")]

    def paired(conf, parts, kind, key, invert=False):
        """Per-repetition ratios of <conf> to plain for <key>."""
        a = T.get("%s|%d|%s" % ("plain", parts, kind), [])
        b = T.get("%s|%d|%s" % (conf, parts, kind), [])
        out_ = []
        for x, y in zip(a, b):
            if x and y and not x.get("error") and not y.get("error") and x.get(key) and y.get(key):
                out_.append(y[key] / x[key])
        return out_

    out(SECTION)
    out("")
    out("Generated by `%s` on %s UTC in %.0f s; %d repetition%s, medians. Machine: %s, %d cores (nproc), "
        "kernel %s; stratus %s (`build/release/stratus`), librdkafka %s; load average %s at start, %s at "
        "end, %.1f CPU-s stolen by the hypervisor during the run. Rerun `bench/tenancy_run.py` to refresh "
        "this section; the rest of this file is kept as it is." % (
            st["argv"], st["started"][:16].replace("T", " "), st["elapsed"], reps, "" if reps == 1 else "s",
            m["cpu"], m["nproc"], m["kernel"], m["commit"], m["librdkafka"], " ".join(m["loadavg_start"]),
            " ".join(m["loadavg_end"]), m.get("steal_s", 0)))
    if st.get("quick"):
        out("")
        out("**This is a `--quick` smoke run (one short repetition): do not read it as a result.**")
    out("")

    # ---- part 1
    out("### The cost of tenancy and of TLS")
    out("")
    out("One binary, four configurations, a fresh broker (data directory, port) for every run: "
        "**(a)** PLAINTEXT without `tenants.file`, the plain single-tenant broker; **(b)** "
        "SASL_PLAINTEXT with a tenants file of one tenant, the client authenticated as that tenant "
        "with %s (every name prefixed with `%s_`, every quota of docs/tenancy.md set but far above "
        "what a run reaches, so the buckets are charged and never throttle); **(c)** SSL (TLS, no "
        "SASL, no tenant); **(d)** SASL_SSL, the same tenant. TLS: %s, %s (as a Python client "
        "negotiates it; librdkafka %s with OpenSSL defaults), RSA-2048 certificate. `stratus_bench "
        "produce` creates the topic through the same client configuration (a tenant's topic is created "
        "by the tenant: stored as `%s`) and produces %s records of 1 KiB, acks=all, librdkafka "
        "defaults otherwise (linger.ms=5, batch.size=1000000, one connection); then `stratus_bench "
        "consume` reads that backlog once. The four configurations run back to back in an order rotated "
        "every repetition; **vs (a)** is the median over the repetitions of the ratio to (a) in the same "
        "repetition (for MB/s below 1 is slower, for CPU above 1 is more expensive). Broker CPU: on-CPU "
        "time of its threads over the run (se.sum_exec_runtime) per GiB of record values." % (
            SASL_MECHANISM, tenant_id(0), st.get("tls_version", "?"), st.get("tls_cipher", "?"),
            m["librdkafka"], ", ".join(st.get("stored_as") or ["?"]), "{:,}".format(st["count"])))
    out("")
    out("| configuration | part. | produce MB/s | vs (a) | broker CPU-s/GiB in | vs (a) | consume MB/s | vs (a) | "
        "broker CPU-s/GiB out | vs (a) | produce MB/s, each run |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for parts in parts_list:
        for name, _p, _t, _s in CONFIGS:
            pr, co = runs(name, parts, "produce"), runs(name, parts, "consume")

            def rr(kind, key, spec="%.2f"):
                if name == "plain":
                    return "1"
                return fmt(median(paired(name, parts, kind, key)), spec)
            out("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                CONFIG_NAMES[name], parts, fmt(med(pr, "mb_per_s")), rr("produce", "mb_per_s"),
                fmt(med(pr, "broker_cpu_s_per_gib"), "%.2f"), rr("produce", "broker_cpu_s_per_gib"),
                fmt(med(co, "mb_per_s")), rr("consume", "mb_per_s"),
                fmt(med(co, "broker_cpu_s_per_gib"), "%.2f"), rr("consume", "broker_cpu_s_per_gib"),
                ", ".join(fmt(r.get("mb_per_s")) for r in pr)))
    errs = [r for v in T.values() for r in v if r and r.get("error")]
    if errs:
        out("")
        out("Runs with errors (%d): %s" % (len(errs), "; ".join(
            "`%s`: %s" % (e.get("command", "?"), e["error"]) for e in errs[:5])))
    out("")
    cl = []
    for parts in parts_list:
        for name, _p, _t, _s in CONFIGS:
            pr, co = runs(name, parts, "produce"), runs(name, parts, "consume")
            cl.append("%s %d part.: produce %s / consume %s CPU-s per GiB" % (
                name, parts, fmt(median([r["client_cpu_s"] / (r["bytes"] / GIB) for r in pr if r.get("bytes")]), "%.2f"),
                fmt(median([r["client_cpu_s"] / (r["bytes"] / GIB) for r in co if r.get("bytes")]), "%.2f")))
    out("The client's own CPU (stratus_bench, from its JSON line), which shares the two cores with the "
        "broker: " + "; ".join(cl) + ".")
    out("")
    for line in st.get("reading_throughput", []):
        out(line)
    if st.get("reading_throughput"):
        out("")

    # ---- profiles
    P = st.get("profiles") or {}
    if P:
        out("**Where the broker's CPU goes** (`perf record -e cpu-clock -F 2000 -g` of the broker during one "
            "16-partition run of %s, self time by shared object; then the top symbols):" % " and ".join(
                CONFIG_NAMES[k] for k in P))
        out("")
        out("| configuration | run | kernel | stratus | libcrypto | libssl | libc | top symbols (self %) |")
        out("|---|---|---|---|---|---|---|---|")
        for name, kinds in P.items():
            for kind, prof in kinds.items():
                d = prof.get("dso", {})

                def share(pred):
                    return fmt(sum(v for k, v in d.items() if pred(k)) or None, "%.0f%%")
                top = "; ".join("%s %.1f" % (sym.split()[-1] if sym else "?", pc)
                                for pc, _dso, sym in prof.get("top", [])[:7])
                out("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    CONFIG_NAMES[name], kind, share(lambda k: k.startswith("[kernel")),
                    share(lambda k: k == "stratus"), share(lambda k: k.startswith("libcrypto")),
                    share(lambda k: k.startswith("libssl")), share(lambda k: k.startswith("libc.") or k.startswith("libc-")),
                    top))
        out("")
        for line in st.get("reading_profile", []):
            out(line)
        if st.get("reading_profile"):
            out("")

    # ---- part 2
    out("### 1,000 tenants on one broker")
    out("")
    one, many = M.get("1", []), M.get(str(N_TENANTS), [])
    fb = many[0]["file_bytes"] if many else 0
    out("A SASL_PLAINTEXT broker (plus its PLAINTEXT listener) with a tenants file of 1 or %s tenants, one API "
        "key each with SCRAM-SHA-256 and SCRAM-SHA-512 credentials at %d iterations and every quota set "
        "(the 1,000-tenant file is %.0f KiB; generated once into `%s`), and %d topics of %d partitions per "
        "tenant, created through the PLAINTEXT listener under their stored names (`<lkc-id>_t0`, ...; "
        "CreateTopics v4, 250 topics a request). In each repetition a fresh broker with 1 tenant and one with "
        "%s run side by side, started one after the other in an order that alternates, and every "
        "measurement below alternates between them. **Start to "
        "serving**: from exec until ApiVersions is answered on the PLAINTEXT port (the tenants file is "
        "loaded before that). **Load**: the broker log's time from the line before `tenants file "
        "loaded` to it (millisecond stamps). **Reload**: the file replaced by a rename with one quota "
        "changed; the broker's CPU time from the rename until the `tenants file reloaded` line (it checks "
        "the file every second, so the wall time to that line is mostly the wait for the check). "
        "**Metadata**: one tenant (%s) per broker and per request kind, each on a connection "
        "of its own authenticated with SASL PLAIN, sends %s Metadata v4 requests one after another (after "
        "200 unmeasured), for all topics (a null list: the broker shows the tenant its own) and for its "
        "%d topics by name; the four series take turns in blocks of 20 requests, so they share the "
        "machine's moments. The round trip is measured in Python, so it includes the client's share, the "
        "same in every row; broker CPU per request is its on-CPU time over the series' blocks. Right after "
        "the topics were created (18,000 files) these round trips on the 1,000-tenant broker were up to 7x "
        "slower, broker CPU included, for a few seconds while the kernel wrote the new files back (the "
        "1-tenant broker, measured in the same blocks, was not), so the script calls sync() and waits 3 s "
        "before measuring. **Open "
        "file descriptors**: /proc/PID/fd (RLIMIT_NOFILE here: %s)." % (
            "{:,}".format(N_TENANTS), ITERATIONS, fb / 1024, base.rel(TENANTS_CACHE), TOPICS_PER_TENANT,
            PARTITIONS_PER_TOPIC, "{:,}".format(N_TENANTS), "`%s` of the %s, `%s` alone" % (tenant_id(N_TENANTS // 2), "{:,}".format(N_TENANTS), tenant_id(0)),
            "{:,}".format(st["meta_count"]), TOPICS_PER_TENANT, st.get("nofile", "?")))
    out("")

    def mm(rs, key, sub=None):
        if sub:
            return median([r[key][sub] for r in rs if r.get(key)])
        return median([r.get(key) for r in rs])

    def mlist(rs, key):
        return median([x for r in rs for x in r.get(key, [])])
    out("| | 1 tenant | %s tenants | difference |" % "{:,}".format(N_TENANTS))
    out("|---|---|---|---|")

    def row(label, a, b, spec, unit="", diff=True, ratio=False):
        d = ""
        if a is not None and b is not None and diff:
            d = (spec % (b - a) if b - a < 0 else "+" + spec % (b - a)) + unit
            if ratio and a:
                d += " (%.2fx)" % (b / a)
        out("| %s | %s | %s | %s |" % (label, fmt(a, spec) + (unit if a is not None else ""),
                                       fmt(b, spec) + (unit if b is not None else ""), d))
    out("| topics / partitions | %s / %s | %s / %s | |" % (fmt(mm(one, "topics")), fmt(mm(one, "partitions")),
                                                        fmt(mm(many, "topics")), fmt(mm(many, "partitions"))))
    row("idle RSS, tenants loaded, no topics yet", kib_mib(mm(one, "rss_no_topics_kib")),
        kib_mib(mm(many, "rss_no_topics_kib")), "%.1f", " MiB")
    row("idle RSS with the topics", kib_mib(mm(one, "rss_idle_kib")), kib_mib(mm(many, "rss_idle_kib")), "%.1f", " MiB")
    row("open file descriptors", mm(one, "fds"), mm(many, "fds"), "%.0f")
    out("| creating the topics | %s s (broker CPU %s s) | %s s (broker CPU %s s) | |" % (
        fmt(mm(one, "create_s"), "%.3f"), fmt(mm(one, "create_cpu_s"), "%.3f"),
        fmt(mm(many, "create_s"), "%.3f"), fmt(mm(many, "create_cpu_s"), "%.3f")))
    row("start to serving", mm(one, "start_ms"), mm(many, "start_ms"), "%.1f", " ms")
    row("tenants file load (broker log)", mm(one, "load_log_ms"), mm(many, "load_log_ms"), "%.0f", " ms")
    row("tenants file reload, broker CPU", mlist(one, "reload_cpu_ms"), mlist(many, "reload_cpu_ms"), "%.2f", " ms")
    row("rename to the reload line (includes the 1 s check)", mlist(one, "reload_wall_ms"),
        mlist(many, "reload_wall_ms"), "%.0f", " ms")
    row("idle broker CPU", mm(one, "idle_cpu_ms_per_s"), mm(many, "idle_cpu_ms_per_s"), "%.2f", " ms/s")
    for key, label in (("meta_all", "Metadata, all topics"), ("meta_named", "Metadata, its %d topics by name" %
                                                              TOPICS_PER_TENANT)):
        row("%s: p50" % label, mm(one, key, "p50_us"), mm(many, key, "p50_us"), "%.0f", " µs", ratio=True)
        row("%s: p99" % label, mm(one, key, "p99_us"), mm(many, key, "p99_us"), "%.0f", " µs", ratio=True)
        out("| %s: p99.9 / max | %s / %s µs | %s / %s µs | |" % (
            label, fmt(mm(one, key, "p999_us")), fmt(mm(one, key, "max_us")),
            fmt(mm(many, key, "p999_us")), fmt(mm(many, key, "max_us"))))
        row("%s: broker CPU per request" % label, mm(one, key, "broker_cpu_us"), mm(many, key, "broker_cpu_us"),
            "%.1f", " µs", ratio=True)
    out("")
    per_run = []
    for n, rs in (("1", one), (str(N_TENANTS), many)):
        per_run.append("%s tenant%s: Metadata p50 (broker CPU) all topics %s µs, by name %s µs; idle RSS %s MiB" % (
            "{:,}".format(int(n)), "" if n == "1" else "s",
            ", ".join("%s (%s)" % (fmt(r["meta_all"]["p50_us"]), fmt(r["meta_all"]["broker_cpu_us"], "%.1f"))
                      for r in rs if r.get("meta_all")),
            ", ".join("%s (%s)" % (fmt(r["meta_named"]["p50_us"]), fmt(r["meta_named"]["broker_cpu_us"], "%.1f"))
                      for r in rs if r.get("meta_named")),
            ", ".join(fmt(kib_mib(r.get("rss_idle_kib")), "%.1f") for r in rs)))
    out("Each repetition: " + "; ".join(per_run) + ".")
    out("")
    probs = [p for v in M.values() for r in v for p in r.get("log_problems", [])]
    probs += [p for v in T.values() for r in v if r for p in r.get("log_problems", [])]
    out("Broker logs: %s." % ("no warn or error lines" if not probs else
                              "%d warn/error lines, e.g. `%s`" % (len(probs), probs[0])))
    out("")
    for line in st.get("reading_many", []):
        out(line)
    if st.get("reading_many"):
        out("")

    # ---- commands
    out("### Commands")
    out("")
    out("```")
    out("bench/tenancy_run.py            # builds, runs everything (about %d minutes), rewrites this section" %
        max(1, round(st["elapsed"] / 60)))
    out("bench/tenancy_run.py --quick    # one short repetition, as a smoke test")
    out("bench/tenancy_run.py --render   # only rewrite this section from build/bench/tenancy_state.json")
    out("```")
    out("")
    out("Brokers (fresh data directory and ports each; CERT, KEY and CA made with the openssl CLI as in "
        "tests/integration/test_tls.py):")
    out("")
    out("```")
    for line in st["broker_commands"]:
        out(line)
    out("```")
    out("")
    out("Load commands, as run (PORT differs per run):")
    out("")
    out("```")
    for line in st["commands"]:
        out(line)
    out("```")
    out("")
    return "\n".join(L)


def kib_mib(k):
    return None if k is None else k / 1024.0


def readings(st):
    """The short reading of the numbers, worded from them (so --render keeps it true)."""
    T = st["throughput"]
    M = st["many"]
    parts_list = st["partitions"]

    def ratios(conf, parts, kind, key):
        a = T.get("%s|%d|%s" % ("plain", parts, kind), [])
        b = T.get("%s|%d|%s" % (conf, parts, kind), [])
        return sorted(y[key] / x[key] for x, y in zip(a, b)
                      if x and y and not x.get("error") and not y.get("error") and x.get(key) and y.get(key))

    def cpu(conf, parts, kind):
        return med([r for r in T.get("%s|%d|%s" % (conf, parts, kind), []) if r], "broker_cpu_s_per_gib")

    def each(xs):
        return ", ".join("%.2f" % x for x in xs)

    def near_one(xs, tol=0.10):
        return bool(xs) and abs(median(xs) - 1) <= tol

    tp = []
    for parts in parts_list:
        ri, ro = ratios("sasl", parts, "produce", "mb_per_s"), ratios("sasl", parts, "consume", "mb_per_s")
        ci, co = (ratios("sasl", parts, "produce", "broker_cpu_s_per_gib"),
                  ratios("sasl", parts, "consume", "broker_cpu_s_per_gib"))
        if ri and ro and ci and co:
            verdict = ("within 10% of 1, which on this shared machine is noise: tenancy costs nothing "
                       "measurable per byte" if all(near_one(x) for x in (ri, ro, ci))
                       else "not all within 10% of 1; see the spread of the runs before reading a cost into it")
            tp.append("- **Tenancy**, %d partition%s (b against a): produce %.2fx (runs %s), consume %.2fx (%s); "
                      "broker CPU per GiB %.2fx in (%s) and %.2fx out (%s): %s. What a tenant adds per request "
                      "is the name mapping in the codecs and the quota buckets, per ~1 MB batch of 1 KiB "
                      "records, against the copy, checksum and syscalls of that megabyte. Consume CPU per GiB "
                      "is small in absolute terms (sendfile), so its ratio swings most." % (
                          parts, "s" if parts > 1 else "", median(ri), each(ri), median(ro), each(ro),
                          median(ci), each(ci), median(co), each(co), verdict))
    P = max(parts_list)
    ri, ro = ratios("ssl", P, "produce", "mb_per_s"), ratios("ssl", P, "consume", "mb_per_s")
    ci, co = ratios("ssl", P, "produce", "broker_cpu_s_per_gib"), ratios("ssl", P, "consume", "broker_cpu_s_per_gib")
    if ri and ro and ci and co:
        tp.append("- **TLS**, %d partitions (c against a): produce at %.2fx, consume at %.2fx; broker CPU per "
                  "GiB %.2fx in (%.2f against %.2f CPU-s: decrypting what it receives, on top of the same "
                  "copy into the page cache) and %.2fx out (%.2f against %.2f: the plain broker hands the "
                  "log to the socket with sendfile(), the TLS one pread()s each slice into user space, "
                  "encrypts it and writes it, docs/tenancy.md). The client pays for TLS too (its CPU per GiB "
                  "above), and both share two cores, so the throughput ratio is the pair's, not the broker's "
                  "alone." % (P, median(ri), median(ro), median(ci), cpu("ssl", P, "produce"),
                              cpu("plain", P, "produce"), median(co), cpu("ssl", P, "consume"),
                              cpu("plain", P, "consume")))
    bi, bo = ratios("sasl_ssl", P, "produce", "mb_per_s"), ratios("sasl_ssl", P, "consume", "mb_per_s")
    if bi and bo and ri and ro:
        close = abs(median(bi) / median(ri) - 1) <= 0.1 and abs(median(bo) / median(ro) - 1) <= 0.1
        tp.append("- **SASL_SSL**, %d partitions (d against a): produce at %.2fx, consume at %.2fx, against "
                  "%.2fx and %.2fx for TLS alone (c): %s." % (
                      P, median(bi), median(bo), median(ri), median(ro),
                      "the tenant adds nothing measurable on top of the encryption" if close else
                      "more than 10% apart from TLS alone, so look at the runs"))
    st["reading_throughput"] = tp

    rp = []
    prof = st.get("profiles") or {}
    for name in ("sasl_ssl", "plain"):
        for kind in ("produce", "consume"):
            d = prof.get(name, {}).get(kind, {}).get("dso")
            if d:
                crypto = sum(v for k, v in d.items() if k.startswith("libcrypto") or k.startswith("libssl"))
                kern = sum(v for k, v in d.items() if k.startswith("[kernel"))
                rp.append("%s %s %.0f%% OpenSSL, %.0f%% kernel" % (name, kind, crypto, kern))
    if rp:
        st["reading_profile"] = [
            "So (share of the broker's own samples in one run): " + "; ".join(rp) + ". Over TLS the broker's "
            "extra time is OpenSSL's AES-GCM (libcrypto) plus the copies around it (the pread() into the "
            "buffer, copying into and out of socket buffers), where the plaintext consume is sendfile() "
            "and nothing else. This guest has no PMU, so perf samples with cpu-clock: time spent with "
            "interrupts off (softirq network processing of loopback packets) lands on the "
            "`_raw_spin_unlock_irqrestore` that turns them back on."]

    rm = []
    one, many = M.get("1", []), M.get(str(N_TENANTS), [])
    if one and many:
        def mm(rs, key, sub=None):
            if sub:
                return median([r[key][sub] for r in rs if r.get(key)])
            return median([r.get(key) for r in rs])
        rss0, rss1 = mm(one, "rss_idle_kib"), mm(many, "rss_idle_kib")
        nt0, nt1 = mm(one, "rss_no_topics_kib"), mm(many, "rss_no_topics_kib")
        parts_delta = (mm(many, "partitions") or 0) - (mm(one, "partitions") or 0)
        if None not in (rss0, rss1, nt0, nt1):
            rm.append("- **Memory**: %s tenants with their %s partitions take %.1f MiB more than 1 tenant with "
                      "its %d: %.1f MiB of it before any topic exists (about %.1f KiB per tenant: the parsed "
                      "file with two credentials per key, the quotas and the per-tenant state), the rest with "
                      "the partitions (about %.2f KiB each). Each partition also holds %s open file "
                      "descriptors (%s for the %s-tenant broker, against a limit of %s here: RLIMIT_NOFILE, "
                      "not memory, is what bounds partitions per broker first)." % (
                          "{:,}".format(N_TENANTS), "{:,}".format(int(mm(many, "partitions"))), (rss1 - rss0) / 1024,
                          int(mm(one, "partitions")), (nt1 - nt0) / 1024, (nt1 - nt0) / (N_TENANTS - 1),
                          ((rss1 - rss0) - (nt1 - nt0)) / parts_delta if parts_delta else 0,
                          fmt((mm(many, "fds") - mm(one, "fds")) / parts_delta if parts_delta else None, "%.0f"),
                          fmt(mm(many, "fds")), "{:,}".format(N_TENANTS), st.get("nofile", "?")))
        l1 = mm(many, "load_log_ms")
        lr0 = median([x for r in one for x in r.get("reload_cpu_ms", [])])
        lr1 = median([x for r in many for x in r.get("reload_cpu_ms", [])])
        if lr1 is not None and lr0 is not None:
            rm.append("- **Tenants file**: %s tenants load in %s ms at start (log stamps) and a reload costs "
                      "%.1f ms of broker CPU (%.2f ms for 1 tenant), about %.0f µs per tenant: JSON parsing and "
                      "base64 of the stored keys, no PBKDF2 (the file holds derived keys; PBKDF2 runs once per "
                      "PLAIN authentication). The reload runs on the broker's event loop, so every connection "
                      "waits that long once per change of the file." % (
                          "{:,}".format(N_TENANTS), fmt(l1), lr1, lr0, (lr1 - lr0) * 1000 / (N_TENANTS - 1)))
        a0, a1 = mm(one, "meta_all", "p50_us"), mm(many, "meta_all", "p50_us")
        n0, n1 = mm(one, "meta_named", "p50_us"), mm(many, "meta_named", "p50_us")
        c0, c1 = mm(one, "meta_all", "broker_cpu_us"), mm(many, "meta_all", "broker_cpu_us")
        cn0, cn1 = mm(one, "meta_named", "broker_cpu_us"), mm(many, "meta_named", "broker_cpu_us")
        def lowest(rs, key, sub):
            vals = [r[key][sub] for r in rs if r.get(key)]
            return min(vals) if vals else None
        la0, la1 = lowest(one, "meta_all", "p50_us"), lowest(many, "meta_all", "p50_us")
        lc0, lc1 = lowest(one, "meta_all", "broker_cpu_us"), lowest(many, "meta_all", "broker_cpu_us")
        if None not in (a0, a1, la0, la1, lc0, lc1) and (a0 > 3 * la0 or a1 > 3 * la1):
            rm.append("- **The two states of a run.** In a repetition, one of the two brokers may answer every "
                      "request several times slower than the other, all topics and by name alike (see each "
                      "repetition above: which one it is changes with the start order), so a median of three "
                      "can compare unlike states. Compared at their best repetitions, Metadata for all topics "
                      "takes %.0f µs p50 (broker CPU %.1f µs) with 1 tenant and %.0f µs (%.1f µs) with %s." % (
                          la0, lc0, la1, lc1, "{:,}".format(N_TENANTS)))
        if None not in (a0, a1, n0, n1, c0, c1, cn0, cn1):
            named_same = cn1 / cn0 <= 1.3 if cn0 else False
            rm.append("- **Metadata**: for all its topics (a null list) a tenant's round trip is %.0f µs (p50) "
                      "with %s tenants on the broker against %.0f µs alone (%.2fx), and the broker spends %.1f "
                      "against %.1f µs of CPU per request, with %s topics stored; the handler takes the "
                      "tenant's %d from its namespace's list (topics are indexed by their prefix, "
                      "src/broker/topic.c), not from a walk over every topic on the broker (with that walk, "
                      "in the run before 4d5b053: 69.1 against 8.4 µs of CPU). For its "
                      "topics by name: %.0f against %.0f µs p50 and %.1f against %.1f µs of CPU, %s. A "
                      "sequential round trip also wakes the broker from epoll_wait each time, so part of its "
                      "CPU per request is that wake-up, the same in every row." % (
                          a1, "{:,}".format(N_TENANTS), a0, a1 / a0, c1, c0, "{:,}".format(int(mm(many, "topics"))),
                          TOPICS_PER_TENANT, n1, n0, cn1, cn0,
                          "so a lookup by name does not depend on how many tenants share the broker" if named_same
                          else "higher with %s tenants (each repetition is listed above), although the handler "
                          "finds named topics in a hash map; in a separate check on a quieter machine a lookup by "
                          "name cost the same ~6 µs of broker CPU on both brokers, and right after the topics were "
                          "created it was several times higher, so this looks like the larger broker's memory "
                          "footprint meeting a busy machine (caches shared with other work) rather than work per "
                          "tenant, but this run does not prove it" % "{:,}".format(N_TENANTS)))
    st["reading_many"] = rm


def write_section(out_path, section):
    old = open(out_path).read() if os.path.exists(out_path) else "# Benchmarks\n"
    with open(out_path, "w") as f:
        f.write(base.splice_section(old, section, SECTION))


# ---- main ----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported)")
    ap.add_argument("--quick", action="store_true", help="1 repetition of small runs (smoke test)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profiles")
    ap.add_argument("--count", type=int, default=1000000, help="1 KiB records per produce run")
    ap.add_argument("--partitions", default="1,16", help="comma list of partition counts for part 1")
    ap.add_argument("--metadata", type=int, default=2000, help="Metadata requests per measurement")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from build/bench/tenancy_state.json")
    opts = ap.parse_args()
    if opts.render:
        with open(STATE) as f:
            st = json.load(f)
        readings(st)
        write_section(opts.out, render_section(st))
        log("wrote the %r section of %s" % (SECTION, base.rel(opts.out)))
        return
    reps = 1 if opts.quick else opts.reps
    count = 100000 if opts.quick else opts.count
    meta_count = 500 if opts.quick else opts.metadata
    reloads = 1 if opts.quick else 2
    parts_list = [int(x) for x in opts.partitions.split(",") if x]
    t_begin = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    if not opts.no_build:
        log("building: make build/release/stratus bench")
        subprocess.run(["make", "-C", ROOT, "-j2", "build/release/stratus", "bench"], check=True,
                       stdout=subprocess.DEVNULL)
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="stratus-tenancy-", dir="/tmp")
    rec = Recorder()
    machine = {
        "nproc": os.cpu_count(), "cpu": base.cpu_model(), "kernel": platform.release(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3], "librdkafka": base.librdkafka_version(),
        "commit": base.git_describe(), "steal_start_s": base.cpu_steal_s(),
    }
    log("machine: %s" % machine)
    all_tenants, generated = cached_tenants()
    profile = not opts.no_profile and shutil.which("perf") is not None
    st = {"argv": " ".join(["bench/tenancy_run.py"] + [shlex.quote(a) for a in sys.argv[1:]]),
          "started": started.isoformat(), "reps": reps, "quick": opts.quick, "count": count,
          "partitions": parts_list, "meta_count": meta_count, "machine": machine,
          "tenants_generated": generated, "throughput": {}, "many": {}, "profiles": {},
          "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}
    try:
        pki = make_pki(os.path.join(workdir, "pki"))
        tenants_1 = os.path.join(workdir, "tenants-part1.json")
        write_tenants(tenants_1, all_tenants[:1])
        prefault = base.Prefault(workdir)
        # The commands of the brokers, for the report.
        bc = []
        for name, protocol, tenant, tls in CONFIGS:
            b = Broker(workdir, "cmd", protocol, tenants_1 if tenant else None, pki if tls else None)
            line = base.rel_cmd(b.args)
            line = re.sub(r"/tmp/stratus-tenancy-[^ ]+/pki/server\.pem", "CERT", line)
            line = re.sub(r"/tmp/stratus-tenancy-[^ ]+/pki/server\.key", "KEY", line)
            line = re.sub(r"/tmp/stratus-tenancy-[^ ]+/tenants-part1\.json", "TENANTS.json", line)
            line = re.sub(r"log\.dirs=/tmp/stratus-tenancy-[^ ]+", "log.dirs=DIR", line)
            bc.append(line + "   # " + CONFIG_NAMES[name])
            shutil.rmtree(b.dir, ignore_errors=True)
        bc.append("# 1,000 tenants: as (b), with tenants.file=%s (or its first tenant alone)" % base.rel(TENANTS_CACHE))
        bc.append("# client side of (c)/(d): -X security.protocol=SSL|SASL_SSL -X ssl.ca.location=CA")
        st["broker_commands"] = bc

        # The negotiated TLS version and cipher, once.
        b = Broker(workdir, "tlsinfo", "SSL", None, pki).start()
        try:
            st["tls_version"], st["tls_cipher"] = tls_session_info(b.client_port, pki["ca"])
        finally:
            b.stop()
        log("TLS: %s %s" % (st["tls_version"], st["tls_cipher"]))

        # Part 1: interleaved, the order rotated every repetition.
        for rep in range(reps):
            for parts in parts_list:
                order = list(CONFIGS[(rep + parts) % 4:] + CONFIGS[:(rep + parts) % 4])
                log("== tenancy/TLS, repetition %d/%d, %d partitions: %s" % (
                    rep + 1, reps, parts, " ".join(c[0] for c in order)))
                for conf in order:
                    p, c, _ = throughput_run(rec, workdir, pki, tenants_1, conf, parts, count, prefault)
                    rec.save(p)
                    rec.save(c)
                    if p.get("stored_as"):
                        if conf[2] or not st.get("stored_as"):
                            st["stored_as" if conf[2] else "stored_as_plain"] = p["stored_as"]
                    for kind, r in (("produce", p), ("consume", c)):
                        st["throughput"].setdefault("%s|%d|%s" % (conf[0], parts, kind), [None] * reps)[rep] = r

            # Part 2, in the same repetition: 1 and 1,000 tenants side by side.
            log("== 1 and %d tenants, repetition %d/%d" % (N_TENANTS, rep + 1, reps))
            for n, r in many_tenants_rep(workdir, all_tenants, meta_count, reloads, rep).items():
                r["rep"] = rep
                rec.save(dict(r, kind="tenants"))
                log("  %s tenants: start %.1f ms, load %s ms, reload CPU %s ms, RSS %.1f -> %.1f MiB, create %.2f s, "
                    "Metadata all p50/p99 %.0f/%.0f us (CPU %.1f us), named p50/p99 %.0f/%.0f us (CPU %.1f us)" % (
                        n, r["start_ms"], fmt(r.get("load_log_ms")),
                        ", ".join("%.2f" % x for x in r["reload_cpu_ms"]),
                        r["rss_no_topics_kib"] / 1024, r["rss_idle_kib"] / 1024, r["create_s"],
                        r["meta_all"]["p50_us"], r["meta_all"]["p99_us"], r["meta_all"]["broker_cpu_us"],
                        r["meta_named"]["p50_us"], r["meta_named"]["p99_us"], r["meta_named"]["broker_cpu_us"]))
                st["many"].setdefault(n, []).append(r)

        # Part 3: profiles.
        if profile:
            for name in ("sasl_ssl", "plain"):
                conf = [c for c in CONFIGS if c[0] == name][0]
                log("== profile of %s (perf record)" % name)
                _p, _c, prof = throughput_run(rec, workdir, pki, tenants_1, conf, max(parts_list), count, prefault,
                                              profile=True)
                st["profiles"][name] = prof
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    machine["steal_s"] = base.cpu_steal_s() - machine["steal_start_s"]
    st["elapsed"] = time.monotonic() - t_begin
    st["commands"] = rec.commands
    readings(st)
    with open(STATE, "w") as f:
        json.dump(st, f)
    write_section(opts.out, render_section(st))
    log("wrote the %r section of %s (%.0f s)" % (SECTION, base.rel(opts.out), st["elapsed"]))


if __name__ == "__main__":
    main()
