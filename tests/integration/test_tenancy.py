"""Logical clusters on one broker: two tenants with a topic and a group of the same name,
through librdkafka and kafka-python, each seeing only its own data, topics, groups and
cluster id; every served API tried with the other tenant's names answers as if they did
not exist; the partition quota; a plain broker (no tenants file) keeps internal names."""
import os
import socket
import struct
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic as KpNewTopic

from conftest import free_port, frame, recv_frame, wait_until
from test_sasl import key_entry, write_tenants

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "clients"))
import wire  # noqa: E402

TENANT_A, TENANT_B = "lkc-aaaaaa", "lkc-bbbbbb"
UNKNOWN_TOPIC_OR_PARTITION, GROUP_ID_NOT_FOUND, UNKNOWN_MEMBER_ID = 3, 69, 25
POLICY_VIOLATION = 44


def start_tenant_broker(broker_factory, workdir, quotas_a=None, quotas_b=None, extra=None):
    tenants = os.path.join(workdir, "tenants.json")
    a = {"id": TENANT_A, "api_keys": [key_entry("KEYA", "secret-a")]}
    b = {"id": TENANT_B, "api_keys": [key_entry("KEYB", "secret-b")]}
    if quotas_a:
        a["quotas"] = quotas_a
    if quotas_b:
        b["quotas"] = quotas_b
    write_tenants(tenants, [a, b])
    port, sasl_port = free_port(), free_port()
    overrides = {"listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
                 "tenants.file": tenants}
    overrides.update(extra or {})
    broker = broker_factory(port=port, overrides=overrides)
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    broker.sasl_port = sasl_port
    broker.tenants_path = tenants
    return broker


@pytest.fixture
def tenant_broker(broker_factory, workdir):
    return start_tenant_broker(broker_factory, workdir)


