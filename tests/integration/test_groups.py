"""Consumer groups with real clients: rebalances, exactly-once processing with synchronous
commits, cooperative-sticky, static membership, broker restarts, and the admin views.

Members are separate processes (clients/group_member.py for confluent and kafka-python,
js/group_member.js for kafkajs, build/clients/sarama_member for sarama) that print JSON
events (clients/README.md); conftest.Member reads them. A member prints a record only
after a synchronous commit covering it succeeded, so across membership changes every
produced record must be printed exactly once, provided members die only while idle: the
tests produce in phases and wait until everything produced so far was printed before
each membership change.
"""
import collections
import struct
import threading
import time

import pytest
from confluent_kafka import Producer

from conftest import create_topic, require_member_lib, wait_until

SESSION_MS = 6000
SESSION_S = SESSION_MS / 1000
# A dead member's partitions must move within the session timeout plus this: the broker
# notices the missing heartbeats, the survivors hear of the rebalance on their next
# heartbeat (1 s) and rejoin.
MOVE_MARGIN_S = 8.0
GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}
PARTITIONS = 12
JOIN_TIMEOUT = 45.0
PRINT_TIMEOUT = 60.0


def assignor_for(lib):
    # kafkajs 2.2.4 only has its round-robin assigner; the others default to range.
    return "roundrobin" if lib == "kafkajs" else "range"


class Records:
    """Records produced to one topic with librdkafka, in phases. Record i has key "k-i",
    value "v-i" and goes to partition i % <partitions>. <expected> maps (topic,
    partition, offset) to (key, value) for every acknowledged record."""

    def __init__(self, bootstrap, topic, partitions):
        self.topic = topic
        self.partitions = partitions
        self.expected = {}
        self.next_i = 0
        self.errors = []
        self.lock = threading.Lock()
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                                  "message.timeout.ms": 60000, "reconnect.backoff.ms": 50,
                                  "reconnect.backoff.max.ms": 500})

    def _on_delivery(self, err, msg):
        with self.lock:
            if err is not None:
                self.errors.append(err)
            else:
                self.expected[(msg.topic(), msg.partition(), msg.offset())] = (
                    msg.key().decode(), msg.value().decode())

    def send(self, n):
        """Queues <n> records (no wait)."""
        for _ in range(n):
            i = self.next_i
            self.next_i += 1
            self.producer.produce(self.topic, key=f"k-{i}".encode(), value=f"v-{i}".encode(),
                                  partition=i % self.partitions, on_delivery=self._on_delivery)
        self.producer.poll(0)

    def produce(self, n):
        """Produces <n> records and waits until all are acknowledged; returns the set of
        their (topic, partition, offset)."""
        before = set(self.keys())
        self.send(n)
        self.flush()
        new = set(self.keys()) - before
        assert len(new) == n, f"{n - len(new)} of {n} records not acknowledged"
        return new

    def flush(self):
        left = self.producer.flush(60)
        assert left == 0, f"{left} records not delivered"
        assert not self.errors, self.errors[:5]

    def keys(self):
        with self.lock:
            return list(self.expected)


def printed(members):
    """Counter of (topic, partition, offset) over every record printed by <members>."""
    c = collections.Counter()
    for m in members:
        c.update(m.record_keys())
    return c


def wait_printed(members, keys, timeout=PRINT_TIMEOUT, what="records"):
    keys = set(keys)

    def done():
        return keys <= set(printed(members))
    try:
        wait_until(done, timeout, what)
    except AssertionError:
        missing = sorted(keys - set(printed(members)))
        raise AssertionError(f"{len(missing)} of {len(keys)} {what} never printed, e.g. {missing[:10]}; "
                             f"members: {[(m, m.assignment) for m in members]}") from None


def check_exactly_once(members, records):
    """Every acknowledged record printed exactly once across <members>, with its key and
    value; nothing else printed; no line broke the output contract."""
    for m in members:
        assert not m.of("bad_line"), f"{m} wrote non-JSON lines: {m.of('bad_line')[:3]}"
    counts = printed(members)
    dups = sorted(k for k, n in counts.items() if n > 1)
    missing = sorted(set(records.expected) - set(counts))
    extra = sorted(set(counts) - set(records.expected))
    assert not dups, f"{len(dups)} records printed more than once, e.g. {dups[:10]}: " + \
        "; ".join(f"{m}: {[k for k in m.record_keys() if k in set(dups[:3])]}" for m in members)
    assert not missing, f"{len(missing)} records never printed, e.g. {missing[:10]}"
    assert not extra, f"records printed that were never produced: {extra[:10]}"
    for m in members:
        for e in m.records():
            k = (e["topic"], e["partition"], e["offset"])
            assert (e["key"], e["value"]) == records.expected[k], f"{m} printed {e} for {k}"


