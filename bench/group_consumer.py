#!/usr/bin/python3
"""One librdkafka group consumer (python3-confluent-kafka) for bench/group_run.py.

Subscribes to --topic in --group and prints one JSON line per event to stdout, stamped
with time.monotonic() (CLOCK_MONOTONIC, the same clock as the runner's):
  {"event": "start", "t": ...}
  {"event": "assign", "t": ..., "partitions": [...]}
  {"event": "revoke", "t": ..., "partitions": [...]}
  {"event": "error", "t": ..., "error": "..."}
It exits on SIGTERM, or after --max-seconds whatever happens.

Usage: bench/group_consumer.py --bootstrap HOST:PORT --topic T --group G
           [--session-timeout-ms N] [--heartbeat-ms N] [--max-seconds S] [-X key=value ...]
"""
import argparse
import json
import signal
import sys
import time

from confluent_kafka import Consumer


def emit(event, **fields):
    fields["event"] = event
    fields["t"] = time.monotonic()
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--session-timeout-ms", type=int, default=10000)
    ap.add_argument("--heartbeat-ms", type=int, default=3000)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("-X", action="append", default=[], metavar="KEY=VALUE", help="any librdkafka property")
    opts = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conf = {
        "bootstrap.servers": opts.bootstrap,
        "group.id": opts.group,
        "session.timeout.ms": opts.session_timeout_ms,
        "heartbeat.interval.ms": opts.heartbeat_ms,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "socket.nagle.disable": True,
        "error_cb": lambda err: emit("error", error=str(err)),
    }
    for kv in opts.X:
        key, _, value = kv.partition("=")
        conf[key] = value
    consumer = Consumer(conf)

    def on_assign(c, parts):
        emit("assign", partitions=sorted(p.partition for p in parts))

    def on_revoke(c, parts):
        emit("revoke", partitions=sorted(p.partition for p in parts))

    consumer.subscribe([opts.topic], on_assign=on_assign, on_revoke=on_revoke)
    emit("start")
    deadline = time.monotonic() + opts.max_seconds
    while not stop and time.monotonic() < deadline:
        msg = consumer.poll(0.05)
        if msg is not None and msg.error():
            emit("error", error=str(msg.error()))
    # Leaving on SIGTERM is not measured; close() sends LeaveGroup.
    consumer.close()


if __name__ == "__main__":
    main()
