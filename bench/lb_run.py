#!/usr/bin/python3
"""Runs the load-balancer benchmark and writes the "## Load balancer" section of
docs/benchmarks.md (the rest of the file is kept as it is).

One sink/echo server (build/bench/lb_bench server) on 127.0.0.1, reached four ways:
direct; through haproxy in TCP mode (one frontend, one backend: the server, a TCP-connect
health check like stratus lb's, nbthread 1 like the single-threaded stratus lb); through
the same haproxy with `option splice-auto` (haproxy's splice() relay; informational); and
through `build/release/stratus lb` (one listener whose single target is the server, admin
off). For each, build/bench/lb_bench measures:

1. stream: 1 and 4 connections pushing data as fast as they can (GiB/s), with the proxy
   process's CPU (utime+stime from /proc/PID/stat) per GiB relayed;
2. pingpong: one connection, 64-byte request and answer, p50/p99/p99.9 round trip; the
   latency a proxy adds is its percentile minus direct's in the same repetition;
3. connect: new connections per second (connect, 1 byte out, 1 byte back, close; 4 threads).

Every measurement runs for each path back to back, in an order rotated every repetition, and
the targets compare paths within a repetition (the machine is shared and noisy). Every run
is bounded in time; only 127.0.0.1 and free ports are used; only the processes started
here are stopped, by pid. Standard library only. When `stratus lb` is not built yet, the
direct and haproxy paths run alone and the stratus rows say so.

Usage: bench/lb_run.py [--quick] [--reps N] [--out docs/benchmarks.md] [--render] [--no-profile]
"""
import argparse
import datetime
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (bench/run.py: process CPU, machine probes, splice_section)

ROOT = base.ROOT
LB_BENCH = os.path.join(ROOT, "build/bench/lb_bench")
STRATUS = os.path.join(ROOT, "build/release/stratus")
SECTION = "## Load balancer"
STATE = os.path.join(ROOT, "build/bench/lb_state.json")
RESULTS = os.path.join(ROOT, "build/bench/lb_results.jsonl")
GIB = base.GIB

# Targets from the issue.
T_ONE_STREAM_X = 1.25     # one stream: >= 1.25x haproxy's throughput
T_FOUR_STREAMS_X = 1.0    # four streams: >= haproxy's
T_CONNECT_X = 1.0         # new connections/s: >= haproxy's
T_ADDED_P99_US = 50.0     # added p99 latency (through stratus lb minus direct) < 50 us
# and proxy CPU-s per GiB relayed < haproxy's

PATHS = ("direct", "haproxy", "haproxy-splice", "stratus")
PATH_NAMES = {"direct": "direct", "haproxy": "haproxy", "haproxy-splice": "haproxy, splice",
              "stratus": "stratus lb"}
STREAMS = (1, 4)
PING_SIZE = 64
CONNECT_THREADS = 4

log = base.log
median = base.median


rel_cmd = base.rel_cmd


def probe(port, timeout_s=1.0):
    """True when a connection to <port> gets the server's connection-test answer: the
    path through a proxy is up end to end."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(b"C")
            return s.recv(1) == b"c"
    except OSError:
        return False


def stop_pid(proc, timeout_s=10):
    """SIGTERM to our child <proc> by pid, SIGKILL after <timeout_s>."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


# ---- the processes -------------------------------------------------------------------

class Server:
    """build/bench/lb_bench server on a free port, bounded by --max-seconds."""

    def __init__(self, workdir, max_seconds):
        self.cmd = [LB_BENCH, "server", "--listen", "127.0.0.1:0", "--max-seconds", str(int(max_seconds))]
        self.err_path = os.path.join(workdir, "server.err")
        errf = open(self.err_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=errf, text=True)
        errf.close()
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if r else ""
        if not line.startswith("{"):
            stop_pid(self.proc)
            raise RuntimeError("lb_bench server did not start: %r" % line)
        self.addr = json.loads(line)["listen"]
        self.port = int(self.addr.rsplit(":", 1)[1])
        self.pid = self.proc.pid

    def cpu_s(self):
        return base.proc_cpu_s(self.pid)

    def stop(self):
        stop_pid(self.proc)


HAPROXY_CFG = """\
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
{splice}    timeout connect 3s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:{port}
    default_backend sink
backend sink
    server sink 127.0.0.1:{target} check inter 1000 rise 2 fall 3
"""

STRATUS_CFG = """\
admin off
listener bench 127.0.0.1:{port} 127.0.0.1:{target}
"""


class Proxy:
    """haproxy, haproxy with splice, or stratus lb, in front of the server; restarted when
    it died (restarts are counted and reported)."""

    def __init__(self, kind, workdir, target_port):
        self.kind = kind
        self.workdir = workdir
        self.target_port = target_port
        self.proc = None
        self.starts = 0
        self.exits = []      # how earlier processes ended

    def config(self, port):
        if self.kind == "stratus":
            return STRATUS_CFG.format(port=port, target=self.target_port)
        splice = "    option splice-auto\n" if self.kind == "haproxy-splice" else ""
        return HAPROXY_CFG.format(port=port, target=self.target_port, splice=splice)

    def config_text(self):
        """The configuration with ports as PORT (for the report)."""
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", self.config(1))

    def command(self, cfg_path):
        if self.kind == "stratus":
            return [STRATUS, "lb", "--config", cfg_path]
        return ["haproxy", "-f", cfg_path, "-db"]

    def start(self):
        last = ""
        for attempt in range(3):
            self.port = base.free_port()
            self.addr = "127.0.0.1:%d" % self.port
            # Each configuration in a directory of its own: stratus lb watches its file's
            # directory (inotify), and the logs and perf files written next to it would wake it.
            cfg_dir = os.path.join(self.workdir, "cfg-" + self.kind)
            os.makedirs(cfg_dir, exist_ok=True)
            self.cfg_path = os.path.join(cfg_dir, "%s.cfg" % self.kind)
            with open(self.cfg_path, "w") as f:
                f.write(self.config(self.port))
            self.log_path = os.path.join(self.workdir, "%s.log" % self.kind)
            logf = open(self.log_path, "a")
            self.proc = subprocess.Popen(self.command(self.cfg_path), stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            logf.close()
            self.pid = self.proc.pid
            self.starts += 1
            # stratus lb's target starts down and takes connections after health_rise (2)
            # checks 1 s apart; haproxy's starts up. Wait until a connection goes through.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None:
                if probe(self.port, 0.5):
                    self.ready_s = 15 - (deadline - time.monotonic())
                    return self
                time.sleep(0.05)
            last = "exited with %s" % self.proc.returncode if self.proc.poll() is not None else "not ready in 15 s"
            self.exits.append(last)
            stop_pid(self.proc)
            log("  %s: %s (attempt %d); log: %s" % (self.kind, last, attempt + 1, self.tail_log()))
        raise RuntimeError("%s did not start: %s" % (self.kind, last))

    def tail_log(self, n=600):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:].strip()
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ensure(self):
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            self.exits.append("exited with %s during the run" % code)
            log("  %s had exited (%s); restarting. log: %s" % (self.kind, code, self.tail_log()))
            self.start()

    def cpu_ticks_s(self):
        return base.proc_cpu_ticks_s(self.pid)

    def cpu_s(self):
        return base.proc_cpu_s(self.pid)

    def rss_kib(self):
        try:
            return base.proc_status_kib(self.pid, "VmRSS")
        except OSError:
            return None

    def stop(self):
        if self.proc is not None:
            stop_pid(self.proc)
            self.exits.append("stopped by the runner, exit status %s" % self.proc.returncode)