def rd(broker, key, secret, **extra):
    conf = {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": key, "sasl.password": secret}
    conf.update(extra)
    return conf


def kp(broker, key, secret):
    return {"bootstrap_servers": broker.sasl_bootstrap, "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN", "sasl_plain_username": key, "sasl_plain_password": secret}


CREDS = {TENANT_A: ("KEYA", "secret-a"), TENANT_B: ("KEYB", "secret-b")}


def rd_produce(broker, tenant, topic, values):
    p = Producer(rd(broker, *CREDS[tenant]))
    for v in values:
        p.produce(topic, v)
    assert p.flush(30) == 0


def rd_consume_group(broker, tenant, topic, group, expected, timeout=40):
    c = Consumer(rd(broker, *CREDS[tenant], **{"group.id": group, "auto.offset.reset": "earliest",
                                                 "enable.auto.commit": False}))
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    # Nothing beyond what this tenant produced arrives.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value())
    c.commit(asynchronous=False)
    c.close()
    return got


def test_two_tenants_with_the_same_topic_and_group_names_are_isolated_librdkafka(tenant_broker):
    b = tenant_broker
    a_values = [b"A-%d" % i for i in range(300)]
    b_values = [b"B-%d" % i for i in range(200)]
    rd_produce(b, TENANT_A, "orders", a_values)
    rd_produce(b, TENANT_B, "orders", b_values)
    assert sorted(rd_consume_group(b, TENANT_A, "orders", "app", 300)) == sorted(a_values)
    assert sorted(rd_consume_group(b, TENANT_B, "orders", "app", 200)) == sorted(b_values)
    rd_consume_group(b, TENANT_A, "orders", "only-a", 300)

    for tenant in (TENANT_A, TENANT_B):
        admin = AdminClient(rd(b, *CREDS[tenant]))
        md = admin.list_topics(timeout=10)
        assert set(md.topics) == {"orders"}, md.topics
        assert md.cluster_id == tenant
        groups = {g.id for g in admin.list_groups(timeout=10)}
        assert groups == ({"app", "only-a"} if tenant == TENANT_A else {"app"}), groups
        # Committed offsets of the group "app" are the tenant's own.
        c = Consumer(rd(b, *CREDS[tenant], **{"group.id": "app"}))
        committed = c.committed([TopicPartition("orders", 0)], timeout=10)
        c.close()
        assert committed[0].offset == (300 if tenant == TENANT_A else 200)

    # The operator's plaintext listener sees the stored names.
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert {f"{TENANT_A}_orders", f"{TENANT_B}_orders"} <= set(md.topics)


def test_two_tenants_with_the_same_names_are_isolated_kafka_python(tenant_broker):
    b = tenant_broker
    for tenant, n in ((TENANT_A, 50), (TENANT_B, 70)):
        admin = KafkaAdminClient(**kp(b, *CREDS[tenant]))
        admin.create_topics([KpNewTopic("payments", 2, 1)])
        admin.close()
        p = KafkaProducer(**kp(b, *CREDS[tenant]))
        for i in range(n):
            p.send("payments", b"%s-%d" % (tenant.encode(), i))
        p.flush(30)
        p.close()
    for tenant, n in ((TENANT_A, 50), (TENANT_B, 70)):
        c = KafkaConsumer("payments", group_id="app", auto_offset_reset="earliest", consumer_timeout_ms=8000,
                          **kp(b, *CREDS[tenant]))
        got = [m.value for m in c]
        c.commit()
        c.close()
        assert sorted(got) == sorted(b"%s-%d" % (tenant.encode(), i) for i in range(n))
        admin = KafkaAdminClient(**kp(b, *CREDS[tenant]))
        assert set(admin.list_topics()) == {"payments"}
        assert [g[0] for g in admin.list_consumer_groups()] == ["app"]
        offsets = admin.list_consumer_group_offsets("app")
        assert sum(o.offset for o in offsets.values()) == n
        assert {tp.topic for tp in offsets} == {"payments"}
        admin.close()
    # Deleting A's topic leaves B's.
    admin = KafkaAdminClient(**kp(b, *CREDS[TENANT_A]))
    admin.delete_topics(["payments"])
    wait_until(lambda: "payments" not in admin.list_topics(), what="A's topic gone")
    admin.close()
    admin = KafkaAdminClient(**kp(b, *CREDS[TENANT_B]))
    assert set(admin.list_topics()) == {"payments"}
    admin.close()


class TenantConn:
    """A raw connection authenticated with SASL PLAIN (SaslHandshake v1 + SaslAuthenticate)."""

    def __init__(self, broker, key, secret):
        self.s = socket.create_connection(("127.0.0.1", broker.sasl_port), timeout=20)
        self.corr = 0
        hs, auth = wire.sasl_plain_handshake_bodies(key, secret)
        assert struct.unpack(">h", self.call(wire.SASL_HANDSHAKE, 1, hs)[4:6])[0] == 0
        assert struct.unpack(">h", self.call(wire.SASL_AUTHENTICATE, 0, auth)[4:6])[0] == 0

    def call(self, api, version, body, flexible=False):
        """Returns the response frame, correlation id first (what wire's parsers take)."""
        self.corr += 1
        self.s.sendall(frame(api, version, self.corr, body, flexible=flexible))
        resp = recv_frame(self.s)
        assert struct.unpack(">i", resp[:4])[0] == self.corr
        return resp

    def close(self):
        self.s.close()


def test_every_api_with_the_other_tenants_names_answers_as_if_they_did_not_exist(tenant_broker):
    b = tenant_broker
    # Tenant B owns topic "secret" with data, a group "bgroup" with a live member and
    # committed offsets.
    rd_produce(b, TENANT_B, "secret", [b"b-%d" % i for i in range(20)])
    bc = TenantConn(b, "KEYB", "secret-b")
    protocols = [("range", wire.consumer_subscription(["secret"]))]
    join = wire.parse_join_group_response(
        bc.call(wire.JOIN_GROUP, 5, wire.join_group_body(5, "bgroup", protocols=protocols)), 5)
    if join["error_code"] == 79:  # MEMBER_ID_REQUIRED: join again with the id
        join = wire.parse_join_group_response(bc.call(wire.JOIN_GROUP, 5, wire.join_group_body(
            5, "bgroup", member_id=join["member_id"], protocols=protocols)), 5)
    assert join["error_code"] == 0, join
    member, generation = join["member_id"], join["generation_id"]
    err, _assignment = wire.parse_sync_group_response(bc.call(wire.SYNC_GROUP, 3, wire.sync_group_body(
        3, "bgroup", generation, member, [(member, wire.consumer_assignment({"secret": [0]}))])), 3)
    assert err == 0
    commit = wire.parse_offset_commit_response(bc.call(wire.OFFSET_COMMIT, 2, wire.offset_commit_body(
        2, "bgroup", {"secret": [(0, 7, "")]}, generation_id=generation, member_id=member)), 2)
    assert commit == [("secret", 0, 0)], commit

    a = TenantConn(b, "KEYA", "secret-a")
    for name in ("secret", f"{TENANT_B}_secret"):
        cluster_id, topics = wire.parse_metadata_v4_response(a.call(wire.METADATA, 4, wire.metadata_v4_body([name])))
        assert cluster_id == TENANT_A and topics == {name: (UNKNOWN_TOPIC_OR_PARTITION, 0)}
        produced = wire.parse_produce_response(
            a.call(0, 3, wire.produce_body(name, 0, wire.record_batch([b"intruder"]), acks=1)), 3)
        assert [(t, err) for t, _p, err, _o in produced] == [(name, UNKNOWN_TOPIC_OR_PARTITION)]
        fetched = wire.parse_fetch_v4_response(a.call(wire.FETCH, 4, wire.fetch_v4_body(name, 0)))
        assert fetched == {(name, 0): (UNKNOWN_TOPIC_OR_PARTITION, -1, 0)}
        listed = wire.parse_list_offsets_v1_response(a.call(wire.LIST_OFFSETS, 1, wire.list_offsets_v1_body(name, 0)))
        assert listed[(name, 0)][0] == UNKNOWN_TOPIC_OR_PARTITION
        deleted = wire.parse_delete_records_v0_response(
            a.call(wire.DELETE_RECORDS, 0, wire.delete_records_v0_body(name, 0, 5)))
        assert deleted == {(name, 0): UNKNOWN_TOPIC_OR_PARTITION}
        grown = wire.parse_create_partitions_v0_response(
            a.call(wire.CREATE_PARTITIONS, 0, wire.create_partitions_v0_body(name, 4)))
        assert grown[name][0] == UNKNOWN_TOPIC_OR_PARTITION
        configs = wire.parse_describe_configs_v0_response(
            a.call(wire.DESCRIBE_CONFIGS, 0, wire.describe_configs_v0_body(2, name)))
        assert configs[0][0] == name and configs[0][1] == UNKNOWN_TOPIC_OR_PARTITION and not configs[0][2]
        gone = wire.parse_delete_topics_v1_response(a.call(wire.DELETE_TOPICS, 1, wire.delete_topics_v1_body([name])))
        assert gone == {name: UNKNOWN_TOPIC_OR_PARTITION}

    for group in ("bgroup", f"{TENANT_B}_bgroup"):
        err, offsets = wire.parse_offset_fetch_response(
            a.call(wire.OFFSET_FETCH, 3, wire.offset_fetch_body(3, group, None)), 3)
        assert err == 0 and offsets == {}
        err, offsets = wire.parse_offset_fetch_response(
            a.call(wire.OFFSET_FETCH, 3, wire.offset_fetch_body(3, group, {"secret": [0]})), 3)
        assert offsets[("secret", 0)][0] == -1
        described = wire.parse_describe_groups_response(
            a.call(wire.DESCRIBE_GROUPS, 1, wire.describe_groups_body(1, [group])), 1)
        assert described[group]["state"] == "Dead" and described[group]["members"] == []
        err, listed = wire.parse_list_groups_response(a.call(wire.LIST_GROUPS, 1, wire.list_groups_body(1)), 1)
        assert err == 0 and listed == {}
        hb = wire.parse_heartbeat_response(
            a.call(wire.HEARTBEAT, 2, wire.heartbeat_body(2, group, generation, member)), 2)
        assert hb == UNKNOWN_MEMBER_ID
        err, _members = wire.parse_leave_group_response(
            a.call(wire.LEAVE_GROUP, 1, wire.leave_group_body(1, group, member)), 1)
        assert err == UNKNOWN_MEMBER_ID
        err, _assignment = wire.parse_sync_group_response(a.call(wire.SYNC_GROUP, 3, wire.sync_group_body(
            3, group, generation, member, [(member, wire.consumer_assignment({"secret": [0]}))])), 3)
        assert err == UNKNOWN_MEMBER_ID
        err, parts = wire.parse_offset_delete_response(
            a.call(wire.OFFSET_DELETE, 0, wire.offset_delete_body(group, {"secret": [0]})))
        assert err == GROUP_ID_NOT_FOUND
        deleted = wire.parse_delete_groups_response(
            a.call(wire.DELETE_GROUPS, 1, wire.delete_groups_body(1, [group])), 1)
        assert deleted == {group: GROUP_ID_NOT_FOUND}
    # A joining a group of the same name makes a group of its own: B's member sees no
    # rebalance.
    join_a = wire.parse_join_group_response(
        a.call(wire.JOIN_GROUP, 4, wire.join_group_body(4, "bgroup", protocols=protocols)), 4)
    if join_a["error_code"] == 79:
        join_a = wire.parse_join_group_response(a.call(wire.JOIN_GROUP, 4, wire.join_group_body(
            4, "bgroup", member_id=join_a["member_id"], protocols=protocols)), 4)
    assert join_a["error_code"] == 0 and join_a["member_id"] != member
    assert [m[0] for m in join_a["members"]] == [join_a["member_id"]]
    a.close()

    # B's data, group member and offsets are untouched.
    hb = wire.parse_heartbeat_response(bc.call(wire.HEARTBEAT, 2, wire.heartbeat_body(2, "bgroup", generation, member)), 2)
    assert hb == 0
    err, offsets = wire.parse_offset_fetch_response(
        bc.call(wire.OFFSET_FETCH, 3, wire.offset_fetch_body(3, "bgroup", None)), 3)
    assert offsets == {("secret", 0): (7, "", 0)}
    fetched = wire.parse_fetch_v4_response(bc.call(wire.FETCH, 4, wire.fetch_v4_body("secret", 0)))
    assert fetched[("secret", 0)][0] == 0 and fetched[("secret", 0)][1] == 20
    bc.close()


def test_partition_quota_refuses_topics_beyond_it(broker_factory, workdir):
    b = start_tenant_broker(broker_factory, workdir, quotas_a={"max_partitions": 5},
                            extra={"num.partitions": "3"})
    admin = AdminClient(rd(b, *CREDS[TENANT_A]))
    admin.create_topics([NewTopic("t1", 4, 1)])["t1"].result(20)
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("t2", 2, 1)])["t2"].result(20)
    assert e.value.args[0].code() == POLICY_VIOLATION
    assert "4 of 5 partitions" in e.value.args[0].str()
    assert TENANT_A + "_" not in e.value.args[0].str()
    with pytest.raises(KafkaException) as e:
        admin.create_partitions([NewPartitions("t1", 6)])["t1"].result(20)
    assert e.value.args[0].code() == POLICY_VIOLATION
    admin.create_topics([NewTopic("t3", 1, 1)])["t3"].result(20)  # exactly at the limit
    # Auto-creation (num.partitions=3) does not fit either.
    conn = TenantConn(b, "KEYA", "secret-a")
    _cid, topics = wire.parse_metadata_v4_response(conn.call(wire.METADATA, 4, wire.metadata_v4_body(["auto"], True)))
    assert topics["auto"][0] == POLICY_VIOLATION
    conn.close()
    # Tenant B has no partition quota; raising A's limit in the file applies live.
    admin_b = AdminClient(rd(b, *CREDS[TENANT_B]))
    admin_b.create_topics([NewTopic("big", 20, 1)])["big"].result(20)
    write_tenants(b.tenants_path, [{"id": TENANT_A, "api_keys": [key_entry("KEYA", "secret-a")],
                                    "quotas": {"max_partitions": 10}},
                                   {"id": TENANT_B, "api_keys": [key_entry("KEYB", "secret-b")]}])
    wait_until(lambda: "tenants file reloaded" in b.log(), what="reload")
    admin.create_topics([NewTopic("t2", 2, 1)])["t2"].result(20)


