#!/usr/bin/python3
"""Runs the consumer-group benchmark and writes the "## Consumer groups" section of
docs/benchmarks.md (the rest of the file is kept as it is).

Three parts, each against a fresh release broker on 127.0.0.1:
1. OffsetCommit throughput and latency: build/bench/group_bench commit, 1 and 16
   connections, 1 and 10 partition offsets per commit, with the default flush policy
   and with log.flush.interval.messages=1 (each commit waits for an fsync of the
   offset store, shared by the commits of one loop iteration).
2. Rebalance of 10 raw-protocol members: build/bench/group_bench rebalance, an 11th
   member joining or one leaving, with 100 ms and 1000 ms heartbeats.
3. A member's death with real clients: 3 librdkafka consumers (bench/group_consumer.py,
   python3-confluent-kafka) on a 12-partition topic, kill -9 of one, time until the
   survivors' assignments cover all 12 partitions.

Every run is bounded in time; only 127.0.0.1 is used; only the processes started here are
stopped, by pid. Standard library only (the consumers need python3-confluent-kafka).

Usage: bench/group_run.py [--quick] [--reps N] [--out docs/benchmarks.md] [--render]
"""
import argparse
import datetime
import json
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (bench/run.py: Broker, machine probes, splice_section)

ROOT = base.ROOT
GROUP_BENCH = os.path.join(ROOT, "build/bench/group_bench")
CONSUMER = os.path.join(ROOT, "bench/group_consumer.py")
PYTHON = "/usr/bin/python3"
SECTION = "## Consumer groups"
STATE = os.path.join(ROOT, "build/bench/groups_state.json")
RESULTS = os.path.join(ROOT, "build/bench/groups_results.jsonl")

log = base.log
median = base.median


rel_cmd = base.rel_cmd


