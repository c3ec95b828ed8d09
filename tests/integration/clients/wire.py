"""Hand-built Kafka requests for tests that need exact bytes on the wire: record batches
(magic 2, and legacy magic 1 messages), Produce v3-8 and InitProducerId v0-1 encoders and
their response decoders, ApiVersions v0, and the group coordinator's requests (JoinGroup,
SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, FindCoordinator,
DescribeGroups, ListGroups, DeleteGroups, OffsetDelete; see the section below). Frames use
conftest.frame()/recv_frame()."""
import struct
import zlib


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(n):
    n = (n << 1) ^ (n >> 63)  # zigzag
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record_batch(values, base_timestamp=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
                 base_offset=0, last_offset_delta=None, record_count=None):
    """A magic-2 record batch holding <values> (bytes each, no keys, no headers). The
    header's last_offset_delta and record_count can be overridden (CRC stays valid)."""
    records = b""
    for i, v in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(v)) + v + varint(0)
        records += varint(len(body)) + body
    delta = len(values) - 1 if last_offset_delta is None else last_offset_delta
    count = len(values) if record_count is None else record_count
    after_crc = struct.pack(">hiqqqhii", 0, delta, base_timestamp, base_timestamp,
                            producer_id, producer_epoch, base_sequence, count) + records
    crc = crc32c(after_crc)
    after_length = struct.pack(">ibI", 0, 2, crc) + after_crc
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


def legacy_message_v1(value, key=None, timestamp=0):
    """A one-message magic-1 message set (Kafka 0.10 format)."""
    kb = struct.pack(">i", -1) if key is None else struct.pack(">i", len(key)) + key
    body = struct.pack(">bbq", 1, 0, timestamp) + kb + struct.pack(">i", len(value)) + value
    msg = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(msg)) + msg


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def produce_body(topic, partition, records, acks=-1, timeout_ms=10000, version=3):
    """Produce v0-v8 request body with one topic and one partition (v3+ carry a null
    transactional id)."""
    txn = struct.pack(">h", -1) if version >= 3 else b""
    return (txn + struct.pack(">hi", acks, timeout_ms) + struct.pack(">i", 1) + string(topic) +
            struct.pack(">i", 1) + struct.pack(">ii", partition, len(records)) + records)


def parse_produce_response(payload, version):
    """Returns [(topic, partition, error_code, base_offset)] from a Produce v2-v7 response
    frame (correlation id included)."""
    off = 4
    (ntopics,) = struct.unpack_from(">i", payload, off)
    off += 4
    out = []
    for _ in range(ntopics):
        (nlen,) = struct.unpack_from(">h", payload, off)
        off += 2
        name = payload[off:off + nlen].decode()
        off += nlen
        (nparts,) = struct.unpack_from(">i", payload, off)
        off += 4
        for _ in range(nparts):
            index, err, base = struct.unpack_from(">ihq", payload, off)
            off += 4 + 2 + 8 + 8  # + log_append_time
            if version >= 5:
                off += 8  # log_start_offset
            out.append((name, index, err, base))
    return out


def init_producer_id_body():
    """InitProducerId v0/v1 request body: no transactional id."""
    return struct.pack(">hi", -1, 60000)


def parse_init_producer_id_response(payload):
    """Returns (error_code, producer_id, producer_epoch)."""
    _throttle, err, pid, epoch = struct.unpack_from(">ihqh", payload, 4)
    return err, pid, epoch


def parse_api_versions_v0(payload):
    """Returns (error_code, {api_key: (min, max)}) from an ApiVersions v0 response frame."""
    err, n = struct.unpack_from(">hi", payload, 4)
    apis = {}
    off = 10
    for _ in range(max(n, 0)):
        k, lo, hi = struct.unpack_from(">hhh", payload, off)
        apis[k] = (lo, hi)
        off += 6
    return err, apis


# ---- group coordinator requests ------------------------------------------------------------
# JoinGroup 0-9, SyncGroup 0-5, Heartbeat 0-4, LeaveGroup 0-5, OffsetCommit 1-8, OffsetFetch
# 1-8, FindCoordinator 0-4, DescribeGroups 0-5, ListGroups 0-4, DeleteGroups 0-2 and
# OffsetDelete 0 request bodies and response decoders, for any version in those ranges
# (flexible versions use compact encodings and empty tagged fields). Layouts follow
# shared/kafka-protocol/spec/*.json. Frame flexible requests with conftest.frame(...,
# flexible=is_flexible(api, version)); read their responses with Reader(payload, flexible).

JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR = 8, 9, 10
FLEXIBLE_FROM = {JOIN_GROUP: 6, HEARTBEAT: 4, LEAVE_GROUP: 4, SYNC_GROUP: 4, OFFSET_COMMIT: 8,
                 OFFSET_FETCH: 6, FIND_COORDINATOR: 3}


def is_flexible(api_key, version):
    return version >= FLEXIBLE_FROM[api_key]


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _str(s, flex):
    """A (nullable) string, compact when <flex>."""
    if s is None:
        return uvarint(0) if flex else struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return (uvarint(len(b) + 1) if flex else struct.pack(">h", len(b))) + b


def _bytes(b, flex):
    if b is None:
        return uvarint(0) if flex else struct.pack(">i", -1)
    return (uvarint(len(b) + 1) if flex else struct.pack(">i", len(b))) + b


def _array(items, enc, flex):
    if items is None:
        return uvarint(0) if flex else struct.pack(">i", -1)
    body = b"".join(enc(x) for x in items)
    return (uvarint(len(items) + 1) if flex else struct.pack(">i", len(items))) + body


def _tags(flex):
    return b"\x00" if flex else b""


class Reader:
    """Sequential decoder of a response frame (correlation id first, then the header's
    tagged fields when <flexible>)."""

    def __init__(self, payload, flexible=False):
        self.buf, self.off, self.flex = payload, 0, flexible
        self.correlation_id = self.i32()
        self.tags()

    def _unpack(self, fmt):
        (v,) = struct.unpack_from(fmt, self.buf, self.off)
        self.off += struct.calcsize(fmt)
        return v

    def i8(self):
        return self._unpack(">b")

    def i16(self):
        return self._unpack(">h")

    def i32(self):
        return self._unpack(">i")

    def i64(self):
        return self._unpack(">q")

    def uvarint(self):
        shift = v = 0
        while True:
            b = self.buf[self.off]
            self.off += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def _len(self, fixed_fmt):
        if self.flex:
            return self.uvarint() - 1
        return self._unpack(fixed_fmt)

    def string(self):
        n = self._len(">h")
        if n < 0:
            return None
        s = self.buf[self.off:self.off + n].decode()
        self.off += n
        return s

    def bytes(self):
        n = self._len(">i")
        if n < 0:
            return None
        b = self.buf[self.off:self.off + n]
        self.off += n
        return b

    def array(self, dec):
        n = self._len(">i")
        return None if n < 0 else [dec(self) for _ in range(n)]

    def tags(self):
        if self.flex:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.off += self.uvarint()

    def at_end(self):
        return self.off == len(self.buf)


def consumer_subscription(topics, user_data=None):
    """ConsumerProtocolSubscription v0: the metadata of a "consumer" protocol."""
    return (struct.pack(">h", 0) + _array(topics, lambda t: _str(t, False), False) +
            _bytes(user_data, False))


def consumer_assignment(partitions):
    """ConsumerProtocolAssignment v0 of {topic: [partition, ...]}."""
    def topic(item):
        name, parts = item
        return _str(name, False) + _array(parts, lambda p: struct.pack(">i", p), False)
    return struct.pack(">h", 0) + _array(sorted(partitions.items()), topic, False) + _bytes(None, False)


def join_group_body(version, group_id, member_id="", session_timeout_ms=10000, rebalance_timeout_ms=10000,
                    group_instance_id=None, protocol_type="consumer", protocols=(("range", b""),),
                    reason=None):
    f = is_flexible(JOIN_GROUP, version)
    out = _str(group_id, f) + struct.pack(">i", session_timeout_ms)
    if version >= 1:
        out += struct.pack(">i", rebalance_timeout_ms)
    out += _str(member_id, f)
    if version >= 5:
        out += _str(group_instance_id, f)
    out += _str(protocol_type, f)
    out += _array(list(protocols), lambda p: _str(p[0], f) + _bytes(p[1], f) + _tags(f), f)
    if version >= 8:
        out += _str(reason, f)
    return out + _tags(f)


