#!/usr/bin/env python3
"""Runs the control-plane benchmark and writes the "## Control plane" section of
docs/benchmarks.md (the rest of the file is kept as it is).

1. Time from POST /v1/clusters to a client's first acknowledged produce, under `stratus up`:
   per sample POST a cluster, POST an API key, poll GET /v1/clusters/{id} every 10 ms until
   `running` with a bootstrap, then a python3-confluent-kafka producer (SASL PLAIN with the
   key) until its first delivery report without error. 100 sequential and 20 concurrent
   samples for (a) basic LKCs on an existing multi-tenant PKC and (b) dedicated LKCs (a new
   PKC each). Clusters are deleted between batches so that the PKC keeps room.
2. GET /v1/clusters (page_size default and 500) and GET /v1/clusters/{id} latency with
   10,000 LKCs stored, against `stratus mothership` with a control-plane broker and a fake
   satellite that only heartbeats (so placement works and nothing is started); the POST
   rate of the 10,000.
3. RSS (/proc/PID/status VmRSS) of the mothership, the satellite and the control-plane
   broker, idle and after the runs.

Release build, 127.0.0.1 and free ports only, fresh temp dirs under /tmp/stratus-cpb-*,
every wait bounded, only the processes started here stopped, by pid. Python standard
library and python3-confluent-kafka only.

Usage: bench/cp_run.py [--quick] [--render] [--out docs/benchmarks.md]
"""
import argparse
import datetime
import http.client
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (bench/run.py: free ports, RSS, CPU, machine probes, splice_section)

from confluent_kafka import Producer  # noqa: E402

ROOT = base.ROOT
STRATUS = os.path.join(ROOT, "build/release/stratus")
STATE = os.path.join(ROOT, "build/bench/cp_state.json")
RESULTS = os.path.join(ROOT, "build/bench/cp_results.jsonl")
SECTION = "## Control plane"
POLL_S = 0.010          # GET /v1/clusters/{id} every 10 ms while waiting
SAMPLE_DEADLINE_S = 30  # one creation, POST to first ack
DELETE_DEADLINE_S = 90  # a batch's deletions until every cluster is 404

# Targets from the issue.
T_EXISTING_P99_S = 1.0
T_NEW_P99_S = 3.0
T_GET_P99_MS = 10.0

# The client: librdkafka defaults but for faster reconnects (the default 100 ms doubling to
# 10 s would measure the client's backoff, not the platform) and no batching delay.
CLIENT_CONF = {
    "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
    "linger.ms": 0, "socket.nagle.disable": True,
    "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100,
    "message.timeout.ms": SAMPLE_DEADLINE_S * 1000, "log_level": 0,
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def pct(xs, p):
    """Nearest-rank percentile <p> (0-100) of <xs>: p99 of 100 samples is the 99th smallest,
    of 20 samples the largest."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = max(1, math.ceil(p / 100.0 * len(xs)))
    return xs[k - 1]


def now_wall_ms():
    return time.time() * 1000.0


# ---- REST -----------------------------------------------------------------------------

class Api:
    """The mothership's REST API over one keep-alive connection per thread."""

    def __init__(self, endpoint, token):
        m = re.match(r"http://([^:/]+):(\d+)", endpoint)
        self.host, self.port = m.group(1), int(m.group(2))
        self.token = token
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        return c

    def raw(self, method, path, body=None, headers=None):
        """Returns (status, body bytes, seconds from send to the whole body read)."""
        h = {"Authorization": "Bearer " + self.token}
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        h.update(headers or {})
        for attempt in (0, 1):
            c = self.conn()
            try:
                t0 = time.perf_counter()
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                data = r.read()
                return r.status, data, time.perf_counter() - t0
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.c = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method, path, body=None, headers=None, expect=None):
        status, data, secs = self.raw(method, path, body, headers)
        doc = json.loads(data) if data else None
        if expect is not None and status not in expect:
            raise RuntimeError("%s %s: HTTP %d %s" % (method, path, status, data[:300]))
        return status, doc, secs


def cluster_body(name, typ, region):
    return {"name": name, "region": region, "type": typ, "ingress_mbps": 1, "egress_mbps": 1, "partitions": 1}


# ---- processes ------------------------------------------------------------------------

def pid_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def children_of(ppid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] != "Z":
            out.append(int(p))
    return out


def rss_kib(pid):
    try:
        return base.proc_status_kib(pid, "VmRSS")
    except OSError:
        return None


def wait_until(pred, timeout_s, what, step_s=0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step_s)
    raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout_s, what))


