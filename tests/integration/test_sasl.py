"""SASL on a SASL_PLAINTEXT listener: PLAIN and SCRAM-SHA-256/512 with librdkafka and
kafka-python against a tenants file of salted credentials; wrong and unknown keys; what is
refused before authentication; live reload of the tenants file."""
import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer
from kafka import KafkaProducer
from kafka.errors import KafkaError

from conftest import free_port, frame, recv_frame, wait_until


def credential(secret, algo, iterations=4096):
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac(algo, secret.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", algo).digest()
    return {"salt": base64.b64encode(salt).decode(), "iterations": iterations,
            "stored_key": base64.b64encode(hashlib.new(algo, client_key).digest()).decode(),
            "server_key": base64.b64encode(hmac.new(salted, b"Server Key", algo).digest()).decode()}


def key_entry(key, secret):
    return {"key": key, "scram_sha_256": credential(secret, "sha256"), "scram_sha_512": credential(secret, "sha512")}


def write_tenants(path, tenants):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"tenants": tenants}, f)
    os.replace(tmp, path)


@pytest.fixture
def sasl_broker(broker_factory, workdir):
    tenants = os.path.join(workdir, "tenants.json")
    write_tenants(tenants, [{"id": "lkc-aaaaaa", "api_keys": [key_entry("KEYA", "secret-a")]},
                            {"id": "lkc-bbbbbb", "api_keys": [key_entry("KEYB", "secret-b")]}])
    port = free_port()
    sasl_port = free_port()
    broker = broker_factory(port=port, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "tenants.file": tenants,
        "connection.failed.authentication.delay.ms": "50",
    })
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    broker.sasl_port = sasl_port
    broker.tenants_path = tenants
    return broker


def rdkafka_conf(broker, mech, user, password):
    return {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mech, "sasl.username": user, "sasl.password": password}


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_librdkafka_produces_and_consumes_with_each_mechanism(sasl_broker, mech):
    topic = "sasl-" + mech.lower()
    p = Producer(rdkafka_conf(sasl_broker, mech, "KEYA", "secret-a"))
    for i in range(100):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert p.flush(20) == 0
    c = Consumer(dict(rdkafka_conf(sasl_broker, mech, "KEYA", "secret-a"), **{
        "group.id": "g-" + mech, "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = []
    deadline = time.time() + 30
    while len(got) < 100 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    assert sorted(got) == sorted(b"v%d" % i for i in range(100))


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_authenticates(sasl_broker, mech):
    # kafka-python speaks SaslHandshake v0 and then raw tokens.
    p = KafkaProducer(bootstrap_servers=sasl_broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism=mech, sasl_plain_username="KEYB", sasl_plain_password="secret-b")
    p.send("kp-sasl", b"hello").get(timeout=20)
    p.close()


@pytest.mark.parametrize("user,password", [("KEYA", "wrong"), ("NOSUCHKEY", "secret-a"), ("KEYA", "secret-b")])
def test_wrong_credentials_are_refused_with_a_message(sasl_broker, user, password):
    errors = []
    p = Producer(dict(rdkafka_conf(sasl_broker, "SCRAM-SHA-256", user, password),
                      **{"error_cb": lambda e: errors.append(e), "message.timeout.ms": 3000}))
    p.produce("never", b"x")
    p.flush(5)
    assert any("Authentication failed" in e.str() for e in errors), errors
    with pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=sasl_broker.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                      sasl_mechanism="PLAIN", sasl_plain_username=user, sasl_plain_password=password,
                      api_version_auto_timeout_ms=5000, request_timeout_ms=5000)
    # Good tenants are unaffected, and the plaintext listener still serves.
    good = Producer(rdkafka_conf(sasl_broker, "PLAIN", "KEYB", "secret-b"))
    good.produce("after-failures", b"ok")
    assert good.flush(20) == 0
    plain = Producer({"bootstrap.servers": sasl_broker.bootstrap})
    plain.produce("after-failures", b"ok")
    assert plain.flush(20) == 0


def raw_connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.sasl_port), timeout=10)
    return s


def recv_response(s):
    resp = recv_frame(s)
    return struct.unpack(">i", resp[:4])[0], resp[4:]


def assert_closed(s):
    s.settimeout(10)
    try:
        data = s.recv(1)
    except ConnectionResetError:
        return
    assert data == b"", "expected the broker to close the connection"


def test_requests_before_authentication_close_the_connection(sasl_broker):
    # ApiVersions is answered before authentication.
    s = raw_connect(sasl_broker)
    s.sendall(frame(18, 0, 1))
    corr, body = recv_response(s)
    assert corr == 1 and struct.unpack(">h", body[:2])[0] == 0
    # Metadata is not: the connection closes.
    s.sendall(frame(3, 1, 2, struct.pack(">i", -1)))
    assert_closed(s)
    s.close()
    # A frame larger than sasl.server.max.receive.size closes it before it is read.
    s = raw_connect(sasl_broker)
    s.sendall(struct.pack(">i", 10 * 1024 * 1024) + b"\0" * 1024)
    assert_closed(s)
    s.close()
    # SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, then closed.
    s = raw_connect(sasl_broker)
    s.sendall(frame(36, 0, 3, struct.pack(">i", 3) + b"abc"))
    corr, body = recv_response(s)
    assert corr == 3 and struct.unpack(">h", body[:2])[0] == 34
    assert_closed(s)
    s.close()
    # An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list.
    s = raw_connect(sasl_broker)
    mech = b"GSSAPI"
    s.sendall(frame(17, 1, 4, struct.pack(">h", len(mech)) + mech))
    corr, body = recv_response(s)
    assert corr == 4 and struct.unpack(">h", body[:2])[0] == 33
    assert b"SCRAM-SHA-512" in body and b"PLAIN" in body
    s.close()
    assert sasl_broker.alive()


def test_tenants_file_reload_closes_removed_keys_and_keeps_a_good_file(sasl_broker):
    conf = dict(rdkafka_conf(sasl_broker, "SCRAM-SHA-256", "KEYB", "secret-b"), **{"message.timeout.ms": 5000})
    p = Producer(conf)
    p.produce("reload", b"before")
    assert p.flush(20) == 0
    # A broken file is refused: KEYB keeps working, new connections too.
    with open(sasl_broker.tenants_path, "w") as f:
        f.write('{"tenants": [ {"id": ')
    wait_until(lambda: "tenants file not reloaded" in sasl_broker.log(), what="refused reload")
    p2 = Producer(conf)
    p2.produce("reload", b"during")
    assert p2.flush(20) == 0
    # KEYB removed: its connections are closed and it cannot come back.
    write_tenants(sasl_broker.tenants_path, [{"id": "lkc-aaaaaa", "api_keys": [key_entry("KEYA", "secret-a")]}])
    wait_until(lambda: "API key KEYB was removed" in sasl_broker.log(), what="connections of KEYB closed")
    errors = []
    p3 = Producer(dict(conf, error_cb=lambda e: errors.append(e)))
    p3.produce("reload", b"after")
    p3.flush(6)
    assert any("Authentication failed" in e.str() for e in errors), errors
    # KEYA is untouched.
    pa = Producer(rdkafka_conf(sasl_broker, "PLAIN", "KEYA", "secret-a"))
    pa.produce("reload", b"a")
    assert pa.flush(20) == 0


def test_sasl_listener_without_tenants_file_is_a_startup_error(broker_factory):
    port, sasl_port = free_port(), free_port()
    b = broker_factory(port=port, start=False, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"})
    b.start(wait=False)
    assert b.proc.wait(20) != 0
    assert "needs tenants.file" in b.log()
