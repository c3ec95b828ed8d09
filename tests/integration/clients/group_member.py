#!/usr/bin/env python3
"""A consumer-group member run as its own process, for tests/integration/test_groups.py.

    group_member.py --lib confluent|kafka-python --bootstrap HOST:PORT --group G --topic T
        [--topic T2 ...] --client-id ID [--instance-id I] [--assignor range|roundrobin|
        cooperative-sticky] [--session-timeout-ms 6000] [--heartbeat-ms 1000]
        [--commit sync|none] [--from earliest|latest]

Writes one JSON object per line on stdout (the contract shared with the kafkajs and sarama
members is in clients/README.md): ready, assigned, revoked, record, commit_failed, error,
closed. A record is printed only after it was processed and, with --commit sync, after a
synchronous commit of offset+1 succeeded; when a commit fails the batch's records are not
printed and the member seeks back to them (or their new owner reads them from the
committed offset). SIGTERM/SIGINT: close the consumer (leaving the group), print
"closed", exit 0. Unsupported options (static membership or cooperative-sticky in
kafka-python) print an error event and exit 2. Client logs go to stderr.

Debugging: GROUP_MEMBER_TRACE=1 logs every batch and seek of the confluent member to stderr;
GROUP_MEMBER_DEBUG=cgrp,fetch (confluent only) sets librdkafka's debug contexts.
"""
import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

_emit_lock = threading.Lock()
TRACE = bool(os.environ.get("GROUP_MEMBER_TRACE"))


def trace(*args):
    print(time.monotonic(), *args, file=sys.stderr, flush=True)


def emit(event, **fields):
    obj = {"event": event}
    obj.update(fields)
    line = json.dumps(obj)
    with _emit_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def text(b):
    if b is None:
        return None
    return b.decode("utf-8", errors="replace") if isinstance(b, (bytes, bytearray)) else str(b)


def tp_list(tps):
    return [[t, p] for t, p in sorted(tps)]


class Stopper:
    """Turns SIGTERM/SIGINT into a flag the poll loop checks between polls."""

    def __init__(self):
        self.stop = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stop = True


class Batch:
    """One poll's records, grouped so a commit can cover them: [(topic, partition,
    offset, key, value)] in arrival order."""

    def __init__(self):
        self.records = []

    def add(self, topic, partition, offset, key, value):
        self.records.append((topic, partition, offset, key, value))

    def next_offsets(self):
        """{(topic, partition): last offset + 1}."""
        out = {}
        for t, p, o, _, _ in self.records:
            out[(t, p)] = max(out.get((t, p), -1), o + 1)
        return out

    def first_offsets(self):
        out = {}
        for t, p, o, _, _ in self.records:
            if (t, p) not in out or o < out[(t, p)]:
                out[(t, p)] = o
        return out

    def drop(self, partitions):
        self.records = [r for r in self.records if (r[0], r[1]) not in partitions]

    def take(self):
        """Moves the records into a new Batch and returns it."""
        out = Batch()
        out.records, self.records = self.records, []
        return out

    def ranges(self):
        """{"topic/partition": [first offset, last offset]}, for traces."""
        out = {}
        for t, p, o, _, _ in self.records:
            lo, hi = out.get(f"{t}/{p}", (o, o))
            out[f"{t}/{p}"] = (min(lo, o), max(hi, o))
        return out

    def print_records(self, partitions=None):
        for t, p, o, k, v in self.records:
            if partitions is None or (t, p) in partitions:
                emit("record", topic=t, partition=p, offset=o, key=text(k), value=text(v))


# ---- librdkafka (confluent_kafka) ----------------------------------------------------

def run_confluent(a, stopper):
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    cooperative = a.assignor == "cooperative-sticky"
    owned = set()
    # Polled records not yet committed. Records are read one poll() at a time, not with
    # consume(n): librdkafka 2.0.2's batch consume can drop already-fetched records of
    # partitions it keeps when a rebalance callback runs inside the call (its release notes
    # list batch consume + rebalancing as a known issue), which skips them for good.
    pending = Batch()

    def on_error(err):
        emit("error", message=f"{err.name()}: {err.str()}", fatal=err.fatal())

    conf = {
        "bootstrap.servers": a.bootstrap,
        "group.id": a.group,
        "client.id": a.client_id,
        "partition.assignment.strategy": a.assignor,
        "session.timeout.ms": a.session_timeout_ms,
        "heartbeat.interval.ms": a.heartbeat_ms,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": a.from_,
        "enable.partition.eof": False,
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 500,
        "error_cb": on_error,
    }
    if a.instance_id:
        conf["group.instance.id"] = a.instance_id
    if os.environ.get("GROUP_MEMBER_DEBUG"):
        conf["debug"] = os.environ["GROUP_MEMBER_DEBUG"]
    c = Consumer(conf)

    def key_set(parts):
        return {(p.topic, p.partition) for p in parts}

    def on_assign(consumer, parts):
        nonlocal owned
        added = key_set(parts)
        # Calling (incremental_)assign here tells the binding the callback handled it.
        if cooperative:
            consumer.incremental_assign(parts)
            owned = owned | added
        else:
            consumer.assign(parts)
            owned = set(added)
        emit("assigned", partitions=tp_list(added), all=tp_list(owned))

    def revoke(consumer, parts, lost):
        nonlocal owned
        removed = key_set(parts)
        if cooperative:
            consumer.incremental_unassign(parts)
            owned = owned - removed
        else:
            consumer.unassign()
            owned = set()
        # Uncommitted records of these partitions are left to their next owner, which
        # reads them from the committed offset.
        pending.drop(removed)
        fields = {"lost": True} if lost else {}
        emit("revoked", partitions=tp_list(removed), all=tp_list(owned), **fields)

    c.subscribe(a.topic, on_assign=on_assign,
                on_revoke=lambda consumer, parts: revoke(consumer, parts, False),
                on_lost=lambda consumer, parts: revoke(consumer, parts, True))
    emit("ready")

    while not stopper.stop:
        # Collect up to 500 records or 100 ms worth, then commit them in one go.
        deadline = time.monotonic() + 0.1
        while len(pending.records) < 500 and not stopper.stop:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            m = c.poll(left)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    emit("error", message=f"{m.error().name()}: {m.error().str()}")
                continue
            if (m.topic(), m.partition()) in owned:
                pending.add(m.topic(), m.partition(), m.offset(), m.key(), m.value())
        if not pending.records:
            continue
        batch = pending.take()
        if TRACE:
            trace("batch", batch.ranges(), "owned", sorted(owned))
        if a.commit == "none":
            batch.print_records()
            continue
        nxt = batch.next_offsets()
        failed = {}
        try:
            res = c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in nxt.items()],
                           asynchronous=False)
            for tp in res or []:
                if tp.error is not None:
                    failed[(tp.topic, tp.partition)] = str(tp.error)
        except KafkaException as e:
            failed = {k: str(e.args[0]) for k in nxt}
        ok = set(nxt) - set(failed)
        batch.print_records(ok)
        if failed:
            emit("commit_failed", error="; ".join(sorted(set(failed.values()))),
                 partitions=tp_list(failed))
            # Read them again (a partition revoked meanwhile is read by its new owner).
            first = batch.first_offsets()
            for (t, p) in failed:
                if (t, p) in owned:
                    try:
                        c.seek(TopicPartition(t, p, first[(t, p)]))
                        if TRACE:
                            trace(f"seek {t}/{p} to {first[(t, p)]}")
                    except KafkaException as e:
                        print(f"seek {t}/{p} to {first[(t, p)]} failed: {e}", file=sys.stderr)

    c.close()
    emit("closed")
    return 0