class Recorder(base.Recorder):
    """Runs group_bench, keeps every JSON result and the distinct command lines."""

    def __init__(self):
        super().__init__(RESULTS)

    def bench(self, args, timeout_s, extra=None):
        cmd = [GROUP_BENCH] + args
        self.note(rel_cmd(cmd))
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
                    log("  " + out)
            if p.stderr.strip():
                log("  stderr: " + p.stderr.strip()[-1000:])
            if res is None:
                res = {"error": "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])}
            elif p.returncode != 0 and not res.get("error"):
                res["error"] = "exit %d" % p.returncode
        res["command"] = rel_cmd(cmd)
        res.update(extra or {})
        self.save(res)
        return res

    def save(self, res):
        self.results.write(json.dumps(res) + "\n")
        self.results.flush()


PROBLEMS = []   # warn and error lines from the logs of the brokers started here


def stop_broker(b, keep=False):
    """Stops <b> and keeps any warn or error lines of its log in PROBLEMS."""
    b.stop(keep=keep)
    try:
        with open(b.log_path, errors="replace") as f:
            for line in f:
                fields = line.split(" ", 2)
                if len(fields) > 1 and fields[1] in ("warn", "error"):
                    PROBLEMS.append(line.rstrip("\n"))
                    log("  broker log: " + line.rstrip("\n"))
    except OSError:
        pass


# ---- 1. OffsetCommit -------------------------------------------------------------------

def run_commits(workdir, rec, reps, seconds):
    """Returns {(flush, connections, partitions): [results]}."""
    out = {}
    for rep in range(reps):
        for flush in ("default", "fsync"):
            overrides = ["log.flush.interval.messages=1"] if flush == "fsync" else []
            log("== OffsetCommit, flush=%s, repetition %d/%d" % (flush, rep + 1, reps))
            b = base.Broker(workdir, "commit", overrides).start()
            try:
                for conns in (1, 16):
                    for parts in (1, 10):
                        cpu0 = b.cpu_s()
                        r = rec.bench(["commit", "--bootstrap", b.bootstrap, "--topic", "offsets", "--partitions", "16",
                                       "--connections", str(conns), "--commit-partitions", str(parts),
                                       "--seconds", str(seconds), "--warmup", "0.5"], seconds + 60,
                                      {"flush": flush, "rep": rep})
                        cpu = b.cpu_s() - cpu0
                        if r.get("requests"):
                            # The broker's CPU over warm-up and window, per commit answered in the window
                            # (warm-up commits make this a slight overestimate).
                            r["broker_cpu_s"] = cpu
                            r["broker_cpu_us_per_commit"] = cpu / (r["requests"] * (seconds + 0.5) / seconds) * 1e6
                        out.setdefault((flush, conns, parts), []).append(r)
            finally:
                stop_broker(b)
    return out


# ---- 2. Rebalance of raw-protocol members ----------------------------------------------

def run_rebalances(workdir, rec, reps):
    """Returns {(trigger, heartbeat_ms): result}; each result holds all its repetitions."""
    out = {}
    b = base.Broker(workdir, "rebalance", ["group.initial.rebalance.delay.ms=0"]).start()
    try:
        for trigger in ("join", "leave"):
            for hb in (100, 1000):
                log("== rebalance, 10 members, trigger=%s, heartbeat %d ms" % (trigger, hb))
                out[(trigger, hb)] = rec.bench(
                    ["rebalance", "--bootstrap", b.bootstrap, "--topic", "rebalance", "--partitions", "12",
                     "--members", "10", "--trigger", trigger, "--heartbeat-ms", str(hb),
                     "--session-timeout-ms", "10000", "--reps", str(reps)], 60 + reps * 10)
    finally:
        stop_broker(b)
    return out


# ---- 3. A member's death with librdkafka consumers -------------------------------------

BROKER_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def expiry_wall_s(log_path, group):
    """Wall-clock time of the broker's "session timed out" line for <group>, or None."""
    pat = "group %s: rebalance at generation" % group
    with open(log_path) as f:
        for line in f:
            if pat in line and "session timed out" in line:
                m = BROKER_TS.match(line)
                if m:
                    dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
                    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()
    return None


class Consumers:
    """<n> bench/group_consumer.py processes in one group; their events in one queue."""

    def __init__(self, bootstrap, topic, group, n, session_ms, hb_ms, workdir, rec):
        self.events = queue.Queue()
        self.procs = []
        self.errors = []
        self.err_paths = []
        for i in range(n):
            # debug=cgrp: librdkafka logs each heartbeat, so its real cadence can be reported.
            cmd = [PYTHON, CONSUMER, "--bootstrap", bootstrap, "--topic", topic, "--group", group,
                   "--session-timeout-ms", str(session_ms), "--heartbeat-ms", str(hb_ms), "--max-seconds", "90",
                   "-X", "debug=cgrp"]
            if i == 0:
                line = rel_cmd(cmd).replace("--group " + group, "--group death-SESSION-REP")
                rec.note(line + "   # x%d, one process each" % n)
            self.err_paths.append(os.path.join(workdir, "%s-%d.err" % (group, i)))
            errf = open(self.err_paths[-1], "w")
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True)
            errf.close()
            self.procs.append(p)
            threading.Thread(target=self._read, args=(i, p), daemon=True).start()

    def _read(self, i, p):
        for line in p.stdout:
            try:
                self.events.put((i, json.loads(line)))
            except ValueError:
                pass
        self.events.put((i, None))

    def next_event(self, deadline):
        """The next (index, event) before <deadline> (monotonic), or None."""
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            return self.events.get(timeout=left)
        except queue.Empty:
            return None

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


HEARTBEAT_LINE = re.compile(r"^%7\|(\d+\.\d+)\|HEARTBEAT\|.*Heartbeat for group")


def heartbeat_cadence_ms(err_path, before_wall):
    """The median interval between the heartbeats librdkafka logged (debug=cgrp) in
    <err_path> before the wall-clock time <before_wall>, or None."""
    ts = []
    try:
        with open(err_path, errors="replace") as f:
            for line in f:
                m = HEARTBEAT_LINE.match(line)
                if m and float(m.group(1)) < before_wall:
                    ts.append(float(m.group(1)))
    except OSError:
        return None
    gaps = [(b - a) * 1000 for a, b in zip(ts, ts[1:])]
    return median(gaps[-5:]) if gaps else None


def covers(assigned, members, partitions):
    """True when the current assignments of <members> are disjoint and cover 0..partitions-1."""
    seen = []
    for i in members:
        seen += assigned.get(i) or []
    return len(seen) == partitions and set(seen) == set(range(partitions))


# librdkafka 2.0.2 heartbeats no more often than about every 500 ms, whatever
# heartbeat.interval.ms says below that (its debug log shows it; the report lists it).
LIBRDKAFKA_MIN_CADENCE_MS = 500


