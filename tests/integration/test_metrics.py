"""The broker's metrics listener (docs/broker.md, "Metrics"): GET /metrics in Prometheus
text format and GET /healthz on metrics.listener, observed while python3-confluent-kafka
produces; the exposition is checked line by line; a bad metrics.listener is a start error."""
import os
import re
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import STRATUS_BIN, free_port, wait_until

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_exposition(text):
    """Parses Prometheus text format 0.0.4 strictly: every sample line is `name{labels}
    value`, every family has exactly one HELP and one TYPE, both before its samples, and
    its samples are contiguous with unique label sets. Returns {(name, labels): value}."""
    assert text.endswith("\n"), "the text ends with a newline"
    help_, type_, samples = {}, {}, {}
    done = set()      # families whose samples ended
    current = None    # family of the last sample
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        assert line, f"{where}: no empty lines"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[0] == "#" and len(parts) >= 3, where
            if parts[1] == "HELP":
                name = parts[2]
                assert name not in help_, f"{where}: second HELP for {name}"
                assert len(parts) == 4 and parts[3], f"{where}: HELP without text"
                help_[name] = parts[3]
            elif parts[1] == "TYPE":
                name = parts[2]
                assert name not in type_, f"{where}: second TYPE for {name}"
                assert len(parts) == 4 and parts[3] in TYPES, f"{where}: bad type"
                type_[name] = parts[3]
            else:
                continue  # a plain comment
            assert name not in done and name != current, f"{where}: HELP/TYPE after samples"
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"{where}: not `name{{labels}} value`"
        name, labels_text, value = m.group(1), m.group(3), m.group(4)
        assert name in help_ and name in type_, f"{where}: sample before HELP and TYPE of {name}"
        if name != current:
            assert name not in done, f"{where}: samples of {name} are not contiguous"
            if current:
                done.add(current)
            current = name
        labels = ()
        if labels_text:
            pos, found = 0, []
            while pos < len(labels_text):
                lm = LABEL_RE.match(labels_text, pos)
                assert lm, f"{where}: bad label at {labels_text[pos:]!r}"
                raw = lm.group(2)
                found.append((lm.group(1), re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), raw)))
                pos = lm.end()
            labels = tuple(sorted(found))
            assert len({k for k, _ in labels}) == len(labels), f"{where}: repeated label"
        v = float(value)
        if type_[name] == "counter":
            assert v >= 0, f"{where}: negative counter"
        assert (name, labels) not in samples, f"{where}: duplicate series"
        samples[(name, labels)] = v
    for name in help_:
        assert name in type_, f"HELP without TYPE for {name}"
    return samples


@pytest.mark.parametrize("bad", [
    "x 1\n",                                                      # sample before HELP/TYPE
    "# HELP x a\n# TYPE x gauge\n# HELP x b\nx 1\n",            # second HELP
    "# HELP x a\n# TYPE x gauge\nx{l=\"a\"} 1\nx{l=\"a\"} 2\n",  # duplicate series
    "# HELP x a\n# TYPE x gauge\nx{l=a} 1\n",                   # unquoted label value
    "# HELP x a\n# TYPE x gauge\nx 1",                           # no final newline
    "# HELP x a\n# TYPE x counter\nx -1\n",                      # negative counter
])
def test_exposition_parser_rejects_bad_text(bad):
    with pytest.raises(AssertionError):
        parse_exposition(bad)


def test_exposition_parser_unescapes_label_values():
    s = parse_exposition('# HELP x a\n# TYPE x gauge\nx{l="a\\"b\\\\c\\n"} 1\n')
    assert s == {("x", (("l", 'a"b\\c\n'),)): 1.0}


