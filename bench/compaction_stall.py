#!/usr/bin/python3
"""How long a compaction pass holds up the broker's other clients: the longest round trip
of an ApiVersions ping (one connection, one request every 2 ms) while a partition is
cleaned. Binaries given with --binary are run in turn, --reps times, interleaved
(A, B, A, B, ...), so that the shared machine's noise falls on all of them.

    bench/compaction_stall.py --binary /tmp/old/stratus --binary build/release/stratus --mb 200

Per run: a fresh broker (127.0.0.1, free port, fresh data directory under /tmp) gets a
compacted topic of 16 MiB segments and --mb MiB of 1 KiB records over 50,000 keys
(python3-confluent-kafka), with log.cleaner.backoff.ms long enough that nothing is cleaned
yet; it is stopped and started again with log.cleaner.backoff.ms=2000, so the first pass
(every closed segment) runs while the ping does. Prints the ping's p50 and maximum and the
broker's `compacted` log line. Only the brokers started here are stopped, by pid."""
import argparse
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, port, data, backoff_ms, log):
    p = subprocess.Popen([binary, "broker", "--override", "listeners=PLAINTEXT://127.0.0.1:%d" % port,
                          "--override", "log.dirs=" + data, "--override", "log.cleaner.backoff.ms=%d" % backoff_ms],
                         stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError("broker did not start")


def stop(p):
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def ping_for(port, seconds):
    s = socket.create_connection(("127.0.0.1", port))
    body = struct.pack(">hhih", 18, 0, 1, 4) + b"ping"  # ApiVersions v0, client id "ping"
    frame = struct.pack(">i", len(body)) + body
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        s.sendall(frame)
        got = b""
        while len(got) < 4:
            got += s.recv(4 - len(got))
        need = struct.unpack(">i", got)[0]
        while need > 0:
            need -= len(s.recv(need))
        lat.append(time.monotonic() - t0)
        time.sleep(0.002)
    s.close()
    lat.sort()
    return lat[len(lat) // 2], lat[-1], len(lat)


def one_run(binary, mb):
    work = tempfile.mkdtemp(prefix="stratus-cstall-", dir="/tmp")
    data, port = os.path.join(work, "data"), free_port()
    log = open(os.path.join(work, "broker.log"), "w")
    b = None
    try:
        b = start(binary, port, data, 3600000, log)
        bs = "127.0.0.1:%d" % port
        admin = AdminClient({"bootstrap.servers": bs})  # kept: the futures need the handle
        admin.create_topics(
            [NewTopic("c", 1, 1, config={"cleanup.policy": "compact", "segment.bytes": str(16 << 20)})])["c"].result(10)
        p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "batch.size": 1000000})
        value = b"x" * 1000
        for i in range(mb * 1024):
            while True:
                try:
                    p.produce("c", key=b"key-%d" % (i % 50000), value=value)
                    break
                except BufferError:
                    p.poll(0.01)
            if i % 1000 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        stop(b)
        b = None
        b = start(binary, port, data, 2000, log)
        p50, worst, n = ping_for(port, 8)
        stop(b)
        b = None
        log.close()
        lines = [ln.strip() for ln in open(os.path.join(work, "broker.log")) if "compacted dir=" in ln]
        return p50, worst, n, lines
    finally:
        if b is not None:  # a failure on the way: the broker started here goes too
            stop(b)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", required=True, help="a stratus binary (repeat to compare)")
    ap.add_argument("--mb", type=int, default=200, help="MiB produced to the compacted partition")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    worst = {b: [] for b in args.binary}
    for rep in range(args.reps):
        for b in args.binary:
            p50, mx, n, lines = one_run(b, args.mb)
            worst[b].append(mx * 1e3)
            print("%s rep %d: %d pings, p50 %.2f ms, max %.1f ms; %s" % (
                b, rep + 1, n, p50 * 1e3, mx * 1e3, lines[0].split(" storage: ")[-1] if lines else "no pass"))
    for b in args.binary:
        print("%s: longest ping per run %s ms" % (b, ", ".join("%.1f" % w for w in worst[b])))


if __name__ == "__main__":
    main()