def death_rep(workdir, rec, b, session_ms, hb_ms, rep, reps, n=3, partitions=12):
    group = "death-%d-%d" % (session_ms, rep)
    # The kill comes 2 heartbeat intervals after the group became stable plus (rep + 0.5)
    # / reps of one heartbeat cycle, so over the repetitions it falls evenly over the cycle.
    cycle_s = max(hb_ms, LIBRDKAFKA_MIN_CADENCE_MS) / 1000.0
    settle_s = 2 * hb_ms / 1000.0 + (rep + 0.5) / reps * cycle_s
    cs = Consumers(b.bootstrap, "death", group, n, session_ms, hb_ms, workdir, rec)
    res = {"session_ms": session_ms, "heartbeat_ms": hb_ms, "rep": rep, "consumers": n, "partitions": partitions}
    try:
        assigned = {}
        # Wait until the group is stable: every consumer holds a share and together they cover
        # the topic, then for settle_s more (any event restarts the wait).
        deadline = time.monotonic() + 30
        stable_since = None
        while True:
            now = time.monotonic()
            if stable_since and now - stable_since >= settle_s:
                break
            ev = cs.next_event(min(deadline, now + 0.05))
            if ev is None:
                if time.monotonic() >= deadline:
                    res["error"] = "group not stable in 30 s"
                    return res
            else:
                i, e = ev
                if e is None:
                    res["error"] = "consumer %d exited before the kill" % i
                    return res
                if e["event"] == "assign":
                    assigned[i] = e["partitions"]
                elif e["event"] == "revoke":
                    assigned[i] = []
                elif e["event"] == "error":
                    cs.errors.append(e["error"])
                stable_since = None
            if stable_since is None and all(assigned.get(i) for i in range(n)) and covers(assigned, range(n),
                                                                                         partitions):
                stable_since = time.monotonic()
        victim = rep % n
        survivors = [i for i in range(n) if i != victim]
        t_kill = time.monotonic()
        wall_kill = time.time()
        os.kill(cs.procs[victim].pid, signal.SIGKILL)
        revoked = {}          # survivor -> first revoke after the kill
        reassigned = {}       # survivor -> its assign after that revoke
        deadline = t_kill + session_ms / 1000.0 + 30
        while True:
            if len(reassigned) == len(survivors) and covers(assigned, survivors, partitions):
                break
            ev = cs.next_event(deadline)
            if ev is None:
                res["error"] = "survivors did not cover the %d partitions within session + 30 s" % partitions
                return res
            i, e = ev
            if e is None or i == victim:
                continue
            if e["event"] == "revoke":
                assigned[i] = []
                revoked.setdefault(i, e["t"])
                reassigned.pop(i, None)
            elif e["event"] == "assign":
                assigned[i] = e["partitions"]
                if i in revoked:
                    reassigned[i] = e["t"]
            elif e["event"] == "error":
                cs.errors.append(e["error"])
        res["total_ms"] = (max(reassigned.values()) - t_kill) * 1000
        res["first_revoke_ms"] = (min(revoked.values()) - t_kill) * 1000
        res["last_revoke_ms"] = (max(revoked.values()) - t_kill) * 1000
        res["settle_ms"] = settle_s * 1000
        res["rest_ms"] = res["total_ms"] - session_ms
        exp = expiry_wall_s(b.log_path, group)
        if exp is not None:
            res["expiry_ms"] = (exp - wall_kill) * 1000
        death_split(res)
        log("  session %d ms, heartbeat %d ms: kill -9 of consumer %d -> all %d partitions reassigned in %.0f ms "
            "(broker expired it after %s ms, first survivor revoked at %.0f ms)" % (
                session_ms, hb_ms, victim, partitions, res["total_ms"],
                "%.0f" % res["expiry_ms"] if "expiry_ms" in res else "?", res["first_revoke_ms"]))
        return res
    finally:
        cs.stop()
        if "total_ms" in res:
            cadences = [heartbeat_cadence_ms(cs.err_paths[i], wall_kill) for i in range(n)]
            res["heartbeat_cadence_ms"] = median(cadences)
        if cs.errors:
            res["client_errors"] = cs.errors[:5]
        rec.save(res)


def death_split(res):
    """Adds to <res> the parts of kill to reassigned after the broker's expiry: until the
    last survivor's heartbeat said rejoin (the join phase waits for every member), and
    from there until all were assigned."""
    if res.get("total_ms") is not None and res.get("last_revoke_ms") is not None:
        res["revoke_to_assigned_ms"] = res["total_ms"] - res["last_revoke_ms"]
        if res.get("expiry_ms") is not None:
            res["expiry_to_revoke_ms"] = res["last_revoke_ms"] - res["expiry_ms"]
    return res