def parse_join_group_response(payload, version):
    """Returns a dict: error_code, generation_id, protocol_type, protocol_name, leader,
    skip_assignment, member_id, members [(member_id, group_instance_id, metadata)]."""
    r = Reader(payload, is_flexible(JOIN_GROUP, version))
    out = {"throttle_time_ms": r.i32() if version >= 2 else 0}
    out["error_code"] = r.i16()
    out["generation_id"] = r.i32()
    out["protocol_type"] = r.string() if version >= 7 else None
    out["protocol_name"] = r.string()
    out["leader"] = r.string()
    out["skip_assignment"] = bool(r.i8()) if version >= 9 else False

    def member(rr):
        mid = rr.string()
        inst = rr.string() if version >= 5 else None
        meta = rr.bytes()
        rr.tags()
        return (mid, inst, meta)
    out["member_id"] = r.string()
    out["members"] = r.array(member)
    r.tags()
    return out


def sync_group_body(version, group_id, generation_id, member_id, assignments=(), group_instance_id=None,
                    protocol_type="consumer", protocol_name="range"):
    """<assignments>: [(member_id, assignment bytes)]."""
    f = is_flexible(SYNC_GROUP, version)
    out = _str(group_id, f) + struct.pack(">i", generation_id) + _str(member_id, f)
    if version >= 3:
        out += _str(group_instance_id, f)
    if version >= 5:
        out += _str(protocol_type, f) + _str(protocol_name, f)
    out += _array(list(assignments), lambda a: _str(a[0], f) + _bytes(a[1], f) + _tags(f), f)
    return out + _tags(f)


def parse_sync_group_response(payload, version):
    """Returns (error_code, assignment bytes)."""
    r = Reader(payload, is_flexible(SYNC_GROUP, version))
    if version >= 1:
        r.i32()
    err = r.i16()
    if version >= 5:
        r.string()
        r.string()
    return err, r.bytes()


def heartbeat_body(version, group_id, generation_id, member_id, group_instance_id=None):
    f = is_flexible(HEARTBEAT, version)
    out = _str(group_id, f) + struct.pack(">i", generation_id) + _str(member_id, f)
    if version >= 3:
        out += _str(group_instance_id, f)
    return out + _tags(f)


def parse_heartbeat_response(payload, version):
    """Returns the error code."""
    r = Reader(payload, is_flexible(HEARTBEAT, version))
    if version >= 1:
        r.i32()
    return r.i16()


def leave_group_body(version, group_id, member_id, group_instance_id=None):
    f = is_flexible(LEAVE_GROUP, version)
    out = _str(group_id, f)
    if version <= 2:
        return out + _str(member_id, f)
    member = _str(member_id, f) + _str(group_instance_id, f)
    if version >= 5:
        member += _str(None, f)
    return out + _array([member], lambda m: m + _tags(f), f) + _tags(f)


def parse_leave_group_response(payload, version):
    """Returns (error_code, [(member_id, group_instance_id, error_code)])."""
    r = Reader(payload, is_flexible(LEAVE_GROUP, version))
    if version >= 1:
        r.i32()
    err = r.i16()
    members = []
    if version >= 3:
        def member(rr):
            m = (rr.string(), rr.string(), rr.i16())
            rr.tags()
            return m
        members = r.array(member)
    return err, members


def offset_commit_body(version, group_id, topics, generation_id=-1, member_id="", group_instance_id=None,
                       retention_time_ms=-1):
    """OffsetCommit v1-v8. <topics>: {topic: [(partition, offset, metadata)]}."""
    f = is_flexible(OFFSET_COMMIT, version)

    def partition(p):
        index, offset, metadata = p
        out = struct.pack(">iq", index, offset)
        if version >= 6:
            out += struct.pack(">i", -1)  # committed leader epoch
        if version == 1:
            out += struct.pack(">q", -1)  # commit timestamp
        return out + _str(metadata, f) + _tags(f)

    out = _str(group_id, f) + struct.pack(">i", generation_id) + _str(member_id, f)
    if version >= 7:
        out += _str(group_instance_id, f)
    if 2 <= version <= 4:
        out += struct.pack(">q", retention_time_ms)
    out += _array(sorted(topics.items()),
                  lambda t: _str(t[0], f) + _array(list(t[1]), partition, f) + _tags(f), f)
    return out + _tags(f)


