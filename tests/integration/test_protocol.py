"""Raw-socket Kafka protocol behaviour: framing, versions, ordering, long polls.

Small encoders/decoders for the few messages used live here; the field layouts follow
/work/shared/kafka-protocol/spec/*.json. Client-visible behaviour that librdkafka
exercises (offsets_for_times, broker DescribeConfigs) is checked with confluent_kafka.
"""
import os
import socket
import struct
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, NewTopic

from conftest import frame, recv_frame

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "clients"))
from wire import crc32c  # noqa: E402
import wire  # noqa: E402

# API keys
PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS, CREATE_TOPICS = 0, 1, 2, 3, 18, 19

# The ranges of tools/kafka_apis.txt.
SERVED = {0: (0, 9), 1: (4, 12), 2: (1, 7), 3: (0, 12), 8: (1, 8), 9: (1, 8), 10: (0, 4), 11: (0, 9),
          12: (0, 4), 13: (0, 5), 14: (0, 5), 15: (0, 5), 16: (0, 4), 17: (0, 1), 18: (0, 4), 19: (0, 7), 20: (0, 6),
          21: (0, 2), 22: (0, 4), 32: (0, 4), 36: (0, 2), 37: (0, 3), 42: (0, 2), 47: (0, 0), 60: (0, 1)}

IO_TIMEOUT = 10.0


# ---- encoding ---------------------------------------------------------------------------

def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def uvarint(v):
    out = b""
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def compact_string(s):
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def record_batch(values, base_ts=None):
    """A magic-2 record batch of uncompressed records (key None, no headers)."""
    base_ts = int(time.time() * 1000) if base_ts is None else base_ts
    return wire.record_batch(values, base_timestamp=base_ts)


def produce_v3(topic, partition, batch, acks=-1, timeout_ms=5000):
    return (string(None) + i16(acks) + i32(timeout_ms)
            + array([topic], lambda t: string(t) + array([partition], lambda p: i32(p) + i32(len(batch)) + batch)))


def fetch_v4(topic, partition, offset, max_wait_ms, min_bytes=1, max_bytes=1 << 20):
    return (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
            + array([topic], lambda t: string(t) + array([partition],
                                                         lambda p: i32(p) + i64(offset) + i32(max_bytes))))


def create_topics_v4(topics, validate_only=False):
    """topics: list of (name, partitions, replication, {config: value})."""
    def topic(t):
        name, parts, rf, cfg = t
        return (string(name) + i32(parts) + i16(rf) + array([], None)
                + array(list(cfg.items()), lambda kv: string(kv[0]) + string(kv[1])))
    return array(topics, topic) + i32(10000) + i8(1 if validate_only else 0)


def create_topics_v5(topics):
    def topic(t):
        name, parts, rf = t
        return compact_string(name) + i32(parts) + i16(rf) + uvarint(1) + uvarint(1) + b"\x00"
    return uvarint(len(topics) + 1) + b"".join(topic(t) for t in topics) + i32(10000) + i8(0) + b"\x00"


# ---- decoding ---------------------------------------------------------------------------

class Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        assert self.pos + n <= len(self.buf), f"truncated: need {n} at {self.pos} of {len(self.buf)}"
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes_(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def array(self, dec):
        n = self.i32()
        return None if n < 0 else [dec(self) for _ in range(n)]

    def uvarint(self):
        shift = v = 0
        while True:
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def compact_array(self, dec):
        n = self.uvarint()
        return None if n == 0 else [dec(self) for _ in range(n - 1)]

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def done(self):
        return self.pos == len(self.buf)


def split_header(resp, flexible=False):
    r = Reader(resp)
    corr = r.i32()
    if flexible:
        r.tags()
    return corr, r


def parse_api_versions(r, version):
    error = r.i16()
    if version >= 3:
        keys = r.compact_array(lambda x: (x.i16(), x.i16(), x.i16(), x.tags())[:3])
    else:
        keys = r.array(lambda x: (x.i16(), x.i16(), x.i16()))
    throttle = r.i32() if version >= 1 else None
    if version >= 3:
        r.tags()
    assert r.done(), "whole ApiVersions body consumed"
    return error, {k: (lo, hi) for k, lo, hi in keys}, throttle


def parse_metadata(r, version):
    brokers = r.array(lambda x: (x.i32(), x.string(), x.i32(), x.string() if version >= 1 else None))
    controller = r.i32() if version >= 1 else None

    def partition(x):
        return dict(error=x.i16(), index=x.i32(), leader=x.i32(), replicas=x.array(lambda y: y.i32()),
                    isr=x.array(lambda y: y.i32()))

    def topic(x):
        t = dict(error=x.i16(), name=x.string())
        if version >= 1:
            t["internal"] = x.i8()
        t["partitions"] = x.array(partition)
        return t
    topics = r.array(topic)
    assert r.done(), "whole Metadata body consumed"
    return brokers, controller, topics


def parse_produce_v3(r):
    topics = r.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64()))))
    r.i32()
    return {(t, p): (err, off) for t, parts in topics for p, err, off, _ in parts}


