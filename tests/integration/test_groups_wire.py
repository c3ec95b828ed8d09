"""The group coordinator on the raw wire: the error codes of bad group requests (session
timeouts out of range, missing or unknown member ids, oversized member metadata, commits
for topics that do not exist, empty group ids, inconsistent protocols, full groups),
across the versions clients use; after those a librdkafka group consumer must still work
against the same broker. Then what no client library lets a test steer: a rebalance
driven by hand over two connections (parked JoinGroup/SyncGroup answers), members that
vanish mid-join or never rejoin or sync, static-member fencing, OffsetDelete,
DeleteGroups, OffsetFetch v8, offsets of deleted topics and offset-store compaction.

Encoders and decoders are in clients/wire.py; field layouts follow
shared/kafka-protocol/spec/*.json.
"""
import os
import socket
import sys
import time

from confluent_kafka import Consumer, Producer

from conftest import create_topic, frame, recv_frame

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "clients"))
import wire  # noqa: E402
from wire import (FIND_COORDINATOR, HEARTBEAT, JOIN_GROUP, LEAVE_GROUP, OFFSET_COMMIT,  # noqa: E402
                  OFFSET_FETCH, SYNC_GROUP)

GROUP_OVERRIDES = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}

# Kafka error codes
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
ILLEGAL_GENERATION = 22
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
MEMBER_ID_REQUIRED = 79

META = wire.consumer_subscription(["t"])


