#!/usr/bin/python3
"""A/B comparison of two broker binaries on one load, interleaved on the same machine in
one run (A, B, B, A, A, B, ...), so that noise from the shared cores falls on both.

    bench/ab.py --a /tmp/old/stratus --b build/release/stratus --size 1024 --partitions 16

Each repetition starts a fresh broker, produces --count records (acks=1) and then reads
them back in one pass; it prints produce and consume MB/s and broker CPU-s per GiB for
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


def one(binary, workdir, runner, prefault, args):
    b = run.Broker(workdir, "ab", overrides=args.override)
    b.args[0] = binary
    b.start()
    try:
        out = {}
        common = ["--size", str(args.size), "--partitions", str(args.partitions)]
        prefault(args.count * args.size + 256 * run.MIB)
        cpu0 = b.cpu_s()
        r = runner.bench(["produce", "--bootstrap", b.bootstrap, "--topic", "ab", "--acks", args.acks,
                          "--count", str(args.count), "--seconds", "20"] + common + args.produce_opt, 90)
        cpu1 = b.cpu_s()
        if not r.get("bytes"):
            raise RuntimeError("produce failed: %s" % r.get("error"))
        out["produce_mbps"] = r["mb_per_s"]
        out["produce_cpu_gib"] = (cpu1 - cpu0) / (r["bytes"] / run.GIB)
        time.sleep(0.2)
        prefault(256 * run.MIB)
        cpu0 = b.cpu_s()
        c = runner.bench(["consume", "--bootstrap", b.bootstrap, "--topic", "ab", "--count", str(r["records"]),
                          "--seconds", "20"] + common + args.consume_opt, 90)
        cpu1 = b.cpu_s()
        if not c.get("bytes"):
            raise RuntimeError("consume failed: %s" % c.get("error"))
        out["consume_mbps"] = c["mb_per_s"]
        out["consume_cpu_gib"] = (cpu1 - cpu0) / (c["bytes"] / run.GIB)
        return out
    finally:
        b.stop()


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
    for rep in range(args.reps):
        for name in (("A", "B") if rep % 2 == 0 else ("B", "A")):
            res = one(args.a if name == "A" else args.b, workdir, runner, prefault, args)
            results[name].append(res)
            print("%s rep %d: %s" % (name, rep + 1, "  ".join("%s=%.3g" % kv for kv in sorted(res.items()))),
                  flush=True)
    print("median of %d runs each; size=%d partitions=%d acks=%s count=%d" % (
        args.reps, args.size, args.partitions, args.acks, args.count))
    for key in ("produce_mbps", "produce_cpu_gib", "consume_mbps", "consume_cpu_gib"):
        a = run.median([r[key] for r in results["A"]])
        b = run.median([r[key] for r in results["B"]])
        print("  %-16s A %8.3g   B %8.3g   B/A %.2f" % (key, a, b, b / a if a else float("nan")))
    os.rmdir(workdir) if not os.listdir(workdir) else None


if __name__ == "__main__":
    main()