def test_topic_lists_follow_creates_and_deletes_per_tenant(tenant_broker):
    """Metadata for all topics and the partition count come from the tenant's own
    namespace (not a walk over every topic): they follow creations and deletions in any
    order, other tenants' changes do not show, and a restart rebuilds them."""
    b = tenant_broker
    admin_a, admin_b = AdminClient(rd(b, *CREDS[TENANT_A])), AdminClient(rd(b, *CREDS[TENANT_B]))
    names = ["t%d" % i for i in range(8)]
    for f in admin_a.create_topics([NewTopic(n, 1 + i % 3, 1) for i, n in enumerate(names)]).values():
        f.result(20)
    admin_b.create_topics([NewTopic("t0", 1, 1), NewTopic("only-b", 2, 1)])["only-b"].result(20)
    # Plain names that look like a namespace (no tenant has it), seen by the operator only.
    operator = AdminClient({"bootstrap.servers": b.bootstrap})
    operator.create_topics([NewTopic("plain_topic", 1, 1)])["plain_topic"].result(20)
    wait_until(lambda: set(admin_b.list_topics(timeout=10).topics) == {"t0", "only-b"}, what="B's topics")
    for n in ("t1", "t6", "t3"):  # first, last-but-one, middle: the list is reordered
        admin_a.delete_topics([n])[n].result(20)
    left = set(names) - {"t1", "t6", "t3"}
    wait_until(lambda: set(admin_a.list_topics(timeout=10).topics) == left, what="A's topics after deletes")
    assert set(admin_b.list_topics(timeout=10).topics) == {"t0", "only-b"}
    # The partition count of A is its remaining topics' (a quota check reads it).
    conn = TenantConn(b, "KEYA", "secret-a")
    all_topics = struct.pack(">ib", -1, 0)  # a null topic list: every topic, no auto-creation
    _cid, topics = wire.parse_metadata_v4_response(conn.call(wire.METADATA, 4, all_topics))
    conn.close()
    assert set(topics) == left
    assert all(topics[n] == (0, 1 + names.index(n) % 3) for n in left), topics
    assert "plain_topic" in operator.list_topics(timeout=10).topics
    b.restart()
    admin_a, admin_b = AdminClient(rd(b, *CREDS[TENANT_A])), AdminClient(rd(b, *CREDS[TENANT_B]))
    wait_until(lambda: set(admin_a.list_topics(timeout=10).topics) == left, what="A's topics after a restart")
    assert set(admin_b.list_topics(timeout=10).topics) == {"t0", "only-b"}


