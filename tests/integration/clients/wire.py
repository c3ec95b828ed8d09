"""Hand-built Kafka requests for tests that need exact bytes on the wire: record batches
(magic 2, and legacy magic 1 messages), Produce v3-8 and InitProducerId v0-1 encoders and
their response decoders, ApiVersions v0. Frames use conftest.frame()/recv_frame()."""
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
