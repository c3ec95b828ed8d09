"""TLS listeners (SSL and SASL_SSL) with kcat, librdkafka (python3-confluent-kafka) and
Python's ssl module against certificates made here with the openssl CLI; certificate
reload while clients run; refused replacements; hostile bytes on a TLS port."""
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from conftest import free_port, frame, recv_frame, wait_until
from test_sasl import key_entry, write_tenants

# kafka-python 2.0.2 builds its SSLContext with the deprecated PROTOCOL_SSLv23 name.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning")


# ---- certificates -----------------------------------------------------------------

def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pki:
    """A test CA in <dir>, and server certificates it signs."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.ca_key, "-out", self.ca,
                "-days", "2", "-subj", "/CN=Stratus test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def key(self, name):
        path = os.path.join(self.dir, name + ".key")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
        return path

    def server(self, name, serial, san="IP:127.0.0.1,DNS:localhost", days=2, key=None):
        """Returns (cert, key) paths of a server certificate with <serial> (an int)."""
        key = key or self.key(name)
        csr = os.path.join(self.dir, name + ".csr")
        ext = os.path.join(self.dir, name + ".ext")
        cert = os.path.join(self.dir, name + ".pem")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial", str(serial),
                "-days", str(days), "-extfile", ext, "-out", cert)
        return cert, key


def hexserial(serial):
    """A serial as `openssl x509 -serial` prints it."""
    h = "%X" % serial
    return h if len(h) % 2 == 0 else "0" + h


def install(src, dst):
    """Replaces <dst> with a copy of <src> atomically (a temporary file renamed over it)."""
    tmp = dst + ".new"
    with open(src, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
    os.replace(tmp, dst)


def install_bytes(data, dst):
    tmp = dst + ".new"
    with open(tmp, "wb") as g:
        g.write(data)
    os.replace(tmp, dst)


def der_serial(der):
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("=", 1)[1]


def client_context(ca, max_version=None):
    ctx = ssl.create_default_context(cafile=ca)
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def tls_connect(port, ca, host="127.0.0.1", max_version=None):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        return client_context(ca, max_version).wrap_socket(raw, server_hostname=host)
    except Exception:
        raw.close()
        raise


def peer_serial(port, ca):
    """The serial of the certificate a new TLS connection to <port> is shown."""
    with tls_connect(port, ca) as s:
        return der_serial(s.getpeercert(binary_form=True))


def api_versions_ok(s, corr):
    s.sendall(frame(18, 0, corr))
    resp = recv_frame(s)
    got_corr, error_code = struct.unpack(">ih", resp[:6])
    return got_corr == corr and error_code == 0


# ---- brokers ----------------------------------------------------------------------

@pytest.fixture
def pki(workdir):
    return Pki(os.path.join(workdir, "pki"))


def start_tls_broker(broker_factory, workdir, pki, sasl=False, extra=None):
    """A broker with PLAINTEXT on broker.port (for wait_ready) and an SSL (or SASL_SSL)
    listener on broker.tls_port, serving the certificate at broker.cert/broker.key
    (serial 0x1001)."""
    cert, key = pki.server("server1", 0x1001)
    live_cert = os.path.join(workdir, "live-cert.pem")
    live_key = os.path.join(workdir, "live-key.pem")
    install(cert, live_cert)
    install(key, live_key)
    port, tls_port = free_port(), free_port()
    name = "SASL_SSL" if sasl else "SSL"
    overrides = {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CLIENTS://127.0.0.1:{tls_port}",
        "listener.security.protocol.map": f"PLAINTEXT:PLAINTEXT,CLIENTS:{name}",
        "ssl.certificate.location": live_cert,
        "ssl.key.location": live_key,
    }
    if sasl:
        tenants = os.path.join(workdir, "tenants.json")
        write_tenants(tenants, [{"id": "lkc-aaaaaa", "api_keys": [key_entry("KEYA", "secret-a")]}])
        overrides["tenants.file"] = tenants
        overrides["connection.failed.authentication.delay.ms"] = "50"
    overrides.update(extra or {})
    broker = broker_factory(port=port, overrides=overrides)
    broker.tls_port = tls_port
    broker.tls_bootstrap = f"127.0.0.1:{tls_port}"
    broker.cert = live_cert
    broker.key = live_key
    broker.ca = pki.ca
    return broker


@pytest.fixture
def ssl_broker(broker_factory, workdir, pki):
    return start_tls_broker(broker_factory, workdir, pki)


@pytest.fixture
def sasl_ssl_broker(broker_factory, workdir, pki):
    return start_tls_broker(broker_factory, workdir, pki, sasl=True)


def ssl_conf(broker, **extra):
    conf = {"bootstrap.servers": broker.tls_bootstrap, "security.protocol": "SSL", "ssl.ca.location": broker.ca}
    conf.update(extra)
    return conf


def sasl_ssl_conf(broker, mech, user, password, **extra):
    return ssl_conf(broker, **{"security.protocol": "SASL_SSL", "sasl.mechanisms": mech, "sasl.username": user,
                               "sasl.password": password, **extra})


def kcat(broker, *args, input=None, sasl=None, timeout=30):
    cmd = ["kcat", "-b", broker.tls_bootstrap, "-X", f"ssl.ca.location={broker.ca}"]
    if sasl:
        mech, user, password = sasl
        cmd += ["-X", "security.protocol=sasl_ssl", "-X", f"sasl.mechanisms={mech}",
                "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]
    else:
        cmd += ["-X", "security.protocol=ssl"]
    return subprocess.run(cmd + list(args), input=input, capture_output=True, timeout=timeout)


def consume(conf, topic, expected, timeout=60):
    c = Consumer(dict(conf, **{"group.id": "tls-" + topic, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    try:
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                assert m.error() is None, m.error()
                got.append(m)
        return got
    finally:
        c.close()


def log_after(broker, mark):
    return broker.log()[mark:]


# ---- SSL --------------------------------------------------------------------------

def test_ssl_kcat_produces_and_consumes(ssl_broker):
    lines = b"".join(b"line-%d\n" % i for i in range(200))
    r = kcat(ssl_broker, "-P", "-t", "kcat-ssl", input=lines)
    assert r.returncode == 0, r.stderr
    r = kcat(ssl_broker, "-C", "-t", "kcat-ssl", "-o", "beginning", "-e", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout == lines
    assert "serial=1001" in ssl_broker.log()


def test_ssl_confluent_kafka_produces_and_consumes_10k_records(ssl_broker):
    # 1 KiB values: fetch responses of megabytes go out as file slices through TLS.
    n = 10000
    p = Producer(ssl_conf(ssl_broker, **{"linger.ms": 5}))
    failed = []
    for i in range(n):
        p.produce("ssl-10k", key=b"k%d" % (i % 100), value=(b"%08d" % i) * 128,
                  on_delivery=lambda err, msg: err and failed.append(err))
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert not failed
    got = consume(ssl_conf(ssl_broker, **{"fetch.max.bytes": 8 * 1024 * 1024}), "ssl-10k", n)
    assert len(got) == n
    assert sorted(int(m.value()[:8]) for m in got) == list(range(n))
    assert all(m.value() == m.value()[:8] * 128 for m in got)


def fetch_request(corr, topic, max_bytes):
    """Fetch v4 of partition 0 of <topic> from offset 0."""
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, max_bytes)
    return frame(1, 4, corr, body)


def fetched_offsets(resp):
    """(correlation id, error code, [batch (first, last) offsets]) of a Fetch v4 response
    for one partition."""
    corr, _throttle, _ntopics = struct.unpack(">iii", resp[:12])
    (tlen,) = struct.unpack(">h", resp[12:14])
    pos = 14 + tlen + 4
    _part, error_code, _hw, _lso, naborted = struct.unpack(">ihqqi", resp[pos:pos + 26])
    pos += 26 + max(naborted, 0) * 16
    (rlen,) = struct.unpack(">i", resp[pos:pos + 4])
    records = resp[pos + 4:pos + 4 + rlen]
    batches, off = [], 0
    while off + 12 <= len(records):
        base, blen = struct.unpack(">qi", records[off:off + 12])
        if off + 12 + blen > len(records):
            break  # a partial batch at the end, as Kafka allows
        (delta,) = struct.unpack(">i", records[off + 23:off + 27])
        batches.append((base, base + delta))
        off += 12 + blen
    return corr, error_code, batches


def test_fetch_through_a_full_socket_resumes_where_it_stopped(ssl_broker):
    # 6 MiB of records (produced over PLAINTEXT), fetched over TLS by a client that
    # does not read at first: the broker's socket fills (its send buffer is at most
    # 4 MiB), SSL_write says WANT_WRITE in the middle of file slices, and a request
    # pipelined behind the fetch waits for it.
    p = Producer({"bootstrap.servers": ssl_broker.bootstrap, "linger.ms": 20})
    for i in range(6000):
        p.produce("full-socket", value=(b"%08d" % i) * 128)
    assert p.flush(60) == 0
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", ssl_broker.tls_port))
    s = client_context(ssl_broker.ca).wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(fetch_request(5, "full-socket", 16 * 1024 * 1024) + frame(18, 0, 6))

    def broker_send_queue():
        # tx_queue of the broker's end of this connection (/proc/net/tcp, hex).
        local = "%04X" % ssl_broker.tls_port
        remote = "%04X" % s.getsockname()[1]
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1].endswith(":" + local) and parts[2].endswith(":" + remote):
                    return int(parts[4].split(":")[0], 16)
        return 0
    wait_until(lambda: broker_send_queue() > 64 * 1024, 10, "the broker's send queue to fill")
    resp = recv_frame(s)
    assert len(resp) > 5 * 1024 * 1024, "more than the broker's socket can hold"
    corr, error_code, batches = fetched_offsets(resp)
    assert (corr, error_code) == (5, 0)
    assert batches[0][0] == 0 and batches[-1][1] == 5999
    assert all(b[0] == a[1] + 1 for a, b in zip(batches, batches[1:])), "contiguous batches"
    assert api_versions_ok_response(recv_frame(s), 6)
    assert api_versions_ok(s, 7)
    s.close()


def api_versions_ok_response(resp, corr):
    got_corr, error_code = struct.unpack(">ih", resp[:6])
    return got_corr == corr and error_code == 0


def test_ssl_kafka_python_produces_and_consumes(ssl_broker):
    # kafka-python: its own protocol code over Python's ssl module.
    p = KafkaProducer(bootstrap_servers=ssl_broker.tls_bootstrap, security_protocol="SSL",
                      ssl_cafile=ssl_broker.ca, linger_ms=5, request_timeout_ms=15000)
    for i in range(2000):
        p.send("kp-ssl", value=b"kp-%d" % i)
    p.flush(30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=ssl_broker.tls_bootstrap, security_protocol="SSL",
                      ssl_cafile=ssl_broker.ca, group_id=None, enable_auto_commit=False,
                      fetch_max_wait_ms=200, request_timeout_ms=15000)
    try:
        tp = TopicPartition("kp-ssl", 0)
        c.assign([tp])
        c.seek(tp, 0)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 2000 and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                got.extend(m.value for m in msgs)
    finally:
        c.close()
    assert got == [b"kp-%d" % i for i in range(2000)]


def test_encrypted_key_with_ssl_key_password_and_the_password_stays_hidden(broker_factory, workdir, pki):
    cert, key = pki.server("enc", 0xE1)
    enc_key = os.path.join(pki.dir, "enc-encrypted.key")
    openssl("pkey", "-in", key, "-aes256", "-passout", "pass:k3y-pass", "-out", enc_key)
    port, tls_port = free_port(), free_port()
    conf = {"listeners": f"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls_port}",
            "ssl.certificate.location": cert, "ssl.key.location": enc_key}
    # Without the password (or with a wrong one) the key does not load: a start error.
    for extra in ({}, {"ssl.key.password": "wrong"}):
        b = broker_factory(port=port, start=False, overrides=dict(conf, **extra))
        b.start(wait=False)
        assert b.proc.wait(20) != 0
        assert "not a PEM private key" in b.log() and "ssl.key.password" in b.log()
    b = broker_factory(port=port, overrides=dict(conf, **{"ssl.key.password": "k3y-pass"}))
    with tls_connect(tls_port, pki.ca) as s:
        assert der_serial(s.getpeercert(binary_form=True)) == "E1"
        assert api_versions_ok(s, 1)
    assert "k3y-pass" not in b.log()
    # DescribeConfigs does not give the password away.
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource("BROKER", "0")
    entries = a.describe_configs([res])[res].result(20)
    # Sensitive, as Kafka answers it: no value at all.
    assert entries["ssl.key.password"].is_sensitive and entries["ssl.key.password"].value is None
    assert "k3y-pass" not in b.log()
    assert entries["ssl.key.location"].value == enc_key


def test_tls_versions_follow_ssl_enabled_protocols(broker_factory, workdir, pki):
    b = start_tls_broker(broker_factory, workdir, pki, extra={"ssl.enabled.protocols": "TLSv1.3"})
    with tls_connect(b.tls_port, b.ca) as s:
        assert s.version() == "TLSv1.3"
        assert api_versions_ok(s, 1)
    with pytest.raises(ssl.SSLError):
        tls_connect(b.tls_port, b.ca, max_version=ssl.TLSVersion.TLSv1_2)
    assert b.alive()


def test_tls12_client_is_served_by_default(ssl_broker):
    with tls_connect(ssl_broker.tls_port, ssl_broker.ca, max_version=ssl.TLSVersion.TLSv1_2) as s:
        assert s.version() == "TLSv1.2"
        assert api_versions_ok(s, 7)


def test_pipelined_requests_in_one_tls_record_are_all_answered(ssl_broker):
    with tls_connect(ssl_broker.tls_port, ssl_broker.ca) as s:
        s.sendall(b"".join(frame(18, 0, corr) for corr in range(1, 201)))
        for corr in range(1, 201):
            resp = recv_frame(s)
            assert struct.unpack(">i", resp[:4])[0] == corr


# ---- SASL_SSL ---------------------------------------------------------------------

@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_ssl_confluent_kafka_produces_and_consumes(sasl_ssl_broker, mech):
    topic = "sasl-ssl-" + mech.lower()
    conf = sasl_ssl_conf(sasl_ssl_broker, mech, "KEYA", "secret-a")
    p = Producer(conf)
    for i in range(500):
        p.produce(topic, value=b"v%d" % i)
    assert p.flush(30) == 0
    got = consume(conf, topic, 500)
    assert sorted(m.value() for m in got) == sorted(b"v%d" % i for i in range(500))
    assert "authenticated peer=" in sasl_ssl_broker.log()


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_ssl_kafka_python_authenticates(sasl_ssl_broker, mech):
    # kafka-python speaks SaslHandshake v0 and raw tokens, inside TLS.
    p = KafkaProducer(bootstrap_servers=sasl_ssl_broker.tls_bootstrap, security_protocol="SASL_SSL",
                      ssl_cafile=sasl_ssl_broker.ca, sasl_mechanism=mech, sasl_plain_username="KEYA",
                      sasl_plain_password="secret-a", request_timeout_ms=15000)
    p.send("kp-sasl-ssl", b"hello").get(timeout=20)
    p.close()


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_ssl_kcat_produces_and_consumes(sasl_ssl_broker, mech):
    topic = "kcat-sasl-ssl-" + mech.lower()
    lines = b"".join(b"m-%d\n" % i for i in range(50))
    auth = (mech, "KEYA", "secret-a")
    r = kcat(sasl_ssl_broker, "-P", "-t", topic, input=lines, sasl=auth)
    assert r.returncode == 0, r.stderr
    r = kcat(sasl_ssl_broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", sasl=auth)
    assert r.returncode == 0, r.stderr
    assert r.stdout == lines


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256"])
def test_sasl_ssl_wrong_password_is_refused(sasl_ssl_broker, mech):
    errors = []
    p = Producer(sasl_ssl_conf(sasl_ssl_broker, mech, "KEYA", "wrong", **{
        "error_cb": lambda e: errors.append(e), "message.timeout.ms": 3000}))
    p.produce("never", b"x")
    p.flush(5)
    assert any("Authentication failed" in e.str() for e in errors), errors
    r = kcat(sasl_ssl_broker, "-L", "-m", "5", sasl=(mech, "KEYA", "wrong"))
    assert r.returncode != 0
    assert b"Authentication failed" in r.stderr or b"authentication" in r.stderr.lower(), r.stderr
    with pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=sasl_ssl_broker.tls_bootstrap, security_protocol="SASL_SSL",
                      ssl_cafile=sasl_ssl_broker.ca, sasl_mechanism=mech, sasl_plain_username="KEYA",
                      sasl_plain_password="wrong", api_version_auto_timeout_ms=5000, request_timeout_ms=5000)
    # The right password still works afterwards.
    good = Producer(sasl_ssl_conf(sasl_ssl_broker, mech, "KEYA", "secret-a"))
    good.produce("after-wrong", b"ok")
    assert good.flush(20) == 0


# ---- certificate reload -----------------------------------------------------------

def test_certificate_swap_keeps_producers_and_open_sessions(ssl_broker, pki):
    assert peer_serial(ssl_broker.tls_port, ssl_broker.ca) == "1001"
    before = tls_connect(ssl_broker.tls_port, ssl_broker.ca)
    assert api_versions_ok(before, 1)
    new_cert, new_key = pki.server("server2", 0x2002)

    stop = threading.Event()
    stats = {"produced": 0, "delivered": 0, "failed": []}

    def on_delivery(err, msg):
        if err:
            stats["failed"].append(err)
        else:
            stats["delivered"] += 1

    def produce():
        p = Producer(ssl_conf(ssl_broker, **{"linger.ms": 2, "message.timeout.ms": 30000}))
        i = 0
        while not stop.is_set():
            p.produce("swap", value=b"r%d" % i, on_delivery=on_delivery)
            stats["produced"] += 1
            i += 1
            p.poll(0.002)
        stats["unflushed"] = p.flush(30)

    t = threading.Thread(target=produce)
    t.start()
    try:
        wait_until(lambda: stats["delivered"] > 200, 20, "deliveries before the swap")
        mark = len(ssl_broker.log())
        install(new_cert, ssl_broker.cert)
        install(new_key, ssl_broker.key)
        wait_until(lambda: "TLS certificate reloaded" in log_after(ssl_broker, mark), 10, "the reload line")
        assert "serial=2002" in log_after(ssl_broker, mark)
        delivered_at_swap = stats["delivered"]
        wait_until(lambda: stats["delivered"] > delivered_at_swap + 500, 20, "deliveries after the swap")
        assert peer_serial(ssl_broker.tls_port, ssl_broker.ca) == "2002"
    finally:
        stop.set()
        t.join(60)
    assert stats.get("unflushed") == 0
    assert stats["failed"] == []
    assert stats["delivered"] == stats["produced"]
    # The session opened before the swap is still served, with the old certificate.
    assert der_serial(before.getpeercert(binary_form=True)) == "1001"
    assert api_versions_ok(before, 2)
    before.close()
    # And the data is all there, read over a connection with the new certificate.
    got = consume(ssl_conf(ssl_broker), "swap", stats["delivered"])
    assert len(got) == stats["delivered"]


def refused(broker, mark, reason, cert_serial="1001"):
    wait_until(lambda: reason in log_after(broker, mark), 10, f"refusal: {reason}")
    assert "TLS certificate not reloaded, the previous one stays in force" in log_after(broker, mark)
    assert "TLS certificate reloaded" not in log_after(broker, mark)
    assert peer_serial(broker.tls_port, broker.ca) == cert_serial


def test_broken_replacements_are_refused_then_a_good_one_is_taken(ssl_broker, pki):
    b = ssl_broker
    kept = tls_connect(b.tls_port, b.ca)
    # (a) A certificate file that is not PEM.
    mark = len(b.log())
    install_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", b.cert)
    refused(b, mark, "not a PEM certificate chain")
    # (b) A good certificate with a key that is not its own.
    c3, _ = pki.server("server3", 0x3003)
    other_key = pki.key("unrelated")
    mark = len(b.log())
    install(c3, b.cert)
    install(other_key, b.key)
    refused(b, mark, "does not match the certificate")
    # (c) A certificate (with its key) whose names do not cover 127.0.0.1.
    c4, k4 = pki.server("server4", 0x4004, san="DNS:other.example")
    mark = len(b.log())
    install(c4, b.cert)
    install(k4, b.key)
    refused(b, mark, "does not cover host 127.0.0.1")
    # (d) An expired certificate (with its key).
    c5, k5 = pki.server("server5", 0x5005, days=-1)
    mark = len(b.log())
    install(c5, b.cert)
    install(k5, b.key)
    refused(b, mark, "expired at")
    # A good pair is taken.
    c6, k6 = pki.server("server6", 0x6006)
    mark = len(b.log())
    install(c6, b.cert)
    install(k6, b.key)
    wait_until(lambda: "TLS certificate reloaded" in log_after(b, mark), 10, "the good reload")
    assert "serial=6006" in log_after(b, mark)
    assert peer_serial(b.tls_port, b.ca) == "6006"
    # The session from the start lived through all of it.
    assert api_versions_ok(kept, 3)
    assert der_serial(kept.getpeercert(binary_form=True)) == "1001"
    kept.close()


# ---- start errors -----------------------------------------------------------------

@pytest.mark.parametrize("case,overrides,message", [
    ("no certificate", {"ssl.certificate.location": ""}, "needs ssl.certificate.location"),
    ("no key", {"ssl.key.location": ""}, "needs ssl.key.location"),
    ("missing file", {"ssl.certificate.location": "/nonexistent/cert.pem"}, "ssl.certificate.location /nonexistent/cert.pem"),
    ("old protocol", {"ssl.enabled.protocols": "TLSv1.1,TLSv1.2"}, "ssl.enabled.protocols: TLSv1.1 is older than TLSv1.2"),
    ("unknown protocol", {"ssl.enabled.protocols": "TLSv9"}, "ssl.enabled.protocols: \"TLSv9\" is not a protocol"),
    ("bad ciphers", {"ssl.cipher.suites": "NOT-A-CIPHER"}, "ssl.cipher.suites"),
])
def test_bad_tls_settings_are_start_errors(broker_factory, workdir, pki, case, overrides, message):
    cert, key = pki.server("server1", 0x1001)
    port, tls_port = free_port(), free_port()
    conf = {"listeners": f"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls_port}",
            "ssl.certificate.location": cert, "ssl.key.location": key}
    conf.update(overrides)
    b = broker_factory(port=port, start=False, overrides=conf)
    b.start(wait=False)
    assert b.proc.wait(20) != 0
    assert message in b.log(), b.log()


def test_expired_certificate_is_a_start_error(broker_factory, workdir, pki):
    cert, key = pki.server("old", 0x77, days=-1)
    port, tls_port = free_port(), free_port()
    b = broker_factory(port=port, start=False, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls_port}",
        "ssl.certificate.location": cert, "ssl.key.location": key})
    b.start(wait=False)
    assert b.proc.wait(20) != 0
    assert "expired at" in b.log()


def test_cipher_suites_restrict_the_handshake(broker_factory, workdir, pki):
    b = start_tls_broker(broker_factory, workdir, pki, extra={
        "ssl.enabled.protocols": "TLSv1.2", "ssl.cipher.suites": "ECDHE-RSA-AES128-GCM-SHA256"})
    with tls_connect(b.tls_port, b.ca) as s:
        assert s.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
        assert api_versions_ok(s, 1)


# ---- hostile peers ----------------------------------------------------------------

def assert_closed(s):
    """The broker closes: a TLS alert may come first, then the end of the stream or a
    reset (the broker closed with our unread bytes in its buffer)."""
    s.settimeout(10)
    try:
        while s.recv(1024):
            pass
    except ConnectionResetError:
        pass


def test_plaintext_and_garbage_on_a_tls_port_are_closed(ssl_broker):
    b = ssl_broker
    good = tls_connect(b.tls_port, b.ca)
    assert api_versions_ok(good, 1)
    mark = len(b.log())
    # A plaintext Kafka request.
    s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=10)
    s.sendall(frame(18, 0, 1))
    assert_closed(s)
    s.close()
    # Random bytes.
    s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=10)
    s.sendall(os.urandom(4096))
    assert_closed(s)
    s.close()
    # Half a ClientHello, then the peer goes away.
    raw = socket.create_connection(("127.0.0.1", b.tls_port), timeout=10)
    raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40))
    raw.close()
    # A librdkafka client speaking plaintext to the TLS port gives up, the broker stays.
    errors = []
    p = Producer({"bootstrap.servers": b.tls_bootstrap, "error_cb": lambda e: errors.append(e),
                  "message.timeout.ms": 2000})
    p.produce("never", b"x")
    p.flush(4)
    assert errors
    wait_until(lambda: log_after(b, mark).count("TLS handshake failed") >= 3, 10, "handshake failure lines")
    # The TLS session opened before is unaffected, and new ones work.
    assert api_versions_ok(good, 2)
    good.close()
    assert peer_serial(b.tls_port, b.ca) == "1001"
    r = kcat(b, "-L", "-m", "10")
    assert r.returncode == 0, r.stderr
    assert b.alive()
