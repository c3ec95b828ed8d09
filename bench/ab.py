#!/usr/bin/python3
"""A/B comparison of two broker binaries on one load, interleaved on the same machine in
one run (A, B, B, A, A, B, ...), so that noise from the shared cores falls on both.

    bench/ab.py --a /tmp/old/stratus --b build/release/stratus --size 1024 --partitions 16

Each repetition starts a fresh broker and produces --count records (acks=1), then reads
one shared backlog (written once, by A, at the start) back in one pass with a broker of
the same binary on it; it prints produce and consume MB/s and broker CPU-s per GiB for
each, then the medians and the B/A ratios. Uses bench/run.py's broker and load-tool
helpers (127.0.0.1, fresh data directories, only its own processes stopped, by pid).
Extra load-tool options for the consume pass go after --consume-opt, e.g.
--consume-opt=-X --consume-opt=max.partition.fetch.bytes=262144."""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def produce(b, runner, prefault, args, topic):
    common = ["--size", str(args.size), "--partitions", str(args.partitions)]
    prefault(args.count * args.size + 256 * run.MIB)
    cpu0 = b.cpu_s()
    r = runner.bench(["produce", "--bootstrap", b.bootstrap, "--topic", topic, "--acks", args.acks,
                      "--count", str(args.count), "--seconds", "20"] + common + args.produce_opt, 90)
    cpu1 = b.cpu_s()
    if not r.get("bytes"):
        raise RuntimeError("produce failed: %s" % r.get("error"))
    return r, (cpu1 - cpu0) / (r["bytes"] / run.GIB)


def consume(b, runner, prefault, args, topic, records):
    common = ["--size", str(args.size), "--partitions", str(args.partitions)]
    prefault(256 * run.MIB)
    cpu0 = b.cpu_s()
    c = runner.bench(["consume", "--bootstrap", b.bootstrap, "--topic", topic, "--count", str(records),
                      "--seconds", "20"] + common + args.consume_opt, 90)
    cpu1 = b.cpu_s()
    if not c.get("bytes"):
        raise RuntimeError("consume failed: %s" % c.get("error"))
    return c["mb_per_s"], (cpu1 - cpu0) / (c["bytes"] / run.GIB)


def produce_run(binary, workdir, runner, prefault, args):
    b = run.Broker(workdir, "ab", overrides=args.override)
    b.args[0] = binary
    b.start()
    try:
        r, cpu = produce(b, runner, prefault, args, "ab")
        return {"produce_mbps": r["mb_per_s"], "produce_cpu_gib": cpu}
    finally:
        b.stop()


def consume_run(binary, backlog, runner, prefault, args, records):
    """Reads the shared backlog: a broker on <backlog>'s data directory, kept afterwards."""
    b = backlog
    b.port = run.free_port()
    b.args = [binary] + [a if not a.startswith("listeners=") else "listeners=PLAINTEXT://127.0.0.1:%d" % b.port
                         for a in b.args[1:]]
    b.start()
    try:
        mbps, cpu = consume(b, runner, prefault, args, "backlog", records)
        return {"consume_mbps": mbps, "consume_cpu_gib": cpu}
    finally:
        b.stop(keep=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="broker binary A (the baseline)")
    ap.add_argument("--b", required=True, help="broker binary B")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--acks", default="1")
    ap.add_argument("--count", type=int, default=500000)
    ap.add_argument("--reps", type=int, default=3, help="runs of each binary")
    ap.add_argument("--override", action="append", default=[], help="broker --override KEY=VALUE (both)")
    ap.add_argument("--produce-opt", action="append", default=[])
    ap.add_argument("--consume-opt", action="append", default=[])
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="stratus-ab-")
    runner = run.Runner(os.path.join(workdir, "results.jsonl"))
    prefault = run.Prefault(workdir)
    results = {"A": [], "B": []}
    # One backlog for every consume run: how a producer batches depends on how fast the
    # broker acknowledges (the batch sizes of one load differ up to 8x from run to run),
    # and reading small batches is slower, so each binary must read the same bytes.
    backlog = run.Broker(workdir, "backlog", overrides=args.override)
    backlog.args[0] = args.a
    backlog.start()
    try:
        r, _cpu = produce(backlog, runner, prefault, args, "backlog")
    finally:
        backlog.stop(keep=True)
    records = r["records"]
    for rep in range(args.reps):
        for name in (("A", "B") if rep % 2 == 0 else ("B", "A")):
            binary = args.a if name == "A" else args.b
            res = produce_run(binary, workdir, runner, prefault, args)
            res.update(consume_run(binary, backlog, runner, prefault, args, records))
            results[name].append(res)
            print("%s rep %d: %s" % (name, rep + 1, "  ".join("%s=%.3g" % kv for kv in sorted(res.items()))),
                  flush=True)
    print("median of %d runs each; size=%d partitions=%d acks=%s count=%d" % (
        args.reps, args.size, args.partitions, args.acks, args.count))
    for key in ("produce_mbps", "produce_cpu_gib", "consume_mbps", "consume_cpu_gib"):
        a = run.median([r[key] for r in results["A"]])
        b = run.median([r[key] for r in results["B"]])
        print("  %-16s A %8.3g   B %8.3g   B/A %.2f" % (key, a, b, b / a if a else float("nan")))
    backlog.stop()  # removes its directory


if __name__ == "__main__":
    main()
