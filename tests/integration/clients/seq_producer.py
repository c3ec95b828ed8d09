#!/usr/bin/env python3
"""A librdkafka (confluent_kafka) producer run as its own process, so a test can restart
or kill -9 the broker under it.

Record i goes to partition i % PARTITIONS with value b"<partition>:<seq>:<padding>",
seq = i // PARTITIONS: per partition, sequence numbers run 0, 1, 2... in produce order.
Each delivery report is appended to OUT as it arrives:
    ok <partition> <offset> <seq>
    fail <partition> <seq> <error>
then, after the final flush, one line:
    done delivered=<n> failed=<n> undelivered=<n>
Fatal client errors (error_cb) are logged as "error <text>". Exits 0 when every record
was delivered, 1 otherwise. Rate-limited so that a test can act mid-stream.
"""
import argparse
import sys
import time

from confluent_kafka import KafkaError, Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--rate", type=int, default=5000, help="records per second")
    ap.add_argument("--pad", type=int, default=64, help="bytes of padding per value")
    ap.add_argument("--idempotence", default="true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=90.0, help="message.timeout.ms, in seconds")
    a = ap.parse_args()

    out = open(a.out, "w", buffering=1)
    counts = {"ok": 0, "fail": 0}

    def on_delivery(err, msg):
        p = msg.partition()
        seq = int(msg.value().split(b":", 2)[1])
        if err is None:
            counts["ok"] += 1
            out.write(f"ok {p} {msg.offset()} {seq}\n")
        else:
            counts["fail"] += 1
            out.write(f"fail {p} {seq} {err.name()}\n")

    def on_error(err):
        # Transport errors while the broker restarts are expected; fatal ones are not.
        if err.fatal() or err.code() not in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                                               KafkaError._RESOLVE, KafkaError._TIMED_OUT):
            out.write(f"error {err.name()} fatal={err.fatal()} {err.str()}\n")

    p = Producer({
        "bootstrap.servers": a.bootstrap,
        "acks": "all",
        "enable.idempotence": a.idempotence,
        "linger.ms": 5,
        "message.timeout.ms": int(a.timeout * 1000),
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 250,
        "retry.backoff.ms": 50,
        "error_cb": on_error,
    })
    pad = b"x" * a.pad
    start = time.monotonic()
    for i in range(a.count):
        # Stay on schedule: at most <rate> records per second since start.
        ahead = i / a.rate - (time.monotonic() - start)
        if ahead > 0:
            p.poll(ahead)
        part = i % a.partitions
        value = f"{part}:{i // a.partitions}:".encode() + pad
        while True:
            try:
                p.produce(a.topic, value=value, partition=part, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 100 == 0:
            p.poll(0)
    undelivered = p.flush(a.timeout + 10)
    out.write(f"done delivered={counts['ok']} failed={counts['fail']} undelivered={undelivered}\n")
    out.close()
    return 0 if counts["fail"] == 0 and undelivered == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
