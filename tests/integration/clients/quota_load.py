#!/usr/bin/python3
"""Produce load for quota tests, as a process of its own (so that one tenant's client
cannot slow another's through the Python interpreter). Prints one JSON line when done.

  quota_load.py rdkafka BOOTSTRAP KEY SECRET TOPIC RATE_BYTES_S SECONDS VALUE_BYTES
      librdkafka producer (honours throttle_time_ms) offering RATE_BYTES_S; reports the
      bytes acknowledged, the time span of the acknowledgements, and produce latency
      percentiles (produce() to delivery report, linger.ms=0, acks=all) of the records
      sent after the first second (connection setup left out).
  quota_load.py raw BOOTSTRAP KEY SECRET TOPIC SECONDS REQUEST_BYTES
      a client that ignores throttle hints: SASL PLAIN, then Produce v7 requests as fast
      as the socket takes them, up to 64 in flight; reports the request bytes
      acknowledged and their time span.
"""
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402


def frame(api_key, version, corr, body):
    hdr = struct.pack(">hhi", api_key, version, corr) + struct.pack(">h", 2) + b"ql"
    return struct.pack(">i", len(hdr) + len(body)) + hdr + body


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def recv_frame(sock):
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_rdkafka(bootstrap, key, secret, topic, rate, seconds, value_bytes):
    from confluent_kafka import Producer
    acked = [0, None, None]  # bytes, first, last
    latencies = []
    errors = []

    def on_delivery(err, msg, sent_at):
        now = time.monotonic()
        if err is not None:
            errors.append(str(err))
            return
        acked[0] += len(msg.value())
        acked[1] = acked[1] or now
        acked[2] = now
        if sent_at - start >= 1.0:  # past connection setup
            latencies.append(now - sent_at)

    start = time.monotonic()
    p = Producer({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanisms": "PLAIN", "sasl.username": key, "sasl.password": secret,
                  "linger.ms": 0, "acks": "all", "queue.buffering.max.messages": 2000,
                  "message.timeout.ms": 120000})
    value = b"v" * value_bytes
    sent = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = int((now - start) * rate / value_bytes)
        while sent < due:
            t = time.monotonic()
            try:
                p.produce(topic, value, on_delivery=lambda err, msg, t=t: on_delivery(err, msg, t))
            except BufferError:
                p.poll(0.01)  # the local queue is full: the broker holds us back
                break
            sent += 1
        p.poll(0.001)
    end = time.monotonic()
    # Only what was acknowledged within the run counts toward the rate.
    in_run = acked[0]
    span_end = acked[2]
    p.flush(60)
    print(json.dumps({"acked_bytes_in_run": in_run, "first_ack": (acked[1] or end) - start,
                      "last_ack_in_run": (span_end or end) - start, "seconds": end - start,
                      "p50_ms": (percentile(latencies, 0.5) or 0) * 1000,
                      "p99_ms": (percentile(latencies, 0.99) or 0) * 1000,
                      "samples": len(latencies), "errors": errors[:5]}))


def run_raw(bootstrap, key, secret, topic, seconds, request_bytes):
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=60)
    hs, auth = wire.sasl_plain_handshake_bodies(key, secret)
    s.sendall(frame(17, 1, 1, hs))
    assert struct.unpack(">h", recv_frame(s)[4:6])[0] == 0
    s.sendall(frame(36, 0, 2, auth))
    assert struct.unpack(">h", recv_frame(s)[4:6])[0] == 0
    n_records = max(1, request_bytes // 1024)
    batch = wire.record_batch([b"r" * 1000] * n_records)
    body = wire.produce_body(topic, 0, batch, acks=1, version=7)
    sizes = {}
    acked = [0, None, None, 0]  # bytes, first, last, max throttle_time_ms seen
    inflight = threading.Semaphore(64)
    start = time.monotonic()
    stop = [False]

    def reader():
        try:
            while True:
                resp = recv_frame(s)
                (corr,) = struct.unpack_from(">i", resp, 0)
                parts = wire.parse_produce_response(resp, 7)
                now = time.monotonic()
                if all(err == 0 for _t, _p, err, _o in parts) and now - start <= seconds:
                    acked[0] += sizes[corr]
                    acked[1] = acked[1] or now
                    acked[2] = now
                (throttle,) = struct.unpack_from(">i", resp, len(resp) - 4)
                acked[3] = max(acked[3], throttle)
                del sizes[corr]
                inflight.release()
        except (ConnectionError, OSError):
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    corr = 10
    while time.monotonic() - start < seconds:
        if not inflight.acquire(timeout=0.5):
            continue
        corr += 1
        f = frame(0, 7, corr, body)
        sizes[corr] = len(f) - 4
        s.settimeout(max(0.1, seconds - (time.monotonic() - start)))
        try:
            s.sendall(f)  # blocks while the broker does not read us (muted)
        except socket.timeout:
            del sizes[corr]  # sent in part: never answered
            break
    # Answers to what was sent whole arrive after the throttles; then stop reading.
    deadline = time.monotonic() + 60
    while sizes and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    s.shutdown(socket.SHUT_RDWR)
    t.join(10)
    s.close()
    print(json.dumps({"acked_bytes_in_run": acked[0], "first_ack": (acked[1] or start) - start,
                      "last_ack_in_run": (acked[2] or start) - start, "seconds": seconds,
                      "max_throttle_ms": acked[3]}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "rdkafka":
        run_rdkafka(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]), float(sys.argv[7]),
                    int(sys.argv[8]))
    elif mode == "raw":
        run_raw(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]), int(sys.argv[7]))
    else:
        sys.exit("usage: see the docstring")