def cover_ok(members, topic, partitions):
    """True when the members' current assignments hold every partition of <topic> exactly
    once and are balanced (one topic: range and round-robin give each member
    partitions // len(members) or one more)."""
    got = collections.Counter()
    for m in members:
        got.update(m.assignment)
    if set(got) != {(topic, p) for p in range(partitions)} or any(n != 1 for n in got.values()):
        return False
    lo = partitions // len(members)
    return all(lo <= len(m.assignment) <= lo + 1 for m in members)


def wait_cover(members, topic, partitions=PARTITIONS, timeout=JOIN_TIMEOUT):
    try:
        wait_until(lambda: cover_ok(members, topic, partitions), timeout,
                   f"{len(members)} members to share {partitions} partitions")
    except AssertionError:
        raise AssertionError(f"partitions not assigned exactly once within {timeout}s: "
                             f"{[(m, sorted(m.assignment), m.tail(4)) for m in members]}") from None
    return {m: m.assignment for m in members}


def start_members(member_factory, libs, bootstrap, group, topic, prefix, **kw):
    ms = [member_factory(lib, bootstrap, group, topic, f"{prefix}-{i}-{lib}", assignor=assignor_for(lib), **kw)
          for i, lib in enumerate(libs)]
    for m in ms:
        m.wait_ready()
    return ms


# ---- rebalance with kill -9 and a new member ---------------------------------------------

DANCES = {
    "confluent": (("confluent", "confluent", "confluent"), "confluent"),
    "kafka-python": (("kafka-python", "kafka-python", "kafka-python"), "kafka-python"),
    "kafkajs": (("kafkajs", "kafkajs", "kafkajs"), "kafkajs"),
    "sarama": (("sarama", "sarama", "sarama"), "sarama"),
    # Mixed: librdkafka and kafka-python both name their range assignor "range".
    "confluent+kafka-python": (("confluent", "kafka-python", "confluent"), "kafka-python"),
}


@pytest.mark.parametrize("dance", list(DANCES))
def test_group_rebalance_kill9_and_join(broker_factory, member_factory, dance):
    """Three members on 12 partitions; one is killed -9 while idle, its partitions move to
    the other two within session timeout + margin; a new member joins and gets its share.
    Every produced record is printed exactly once over the whole run."""
    libs, add_lib = DANCES[dance]
    require_member_lib(*libs, add_lib)
    b = broker_factory(GROUP_OVERRIDES)
    topic = f"dance-{dance}".replace("+", "-")
    group = f"g-{topic}"
    create_topic(b.bootstrap, topic, PARTITIONS)
    records = Records(b.bootstrap, topic, PARTITIONS)

    members = start_members(member_factory, libs, b.bootstrap, group, topic, "d")
    everyone = list(members)
    wait_cover(members, topic)
    wait_printed(everyone, records.produce(240), what="phase-1 records")

    victim, live = members[0], members[1:]
    t_kill = time.monotonic()
    victim.kill9()
    wait_cover(live, topic, timeout=SESSION_S + MOVE_MARGIN_S)
    moved_s = time.monotonic() - t_kill
    wait_printed(everyone, records.produce(240), what="phase-2 records")

    newcomer = member_factory(add_lib, b.bootstrap, group, topic, f"d-3-{add_lib}", assignor=assignor_for(add_lib))
    everyone.append(newcomer)
    newcomer.wait_ready()
    wait_cover(live + [newcomer], topic)
    wait_printed(everyone, records.produce(240), what="phase-3 records")

    check_exactly_once(everyone, records)
    for m in live + [newcomer]:
        assert m.terminate() == 0, f"{m} exit code"
        assert m.of("closed"), f"{m} printed no closed event"
    print(f"partitions of the killed member moved after {moved_s:.1f}s")