def run_deaths(workdir, rec, reps):
    """Returns {(session_ms, heartbeat_ms): [results]}."""
    out = {}
    overrides = ["group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=1000"]
    b = base.Broker(workdir, "death", overrides).start()
    try:
        rec.bench(["create", "--bootstrap", b.bootstrap, "--topic", "death", "--partitions", "12"], 30)
        for session_ms, hb_ms in ((1000, 300), (3000, 1000)):
            log("== member death, 3 librdkafka consumers, session.timeout.ms=%d, heartbeat.interval.ms=%d"
                % (session_ms, hb_ms))
            for rep in range(reps):
                out.setdefault((session_ms, hb_ms), []).append(
                    death_rep(workdir, rec, b, session_ms, hb_ms, rep, reps))
    finally:
        stop_broker(b, keep=True)
        shutil.copy(b.log_path, os.path.join(ROOT, "build/bench/groups_death_broker.log"))
        shutil.rmtree(b.dir, ignore_errors=True)
    return out


# ---- the report ----------------------------------------------------------------------

def fmt(x, spec="%.0f"):
    return base.fmt(x, spec)


def med(runs, key):
    return median([r.get(key) for r in runs if not r.get("error")])


def runs_list(runs, key, spec="%.0f"):
    return ", ".join(spec % r[key] for r in runs if r.get(key) is not None and not r.get("error"))