def parse_fetch_v4(r):
    r.i32()  # throttle

    def part(x):
        return dict(index=x.i32(), error=x.i16(), hw=x.i64(), lso=x.i64(),
                    aborted=x.array(lambda y: (y.i64(), y.i64())), records=x.bytes_())
    topics = r.array(lambda x: (x.string(), x.array(part)))
    return {(t, p["index"]): p for t, parts in topics for p in parts}


def varint_at(r):
    v = r.uvarint()
    return (v >> 1) ^ -(v & 1)


def decode_batches(records):
    """(offset, value) of every record in uncompressed magic-2 batches; a trailing
    partial batch is ignored, as clients do."""
    out = []
    r = Reader(records or b"")
    while len(r.buf) - r.pos >= 12:
        base, length = r.i64(), r.i32()
        if len(r.buf) - r.pos < length:
            break
        b = Reader(r.take(length))
        b.i32()
        assert b.i8() == 2, "magic 2"
        crc = struct.unpack(">I", b.take(4))[0]
        assert crc == crc32c(b.buf[b.pos:]), "batch CRC32C"
        assert b.i16() & 0x7 == 0, "uncompressed"
        b.take(4 + 8 + 8 + 8 + 2 + 4)
        for _ in range(b.i32()):
            rec = Reader(b.take(varint_at(b)))
            rec.i8()
            varint_at(rec)
            delta = varint_at(rec)
            klen = varint_at(rec)
            rec.take(max(klen, 0))
            vlen = varint_at(rec)
            out.append((base + delta, rec.take(vlen) if vlen >= 0 else None))
    return out


def parse_create_topics_v4(r):
    r.i32()
    return {name: (err, msg) for name, err, msg in r.array(lambda x: (x.string(), x.i16(), x.string()))}


def parse_create_topics_v5(r):
    r.i32()

    def topic(x):
        t = dict(name=x.compact_string(), error=x.i16(), message=x.compact_string(), partitions=x.i32(),
                 replication=x.i16())
        t["configs"] = x.compact_array(lambda y: (y.compact_string(), y.compact_string(), y.i8(), y.i8(), y.i8(),
                                                  y.tags())[:2])
        x.tags()
        return t
    topics = r.compact_array(topic)
    r.tags()
    assert r.done()
    return {t["name"]: t for t in topics}


# ---- connection helpers -----------------------------------------------------------------

def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def call(sock, api, version, corr, body, flexible=False):
    sock.sendall(frame(api, version, corr, body, flexible=flexible))
    got, r = split_header(recv_frame(sock), flexible=flexible and api != API_VERSIONS)
    assert got == corr, f"correlation id {got}, expected {corr}"
    return r


def create_topic(sock, name, partitions=1):
    res = parse_create_topics_v4(call(sock, CREATE_TOPICS, 4, 900, create_topics_v4([(name, partitions, 1, {})])))
    assert res[name][0] == 0, res


def produce(sock, topic, partition, values, corr=901, base_ts=None):
    res = parse_produce_v3(call(sock, PRODUCE, 3, corr, produce_v3(topic, partition, record_batch(values, base_ts))))
    err, off = res[(topic, partition)]
    assert err == 0, f"produce error {err}"
    return off


def latest_offset(sock, topic, partition):
    body = i32(-1) + array([topic], lambda t: string(t) + array([partition], lambda p: i32(p) + i64(-1)))
    r = call(sock, LIST_OFFSETS, 1, 902, body)
    topics = r.array(lambda x: (x.string(), x.array(lambda y: (y.i32(), y.i16(), y.i64(), y.i64()))))
    (_, [(_, err, _, offset)]), = topics
    assert err == 0
    return offset


def assert_closed(sock, timeout=5.0):
    sock.settimeout(timeout)
    try:
        data = sock.recv(1)
    except ConnectionResetError:
        return
    assert data == b"", "connection should be closed by the broker"


# ---- ApiVersions --------------------------------------------------------------------------

def test_api_versions_v0_lists_served_ranges(broker):
    with connect(broker) as s:
        error, keys, throttle = parse_api_versions(call(s, API_VERSIONS, 0, 7, b""), 0)
    assert error == 0
    assert throttle is None
    assert keys == SERVED