class Conn:
    """One client connection; call() sends a request and returns the response payload."""

    def __init__(self, port, timeout=15.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.corr = 0

    def send(self, api_key, version, body):
        """Sends a request without waiting; recv() returns its response."""
        self.corr += 1
        self.sock.sendall(frame(api_key, version, self.corr, body,
                                flexible=wire.is_flexible(api_key, version)))

    def recv(self):
        payload = recv_frame(self.sock)
        (corr,) = wire.struct.unpack_from(">i", payload, 0)
        assert corr == self.corr, f"correlation id {corr}, expected {self.corr}"
        return payload

    def pending(self, wait_s=0.3):
        """True when no response arrives within <wait_s> (the request is parked)."""
        self.sock.settimeout(wait_s)
        try:
            return not self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(self.timeout)

    def call(self, api_key, version, body):
        self.send(api_key, version, body)
        return self.recv()

    def join(self, version, group, **kw):
        kw.setdefault("protocols", [("range", META)])
        return wire.parse_join_group_response(
            self.call(JOIN_GROUP, version, wire.join_group_body(version, group, **kw)), version)

    def join_new_member(self, version, group, **kw):
        """Joins as a new dynamic member, answering MEMBER_ID_REQUIRED on v4+ by rejoining
        with the given id. Returns the final JoinGroup response."""
        r = self.join(version, group, **kw)
        if version >= 4:
            assert r["error_code"] == MEMBER_ID_REQUIRED, r
            r = self.join(version, group, member_id=r["member_id"], **kw)
        return r

    def sync(self, version, group, generation, member, assignments=(), **kw):
        return wire.parse_sync_group_response(
            self.call(SYNC_GROUP, version, wire.sync_group_body(version, group, generation, member, assignments, **kw)),
            version)

    def heartbeat(self, version, group, generation, member, **kw):
        return wire.parse_heartbeat_response(
            self.call(HEARTBEAT, version, wire.heartbeat_body(version, group, generation, member, **kw)), version)

    def leave(self, version, group, member, **kw):
        return wire.parse_leave_group_response(
            self.call(LEAVE_GROUP, version, wire.leave_group_body(version, group, member, **kw)), version)

    def commit(self, version, group, topics, **kw):
        return wire.parse_offset_commit_response(
            self.call(OFFSET_COMMIT, version, wire.offset_commit_body(version, group, topics, **kw)), version)

    def fetch_offsets(self, version, group, topics=None):
        return wire.parse_offset_fetch_response(
            self.call(OFFSET_FETCH, version, wire.offset_fetch_body(version, group, topics)), version)

    def close(self):
        self.sock.close()


def assert_group_consumer_works(bootstrap, tag):
    """A librdkafka subscribe()-consumer in a fresh group reads 3 fresh records."""
    topic = f"probe-{tag}"
    create_topic(bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(3):
        p.produce(topic, f"probe-{i}".encode())
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{tag}", "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000, "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            for m in c.consume(10, 0.5):
                assert m.error() is None, m.error()
                got.append(m.value())
        assert got == [b"probe-0", b"probe-1", b"probe-2"]
        c.commit(asynchronous=False)
    finally:
        c.close()


def test_find_coordinator_is_this_broker(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    c = Conn(b.port)
    for v in range(4):
        p = c.call(FIND_COORDINATOR, v, wire.find_coordinator_body(v, "any-group"))
        assert wire.parse_find_coordinator_response(p, v) == (NONE, 0, "127.0.0.1", b.port), f"v{v}"
    c.close()


def test_join_group_session_timeout_out_of_range(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    c = Conn(b.port)
    for v in (0, 1, 3, 5, 6, 9):
        for timeout_ms in (1, 2**31 - 1):
            r = c.join(v, f"st-{v}", session_timeout_ms=timeout_ms)
            assert r["error_code"] == INVALID_SESSION_TIMEOUT, f"v{v} session timeout {timeout_ms}: {r}"
    c.close()
    assert_group_consumer_works(b.bootstrap, "st")


def test_join_group_v4_plus_requires_member_id(broker_factory):
    """v4+: a new member without id gets MEMBER_ID_REQUIRED and an id; rejoining with it
    completes the join (alone in its group: leader, generation >= 1), then SyncGroup,
    Heartbeat and LeaveGroup work. v0-3 assign the id in the first response."""
    b = broker_factory(GROUP_OVERRIDES)
    c = Conn(b.port)
    for v in range(10):
        group = f"mir-{v}"
        r = c.join(v, group)
        if v >= 4:
            assert r["error_code"] == MEMBER_ID_REQUIRED, f"v{v}: {r}"
            assert r["member_id"], f"v{v}: MEMBER_ID_REQUIRED carries the member id"
            r = c.join(v, group, member_id=r["member_id"])
        assert r["error_code"] == NONE, f"v{v}: {r}"
        member, gen = r["member_id"], r["generation_id"]
        assert member and gen >= 1 and r["leader"] == member, f"v{v}: {r}"
        assert r["protocol_name"] == "range"
        assert [(m[0], m[2]) for m in r["members"]] == [(member, META)], "the leader sees its own metadata"
        sv, hv, lv = (5, 4, 5) if v >= 6 else (3, 3, 3) if v >= 5 else (0, 0, 0)
        assignment = wire.consumer_assignment({"t": [0]})
        assert c.sync(sv, group, gen, member, [(member, assignment)]) == (NONE, assignment), f"v{v}"
        assert c.heartbeat(hv, group, gen, member) == NONE, f"v{v}"
        err, _ = c.leave(lv, group, member)
        assert err == NONE, f"v{v}"
    c.close()
    assert_group_consumer_works(b.bootstrap, "mir")


def test_join_group_oversized_metadata_is_refused(broker_factory):
    """2 MiB of protocol metadata: the coordinator caps member metadata, so the join fails
    with an error (any) and the broker keeps serving."""
    b = broker_factory(GROUP_OVERRIDES)
    big = wire.consumer_subscription(["t"], user_data=b"x" * (2 << 20))
    c = Conn(b.port, timeout=30)
    r = c.join(0, "big-v0", protocols=[("range", big)])
    assert r["error_code"] != NONE, f"v0 join with 2 MiB metadata accepted: generation {r['generation_id']}"
    # v5: get a member id with small metadata, then rejoin with the big one.
    r = c.join(5, "big-v5")
    assert r["error_code"] == MEMBER_ID_REQUIRED, r
    r = c.join(5, "big-v5", member_id=r["member_id"], protocols=[("range", big)])
    assert r["error_code"] not in (NONE, MEMBER_ID_REQUIRED), f"v5 join with 2 MiB metadata: {r['error_code']}"
    # The connection still works.
    p = c.call(FIND_COORDINATOR, 0, wire.find_coordinator_body(0, "x"))
    assert wire.parse_find_coordinator_response(p, 0)[0] == NONE
    c.close()
    assert_group_consumer_works(b.bootstrap, "big")


def test_sync_heartbeat_commit_from_unknown_member(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    create_topic(b.bootstrap, "um", 1)
    c = Conn(b.port)
    # A group that does not exist.
    for v in range(6):
        assert c.sync(v, "um-none", 1, "nobody")[0] == UNKNOWN_MEMBER_ID, f"SyncGroup v{v}"
    for v in range(5):
        assert c.heartbeat(v, "um-none", 1, "nobody") == UNKNOWN_MEMBER_ID, f"Heartbeat v{v}"

    # A group with one real, synced member.
    r = c.join_new_member(5, "um-g")
    assert r["error_code"] == NONE, r
    member, gen = r["member_id"], r["generation_id"]
    assert c.sync(3, "um-g", gen, member, [(member, wire.consumer_assignment({"um": [0]}))])[0] == NONE
    for v in range(6):
        assert c.sync(v, "um-g", gen, "nobody")[0] == UNKNOWN_MEMBER_ID, f"SyncGroup v{v}"
    for v in range(5):
        assert c.heartbeat(v, "um-g", gen, "nobody") == UNKNOWN_MEMBER_ID, f"Heartbeat v{v}"
        assert c.heartbeat(v, "um-g", gen + 7, member) == ILLEGAL_GENERATION, f"Heartbeat v{v}"
    for v in (2, 8):
        got = c.commit(v, "um-g", {"um": [(0, 1, None)]}, generation_id=gen, member_id="nobody")
        assert got == [("um", 0, UNKNOWN_MEMBER_ID)], f"OffsetCommit v{v}"
        got = c.commit(v, "um-g", {"um": [(0, 1, None)]}, generation_id=gen + 7, member_id=member)
        assert got == [("um", 0, ILLEGAL_GENERATION)], f"OffsetCommit v{v}"
        got = c.commit(v, "um-g", {"um": [(0, 1, None)]}, generation_id=gen, member_id=member)
        assert got == [("um", 0, NONE)], f"OffsetCommit v{v}"
    # The member is still in good standing.
    assert c.heartbeat(3, "um-g", gen, member) == NONE
    assert c.leave(3, "um-g", member)[0] == NONE
    c.close()
    assert_group_consumer_works(b.bootstrap, "um")


def test_offset_commit_unknown_topic_or_partition(broker_factory):
    """Standalone commits (generation -1, no member): a topic that does not exist and a
    partition past the end get UNKNOWN_TOPIC_OR_PARTITION each; the rest is committed."""
    b = broker_factory(GROUP_OVERRIDES)
    create_topic(b.bootstrap, "known", 2)
    c = Conn(b.port)
    for v in (1, 2, 5, 7, 8):
        group = f"oc-{v}"
        got = c.commit(v, group, {"no-such-topic": [(0, 5, None), (1, 6, None)],
                                  "known": [(0, 5, "meta"), (7, 5, None)]})
        assert sorted(got) == [("known", 0, NONE), ("known", 7, UNKNOWN_TOPIC_OR_PARTITION),
                               ("no-such-topic", 0, UNKNOWN_TOPIC_OR_PARTITION),
                               ("no-such-topic", 1, UNKNOWN_TOPIC_OR_PARTITION)], f"OffsetCommit v{v}"
        for fv in (1, 5, 6, 7):
            err, offs = c.fetch_offsets(fv, group, {"known": [0, 1]})
            assert err == NONE
            assert offs[("known", 0)] == (5, "meta", NONE), f"OffsetFetch v{fv} after commit v{v}"
            assert offs[("known", 1)][0] == -1 and offs[("known", 1)][2] == NONE, f"OffsetFetch v{fv}"
        for fv in (2, 7):
            err, offs = c.fetch_offsets(fv, group, None)
            assert err == NONE and offs == {("known", 0): (5, "meta", NONE)}, f"OffsetFetch v{fv} all"
    c.close()
    assert_group_consumer_works(b.bootstrap, "oc")


def test_empty_group_id_is_invalid(broker_factory):
    """JoinGroup, SyncGroup, Heartbeat and LeaveGroup reject an empty group id. (Kafka
    accepts "" for OffsetCommit/OffsetFetch, for old clients, so those are not checked.)"""
    b = broker_factory(GROUP_OVERRIDES)
    c = Conn(b.port)
    for v in (0, 1, 4, 5, 6, 9):
        assert c.join(v, "")["error_code"] == INVALID_GROUP_ID, f"JoinGroup v{v}"
    for v in (0, 3, 4, 5):
        assert c.sync(v, "", 1, "m")[0] == INVALID_GROUP_ID, f"SyncGroup v{v}"
    for v in (0, 3, 4):
        assert c.heartbeat(v, "", 1, "m") == INVALID_GROUP_ID, f"Heartbeat v{v}"
    for v in (0, 3, 4, 5):
        assert c.leave(v, "", "m")[0] == INVALID_GROUP_ID, f"LeaveGroup v{v}"
    c.close()
    assert_group_consumer_works(b.bootstrap, "empty")


REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86


def test_find_coordinator_v4_batch(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    c = Conn(b.port)
    p = c.call(FIND_COORDINATOR, 4, wire.find_coordinator_v4_body(["g1", "g2"]))
    assert sorted(wire.parse_find_coordinator_v4_response(p)) == [
        ("g1", 0, "127.0.0.1", b.port, NONE), ("g2", 0, "127.0.0.1", b.port, NONE)]
    c.close()


def test_two_member_rebalance_by_hand(broker_factory):
    """Two members on two connections through a whole rebalance: the parked JoinGroup of
    the newcomer, REBALANCE_IN_PROGRESS on the old member's heartbeat, commits allowed
    while preparing and refused while completing the rebalance, the follower's SyncGroup
    parked until the leader's, then the views and a leave."""
    b = broker_factory(GROUP_OVERRIDES)
    create_topic(b.bootstrap, "rb", 2)
    ca, cb = Conn(b.port), Conn(b.port)
    g = "rb-g"
    meta = wire.consumer_subscription(["rb"])
    r = ca.join_new_member(5, g, protocols=[("range", meta)])
    assert r["error_code"] == NONE, r
    a, gen1 = r["member_id"], r["generation_id"]
    assert ca.sync(3, g, gen1, a, [(a, wire.consumer_assignment({"rb": [0, 1]}))])[0] == NONE

    r = cb.join(5, g, protocols=[("range", meta)])
    assert r["error_code"] == MEMBER_ID_REQUIRED
    bm = r["member_id"]
    cb.send(JOIN_GROUP, 5, wire.join_group_body(5, g, member_id=bm, protocols=[("range", meta)]))
    assert cb.pending(), "the newcomer's JoinGroup waits for the old member"
    assert ca.heartbeat(3, g, gen1, a) == REBALANCE_IN_PROGRESS
    assert ca.commit(7, g, {"rb": [(0, 3, None)]}, generation_id=gen1, member_id=a) == [("rb", 0, NONE)], \
        "commits of the current generation are allowed while the group prepares a rebalance"

    ra = ca.join(5, g, member_id=a, protocols=[("range", meta)])
    rb = wire.parse_join_group_response(cb.recv(), 5)
    assert ra["error_code"] == rb["error_code"] == NONE, (ra, rb)
    gen2 = ra["generation_id"]
    assert gen2 == rb["generation_id"] and gen2 > gen1
    assert ra["leader"] == rb["leader"] == a, "the old leader stays leader"
    assert sorted((m[0], m[2]) for m in ra["members"]) == sorted([(a, meta), (bm, meta)])
    assert rb["members"] == [], "only the leader gets the member list"

    cb.send(SYNC_GROUP, 3, wire.sync_group_body(3, g, gen2, bm))
    assert cb.pending(), "the follower's SyncGroup waits for the leader's"
    assert ca.commit(7, g, {"rb": [(0, 4, None)]}, generation_id=gen2, member_id=a) == \
        [("rb", 0, REBALANCE_IN_PROGRESS)], "no commits while the assignment is pending"
    asg_a, asg_b = wire.consumer_assignment({"rb": [0]}), wire.consumer_assignment({"rb": [1]})
    assert ca.sync(3, g, gen2, a, [(a, asg_a), (bm, asg_b)]) == (NONE, asg_a)
    assert wire.parse_sync_group_response(cb.recv(), 3) == (NONE, asg_b)
    assert ca.heartbeat(4, g, gen2, a) == NONE and cb.heartbeat(4, g, gen2, bm) == NONE
    assert ca.heartbeat(4, g, gen1, a) == ILLEGAL_GENERATION

    d = wire.parse_describe_groups_response(
        ca.call(wire.DESCRIBE_GROUPS, 5, wire.describe_groups_body(5, [g, "rb-none"])), 5)
    assert (d[g]["error_code"], d[g]["state"], d[g]["protocol_type"], d[g]["protocol"]) == \
        (NONE, "Stable", "consumer", "range")
    assert {m["member_id"]: m["assignment"] for m in d[g]["members"]} == {a: asg_a, bm: asg_b}
    assert all(m["client_id"] == "it" and m["metadata"] == meta for m in d[g]["members"])
    assert d["rb-none"]["state"] == "Dead" and d["rb-none"]["members"] == []
    err, groups = wire.parse_list_groups_response(
        ca.call(wire.LIST_GROUPS, 4, wire.list_groups_body(4, ["Stable"])), 4)
    assert err == NONE and groups.get(g) == ("consumer", "Stable")
    err, groups = wire.parse_list_groups_response(
        ca.call(wire.LIST_GROUPS, 4, wire.list_groups_body(4, ["Empty"])), 4)
    assert err == NONE and g not in groups

    err, members = cb.leave(5, g, bm)
    assert err == NONE and [(m[0], m[2]) for m in members] == [(bm, NONE)]
    assert ca.heartbeat(4, g, gen2, a) == REBALANCE_IN_PROGRESS
    r = ca.join(5, g, member_id=a, protocols=[("range", meta)])
    assert r["error_code"] == NONE and r["generation_id"] > gen2 and [m[0] for m in r["members"]] == [a]
    ca.close()
    cb.close()
    assert_group_consumer_works(b.bootstrap, "rb")


def test_member_connection_closed_while_join_is_parked(broker_factory):
    """A member whose connection closes while its JoinGroup is parked stays a member until
    its session times out; the broker answers into the closed connection without harm and
    the group then rebalances without it."""
    b = broker_factory(GROUP_OVERRIDES)
    ca, cb = Conn(b.port), Conn(b.port)
    g = "gone-g"
    r = ca.join_new_member(5, g, session_timeout_ms=10000)
    a, gen1 = r["member_id"], r["generation_id"]
    assert ca.sync(3, g, gen1, a, [(a, b"")])[0] == NONE
    r = cb.join(5, g, session_timeout_ms=2000)
    cb.send(JOIN_GROUP, 5, wire.join_group_body(5, g, member_id=r["member_id"], session_timeout_ms=2000))
    assert cb.pending()
    cb.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, wire.struct.pack("ii", 1, 0))
    cb.close()  # RST
    assert ca.heartbeat(3, g, gen1, a) == REBALANCE_IN_PROGRESS
    r = ca.join(5, g, member_id=a, session_timeout_ms=10000)
    assert r["error_code"] == NONE and len(r["members"]) == 2, r
    gen2 = r["generation_id"]
    assert ca.sync(3, g, gen2, a, [(a, b"")])[0] == NONE
    # The silent member expires after its 2 s session.
    deadline = time.monotonic() + 10
    while ca.heartbeat(3, g, gen2, a) == NONE:
        assert time.monotonic() < deadline, "the closed member never expired"
        time.sleep(0.2)
    r = ca.join(5, g, member_id=a, session_timeout_ms=10000)
    assert r["error_code"] == NONE and [m[0] for m in r["members"]] == [a], r
    ca.close()
    assert_group_consumer_works(b.bootstrap, "gone")


def test_static_member_replaced_fences_old_id(broker_factory):
    """A static member joining again with the same instance id replaces the old member id
    without a rebalance: same generation, old assignment; the old id is fenced."""
    b = broker_factory(GROUP_OVERRIDES)
    ca, cb = Conn(b.port), Conn(b.port)
    g = "static-g"
    r = ca.join(5, g, group_instance_id="inst")
    assert r["error_code"] == NONE, f"static members need no MEMBER_ID_REQUIRED round: {r}"
    old, gen = r["member_id"], r["generation_id"]
    asg = wire.consumer_assignment({"t": [0, 1]})
    assert ca.sync(3, g, gen, old, [(old, asg)], group_instance_id="inst") == (NONE, asg)

    r = cb.join(5, g, group_instance_id="inst")
    assert r["error_code"] == NONE, r
    new = r["member_id"]
    assert new != old and r["generation_id"] == gen, "no rebalance for an unchanged static member"
    assert cb.sync(3, g, gen, new, group_instance_id="inst") == (NONE, asg), "the old assignment"
    assert cb.heartbeat(3, g, gen, new, group_instance_id="inst") == NONE
    assert ca.heartbeat(3, g, gen, old, group_instance_id="inst") == FENCED_INSTANCE_ID
    got = ca.commit(7, g, {"t": [(0, 1, None)]}, generation_id=gen, member_id=old, group_instance_id="inst")
    assert [e for _, _, e in got] == [FENCED_INSTANCE_ID]
    # Leaving by instance id (v3+ identifies members by instance id too).
    err, members = cb.leave(3, g, new, group_instance_id="inst")
    assert err == NONE and [m[2] for m in members] == [NONE]
    ca.close()
    cb.close()


def test_offset_delete_and_delete_groups(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    create_topic(b.bootstrap, "od", 2)
    create_topic(b.bootstrap, "od2", 1)
    c = Conn(b.port)
    assert sorted(c.commit(2, "od-g", {"od": [(0, 5, None), (1, 6, None)], "od2": [(0, 7, None)]})) == \
        [("od", 0, NONE), ("od", 1, NONE), ("od2", 0, NONE)]
    err, parts = wire.parse_offset_delete_response(
        c.call(wire.OFFSET_DELETE, 0, wire.offset_delete_body("od-g", {"od": [0]})))
    assert (err, parts) == (NONE, [("od", 0, NONE)])
    _, offs = c.fetch_offsets(5, "od-g", None)
    assert {k: v[0] for k, v in offs.items()} == {("od", 1): 6, ("od2", 0): 7}
    err, _ = wire.parse_offset_delete_response(
        c.call(wire.OFFSET_DELETE, 0, wire.offset_delete_body("od-none", {"od": [0]})))
    assert err == GROUP_ID_NOT_FOUND

    # A member subscribed to "od" protects its offsets, not those of "od2".
    m = Conn(b.port)
    r = m.join_new_member(5, "od-g", protocols=[("range", wire.consumer_subscription(["od"]))])
    assert r["error_code"] == NONE
    assert m.sync(3, "od-g", r["generation_id"], r["member_id"], [(r["member_id"], b"")])[0] == NONE
    err, parts = wire.parse_offset_delete_response(
        c.call(wire.OFFSET_DELETE, 0, wire.offset_delete_body("od-g", {"od": [1], "od2": [0]})))
    assert err == NONE and sorted(parts) == [("od", 1, GROUP_SUBSCRIBED_TO_TOPIC), ("od2", 0, NONE)]

    for v in (0, 1, 2):
        got = wire.parse_delete_groups_response(
            c.call(wire.DELETE_GROUPS, v, wire.delete_groups_body(v, ["od-g", "od-none"])), v)
        assert got == {"od-g": NON_EMPTY_GROUP, "od-none": GROUP_ID_NOT_FOUND}, f"DeleteGroups v{v}"
    assert m.leave(3, "od-g", r["member_id"])[0] == NONE
    got = wire.parse_delete_groups_response(c.call(wire.DELETE_GROUPS, 2, wire.delete_groups_body(2, ["od-g"])), 2)
    assert got == {"od-g": NONE}
    _, offs = c.fetch_offsets(5, "od-g", None)
    assert offs == {}, "a deleted group's offsets are gone"
    m.close()
    c.close()


def test_offset_fetch_v8_several_groups(broker_factory):
    b = broker_factory(GROUP_OVERRIDES)
    create_topic(b.bootstrap, "of8", 2)
    c = Conn(b.port)
    assert c.commit(8, "of8-a", {"of8": [(0, 11, "x")]}) == [("of8", 0, NONE)]
    assert c.commit(8, "of8-b", {"of8": [(1, 22, None)]}) == [("of8", 1, NONE)]
    got = wire.parse_offset_fetch_v8_response(c.call(
        OFFSET_FETCH, 8, wire.offset_fetch_v8_body([("of8-a", {"of8": [0, 1]}), ("of8-b", None), ("of8-c", None)])))
    assert got["of8-a"] == (NONE, {("of8", 0): (11, "x", NONE), ("of8", 1): (-1, "", NONE)}) or \
        got["of8-a"] == (NONE, {("of8", 0): (11, "x", NONE), ("of8", 1): (-1, None, NONE)})
    assert got["of8-b"] == (NONE, {("of8", 1): (22, "", NONE)}) or got["of8-b"] == (NONE, {("of8", 1): (22, None, NONE)})
    assert got["of8-c"] == (NONE, {})
    c.close()


GROUP_MAX_SIZE_REACHED = 81


def form_group(port, group, n, rebalance_timeout_ms=10000, session_timeout_ms=10000):
    """n dynamic members on n connections, joined and synced (each assigned nothing).
    Returns ([(conn, member_id)], generation, leader member id)."""
    kw = dict(rebalance_timeout_ms=rebalance_timeout_ms, session_timeout_ms=session_timeout_ms)
    members = []
    gen = leader = None
    for _ in range(n):
        c = Conn(port)
        r = c.join(5, group, **kw)
        if members:
            assert r["error_code"] == MEMBER_ID_REQUIRED, r
            c.send(JOIN_GROUP, 5, wire.join_group_body(5, group, member_id=r["member_id"], **kw))
            for oc, om in members:
                oc.send(JOIN_GROUP, 5, wire.join_group_body(5, group, member_id=om, **kw))
            rs = [wire.parse_join_group_response(x.recv(), 5) for x in [c] + [oc for oc, _ in members]]
        else:
            assert r["error_code"] == MEMBER_ID_REQUIRED, r
            rs = [c.join(5, group, member_id=r["member_id"], **kw)]
        assert all(x["error_code"] == NONE for x in rs), rs
        members.append((c, rs[0]["member_id"]))
        gen, leader = rs[0]["generation_id"], rs[0]["leader"]
        for oc, om in members:
            oc.send(SYNC_GROUP, 3, wire.sync_group_body(3, group, gen, om,
                                                        [(m, b"") for _, m in members] if om == leader else []))
        for oc, _ in members:
            assert wire.parse_sync_group_response(oc.recv(), 3)[0] == NONE
    return members, gen, leader


def test_group_max_size(broker_factory):
    b = broker_factory(dict(GROUP_OVERRIDES, **{"group.max.size": "2"}))
    members, gen, _ = form_group(b.port, "max-g", 2)
    c = Conn(b.port)
    r = c.join(5, "max-g")
    if r["error_code"] == MEMBER_ID_REQUIRED:
        r = c.join(5, "max-g", member_id=r["member_id"])
    assert r["error_code"] == GROUP_MAX_SIZE_REACHED, r
    for mc, m in members:
        assert mc.heartbeat(3, "max-g", gen, m) == NONE, "the full group is undisturbed"
        mc.close()
    c.close()


def test_member_not_rejoining_is_removed_after_rebalance_timeout(broker_factory):
    """A, B stable; C joins; A rejoins, B never does: after the rebalance timeout (2 s)
    the join completes for A and C without B, whose heartbeat then gets UNKNOWN_MEMBER_ID."""
    b = broker_factory(GROUP_OVERRIDES)
    g = "rt-g"
    (ca, a), (cb, bm) = form_group(b.port, g, 2, rebalance_timeout_ms=2000, session_timeout_ms=30000)[0]
    cc = Conn(b.port)
    kw = dict(rebalance_timeout_ms=2000, session_timeout_ms=30000)
    r = cc.join(5, g, **kw)
    t0 = time.monotonic()
    cc.send(JOIN_GROUP, 5, wire.join_group_body(5, g, member_id=r["member_id"], **kw))
    ca.send(JOIN_GROUP, 5, wire.join_group_body(5, g, member_id=a, **kw))
    rc = wire.parse_join_group_response(cc.recv(), 5)
    ra = wire.parse_join_group_response(ca.recv(), 5)
    waited = time.monotonic() - t0
    assert rc["error_code"] == ra["error_code"] == NONE, (ra, rc)
    assert 1.5 <= waited <= 6, f"the join phase ended after {waited:.1f}s, rebalance timeout 2 s"
    leader = ra if ra["leader"] == a else rc
    assert sorted(m[0] for m in leader["members"]) == sorted([a, rc["member_id"]]), "B was removed"
    assert cb.heartbeat(3, g, ra["generation_id"], bm) == UNKNOWN_MEMBER_ID
    for c in (ca, cb, cc):
        c.close()


def test_follower_not_syncing_is_removed_after_rebalance_timeout(broker_factory):
    """After the leader's SyncGroup, a follower that never syncs (and never heartbeats, but
    has a 30 s session) is removed after the 2 s rebalance timeout: the leader's heartbeat
    turns to REBALANCE_IN_PROGRESS well before the session timeout (Kafka's DelayedSync
    covers CompletingRebalance and Stable alike)."""
    b = broker_factory(GROUP_OVERRIDES)
    g = "st-g"
    kw = dict(rebalance_timeout_ms=2000, session_timeout_ms=30000)
    ca, cb = Conn(b.port), Conn(b.port)
    r = ca.join_new_member(5, g, **kw)
    a = r["member_id"]
    assert ca.sync(3, g, r["generation_id"], a, [(a, b"")])[0] == NONE
    r = cb.join(5, g, **kw)
    cb.send(JOIN_GROUP, 5, wire.join_group_body(5, g, member_id=r["member_id"], **kw))
    ra = ca.join(5, g, member_id=a, **kw)
    rb = wire.parse_join_group_response(cb.recv(), 5)
    assert ra["leader"] == a and rb["error_code"] == NONE
    gen = ra["generation_id"]
    assert ca.sync(3, g, gen, a, [(a, b""), (rb["member_id"], b"")])[0] == NONE
    t0 = time.monotonic()
    while ca.heartbeat(3, g, gen, a) == NONE:
        assert time.monotonic() - t0 < 10, "the follower that never synced was not removed"
        time.sleep(0.2)
    assert ca.heartbeat(3, g, gen, a) == REBALANCE_IN_PROGRESS
    r = ca.join(5, g, member_id=a, **kw)
    assert r["error_code"] == NONE and [m[0] for m in r["members"]] == [a]
    ca.close()
    cb.close()


def test_leader_leaving_before_sync_fails_parked_sync(broker_factory):
    """The follower's parked SyncGroup is answered REBALANCE_IN_PROGRESS when the leader
    leaves before sending the assignment."""
    b = broker_factory(GROUP_OVERRIDES)
    g = "ll-g"
    ca, cb = Conn(b.port), Conn(b.port)
    r = ca.join_new_member(5, g)
    a = r["member_id"]
    assert ca.sync(3, g, r["generation_id"], a, [(a, b"")])[0] == NONE
    r = cb.join(5, g)
    cb.send(JOIN_GROUP, 5, wire.join_group_body(5, g, member_id=r["member_id"]))
    ra = ca.join(5, g, member_id=a)
    rb = wire.parse_join_group_response(cb.recv(), 5)
    assert ra["leader"] == a
    cb.send(SYNC_GROUP, 3, wire.sync_group_body(3, g, rb["generation_id"], rb["member_id"]))
    assert cb.pending()
    assert ca.leave(3, g, a)[0] == NONE
    assert wire.parse_sync_group_response(cb.recv(), 3)[0] == REBALANCE_IN_PROGRESS
    ca.close()
    cb.close()


def test_offsets_of_deleted_topic_are_deleted(broker_factory):
    from confluent_kafka.admin import AdminClient
    b = broker_factory(GROUP_OVERRIDES)
    create_topic(b.bootstrap, "gone", 2)
    c = Conn(b.port)
    assert sorted(c.commit(8, "dt-g", {"gone": [(0, 5, None), (1, 6, None)]})) == [("gone", 0, NONE), ("gone", 1, NONE)]
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.delete_topics(["gone"])["gone"].result(30)
    assert c.fetch_offsets(7, "dt-g", None) == (NONE, {})
    create_topic(b.bootstrap, "gone", 2)
    err, offs = c.fetch_offsets(7, "dt-g", {"gone": [0, 1]})
    assert err == NONE and [offs[("gone", p)][0] for p in (0, 1)] == [-1, -1], "no offsets come back with the name"
    c.close()


def test_offset_store_compaction_survives_kill9(broker_factory):
    """Enough commits with large metadata to make the offset store compact itself several
    times; after kill -9 the latest offset and metadata of every partition are back."""
    b = broker_factory(GROUP_OVERRIDES)
    create_topic(b.bootstrap, "cmp", 4)
    c = Conn(b.port)
    rounds = 1500
    pad = "m" * 2000
    for i in range(rounds):
        got = c.commit(8, "cmp-g", {"cmp": [(p, i, f"{pad}{i}") for p in range(4)]})
        assert [e for _, _, e in got] == [NONE] * 4, f"round {i}: {got}"
    c.close()
    written = rounds * 4 * 2000
    store = os.path.join(b.data_dir, ".groups", "groups.log")
    size = os.path.getsize(store)
    assert size < written / 2, f"offset store {size} bytes after {written} bytes of commits: no compaction"
    b.kill9()
    b.start()
    c = Conn(b.port)
    err, offs = c.fetch_offsets(7, "cmp-g", None)
    assert err == NONE
    assert offs == {("cmp", p): (rounds - 1, f"{pad}{rounds - 1}", NONE) for p in range(4)}
    c.close()


INCONSISTENT_GROUP_PROTOCOL = 23


def test_inconsistent_group_protocol(broker_factory):
    """A joiner must share the group's protocol type and at least one protocol name; the
    first member must bring a type and a protocol. The group is not disturbed."""
    b = broker_factory(GROUP_OVERRIDES)
    ca = Conn(b.port)
    r = ca.join(5, "ip-empty", protocols=[])
    if r["error_code"] == MEMBER_ID_REQUIRED:
        r = ca.join(5, "ip-empty", member_id=r["member_id"], protocols=[])
    assert r["error_code"] == INCONSISTENT_GROUP_PROTOCOL, r
    r = ca.join(5, "ip-notype", protocol_type="")
    if r["error_code"] == MEMBER_ID_REQUIRED:
        r = ca.join(5, "ip-notype", member_id=r["member_id"], protocol_type="")
    assert r["error_code"] == INCONSISTENT_GROUP_PROTOCOL, r

    r = ca.join_new_member(5, "ip-g", protocols=[("range", META), ("roundrobin", META)])
    a, gen = r["member_id"], r["generation_id"]
    assert ca.sync(3, "ip-g", gen, a, [(a, b"")])[0] == NONE
    cb = Conn(b.port)
    for kw in (dict(protocol_type="connect"), dict(protocols=[("cooperative-sticky", META)])):
        r = cb.join(5, "ip-g", **kw)
        if r["error_code"] == MEMBER_ID_REQUIRED:
            r = cb.join(5, "ip-g", member_id=r["member_id"], **kw)
        assert r["error_code"] == INCONSISTENT_GROUP_PROTOCOL, (kw, r)
    assert ca.heartbeat(3, "ip-g", gen, a) == NONE, "the refused joins did not start a rebalance"
    ca.close()
    cb.close()