def render_section(st):
    L = []
    out = L.append
    m = st["machine"]
    out(SECTION)
    out("")
    out("Generated by `bench/group_run.py` on %s in %.0f s (%d repetition%s, tables show medians); "
        "`bench/group_run.py` rewrites only this section, and `bench/run.py` keeps it. Same "
        "machine as above: %s, %d cores, %.1f GiB, kernel %s, data directories on /tmp (%s), "
        "stratus %s (`build/release/stratus`), librdkafka %s with python3-confluent-kafka %s; "
        "load average %s at start, %s at end. The load tool (one thread) and the broker "
        "(one loop thread) share the %d cores, so these are rates of the pair, not of the broker "
        "alone." % (
            st["started"][:16].replace("T", " ") + " UTC", st["elapsed"], st["reps"], "" if st["reps"] == 1 else "s",
            m["cpu"], m["nproc"], m["mem_gib"], m["kernel"], m["workdir_fs"], m["commit"], m["librdkafka"],
            m["confluent_kafka"], " ".join(m["loadavg_start"]), " ".join(m["loadavg_end"]), m["nproc"]))
    out("")

    # ---- commits
    commits = {tuple(json.loads(k)): v for k, v in st["commits"].items()}
    out("### OffsetCommit throughput")
    out("")
    out("`build/bench/group_bench commit`: each connection is a standalone consumer that "
        "commits offsets for a group of its own (generation -1, member id \"\"; the group "
        "stays Empty) with OffsetCommit v8 and one request in flight, for %.0f s after a "
        "0.5 s warm-up. A commit carries 1 or 10 partition offsets of one 16-partition topic. "
        "Latency: from writing the request to reading the whole answer, every request. "
        "**fsync** = `log.flush.interval.messages=1`: the answer waits for an fdatasync of "
        "the offset store (`groups.log`), one per loop iteration for all the commits read "
        "in it. A 4 KiB append plus fdatasync() on /tmp takes %s ms here (median of 200; the "
        "VM's disk acknowledges flushes quickly), so the fsync rows are no guide to a "
        "disk with slow flushes. Broker CPU is its on-CPU time over the run per commit." % (
            st["commit_seconds"], fmt(m.get("fdatasync_ms"), "%.3f")))
    out("")
    out("| flush | connections | offsets/commit | commits/s | offsets/s | p50 ms | p99 ms | p99.9 ms | max ms "
        "| broker CPU µs/commit | commits/s of each run |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for flush in ("default", "fsync"):
        for conns in (1, 16):
            for parts in (1, 10):
                v = commits.get((flush, conns, parts), [])
                out("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    flush, conns, parts, fmt(med(v, "commits_per_s")), fmt(med(v, "offsets_per_s")),
                    fmt(med(v, "lat_p50_ms"), "%.3f"), fmt(med(v, "lat_p99_ms"), "%.3f"),
                    fmt(med(v, "lat_p999_ms"), "%.3f"), fmt(med(v, "lat_max_ms"), "%.1f"),
                    fmt(med(v, "broker_cpu_us_per_commit"), "%.1f"), runs_list(v, "commits_per_s")))
    errs = [r for v in commits.values() for r in v if r.get("error")]
    if errs:
        out("")
        out("Runs with errors (%d): %s" % (len(errs), "; ".join(
            "`%s`: %s" % (e.get("command", "?"), e["error"]) for e in errs[:5])))
    out("")
    d1, f1 = med(commits.get(("default", 1, 1), []), "commits_per_s"), med(commits.get(("fsync", 1, 1), []),
                                                                             "commits_per_s")
    d16, f16 = med(commits.get(("default", 16, 1), []), "commits_per_s"), med(commits.get(("fsync", 16, 1), []),
                                                                               "commits_per_s")
    if d1 and f1 and d16 and f16:
        out("With one connection every commit waits for an fsync of its own: %.0f commits/s "
            "against %.0f without fsync. With 16 connections the commits read in one loop "
            "iteration share one fsync, so with fsync 16 connections commit %.1fx as fast as "
            "one (%.0f commits/s, %.0f%% of the %.0f without fsync)." % (
                f1, d1, f16 / f1, f16, f16 / d16 * 100, d16))
        out("")

    # ---- rebalances
    rebal = {tuple(json.loads(k)): v for k, v in st["rebalances"].items()}
    out("### Rebalance of 10 members (raw protocol)")
    out("")
    out("`build/bench/group_bench rebalance`, broker with `group.initial.rebalance.delay.ms=0`. "
        "10 members on 10 connections send JoinGroup v5 back to back, each rejoins with the "
        "member id its MEMBER_ID_REQUIRED answer handed out, the leader assigns the 12 "
        "partitions of a topic round-robin in SyncGroup v3, and the others send an empty "
        "SyncGroup v3; **initial** is from the first JoinGroup to the last SyncGroup answer. "
        "Then the members heartbeat (Heartbeat v3) every 100 or 1000 ms, and an 11th member "
        "joins (**join**) or one sends LeaveGroup v3 (**leave**). The others learn of it when "
        "a heartbeat answers REBALANCE_IN_PROGRESS and rejoin; **trigger to synced** is from "
        "the trigger to the last SyncGroup answer of the new generation (every member synced, "
        "the assignments cover the 12 partitions once). It splits into **heartbeat wait** "
        "(until the last member's heartbeat said rejoin) and **the rest** (rejoin, join "
        "response, sync). The members synced within a millisecond of each other, so their "
        "heartbeats are in step; the trigger is placed at (rep + 0.5)/reps of a heartbeat "
        "interval, so over the repetitions the wait averages half an interval. A new group "
        "per repetition (%d repetitions per row)." % st["rebalance_reps"])
    out("")
    out("| trigger | heartbeat | initial, 10 members | JoinGroups for it | trigger to synced | heartbeat wait "
        "| the rest | trigger to synced, each run |")
    out("|---|---|---|---|---|---|---|---|")
    for trigger in ("join", "leave"):
        for hb in (100, 1000):
            r = rebal.get((trigger, hb), {})
            if r.get("error") and not r.get("trigger_ms"):
                out("| %s | %d ms | %s |  |  |  |  |  |" % (trigger, hb, "error: " + r["error"]))
                continue
            out("| %s | %d ms | %s ms | %s | %s ms | %s ms | %s ms | %s |" % (
                trigger, hb, fmt(r.get("initial_ms_median"), "%.2f"), fmt(r.get("initial_joins_median")),
                fmt(r.get("trigger_ms_median"), "%.1f"), fmt(r.get("learn_ms_median"), "%.1f"),
                fmt(r.get("rest_ms_median"), "%.2f"),
                ", ".join("%.0f" % x for x in r.get("trigger_ms", []))))
    out("")
    rests = [r.get("rest_ms_median") for r in rebal.values() if r.get("rest_ms_median") is not None]
    shares = [r["learn_ms_median"] / r["trigger_ms_median"] * 100 for r in rebal.values()
              if r.get("trigger_ms_median") and r.get("learn_ms_median") is not None]
    if rests and shares:
        out("The broker's part of a rebalance (the rest) is %.2f to %.2f ms for 10 members; "
            "the heartbeat wait is %.1f%% or more of the time from trigger to synced, so the "
            "rebalance time is set by the heartbeat interval (half of it on average, all of "
            "it at worst)." % (min(rests), max(rests), min(shares)))
        out("")

    # ---- deaths
    deaths = {tuple(json.loads(k)): [death_split(r) for r in v] for k, v in st["deaths"].items()}
    out("### A member's death, librdkafka consumers")
    out("")
    out("Broker with `group.min.session.timeout.ms=1000` and "
        "`group.initial.rebalance.delay.ms=0`. Three `bench/group_consumer.py` processes "
        "(python3-confluent-kafka: subscribe, eager range assignor, librdkafka defaults "
        "otherwise, `debug=cgrp` to log heartbeats) share a 12-partition topic. Once each "
        "holds 4 partitions, 2 heartbeat intervals plus (rep + 0.5)/reps of a heartbeat "
        "cycle later (so that over the repetitions the kill falls evenly over the cycle), "
        "one gets `kill -9` (a different one each repetition). **Kill to reassigned**: until the last survivor's on_assign that "
        "makes the survivors' assignments cover the 12 partitions (timestamps taken in the "
        "consumers, CLOCK_MONOTONIC like the runner's). **minus session timeout** is that "
        "minus session.timeout.ms. It splits into **kill to expiry** (the broker log's "
        "`session timed out` line against the wall clock at the kill: the session timeout "
        "minus the time since the dead member's last heartbeat), **expiry to last revoke** "
        "(until the last survivor's heartbeat answered REBALANCE_IN_PROGRESS and librdkafka "
        "revoked: the heartbeat wait; the join phase waits for every member) and **last "
        "revoke to reassigned** (rejoin, sync, on_assign). "
        "**heartbeats seen** is the interval between the heartbeats librdkafka logged: "
        "librdkafka 2.0.2 sends them no more often than about every 500 ms, whatever "
        "heartbeat.interval.ms says below that, so the heartbeat cycle is that interval.")
    out("")
    out("| session.timeout.ms | heartbeat.interval.ms | heartbeats seen | kill to reassigned | minus session timeout "
        "| kill to expiry | expiry to last revoke | last revoke to reassigned | kill to reassigned, each run |")
    out("|---|---|---|---|---|---|---|---|---|")
    if not deaths:
        out("| not run: python3-confluent-kafka was not installed |  |  |  |  |  |  |  |  |")
    for (session_ms, hb_ms), v in sorted(deaths.items()):
        out("| %d | %d | every %s ms | %s ms | %s ms | %s ms | %s ms | %s ms | %s |" % (
            session_ms, hb_ms, fmt(med(v, "heartbeat_cadence_ms")), fmt(med(v, "total_ms")),
            fmt(med(v, "rest_ms"), "%+.0f"), fmt(med(v, "expiry_ms")), fmt(med(v, "expiry_to_revoke_ms")),
            fmt(med(v, "revoke_to_assigned_ms"), "%.1f"), runs_list(v, "total_ms")))
    errs = [r for v in deaths.values() for r in v if r.get("error")]
    if errs:
        out("")
        out("Repetitions with errors (%d): %s" % (len(errs), "; ".join(e["error"] for e in errs[:5])))
    out("")
    out("So kill to reassigned = session timeout - (kill - the dead member's last heartbeat) "
        "+ the survivors' heartbeat wait + about a millisecond of rejoin and sync. All three "
        "consumers synced together, so their heartbeats are in step, and with a session "
        "timeout that is a whole number of heartbeat cycles a survivor's heartbeat reaches "
        "the broker just as the dead member expires: when it comes first it is answered "
        "NONE and that survivor learns a full cycle later, which is why the heartbeat wait "
        "is often a whole cycle rather than half of one. A session timeout that is not a "
        "multiple of the heartbeat cycle would spread it.")
    out("")

    problems = st.get("broker_problems", [])
    out("Broker logs: %s" % ("no warn or error lines." if not problems else
                             "%d warn or error lines, the first:" % len(problems)))
    if problems:
        out("")
        out("```")
        L.extend(problems[:10])
        out("```")
    out("")

    # ---- commands
    out("### Commands")
    out("")
    out("```")
    minutes = max(1, round(st["elapsed"] / 60))
    out("bench/group_run.py          # builds, runs all three parts (about %d minute%s), rewrites this section"
        % (minutes, "" if minutes == 1 else "s"))
    out("bench/group_run.py --quick  # one repetition of shorter runs, as a smoke test")
    out("```")
    out("")
    out("Brokers (fresh data directory and port each):")
    out("")
    out("```")
    brk = "build/release/stratus broker --override listeners=PLAINTEXT://127.0.0.1:PORT --override log.dirs=DIR"
    out(brk + "                       # OffsetCommit, default flush")
    out(brk + " --override log.flush.interval.messages=1   # OffsetCommit, fsync")
    out(brk + " --override group.initial.rebalance.delay.ms=0   # rebalance")
    out(brk + " --override group.initial.rebalance.delay.ms=0 --override group.min.session.timeout.ms=1000"
        "   # member death")
    out("```")
    out("")
    out("Load commands, as run (PORT differs per run):")
    out("")
    out("```")
    for c in st["commands"]:
        out(c)
    out("```")
    out("")
    return "\n".join(L)