def test_api_versions_v3_flexible_body_with_header_v0(broker):
    body = compact_string("stratus-it") + compact_string("1.0") + b"\x00"
    with connect(broker) as s:
        s.sendall(frame(API_VERSIONS, 3, 8, body, flexible=True))
        resp = recv_frame(s)
    # Response header v0: the correlation id is directly followed by the error code, no tag byte.
    corr, r = split_header(resp, flexible=False)
    assert corr == 8
    error, keys, throttle = parse_api_versions(r, 3)
    assert error == 0 and throttle == 0
    assert keys == SERVED


def test_api_versions_too_new_gets_unsupported_version_with_v0_body(broker):
    body = compact_string("future-client") + compact_string("9.9") + b"\x00"
    with connect(broker) as s:
        s.sendall(frame(API_VERSIONS, 99, 9, body, flexible=True))
        corr, r = split_header(recv_frame(s))
        assert corr == 9
        error, keys, throttle = parse_api_versions(r, 0)
        assert error == 35, "UNSUPPORTED_VERSION"
        assert keys[API_VERSIONS] == (0, 4)
        # The client then retries at our maximum on the same connection.
        error, keys, _ = parse_api_versions(call(s, API_VERSIONS, 3, 10, body, flexible=True), 3)
        assert error == 0 and keys == SERVED


# ---- Metadata -----------------------------------------------------------------------------

def test_metadata_v0_empty_list_is_all_topics_v1_empty_is_none(broker):
    with connect(broker) as s:
        create_topic(s, "md-a", 2)
        create_topic(s, "md-b", 1)
        brokers, _, topics = parse_metadata(call(s, METADATA, 0, 1, array([], string)), 0)
        assert brokers == [(0, "127.0.0.1", broker.port, None)]
        by_name = {t["name"]: t for t in topics}
        assert set(by_name) == {"md-a", "md-b"}
        assert sorted(p["index"] for p in by_name["md-a"]["partitions"]) == [0, 1]
        assert all(p["leader"] == 0 and p["replicas"] == [0] and p["isr"] == [0]
                   for t in topics for p in t["partitions"])

        brokers, controller, topics = parse_metadata(call(s, METADATA, 1, 2, array([], string)), 1)
        assert topics == [], "v1 empty list asks for no topics"
        assert controller == 0 and brokers[0][:3] == (0, "127.0.0.1", broker.port)

        _, _, topics = parse_metadata(call(s, METADATA, 1, 3, array(None, string)), 1)
        assert {t["name"] for t in topics} == {"md-a", "md-b"}, "v1 null list is all topics"


# ---- framing and ordering ---------------------------------------------------------------

def test_produce_acks0_has_no_response_but_connection_continues(broker):
    with connect(broker) as s:
        create_topic(s, "acks0")
        s.sendall(frame(PRODUCE, 3, 50, produce_v3("acks0", 0, record_batch([b"fire-and-forget"]), acks=0)))
        s.sendall(frame(API_VERSIONS, 0, 51, b""))
        corr, r = split_header(recv_frame(s))
        assert corr == 51, "the first answer is the ApiVersions one: acks=0 produce is not answered"
        assert parse_api_versions(r, 0)[0] == 0
        # The acks=0 record was still written.
        assert latest_offset(s, "acks0", 0) == 1


def test_pipelined_requests_answered_in_order(broker):
    with connect(broker) as s:
        create_topic(s, "pipe")
        batch = record_batch([b"x"])
        reqs = [
            frame(API_VERSIONS, 0, 100, b""),
            frame(METADATA, 1, 101, array(None, string)),
            frame(PRODUCE, 3, 102, produce_v3("pipe", 0, batch)),
            frame(FETCH, 4, 103, fetch_v4("pipe", 0, 0, max_wait_ms=0, min_bytes=0)),
            frame(API_VERSIONS, 3, 104, compact_string("x") + compact_string("1") + b"\x00", flexible=True),
            frame(PRODUCE, 3, 105, produce_v3("pipe", 0, batch)),
            frame(METADATA, 0, 106, array([], string)),
        ]
        s.sendall(b"".join(reqs))
        corrs = []
        for _ in reqs:
            corr, r = split_header(recv_frame(s))
            corrs.append(corr)
            if corr == 102:
                assert parse_produce_v3(r)[("pipe", 0)] == (0, 0)
            if corr == 103:
                assert decode_batches(parse_fetch_v4(r)[("pipe", 0)]["records"]) == [(0, b"x")]
            if corr == 105:
                assert parse_produce_v3(r)[("pipe", 0)] == (0, 1)
        assert corrs == list(range(100, 107))