class Up:
    """`stratus up --data DIR --api 127.0.0.1:PORT` with its CLI config in DIR/../config.json."""

    def __init__(self, workdir):
        self.data = os.path.join(workdir, "up")
        self.config = os.path.join(workdir, "config.json")
        self.api_port = base.free_port()
        self.args = [STRATUS, "up", "--data", self.data, "--api", "127.0.0.1:%d" % self.api_port]
        self.out = []
        self.proc = None

    def start(self):
        env = dict(os.environ, STRATUS_CONFIG=self.config)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        threading.Thread(target=self._read, daemon=True).start()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("stratus up exited %d:\n%s" % (self.proc.returncode, "".join(self.out)))
            return any("Stratus is up" in line for line in self.out)
        wait_until(ready, 60, "`stratus up` to say it is up")
        self.ready_s = time.monotonic() - t0
        with open(self.config) as f:
            cfg = json.load(f)
        self.api = Api(cfg["endpoint"], cfg["token"])
        self.pids = {}
        for pid in children_of(self.proc.pid):
            argv = pid_cmdline(pid)
            if len(argv) > 1:
                self.pids[argv[1].decode()] = pid
        for name in ("broker", "mothership", "satellite"):
            if name not in self.pids:
                raise RuntimeError("no %s child of stratus up (pid %d): %s" % (name, self.proc.pid, self.pids))
        return self

    def _read(self):
        for raw in self.proc.stdout:
            self.out.append(raw.decode(errors="replace"))

    def rss(self):
        r = {name: rss_kib(pid) for name, pid in self.pids.items()}
        pkc = [rss_kib(p) for p in children_of(self.pids["satellite"])]
        r["pkc_processes"] = len([x for x in pkc if x])
        r["pkc_processes_kib"] = sum(x for x in pkc if x)
        return r

    def log_path(self, name):
        return os.path.join(self.data, "logs", name + ".log")

    def stop(self):
        """SIGINT (stratus up stops the satellite, its clusters, the mothership and the
        broker), SIGKILL after 60 s; then any process of ours still running under DIR, by pid."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for p in os.listdir("/proc"):
            if p.isdigit() and any(self.data.encode() in a for a in pid_cmdline(int(p))):
                try:
                    os.kill(int(p), signal.SIGKILL)
                except OSError:
                    pass


class Proc:
    """One process of ours with its log file."""

    def __init__(self, args, log_path):
        self.args = args
        self.log_path = log_path
        logf = open(log_path, "w")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()

    @property
    def pid(self):
        return self.proc.pid

    def check(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited %d, see %s" % (self.args[1], self.proc.returncode, self.log_path))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# ---- part 1: POST to first produce -----------------------------------------------------

def sample(api, typ, name, region="local"):
    """One creation: POST cluster, POST key, poll until running with a bootstrap (and until
    the PKC reports the generation that has the key), produce until the first ack. Returns a
    dict of seconds from the POST's start, and what it saw."""
    r = {"type": typ, "name": name, "t0_wall_ms": now_wall_ms()}
    t0 = time.monotonic()
    _, cl, _ = api.call("POST", "/v1/clusters", cluster_body(name, typ, region),
                        headers={"Idempotency-Key": uuid.uuid4().hex}, expect=(202,))
    r["post_s"] = time.monotonic() - t0
    lkc, pkc = cl["id"], cl["status"]["pkc_id"]
    r.update(id=lkc, pkc=pkc, generation=cl["status"]["generation"], reason=cl["status"]["placement_reason"],
             new_pkc=not cl["status"]["placement_reason"].startswith("placed on"))
    _, key, _ = api.call("POST", "/v1/clusters/%s/api-keys" % lkc, headers={"Idempotency-Key": uuid.uuid4().hex},
                         expect=(201,))
    r["key_post_s"] = time.monotonic() - t0
    # The generation that holds the key: the PKC's newest after the key's POST (with other
    # creations going on at once it may hold more, so key_s is an upper bound then).
    _, pk, _ = api.call("GET", "/v1/physical-clusters/%s" % pkc, expect=(200,))
    key_generation = pk["generation"]
    r["key_generation"] = key_generation
    deadline = t0 + SAMPLE_DEADLINE_S
    producer = None
    acked, failures, errors = [], [], []
    polls = 0
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                r["error"] = "no ack within %d s (running=%s key=%s delivery errors=%s client errors=%s)" % (
                    SAMPLE_DEADLINE_S, "running_s" in r, "key_s" in r, failures[-1:], errors[-1:])
                break
            if "running_s" not in r or "key_s" not in r:
                _, doc, _ = api.call("GET", "/v1/clusters/%s" % lkc, expect=(200,))
                polls += 1
                st = doc["status"]
                t = time.monotonic() - t0
                if "running_s" not in r and st["phase"] == "running" and st.get("bootstrap"):
                    r["running_s"] = t
                    r["bootstrap"] = st["bootstrap"]
                if "key_s" not in r and (st.get("observed_generation") or 0) >= key_generation:
                    r["key_s"] = t
            if producer is None and "bootstrap" in r:
                conf = dict(CLIENT_CONF, **{"bootstrap.servers": r["bootstrap"], "sasl.username": key["key"],
                                            "sasl.password": key["secret"],
                                            "error_cb": lambda e: errors.append(str(e))})
                producer = Producer(conf)
                r["producer_s"] = time.monotonic() - t0

                def on_delivery(err, msg):
                    if err is None:
                        acked.append(time.monotonic())
                    else:
                        failures.append(str(err))
                        producer.produce("bench", b"first", on_delivery=on_delivery)
                producer.produce("bench", b"first", on_delivery=on_delivery)
            if producer is not None:
                producer.poll(0 if ("running_s" not in r or "key_s" not in r) else POLL_S)
                if acked:
                    r["ack_s"] = acked[0] - t0
                    if "key_s" in r:
                        break
            if producer is None or "key_s" not in r:
                time.sleep(POLL_S)
    finally:
        if producer is not None:
            producer.flush(1)
            del producer
    r["polls"] = polls
    r["delivery_errors"] = len(failures)
    r["client_errors"] = len(errors)
    r["client_error_kinds"] = sorted(set(re.sub(r"\d+", "N", e)[:120] for e in errors))[:4]
    return r


def delete_all(api, ids, deadline_s=DELETE_DEADLINE_S):
    """DELETE every cluster of <ids>, then wait until each is 404. Returns the seconds."""
    t0 = time.monotonic()
    for lkc in ids:
        api.call("DELETE", "/v1/clusters/%s" % lkc, expect=(202, 404))
    left = set(ids)
    deadline = t0 + deadline_s
    while left:
        if time.monotonic() > deadline:
            raise RuntimeError("%d clusters not gone %d s after DELETE: %s" % (len(left), deadline_s,
                                                                               sorted(left)[:5]))
        for lkc in sorted(left):
            status, _, _ = api.raw("GET", "/v1/clusters/%s" % lkc)
            if status == 404:
                left.discard(lkc)
        if left:
            time.sleep(0.05)
    return time.monotonic() - t0


def run_concurrent(api, typ, n, tag):
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait(30)
        try:
            results[i] = sample(api, typ, "%s-%d" % (tag, i))
        except Exception as e:  # noqa: BLE001  (reported as the sample's error)
            results[i] = {"type": typ, "error": "%s: %s" % (type(e).__name__, e)}
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAMPLE_DEADLINE_S + 60)
    return results


# ---- where the time goes: the components' own log lines -------------------------------

LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def wall_ms(line):
    m = LOG_TS.match(line)
    if not m:
        return None
    dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp() * 1000.0


def read_lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.readlines()
    except OSError:
        return []


def stages(up, samples):
    """Adds, to each sample, the wall-clock ms (from its POST) of what the mothership,
    the satellite and the PKC's lb logged about it:
      created   mothership `cluster created id=LKC`
      psc_recv  satellite `pkc=P offset=N: PSC generation=G` (first with G >= the cluster's)
      applied   satellite `pkc=P step=mark-applied generation=G`
      sat_run   satellite `pkc=P phase=running observed_generation=G`
      ms_run    mothership `summary: status pkc=P phase=running observed_generation=G`
      lb_up     the PKC's lb `health: target ... is up` (first; read before deletion)
    """
    ms_lines = read_lines(up.log_path("mothership"))
    sat_lines = read_lines(up.log_path("satellite"))
    pats = {
        "psc_recv": re.compile(r"satellite: pkc=(\S+) offset=\d+: PSC generation=(\d+)"),
        "applied": re.compile(r"satellite: pkc=(\S+) step=mark-applied generation=(\d+)"),
        "sat_run": re.compile(r"satellite: pkc=(\S+) phase=running observed_generation=(\d+)"),
    }
    sat_events = {k: [] for k in pats}
    for line in sat_lines:
        for k, pat in pats.items():
            m = pat.search(line)
            if m:
                sat_events[k].append((m.group(1), int(m.group(2)), wall_ms(line)))
    ms_run = []
    created = {}
    pat_run = re.compile(r"summary: status pkc=(\S+) phase=running observed_generation=(\d+)")
    pat_created = re.compile(r"api: cluster created id=(\S+)")
    for line in ms_lines:
        m = pat_run.search(line)
        if m:
            ms_run.append((m.group(1), int(m.group(2)), wall_ms(line)))
        m = pat_created.search(line)
        if m:
            created[m.group(1)] = wall_ms(line)
    lb_up = {}
    for s in samples:
        if not s or s.get("error") or s.get("pkc") in lb_up:
            continue
        for line in read_lines(os.path.join(up.data, s["pkc"], "lb", "lb.log")):
            if "is up" in line:
                lb_up[s["pkc"]] = wall_ms(line)
                break
    for s in samples:
        if not s or s.get("error"):
            continue
        t0 = s["t0_wall_ms"]
        st = {}
        if s["id"] in created:
            st["created"] = created[s["id"]] - t0
        for k, evs in list(sat_events.items()) + [("ms_run", ms_run)]:
            for pkc, gen, ts in evs:
                if pkc == s["pkc"] and gen >= s["generation"] and ts is not None and ts >= t0 - 1:
                    st[k] = ts - t0
                    break
        if s["new_pkc"] and s["pkc"] in lb_up:
            st["lb_up"] = lb_up[s["pkc"]] - t0
        s["stages_ms"] = st