def write_section(out_path, section):
    old = open(out_path).read() if os.path.exists(out_path) else "# Benchmarks\n"
    with open(out_path, "w") as f:
        f.write(base.splice_section(old, section, SECTION))


def fdatasync_ms(workdir, n=200):
    """Median time of a 4 KiB append plus fdatasync() in <workdir>: what one group-commit
    fsync costs on this disk."""
    path = os.path.join(workdir, "fsync.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block = os.urandom(4096)
    times = []
    try:
        for _ in range(n):
            t0 = time.monotonic()
            os.write(fd, block)
            os.fdatasync(fd)
            times.append((time.monotonic() - t0) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    return median(times)


def confluent_kafka_version():
    try:
        return subprocess.run([PYTHON, "-c", "import confluent_kafka; print(confluent_kafka.version()[0])"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported)")
    ap.add_argument("--quick", action="store_true", help="1 repetition of shorter runs (smoke test)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/benchmarks.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from build/bench/groups_state.json")
    opts = ap.parse_args()
    if opts.render:
        with open(STATE) as f:
            write_section(opts.out, render_section(json.load(f)))
        return
    reps = 1 if opts.quick else opts.reps
    commit_seconds = 1.0 if opts.quick else 3.0
    rebalance_reps = 2 if opts.quick else 6
    t_begin = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    if not opts.no_build:
        log("building: make build/release/stratus bench")
        subprocess.run(["make", "-C", ROOT, "-j2", "build/release/stratus", "bench"], check=True,
                       stdout=subprocess.DEVNULL)
    workdir = tempfile.mkdtemp(prefix="stratus-groups-", dir="/tmp")
    rec = Recorder()
    machine = {
        "nproc": os.cpu_count(), "cpu": base.cpu_model(), "mem_gib": base.mem_total_gib(),
        "kernel": platform.release(), "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "librdkafka": base.librdkafka_version(), "confluent_kafka": confluent_kafka_version(),
        "commit": base.git_describe(),
        "workdir_fs": subprocess.run(["df", "-T", workdir], capture_output=True,
                                     text=True).stdout.splitlines()[-1].split()[1],
    }
    machine["fdatasync_ms"] = fdatasync_ms(workdir)
    log("machine: %s" % machine)
    try:
        commits = run_commits(workdir, rec, reps, commit_seconds)
        rebalances = run_rebalances(workdir, rec, rebalance_reps)
        if machine["confluent_kafka"] == "unknown":
            log("python3-confluent-kafka is missing (scripts/install-deps.sh installs it): member-death runs skipped")
            deaths = {}
        else:
            deaths = run_deaths(workdir, rec, 1 if opts.quick else max(5, reps))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    st = {
        "started": started.isoformat(), "elapsed": time.monotonic() - t_begin, "reps": reps, "machine": machine,
        "commit_seconds": commit_seconds, "rebalance_reps": rebalance_reps, "commands": rec.commands,
        "commits": {json.dumps(list(k)): v for k, v in commits.items()},
        "rebalances": {json.dumps(list(k)): v for k, v in rebalances.items()},
        "deaths": {json.dumps(list(k)): v for k, v in deaths.items()},
        "broker_problems": PROBLEMS[:50],
    }
    with open(STATE, "w") as f:
        json.dump(st, f)
    write_section(opts.out, render_section(st))
    log("wrote the %r section of %s (%.0f s)" % (SECTION, base.rel(opts.out), st["elapsed"]))


if __name__ == "__main__":
    main()