def parse_offset_commit_response(payload, version):
    """Returns [(topic, partition, error_code)]."""
    r = Reader(payload, is_flexible(OFFSET_COMMIT, version))
    if version >= 3:
        r.i32()
    out = []

    def topic(rr):
        name = rr.string()

        def part(r2):
            index, err = r2.i32(), r2.i16()
            r2.tags()
            out.append((name, index, err))
        rr.array(part)
        rr.tags()
    r.array(topic)
    r.tags()
    return out


def offset_fetch_body(version, group_id, topics=None, require_stable=False):
    """OffsetFetch v1-v7. <topics>: {topic: [partition, ...]}, or None for all (v2+)."""
    f = is_flexible(OFFSET_FETCH, version)
    out = _str(group_id, f)
    out += _array(None if topics is None else sorted(topics.items()),
                  lambda t: _str(t[0], f) + _array(list(t[1]), lambda p: struct.pack(">i", p), f) + _tags(f), f)
    if version >= 7:
        out += struct.pack(">b", 1 if require_stable else 0)
    return out + _tags(f)


def parse_offset_fetch_response(payload, version):
    """Returns (group error_code or 0 before v2, {(topic, partition): (offset, metadata,
    error_code)})."""
    r = Reader(payload, is_flexible(OFFSET_FETCH, version))
    if version >= 3:
        r.i32()
    out = {}

    def topic(rr):
        name = rr.string()

        def part(r2):
            index, offset = r2.i32(), r2.i64()
            if version >= 5:
                r2.i32()
            metadata, err = r2.string(), r2.i16()
            r2.tags()
            out[(name, index)] = (offset, metadata, err)
        rr.array(part)
        rr.tags()
    r.array(topic)
    err = r.i16() if version >= 2 else 0
    r.tags()
    return err, out


def find_coordinator_body(version, key, key_type=0):
    f = is_flexible(FIND_COORDINATOR, version)
    out = _str(key, f)
    if version >= 1:
        out += struct.pack(">b", key_type)
    return out + _tags(f)


def parse_find_coordinator_response(payload, version):
    """Returns (error_code, node_id, host, port)."""
    r = Reader(payload, is_flexible(FIND_COORDINATOR, version))
    if version >= 1:
        r.i32()
    err = r.i16()
    if version >= 1:
        r.string()
    return err, r.i32(), r.string(), r.i32()


DESCRIBE_GROUPS, LIST_GROUPS, DELETE_GROUPS, OFFSET_DELETE = 15, 16, 42, 47
FLEXIBLE_FROM.update({DESCRIBE_GROUPS: 5, LIST_GROUPS: 3, DELETE_GROUPS: 2,
                      OFFSET_DELETE: 1 << 15})  # OffsetDelete is never flexible


def find_coordinator_v4_body(keys, key_type=0):
    """FindCoordinator v4+: a batch of keys."""
    return struct.pack(">b", key_type) + _array(list(keys), lambda k: _str(k, True), True) + _tags(True)


def parse_find_coordinator_v4_response(payload):
    """Returns [(key, node_id, host, port, error_code)]."""
    r = Reader(payload, True)
    r.i32()

    def coordinator(rr):
        key, node, host, port, err = rr.string(), rr.i32(), rr.string(), rr.i32(), rr.i16()
        rr.string()  # error message
        rr.tags()
        return (key, node, host, port, err)
    out = r.array(coordinator)
    r.tags()
    return out


def offset_fetch_v8_body(groups, require_stable=False):
    """OffsetFetch v8: <groups> is [(group_id, {topic: [partition, ...]} or None)]."""
    def group(g):
        gid, topics = g
        return (_str(gid, True) +
                _array(None if topics is None else sorted(topics.items()),
                       lambda t: _str(t[0], True) + _array(list(t[1]), lambda p: struct.pack(">i", p), True) +
                       _tags(True), True) + _tags(True))
    return _array(list(groups), group, True) + struct.pack(">b", 1 if require_stable else 0) + _tags(True)


def parse_offset_fetch_v8_response(payload):
    """Returns {group_id: (error_code, {(topic, partition): (offset, metadata, error_code)})}."""
    r = Reader(payload, True)
    r.i32()
    out = {}

    def group(rr):
        gid = rr.string()
        offs = {}

        def topic(r2):
            name = r2.string()

            def part(r3):
                index, offset = r3.i32(), r3.i64()
                r3.i32()
                metadata, err = r3.string(), r3.i16()
                r3.tags()
                offs[(name, index)] = (offset, metadata, err)
            r2.array(part)
            r2.tags()
        rr.array(topic)
        err = rr.i16()
        rr.tags()
        out[gid] = (err, offs)
    r.array(group)
    r.tags()
    return out