def test_kafkajs_and_librdkafka_share_no_assignor(broker_factory, member_factory):
    """kafkajs names its round-robin protocol "RoundRobinAssigner", librdkafka "roundrobin"
    (and kafkajs has no range), so they cannot form one group: the broker must refuse the
    second member with INCONSISTENT_GROUP_PROTOCOL and leave the first one undisturbed."""
    require_member_lib("kafkajs")
    b = broker_factory(GROUP_OVERRIDES)
    topic = "mix-js"
    create_topic(b.bootstrap, topic, PARTITIONS)
    rd = member_factory("confluent", b.bootstrap, "g-mix-js", topic, "mix-rd", assignor="roundrobin")
    rd.wait_assignment(lambda a: len(a) == PARTITIONS, JOIN_TIMEOUT, "all partitions")
    t = time.monotonic()
    js = member_factory("kafkajs", b.bootstrap, "g-mix-js", topic, "mix-js", assignor="roundrobin")
    err = js.wait_for(lambda m: [e for e in m.of("error") if "incompatible" in e["message"].lower()
                                 or "INCONSISTENT_GROUP_PROTOCOL" in e["message"]], 30, "the protocol error")
    assert err
    assert not js.of("assigned") or all(not e["all"] for e in js.of("assigned"))
    assert rd.assignment == {(topic, p) for p in range(PARTITIONS)}
    assert not rd.of("revoked", since=t), "the refused join must not rebalance the group"


# ---- cooperative-sticky ------------------------------------------------------------------

class SteadyProducer(threading.Thread):
    """Produces <rate> records per second through <records> until stop()."""

    def __init__(self, records, rate):
        super().__init__(daemon=True)
        self.records, self.rate = records, rate
        self.stopping = threading.Event()

    def run(self):
        tick = 0.05
        while not self.stopping.wait(tick):
            self.records.send(max(1, int(self.rate * tick)))

    def stop(self):
        self.stopping.set()
        self.join(10)
        self.records.flush()


def test_cooperative_sticky_third_member_moves_only_its_share(broker_factory, member_factory):
    """Two cooperative-sticky librdkafka members consume while records keep coming; a third
    joins. The partitions the first two keep are never revoked and their records keep
    being printed during the rebalance; only the third member's share moves."""
    b = broker_factory(GROUP_OVERRIDES)
    topic = "coop"
    create_topic(b.bootstrap, topic, PARTITIONS)
    records = Records(b.bootstrap, topic, PARTITIONS)
    kw = dict(assignor="cooperative-sticky")
    m1 = member_factory("confluent", b.bootstrap, "g-coop", topic, "coop-1", **kw)
    m2 = member_factory("confluent", b.bootstrap, "g-coop", topic, "coop-2", **kw)
    wait_cover([m1, m2], topic)

    producer = SteadyProducer(records, rate=600)
    producer.start()
    try:
        wait_until(lambda: sum(printed([m1, m2]).values()) >= 300, 30, "records flowing")
        before = {m1: m1.assignment, m2: m2.assignment}
        t_join = time.monotonic()
        m3 = member_factory("confluent", b.bootstrap, "g-coop", topic, "coop-3", **kw)
        wait_cover([m1, m2, m3], topic)
        t_assigned = m3.timed("assigned")[-1][0]
        n_after = sum(printed([m1, m2, m3]).values())
        wait_until(lambda: sum(printed([m1, m2, m3]).values()) >= n_after + 300, 30, "records after the join")
    finally:
        producer.stop()
    wait_printed([m1, m2, m3], records.keys(), what="all records")
    check_exactly_once([m1, m2, m3], records)

    moved = set()
    kept_records_in_window = 0
    for m in (m1, m2):
        kept = before[m] & m.assignment
        assert len(kept) == PARTITIONS // 3, f"{m}: sticky keeps {PARTITIONS // 3} of {sorted(before[m])}"
        revoked = {(t, p) for e in m.of("revoked", since=t_join) for t, p in e["partitions"]}
        assert not any(e.get("lost") for e in m.of("revoked")), f"{m} lost partitions"
        assert not revoked & kept, f"{m}: kept partitions were revoked: {sorted(revoked & kept)}"
        assert revoked == before[m] - m.assignment, f"{m}: only the moving partitions are revoked"
        added = {(t, p) for e in m.of("assigned", since=t_join) for t, p in e["partitions"]}
        assert not added, f"{m}: nothing new is assigned to an existing member, got {sorted(added)}"
        moved |= revoked
        kept_records_in_window += sum(
            1 for t, e in m.timed("record")
            if t_join <= t <= t_assigned and (e["topic"], e["partition"]) in kept)
    assert moved == m3.assignment
    assert len(m3.of("assigned")) >= 1 and not m3.of("revoked")
    print(f"rebalance window {t_assigned - t_join:.2f}s, kept-partition records printed in it: "
          f"{kept_records_in_window}")
    assert kept_records_in_window > 0, \
        f"no records of kept partitions printed during the {t_assigned - t_join:.2f}s rebalance"