def test_request_pipelined_behind_long_poll_waits_its_turn(broker):
    with connect(broker) as s:
        create_topic(s, "pipe-lp")
        t0 = time.monotonic()
        s.sendall(frame(FETCH, 4, 200, fetch_v4("pipe-lp", 0, 0, max_wait_ms=400))
                  + frame(API_VERSIONS, 0, 201, b"") + frame(METADATA, 1, 202, array(["pipe-lp"], string)))
        corrs = [split_header(recv_frame(s))[0] for _ in range(3)]
        elapsed = time.monotonic() - t0
    assert corrs == [200, 201, 202]
    assert 0.35 <= elapsed < 3.0, f"{elapsed:.3f}s"


def test_unknown_api_key_closes_only_that_connection(broker):
    with connect(broker) as bad, connect(broker) as good:
        assert parse_api_versions(call(good, API_VERSIONS, 0, 1, b""), 0)[0] == 0
        bad.sendall(frame(1000, 0, 5, b"\x00\x00\x00\x00"))
        assert_closed(bad)
        assert parse_api_versions(call(good, API_VERSIONS, 0, 2, b""), 0)[0] == 0
    # And new connections are still accepted.
    with connect(broker) as s:
        assert parse_api_versions(call(s, API_VERSIONS, 0, 3, b""), 0)[0] == 0
    assert broker.alive()


# ---- Fetch long poll --------------------------------------------------------------------

def test_fetch_long_poll_waits_max_wait_on_empty_partition(broker):
    with connect(broker) as s:
        create_topic(s, "lp-empty")
        t0 = time.monotonic()
        parts = parse_fetch_v4(call(s, FETCH, 4, 20, fetch_v4("lp-empty", 0, 0, max_wait_ms=500)))
        elapsed = time.monotonic() - t0
    p = parts[("lp-empty", 0)]
    assert p["error"] == 0 and p["hw"] == 0
    assert not p["records"]
    assert 0.45 <= elapsed < 3.0, f"empty fetch answered after {elapsed:.3f}s, expected ~0.5s"


def test_fetch_long_poll_wakes_when_data_arrives(broker):
    with connect(broker) as s, connect(broker) as producer:
        create_topic(s, "lp-wake")
        s.sendall(frame(FETCH, 4, 21, fetch_v4("lp-wake", 0, 0, max_wait_ms=5000)))
        # Nothing observable tells us the fetch is parked; give the broker a moment to
        # read it, and check that it has indeed not answered yet.
        s.settimeout(0.3)
        with pytest.raises(socket.timeout):
            s.recv(1, socket.MSG_PEEK)
        s.settimeout(IO_TIMEOUT)
        t0 = time.monotonic()
        assert produce(producer, "lp-wake", 0, [b"wake-up"]) == 0
        corr, r = split_header(recv_frame(s))
        waited = time.monotonic() - t0
    assert corr == 21
    p = parse_fetch_v4(r)[("lp-wake", 0)]
    assert p["error"] == 0 and p["hw"] == 1
    assert decode_batches(p["records"]) == [(0, b"wake-up")]
    assert waited < 1.5, f"fetch answered {waited:.3f}s after the produce, expected promptly"


# ---- CreateTopics -----------------------------------------------------------------------

def test_create_topics_minus_one_uses_broker_defaults(broker_factory):
    b = broker_factory({"num.partitions": "3"})
    with connect(b) as s:
        res = parse_create_topics_v5(call(s, CREATE_TOPICS, 5, 30, create_topics_v5([("defaults", -1, -1)]),
                                          flexible=True))
        t = res["defaults"]
        assert t["error"] == 0, t
        assert (t["partitions"], t["replication"]) == (3, 1)
        assert dict(t["configs"]).get("retention.ms") == "604800000"
        _, _, topics = parse_metadata(call(s, METADATA, 1, 31, array(["defaults"], string)), 1)
        assert len(topics[0]["partitions"]) == 3


@pytest.mark.parametrize("name", ["bad name", "a/b", "..", "x" * 250, ""])
def test_create_topics_invalid_name(broker, name):
    with connect(broker) as s:
        res = parse_create_topics_v4(call(s, CREATE_TOPICS, 4, 32, create_topics_v4([(name, 1, 1, {})])))
        err, msg = res[name]
        assert err == 17, "INVALID_TOPIC_EXCEPTION"
        assert msg, "an error message explains why"
        _, _, topics = parse_metadata(call(s, METADATA, 0, 33, array([], string)), 0)
        assert topics == []