def offset_delete_body(group_id, topics):
    """OffsetDelete v0. <topics>: {topic: [partition, ...]}."""
    return _str(group_id, False) + _array(
        sorted(topics.items()),
        lambda t: _str(t[0], False) + _array(list(t[1]), lambda p: struct.pack(">i", p), False), False)


def parse_offset_delete_response(payload):
    """Returns (error_code, [(topic, partition, error_code)])."""
    r = Reader(payload, False)
    err = r.i16()
    r.i32()
    out = []

    def topic(rr):
        name = rr.string()
        rr.array(lambda r2: out.append((name, r2.i32(), r2.i16())))
    r.array(topic)
    return err, out


def delete_groups_body(version, groups):
    f = is_flexible(DELETE_GROUPS, version)
    return _array(list(groups), lambda g: _str(g, f), f) + _tags(f)


def parse_delete_groups_response(payload, version):
    """Returns {group_id: error_code}."""
    r = Reader(payload, is_flexible(DELETE_GROUPS, version))
    r.i32()
    out = {}

    def result(rr):
        gid, err = rr.string(), rr.i16()
        rr.tags()
        out[gid] = err
    r.array(result)
    r.tags()
    return out


def describe_groups_body(version, groups):
    f = is_flexible(DESCRIBE_GROUPS, version)
    out = _array(list(groups), lambda g: _str(g, f), f)
    if version >= 3:
        out += b"\x00"
    return out + _tags(f)


def parse_describe_groups_response(payload, version):
    """Returns {group_id: dict(error_code, state, protocol_type, protocol, members=[dict(
    member_id, group_instance_id, client_id, client_host, metadata, assignment)])}."""
    r = Reader(payload, is_flexible(DESCRIBE_GROUPS, version))
    if version >= 1:
        r.i32()
    out = {}

    def member(rr):
        m = {"member_id": rr.string()}
        m["group_instance_id"] = rr.string() if version >= 4 else None
        m["client_id"], m["client_host"] = rr.string(), rr.string()
        m["metadata"], m["assignment"] = rr.bytes(), rr.bytes()
        rr.tags()
        return m

    def group(rr):
        err, gid = rr.i16(), rr.string()
        g = {"error_code": err, "state": rr.string(), "protocol_type": rr.string(), "protocol": rr.string()}
        g["members"] = rr.array(member)
        if version >= 3:
            rr.i32()
        rr.tags()
        out[gid] = g
    r.array(group)
    r.tags()
    return out


def list_groups_body(version, states=()):
    f = is_flexible(LIST_GROUPS, version)
    out = b""
    if version >= 4:
        out += _array(list(states), lambda s: _str(s, f), f)
    return out + _tags(f)


def parse_list_groups_response(payload, version):
    """Returns (error_code, {group_id: (protocol_type, state or None)})."""
    r = Reader(payload, is_flexible(LIST_GROUPS, version))
    if version >= 1:
        r.i32()
    err = r.i16()
    out = {}

    def group(rr):
        gid, ptype = rr.string(), rr.string()
        state = rr.string() if version >= 4 else None
        rr.tags()
        out[gid] = (ptype, state)
    r.array(group)
    r.tags()
    return err, out


# ---- topic-level APIs at their first non-flexible versions, and SASL PLAIN ------------
# Request bodies for Metadata v4, Fetch v4, ListOffsets v1, DeleteRecords v0,
# DeleteTopics v1, CreatePartitions v0 and DescribeConfigs v0, and decoders returning
# the per-topic/partition error codes (what cross-tenant tests look at).

METADATA, FETCH, LIST_OFFSETS, DELETE_RECORDS, DELETE_TOPICS = 3, 1, 2, 21, 20
CREATE_PARTITIONS, DESCRIBE_CONFIGS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 37, 32, 17, 36


def metadata_v4_body(topics, allow_auto_create=False):
    return _array(list(topics), lambda t: _str(t, False), False) + struct.pack(">b", 1 if allow_auto_create else 0)