def summarize(samples):
    ok = [s for s in samples if s and not s.get("error")]
    out = {"n": len(samples), "ok": len(ok), "errors": [s.get("error") for s in samples if not s or s.get("error")],
           "new_pkc": sum(1 for s in ok if s.get("new_pkc")),
           "delivery_errors": sum(s.get("delivery_errors", 0) for s in ok),
           "client_errors": sum(s.get("client_errors", 0) for s in ok),
           "client_error_kinds": sorted(set(k for s in ok for k in s.get("client_error_kinds", [])))}
    for k in ("post_s", "key_post_s", "running_s", "key_s", "ack_s"):
        xs = [s[k] for s in ok if k in s]
        out[k] = {"p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs) if xs else None}
    for k in ("created", "psc_recv", "applied", "sat_run", "ms_run", "lb_up"):
        xs = [s["stages_ms"][k] for s in ok if k in s.get("stages_ms", {})]
        if xs:
            out.setdefault("stages_ms", {})[k] = {"p50": pct(xs, 50), "p99": pct(xs, 99), "n": len(xs)}
    # The client's share: from the first poll that saw running (bootstrap known) to the ack.
    xs = [s["ack_s"] - s["running_s"] for s in ok if "ack_s" in s and "running_s" in s]
    out["client_s"] = {"p50": pct(xs, 50), "p99": pct(xs, 99)}
    return out


def part1(workdir, opts, rec, st):
    up = Up(workdir).start()
    st["up_command"] = base.rel_cmd(up.args).replace(up.data, "DIR")
    st["up_ready_s"] = up.ready_s
    log("stratus up ready in %.2f s: %s" % (up.ready_s, up.pids))
    api = up.api
    res = st["part1"] = {}
    try:
        time.sleep(2)   # a settled, idle control plane
        res["rss_idle"] = up.rss()
        log("idle RSS (KiB): %s" % res["rss_idle"])

        # Warm-up: the first basic cluster makes the multi-tenant PKC the samples land on.
        w = sample(api, "basic", "warmup")
        rec(dict(w, batch="warmup"))
        if w.get("error"):
            raise RuntimeError("warm-up cluster: %s" % w["error"])
        stages(up, [w])
        res["warmup"] = w
        log("warm-up (new PKC %s): running %.3f s, ack %.3f s" % (w["pkc"], w["running_s"], w["ack_s"]))

        n_seq, n_conc = opts.sequential, opts.concurrent
        for typ, batch in (("basic", 45), ("dedicated", 25)):
            seq = []
            while len(seq) < n_seq:
                part = []
                for i in range(min(batch, n_seq - len(seq))):
                    s = sample(api, typ, "seq-%d" % (len(seq) + i))
                    rec(dict(s, batch="sequential"))
                    part.append(s)
                    if s.get("error"):
                        log("  %s sequential %d: %s" % (typ, len(seq) + i, s["error"]))
                stages(up, part)
                seq += part
                ids = [s["id"] for s in part if s.get("id")]
                d = delete_all(api, ids)
                ok = [s["ack_s"] for s in part if "ack_s" in s]
                log("%s sequential: %d done (p50 %.3f s, max %.3f s); %d deleted in %.1f s" % (
                    typ, len(seq), pct(ok, 50) or -1, max(ok) if ok else -1, len(ids), d))
                res.setdefault("delete_s", []).append({"type": typ, "n": len(ids), "s": d})
            res["%s_sequential" % typ] = {"summary": summarize(seq), "samples": seq}
            conc = run_concurrent(api, typ, n_conc, "conc")
            for s in conc:
                rec(dict(s, batch="concurrent"))
            stages(up, conc)
            d = delete_all(api, [s["id"] for s in conc if s and s.get("id")])
            res.setdefault("delete_s", []).append({"type": typ, "n": n_conc, "s": d, "concurrent": True})
            res["%s_concurrent" % typ] = {"summary": summarize(conc), "samples": conc}
            sm = res["%s_concurrent" % typ]["summary"]
            log("%s concurrent x%d: ok %d, p50 %.3f s, p99 %.3f s; deleted in %.1f s" % (
                typ, n_conc, sm["ok"], sm["ack_s"]["p50"] or -1, sm["ack_s"]["p99"] or -1, d))
        time.sleep(2)
        res["rss_after"] = up.rss()
        log("RSS after (KiB): %s" % res["rss_after"])
        res["mothership_cpu_s"] = base.proc_cpu_s(up.pids["mothership"])
        res["satellite_cpu_s"] = base.proc_cpu_s(up.pids["satellite"])
        res["lb_health_interval"] = lb_health_interval(up)
    finally:
        up.stop()


def lb_health_interval(up):
    """The health-check settings the satellite writes into lb.conf (from a PKC still there)."""
    for name in sorted(os.listdir(up.data)):
        p = os.path.join(up.data, name, "lb", "lb.conf")
        if name.startswith("pkc-") and os.path.exists(p):
            with open(p) as f:
                text = f.read()
            return [line.strip() for line in text.splitlines() if "health" in line or "interval" in line][:6]
    return []


# ---- part 2: the API with 10,000 LKCs --------------------------------------------------

def heartbeat_loop(bootstrap, stop, sat, region):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "log_level": 0})
    while not stop.is_set():
        hb = {"api_version": "stratus/v1", "kind": "SatelliteHeartbeat", "satellite": sat, "region": region,
              "version": "bench", "time_ms": int(time.time() * 1000), "pkcs": 0}
        p.produce("stratus.status", key=sat, value=json.dumps(hb).encode())
        p.poll(0)
        stop.wait(1.0)
    p.flush(5)


def time_gets(api, paths, n, pid):
    """<n> GETs of <paths> in turn on one connection: latency (send to last body byte) and
    the mothership's (<pid>) on-CPU time per request."""
    lat = []
    cpu0 = base.proc_cpu_s(pid)
    for i in range(n):
        status, _, secs = api.raw("GET", paths[i % len(paths)])
        if status != 200:
            raise RuntimeError("GET %s: %d" % (paths[i % len(paths)], status))
        lat.append(secs * 1000)
    return {"n": n, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat),
            "mean_ms": statistics.mean(lat), "cpu_ms": (base.proc_cpu_s(pid) - cpu0) * 1000 / n}


def perf_profile(api, path, pid, workdir, n, method="GET", body=None):
    """perf record (cpu-clock, call graphs) of the mothership <pid> while <n> <method>s of
    <path> (with <body>) run; the top self-time symbols and the share of each library (no frame pointers in the
    libraries, so call graphs are not reliable)."""
    data = os.path.join(workdir, "perf-get.data")
    rec_p = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-p", str(pid), "-o", data],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        for i in range(n):
            api.raw(method, path, body, {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else None)
    finally:
        rec_p.send_signal(signal.SIGINT)
        rec_p.wait(30)
    out = {}
    for kind, sort in (("self", "dso,sym"), ("dso", "dso")):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none", "--sort", sort, "--no-children",
                              "--percent-limit", "1.5"], capture_output=True, text=True, timeout=120)
        lines = [" ".join(x.split()) for x in rep.stdout.splitlines() if x.strip() and not x.startswith("#")]
        out[kind] = lines[:14]
    return out