# ---- via librdkafka -----------------------------------------------------------------------

def test_offsets_for_times_returns_first_record_at_or_after(broker):
    topic = "by-time"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    base = int(time.time() * 1000) - 3_600_000
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": "all"})
    for i in range(10):
        # Timestamps base, base+1000, ..., base+9000; each in its own batch.
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=base + 1000 * i)
        p.flush(10)
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        def offset_for(ts):
            (tp,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None, tp.error
            return tp.offset
        assert offset_for(base - 5000) == 0, "before the first record: offset 0"
        assert offset_for(base) == 0
        assert offset_for(base + 4000) == 4, "exact timestamp"
        assert offset_for(base + 4001) == 5, "between records: the next one"
        assert offset_for(base + 9000) == 9
        assert offset_for(base + 9001) == -1, "after the last record: end (-1)"
    finally:
        c.close()


def test_describe_configs_broker_lists_log_settings(broker_factory):
    b = broker_factory({"log.retention.ms": "3600000"})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource("BROKER", "0")
    entries = admin.describe_configs([res])[res].result(30)
    assert entries["log.retention.ms"].value == "3600000"
    assert entries["log.retention.ms"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert not entries["log.retention.ms"].is_default
    assert entries["num.partitions"].value == "1"
    assert entries["num.partitions"].is_default
    assert entries["log.segment.bytes"].value == "1073741824"
    assert entries["auto.create.topics.enable"].value == "true"
    assert entries["listeners"].value == f"PLAINTEXT://127.0.0.1:{b.port}"


def test_pipelined_produce_and_long_poll_fetch_from_threads_stay_consistent(broker):
    """Two connections: one long-polls repeatedly while the other produces 50 batches;
    the poller sees every record exactly once and in order."""
    with connect(broker) as s:
        create_topic(s, "lp-stream")
    got = []
    errors = []

    def poll():
        try:
            with connect(broker) as c:
                offset = 0
                deadline = time.monotonic() + 20
                corr = 0
                while offset < 50 and time.monotonic() < deadline:
                    corr += 1
                    p = parse_fetch_v4(call(c, FETCH, 4, corr, fetch_v4("lp-stream", 0, offset, 2000)))[
                        ("lp-stream", 0)]
                    assert p["error"] == 0
                    for off, value in decode_batches(p["records"]):
                        if off >= offset:
                            assert value == f"m{off}".encode()
                            got.append(off)
                            offset = off + 1
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    t = threading.Thread(target=poll)
    t.start()
    with connect(broker) as prod:
        for i in range(50):
            assert produce(prod, "lp-stream", 0, [f"m{i}".encode()], corr=1000 + i) == i
    t.join(30)
    assert not t.is_alive()
    assert not errors, errors
    assert got == list(range(50))


def parse_describe_cluster(r, version):
    r.i32()  # throttle_time_ms
    error, message = r.i16(), r.compact_string()
    endpoint_type = r.i8() if version >= 1 else 1
    cluster_id, controller = r.compact_string(), r.i32()
    brokers = r.compact_array(lambda rr: (rr.i32(), rr.compact_string(), rr.i32(), rr.compact_string(), rr.tags()))
    r.i32()  # cluster_authorized_operations
    r.tags()
    r.done()
    return error, message, endpoint_type, cluster_id, controller, [(b[0], b[1], b[2]) for b in brokers]


@pytest.mark.parametrize("version", [0, 1])
def test_describe_cluster_lists_this_broker(broker, version):
    # Java's Admin.describeCluster() uses this API; no Debian client here calls it, so raw.
    body = i8(0) + (i8(1) if version >= 1 else b"") + b"\x00"  # authorized ops no, endpoint type brokers
    with connect(broker) as s:
        r = call(s, 60, version, 31, body, flexible=True)
        error, message, etype, cluster_id, controller, brokers = parse_describe_cluster(r, version)
        assert error == 0 and message is None and etype == 1
        assert cluster_id and len(cluster_id) == 22
        assert controller == 0
        assert brokers == [(0, "127.0.0.1", broker.port)]
        if version >= 1:
            # Controller endpoints are not served separately: an error, not a guess.
            r = call(s, 60, 1, 32, i8(0) + i8(2) + b"\x00", flexible=True)
            error, message, *_ = parse_describe_cluster(r, 1)
            assert error == 42 and message
    # The cluster id is stable across restarts (kept in meta.properties).
    broker.restart()
    with connect(broker) as s:
        r = call(s, 60, version, 33, body, flexible=True)
        assert parse_describe_cluster(r, version)[3] == cluster_id