# ---- the runs ------------------------------------------------------------------------

def busy_cpu_s():
    """CPU-seconds all CPUs spent busy (not idle or iowait) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice; guest is in user.
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


class Recorder(base.Recorder):
    """Runs lb_bench, keeps every JSON result and the distinct command lines."""

    def __init__(self):
        super().__init__(RESULTS)

    def bench(self, args, timeout_s, proxy, server, extra):
        cmd = [LB_BENCH] + args
        self.note(rel_cmd(cmd))
        t0 = (proxy.cpu_ticks_s(), proxy.cpu_s()) if proxy else None
        s0 = server.cpu_s()
        busy0 = busy_cpu_s()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log("  TIMEOUT: " + rel_cmd(cmd))
            res = {"error": "timeout"}
        else:
            res = None
            for out in p.stdout.splitlines():
                if out.startswith("{"):
                    res = json.loads(out)
                elif out.startswith("#"):
                    log("  %-15s %s" % (extra["path"], out[2:]))
            if p.stderr.strip():
                log("  stderr: " + p.stderr.strip()[-1000:])
            if res is None:
                res = {"error": "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])}
            elif p.returncode != 0 and not res.get("error"):
                res["error"] = "exit %d" % p.returncode
        res["server_cpu_s"] = server.cpu_s() - s0
        busy = busy_cpu_s() - busy0
        if proxy:
            if proxy.alive():
                res["proxy_cpu_ticks_s"] = proxy.cpu_ticks_s() - t0[0]
                res["proxy_cpu_s"] = proxy.cpu_s() - t0[1]
                res["proxy_rss_kib"] = proxy.rss_kib()
            else:
                res.setdefault("error", "%s exited during the run" % proxy.kind)
        gib = res.get("total_bytes", 0) / GIB
        if gib and "proxy_cpu_ticks_s" in res:
            res["proxy_cpu_s_per_gib"] = res["proxy_cpu_ticks_s"] / gib
            res["proxy_sched_cpu_s_per_gib"] = res["proxy_cpu_s"] / gib
        if gib:
            res["server_cpu_s_per_gib"] = res["server_cpu_s"] / gib
            res["client_cpu_s_per_gib"] = res.get("client_cpu_s", 0) / gib
        if res.get("connections_per_s") and "proxy_cpu_s" in res:
            # The whole run (warm-up included) over the connections of the whole run.
            n = res["connections_per_s"] * (res["seconds"] + res["warmup"])
            res["proxy_cpu_us_per_connection"] = res["proxy_cpu_s"] / n * 1e6
        if res.get("round_trips_per_s") and "proxy_cpu_s" in res:
            n = res["round_trips_per_s"] * (res["seconds"] + res["warmup"])
            res["proxy_cpu_us_per_round_trip"] = res["proxy_cpu_s"] / n * 1e6
        # CPU the rest of the machine used during the run (other work on this shared VM; it
        # also counts the idle proxies' health checks and this runner, which are negligible).
        ours = res.get("client_cpu_s", 0) + res["server_cpu_s"] + res.get("proxy_cpu_s", 0)
        res["foreign_cpu_s"] = max(0.0, busy - ours)
        res["command"] = rel_cmd(cmd)
        res.update(extra)
        self.results.write(json.dumps(res) + "\n")
        self.results.flush()
        return res


def measure(rec, server, proxies, paths, reps, dur, max_foreign, retries):
    """Returns ({measure: {path: [result per repetition]}}, [discarded results]); measure
    is "stream-1", "stream-4", "pingpong" or "connect". When, during one of a group's runs
    (one measurement, every path), the rest of the machine kept more than <max_foreign> of
    a core busy, the whole group is run again, up to <retries> times; the discarded runs
    are kept (and counted in the report), and the last attempt stands whatever it saw."""
    out = {}
    discarded = []
    measures = ["stream-%d" % n for n in STREAMS] + ["pingpong", "connect"]
    for rep in range(reps):
        order = paths[rep % len(paths):] + paths[:rep % len(paths)]
        log("== repetition %d/%d, order: %s" % (rep + 1, reps, ", ".join(order)))
        for m in measures:
            for attempt in range(retries + 1):
                group = {}
                for path in order:
                    group[path] = run_one(rec, server, proxies.get(path), path, m, rep, dur)
                    group[path]["attempt"] = attempt
                busiest = max(r.get("foreign_share", 0) for r in group.values())
                if busiest <= max_foreign or attempt == retries:
                    break
                log("  other work kept %.0f%% of a core busy during a run: repeating %s" % (busiest * 100, m))
                for r in group.values():
                    r["discarded"] = True
                    discarded.append(r)
            for path in paths:
                out.setdefault(m, {}).setdefault(path, []).append(group[path])
    return out, discarded


def run_one(rec, server, proxy, path, m, rep, dur):
    if proxy:
        try:
            proxy.ensure()
        except RuntimeError as e:
            return {"error": str(e), "rep": rep, "path": path, "measure": m}
    addr = proxy.addr if proxy else server.addr
    if m.startswith("stream-"):
        args = ["stream", "--target", addr, "--connections", m.split("-")[1],
                "--seconds", str(dur["stream"]), "--warmup", str(dur["warmup"])]
        bound = dur["stream"] + dur["warmup"]
    elif m == "pingpong":
        args = ["pingpong", "--target", addr, "--size", str(PING_SIZE),
                "--seconds", str(dur["pingpong"]), "--warmup", str(dur["warmup"])]
        bound = dur["pingpong"] + dur["warmup"]
    else:
        args = ["connect", "--target", addr, "--threads", str(CONNECT_THREADS),
                "--seconds", str(dur["connect"]), "--warmup", str(dur["warmup"])]
        bound = dur["connect"] + dur["warmup"]
    args += ["--grace", "20"]
    r = rec.bench(args, bound + 40, proxy, server, {"path": path, "measure": m, "rep": rep})
    r["foreign_share"] = r.get("foreign_cpu_s", 0) / bound
    return r


# ---- profiles (after the measured runs) ----------------------------------------------

def perf_available():
    return shutil.which("perf") is not None


SYSCALLS = ("splice", "recvfrom", "sendto", "read", "write", "epoll_wait", "epoll_ctl", "accept4", "connect",
            "socket", "shutdown", "close", "setsockopt", "getsockopt", "getpeername", "pipe2")


def syscall_events():
    """The perf stat tracepoints for SYSCALLS that exist here (some kernels lack some)."""
    out = []
    for name in SYSCALLS:
        ev = "syscalls:sys_enter_" + name
        r = subprocess.run(["perf", "stat", "-e", ev, "--", "true"], capture_output=True, text=True, timeout=30)
        if r.returncode == 0:
            out.append(ev)
    return out


def perf_top(data, children):
    """Lines of perf report for <data>: with <children>, the time inside each syscall (its
    entry point, kernel work included) and in user-space functions; otherwise self time."""
    cmd = ["perf", "report", "-i", data, "--stdio", "-g", "none", "--sort", "sym"]
    if children:
        cmd += ["--children", "--percent-limit", "2"]
    else:
        cmd += ["--no-children", "--percent-limit", "2"]
    rep = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = [x.rstrip() for x in rep.stdout.splitlines() if x.strip() and not x.startswith("#")]
    if children:
        # A syscall's kernel entry, or a user-space function other than the entry stubs.
        keep = []
        for x in lines:
            if "[k] __x64_sys_" in x or ("[.] " in x and "0x0000" not in x):
                keep.append(x)
        return keep[:12]
    return lines[:12]


def user_share(data):
    """The share (%) of <data>'s samples whose own code was not the kernel's."""
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", "dso"],
                         capture_output=True, text=True, timeout=120)
    kernel = None
    for x in rep.stdout.splitlines():
        f = x.split()
        if len(f) >= 2 and f[0].endswith("%") and f[1] == "[kernel.kallsyms]":
            kernel = float(f[0][:-1])
    return None if kernel is None else 100.0 - kernel


def profile(rec, proxy, workdir, seconds, args, name, events):
    """While lb_bench <args> runs through <proxy>: perf record (cpu-clock, call graphs) and
    perf stat (syscall counts) of the proxy process for <seconds>, starting 0.5 s into
    the load."""
    data = os.path.join(workdir, "perf-%s-%s.data" % (proxy.kind, name))
    stat_path = os.path.join(workdir, "perf-%s-%s.stat" % (proxy.kind, name))
    cmd = [LB_BENCH] + args
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    c0 = proxy.cpu_s()
    rec_p = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-p", str(proxy.pid),
                              "-o", data, "--", "sleep", str(seconds)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stat_p = None
    if events:
        stat_p = subprocess.Popen(["perf", "stat", "-x", ",", "-o", stat_path, "-e", ",".join(["task-clock"] + events), "-p",
                                   str(proxy.pid), "--", "sleep", str(seconds)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for p in (rec_p, stat_p):
        if p is None:
            continue
        try:
            p.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            stop_pid(p)
    cpu_outer = proxy.cpu_s() - c0
    try:
        out, _ = client.communicate(timeout=seconds + 40)
    except subprocess.TimeoutExpired:
        stop_pid(client)
        out = ""
    res = next((json.loads(x) for x in out.splitlines() if x.startswith("{")), {"error": "no result"})
    human = next((x[2:] for x in out.splitlines() if x.startswith("#")), "")
    counts = {}
    task_clock_s = None
    try:
        with open(stat_path) as f:
            for line in f:
                fields = line.strip().split(",")
                if len(fields) > 2 and fields[2] == "task-clock":
                    try:
                        task_clock_s = float(fields[0]) / 1000.0
                    except ValueError:
                        pass
                elif len(fields) > 2 and fields[2].startswith("syscalls:sys_enter_"):
                    try:
                        counts[fields[2][len("syscalls:sys_enter_"):]] = int(fields[0])
                    except ValueError:
                        pass
    except OSError:
        pass
    # The work done in the perf window, from the client's steady rate.
    if res.get("gib_per_s"):
        unit, amount = "GiB", res["gib_per_s"] * seconds
    elif res.get("connections_per_s"):
        unit, amount = "connection", res["connections_per_s"] * seconds
    else:
        unit, amount = None, None
    per = {k: v / amount for k, v in counts.items() if v and amount}
    # The proxy's CPU in the window: perf stat's task-clock (the runner's own reading spans
    # perf's start and exit too).
    cpu = task_clock_s if task_clock_s is not None else cpu_outer
    rec.note("perf record -e cpu-clock -F 2000 -g -p PROXY_PID -- sleep %s   # and perf stat -e "
             "syscalls:sys_enter_..., while: %s" % (seconds, rel_cmd(cmd)))
    r = {"path": proxy.kind, "name": name, "client": human, "proxy_cpu_s": cpu, "seconds": seconds,
         "rate": res.get("gib_per_s") or res.get("connections_per_s"), "user_share": user_share(data),
         "syscalls": counts, "unit": unit, "amount": amount, "syscalls_per_unit": per,
         "cpu_s_per_unit": cpu / amount if amount else None,
         "children": perf_top(data, True), "self": perf_top(data, False)}
    log("  profile %s %s: %s; proxy CPU %.2f s in %s s" % (proxy.kind, name, human, cpu, seconds))
    for x in r["children"]:
        log("    " + x)
    if per:
        log("    syscalls per %s: %s" % (unit, ", ".join("%s %.1f" % (k, v) for k, v in
                                                          sorted(per.items(), key=lambda kv: -kv[1]))))
    return r


def run_profiles(rec, server, proxies, workdir, dur):
    out = []
    s = dur["profile"]
    events = syscall_events()
    for kind in ("stratus", "haproxy"):
        p = proxies.get(kind)
        if not p:
            continue
        try:
            p.ensure()
        except RuntimeError:
            continue
        for name, args in (("1 stream", ["stream", "--connections", "1"]),
                           ("4 streams", ["stream", "--connections", "4"]),
                           ("connect", ["connect", "--threads", str(CONNECT_THREADS)])):
            out.append(profile(rec, p, workdir, s, [args[0], "--target", p.addr] + args[1:] +
                               ["--seconds", str(s + 1.5), "--warmup", "0"], name, events))
    return out


# ---- the report ----------------------------------------------------------------------

def ok_runs(v):
    return [r for r in v if not r.get("error")]


def med(v, key):
    return median([r.get(key) for r in ok_runs(v)])


def fmt(x, spec="%.0f"):
    return "n/a" if x is None else spec % x


def verdict(ok):
    return "not run" if ok is None else ("**pass**" if ok else "**miss**")


def paired(a_runs, b_runs, key, op):
    """op(a, b) for the runs of the same repetition that both succeeded."""
    b_by = {r.get("rep"): r for r in ok_runs(b_runs)}
    out = []
    for a in ok_runs(a_runs):
        b = b_by.get(a.get("rep"))
        if b is not None and a.get(key) is not None and b.get(key) is not None:
            v = op(a[key], b[key])
            if v is not None:
                out.append(v)
    return out


def ratio(a, b):
    return a / b if b else None


def minus(a, b):
    return a - b


def render_section(st):
    L = []
    out = L.append
    R = st["results"]
    paths = st["paths"]
    m = st["machine"]
    have_stratus = "stratus" in paths

    def runs(measure, path):
        return R.get(measure, {}).get(path, [])

    # The CPU of all three programs per GiB: on loopback the kernel's receive work for a
    # segment runs in the sender's context, so how it splits between the programs shifts
    # with timing; the sum does not.
    for mv in R.values():
        for v in mv.values():
            for r in v:
                if r.get("server_cpu_s_per_gib") is not None and r.get("client_cpu_s_per_gib") is not None:
                    r["all_cpu_s_per_gib"] = (r["server_cpu_s_per_gib"] + r["client_cpu_s_per_gib"] +
                                              r.get("proxy_cpu_s_per_gib", 0))

    def runs_list(vals, spec):
        return ", ".join(spec % x for x in sorted(vals))

    out(SECTION)
    out("")
    out("Generated by `%s` on %s UTC in %.0f s; %d repetition%s, every measurement run "
        "for each path back to back in an order rotated every repetition; medians. Rerun "
        "`bench/lb_run.py` to refresh this section; the rest of this file is kept as it is." % (
            st.get("argv", "bench/lb_run.py"), st["started"][:16].replace("T", " "), st["elapsed"], st["reps"],
            "" if st["reps"] == 1 else "s"))
    if st.get("quick"):
        out("")
        out("**This is a `--quick` smoke run (one short repetition): do not read it as a result.**")
    out("")
    if not have_stratus:
        out("**`stratus lb` was not available when this ran (`%s`), so only direct and haproxy "
            "were measured; its targets say not run.**" % st.get("stratus_status", "?"))
        out("")

    # ---- targets
    out("### Targets")
    out("")
    out("Paired within each repetition; **ratio** is the median of the per-repetition ratios "
        "(each listed), the two columns before it the medians of each path.")
    out("")
    out("| target | stratus lb | haproxy | ratio or difference (each repetition) | result |")
    out("|---|---|---|---|---|")

    def tput_row(n, need):
        s, h = runs("stream-%d" % n, "stratus"), runs("stream-%d" % n, "haproxy")
        rs = paired(s, h, "gib_per_s", ratio)
        r = median(rs)
        out("| %s through stratus lb >= %gx haproxy's | %s GiB/s | %s GiB/s | %s (%s) | %s |" % (
            "one stream" if n == 1 else "%d streams" % n, need, fmt(med(s, "gib_per_s"), "%.2f"),
            fmt(med(h, "gib_per_s"), "%.2f"), fmt(r, "%.2fx"), runs_list(rs, "%.2f"),
            verdict(None if r is None else r >= need)))

    tput_row(1, T_ONE_STREAM_X)
    tput_row(4, T_FOUR_STREAMS_X)
    s, h = runs("connect", "stratus"), runs("connect", "haproxy")
    rs = paired(s, h, "connections_per_s", ratio)
    r = median(rs)
    out("| new connections/s through stratus lb >= haproxy's | %s/s | %s/s | %s (%s) | %s |" % (
        fmt(med(s, "connections_per_s")), fmt(med(h, "connections_per_s")), fmt(r, "%.2fx"),
        runs_list(rs, "%.2f"), verdict(None if r is None else r >= T_CONNECT_X)))
    d = runs("pingpong", "direct")
    add_s = paired(runs("pingpong", "stratus"), d, "p99_us", minus)
    add_h = paired(runs("pingpong", "haproxy"), d, "p99_us", minus)
    a = median(add_s)
    out("| added p99 latency (64 B round trip through stratus lb minus direct) < %.0f µs | %s µs | %s µs | "
        "%s (%s) | %s |" % (
            T_ADDED_P99_US, fmt(a, "%+.1f"), fmt(median(add_h), "%+.1f"), fmt(a, "%+.1f µs"),
            runs_list(add_s, "%+.1f"), verdict(None if a is None else a < T_ADDED_P99_US)))
    for n in STREAMS:
        s, h = runs("stream-%d" % n, "stratus"), runs("stream-%d" % n, "haproxy")
        rs = paired(s, h, "proxy_cpu_s_per_gib", ratio)
        r = median(rs)
        out("| proxy CPU-s per GiB relayed, %s, below haproxy's | %s | %s | %s (%s) | %s |" % (
            "one stream" if n == 1 else "%d streams" % n, fmt(med(s, "proxy_cpu_s_per_gib"), "%.3f"),
            fmt(med(h, "proxy_cpu_s_per_gib"), "%.3f"), fmt(r, "%.2fx"), runs_list(rs, "%.2f"),
            verdict(None if r is None else r < 1.0)))
    out("")

    # ---- all results
    out("### Results")
    out("")
    out("Medians over the repetitions; one column per path. GiB = 2^30 bytes of payload; the "
        "sink's byte count must equal what each connection sent (every run checked it). CPU is "
        "utime+stime of the proxy process from `/proc/PID/stat` over the whole run (warm-up "
        "included) per GiB sent in it; `se.sum_exec_runtime` from `/proc/PID/task/*/sched` "
        "agrees and is in the JSON lines. *% of direct* is the path's median over direct's median.")
    out("")
    out("| | " + " | ".join(PATH_NAMES[p] for p in paths) + " |")
    out("|---|" + "---|" * len(paths))

    def row(label, measure, key, spec, rel_direct=False, proxy_only=False, scale=1.0):
        cells = []
        for p in paths:
            if proxy_only and p == "direct":
                cells.append("")
                continue
            v = med(runs(measure, p), key)
            v = None if v is None else v * scale
            c = fmt(v, spec)
            if rel_direct and p != "direct" and v is not None:
                dv = med(runs(measure, "direct"), key)
                if dv:
                    c += " (%.0f%% of direct)" % (v / dv * 100)
            cells.append(c)
        out("| %s | %s |" % (label, " | ".join(cells)))

    row("1 stream, GiB/s", "stream-1", "gib_per_s", "%.2f", rel_direct=True)
    row("4 streams, GiB/s", "stream-4", "gib_per_s", "%.2f", rel_direct=True)
    row("proxy CPU-s per GiB, 1 stream", "stream-1", "proxy_cpu_s_per_gib", "%.3f", proxy_only=True)
    row("proxy CPU-s per GiB, 4 streams", "stream-4", "proxy_cpu_s_per_gib", "%.3f", proxy_only=True)
    row("sink CPU-s per GiB, 1 stream", "stream-1", "server_cpu_s_per_gib", "%.3f")
    row("client CPU-s per GiB, 1 stream", "stream-1", "client_cpu_s_per_gib", "%.3f")
    row("client + proxy + sink CPU-s per GiB, 1 stream", "stream-1", "all_cpu_s_per_gib", "%.3f")
    row("client + proxy + sink CPU-s per GiB, 4 streams", "stream-4", "all_cpu_s_per_gib", "%.3f")
    row("64 B round trip p50, µs", "pingpong", "p50_us", "%.1f")
    row("64 B round trip p99, µs", "pingpong", "p99_us", "%.1f")
    row("64 B round trip p99.9, µs", "pingpong", "p999_us", "%.1f")
    d = runs("pingpong", "direct")
    for q, key in (("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us")):
        cells = []
        for p in paths:
            if p == "direct":
                cells.append("")
            else:
                cells.append(fmt(median(paired(runs("pingpong", p), d, key, minus)), "%+.1f"))
        out("| added %s, µs (median of paired differences) | %s |" % (q, " | ".join(cells)))
    row("round trips/s", "pingpong", "round_trips_per_s", "%.0f")
    row("proxy CPU µs per round trip", "pingpong", "proxy_cpu_us_per_round_trip", "%.1f", proxy_only=True)
    row("new connections/s", "connect", "connections_per_s", "%.0f", rel_direct=True)
    row("connect to answer p50, µs", "connect", "p50_us", "%.0f")
    row("connect to answer p99, µs", "connect", "p99_us", "%.0f")
    row("proxy CPU µs per connection", "connect", "proxy_cpu_us_per_connection", "%.1f", proxy_only=True)
    row("proxy RSS after the connect run, MiB", "connect", "proxy_rss_kib", "%.1f", proxy_only=True,
        scale=1 / 1024.0)
    out("")

    out("Each repetition (GiB/s for streams, connections/s, p99 µs):")
    out("")
    out("| measurement | " + " | ".join(PATH_NAMES[p] for p in paths) + " |")
    out("|---|" + "---|" * len(paths))
    for measure, key, spec in (("stream-1", "gib_per_s", "%.2f"), ("stream-4", "gib_per_s", "%.2f"),
                               ("connect", "connections_per_s", "%.0f"), ("pingpong", "p99_us", "%.0f")):
        cells = []
        for p in paths:
            vs = []
            for r in runs(measure, p):
                vs.append("err" if r.get("error") else spec % r.get(key, 0))
            cells.append(", ".join(vs))
        out("| %s | %s |" % (measure if measure != "pingpong" else "pingpong p99", " | ".join(cells)))
    out("")
    errs = [r for mv in R.values() for v in mv.values() for r in v if r.get("error")]
    if errs:
        out("Runs with errors (%d): %s" % (len(errs), "; ".join(
            "%s %s rep %s: %s" % (e.get("path", "?"), e.get("measure", "?"), e.get("rep", "?"), e["error"])
            for e in errs[:8])))
        out("")
    disc = st.get("discarded") or []
    kept = [r for mv in R.values() for v in mv.values() for r in v]
    shares = sorted(r.get("foreign_share", 0) for r in kept)
    if shares:
        out("Other work on the machine during the runs (CPU the rest of the machine used, from "
            "`/proc/stat`, as a share of one core): median %.0f%%, the busiest run %.0f%%. A "
            "measurement during which it exceeded %.0f%% for any path was run again for every "
            "path (at most %d times): %d of the %d measurements were repeated, %d times in all%s." % (
                median(shares) * 100, shares[-1] * 100, st.get("max_foreign", 0) * 100, st.get("retries", 0),
                len(set((r.get("measure"), r.get("rep")) for r in disc)), len(R) * st["reps"],
                len(set((r.get("measure"), r.get("rep"), r.get("attempt")) for r in disc)),
                "" if not disc else "; the discarded runs are in build/bench/lb_results.jsonl"))
        out("")
    restarts = {k: v for k, v in st.get("proxy_exits", {}).items() if any("during" in x for x in v)}
    if restarts:
        out("Proxies that exited during the run and were restarted: %s." % "; ".join(
            "%s (%s)" % (k, ", ".join(v)) for k, v in restarts.items()))
        out("")
    problems = st.get("lb_log", [])
    if have_stratus:
        out("stratus lb log: %s" % ("no warn or error lines." if not problems else
                                    "%d warn or error lines, the first:" % len(problems)))
        if problems:
            out("")
            out("```")
            L.extend(problems[:10])
            out("```")
        out("")

    # ---- machine and how to read
    out("### Machine and how to read these numbers")
    out("")
    out("| | |")
    out("|---|---|")
    out("| CPU | %s, %d cores (nproc) |" % (m["cpu"], m["nproc"]))
    out("| kernel | %s |" % m["kernel"])
    out("| haproxy | %s |" % m["haproxy"])
    out("| stratus | %s, `build/release/stratus` (-O2) |" % m["commit"])
    out("| load average | %s at start, %s at end; %.1f CPU-s stolen by the hypervisor during the run |" % (
        " ".join(m["loadavg_start"]), " ".join(m.get("loadavg_end", ["?"])), m.get("steal_s", 0)))
    out("")
    out("- **Three programs, %d cores.** The client (lb_bench), the proxy and the sink share "
        "the machine's cores. Direct, two programs each keep a core busy; through a proxy the "
        "proxy needs one more, so the proxied throughput is bounded by CPU, and a proxy that "
        "spends less CPU per byte leaves more to the client and the sink. The machine is shared "
        "with other engineers' work, which is why the paths are compared within a repetition." % m["nproc"])
    out("- **Streams.** Each connection writes %d KiB write()s for the warm-up (%.1f s, not "
        "counted) and %.0f s, then shuts down its write side; the sink answers with the count "
        "of bytes it read, which must match. The rate is the bytes written after the warm-up "
        "over the time from the warm-up's end to the last count. The sink reads with "
        "read() into a 256 KiB buffer on one epoll thread." % (128, st["dur"]["warmup"], st["dur"]["stream"]))
    out("- **Latency.** One connection (TCP_NODELAY), one 64-byte message out, the same 64 bytes "
        "echoed back (checked), the next sent at once, for %.0f s after the warm-up; every round "
        "trip is kept. Each hop on loopback wakes a sleeping process, which on this VM costs "
        "tens of microseconds, so the direct round trip is already some 50 µs. The added latency "
        "is the path's percentile minus direct's in the same repetition, the median of those "
        "differences." % st["dur"]["pingpong"])
    out("- **Connections.** %d client threads each: connect(), write 1 byte, read the sink's "
        "1-byte answer, close(); for %.0f s after the warm-up. A proxy connects to the sink for "
        "every client connection, so the count is of end-to-end sessions." % (
            CONNECT_THREADS, st["dur"]["connect"]))
    out("")

    # ---- configurations
    out("### Configurations")
    out("")
    out("haproxy %s, `haproxy -f haproxy.cfg -db` (foreground, one process):" % m["haproxy"].split(" ")[0])
    out("")
    out("```")
    out(st["configs"]["haproxy"].rstrip())
    out("```")
    out("")
    out("- `nbthread 1`: stratus lb relays on one thread; haproxy would otherwise start one "
        "thread per core and could use both cores, against stratus lb's one.")
    out("- `check inter 1000 rise 2 fall 3`: a TCP-connect health check every second, as "
        "stratus lb's defaults (`health_check tcp`, `health_interval_ms 1000`, `health_rise 2`, "
        "`health_fall 3`); stratus lb has no way to turn checks off, so haproxy gets the same "
        "background work rather than none. One connect a second is noise next to the load.")
    out("- `maxconn 4000`: haproxy sizes its file-descriptor needs from maxconn, and this "
        "machine's hard limit (20000) refuses haproxy's default here; every run needs fewer "
        "than 10 concurrent connections. Buffers, timeouts and everything else are haproxy's "
        "defaults (tune.bufsize 16 KiB, recv()/send() through user space).")
    out("- **haproxy, splice** is the same with `option splice-auto` (haproxy then moves bytes "
        "with splice() through pipes, as stratus lb does). The targets compare with plain "
        "haproxy, its default and the configuration the issue's 40%-of-direct figure describes; "
        "the splice column shows how much of a difference the relay method makes here.")
    out("")
    out("stratus lb, `build/release/stratus lb --config stratus.cfg` (docs/lb.md):")
    out("")
    out("```")
    out(st["configs"]["stratus"].rstrip())
    out("```")
    out("")
    out("Every other setting is stratus lb's default (health checks as above, connect timeout "
        "3 s, max_connections 10000, no PROXY header). The runner waits until a connection "
        "passes end to end before measuring (stratus lb's target starts down until two checks "
        "passed).")
    out("")

    # ---- profiles
    profs = st.get("profiles") or []
    if profs:
        out("### Where the proxies spend CPU")
        out("")
        out("After the measured runs: `perf record -e cpu-clock -g` and `perf stat -e "
            "syscalls:sys_enter_...` of the proxy process for %s s, starting 0.5 s into a load "
            "(1 stream, 4 streams, then the %d-thread connect load) through it; perf slows the "
            "proxy, so the rates here are not results. **Proxy CPU** is perf stat's task-clock "
            "over the window per GiB or connection (the client's rate times the window). "
            "**Inside** is the share of the proxy's samples inside each syscall (at least 2%%; "
            "kernel work included, and for a relay on loopback that includes the TCP receive "
            "processing of the peer, which runs in the sender's softirq), and the samples in the "
            "proxy's own code and libraries. **Syscalls** are counted per GiB or per connection "
            "(those under 2 per GiB are left out)." % (profs[0]["seconds"], CONNECT_THREADS))
        out("")
        out("| proxy | load | proxy CPU | inside (share of samples) | syscalls |")
        out("|---|---|---|---|---|")
        for p in profs:
            inside = []
            for x in p["children"]:
                f = x.split()
                if len(f) >= 4 and f[-1].startswith("__x64_sys_"):
                    inside.append("%s %s" % (f[-1][len("__x64_sys_"):], f[0]))
            if p.get("user_share") is not None:
                inside.append("user space (self) %.1f%%" % p["user_share"])
            per = p.get("syscalls_per_unit") or {}
            floor = 2 if p["unit"] == "GiB" else 0.05
            sc = ", ".join(("%s %.0f" if v >= 10 else "%s %.1f") % (k, v)
                           for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= floor)
            cpu, load = "n/a", p["name"]
            if p.get("cpu_s_per_unit") is not None:
                cpu = ("%.3f s per GiB" % p["cpu_s_per_unit"]) if p["unit"] == "GiB" else (
                    "%.0f µs per connection" % (p["cpu_s_per_unit"] * 1e6))
            if p.get("rate") is not None:
                load += (", %.2f GiB/s" % p["rate"]) if p["unit"] == "GiB" else (", %.0f/s" % p["rate"])
            out("| %s | %s | %s | %s | %s |" % (
                PATH_NAMES.get(p["path"], p["path"]), load, cpu, ", ".join(inside) or "n/a",
                ("per %s: " % p["unit"] + sc) if sc else "n/a"))
        out("")
        for line in profile_summary(profs):
            out(line)
            out("")
        out("Self time, the top symbols of each profile (on this VM `cpu-clock` samples taken "
            "while interrupts are off land on the instruction that turns them back on, so "
            "`_raw_spin_unlock_irqrestore` stands for softirq and lock work that ran just before):")
        out("")
        out("```")
        for p in profs:
            out("%s, %s:" % (PATH_NAMES.get(p["path"], p["path"]), p["name"]))
            L.extend(p["self"][:6])
        out("```")
        out("")

    # ---- commands
    out("### Commands")
    out("")
    out("```")
    minutes = max(1, round(st["elapsed"] / 60))
    out("bench/lb_run.py              # builds, runs everything (about %d minute%s), rewrites this section" % (
        minutes, "" if minutes == 1 else "s"))
    out("bench/lb_run.py --quick      # one short repetition, as a smoke test")
    out("bench/lb_run.py --reps 9     # more repetitions")
    out("bench/lb_run.py --render     # only rewrite this section from build/bench/lb_state.json")
    out("```")
    out("")
    out("Processes, as run (PORT differs per run; the configurations are above):")
    out("")
    out("```")
    for c in st["process_commands"]:
        out(c)
    out("```")
    out("")
    out("Load commands, as run:")
    out("")
    out("```")
    for c in st["commands"]:
        out(c)
    out("```")
    out("")
    return "\n".join(L)


def profile_summary(profs):
    """Sentences on what the profiles show, from their numbers."""
    by = {(p["path"], p["name"]): p for p in profs}
    out = []

    def inside(p, call):
        for x in p.get("children", []):
            f = x.split()
            if len(f) >= 4 and f[-1] == "__x64_sys_" + call:
                return float(f[0].rstrip("%"))
        return None

    s1, h1 = by.get(("stratus", "1 stream")), by.get(("haproxy", "1 stream"))
    if s1 and s1.get("syscalls_per_unit"):
        per = s1["syscalls_per_unit"]
        sp, ew = per.get("splice"), per.get("epoll_wait")
        if sp:
            out.append("- **stratus lb, streams:** %s of its samples are inside splice() and %s in its own code; "
                       "it makes %.0f splice() calls per GiB, %.0f KiB per call on average (two calls, in "
                       "and out of the pipe, per %.0f KiB relayed)%s. The time is the kernel's TCP send and "
                       "receive path, not the relay's own work." % (
                           fmt(inside(s1, "splice"), "%.0f%%"), fmt(s1.get("user_share"), "%.1f%%"), sp,
                           GIB / sp / 1024, 2 * GIB / sp / 1024,
                           ", and one epoll_wait() per %.0f splice() calls" % (sp / ew) if ew else ""))
    if h1 and h1.get("syscalls_per_unit"):
        per = h1["syscalls_per_unit"]
        rv, sd = per.get("recvfrom"), per.get("sendto")
        if rv and sd:
            copies = 0.0
            for x in h1.get("self", []):
                f = x.split()
                if len(f) >= 3 and f[-1] in ("_copy_to_iter", "_copy_from_iter"):
                    copies += float(f[0].rstrip("%"))
            out.append("- **haproxy, streams:** %.0f recv() and %.0f send() calls per GiB (%.0f KiB each; "
                       "its buffer is 16 KiB), %s of its samples inside them; copying the bytes into and "
                       "out of user space (`_copy_to_iter`, `_copy_from_iter`) alone is %s of them, work "
                       "a splice() relay does not do." % (
                           rv, sd, GIB / rv / 1024,
                           fmt((inside(h1, "recvfrom") or 0) + (inside(h1, "sendto") or 0), "%.0f%%"),
                           "%.0f%%" % copies))
    sc, hc = by.get(("stratus", "connect")), by.get(("haproxy", "connect"))
    if sc and hc and sc.get("syscalls_per_unit") and hc.get("syscalls_per_unit"):
        ts = sum(sc["syscalls_per_unit"].values())
        th = sum(hc["syscalls_per_unit"].values())
        out.append("- **New connections:** stratus lb makes %.0f syscalls per connection (%.1f of them "
                   "splice()) against haproxy's %.0f, and spends %s µs of CPU per connection against "
                   "haproxy's %s µs; most of both is the kernel's connect, accept, shutdown and close of "
                   "two TCP connections (the three-way handshakes and FINs on loopback are processed in "
                   "the proxy's context)." % (
                       ts, sc["syscalls_per_unit"].get("splice", 0), th,
                       fmt(sc["cpu_s_per_unit"] * 1e6 if sc.get("cpu_s_per_unit") else None),
                       fmt(hc["cpu_s_per_unit"] * 1e6 if hc.get("cpu_s_per_unit") else None)))
    return out


def write_section(out_path, section):
    old = open(out_path).read() if os.path.exists(out_path) else "# Benchmarks\n"
    with open(out_path, "w") as f:
        f.write(base.splice_section(old, section, SECTION))


# ---- main ----------------------------------------------------------------------------

def stratus_lb_status():
    """(True, "") when build/release/stratus has the lb command, else (False, why)."""
    if not os.path.exists(STRATUS):
        return False, "build/release/stratus does not exist"
    try:
        p = subprocess.run([STRATUS, "lb", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    text = (p.stdout + p.stderr).strip()
    if p.returncode != 0 or "unknown command" in text:
        return False, "stratus lb --help: exit %d, %s" % (p.returncode, text.splitlines()[0] if text else "")
    return True, ""


def haproxy_version():
    try:
        out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, timeout=10).stdout
        mo = re.search(r"version (\S+)", out)
        return mo.group(1) if mo else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def lb_log_problems(path):
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                fields = line.split(" ", 2)
                if len(fields) > 1 and fields[1] in ("warn", "error"):
                    out.append(line.rstrip("\n"))
    except OSError:
        pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="repetitions (medians are reported)")
    ap.add_argument("--quick", action="store_true", help="1 repetition of 1-second runs (smoke test)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-stratus", action="store_true", help="leave stratus lb out even when it is built")
    ap.add_argument("--no-splice", action="store_true", help="leave the haproxy splice variant out")
    ap.add_argument("--no-profile", action="store_true", help="skip the perf profiles at the end")
    ap.add_argument("--max-foreign", type=float, default=0.25,
                    help="repeat a measurement when other work kept more than this share of a core busy")
    ap.add_argument("--retries", type=int, default=2, help="how often a disturbed measurement is repeated")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from build/bench/lb_state.json")
    opts = ap.parse_args()
    if opts.render:
        with open(STATE) as f:
            st = json.load(f)
        write_section(opts.out, render_section(st))
        log("wrote the %r section of %s" % (SECTION, base.rel(opts.out)))
        return
    reps = 1 if opts.quick else opts.reps
    if opts.quick:
        dur = {"stream": 1.0, "pingpong": 1.0, "connect": 1.0, "warmup": 0.3, "profile": 2}
    else:
        dur = {"stream": 3.0, "pingpong": 3.0, "connect": 3.0, "warmup": 0.5, "profile": 4}
    t_begin = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    if not opts.no_build:
        log("building: make build/bench/lb_bench build/release/stratus")
        subprocess.run(["make", "-C", ROOT, "-j2", "build/bench/lb_bench"], check=True, stdout=subprocess.DEVNULL)
        b = subprocess.run(["make", "-C", ROOT, "-j2", "build/release/stratus"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if b.returncode != 0:
            log("  building build/release/stratus failed: %s" % b.stderr.strip()[-500:])
    if not shutil.which("haproxy"):
        sys.exit("haproxy is not installed: scripts/install-deps.sh installs it")
    have_stratus, why = stratus_lb_status()
    if opts.no_stratus:
        have_stratus, why = False, "--no-stratus"
    if not have_stratus:
        log("stratus lb is not available (%s): measuring direct and haproxy only" % why)
    paths = [p for p in PATHS if (p != "stratus" or have_stratus) and (p != "haproxy-splice" or not opts.no_splice)]

    workdir = tempfile.mkdtemp(prefix="stratus-lb-", dir="/tmp")
    rec = Recorder()
    machine = {
        "nproc": os.cpu_count(), "cpu": base.cpu_model(), "kernel": platform.release(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3], "haproxy": haproxy_version(),
        "commit": base.git_describe(), "steal_start_s": base.cpu_steal_s(),
    }
    log("machine: %s" % machine)
    per_run = max(dur["stream"], dur["pingpong"], dur["connect"]) + dur["warmup"] + 2
    server_bound = 600 + reps * len(paths) * 4 * per_run
    server = Server(workdir, server_bound)
    proxies = {}
    profiles = []
    discarded = []
    results = {}
    process_commands = [rel_cmd(server.cmd).replace("--max-seconds %d" % int(server_bound),
                                                     "--max-seconds BOUND")]
    configs = {}
    lb_problems = []
    try:
        for p in paths:
            if p == "direct":
                continue
            proxies[p] = Proxy(p, workdir, server.port).start()
            log("%s up on %s after %.2f s" % (p, proxies[p].addr, proxies[p].ready_s))
        for kind in ("haproxy", "haproxy-splice", "stratus"):
            px = proxies.get(kind) or Proxy(kind, workdir, server.port)
            configs[kind] = px.config_text()
            line = rel_cmd(px.command(os.path.join(workdir, "%s.cfg" % kind)))
            line = re.sub(r"/tmp/stratus-lb-[^ ]+/", "", line)
            if kind in proxies:
                process_commands.append(line)
        results, discarded = measure(rec, server, proxies, paths, reps, dur, opts.max_foreign, opts.retries)
        if not opts.no_profile and perf_available():
            log("== profiles (perf record)")
            profiles = run_profiles(rec, server, proxies, workdir, dur)
    finally:
        for p in proxies.values():
            p.stop()
        server.stop()
        if "stratus" in proxies:
            lb_problems = lb_log_problems(proxies["stratus"].log_path)
            try:
                shutil.copy(proxies["stratus"].log_path, os.path.join(ROOT, "build/bench/lb_stratus.log"))
            except OSError:
                pass
        shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    machine["steal_s"] = base.cpu_steal_s() - machine["steal_start_s"]
    st = {
        "argv": " ".join(["bench/lb_run.py"] + [shlex.quote(a) for a in sys.argv[1:]]),
        "started": started.isoformat(), "elapsed": time.monotonic() - t_begin, "reps": reps, "quick": opts.quick,
        "dur": dur, "paths": paths, "machine": machine, "results": results, "commands": rec.commands,
        "process_commands": process_commands, "configs": configs, "profiles": profiles,
        "stratus_status": why if not have_stratus else "",
        "proxy_exits": {k: p.exits for k, p in proxies.items()}, "lb_log": lb_problems[:50],
        "discarded": discarded, "max_foreign": opts.max_foreign, "retries": opts.retries,
    }
    with open(STATE, "w") as f:
        json.dump(st, f)
    write_section(opts.out, render_section(st))
    log("wrote the %r section of %s (%.0f s)" % (SECTION, base.rel(opts.out), st["elapsed"]))


if __name__ == "__main__":
    main()