def test_topic_names_are_limited_to_what_fits_beside_the_prefix(tenant_broker):
    admin = AdminClient(rd(tenant_broker, *CREDS[TENANT_A]))
    limit = 249 - len(TENANT_A + "_")
    admin.create_topics([NewTopic("x" * limit, 1, 1)])["x" * limit].result(20)
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("y" * (limit + 1), 1, 1)])["y" * (limit + 1)].result(20)
    assert e.value.args[0].code() == 17  # INVALID_TOPIC_EXCEPTION
    assert f"longer than {limit}" in e.value.args[0].str()
    for bad in (".", ".."):
        with pytest.raises(KafkaException):
            admin.create_topics([NewTopic(bad, 1, 1)])[bad].result(20)
    # The longest name survives a restart (its metadata file is named by topic id).
    tenant_broker.restart()
    admin = AdminClient(rd(tenant_broker, *CREDS[TENANT_A]))
    assert set(admin.list_topics(timeout=10).topics) == {"x" * limit}


def test_error_messages_name_the_topic_without_the_prefix(tenant_broker):
    admin = AdminClient(rd(tenant_broker, *CREDS[TENANT_A]))
    admin.create_topics([NewTopic("dup", 1, 1)])["dup"].result(20)
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic("dup", 1, 1)])["dup"].result(20)
    assert e.value.args[0].code() == 36  # TOPIC_ALREADY_EXISTS
    assert "'dup'" in e.value.args[0].str() and TENANT_A not in e.value.args[0].str()


def test_describe_configs_of_a_tenant_topic(tenant_broker):
    admin = AdminClient(rd(tenant_broker, *CREDS[TENANT_A]))
    admin.create_topics([NewTopic("cfg", 1, 1, config={"retention.ms": "12345"})])["cfg"].result(20)
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource("topic", "cfg")
    configs = admin.describe_configs([res])[res].result(20)
    assert configs["retention.ms"].value == "12345"


def test_without_a_tenants_file_names_are_not_prefixed(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("plain", b"x")
    assert p.flush(20) == 0
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert "plain" in md.topics and md.cluster_id not in (TENANT_A, TENANT_B)
    assert os.path.isdir(os.path.join(broker.data_dir, "plain-0"))