def parse_metadata_v4_response(payload):
    """Returns (cluster_id, {topic: (error_code, partition_count)})."""
    r = Reader(payload, False)
    r.i32()
    r.array(lambda rr: (rr.i32(), rr.string(), rr.i32(), rr.string()))
    cluster_id = r.string()
    r.i32()
    out = {}

    def partition(rr):
        rr.i16(), rr.i32(), rr.i32()
        rr.array(lambda x: x.i32())  # replicas
        rr.array(lambda x: x.i32())  # isr (offline replicas come at v5)

    def topic(rr):
        err, name = rr.i16(), rr.string()
        rr.i8()
        out[name] = (err, len(rr.array(partition)))
    r.array(topic)
    return cluster_id, out


def fetch_v4_body(topic, partition, offset=0, max_bytes=1 << 20):
    return (struct.pack(">iiiib", -1, 0, 1, max_bytes, 0) + struct.pack(">i", 1) + string(topic) +
            struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes))


def parse_fetch_v4_response(payload):
    """Returns {(topic, partition): (error_code, high_watermark, record_bytes)}."""
    r = Reader(payload, False)
    r.i32()
    out = {}

    def topic(rr):
        name = rr.string()

        def part(r2):
            index, err, hw = r2.i32(), r2.i16(), r2.i64()
            r2.i64()
            r2.array(lambda x: (x.i64(), x.i64()))
            records = r2.bytes()
            out[(name, index)] = (err, hw, len(records or b""))
        rr.array(part)
    r.array(topic)
    return out


def list_offsets_v1_body(topic, partition, timestamp=-1):
    return (struct.pack(">i", -1) + struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1) +
            struct.pack(">iq", partition, timestamp))


def parse_list_offsets_v1_response(payload):
    """Returns {(topic, partition): (error_code, offset)}."""
    r = Reader(payload, False)
    out = {}

    def topic(rr):
        name = rr.string()

        def part(r2):
            index, err = r2.i32(), r2.i16()
            r2.i64()
            out[(name, index)] = (err, r2.i64())
        rr.array(part)
    r.array(topic)
    return out


def delete_records_v0_body(topic, partition, offset):
    return (struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1) + struct.pack(">iq", partition, offset) +
            struct.pack(">i", 10000))


def parse_delete_records_v0_response(payload):
    """Returns {(topic, partition): error_code}."""
    r = Reader(payload, False)
    r.i32()
    out = {}

    def topic(rr):
        name = rr.string()

        def part(r2):
            index, _low, err = r2.i32(), r2.i64(), r2.i16()
            out[(name, index)] = err
        rr.array(part)
    r.array(topic)
    return out


def delete_topics_v1_body(topics):
    return _array(list(topics), lambda t: _str(t, False), False) + struct.pack(">i", 10000)


def parse_delete_topics_v1_response(payload):
    """Returns {topic: error_code}."""
    r = Reader(payload, False)
    r.i32()
    out = {}

    def result(rr):
        name = rr.string()
        out[name] = rr.i16()
    r.array(result)
    return out


def create_partitions_v0_body(topic, count):
    return (struct.pack(">i", 1) + string(topic) + struct.pack(">ii", count, -1) + struct.pack(">ib", 10000, 0))


def parse_create_partitions_v0_response(payload):
    """Returns {topic: (error_code, error_message)}."""
    r = Reader(payload, False)
    r.i32()
    out = {}

    def result(rr):
        name, err, msg = rr.string(), rr.i16(), rr.string()
        out[name] = (err, msg)
    r.array(result)
    return out


def describe_configs_v0_body(resource_type, name):
    return struct.pack(">i", 1) + struct.pack(">b", resource_type) + string(name) + struct.pack(">i", -1)


def parse_describe_configs_v0_response(payload):
    """Returns [(resource_name, error_code, {config: value})]."""
    r = Reader(payload, False)
    r.i32()

    def config(rr):
        name, value = rr.string(), rr.string()
        rr.i8(), rr.i8(), rr.i8()
        return name, value

    def result(rr):
        err, _msg, _rtype, name = rr.i16(), rr.string(), rr.i8(), rr.string()
        return name, err, dict(rr.array(config))
    return r.array(result)


def sasl_plain_handshake_bodies(key, secret):
    """SaslHandshake v1 (PLAIN) and SaslAuthenticate v0 request bodies."""
    token = b"\0" + key.encode() + b"\0" + secret.encode()
    return string("PLAIN"), struct.pack(">i", len(token)) + token
