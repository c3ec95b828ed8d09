#!/usr/bin/python3
"""Runs the Stratus benchmark and writes docs/benchmarks.md.

Builds the release broker and bench/stratus_bench, measures this machine's loopback and
page-cache write bandwidth, then runs the produce/consume matrix (100 B and 1 KiB records,
acks=1 and acks=all, 1 and 16 partitions) against librdkafka's in-process mock cluster
(the ceiling) and against a fresh release broker, interleaved and repeated; then the
fsync (group commit) produce, the 10k records/s latency run, start-to-serving time and
idle RSS. Every run is bounded in records and seconds; only 127.0.0.1 is used; only the
processes started here are stopped, by pid. Standard library only.

Usage: bench/run.py [--reps N] [--quick] [--out docs/benchmarks.md]
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKER = os.path.join(ROOT, "build/release/stratus")
BENCH = os.path.join(ROOT, "build/bench/stratus_bench")
GIB = float(1 << 30)
MIB = float(1 << 20)
MOCK_RETAINED_BYTES = 5 * 1024 * 1024   # the mock keeps the newest 5 MiB per partition

# Targets from the issue.
T_PRODUCE_1K = 0.60
T_PRODUCE_100 = 0.50
T_CPU_IN = 0.35
T_CPU_OUT = 0.10
T_CONSUME_X = 2.0
T_LAT_P99_MS = 1.0
T_FSYNC_MBPS = 200.0
T_IDLE_RSS_MIB = 10.0
T_START_MS = 50.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Recorder:
    """Keeps every JSON result of a load tool in a .jsonl file and the distinct command
    lines (for the report). Runners subclass it with their own bench()."""

    def __init__(self, results_path):
        os.makedirs(os.path.dirname(results_path), exist_ok=True)
        self.results = open(results_path, "w")
        self.commands = []

    def note(self, line):
        if line not in self.commands:
            self.commands.append(line)


def rel_cmd(cmd):
    """<cmd> as a shell line, with repository paths relative and ports as PORT."""
    out = []
    for a in cmd:
        if a.startswith(ROOT + "/"):
            a = os.path.relpath(a, ROOT)
        a = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", a)
        out.append(shlex.quote(a))
    return " ".join(out)


def rel(path):
    return os.path.relpath(path, ROOT)


# ---- the broker process -------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu_ticks_s(pid):
    """utime+stime of <pid> in seconds, from /proc/PID/stat (clock ticks, 10 ms)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    """On-CPU time of all threads of <pid> in seconds: se.sum_exec_runtime from
    /proc/PID/task/*/sched (microsecond precision; the 10 ms ticks of /proc/PID/stat are
    too coarse for sub-second runs), or utime+stime where that file is missing."""
    total = 0.0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/sched" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("se.sum_exec_runtime"):
                        total += float(line.split(":")[1]) / 1000.0
                        break
                else:
                    return proc_cpu_ticks_s(pid)
    except OSError:
        return proc_cpu_ticks_s(pid)
    return total


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def api_versions_ok(port, timeout_s):
    """Sends ApiVersions v0 and reads a whole answer. Returns True if one came."""
    client_id = b"bench"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            hdr = b""
            while len(hdr) < 4:
                chunk = s.recv(4 - len(hdr))
                if not chunk:
                    return False
                hdr += chunk
            size = struct.unpack(">i", hdr)[0]
            got = 0
            while got < size:
                chunk = s.recv(size - got)
                if not chunk:
                    return False
                got += len(chunk)
            return size >= 6
    except OSError:
        return False