def walk(api, page_size):
    """Every page of GET /v1/clusters at <page_size> (None: default). Returns the list of
    page paths (first page included) and the number of clusters seen."""
    q = "" if page_size is None else "page_size=%d" % page_size
    paths, seen, token = [], 0, None
    while True:
        path = "/v1/clusters" + ("?" + "&".join(x for x in (q, token and "page_token=" + token) if x)
                                 if (q or token) else "")
        paths.append(path)
        _, doc, _ = api.call("GET", path, expect=(200,))
        items = doc["clusters"]
        seen += len(items)
        token = doc.get("next_page_token")
        if not token:
            return paths, seen


def part2(workdir, opts, rec, st):
    res = st["part2"] = {"lkcs": opts.lkcs}
    cp_dir = os.path.join(workdir, "cp-broker")
    ms_dir = os.path.join(workdir, "ms")
    os.makedirs(cp_dir)
    os.makedirs(ms_dir)
    bport, aport = base.free_port(), base.free_port()
    bootstrap = "127.0.0.1:%d" % bport
    broker = Proc([STRATUS, "broker", "--override", "listeners=PLAINTEXT://%s" % bootstrap,
                   "--override", "log.dirs=%s" % cp_dir], os.path.join(workdir, "cp-broker.log"))
    ms = None
    stop = threading.Event()
    hb = None
    try:
        wait_until(lambda: (broker.check(), base.api_versions_ok(bport, 1.0))[1], 20, "the control-plane broker")
        token_file = os.path.join(workdir, "token")
        ms_args = [STRATUS, "mothership", "--data", ms_dir, "--listen", "127.0.0.1:%d" % aport,
                   "--bootstrap", bootstrap, "--token-file", token_file]
        st["ms_command"] = base.rel_cmd(ms_args).replace(ms_dir, "DIR").replace(token_file, "TOKEN_FILE")
        st["cp_broker_command"] = base.rel_cmd(broker.args).replace(cp_dir, "DIR")
        ms = Proc(ms_args, os.path.join(workdir, "mothership.log"))

        def healthy():
            ms.check()
            try:
                c = http.client.HTTPConnection("127.0.0.1", aport, timeout=1)
                c.request("GET", "/healthz")
                ok = c.getresponse().status == 200
                c.close()
                return ok and os.path.exists(token_file)
            except OSError:
                return False
        wait_until(healthy, 30, "the mothership's /healthz")
        token = [ln.strip() for ln in open(token_file) if ln.strip() and not ln.startswith("#")][0]
        api = Api("http://127.0.0.1:%d" % aport, token)
        hb = threading.Thread(target=heartbeat_loop, args=(bootstrap, stop, "sat-bench-1", "bench"), daemon=True)
        hb.start()

        def registered():
            _, doc, _ = api.call("GET", "/v1/satellites", expect=(200,))
            items = doc["satellites"]
            return any(s.get("id") == "sat-bench-1" and not s.get("stale") for s in items)
        wait_until(registered, 30, "sat-bench-1 to be registered and not stale", 0.1)
        time.sleep(1)
        res["rss_idle"] = {"mothership": rss_kib(ms.pid), "broker": rss_kib(broker.pid)}
        log("part 2 idle RSS (KiB): %s" % res["rss_idle"])

        # 10,000 LKCs, sequential POSTs on one connection.
        cpu0 = base.proc_cpu_s(ms.pid)
        lat, ids = [], []
        new_pkcs = 0
        t0 = time.monotonic()
        for i in range(opts.lkcs):
            _, doc, secs = api.call("POST", "/v1/clusters", cluster_body("c%d" % i, "basic", "bench"),
                                    headers={"Idempotency-Key": uuid.uuid4().hex}, expect=(202,))
            lat.append(secs * 1000)
            ids.append(doc["id"])
            if not doc["status"]["placement_reason"].startswith("placed on"):
                new_pkcs += 1
            if (i + 1) % 2000 == 0:
                log("  %d LKCs, %.0f/s so far" % (i + 1, (i + 1) / (time.monotonic() - t0)))
        el = time.monotonic() - t0
        res["post"] = {"n": opts.lkcs, "s": el, "per_s": opts.lkcs / el, "p50_ms": pct(lat, 50),
                       "p99_ms": pct(lat, 99), "max_ms": max(lat), "new_pkcs": new_pkcs,
                       "cpu_ms_per_post": (base.proc_cpu_s(ms.pid) - cpu0) * 1000 / opts.lkcs,
                       "first_1000_p50_ms": pct(lat[:1000], 50), "last_1000_p50_ms": pct(lat[-1000:], 50),
                       "p50_by_1000_ms": [pct(lat[i:i + 1000], 50) for i in range(0, len(lat), 1000)]}
        log("POST: %d in %.1f s (%.0f/s), p50 %.2f ms, p99 %.2f ms, %d new PKCs" % (
            opts.lkcs, el, opts.lkcs / el, res["post"]["p50_ms"], res["post"]["p99_ms"], new_pkcs))
        rec({"kind": "post", **res["post"]})
        db = os.path.join(ms_dir, "mothership", "stratus.db")
        res["db_bytes"] = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))

        # GETs: the first page, and every page of a full walk in turn.
        gets = res["get"] = {}
        for label, size in (("default", None), ("500", 500)):
            paths, seen = walk(api, size)
            gets["walk_%s" % label] = {"pages": len(paths), "clusters": seen}
            first = time_gets(api, paths[:1], opts.gets, ms.pid)
            allp = time_gets(api, paths, opts.gets, ms.pid)
            _, body, _ = api.raw("GET", paths[0])
            gets["first_%s" % label] = dict(first, bytes=len(body))
            gets["pages_%s" % label] = allp
            log("GET %s page_size=%s: first page p50 %.2f p99 %.2f ms (%d bytes); all %d pages p50 %.2f p99 %.2f ms"
                % (paths[0], label, first["p50_ms"], first["p99_ms"], len(body), len(paths), allp["p50_ms"],
                   allp["p99_ms"]))
        rnd = random.Random(1)
        one = ["/v1/clusters/%s" % rnd.choice(ids) for _ in range(opts.gets)]
        gets["one"] = time_gets(api, one, opts.gets, ms.pid)
        if shutil.which("perf") and not opts.no_profile:
            res["profile_500"] = perf_profile(api, "/v1/clusters?page_size=500", ms.pid, workdir, 300)
            log("perf of GET page_size=500 (self): %s" % "\n  ".join(res["profile_500"]["self"][:8]))
        log("GET /v1/clusters/{id}: p50 %.2f p99 %.2f ms" % (gets["one"]["p50_ms"], gets["one"]["p99_ms"]))
        if shutil.which("perf") and not opts.no_profile:
            res["profile_post"] = perf_profile(api, "/v1/clusters", ms.pid, workdir, 300, "POST",
                                               cluster_body("p", "basic", "bench"))
            log("perf of POST at %d LKCs (by library): %s" % (opts.lkcs, ", ".join(res["profile_post"]["dso"][:5])))
        for k, v in gets.items():
            rec({"kind": "get", "what": k, **v})
        res["rss_after"] = {"mothership": rss_kib(ms.pid), "broker": rss_kib(broker.pid)}
        res["rss_peak_mothership_kib"] = base.proc_status_kib(ms.pid, "VmHWM")
        log("part 2 RSS after (KiB): %s" % res["rss_after"])
    finally:
        stop.set()
        if hb:
            hb.join(10)
        if ms:
            ms.stop()
        broker.stop()