# ---- kafka-python ----------------------------------------------------------------------

def run_kafka_python(a, stopper):
    if a.instance_id:
        emit("error", message="kafka-python has no static membership (group.instance.id)")
        return 2
    if a.assignor == "cooperative-sticky":
        emit("error", message="kafka-python has no cooperative-sticky assignor")
        return 2
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.errors import KafkaError

    assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[a.assignor]
    c = KafkaConsumer(
        bootstrap_servers=a.bootstrap,
        group_id=a.group,
        client_id=a.client_id,
        partition_assignment_strategy=[assignor],
        session_timeout_ms=a.session_timeout_ms,
        heartbeat_interval_ms=a.heartbeat_ms,
        enable_auto_commit=False,
        auto_offset_reset=a.from_,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=500,
        max_poll_records=500,
    )
    owned = set()

    class Listener(ConsumerRebalanceListener):
        # kafka-python 2.0.2 is eager only: a revoke always takes the whole assignment.
        def on_partitions_revoked(self, revoked):
            nonlocal owned
            removed = {(tp.topic, tp.partition) for tp in revoked}
            owned = owned - removed
            emit("revoked", partitions=tp_list(removed), all=tp_list(owned))

        def on_partitions_assigned(self, assigned):
            nonlocal owned
            added = {(tp.topic, tp.partition) for tp in assigned}
            owned = set(added)
            emit("assigned", partitions=tp_list(added), all=tp_list(owned))

    c.subscribe(topics=a.topic, listener=Listener())
    emit("ready")

    while not stopper.stop:
        try:
            polled = c.poll(timeout_ms=200, max_records=500)
        except KafkaError as e:
            emit("error", message=f"{type(e).__name__}: {e}")
            continue
        batch = Batch()
        for tp, recs in sorted(polled.items()):
            if (tp.topic, tp.partition) not in owned:
                continue
            for r in recs:
                batch.add(r.topic, r.partition, r.offset, r.key, r.value)
        if not batch.records:
            continue
        if a.commit == "none":
            batch.print_records()
            continue
        nxt = batch.next_offsets()
        try:
            # Synchronous; kafka-python retries retriable errors (coordinator moves or
            # restarts) until it succeeds and raises the others (CommitFailedError).
            c.commit({TopicPartition(t, p): OffsetAndMetadata(o, None) for (t, p), o in nxt.items()})
        except Exception as e:  # noqa: BLE001 - every failure means "not committed"
            emit("commit_failed", error=f"{type(e).__name__}: {e}", partitions=tp_list(nxt))
            for (t, p), o in batch.first_offsets().items():
                if (t, p) in owned:
                    try:
                        c.seek(TopicPartition(t, p), o)
                    except Exception as se:  # noqa: BLE001
                        print(f"seek {t}/{p} to {o} failed: {se}", file=sys.stderr)
            continue
        batch.print_records()

    c.close(autocommit=False)
    emit("closed")
    return 0


def main():
    ap = argparse.ArgumentParser(description="consumer-group member for integration tests")
    ap.add_argument("--lib", choices=["confluent", "kafka-python"], required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", action="append", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--instance-id")
    ap.add_argument("--assignor", choices=["range", "roundrobin", "cooperative-sticky"], default="range")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--heartbeat-ms", type=int, default=1000)
    ap.add_argument("--commit", choices=["sync", "none"], default="sync")
    ap.add_argument("--from", dest="from_", choices=["earliest", "latest"], default="earliest")
    a = ap.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stopper = Stopper()
    run = run_confluent if a.lib == "confluent" else run_kafka_python
    try:
        return run(a, stopper)
    except Exception as e:  # noqa: BLE001 - report, then fail
        emit("error", message=f"{type(e).__name__}: {e}", fatal=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