# ---- static membership ---------------------------------------------------------------------

def test_static_member_restart_keeps_assignment_without_rebalance(broker_factory, member_factory):
    """librdkafka static members (group.instance.id) do not leave on close. Restarted with
    the same instance id within the session timeout, a member gets its partitions back and
    the other member sees no rebalance, not even when the old member id would have
    expired."""
    b = broker_factory(GROUP_OVERRIDES)
    topic = "static"
    create_topic(b.bootstrap, topic, PARTITIONS)
    records = Records(b.bootstrap, topic, PARTITIONS)
    m1 = member_factory("confluent", b.bootstrap, "g-static", topic, "static-1", instance_id="inst-1")
    m2 = member_factory("confluent", b.bootstrap, "g-static", topic, "static-2", instance_id="inst-2")
    wait_cover([m1, m2], topic)
    wait_printed([m1, m2], records.produce(120), what="phase-1 records")

    a1, a2 = m1.assignment, m2.assignment
    t = time.monotonic()
    assert m1.terminate() == 0 and m1.of("closed")
    m1b = member_factory("confluent", b.bootstrap, "g-static", topic, "static-1b", instance_id="inst-1")
    m1b.wait_assignment(lambda a: a, SESSION_S, "its assignment within the session timeout")
    assert m1b.assignment == a1, "same instance id, same partitions"
    # Past the old member id's session timeout: still no rebalance.
    deadline = t + SESSION_S + 3
    while time.monotonic() < deadline:
        assert not m2.of("revoked", since=t) and not m2.of("assigned", since=t), \
            f"the other member saw a rebalance: {m2.tail(4)}"
        time.sleep(0.1)
    assert m2.assignment == a2
    assert len(m1b.of("assigned")) == 1 and not m1b.of("revoked")
    wait_printed([m1, m1b, m2], records.produce(120), what="phase-2 records")
    check_exactly_once([m1, m1b, m2], records)


# ---- broker restarts -----------------------------------------------------------------------

def bounce(broker, how):
    if how == "sigterm":
        broker.restart()
    else:
        broker.kill9()
        broker.start()


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_committed_offsets_survive_broker_restart(broker_factory, member_factory, how):
    """A librdkafka and a kafka-python member keep consuming across a broker restart (the
    group comes back empty, they rejoin) without printing anything twice; new members
    started after another restart resume from the committed offsets."""
    b = broker_factory(GROUP_OVERRIDES)
    topic, parts = "durable", 4
    create_topic(b.bootstrap, topic, parts)
    records = Records(b.bootstrap, topic, parts)
    first = start_members(member_factory, ["confluent", "kafka-python"], b.bootstrap, "g-durable", topic, "dur-a")
    wait_cover(first, topic, parts)
    wait_printed(first, records.produce(80), what="phase-1 records")

    bounce(b, how)
    wait_printed(first, records.produce(80), what="phase-2 records (after the broker restart)")
    check_exactly_once(first, records)
    for m in first:
        assert m.terminate() == 0 and m.of("closed"), m

    bounce(b, how)
    second = start_members(member_factory, ["kafka-python", "confluent"], b.bootstrap, "g-durable", topic, "dur-b")
    wait_cover(second, topic, parts)
    phase3 = records.produce(80)
    wait_printed(second, phase3, what="phase-3 records")
    assert set(printed(second)) == phase3, "the new members start at the committed offsets"
    check_exactly_once(first + second, records)


# ---- admin views -----------------------------------------------------------------------------