# ---- the report ------------------------------------------------------------------------

def ms_(x):
    return "n/a" if x is None else "%.0f" % (x * 1000)


def mib(kib):
    return "n/a" if kib is None else "%.1f MiB" % (kib / 1024.0)


def render_section(st):
    L = []
    out = L.append
    m = st["machine"]
    p1, p2 = st.get("part1", {}), st.get("part2", {})
    out(SECTION)
    out("")
    out("Generated by `%s` on %s UTC in %.0f s. Machine: %s, %d cores (nproc), kernel %s; stratus %s "
        "(`build/release/stratus`, -O2), librdkafka %s; load average %s at start, %s at end, %.1f CPU-s "
        "stolen by the hypervisor during the run. Rerun `bench/cp_run.py` to refresh this section "
        "(`--render` rewrites it from `build/bench/cp_state.json`); the rest of this file is kept as it is." % (
            st["argv"], st["started"][:16].replace("T", " "), st["elapsed"], m["cpu"], m["nproc"], m["kernel"],
            m["commit"], m["librdkafka"], " ".join(m["loadavg_start"]), " ".join(m["loadavg_end"]),
            m.get("steal_s", 0)))
    if st.get("quick"):
        out("")
        out("**This is a `--quick` smoke run (small counts): do not read it as a result.**")
    out("")
    out("### Targets")
    out("")
    out("| target | measured | result |")
    out("|---|---|---|")

    def verdict(ok):
        return "**pass**" if ok else "**MISS**"
    for typ, label, target in (("basic", "LKC on an existing PKC usable within 1 s at p99", T_EXISTING_P99_S),
                               ("dedicated", "LKC needing a new PKC (dedicated) usable within 3 s at p99",
                                T_NEW_P99_S)):
        parts = []
        ok = True
        for mode in ("sequential", "concurrent"):
            sm = p1.get("%s_%s" % (typ, mode), {}).get("summary")
            if not sm:
                continue
            p99 = sm["ack_s"]["p99"]
            ok = ok and sm["ok"] == sm["n"] and p99 is not None and p99 <= target
            parts.append("%s p99 %s ms (%d/%d ok)" % (mode, ms_(p99), sm["ok"], sm["n"]))
        out("| %s | %s | %s |" % (label, "; ".join(parts), verdict(ok) if parts else "not run"))
    g = p2.get("get", {})
    if g:
        worst = max(g[k]["p99_ms"] for k in ("first_default", "pages_default"))
        out("| GET /v1/clusters p99 under 10 ms at %s LKCs (the default page, 50 clusters) | first page %.1f ms; "
            "every page in turn %.1f ms | %s |" % (
                "{:,}".format(p2["lkcs"]), g["first_default"]["p99_ms"], g["pages_default"]["p99_ms"],
                verdict(worst < T_GET_P99_MS)))
        worst = max(g[k]["p99_ms"] for k in ("first_500", "pages_500"))
        out("| the same at page_size=500, the largest page (ours, not the issue's) | first page %.1f ms; every page "
            "in turn %.1f ms | %s |" % (g["first_500"]["p99_ms"], g["pages_500"]["p99_ms"],
                                       verdict(worst < T_GET_P99_MS)))
    out("")

    # ---- part 1
    out("### POST to first produce")
    out("")
    out("`%s` (a control-plane broker, the mothership and one `local` satellite; ready in %.1f s), "
        "the token and endpoint from the config file it writes (`STRATUS_CONFIG`). Per sample, on one "
        "keep-alive HTTP connection per thread: `POST /v1/clusters` (1 MB/s in and out, 1 partition, an "
        "`Idempotency-Key`), `POST /v1/clusters/{id}/api-keys`, one `GET /v1/physical-clusters/{pkc}` for "
        "the generation that holds the key, then `GET /v1/clusters/{id}` every 10 ms until phase `running` "
        "with a bootstrap and until the PKC's `observed_generation` reaches the key's generation; as soon "
        "as the bootstrap is known a python3-confluent-kafka producer (SASL_PLAINTEXT, PLAIN with the key "
        "and secret, `linger.ms=0`, `reconnect.backoff.ms=10`, `reconnect.backoff.max.ms=100`, otherwise "
        "librdkafka defaults) produces one record to topic `bench` (auto-created) and re-produces after "
        "every failed delivery until the first delivery report without error. Times are from the start of "
        "the POST. **running**: the poll that first saw `running` with a bootstrap; **key applied**: the "
        "poll that first saw the key's generation observed; **first ack**: the delivery report (the "
        "total). Basic: a warm-up cluster first made the multi-tenant PKC; batches of at most 45 "
        "sequential creations (the built-in policy takes 50 tenants a PKC), every batch's clusters deleted "
        "(and gone, 404) before the next. Dedicated: batches of 25, deleted likewise. Concurrent: 20 "
        "threads start at a barrier, each one sample. p99 is nearest-rank: of 100 samples the 99th, of 20 "
        "the largest." % (st.get("up_command", ""), st.get("up_ready_s", 0)))
    out("")
    out("| LKC | samples | new PKC | POST | key POST | running p50 / p99 | key applied p50 / p99 | "
        "first ack p50 / p99 / max | client's part p50 / p99 | target | result |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for typ, target in (("basic", T_EXISTING_P99_S), ("dedicated", T_NEW_P99_S)):
        for mode in ("sequential", "concurrent"):
            sm = p1.get("%s_%s" % (typ, mode), {}).get("summary")
            if not sm:
                continue
            a = sm["ack_s"]
            ok = sm["ok"] == sm["n"] and a["p99"] is not None and a["p99"] <= target
            out("| %s, %s | %d (%d ok) | %d | %s ms | %s ms | %s / %s ms | %s / %s ms | %s / %s / %s ms | %s / %s ms "
                "| p99 <= %.0f s | %s |" % (
                    typ, mode, sm["n"], sm["ok"], sm["new_pkc"], ms_(sm["post_s"]["p50"]),
                    ms_(sm["key_post_s"]["p50"]), ms_(sm["running_s"]["p50"]), ms_(sm["running_s"]["p99"]),
                    ms_(sm["key_s"]["p50"]), ms_(sm["key_s"]["p99"]), ms_(a["p50"]), ms_(a["p99"]), ms_(a["max"]),
                    ms_(sm["client_s"]["p50"]), ms_(sm["client_s"]["p99"]), target, verdict(ok)))
    w = p1.get("warmup")
    if w:
        out("| basic, warm-up (the first: a new multi-tenant PKC) | 1 | 1 | %s ms | %s ms | %s ms | %s ms | %s ms | | | |"
            % (ms_(w.get("post_s")), ms_(w.get("key_post_s")), ms_(w.get("running_s")), ms_(w.get("key_s")),
               ms_(w.get("ack_s"))))
    out("")
    out("POST and key POST are p50 of the time from the start of the cluster's POST to each answer. "
        "\"client's part\" is first ack minus running: what the producer took once the API said running. "
        "Samples whose placement needed a new PKC are in the \"new PKC\" column (basic: each should have "
        "landed on the warm-up's PKC).")
    errs = [(k, sm) for k in ("basic_sequential", "basic_concurrent", "dedicated_sequential", "dedicated_concurrent")
            for sm in [p1.get(k, {}).get("summary")] if sm]
    kinds = sorted(set(x for _, sm in errs for x in sm["client_error_kinds"]))
    out("")
    out("Client-side errors seen before the first ack (librdkafka error callbacks / failed deliveries): %s%s." % (
        ", ".join("%s %d / %d" % (k.replace("_", " "), sm["client_errors"], sm["delivery_errors"]) for k, sm in errs),
        ("; kinds: " + "; ".join("`%s`" % x for x in kinds)) if kinds else ""))
    failed = [(k, e) for k, sm in errs for e in sm["errors"]]
    if failed:
        out("")
        out("Failed samples: " + "; ".join("%s: %s" % (k, e) for k, e in failed[:6]))
    out("")
    out("Where the time goes, from the components' own log lines (ms after the POST began; wall clock of "
        "the same host, millisecond stamps): the mothership's `cluster created`, the satellite's receipt "
        "of the first PSC that holds the cluster (`PSC generation=G`), its `step=mark-applied`, its "
        "`phase=running` report, the mothership's `summary: status ... phase=running`, and for new PKCs "
        "the balancer's first `health: target ... is up`:")
    out("")
    out("| LKC | created | PSC received by the satellite | applied | satellite reports running | "
        "mothership sees running | lb target up | API poll sees running | first ack |")
    out("|---|---|---|---|---|---|---|---|---|")
    for typ in ("basic", "dedicated"):
        for mode in ("sequential", "concurrent"):
            sm = p1.get("%s_%s" % (typ, mode), {}).get("summary")
            if not sm:
                continue
            sg = sm.get("stages_ms", {})

            def c(k):
                v = sg.get(k)
                return "%.0f / %.0f" % (v["p50"], v["p99"]) if v else "n/a"
            out("| %s, %s (p50 / p99) | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |" % (
                typ, mode, c("created"), c("psc_recv"), c("applied"), c("sat_run"), c("ms_run"), c("lb_up"),
                ms_(sm["running_s"]["p50"]), ms_(sm["running_s"]["p99"]), ms_(sm["ack_s"]["p50"]),
                ms_(sm["ack_s"]["p99"])))
    if p1.get("delete_s"):
        out("")
        out("Deleting a batch (DELETE each, then until every one is 404): " + "; ".join(
            "%s%s %d in %.1f s" % (d["type"], " (concurrent batch)" if d.get("concurrent") else "", d["n"], d["s"])
            for d in p1["delete_s"]) + ".")
    out("")

    # ---- part 2
    if p2.get("post"):
        po, g = p2["post"], p2["get"]
        out("### The API with %s LKCs" % "{:,}".format(p2["lkcs"]))
        out("")
        out("`%s` on `%s` (a fresh data directory), and a fake satellite: a python3-confluent-kafka "
            "producer that writes a `SatelliteHeartbeat` (docs/psc.md) keyed `sat-bench-1`, region `bench`, "
            "to `stratus.status` every second, so placement works and nothing is started (the PSCs wait in "
            "`psc.sat-bench-1`). %s basic LKCs (1 MB/s, 1 partition) created by sequential POSTs on one "
            "keep-alive connection, then %s timed GETs of each kind (send to last body byte, one connection)." % (
                st.get("ms_command", ""), st.get("cp_broker_command", ""), "{:,}".format(p2["lkcs"]),
                "{:,}".format(po and st["gets"])))
        out("")
        out("| request | requests | p50 | p99 | max | mothership CPU a request | notes |")
        out("|---|---|---|---|---|---|---|")
        out("| POST /v1/clusters | %s | %.2f ms | %.2f ms | %.1f ms | %.2f ms | **%.0f/s**; %d new PKCs planned (50 "
            "tenants each); p50 of the first 1,000 %.2f ms, of the last 1,000 %.2f ms; store %.1f MiB after |"
            % ("{:,}".format(po["n"]), po["p50_ms"], po["p99_ms"], po["max_ms"], po["cpu_ms_per_post"], po["per_s"],
               po["new_pkcs"], po["first_1000_p50_ms"], po["last_1000_p50_ms"], p2["db_bytes"] / 1048576.0))
        for key, label in (("first_default", "GET /v1/clusters (default page_size 50), first page"),
                           ("pages_default", "GET /v1/clusters (default page_size), each of the %d pages in turn"
                            % g["walk_default"]["pages"]),
                           ("first_500", "GET /v1/clusters?page_size=500, first page"),
                           ("pages_500", "GET /v1/clusters?page_size=500, each of the %d pages in turn"
                            % g["walk_500"]["pages"]),
                           ("one", "GET /v1/clusters/{id}, random ids")):
            v = g[key]
            note = ""
            if key.startswith("first"):
                note = "%d bytes" % v["bytes"]
            out("| %s | %s | %.2f ms | %.2f ms | %.1f ms | %.2f ms | %s |" % (
                label, "{:,}".format(v["n"]), v["p50_ms"], v["p99_ms"], v["max_ms"], v.get("cpu_ms", 0), note))
        out("")
        out("POST latency grows with the LKCs stored: p50 of each successive 1,000 POSTs: %s ms." % ", ".join(
            "%.1f" % x for x in po.get("p50_by_1000_ms", [])))
        prof = p2.get("profile_post")
        if prof:
            out("")
            out("Where a POST spends the mothership's CPU at %s LKCs (perf, 300 more POSTs after the GETs, self "
                "time): by library %s; top symbols %s." % ("{:,}".format(p2["lkcs"]), ", ".join(
                    "`%s`" % x for x in prof["dso"][:6]), ", ".join("`%s`" % x for x in prof["self"][:8])))
        prof = p2.get("profile_500")
        if prof:
            out("")
            out("Where a `page_size=500` GET spends the mothership's CPU (`perf record -e cpu-clock -F 2000 -p "
                "MOTHERSHIP_PID` over 300 of them; self time): by library " + ", ".join(
                    "`%s`" % x for x in prof["dso"][:6]) + "; top symbols " + ", ".join(
                    "`%s`" % x for x in prof["self"][:8]) + ".")
        out("")

    # ---- part 3
    out("### Memory")
    out("")
    out("VmRSS from /proc/PID/status.")
    out("")
    out("| process | idle | after the runs | notes |")
    out("|---|---|---|---|")
    if p1.get("rss_idle"):
        a, b = p1["rss_idle"], p1.get("rss_after", {})
        out("| mothership (`stratus up`) | %s | %s | after the %d creations and deletions above |" % (
            mib(a.get("mothership")), mib(b.get("mothership")), len(st.get("part1_ids", [])) or
            sum(p1.get(k, {}).get("summary", {}).get("n", 0) for k in
                ("basic_sequential", "basic_concurrent", "dedicated_sequential", "dedicated_concurrent")) + 1))
        out("| satellite (`stratus up`) | %s | %s | idle: no PKC; after: the warm-up's PKC left |" % (
            mib(a.get("satellite")), mib(b.get("satellite"))))
        out("| control-plane broker (`stratus up`) | %s | %s | |" % (mib(a.get("broker")), mib(b.get("broker"))))
        out("| PKC processes (brokers and lbs) | %s in %d | %s in %d | |" % (
            mib(a.get("pkc_processes_kib")), a.get("pkc_processes", 0), mib(b.get("pkc_processes_kib")),
            b.get("pkc_processes", 0)))
    if p2.get("rss_idle"):
        a, b = p2["rss_idle"], p2.get("rss_after", {})
        out("| mothership with %s LKCs | %s (empty store) | %s (peak %s) | after the POSTs and GETs above |" % (
            "{:,}".format(p2["lkcs"]), mib(a.get("mothership")), mib(b.get("mothership")),
            mib(p2.get("rss_peak_mothership_kib"))))
        out("| its control-plane broker | %s | %s | holds %d PSCs |" % (
            mib(a.get("broker")), mib(b.get("broker")), p2.get("post", {}).get("new_pkcs", 0)))
    out("")
    out("### Reading")
    out("")
    for para in st.get("reading", []):
        out(para)
        out("")
    return "\n".join(L).rstrip("\n") + "\n"


def readings(st):
    """The short reading: where the time goes, from the numbers of this run, with the timers
    and intervals of the code that explain them (file:line as of the run's commit)."""
    p1, p2 = st.get("part1", {}), st.get("part2", {})
    R = []

    def sg(key, stage, q="p50"):
        v = p1.get(key, {}).get("summary", {}).get("stages_ms", {}).get(stage)
        return v[q] if v else None

    def sm(key):
        return p1.get(key, {}).get("summary")
    for typ in ("basic", "dedicated"):
        for mode in ("sequential", "concurrent"):
            key = "%s_%s" % (typ, mode)
            s = sm(key)
            if not s or not s.get("stages_ms"):
                continue
            R.append("- **%s, %s** (p50, ms after the POST began): POST answered %s; the satellite had the PSC at %s "
                     "and marked it applied at %s; it reported running at %s%s; the mothership took that in at %s "
                     "and a 10 ms poll saw it at %s; first ack at %s (the client's part, after running: p50 %s, "
                     "p99 %s)." % (
                         typ, mode, ms_(s["post_s"]["p50"]), fmt(sg(key, "psc_recv")), fmt(sg(key, "applied")),
                         fmt(sg(key, "sat_run")),
                         (", the balancer's first healthy target at %s (p99 %s)" % (
                             fmt(sg(key, "lb_up")), fmt(sg(key, "lb_up", "p99")))) if sg(key, "lb_up") else "",
                         fmt(sg(key, "ms_run")), ms_(s["running_s"]["p50"]), ms_(s["ack_s"]["p50"]),
                         ms_(s["client_s"]["p50"]), ms_(s["client_s"]["p99"])))
    if R:
        R.insert(0, "Where the time goes, per kind of creation:")
        R = ["\n".join(R)]
    b, d = sm("basic_sequential"), sm("dedicated_sequential")
    bc, dc = sm("basic_concurrent"), sm("dedicated_concurrent")
    if b and d:
        R.append("**An LKC on an existing PKC** is a tenants-file rewrite and a SIGHUP (`write-tenants`, no process "
                 "started): the PSC reaches the satellite through the control-plane broker within a few ms of the "
                 "POST, applying it takes about 2 ms, and most of the rest is the status's trip back (satellite -> "
                 "`stratus.status` -> the mothership's summary), the 10 ms poll granularity and the client's own "
                 "connect, SASL, Metadata (topic auto-created) and Produce. Nothing waits on a timer here.")
    if bc and bc.get("stages_ms"):
        lag = (sg("basic_concurrent", "ms_run") or 0) - (sg("basic_concurrent", "sat_run") or 0)
        R.append("**Twenty at once** are serialised by the mothership: one loop thread serves HTTP and consumes "
                 "`stratus.status` (docs/api.md, \"Consistency\"), and here 20 clients each poll every 10 ms "
                 "(up to 2,000 GETs/s on top of the POSTs), so a status the satellite reported at p50 %s ms is "
                 "taken in %.0f ms later (p50), and POST p50 rises from %s to %s ms. The satellite itself applies "
                 "the 20 PSC changes in order, a few ms each. The client's part (p50 %s ms) is 20 librdkafka "
                 "producers connecting and authenticating at once from Python threads on the same 2 cores." % (
                     fmt(sg("basic_concurrent", "sat_run")), lag, ms_(b["post_s"]["p50"]), ms_(bc["post_s"]["p50"]),
                     ms_(bc["client_s"]["p50"])))
    if d:
        R.append("**A new PKC** starts a broker and a `stratus lb`. Two fixed intervals shape its tail: (1) after "
                 "`start-broker` and `start-lb` the operator looks again only on its busy timer, "
                 "`RECONCILE_BUSY_MS` 100 (src/satellite/main.c), when the broker or the balancer did not answer "
                 "its probe at the first pass; (2) the balancer checks a new target at once (src/lb/health.c) but, "
                 "when that check finds the broker not yet listening, again only after `health_interval_ms 200`, "
                 "which the satellite writes into lb.conf. The satellite reports `running` only once the balancer's "
                 "own `/metrics` shows every broker up (src/satellite/proc.c `proc_probe_lb_targets_up`), so the "
                 "bootstrap address forwards when the API says `running`; the client errors counted above are "
                 "librdkafka's first connection racing the key's tenants file (client's part p99 %s ms sequential, "
                 "%s ms concurrent). The start itself (PSC to `mark-applied`) is about %s ms." % (
                     ms_(d["client_s"]["p99"]), ms_(dc["client_s"]["p99"]) if dc else "n/a",
                     fmt((sg("dedicated_sequential", "applied") or 0) - (sg("dedicated_sequential", "psc_recv") or 0))))
    if dc and dc.get("stages_ms"):
        R.append("**Twenty new PKCs at once** queue in the satellite: it reads and applies PSCs on its one loop "
                 "thread, and each new PKC's steps (port allocation, three files, fork/exec of a broker and of a "
                 "balancer) run before the next PSC is read, so the PSC is read at p50 %s ms (p99 %s) and applied "
                 "at p50 %s ms (p99 %s), against %s and %s one at a time; the 100 ms and 200 ms steps above come "
                 "on top." % (fmt(sg("dedicated_concurrent", "psc_recv")), fmt(sg("dedicated_concurrent", "psc_recv", "p99")),
                              fmt(sg("dedicated_concurrent", "applied")), fmt(sg("dedicated_concurrent", "applied", "p99")),
                              fmt(sg("dedicated_sequential", "psc_recv")), fmt(sg("dedicated_sequential", "applied"))))
    w = p1.get("warmup")
    if w and w.get("stages_ms"):
        R.append("**The very first cluster** (the warm-up) took %s ms to running: its PSC, written by the mothership "
                 "%s ms after the POST began, reached the satellite only at %s ms, while every later PSC takes a few ms. An "
                 "independent consumer of `psc.sat-local-1` (fetch.wait.max.ms 5) sees the first record just as "
                 "late, and the record's CreateTime is stamped ~5 ms after the POST, so the wait is in the "
                 "mothership's idempotent producer (src/bus/bus.c) on its first produce to a topic it has not "
                 "produced to before (librdkafka 2.0.2; 0.4 to 1.0 s in the runs made while writing this script), not in the satellite. Only the first PSC of a satellite pays it." % (
                     ms_(w.get("running_s")), fmt(w["stages_ms"].get("created")), fmt(w["stages_ms"].get("psc_recv"))))
    po = p2.get("post")
    if po:
        R.append("**POST rate.** Creating %s LKCs one at a time ran at %.0f/s overall (p50 %.1f ms for the first "
                 "1,000, %.1f ms for the last; mothership CPU %.1f ms a POST, about the latency: CPU-bound, not "
                 "fsync-bound). Placement needs the load of every PKC of the region; each PKC row carries its LKCs' "
                 "summed sizing, kept by SQLite triggers on the lkc table in the same transaction as every change "
                 "(src/mothership/store.c, migration 2), so a POST reads one row per PKC (200 here), not every LKC "
                 "of the region. Measured while making that change (same machine, back to back, 10,000 POSTs each): "
                 "summing the LKC rows at each POST, one query per PKC, ran at 142/s with the last 1,000 at 11.7 ms "
                 "p50; one aggregate query for the region, 183/s and 8.5 ms; the totals, 420/s and 2.5 ms. The "
                 "remaining growth is the PKC list itself and SQLite's larger B-trees." % (
                     "{:,}".format(po["n"]), po["per_s"], po["first_1000_p50_ms"], po["last_1000_p50_ms"],
                     po["cpu_ms_per_post"]))
    g = p2.get("get")
    if g:
        R.append("**GET /v1/clusters** pages by `seq` (keyset: `WHERE seq > ? ORDER BY seq LIMIT ?`), so a deep "
                 "page costs what the first does; its cost is the page size: %.2f ms of mothership CPU for 50 "
                 "clusters, %.2f ms for 500 (%s KiB of JSON), most of it building and dumping the jansson tree "
                 "(jansson and libc's malloc/free in the profile; SQLite is a few per cent). At 500 a page the p99 "
                 "is %.1f ms against 10 ms on this shared 2-core VM, the one with little margin (a loop of jansson "
                 "alone, outside the mothership, builds 500 cluster objects in 1.1 ms and dumps them in 2.7 ms "
                 "indented, 2.2 ms compact: the encoder, not the store, is the cost); a single cluster GET is "
                 "%.2f ms at p99." % (
                     g["first_default"]["cpu_ms"], g["first_500"]["cpu_ms"], "{:,}".format(g["first_500"]["bytes"] // 1024),
                     max(g["first_500"]["p99_ms"], g["pages_500"]["p99_ms"]), g["one"]["p99_ms"]))
    st["reading"] = R + st.get("notes", [])


def fmt(x):
    return "n/a" if x is None else "%.0f" % x


LOGS = os.path.join(ROOT, "build/bench/cp-logs")


def keep_logs(workdir):
    """Copies the processes' logs (not the data) to build/bench/cp-logs/ before <workdir> goes."""
    subprocess.run(["rm", "-rf", LOGS])
    os.makedirs(LOGS)
    for dirpath, _dirs, files in os.walk(workdir):
        for name in files:
            if name.endswith(".log") and "/log/" not in dirpath + "/":
                src = os.path.join(dirpath, name)
                dst = os.path.join(LOGS, os.path.relpath(src, workdir).replace("/", "_"))
                try:
                    with open(src, "rb") as a, open(dst, "wb") as b:
                        b.write(a.read())
                except OSError:
                    pass


def write_section(out_path, section):
    old = open(out_path).read() if os.path.exists(out_path) else "# Benchmarks\n"
    with open(out_path, "w") as f:
        f.write(base.splice_section(old, section, SECTION))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts (about a minute), as a smoke test")
    ap.add_argument("--sequential", type=int, default=100, help="sequential creations per LKC type")
    ap.add_argument("--concurrent", type=int, default=20, help="concurrent creations per LKC type")
    ap.add_argument("--lkcs", type=int, default=10000, help="LKCs stored for the GET measurements")
    ap.add_argument("--gets", type=int, default=2000, help="timed GETs of each kind")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks.md"))
    ap.add_argument("--notes", default=None, help="a file of paragraphs appended to the reading")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profile of the GETs")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: up,api")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from build/bench/cp_state.json")
    opts = ap.parse_args()
    notes = []
    if opts.notes:
        notes = [p.strip() for p in open(opts.notes).read().split("\n\n") if p.strip()]
    if opts.render:
        with open(STATE) as f:
            st = json.load(f)
        if opts.notes:
            st["notes"] = notes
        readings(st)
        with open(STATE, "w") as f:
            json.dump(st, f)
        write_section(opts.out, render_section(st))
        log("wrote the %r section of %s" % (SECTION, base.rel(opts.out)))
        return
    if opts.quick:
        opts.sequential, opts.concurrent, opts.lkcs, opts.gets = 10, 5, 500, 200
    t_begin = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    if not opts.no_build:
        log("building: make build/release/stratus")
        subprocess.run(["make", "-C", ROOT, "-j2", "build/release/stratus"], check=True, stdout=subprocess.DEVNULL)
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    machine = {"nproc": os.cpu_count(), "cpu": base.cpu_model(), "kernel": platform.release(),
               "loadavg_start": open("/proc/loadavg").read().split()[:3], "librdkafka": base.librdkafka_version(),
               "commit": base.git_describe(), "steal_start_s": base.cpu_steal_s()}
    log("machine: %s" % machine)
    st = {"argv": " ".join(["bench/cp_run.py"] + [shlex.quote(a) for a in sys.argv[1:]]),
          "started": started.isoformat(), "quick": opts.quick, "machine": machine, "gets": opts.gets,
          "notes": notes}
    results = open(RESULTS, "w")

    def rec(d):
        results.write(json.dumps(d) + "\n")
        results.flush()
    skip = set(x for x in opts.skip.split(",") if x)
    workdir = tempfile.mkdtemp(prefix="stratus-cpb-", dir="/tmp")
    try:
        if "up" not in skip:
            os.makedirs(os.path.join(workdir, "p1"))
            part1(os.path.join(workdir, "p1"), opts, rec, st)
        if "api" not in skip:
            os.makedirs(os.path.join(workdir, "p2"))
            part2(os.path.join(workdir, "p2"), opts, rec, st)
    finally:
        keep_logs(workdir)
        subprocess.run(["rm", "-rf", workdir])
    machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    machine["steal_s"] = base.cpu_steal_s() - machine["steal_start_s"]
    st["elapsed"] = time.monotonic() - t_begin
    readings(st)
    with open(STATE, "w") as f:
        json.dump(st, f)
    write_section(opts.out, render_section(st))
    log("wrote the %r section of %s (%.0f s)" % (SECTION, base.rel(opts.out), st["elapsed"]))


if __name__ == "__main__":
    main()