class Broker:
    """One release broker on a fresh data directory under <workdir>."""

    def __init__(self, workdir, name, overrides=()):
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.log_path = self.dir + ".log"
        self.args = [BROKER, "broker",
                     "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % self.port,
                     "--override", "log.dirs=%s" % self.dir]
        for o in overrides:
            self.args += ["--override", o]
        self.proc = None
        self.start_ms = None

    def start(self):
        """Starts the broker and polls (every 0.2 ms) until ApiVersions is answered;
        records the time from exec to that answer in start_ms."""
        logf = open(self.log_path, "w")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = t0 + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited with %d, see %s" % (self.proc.returncode, self.log_path))
            if api_versions_ok(self.port, 1.0):
                self.start_ms = (time.monotonic() - t0) * 1000
                return self
            time.sleep(0.0002)
        self.stop()
        raise RuntimeError("broker did not answer within 10 s, see %s" % self.log_path)

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def cpu_ticks_s(self):
        return proc_cpu_ticks_s(self.proc.pid)

    def rss_kib(self):
        return proc_status_kib(self.proc.pid, "VmRSS")

    def hwm_kib(self):
        return proc_status_kib(self.proc.pid, "VmHWM")

    def stop(self, keep=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class RssSampler:
    """Samples VmRSS of <pid> every 20 ms while running; keeps the peak."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_kib = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_flag.is_set():
            try:
                self.peak_kib = max(self.peak_kib, proc_status_kib(self.pid, "VmRSS") or 0)
            except OSError:
                return
            self.stop_flag.wait(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join()


# ---- running the load tool ----------------------------------------------------------

class Runner:
    def __init__(self, results_path):
        self.results = open(results_path, "w")
        self.commands = []      # distinct command lines, in first-run order

    def bench(self, args, timeout_s):
        """Runs stratus_bench with <args>; returns its JSON result (or one with "error")."""
        cmd = [BENCH] + args
        line = " ".join(shlex.quote(rel(a) if a == BENCH else a) for a in cmd)
        if line not in self.commands:
            self.commands.append(line)
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log("  TIMEOUT: " + line)
            return {"error": "timeout", "command": line}
        res = None
        for out in p.stdout.splitlines():
            if out.startswith("{"):
                res = json.loads(out)
            elif out.startswith("#"):
                log("  " + out)
        if res is None:
            log("  FAILED (%d): %s\n%s" % (p.returncode, line, p.stderr[-2000:]))
            return {"error": "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]), "command": line}
        if p.returncode != 0 and not res.get("error"):
            res["error"] = "exit %d" % p.returncode
        res["command"] = line
        return res

    def save(self, res):
        """Appends <res>, with whatever the caller added, to the JSON lines file."""
        self.results.write(json.dumps(res) + "\n")
        self.results.flush()


# ---- machine measurements ------------------------------------------------------------

def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1 << 20)
    return 0


def pagecache_write(path, total_bytes):
    """Writes <total_bytes> to a new file in 1 MiB writes (no fsync), then unlinks it.
    Returns (MiB/s, CPU-s per GiB) of the writes."""
    chunk = os.urandom(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    c0 = os.times()
    t0 = time.monotonic()
    done = 0
    while done < total_bytes:
        done += os.write(fd, chunk)
    dt = time.monotonic() - t0
    c1 = os.times()
    os.close(fd)
    os.unlink(path)
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return done / MIB / dt, cpu / (done / GIB)


class Prefault:
    """This VM hands memory that stayed free for ~2 s back to the host (free page
    reporting), and the next touch of it is ~10x slower than reusing it (see
    docs/benchmarks.md). Before each run, writing and dropping a scratch file as big as
    the run's data makes the run's page cache and client buffers reuse backed memory,
    for the mock and the broker alike."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "prefault.tmp")
        self.rates = []

    def __call__(self, nbytes):
        mbps, _ = pagecache_write(self.path, int(nbytes))
        self.rates.append(mbps)
        return mbps


def cpu_steal_s():
    """Seconds of CPU time the hypervisor gave to others (steal, all CPUs), /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def git_describe():
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True).stdout.strip()
        return head + (" (src/ modified)" if dirty else "")
    except OSError:
        return "unknown"


def librdkafka_version():
    try:
        return subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True,
                              text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


# ---- the benchmark -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="repetitions of every run (median is reported)")
    ap.add_argument("--quick", action="store_true", help="1 repetition, smaller runs (smoke test)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the report from the last run's build/bench/state.json")
    opts = ap.parse_args()
    state_path = os.path.join(ROOT, "build/bench/state.json")
    if opts.render:
        render(state_path, opts.out)
        return
    reps = 1 if opts.quick else opts.reps
    scale = 0.2 if opts.quick else 1.0
    t_begin = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)

    if not opts.no_build:
        log("building: make build/release/stratus bench")
        subprocess.run(["make", "-C", ROOT, "-j2", "build/release/stratus", "bench"], check=True,
                       stdout=subprocess.DEVNULL)

    workdir = tempfile.mkdtemp(prefix="stratus-bench-", dir="/tmp")
    os.makedirs(os.path.join(ROOT, "build/bench"), exist_ok=True)
    results_path = os.path.join(ROOT, "build/bench/results.jsonl")
    runner = Runner(results_path)
    machine = {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "mem_gib": mem_total_gib(),
        "kernel": platform.release(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "steal_start_s": cpu_steal_s(),
        "librdkafka": librdkafka_version(),
        "commit": git_describe(),
        "workdir_fs": subprocess.run(["df", "-T", workdir], capture_output=True,
                                     text=True).stdout.splitlines()[-1].split()[1],
    }
    log("machine: %s" % machine)

    # Loopback and page cache: what moving bytes costs here, whoever moves them.
    scratch = os.path.join(workdir, "pagecache.tmp")
    loopback, loop_sf, pc_warm, pc_cold = [], [], [], []
    for _ in range(3):
        time.sleep(3)   # long enough for the VM to hand the free memory back
        pc_cold.append(pagecache_write(scratch, int(1 * GIB)))
        pc_warm.append(pagecache_write(scratch, int(1 * GIB)))
        loopback.append(runner.bench(["loopback", "--seconds", "1.5"], 30))
        runner.save(loopback[-1])
        loop_sf.append(runner.bench(["loopback", "--sendfile", "--seconds", "1.5"], 30))
        runner.save(loop_sf[-1])
    machine["loopback_mbps"] = med(loopback, "mb_per_s")
    machine["loopback_all"] = [r.get("mb_per_s") for r in loopback]
    machine["loopback_send_cpu"] = med(loopback, "send_cpu_s_per_gib")
    machine["loopback_recv_cpu"] = med(loopback, "recv_cpu_s_per_gib")
    machine["sendfile_mbps"] = med(loop_sf, "mb_per_s")
    machine["sendfile_send_cpu"] = med(loop_sf, "send_cpu_s_per_gib")
    machine["sendfile_recv_cpu"] = med(loop_sf, "recv_cpu_s_per_gib")
    machine["pagecache_mbps"] = median([x[0] for x in pc_warm])
    machine["pagecache_cpu"] = median([x[1] for x in pc_warm])
    machine["pagecache_cold_mbps"] = median([x[0] for x in pc_cold])
    machine["pagecache_cold_cpu"] = median([x[1] for x in pc_cold])
    log("loopback %.0f MB/s, page cache %.0f MB/s (%.0f MB/s after a pause)"
        % (machine["loopback_mbps"], machine["pagecache_mbps"], machine["pagecache_cold_mbps"]))
    prefault = Prefault(workdir)

    # Start to serving and idle RSS, on an empty log.
    starts, idle_rss = [], []
    for i in range(5):
        b = Broker(workdir, "start%d" % i).start()
        starts.append(b.start_ms)
        time.sleep(0.3)
        idle_rss.append(b.rss_kib())
        b.stop()
    log("start to serving %s ms, idle RSS %s KiB" % (["%.1f" % s for s in starts], idle_rss))

    sizes = (100, 1024)
    partitions = (1, 16)
    acks_list = ("1", "all")
    counts = {100: int(3000000 * scale), 1024: int(1000000 * scale)}
    produce_s = 6
    matrix = {}     # (target, kind, size, partitions, acks) -> [results]

    def add(key, res):
        runner.save(res)
        matrix.setdefault(key, []).append(res)

    for rep in range(reps):
        log("== matrix, repetition %d/%d" % (rep + 1, reps))
        for size in sizes:
            for parts in partitions:
                for acks in acks_list:
                    common = ["--size", str(size), "--partitions", str(parts), "--acks", acks,
                              "--count", str(counts[size]), "--seconds", str(produce_s)]
                    # Alternate which goes first so neither always gets the quieter slot.
                    order = ("mock", "broker") if (rep + parts + len(acks)) % 2 == 0 else ("broker", "mock")
                    for target in order:
                        prefault(counts[size] * size + 256 * MIB)
                        if target == "mock":
                            r = runner.bench(["produce", "--mock", "1", "--topic", "bench"] + common, 60)
                            add(("mock", "produce", size, parts, acks), r)
                            if acks == "1":
                                prefault(512 * MIB)
                                fill = int(MOCK_RETAINED_BYTES * parts / size * 1.05) + 1
                                r = runner.bench(["consume", "--mock", "1", "--topic", "bench", "--size", str(size),
                                                  "--partitions", str(parts), "--fill", str(fill),
                                                  "--count", str(counts[size]), "--seconds", "2"], 60)
                                add(("mock", "consume", size, parts, "-"), r)
                            continue
                        b = Broker(workdir, "run").start()
                        try:
                            cpu0, ticks0 = b.cpu_s(), b.cpu_ticks_s()
                            with RssSampler(b.proc.pid) as rs:
                                r = runner.bench(["produce", "--bootstrap", b.bootstrap, "--topic", "bench"] + common, 60)
                            cpu1 = b.cpu_s()
                            r["broker_cpu_s"] = cpu1 - cpu0
                            r["broker_cpu_ticks_s"] = b.cpu_ticks_s() - ticks0
                            r["broker_cpu_s_per_gib"] = (cpu1 - cpu0) / (r["bytes"] / GIB) if r.get("bytes") else None
                            r["broker_rss_peak_kib"] = rs.peak_kib
                            add(("broker", "produce", size, parts, acks), r)
                            if acks == "1" and r.get("records"):
                                time.sleep(0.2)
                                cpu0, ticks0 = b.cpu_s(), b.cpu_ticks_s()
                                with RssSampler(b.proc.pid) as rs:
                                    c = runner.bench(["consume", "--bootstrap", b.bootstrap, "--topic", "bench",
                                                      "--size", str(size), "--partitions", str(parts),
                                                      "--count", str(r["records"]), "--seconds", "10"], 60)
                                cpu1 = b.cpu_s()
                                c["broker_cpu_s"] = cpu1 - cpu0
                                c["broker_cpu_ticks_s"] = b.cpu_ticks_s() - ticks0
                                c["broker_cpu_s_per_gib"] = (cpu1 - cpu0) / (c["bytes"] / GIB) if c.get("bytes") else None
                                c["broker_rss_peak_kib"] = rs.peak_kib
                                c["broker_hwm_kib"] = b.hwm_kib()
                                time.sleep(0.5)
                                c["broker_rss_after_kib"] = b.rss_kib()
                                add(("broker", "consume", size, parts, "-"), c)
                        finally:
                            b.stop()


        # Consume of a backlog written in 16 KiB batches (the Java client's batch.size):
        # the mock answers a Fetch with one stored batch per partition, so small batches
        # cost it a round trip each, while the broker sends up to 1 MiB per partition.
        for size in sizes:
            n16 = counts[size] // 3
            common = ["--size", str(size), "--partitions", "1", "--batch-size", "16384"]
            for target in (("mock", "broker") if rep % 2 == 0 else ("broker", "mock")):
                prefault(n16 * size + 512 * MIB)
                if target == "mock":
                    fill = int(MOCK_RETAINED_BYTES / size * 1.05) + 1
                    add(("mock", "consume16k", size, 1, "-"),
                        runner.bench(["consume", "--mock", "1", "--topic", "bench16k", "--fill", str(fill),
                                      "--count", str(n16), "--seconds", "2"] + common, 60))
                    continue
                b = Broker(workdir, "run16k").start()
                try:
                    r = runner.bench(["produce", "--bootstrap", b.bootstrap, "--topic", "bench16k", "--acks", "1",
                                      "--count", str(n16), "--seconds", str(produce_s)] + common, 60)
                    runner.save(r)
                    if r.get("records"):
                        cpu0 = b.cpu_s()
                        c = runner.bench(["consume", "--bootstrap", b.bootstrap, "--topic", "bench16k",
                                          "--count", str(r["records"]), "--seconds", "10"] + common, 60)
                        c["broker_cpu_s_per_gib"] = (b.cpu_s() - cpu0) / (c["bytes"] / GIB) if c.get("bytes") else None
                        add(("broker", "consume16k", size, 1, "-"), c)
                finally:
                    b.stop()

    # Group commit: fsync before acknowledging.
    log("== fsync before acknowledging (log.flush.interval.messages=1)")
    fsync = {}
    for rep in range(reps):
        for parts in partitions:
            args = ["--size", "1024", "--partitions", str(parts), "--acks", "all",
                    "--count", str(int(500000 * scale)), "--seconds", str(produce_s)]
            prefault(500000 * scale * 1024 + 256 * MIB)
            b = Broker(workdir, "fsync", ["log.flush.interval.messages=1"]).start()
            try:
                cpu0 = b.cpu_s()
                r = runner.bench(["produce", "--bootstrap", b.bootstrap, "--topic", "bench"] + args, 60)
                r["broker_cpu_s_per_gib"] = (b.cpu_s() - cpu0) / (r["bytes"] / GIB) if r.get("bytes") else None
            finally:
                b.stop()
            runner.save(r)
            fsync.setdefault(parts, []).append(r)

    # Latency at 10k records/s, linger.ms=0, acks=all.
    log("== latency at 10000 records/s, linger.ms=0, acks=all")
    latency = {}
    lat_seconds = 1.0 if opts.quick else 4.0
    for rep in range(reps):
        for size in sizes:
            args = ["--size", str(size), "--partitions", "1", "--acks", "all", "--linger-ms", "0",
                    "--rate", "10000", "--count", str(int(10000 * lat_seconds)), "--seconds", str(lat_seconds + 2)]
            r = runner.bench(["produce", "--mock", "1", "--topic", "lat"] + args, 60)
            runner.save(r)
            latency.setdefault(("mock", size), []).append(r)
            b = Broker(workdir, "lat").start()
            try:
                r = runner.bench(["produce", "--bootstrap", b.bootstrap, "--topic", "lat"] + args, 60)
            finally:
                b.stop()
            runner.save(r)
            latency.setdefault(("broker", size), []).append(r)

    machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    machine["steal_s"] = cpu_steal_s() - machine["steal_start_s"]
    elapsed = time.monotonic() - t_begin
    shutil.rmtree(workdir, ignore_errors=True)
    machine["prefault_mbps"] = median(prefault.rates)
    state = {
        "started": started.isoformat(), "elapsed": elapsed, "reps": reps, "machine": machine,
        "starts": starts, "idle_rss": idle_rss, "counts": counts, "commands": runner.commands,
        "results_path": results_path,
        "matrix": [[list(k), v] for k, v in matrix.items()],
        "fsync": [[k, v] for k, v in fsync.items()],
        "latency": [[list(k), v] for k, v in latency.items()],
    }
    with open(state_path, "w") as f:
        json.dump(state, f)
    render(state_path, opts.out)
    log("wrote %s (%.0f s)" % (rel(opts.out), elapsed))


def render(state_path, out_path):
    """Writes the report from a run's saved state."""
    with open(state_path) as f:
        st = json.load(f)
    write_report(out_path, datetime.datetime.fromisoformat(st["started"]), st["elapsed"], st["reps"],
                 st["machine"], st["starts"], st["idle_rss"],
                 {tuple(k): v for k, v in st["matrix"]}, {k: v for k, v in st["fsync"]},
                 {tuple(k): v for k, v in st["latency"]}, st["commands"], st["results_path"],
                 {int(k): v for k, v in st["counts"].items()})


# ---- the report ----------------------------------------------------------------------

def med(runs, key):
    return median([r.get(key) for r in runs if not r.get("error")])


def fmt(x, spec="%.0f"):
    return "n/a" if x is None else spec % x


def verdict(ok):
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


def write_report(path, started, elapsed, reps, machine, starts, idle_rss, matrix, fsync, latency, commands,
                 results_path, counts):
    L = []
    out = L.append
    sizes = sorted({k[2] for k in matrix})
    parts_list = sorted({k[3] for k in matrix if k[1] == "produce"})

    def size_name(size):
        return "1 KiB" if size == 1024 else "%d B" % size

    def plural(parts):
        return "%d partition%s" % (parts, "s" if parts > 1 else "")

    def ratio(a, b):
        return a / b if a is not None and b else None

    def paired_range(bkey, mkey, scale, unit):
        """The spread of broker/mock over the repetitions (run i against run i)."""
        pairs = [(b.get("mb_per_s"), m.get("mb_per_s")) for b, m in zip(matrix.get(bkey, []), matrix.get(mkey, []))]
        ratios = sorted(b / m * scale for b, m in pairs if b and m)
        if len(ratios) < 2:
            return ""
        return " (runs: %s)" % ", ".join(("%.0f" if scale == 100 else "%.2f") % x for x in ratios)

    # ---- targets
    rows = []

    def target_row(name, measured, reference, ratio_s, ok):
        rows.append("| %s | %s | %s | %s | %s |" % (name, measured, reference, ratio_s, verdict(ok)))

    for size, want in ((1024, T_PRODUCE_1K), (100, T_PRODUCE_100)):
        for parts in parts_list:
            b = med(matrix.get(("broker", "produce", size, parts, "all"), []), "mb_per_s")
            m = med(matrix.get(("mock", "produce", size, parts, "all"), []), "mb_per_s")
            r = ratio(b, m)
            target_row("produce %s, acks=all, %s, page cache: >= %d%% of mock" % (size_name(size), plural(parts), want * 100),
                       fmt(b, "%.0f MB/s"), fmt(m, "mock %.0f MB/s"),
                       fmt(r and r * 100, "%.0f%%") + paired_range(("broker", "produce", size, parts, "all"),
                                                                  ("mock", "produce", size, parts, "all"), 100, "%"),
                       None if r is None else r >= want)
    cpu_in = {k: med(v, "broker_cpu_s_per_gib") for k, v in matrix.items() if k[0] == "broker" and k[1] == "produce"}
    cpu_out = {k: med(v, "broker_cpu_s_per_gib") for k, v in matrix.items() if k[0] == "broker" and k[1] == "consume"}

    def cpu_range(d):
        vals = [v for v in d.values() if v is not None]
        if not vals:
            return "n/a", None
        worst = max(d, key=lambda k: d[k] if d[k] is not None else -1)
        return ("%.2f to %.2f (worst: %s, %s%s)" % (
            min(vals), max(vals), size_name(worst[2]), plural(worst[3]),
            "" if worst[4] == "-" else ", acks=" + worst[4])), max(vals)
    s_in, worst_in = cpu_range(cpu_in)
    s_out, worst_out = cpu_range(cpu_out)
    floor_in = (machine["pagecache_cpu"] or 0) + (machine["loopback_recv_cpu"] or 0)
    target_row("broker CPU-s per GiB produced <= %.2f (every config)" % T_CPU_IN, s_in,
               "bare write() to page cache %.2f + loopback TCP receive %.2f = %.2f" % (
                   machine["pagecache_cpu"], machine["loopback_recv_cpu"], floor_in), "",
               None if worst_in is None else worst_in <= T_CPU_IN)
    target_row("broker CPU-s per GiB consumed <= %.2f (every config)" % T_CPU_OUT, s_out,
               "bare sendfile() pump over loopback: sender %.2f, receiver %.2f" % (
                   machine["sendfile_send_cpu"], machine["sendfile_recv_cpu"]), "",
               None if worst_out is None else worst_out <= T_CPU_OUT)
    for size in sizes:
        for parts in parts_list:
            b = med(matrix.get(("broker", "consume", size, parts, "-"), []), "mb_per_s")
            m = med(matrix.get(("mock", "consume", size, parts, "-"), []), "mb_per_s")
            r = ratio(b, m)
            target_row("consume backlog, %s, %s: >= %.0fx mock" % (size_name(size), plural(parts), T_CONSUME_X),
                       fmt(b, "%.0f MB/s"), fmt(m, "mock %.0f MB/s"),
                       fmt(r, "%.2fx") + paired_range(("broker", "consume", size, parts, "-"),
                                                      ("mock", "consume", size, parts, "-"), 1, "x"),
                       None if r is None else r >= T_CONSUME_X)
    for size in sizes:
        b = med(matrix.get(("broker", "consume16k", size, 1, "-"), []), "mb_per_s")
        m = med(matrix.get(("mock", "consume16k", size, 1, "-"), []), "mb_per_s")
        r = ratio(b, m)
        if r is not None:
            target_row("(same, backlog in 16 KiB batches as the Java client writes, %s, 1 partition)" % size_name(size),
                       fmt(b, "%.0f MB/s"), fmt(m, "mock %.0f MB/s"), fmt(r, "%.2fx"),
                       None if r is None else r >= T_CONSUME_X)
    for size in sizes:
        b = med(latency.get(("broker", size), []), "lat_p99_ms")
        m = med(latency.get(("mock", size), []), "lat_p99_ms")
        target_row("produce p99 at 10k records/s, %s, linger.ms=0, acks=all: < %.0f ms" % (size_name(size), T_LAT_P99_MS),
                   fmt(b, "%.3f ms"), fmt(m, "mock %.3f ms"), "", None if b is None else b < T_LAT_P99_MS)
    for parts in sorted(fsync):
        b = med(fsync[parts], "mb_per_s")
        target_row("fsync before ack (group commit), 1 KiB, acks=all, %s: >= %.0f MB/s" % (plural(parts), T_FSYNC_MBPS),
                   fmt(b, "%.0f MB/s"), "", "", None if b is None else b >= T_FSYNC_MBPS)
    rss = median(idle_rss)
    target_row("idle broker RSS < %.0f MiB" % T_IDLE_RSS_MIB, fmt(rss and rss / 1024, "%.1f MiB"), "", "",
               None if rss is None else rss / 1024 < T_IDLE_RSS_MIB)
    st = median(starts)
    target_row("start to serving (empty log) < %.0f ms" % T_START_MS, fmt(st, "%.1f ms"), "", "",
               None if st is None else st < T_START_MS)

    out("# Benchmarks")
    out("")
    out("Generated by `bench/run.py` on %s in %.0f s; every run was repeated %d times and the "
        "tables show medians. Rerun `bench/run.py` to refresh this file; the analysis at the "
        "end comes from `bench/analysis.md`." % (started.strftime("%Y-%m-%d %H:%M UTC"), elapsed, reps))
    out("")
    out("## Targets")
    out("")
    out("| target | broker | reference | ratio | result |")
    out("|---|---|---|---|---|")
    L.extend(rows)
    out("")

    # ---- machine
    out("## Machine")
    out("")
    out("| | |")
    out("|---|---|")
    out("| CPU | %s, %d cores (nproc), KVM guest |" % (machine["cpu"], machine["nproc"]))
    out("| memory | %.1f GiB |" % machine["mem_gib"])
    out("| kernel | %s |" % machine["kernel"])
    out("| data directories | /tmp (%s), a fresh one per broker run |" % machine["workdir_fs"])
    out("| librdkafka | %s |" % machine["librdkafka"])
    out("| stratus | %s, `build/release/stratus` (-O2) |" % machine["commit"])
    out("| load average | %s at start, %s at end; %.1f CPU-s stolen by the hypervisor during the %.0f s run |" % (
        " ".join(machine["loadavg_start"]), " ".join(machine["loadavg_end"]), machine.get("steal_s", 0), elapsed))
    out("| **loopback bandwidth** | **%.0f MB/s**, one TCP stream on 127.0.0.1 with write() "
        "(runs: %s); CPU-s per GiB: sender %.2f, receiver %.2f |" % (
            machine["loopback_mbps"], ", ".join(fmt(x) for x in machine["loopback_all"]),
            machine["loopback_send_cpu"], machine["loopback_recv_cpu"]))
    out("| loopback with sendfile() | %.0f MB/s from a file in the page cache; CPU-s per GiB: "
        "sender %.2f, receiver %.2f |" % (machine["sendfile_mbps"], machine["sendfile_send_cpu"],
                                          machine["sendfile_recv_cpu"]))
    out("| page-cache write | %.0f MB/s, %.2f CPU-s/GiB (1 GiB in 1 MiB write()s, reusing memory); "
        "%.0f MB/s, %.2f CPU-s/GiB on memory the VM had taken back |" % (
            machine["pagecache_mbps"], machine["pagecache_cpu"], machine["pagecache_cold_mbps"],
            machine["pagecache_cold_cpu"]))
    out("")

    # ---- how to read
    out("## How to read these numbers")
    out("")
    out("- **Noise.** The machine has %d cores and was shared with other engineers running "
        "tests during the run. Every mock run is interleaved with the matching broker run "
        "(alternating which goes first) and every run is repeated %d times; ratios are of "
        "medians, so they are fairer than the absolute numbers. Single runs of the same "
        "configuration differ by up to 2x (see `%s`)." % (machine["nproc"], reps, rel(results_path)))
    out("- **One machine, two programs.** The load tool (librdkafka: an application thread "
        "and a thread per broker connection, plus the mock's thread in mock runs) and the "
        "broker compete for the same %d cores. A broker run's client leaves less CPU to the "
        "broker than a mock run's client leaves to the mock, which is in its own process." % machine["nproc"])
    out("- **The ceiling.** `--mock 1` runs the same load tool against librdkafka's in-process "
        "mock cluster (`rd_kafka_mock_cluster_new`). It keeps only the newest ~5 MiB per "
        "partition in memory and never writes a file, so it shows what the client alone can "
        "push here. Its Fetch returns one stored batch per partition; its consume runs fill "
        "the topic, then re-read those ~5 MiB per partition for 2 s (rewinding at the end), "
        "which stay warm in the CPU caches. The broker consume runs read the whole backlog "
        "(up to 1 GiB) once, from the page cache, with sendfile().")
    out("- **VM memory.** This KVM guest hands memory that stayed free for about 2 s back to "
        "the host (free page reporting), and touching such memory again costs ~10x (the "
        "page-cache row above: %.2f vs %.2f CPU-s/GiB). The broker's page cache meets it, the "
        "mock (which recycles 5 MiB) barely does. Before every produce and consume run, mock "
        "or broker, `run.py` therefore writes and deletes a scratch file as big as the run's "
        "data (median %.0f MB/s), so that the run reuses memory the VM holds." % (
            machine["pagecache_cpu"], machine["pagecache_cold_cpu"], machine["prefault_mbps"] or 0))
    out("- **Units.** MB = 2^20 bytes of record values (as kafka-producer-perf-test counts "
        "them); protocol overhead is not counted. Broker CPU = on-CPU time of the broker "
        "process over the run, per GiB of record values, from se.sum_exec_runtime in "
        "/proc/PID/task/*/sched (utime+stime from /proc/PID/stat agrees but counts 10 ms "
        "ticks; both are in the JSON lines). RSS from "
        "/proc/PID/status: peak VmRSS sampled every 20 ms during the run.")
    out("")

    # ---- produce
    out("## Produce")
    out("")
    out("%s records of 100 B or %s of 1 KiB per run (or %d s, whichever comes first); "
        "librdkafka defaults otherwise (batch.size=1000000, linger.ms=5, no compression, no "
        "idempotence) plus socket.nagle.disable=true (TCP_NODELAY, as the Java client). "
        "Records go round-robin over the partitions. Latency is per record: delivery report "
        "time minus produce() call time; in these unpaced runs it is mostly time queued in "
        "the client." % ("{:,}".format(counts[100]), "{:,}".format(counts[1024]), 6))
    out("")
    out("| size | part. | acks | mock MB/s | mock rec/s | broker MB/s | broker rec/s | broker/mock | "
        "broker p50 / p99 ms | broker CPU-s/GiB | broker peak RSS |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        for parts in parts_list:
            for acks, kind in (("1", "produce"), ("all", "produce")):
                mk = matrix.get(("mock", kind, size, parts, acks), [])
                bk = matrix.get(("broker", kind, size, parts, acks), [])
                bm, mm = med(bk, "mb_per_s"), med(mk, "mb_per_s")
                r = ratio(bm, mm)
                peak = med(bk, "broker_rss_peak_kib")
                out("| %s | %d | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |" % (
                    size, parts, acks, fmt(mm),
                    fmt(med(mk, "records_per_s")), fmt(bm), fmt(med(bk, "records_per_s")),
                    fmt(r and r * 100, "%.0f%%"), fmt(med(bk, "lat_p50_ms"), "%.1f"),
                    fmt(med(bk, "lat_p99_ms"), "%.1f"), fmt(med(bk, "broker_cpu_s_per_gib"), "%.2f"),
                    fmt(peak and peak / 1024, "%.1f MiB")))
    errs = [r for v in matrix.values() for r in v if r.get("error")]
    if errs:
        out("")
        out("Runs with errors (%d): %s" % (len(errs), "; ".join(
            "`%s`: %s" % (e.get("command", "?"), e["error"]) for e in errs[:5])))
    out("")

    # ---- consume
    out("## Consume")
    out("")
    out("The broker run reads the backlog the acks=1 produce run has just written, every "
        "record, in one pass. The mock run fills its topic (untimed), then re-reads it for "
        "2 s. The rate of a pass runs from the moment the records that arrived first have "
        "been taken to its last record (the first arrivals are not counted), so neither "
        "connection setup, ListOffsets nor the first fetch is in it. librdkafka consumer "
        "defaults (fetch.max.bytes 50 MiB, max.partition.fetch.bytes 1 MiB) except "
        "fetch.wait.max.ms=50, which only matters once caught up. The last rows read a "
        "backlog written with batch.size=16384 (the Java client's default) instead of "
        "librdkafka's 1 MB: the mock returns one stored batch per partition per Fetch, so "
        "there it needs a round trip per 16 KiB.")
    out("")
    out("| size | part. | mock MB/s | mock rec/s | broker MB/s | broker rec/s | broker/mock | "
        "broker/loopback | broker CPU-s/GiB | broker peak RSS | RSS 0.5 s after |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    consume_rows = [("consume", size, parts) for size in sizes for parts in parts_list]
    consume_rows += [("consume16k", size, 1) for size in sizes if ("broker", "consume16k", size, 1, "-") in matrix]
    for kind, size, parts in consume_rows:
            mk = matrix.get(("mock", kind, size, parts, "-"), [])
            bk = matrix.get(("broker", kind, size, parts, "-"), [])
            bm, mm = med(bk, "mb_per_s"), med(mk, "mb_per_s")
            peak, after = med(bk, "broker_rss_peak_kib"), med(bk, "broker_rss_after_kib")
            out("| %s%s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                size, " (16 KiB batches)" if kind == "consume16k" else "", parts,
                fmt(mm), fmt(med(mk, "records_per_s")), fmt(bm), fmt(med(bk, "records_per_s")),
                fmt(ratio(bm, mm), "%.2fx"), fmt(ratio(bm, machine["loopback_mbps"]), "%.2f"),
                fmt(med(bk, "broker_cpu_s_per_gib"), "%.2f"),
                fmt(peak and peak / 1024, "%.1f MiB"), fmt(after and after / 1024, "%.1f MiB")))
    out("")

    # ---- fsync
    out("## fsync before acknowledging (group commit)")
    out("")
    out("`--override log.flush.interval.messages=1`: the broker fdatasyncs each partition "
        "written in a loop iteration once, then answers all the produces read in that "
        "iteration. 1 KiB records, acks=all, %s records per run." % "{:,}".format(int(counts[1024] / 2)))
    out("")
    out("| part. | broker MB/s | broker rec/s | p50 / p99 ms | broker CPU-s/GiB |")
    out("|---|---|---|---|---|")
    for parts in sorted(fsync):
        v = fsync[parts]
        out("| %d | %s | %s | %s / %s | %s |" % (parts, fmt(med(v, "mb_per_s")), fmt(med(v, "records_per_s")),
                                               fmt(med(v, "lat_p50_ms"), "%.1f"), fmt(med(v, "lat_p99_ms"), "%.1f"),
                                               fmt(med(v, "broker_cpu_s_per_gib"), "%.2f")))
    out("")

    # ---- latency
    out("## Latency at 10k records/s")
    out("")
    out("Paced at 10,000 records/s (absolute-deadline sleeps), linger.ms=0, acks=all, "
        "1 partition. Every record's latency: delivery report, timestamped on librdkafka's "
        "background thread as it arrives, minus the produce() call. Per-run p99 values are "
        "listed because single runs vary with the machine's other load.")
    out("")
    out("| size | target | records/s | p50 ms | p99 ms | p99.9 ms | max ms | p99 of each run |")
    out("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        for target in ("mock", "broker"):
            v = latency.get((target, size), [])
            out("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                size, target, fmt(med(v, "records_per_s")), fmt(med(v, "lat_p50_ms"), "%.3f"),
                fmt(med(v, "lat_p99_ms"), "%.3f"), fmt(med(v, "lat_p999_ms"), "%.3f"),
                fmt(med(v, "lat_max_ms"), "%.3f"),
                ", ".join(fmt(r.get("lat_p99_ms"), "%.2f") for r in v)))
    out("")

    # ---- start and memory
    out("## Start and idle memory")
    out("")
    out("Start to serving: from exec of `stratus broker` on an empty data directory until "
        "a TCP connection to its port gets an ApiVersions answer (polled every 0.2 ms from "
        "Python, so a little of the time is the poller's). Idle RSS: VmRSS 0.3 s later.")
    out("")
    out("| | median | all runs |")
    out("|---|---|---|")
    out("| start to serving | %s | %s |" % (fmt(st, "%.1f ms"), ", ".join("%.1f" % x for x in starts)))
    out("| idle RSS | %s | %s |" % (fmt(rss and rss / 1024, "%.1f MiB"),
                                   ", ".join("%.1f" % (k / 1024) for k in idle_rss if k)))
    out("")

    # ---- commands
    out("## How to reproduce")
    out("")
    out("```")
    out("bench/run.py        # builds, runs everything (%d-%d minutes), rewrites this file" % (
        max(1, int(elapsed / 60)), int(elapsed / 60) + 2))
    out("bench/run.py --quick  # one repetition of smaller runs, as a smoke test")
    out("```")
    out("")
    out("Broker runs (fresh data directory and port each time):")
    out("")
    out("```")
    out("build/release/stratus broker --override listeners=PLAINTEXT://127.0.0.1:PORT "
        "--override log.dirs=/tmp/stratus-bench-XXXXXX/run")
    out("# fsync runs add: --override log.flush.interval.messages=1")
    out("```")
    out("")
    out("The load tool commands, as run (PORT differs per run):")
    out("")
    out("```")
    seen = set()
    for c in commands:
        c2 = " ".join("127.0.0.1:PORT" if a.startswith("127.0.0.1:") else a for a in c.split(" "))
        if c2 not in seen:
            seen.add(c2)
            out(c2)
    out("```")
    out("")
    # The hand-written analysis of the misses, kept next to the tool that produced them.
    notes = os.path.join(ROOT, "bench/analysis.md")
    if os.path.exists(notes):
        with open(notes) as f:
            out(f.read().rstrip())
        out("")
    text = keep_other_sections("\n".join(L), path)
    with open(path, "w") as f:
        f.write(text)


def keep_other_sections(text, path):
    """<text> (this runner's report) with every "## " section of the report now at <path>
    that <text> does not have itself: the sections other runners (bench/group_run.py,
    bench/lb_run.py, bench/tenancy_run.py, ...) wrote, kept as they are, in the order
    they had, before "## How to reproduce"."""
    if not os.path.exists(path):
        return text
    own = {x for x in text.split("\n") if x.startswith("## ")}
    for title in [x for x in open(path).read().split("\n") if x.startswith("## ")]:
        if title not in own:
            text = splice_section(text, report_section(path, title), title)
    return text


def report_section(path, title):
    """The "<title>" section of the report at <path>, up to the next "## " heading, or None."""
    if not os.path.exists(path):
        return None
    lines = open(path).read().split("\n")
    if title not in lines:
        return None
    i = lines.index(title)
    j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("## ")), len(lines))
    return "\n".join(lines[i:j])


def splice_section(text, section, title, before="## How to reproduce"):
    """<text> (a Markdown report) with its "<title>" section (up to the next "## " heading)
    replaced by <section>; when it has none, <section> goes before the <before> heading
    (or at the end)."""
    lines = text.rstrip("\n").split("\n")
    new = section.rstrip("\n").split("\n") + [""]
    if title in lines:
        i = lines.index(title)
        j = next((k for k in range(i + 1, len(lines)) if lines[k].startswith("## ")), len(lines))
        lines[i:j] = new
    elif before in lines:
        i = lines.index(before)
        lines[i:i] = new
    else:
        lines += [""] + new
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