def decode_assignment(data):
    """ConsumerProtocolAssignment -> {(topic, partition)}."""
    off = 2
    (n,) = struct.unpack_from(">i", data, off)
    off += 4
    out = set()
    for _ in range(n):
        (tlen,) = struct.unpack_from(">h", data, off)
        off += 2
        topic = data[off:off + tlen].decode()
        off += tlen
        (np,) = struct.unpack_from(">i", data, off)
        off += 4
        for _ in range(np):
            out.add((topic, struct.unpack_from(">i", data, off)[0]))
            off += 4
    return out


def test_group_admin_views_offsets_lag_and_delete(broker_factory, member_factory):
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import GroupIdNotFoundError, NoError, NonEmptyGroupError

    b = broker_factory(GROUP_OVERRIDES)
    topic, group = "adm", "g-adm"
    create_topic(b.bootstrap, topic, 4)
    records = Records(b.bootstrap, topic, 4)
    m1 = member_factory("confluent", b.bootstrap, group, topic, "adm-1")
    m2 = member_factory("confluent", b.bootstrap, group, topic, "adm-2")
    wait_cover([m1, m2], topic, 4)
    wait_printed([m1, m2], records.produce(40), what="records")  # 10 per partition, committed
    all_parts = {(topic, p) for p in range(4)}

    # librdkafka: ListGroups + DescribeGroups.
    rd_admin = AdminClient({"bootstrap.servers": b.bootstrap})
    groups = {g.id: g for g in rd_admin.list_groups(timeout=10)}
    assert group in groups
    g = groups[group]
    assert g.error is None
    assert (g.state, g.protocol_type, g.protocol) == ("Stable", "consumer", "range")
    assert sorted(mb.client_id for mb in g.members) == ["adm-1", "adm-2"]
    assert len({mb.id for mb in g.members}) == 2 and all(mb.id for mb in g.members)
    got = [decode_assignment(mb.assignment) for mb in g.members]
    assert got[0] | got[1] == all_parts and not got[0] & got[1]
    assert {mb.client_id: decode_assignment(mb.assignment) for mb in g.members} == \
        {"adm-1": m1.assignment, "adm-2": m2.assignment}
    [only] = rd_admin.list_groups(group, timeout=10)
    assert only.id == group and len(only.members) == 2

    # kafka-python: ListGroups v2, DescribeGroups v3, OffsetFetch v3, DeleteGroups v1.
    kp = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        assert (group, "consumer") in kp.list_consumer_groups()
        [desc] = kp.describe_consumer_groups([group])
        assert (desc.group, desc.state, desc.protocol_type, desc.protocol) == (group, "Stable", "consumer", "range")
        assert sorted(mb.client_id for mb in desc.members) == ["adm-1", "adm-2"]
        for mb in desc.members:
            assert topic in mb.member_metadata.subscription
        assigned = [{(tp.topic, tp.partition) for tp in mb.member_assignment.partitions()} for mb in desc.members]
        assert assigned[0] | assigned[1] == all_parts and not assigned[0] & assigned[1]
        committed = kp.list_consumer_group_offsets(group)
        assert {(tp.topic, tp.partition): om.offset for tp, om in committed.items()} == \
            {(topic, p): 10 for p in range(4)}

        [(gid, err)] = kp.delete_consumer_groups([group])
        assert gid == group and err is NonEmptyGroupError, err

        for m in (m1, m2):
            assert m.terminate() == 0 and m.of("closed")
        records.produce(8)  # 2 more per partition: lag 2 each

        [desc] = kp.describe_consumer_groups([group])
        assert desc.state == "Empty" and desc.members == []
        committed = kp.list_consumer_group_offsets(group)
        kc = KafkaConsumer(bootstrap_servers=b.bootstrap)
        try:
            ends = kc.end_offsets([TopicPartition(topic, p) for p in range(4)])
        finally:
            kc.close()
        lag = {tp.partition: ends[tp] - om.offset for tp, om in committed.items()}
        assert lag == {0: 2, 1: 2, 2: 2, 3: 2}

        [(gid, err)] = kp.delete_consumer_groups([group])
        assert err is NoError, err
        assert group not in [gid for gid, _ in kp.list_consumer_groups()]
        assert kp.list_consumer_group_offsets(group) == {}, "deleting a group deletes its offsets"
        [(gid, err)] = kp.delete_consumer_groups([group])
        assert err is GroupIdNotFoundError, err
    finally:
        kp.close()
    assert group not in {g.id for g in rd_admin.list_groups(timeout=10)}