def http_get(port, path):
    """(status, content type, body) of GET <path>."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(port):
    status, ctype, body = http_get(port, "/metrics")
    assert status == 200, (status, body)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    return parse_exposition(body)


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def metrics_broker(broker_factory):
    port = free_port()
    b = broker_factory({"metrics.listener": f"127.0.0.1:{port}"})
    b.metrics_port = port
    return b


def test_metrics_produce_counts_requests_connections_and_bytes(metrics_broker):
    from confluent_kafka import Producer
    b = metrics_broker
    port = b.metrics_port
    assert f"metrics listener on http://127.0.0.1:{port}/metrics" in b.log()
    # The fixture's readiness probe connected and closed; the broker may not have seen
    # the close yet.
    wait_until(lambda: value(scrape(port), "stratus_broker_connections", listener="PLAINTEXT") == 0,
               what="the readiness probe's connection to be gone")
    before = scrape(port)
    assert value(before, "stratus_broker_requests_total", api="Produce") == 0
    assert value(before, "stratus_broker_topics") == 0

    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    n, payload = 200, b"x" * 1000
    for i in range(n):
        p.produce("metered", key=str(i).encode(), value=payload)
    assert p.flush(30) == 0
    try:
        # The producer stays connected: the gauge sees it (one or more connections,
        # as librdkafka keeps a bootstrap connection too).
        m = scrape(port)
        assert value(m, "stratus_broker_requests_total", api="Produce") > 0
        assert value(m, "stratus_broker_requests_total", api="Metadata") > 0
        assert value(m, "stratus_broker_requests_total", api="ApiVersions") > 0
        assert value(m, "stratus_broker_connections", listener="PLAINTEXT") >= 1
        assert value(m, "stratus_broker_connections_total", listener="PLAINTEXT") >= 1
        grown = value(m, "stratus_broker_bytes_in_total") - value(before, "stratus_broker_bytes_in_total")
        assert grown >= n * len(payload), grown
        assert value(m, "stratus_broker_bytes_out_total") > value(before, "stratus_broker_bytes_out_total")
        assert value(m, "stratus_broker_topics") == 1
        assert value(m, "stratus_broker_partitions") == 1
    finally:
        del p  # closes its connections

    def closed():
        s = scrape(port)
        return s if value(s, "stratus_broker_connections", listener="PLAINTEXT") == 0 else None
    m = wait_until(closed, 20, "connections gauge back to 0")
    assert value(m, "stratus_broker_connections_total", listener="PLAINTEXT") >= 1


def test_metrics_every_served_api_has_a_request_series(metrics_broker):
    samples = scrape(metrics_broker.metrics_port)
    apis = {dict(labels)["api"] for name, labels in samples if name == "stratus_broker_requests_total"}
    out = subprocess.run([STRATUS_BIN, "version"], capture_output=True, text=True, timeout=20).stdout
    for api in ("Produce", "Fetch", "Metadata", "ApiVersions", "JoinGroup", "SaslAuthenticate"):
        assert api in apis, (api, sorted(apis))
        assert api in out


def test_metrics_healthz_404_and_405(metrics_broker):
    port = metrics_broker.metrics_port
    assert http_get(port, "/healthz")[0::2] == (200, "ok\n")
    status, _, body = http_get(port, "/nope")
    assert status == 404 and "/metrics" in body and "/healthz" in body, body
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405 and e.value.headers.get("Allow") == "GET"


def test_metrics_listener_off_by_default(broker):
    assert "metrics listener" not in broker.log()


@pytest.mark.parametrize("bad", ["nope", "127.0.0.1:99999", "127.0.0.1:", "9644"])
def test_bad_metrics_listener_exits_2_naming_the_key(workdir, bad):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run([STRATUS_BIN, "broker", "--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}",
                        "--override", f"log.dirs={workdir}/d", "--override", f"metrics.listener={bad}"],
                       capture_output=True, timeout=20, env=env)
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "metrics.listener" in err and bad in err, err
    assert not os.path.exists(f"{workdir}/d"), "nothing created before the config was checked"


def test_metrics_listener_in_use_is_a_start_error(broker_factory):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        taken = s.getsockname()[1]
        b = broker_factory({"metrics.listener": f"127.0.0.1:{taken}"}, start=False)
        b.start(wait=False)
        code = b.proc.wait(20)
    assert code == 1, b.log()
    assert "metrics.listener" in b.log() and "in use" in b.log(), b.log()


def test_metrics_label_values_escaped(broker_factory):
    """A listener name with a quote and a backslash comes out escaped (and parses back)."""
    port, mport = free_port(), free_port()
    name = 'Q"\\X'
    broker_factory({"listeners": f"{name}://127.0.0.1:{port}",
                    "listener.security.protocol.map": f"{name}:PLAINTEXT",
                    "metrics.listener": f"127.0.0.1:{mport}"}, port=port)
    status, _, body = http_get(mport, "/metrics")
    assert re.search(r'^stratus_broker_connections_total\{listener="Q\\"\\\\X"\} 1$', body, re.M), body
    assert value(parse_exposition(body), "stratus_broker_connections_total", listener=name) == 1
