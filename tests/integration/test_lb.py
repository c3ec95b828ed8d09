"""`stratus lb` (docs/lb.md): the layer-4 load balancer, tested from outside.

Kafka clients (kcat, librdkafka) reach a broker through a bootstrap listener and a
per-broker listener; health checks (tcp and kafka) take targets out and bring them back;
live reloads under 1,000 busy connections keep what did not change; the relay bounds
memory under a slow reader, passes half-closes on, survives resets and refusals and
returns to its baseline of file descriptors; PROXY protocol v2 headers are exact. Then
more of the reload contract (removed, moved, renamed listeners; option changes; in-place
edits), one health check per address and kind, connect timeouts, SIGTERM under load, and
a /metrics text without duplicate series.

The targets are the test's own asyncio servers (clients/tcp_targets.py); the lb runs as
its own process (conftest.Lb) and is observed through GET /metrics and /proc."""
import os
import re
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Producer

from conftest import (check_keyed_records, consume_all, create_topic, frame, free_port,
                      listen_inode, recv_exact, recv_frame, wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "clients"))
from tcp_targets import BLAST_CHUNK, PATTERN, PATTERN_PERIOD, pattern_ok  # noqa: E402

# Fast health checks: a target is up ~0.2 s after it answers, down ~0.2 s after it stops.
FAST = ("health_interval_ms 100\n"
        "health_timeout_ms 500\n"
        "health_rise 2\n"
        "health_fall 2\n"
        "connect_timeout_ms 1000\n")
FD_MARGIN = 4            # fds the lb may hold beyond its baseline (a health check in flight)
# The lb keeps empty pipes for reuse (src/lb/relay.c: at most 512 pipes, 1024 fds): after
# load, sockets return to the baseline exactly (within FD_MARGIN), pipes to at most
# min(this cap, 4 per connection that was open at the same time) more than the baseline.
SPARE_PIPE_FDS = 1024
RSS_MARGIN_KB = 8 * 1024

# ---- small socket helpers -------------------------------------------------------------

def connect(port, timeout=5.0):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def open_echo(port, token, timeout=5.0):
    """A connection through the lb to an echo target: sends "<token>\\n" and reads it back.
    Raises ConnectionError when the lb closes it instead."""
    s = connect(port, timeout)
    try:
        msg = f"{token}\n".encode()
        s.sendall(msg)
        got = recv_exact(s, len(msg))
        assert got == msg, (got, msg)
        return s
    except BaseException:
        s.close()
        raise


def try_send(s, data):
    """Sends unless the lb already closed the connection (then the send may fail)."""
    try:
        s.sendall(data)
    except OSError:
        pass


def echo_again(s, msg=b"again\n"):
    s.sendall(msg)
    return recv_exact(s, len(msg)) == msg


def closed_within(s, limit):
    """Seconds until the peer closed <s> (EOF or reset; data before it is dropped).
    Fails when it is still open after <limit> seconds."""
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        while True:
            if not s.recv(65536):
                break
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"connection still open after {limit}s") from None
    return time.monotonic() - t0


def recv_until_eof(s, timeout, limit=1 << 30):
    s.settimeout(timeout)
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while len(buf) < limit:
        if time.monotonic() > deadline:
            raise AssertionError(f"no EOF within {timeout}s ({len(buf)} bytes read)")
        d = s.recv(1 << 20)
        if not d:
            return bytes(buf)
        buf += d
    return bytes(buf)


def read_pattern(s, offset, n, timeout):
    """Reads <n> bytes of the blast pattern at stream offset <offset>; checks them."""
    s.settimeout(timeout)
    got = 0
    deadline = time.monotonic() + timeout
    while got < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"read {got} of {n} bytes in {timeout}s")
        d = s.recv(min(1 << 20, n - got))
        if not d:
            raise AssertionError(f"EOF after {got} of {n} bytes")
        assert pattern_ok(offset + got, d), f"relayed bytes differ at stream offset ~{offset + got}"
        got += len(d)
    return offset + got


def bulk_echo(port, nbytes, timeout=60.0):
    """Sends <nbytes> of the pattern through an echo target while reading the echo; half-
    closes; checks every byte came back and then EOF. Returns the seconds it took."""
    s = connect(port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    errors = []
    t0 = time.monotonic()

    def send():
        try:
            left, off = nbytes, 0
            while left:
                n = min(left, len(BLAST_CHUNK))
                start = off % PATTERN_PERIOD
                s.sendall(PATTERN[start:start + n])
                left -= n
                off += n
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)
    t = threading.Thread(target=send)
    t.start()
    try:
        read_pattern(s, 0, nbytes, timeout)
        assert s.recv(1) == b"", "EOF after the echo"
    finally:
        t.join(timeout)
        s.close()
    assert not errors, errors
    return time.monotonic() - t0


def reset_close(s):
    """Closes <s> with an RST (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def pipe_bound(base, peak_connections):
    """The most pipe fds the lb may hold after <peak_connections> were open at once."""
    return base["pipe"] + min(SPARE_PIPE_FDS, 4 * peak_connections)


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        want = n if hard == resource.RLIM_INFINITY else min(n, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < n:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {n}")


def tokens_at(servers, prefix):
    """{server addr: number of tokens starting with <prefix>} (which server each client
    connection reached)."""
    return {s.addr: sum(1 for t in s.token_set() if t.startswith(prefix)) for s in servers}


def open_many_echo(port, n, prefix):
    """Opens <n> echo connections; returns (open sockets, [(token, error)] for the ones
    the lb closed)."""
    socks, failures = [], []
    for i in range(n):
        tok = f"{prefix}{i}"
        try:
            socks.append(open_echo(port, tok))
        except (OSError, ConnectionError, AssertionError) as e:
            failures.append((tok, repr(e)))
    return socks, failures


def close_all(socks):
    for s in socks:
        s.close()


def stderr_line_for(text, line_no, file_name="lb.conf"):
    """The first stderr line naming <file_name> and line <line_no> (as a whole number)."""
    num = re.compile(rf"(?<![\d.]){line_no}(?![\d.])")
    for line in text.splitlines():
        if file_name in line and num.search(line.replace(file_name, "")):
            return line
    return None


def wait_idle(lb, listeners, timeout=10.0):
    """Waits until every listener of <listeners> has no active connection."""
    return lb.wait_metrics(lambda m: all(m.value("stratus_lb_connections_active", listener=l) == 0
                                         for l in listeners),
                           timeout, f"no active connections on {listeners}")


# ---- 1. Kafka clients through the bootstrap and per-broker listeners ------------------

def produce_keyed(bootstrap, topic, n):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    errors = []
    for i in range(n):
        p.produce(topic, key=f"key-{i % 1000}".encode(), value=f"value-{i}".encode(),
                  headers=[("seq", str(i).encode()), ("codec", b"none")],
                  on_delivery=lambda err, msg: err and errors.append(err))
    left = p.flush(30)
    assert left == 0, f"{left} records not delivered"
    assert not errors, errors[:5]


def test_kafka_clients_through_bootstrap_listener(broker_factory, lb_factory):
    boot, per = free_port(), free_port()
    b = broker_factory({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{per}"})
    lb = lb_factory(FAST +
                    f"listener bootstrap 127.0.0.1:{boot} {b.bootstrap}\n"
                    f"listener broker-0  127.0.0.1:{per} {b.bootstrap}\n")
    lb.wait_target(b.bootstrap, up=True, timeout=10)
    bootstrap = f"127.0.0.1:{boot}"

    # Metadata through the bootstrap names the per-broker listener, never the broker itself.
    r = subprocess.run(["kcat", "-L", "-b", bootstrap], capture_output=True, timeout=30)
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "1 brokers:" in out and f"broker 0 at 127.0.0.1:{per}" in out, out
    assert not re.search(rf":{b.port}\b", out), out

    # librdkafka: 1000 keyed records in, the same 1000 out.
    create_topic(bootstrap, "lb-keyed", 3)
    produce_keyed(bootstrap, "lb-keyed", 1000)
    got = consume_all(bootstrap, "lb-keyed", 1000, timeout=60)
    check_keyed_records(got, 1000, 3, "none")

    # kcat: 1000 key:value lines in and out.
    lines = "".join(f"k{i}:v{i}\n" for i in range(1000))
    r = subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", "lb-kcat", "-K:"], input=lines.encode(),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "lb-kcat", "-o", "beginning", "-e",
                        "-f", "%k:%s\\n"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == lines

    # Every client is gone: nothing stays open; both listeners were used and moved bytes.
    m = wait_idle(lb, ["bootstrap", "broker-0"])
    assert m.value("stratus_lb_target_connections_active", target=b.bootstrap) == 0, m
    for name in ("bootstrap", "broker-0"):
        assert m.value("stratus_lb_connections_total", listener=name) >= 1, (name, m)
        assert m.value("stratus_lb_bytes_total", listener=name, direction="in") > 0, (name, m)
        assert m.value("stratus_lb_bytes_total", listener=name, direction="out") > 0, (name, m)
    # The records themselves crossed the per-broker listener: well over 2 x 1000 x ~16 bytes.
    assert m.value("stratus_lb_bytes_total", listener="broker-0", direction="in") > 2 * 16000, m
    assert m.value("stratus_lb_bytes_total", listener="broker-0", direction="out") > 2 * 16000, m

    # Byte counts are exact: one ApiVersions v0 round trip through the bootstrap.
    m0 = m
    req = frame(18, 0, 7)
    with connect(boot) as s:
        s.sendall(req)
        resp = recv_frame(s)
    m1 = wait_idle(lb, ["bootstrap"])
    assert m1.value("stratus_lb_connections_total", listener="bootstrap") == \
        m0.value("stratus_lb_connections_total", listener="bootstrap") + 1, m1
    d_in = m1.value("stratus_lb_bytes_total", listener="bootstrap", direction="in") - \
        m0.value("stratus_lb_bytes_total", listener="bootstrap", direction="in")
    d_out = m1.value("stratus_lb_bytes_total", listener="bootstrap", direction="out") - \
        m0.value("stratus_lb_bytes_total", listener="bootstrap", direction="out")
    assert (d_in, d_out) == (len(req), 4 + len(resp)), m1


# ---- 2. Health --------------------------------------------------------------------------

def test_health_spread_fall_rise_all_down(targets, lb_factory):
    servers = [targets.server("echo") for _ in range(3)]
    port = free_port()
    lb = lb_factory(FAST + f"listener pool 127.0.0.1:{port} " + " ".join(s.addr for s in servers) + "\n")
    status, body = lb.http_get("/healthz")
    assert status == 200, (status, body)
    for s in servers:
        lb.wait_target(s.addr, up=True, timeout=5)

    # All up: 60 connections spread over all three.
    socks, failures = open_many_echo(port, 60, "a-")
    close_all(socks)
    assert not failures, failures
    hits = tokens_at(servers, "a-")
    assert sum(hits.values()) == 60 and all(hits.values()), hits

    # One stops listening: down after the fall count; then no new connection goes to it
    # (none of 60 is closed for want of a target).
    dead = servers[1]
    fails_before = lb.metrics().value("stratus_lb_target_checks_total", target=dead.addr, result="fail")
    dead.stop()
    t0 = time.monotonic()
    m0 = lb.wait_target(dead.addr, up=False, timeout=3)
    fell_after = time.monotonic() - t0
    # No client connection in between: the fall count (2 failed checks) took it down.
    assert m0.value("stratus_lb_target_checks_total", target=dead.addr, result="fail") >= fails_before + 2, m0
    socks, failures = open_many_echo(port, 60, "b-")
    close_all(socks)
    assert not failures, (failures, lb.metrics())
    hits = tokens_at(servers, "b-")
    assert hits[dead.addr] == 0 and sum(hits.values()) == 60, hits
    assert all(hits[s.addr] for s in servers if s is not dead), hits
    m1 = lb.metrics()
    for reason in ("no_target", "connect_failed"):
        assert m1.value("stratus_lb_connections_rejected_total", listener="pool", reason=reason) == \
            m0.value("stratus_lb_connections_rejected_total", listener="pool", reason=reason), (reason, m1)
    assert m1.target_up(servers[0].addr) == 1.0 and m1.target_up(servers[2].addr) == 1.0, m1

    # Back: up again after the rise count (two more good checks), and takes connections.
    ok_before = m1.value("stratus_lb_target_checks_total", target=dead.addr, result="ok")
    dead.start()
    m2 = lb.wait_target(dead.addr, up=True, timeout=3)
    assert m2.value("stratus_lb_target_checks_total", target=dead.addr, result="ok") >= ok_before + 2, m2
    socks, failures = open_many_echo(port, 60, "c-")
    close_all(socks)
    assert not failures, failures
    hits = tokens_at(servers, "c-")
    assert sum(hits.values()) == 60 and all(hits.values()), hits

    # All down: a new client is closed at once (no hang), counted as no_target.
    for s in servers:
        s.stop()
    for s in servers:
        lb.wait_target(s.addr, up=False, timeout=3)
    m3 = lb.metrics()
    for _ in range(3):
        with connect(port) as s:
            try_send(s, b"anyone?\n")
            assert closed_within(s, 1.0) < 1.0
    m4 = wait_idle(lb, ["pool"])
    assert m4.value("stratus_lb_connections_rejected_total", listener="pool", reason="no_target") == \
        m3.value("stratus_lb_connections_rejected_total", listener="pool", reason="no_target") + 3, m4
    assert fell_after < 3


def test_new_target_starts_down_until_rise(targets, lb_factory):
    echo = targets.server("echo")
    port = free_port()
    lb = lb_factory("health_interval_ms 500\nhealth_rise 3\nhealth_fall 2\n"
                    f"listener one 127.0.0.1:{port} {echo.addr}\n")
    m = lb.metrics()
    assert m.target_up(echo.addr) == 0.0, m
    ok = m.value("stratus_lb_target_checks_total", target=echo.addr, result="ok")
    if ok < 3:   # not yet proven: a client is closed at once
        with connect(port) as s:
            assert closed_within(s, 1.0) < 1.0
    m = lb.wait_target(echo.addr, up=True, timeout=5)
    assert m.value("stratus_lb_target_checks_total", target=echo.addr, result="ok") >= 3, m
    open_echo(port, "late").close()


def test_health_check_kafka(broker_factory, targets, lb_factory):
    b = broker_factory()
    silent = targets.server("silent")
    port = free_port()
    lb = lb_factory("health_interval_ms 100\nhealth_timeout_ms 300\nhealth_rise 2\nhealth_fall 2\n"
                    f"listener kafka 127.0.0.1:{port} {b.bootstrap} {silent.addr} health_check=kafka\n")
    lb.wait_target(b.bootstrap, up=True, timeout=5)
    # The silent server accepts connections but never answers ApiVersions: it stays down.
    fails0 = lb.metrics().value("stratus_lb_target_checks_total", target=silent.addr, result="fail")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        m = lb.metrics()
        assert m.target_up(silent.addr) == 0.0, m
        assert m.target_up(b.bootstrap) == 1.0, m
        time.sleep(0.1)
    assert m.value("stratus_lb_target_checks_total", target=silent.addr, result="fail") >= fails0 + 2, m
    assert silent.conns, "the kafka check connected to the silent server"
    # Every connection reaches the broker: ApiVersions v0 is answered on all of them.
    for i in range(20):
        with connect(port) as s:
            s.sendall(frame(18, 0, i))
            resp = recv_frame(s)
            assert struct.unpack(">i", resp[:4])[0] == i
    assert lb.metrics().target_up(silent.addr) == 0.0


# ---- 3. Live reconfiguration ------------------------------------------------------------

def test_reload_under_load(targets, lb_factory):
    raise_nofile(16384)
    e1, e2, e3, e4, e5 = (targets.server("echo") for _ in range(5))
    pm, ps, px = free_port(), free_port(), free_port()
    head = FAST + "drain_timeout_ms 1500\n"
    v1 = (head + f"listener main 127.0.0.1:{pm} {e1.addr} {e2.addr}\n"
                 f"listener side 127.0.0.1:{ps} {e3.addr} {e4.addr}\n")
    v2 = (head + f"listener main 127.0.0.1:{pm} {e1.addr} {e2.addr}\n"
                 f"listener side 127.0.0.1:{ps} {e4.addr}\n"
                 f"listener extra 127.0.0.1:{px} {e5.addr}\n")
    lb = lb_factory(v1)
    for e in (e1, e2, e3, e4):
        lb.wait_target(e.addr, up=True, timeout=5)
    base = lb.settled_fd_kinds()

    # 1,000 busy connections on main, 40 on side.
    main = targets.echo_load(pm, 1000, "m", interval=0.5).start()
    side = targets.echo_load(ps, 40, "s", interval=0.3).start()
    wait_until(lambda: main.started_all() and side.started_all(), 30, "every connection's first echo")
    assert not main.failed() and not side.failed(), (main.failed()[:5], side.failed()[:5])
    on_e3 = [c for c in side.conns if c.name in e3.token_set()]
    on_e4 = [c for c in side.conns if c.name in e4.token_set()]
    assert on_e3 and on_e4 and len(on_e3) + len(on_e4) == 40
    m = lb.metrics()
    assert m.value("stratus_lb_connections_active", listener="main") == 1000, m
    assert m.value("stratus_lb_connections_active", listener="side") == 40, m
    assert m.value("stratus_lb_target_connections_active", target=e1.addr) + \
        m.value("stratus_lb_target_connections_active", target=e2.addr) == 1000, m
    assert m.value("stratus_lb_target_connections_active", target=e3.addr) == len(on_e3), m
    inode_main, inode_side = listen_inode(pm), listen_inode(ps)
    time.sleep(1.0)

    # Reload by replacing the file: extra added, e3 removed from side.
    lb.reload(v2, how="file")
    t_applied = time.monotonic()
    m = lb.metrics()
    assert listen_inode(pm) == inode_main and listen_inode(ps) == inode_side, "kept listening sockets"
    assert m.value("stratus_lb_draining_connections") == len(on_e3), m
    assert not [c for c in on_e3 if c.error], "e3's connections drain, not closed at once"
    wait_until(lambda: lb.listening(px), 5, "the added listener")
    lb.wait_target(e5.addr, up=True, timeout=5)
    s = open_echo(px, "x-0")
    assert "x-0" in e5.token_set()
    s.close()

    # Every unchanged connection (1,000 on main, side's on e4) still echoes.
    wait_until(lambda: not main.not_ok_since(t_applied) or main.failed(), 20,
               "an echo on every main connection after the reload")
    assert not main.failed(), [(c.name, c.error) for c in main.failed()[:10]]
    assert not main.not_ok_since(t_applied)
    wait_until(lambda: not [c for c in on_e4 if c.last_ok is None or c.last_ok < t_applied or c.error], 20,
               "an echo on every side connection to e4")
    # New side connections go to e4 only.
    socks, failures = open_many_echo(ps, 20, "n-")
    close_all(socks)
    assert not failures, failures
    assert tokens_at([e3, e4], "n-") == {e3.addr: 0, e4.addr: 20}

    # e3's connections close after drain_timeout_ms (1.5 s), not before ~1 s.
    wait_until(lambda: all(c.error for c in on_e3), 6, "e3's connections to be closed after the drain")
    closed = [c.closed_at - t_applied for c in on_e3]
    assert min(closed) > 0.8 and max(closed) < 1.5 + 3.0, closed
    m = lb.wait_metrics(lambda m: m.value("stratus_lb_draining_connections") == 0, 5, "draining 0")
    assert m.value("stratus_lb_target_connections_active", target=e3.addr) == 0, m
    wait_until(lambda: not e3.open_data_conns(), 5, "e3 to see its connections closed")
    assert not [c for c in on_e4 if c.error]

    # An identical reload (SIGHUP, then the same text written again) changes nothing:
    # same listening sockets, the bootstrap keeps accepting without a gap, same counts.
    m_before = wait_idle_except(lb, {"main": 1000, "side": len(on_e4), "extra": 0})
    inodes = {p: listen_inode(p) for p in (pm, ps, px)}
    stop = threading.Event()
    hammer = {"ok": 0, "fail": []}

    def hammer_main():
        i = 0
        while not stop.is_set():
            try:
                open_echo(pm, f"h-{i}", timeout=2).close()
                hammer["ok"] += 1
            except (OSError, ConnectionError, AssertionError) as e:
                hammer["fail"].append(repr(e))
            i += 1
            time.sleep(0.005)
    th = threading.Thread(target=hammer_main)
    th.start()
    try:
        time.sleep(0.3)
        lb.reload(how="sighup")
        t_same = time.monotonic()
        lb.reload(v2, how="file")
        time.sleep(0.3)
        m_mid = lb.metrics()
    finally:
        stop.set()
        th.join(10)
    assert not hammer["fail"] and hammer["ok"] > 10, hammer
    assert {p: listen_inode(p) for p in inodes} == inodes, "identical reload kept every socket"
    for e in (e1, e2, e4, e5):
        assert m_mid.target_up(e.addr) == 1.0, (e, m_mid)
    m_after = wait_idle_except(lb, {"main": 1000, "side": len(on_e4), "extra": 0})
    for l in ("main", "side", "extra"):
        assert m_after.value("stratus_lb_connections_total", listener=l) >= \
            m_before.value("stratus_lb_connections_total", listener=l), l
    assert m_after.value("stratus_lb_draining_connections") == 0, m_after
    wait_until(lambda: not main.not_ok_since(t_same) or main.failed(), 20, "echoes after identical reload")
    assert not main.failed() and not [c for c in on_e4 if c.error]

    # A configuration that does not parse (bad port on line 7) is refused; the running one
    # stays: listeners, targets and connections. Twice: by file change and by SIGHUP.
    bad = (f"admin {lb.admin}\n" + FAST + f"listener broken 127.0.0.1:99999 {e1.addr}\n" +
           v2[len(FAST):])
    assert bad.splitlines()[6].startswith("listener broken")
    err_len = len(lb.stderr())
    m_err = lb.metrics().value("stratus_lb_reloads_total", result="error")
    lb.reload(bad, how="file", expect="error")
    t_bad = time.monotonic()
    lb.reload(how="sighup", expect="error")
    m = lb.metrics()
    assert m.value("stratus_lb_reloads_total", result="error") >= m_err + 2, m
    new_err = lb.stderr()[err_len:]
    assert stderr_line_for(new_err, 7), f"no stderr line names lb.conf line 7:\n{new_err}"
    lb.check_alive()
    assert {p: listen_inode(p) for p in inodes} == inodes
    open_echo(pm, "after-bad-main").close()
    open_echo(px, "after-bad-extra").close()
    wait_until(lambda: not main.not_ok_since(t_bad) or main.failed(), 20, "echoes after the bad reload")
    assert not main.failed() and not [c for c in on_e4 if c.error]
    lb.reload(v2, how="file")

    # The end: every connection closed, the lb back to its file descriptors.
    main.close()
    side.close()
    wait_idle(lb, ["main", "side", "extra"], timeout=15)
    lb.wait_fds_back(base, FD_MARGIN + 1, pipe_bound(base, 1100))   # +1: the added listener


def wait_idle_except(lb, want, timeout=15.0):
    """Waits until connections_active{listener} equals want[listener] for each."""
    return lb.wait_metrics(
        lambda m: all(m.value("stratus_lb_connections_active", listener=l) == n for l, n in want.items()),
        timeout, f"connections_active == {want}")


BAD_CONFIGS = {
    "port_out_of_range": "listener broken 127.0.0.1:99999 {t}",
    "bind_port_zero": "listener zero 127.0.0.1:0 {t}",
    "duplicate_name": "listener a 127.0.0.1:{p2} {t}",
    "duplicate_bind": "listener b 127.0.0.1:{p1} {t}",
    "unknown_directive": "frobnicate 12",
    "bad_name_char": "listener bad/name 127.0.0.1:{p2} {t}",
    "name_too_long": "listener " + "n" * 65 + " 127.0.0.1:{p2} {t}",
    "no_target": "listener lonely 127.0.0.1:{p2}",
    "bad_health_check": "health_check http",
    "bad_listener_option": "listener b 127.0.0.1:{p2} {t} proxy_protocol=v3",
    "unknown_listener_option": "listener b 127.0.0.1:{p2} {t} colour=blue",
    "not_a_number": "health_interval_ms soon",
    "target_without_port": "listener b 127.0.0.1:{p2} 127.0.0.1",
    "bad_admin": "admin 127.0.0.1:notaport",
}


def config_with_line7(line7, admin_port):
    p1, p2, p3, t = free_port(), free_port(), free_port(), f"127.0.0.1:{free_port()}"
    text = ("# lb test configuration\n"
            f"admin 127.0.0.1:{admin_port}\n"
            "health_interval_ms 100\n"
            "\n"
            "# listeners\n"
            f"listener a 127.0.0.1:{p1} {t}\n"
            + line7.format(p1=p1, p2=p2, t=t) + "\n"
            f"listener c 127.0.0.1:{p3} {t}\n")
    assert text.splitlines()[6] == line7.format(p1=p1, p2=p2, t=t)
    return text


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_at_start_exits_2(lb_factory, case):
    lb = lb_factory(start=False)
    lb.start(config_with_line7(BAD_CONFIGS[case], lb.admin_port), wait=False)
    code = lb.wait_exit(10)
    err = lb.stderr()
    assert code == 2, (code, err)
    assert stderr_line_for(err, 7), f"stderr does not name lb.conf line 7:\n{err}"


def test_good_config_variant_starts_and_stops_on_sigint(lb_factory, targets):
    """The control for the bad-config cases: the same file with a valid line 7 (a name of
    the longest allowed length, 64) runs; SIGINT stops it with status 0."""
    echo = targets.server("echo")
    lb = lb_factory(start=False)
    text = config_with_line7("listener " + "n" * 64 + " 127.0.0.1:{p2} " + echo.addr, lb.admin_port)
    lb.start(text)
    lb.wait_target(echo.addr, up=True, timeout=5)
    open_echo(lb.listener_ports()["n" * 64], "sixty-four").close()
    assert lb.stop(signal.SIGINT) == 0


# ---- 4. Robustness ----------------------------------------------------------------------

def test_slow_reader_bounded_memory_others_flow(targets, lb_factory):
    blast, echo = targets.server("blast"), targets.server("echo")
    ps, pf = free_port(), free_port()
    lb = lb_factory(FAST + f"listener slow 127.0.0.1:{ps} {blast.addr}\n"
                           f"listener fast 127.0.0.1:{pf} {echo.addr}\n")
    lb.wait_target(blast.addr, up=True, timeout=5)
    lb.wait_target(echo.addr, up=True, timeout=5)

    # Warm up both paths, then take the baseline.
    t_alone = bulk_echo(pf, 32 << 20)
    with connect(ps) as s:
        read_pattern(s, 0, 4 << 20, 10)
    wait_idle(lb, ["slow", "fast"])
    base, base_rss = lb.settled_fd_kinds(), lb.rss_kb()

    # A client that reads nothing while the target sends as fast as it can.
    slow = connect(ps)
    try:
        wait_until(lambda: blast.open_data_conns() or [c for c in blast.open_conns() if c.sent], 5,
                   "the blast to start")
        time.sleep(2.0)
        conn = max(blast.open_conns(), key=lambda c: c.sent)   # not a health check's
        sent0, cpu0 = conn.sent, lb.cpu_seconds()
        time.sleep(1.5)
        sent1, cpu1 = conn.sent, lb.cpu_seconds()
        assert sent1 - sent0 <= 2 * len(BLAST_CHUNK), f"the target kept sending: {sent0} -> {sent1}"
        assert sent1 < 96 << 20, f"{sent1} bytes in flight for a reader that reads nothing"
        assert cpu1 - cpu0 < 0.4, f"lb used {cpu1 - cpu0:.2f}s CPU in 1.5s while the reader is stalled"
        rss = lb.rss_kb()
        print(f"slow reader: target sent {sent1} bytes then stalled; lb CPU {cpu1 - cpu0:.3f}s in 1.5s; "
              f"RSS {base_rss} -> {rss} kB")
        assert rss - base_rss < RSS_MARGIN_KB, f"RSS grew {rss - base_rss} kB (from {base_rss} kB)"

        # Meanwhile another connection moves data at full speed.
        t_during = bulk_echo(pf, 32 << 20)
        print(f"32 MiB echo: {t_alone:.2f}s alone, {t_during:.2f}s beside the stalled reader")
        assert t_during < max(3 * t_alone, t_alone + 2.0), (t_alone, t_during)
        rss = lb.rss_kb()
        assert rss - base_rss < RSS_MARGIN_KB, f"RSS grew {rss - base_rss} kB (from {base_rss} kB)"

        # The slow reader catches up: every byte in order.
        read_pattern(slow, 0, 48 << 20, 30)
    finally:
        slow.close()
    wait_idle(lb, ["slow", "fast"])
    wait_until(lambda: not blast.open_conns(), 5, "the blast connection to be closed")
    lb.wait_fds_back(base, FD_MARGIN, pipe_bound(base, 2))
    assert lb.rss_kb() - base_rss < RSS_MARGIN_KB


def test_half_close_both_directions(targets, lb_factory):
    replier = targets.server("eof_reply", reply_factor=3)
    closer = targets.server("write_then_eof", greeting=b"hello from the target\n")
    pa, pb = free_port(), free_port()
    lb = lb_factory(FAST + f"listener reply 127.0.0.1:{pa} {replier.addr}\n"
                           f"listener close 127.0.0.1:{pb} {closer.addr}\n")
    lb.wait_target(replier.addr, up=True, timeout=5)
    lb.wait_target(closer.addr, up=True, timeout=5)
    base, base_rss = lb.settled_fd_kinds(), lb.rss_kb()

    for size in (10, 300_000):
        # The client sends, half-closes; the target answers only after that EOF, then closes.
        data = PATTERN[:size]
        with connect(pa) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = recv_until_eof(s, 10)
        assert got == data * 3, (len(got), len(data) * 3)

        # The target half-closes first; the client still sends after reading the EOF.
        with connect(pb) as s:
            assert recv_until_eof(s, 5) == b"hello from the target\n"
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            wait_until(lambda: [c for c in closer.conns if c.eof_at and c.nbytes == size], 10,
                       "the target to read everything, then EOF")
            assert closed_within(s, 5) < 5
        c = [c for c in closer.conns if c.eof_at and c.nbytes == size][-1]
        assert bytes(c.data) == data

    wait_idle(lb, ["reply", "close"])
    lb.wait_fds_back(base, FD_MARGIN, pipe_bound(base, 1))
    assert lb.rss_kb() - base_rss < RSS_MARGIN_KB


def test_refused_connect_closes_client_and_marks_target_down(targets, lb_factory):
    echo = targets.server("echo")
    never = targets.refusing_port()
    port, port2 = free_port(), free_port()
    # fall 20 x 200 ms: the checks alone would take 4 s; a refused connect is immediate.
    lb = lb_factory("health_interval_ms 200\nhealth_timeout_ms 500\nhealth_rise 2\nhealth_fall 20\n"
                    "connect_timeout_ms 1000\n"
                    f"listener r 127.0.0.1:{port} {echo.addr}\n"
                    f"listener never 127.0.0.1:{port2} {never.addr}\n")
    lb.wait_target(echo.addr, up=True, timeout=5)
    open_echo(port, "before").close()
    wait_idle(lb, ["r"])
    base = lb.settled_fd_kinds()

    m0 = lb.metrics()
    echo.stop()
    t0 = time.monotonic()
    with connect(port) as s:
        try_send(s, b"hello?\n")
        assert closed_within(s, 1.5) < 1.5
    m1 = lb.wait_target(echo.addr, up=False, timeout=1.0)
    assert time.monotonic() - t0 < 2.5
    assert m1.value("stratus_lb_connections_rejected_total", listener="r", reason="connect_failed") >= \
        m0.value("stratus_lb_connections_rejected_total", listener="r", reason="connect_failed") + 1, m1
    # Next client: no target at all, closed at once.
    with connect(port) as s:
        assert closed_within(s, 1.0) < 1.0
    m2 = lb.metrics()
    assert m2.value("stratus_lb_connections_rejected_total", listener="r", reason="no_target") >= \
        m1.value("stratus_lb_connections_rejected_total", listener="r", reason="no_target") + 1, m2
    # A target that never listened never comes up; its clients are closed at once too.
    assert m2.target_up(never.addr) == 0.0, m2
    assert m2.value("stratus_lb_target_checks_total", target=never.addr, result="fail") >= 2, m2
    with connect(port2) as s:
        assert closed_within(s, 1.0) < 1.0

    echo.start()
    lb.wait_target(echo.addr, up=True, timeout=5)
    open_echo(port, "after").close()
    wait_idle(lb, ["r", "never"])
    lb.wait_fds_back(base, FD_MARGIN, pipe_bound(base, 1))


def test_resets_mid_stream(targets, lb_factory):
    echo, blast = targets.server("echo"), targets.server("blast")
    pe, pb = free_port(), free_port()
    lb = lb_factory(FAST + f"listener echo 127.0.0.1:{pe} {echo.addr}\n"
                           f"listener blast 127.0.0.1:{pb} {blast.addr}\n")
    lb.wait_target(echo.addr, up=True, timeout=5)
    lb.wait_target(blast.addr, up=True, timeout=5)
    open_echo(pe, "warm").close()
    with connect(pb) as s:
        read_pattern(s, 0, 1 << 20, 10)
    wait_idle(lb, ["echo", "blast"])
    base, base_rss = lb.settled_fd_kinds(), lb.rss_kb()

    for _ in range(3):
        # Clients vanish (RST) with data in flight both ways.
        socks = []
        for i in range(30):
            s = connect(pe)
            s.setblocking(False)
            try:
                s.send(PATTERN[:200_000])
            except BlockingIOError:
                pass
            socks.append(s)
        for i in range(10):
            s = connect(pb)
            read_pattern(s, 0, 256 << 10, 10)
            socks.append(s)
        time.sleep(0.2)
        for s in socks:
            reset_close(s)
        wait_idle(lb, ["echo", "blast"])
        m = lb.metrics()
        assert m.value("stratus_lb_target_connections_active", target=echo.addr) == 0, m
        assert m.value("stratus_lb_target_connections_active", target=blast.addr) == 0, m
        wait_until(lambda: not echo.open_conns() and not blast.open_conns(), 5,
                   "the targets to see their connections closed")

        # Targets vanish (RST) while clients read: the clients are closed promptly.
        socks = []
        for i in range(10):
            s = connect(pb)
            read_pattern(s, 0, 128 << 10, 10)
            socks.append(s)
        blast.reset_conns()
        for s in socks:
            assert closed_within(s, 3.0) < 3.0
            s.close()
        wait_idle(lb, ["blast"])
        # Pipes are reused (or closed): rounds do not add up.
        lb.wait_fds_back(base, FD_MARGIN, pipe_bound(base, 40))

    # Still serving.
    open_echo(pe, "still-here").close()
    wait_idle(lb, ["echo", "blast"])
    lb.wait_fds_back(base, FD_MARGIN, pipe_bound(base, 40))
    assert lb.rss_kb() - base_rss < RSS_MARGIN_KB


def test_max_connections(targets, lb_factory):
    echo = targets.server("echo")
    pa, pb = free_port(), free_port()
    lb = lb_factory(FAST + "max_connections 3\n"
                    f"listener capped 127.0.0.1:{pa} {echo.addr} max_connections=5\n"
                    f"listener dflt 127.0.0.1:{pb} {echo.addr}\n")
    lb.wait_target(echo.addr, up=True, timeout=5)
    base = lb.settled_fd_kinds()

    held = [open_echo(pa, f"cap-{i}") for i in range(5)]
    for i in range(3):
        with connect(pa) as s:
            assert closed_within(s, 1.0) < 1.0
    m = lb.metrics()
    assert m.value("stratus_lb_connections_rejected_total", listener="capped", reason="max_connections") == 3, m
    assert m.value("stratus_lb_connections_active", listener="capped") == 5, m
    assert all(echo_again(s) for s in held)

    held_b = [open_echo(pb, f"dflt-{i}") for i in range(3)]
    with connect(pb) as s:
        assert closed_within(s, 1.0) < 1.0
    m = lb.metrics()
    assert m.value("stratus_lb_connections_rejected_total", listener="dflt", reason="max_connections") == 1, m

    # A slot freed is a slot usable.
    held.pop().close()
    wait_idle_except(lb, {"capped": 4, "dflt": 3})
    held.append(open_echo(pa, "cap-again"))
    assert all(echo_again(s) for s in held + held_b)
    close_all(held + held_b)
    wait_idle(lb, ["capped", "dflt"])
    lb.wait_fds_back(base, FD_MARGIN, pipe_bound(base, 9))


def test_out_of_descriptors_pauses_accepting_and_recovers(targets, lb_factory):
    # Each relayed connection holds up to six descriptors; under a limit the lb cannot
    # raise, it runs out. It must not spin meanwhile, must keep relaying what it has, and
    # must relay new connections again once some close.
    limit = 128
    echo = targets.server("echo")
    port = free_port()
    lb = lb_factory(start=False)
    lb.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    lb.start(FAST + f"listener capped 127.0.0.1:{port} {echo.addr}\n")
    lb.wait_target(echo.addr, up=True, timeout=5)
    first = open_echo(port, "first")
    flood = []
    try:
        for i in range(limit):  # more relays than descriptors (two sockets each, pipes too)
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        # Accepted connections whose target connect() fails for want of a descriptor are
        # closed (only an accept() that fails itself pauses the listener): either way
        # the lb ends up with all its descriptors in use.
        wait_until(lambda: len(os.listdir(f"/proc/{lb.pid}/fd")) >= limit - 4, timeout=10,
                   what="the lb using all its descriptors")
        with open(f"/proc/{lb.pid}/stat") as f:
            t0 = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        time.sleep(2)
        with open(f"/proc/{lb.pid}/stat") as f:
            t1 = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        spent = (t1 - t0) / os.sysconf("SC_CLK_TCK")
        assert spent < 0.6, f"lb used {spent:.2f} CPU-s in 2 s while out of descriptors"
        assert echo_again(first)
    finally:
        close_all(flood)
    def relayed_again():
        try:  # until the lb has seen the closes, a new connection may still be refused
            with open_echo(port, "later") as s:
                return echo_again(s)
        except OSError:
            return False
    wait_until(relayed_again, timeout=10, what="relaying again")
    assert echo_again(first)
    first.close()


# ---- 5. PROXY protocol v2 --------------------------------------------------------------

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_proxy_v2(data):
    """(command byte, family byte, src ip, src port, dst ip, dst port, header length) of a
    PROXY v2 header over TCP/IPv4 at the start of <data>."""
    assert len(data) >= 28, data
    assert data[:12] == PROXY_V2_SIG, data[:16]
    ver_cmd, fam, length = data[12], data[13], struct.unpack(">H", data[14:16])[0]
    assert length >= 12, length
    src, dst = socket.inet_ntoa(data[16:20]), socket.inet_ntoa(data[20:24])
    sport, dport = struct.unpack(">HH", data[24:28])
    return ver_cmd, fam, src, sport, dst, dport, 16 + length


def proxied_conns(server):
    """Connections to <server> that start with a PROXY v2 PROXY (not LOCAL) header."""
    return [c for c in server.conns if len(c.data) >= 16 and bytes(c.data[:12]) == PROXY_V2_SIG
            and c.data[12] == 0x21]


def check_proxy_listener(lb, server, port, payload):
    """One client through <port>: the target sees a PROXY v2 header naming the client's
    address and the listener's, before any client byte, then exactly the client's bytes."""
    before = len(proxied_conns(server))
    with connect(port) as s:
        cip, cport = s.getsockname()
        # The header comes first, even before the client sends anything.
        wait_until(lambda: len(proxied_conns(server)) > before, 3, "the PROXY v2 header")
        c = proxied_conns(server)[-1]
        ver_cmd, fam, src, sport, dst, dport, hlen = parse_proxy_v2(bytes(c.data))
        assert (ver_cmd, fam) == (0x21, 0x11), (hex(ver_cmd), hex(fam))
        assert (src, sport) == (cip, cport), ((src, sport), (cip, cport))
        assert (dst, dport) == ("127.0.0.1", port), (dst, dport)
        assert c.nbytes == hlen, "nothing but the header before the client speaks"
        s.sendall(payload)
        wait_until(lambda: c.nbytes >= hlen + len(payload), 3, "the client's bytes")
        assert bytes(c.data[hlen:]) == payload
        assert hlen == 28, f"header length {hlen}: TLVs after the addresses"
        # Nothing is added in the other direction.
        assert recv_exact(s, len(server.greeting)) == server.greeting


def check_plain_listener(server, port, payload):
    with connect(port) as s:
        s.sendall(payload)
        assert recv_exact(s, len(server.greeting)) == server.greeting
        wait_until(lambda: [c for c in server.conns if bytes(c.data) == payload], 3,
                   "exactly the client's bytes at the target")


def test_proxy_protocol_v2(targets, lb_factory):
    rec = targets.server("record", greeting=b"hi\n")
    pp, plain = free_port(), free_port()
    lb = lb_factory(FAST + f"listener pp 127.0.0.1:{pp} {rec.addr} proxy_protocol=v2\n"
                           f"listener plain 127.0.0.1:{plain} {rec.addr}\n")
    lb.wait_target(rec.addr, up=True, timeout=5)
    check_proxy_listener(lb, rec, pp, b"client bytes, unchanged\n")
    check_proxy_listener(lb, rec, pp, PATTERN[:100_000])
    check_plain_listener(rec, plain, b"no header here\n")


def test_proxy_protocol_global_default_and_override(targets, lb_factory):
    rec = targets.server("record", greeting=b"hi\n")
    pp, plain = free_port(), free_port()
    lb = lb_factory(FAST + "proxy_protocol v2\n"
                    f"listener pp 127.0.0.1:{pp} {rec.addr}\n"
                    f"listener plain 127.0.0.1:{plain} {rec.addr} proxy_protocol=off\n")
    lb.wait_target(rec.addr, up=True, timeout=5)
    check_proxy_listener(lb, rec, pp, b"from the default\n")
    check_plain_listener(rec, plain, b"override off\n")


# ---- 6. More of the reload contract, health-check sharing, connect timeouts, metrics text ----

def test_reload_remove_and_move_listener(targets, lb_factory):
    """A removed listener stops accepting at once and its connections drain; a listener
    whose bind address changed is a removed one plus an added one; an untouched listener
    keeps everything. A target shared with a kept listener stays up for the added one."""
    e1, e2 = targets.server("echo"), targets.server("echo")
    pk, pg, pm, pm2 = free_port(), free_port(), free_port(), free_port()
    head = FAST + "drain_timeout_ms 1500\n"
    lb = lb_factory(head + f"listener keep  127.0.0.1:{pk} {e1.addr}\n"
                           f"listener gone  127.0.0.1:{pg} {e2.addr}\n"
                           f"listener moved 127.0.0.1:{pm} {e1.addr}\n")
    lb.wait_target(e1.addr, up=True, timeout=5)
    lb.wait_target(e2.addr, up=True, timeout=5)
    keep = [open_echo(pk, f"k{i}") for i in range(3)]
    gone = [open_echo(pg, f"g{i}") for i in range(3)]
    moved = [open_echo(pm, f"m{i}") for i in range(3)]
    inode_keep = listen_inode(pk)

    lb.reload(head + f"listener keep  127.0.0.1:{pk} {e1.addr}\n"
                     f"listener moved 127.0.0.1:{pm2} {e1.addr}\n", how="sighup")
    t_applied = time.monotonic()
    # Removed and moved-away addresses refuse at once; the new address works at once
    # (its target is e1, already up for "keep").
    for p in (pg, pm):
        with pytest.raises(ConnectionRefusedError):
            connect(p).close()
    assert listen_inode(pk) == inode_keep
    open_echo(pm2, "new-moved").close()
    assert lb.metrics().value("stratus_lb_draining_connections") == 6
    # Draining connections still work until the deadline, then are closed.
    assert all(echo_again(s) for s in gone + moved)
    for s in gone + moved:
        took = closed_within(s, 1.5 + 3.0) + (time.monotonic() - t_applied)
        assert took > 1.0, f"closed {took:.2f}s after the reload, before drain_timeout_ms 1500"
        s.close()
    lb.wait_metrics(lambda m: m.value("stratus_lb_draining_connections") == 0, 5, "draining 0")
    assert all(echo_again(s) for s in keep)
    wait_until(lambda: lb.listening(pm2) and not lb.listening(pm) and not lb.listening(pg), 2, "sockets")
    close_all(keep)


def test_reload_rename_listener_same_address(targets, lb_factory):
    """Renaming a listener on the same bind address is applied without a refusal and keeps
    the socket and its connections (docs/lb.md): nothing a client sees changes."""
    e = targets.server("echo")
    p = free_port()
    head = FAST + "drain_timeout_ms 1000\n"
    lb = lb_factory(head + f"listener old 127.0.0.1:{p} {e.addr}\n")
    lb.wait_target(e.addr, up=True, timeout=5)
    s = open_echo(p, "before")
    m0 = lb.metrics()
    lb.write_config(head + f"listener new 127.0.0.1:{p} {e.addr}\n")
    os.kill(lb.pid, signal.SIGHUP)
    m = lb.wait_metrics(lambda m: m.value("stratus_lb_reloads_total", result="ok") +
                        m.value("stratus_lb_reloads_total", result="error") >
                        m0.value("stratus_lb_reloads_total", result="ok") +
                        m0.value("stratus_lb_reloads_total", result="error"), 5, "the reload")
    assert m.value("stratus_lb_reloads_total", result="error") == 0, \
        f"valid configuration refused: {lb.stderr().splitlines()[-1]}"
    open_echo(p, "after").close()
    # The "after" connection closes asynchronously; then only the held one is left.
    m = lb.wait_metrics(lambda m: m.value("stratus_lb_connections_active", listener="new") == 1, 5,
                        "only the held connection active on the renamed listener")
    assert not m.find("stratus_lb_connections_active", listener="old")
    assert m.value("stratus_lb_draining_connections") == 0
    time.sleep(1.5)  # past drain_timeout_ms: the held connection is not drained
    s.sendall(b"still\n")
    assert recv_exact(s, 6) == b"still\n"
    s.close()


def test_reload_listener_options_keep_connections(targets, lb_factory):
    """Changing only a listener's max_connections or proxy_protocol keeps its connections
    (no target is removed); new connections get the new options."""
    rec = targets.server("record", greeting=b"hi\n")
    p = free_port()
    head = FAST + "drain_timeout_ms 1000\n"
    lb = lb_factory(head + f"listener l 127.0.0.1:{p} {rec.addr}\n")
    lb.wait_target(rec.addr, up=True, timeout=5)
    held = []
    for i in range(3):
        s = connect(p)
        assert recv_exact(s, 3) == b"hi\n"
        held.append(s)
    lb.reload(head + f"listener l 127.0.0.1:{p} {rec.addr} max_connections=4 proxy_protocol=v2\n")
    assert lb.metrics().value("stratus_lb_draining_connections") == 0
    check_proxy_listener(lb, rec, p, b"new connections carry the header\n")
    wait_idle_except(lb, {"l": 3})
    # 3 held + 1 new = the new maximum of 4; a 5th is refused.
    s4 = connect(p)
    assert recv_exact(s4, 3) == b"hi\n"
    with connect(p) as s5:
        assert closed_within(s5, 1.0) < 1.0
    time.sleep(1.5)   # past drain_timeout_ms: nothing was draining, all still open
    for i, s in enumerate(held):
        s.sendall(f"still {i}\n".encode())
    wait_until(lambda: sum(1 for c in rec.open_conns() if bytes(c.data).startswith(b"still")) == 3, 3,
               "the held connections to still reach the target")
    m = lb.metrics()
    assert m.value("stratus_lb_connections_active", listener="l") == 4, m
    close_all(held + [s4])


def test_reload_health_check_kind_keeps_connections(broker_factory, lb_factory):
    """Switching a listener's health_check from tcp to kafka removes no target: its
    connections stay open (docs/lb.md: only connections to a removed target drain)."""
    b = broker_factory()
    p = free_port()
    head = FAST + "drain_timeout_ms 1000\n"
    lb = lb_factory(head + f"listener k 127.0.0.1:{p} {b.bootstrap}\n")
    lb.wait_target(b.bootstrap, up=True, timeout=5)
    held = connect(p)
    held.sendall(frame(18, 0, 1))
    recv_frame(held)
    lb.reload(head + f"listener k 127.0.0.1:{p} {b.bootstrap} health_check=kafka\n")
    m = lb.metrics()
    time.sleep(2.0)   # past drain_timeout_ms
    held.sendall(frame(18, 0, 2))
    try:
        resp = recv_frame(held)
    except (ConnectionError, OSError) as e:
        raise AssertionError(f"connection closed by a health_check change: {e!r}; metrics right after "
                             f"the reload: {m!r}") from None
    assert struct.unpack(">i", resp[:4])[0] == 2
    held.close()


def test_health_checked_once_per_address_and_kind(targets, lb_factory):
    """Three listeners naming the same target: one check per health_interval_ms, not three."""
    e = targets.server("echo")
    ports = [free_port() for _ in range(3)]
    lb = lb_factory("health_interval_ms 100\nhealth_rise 2\nhealth_fall 2\n" +
                    "".join(f"listener l{i} 127.0.0.1:{p} {e.addr}\n" for i, p in enumerate(ports)))
    lb.wait_target(e.addr, up=True, timeout=5)
    c0 = lb.metrics().value("stratus_lb_target_checks_total", target=e.addr)
    n0 = len(e.conns)
    time.sleep(2.0)
    c1 = lb.metrics().value("stratus_lb_target_checks_total", target=e.addr)
    n1 = len(e.conns)
    assert 10 <= c1 - c0 <= 26, f"{c1 - c0} checks in 2 s at health_interval_ms 100"
    assert 10 <= n1 - n0 <= 26, f"{n1 - n0} check connections reached the target in 2 s"
    for p in ports:
        open_echo(p, f"via-{p}").close()


def test_connect_timeout_closes_client_and_marks_down(lb_factory):
    """A target whose accept queue is full drops SYNs: the relay's connect times out after
    connect_timeout_ms, the client is closed, the target goes down at once."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)      # never accepts: two connections fill the queue
    addr = "127.0.0.1:%d" % srv.getsockname()[1]
    p = free_port()
    try:
        lb = lb_factory("health_interval_ms 200\nhealth_timeout_ms 1000\nhealth_rise 2\nhealth_fall 20\n"
                        f"connect_timeout_ms 500\nlistener t 127.0.0.1:{p} {addr}\n")
        lb.wait_target(addr, up=True, timeout=5)   # the first two checks fill the queue
        filler = []
        for _ in range(2):   # make sure it is full, whatever the checks did
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(srv.getsockname())
            filler.append(f)
        time.sleep(0.2)
        m0 = lb.metrics()
        t0 = time.monotonic()
        with connect(p) as s:
            took = closed_within(s, 3.0)
        assert 0.4 < took < 2.0, f"closed after {took:.2f}s with connect_timeout_ms 500"
        m1 = lb.wait_target(addr, up=False, timeout=1.0)
        assert time.monotonic() - t0 < 3.0
        assert m1.value("stratus_lb_connections_rejected_total", listener="t", reason="connect_failed") == \
            m0.value("stratus_lb_connections_rejected_total", listener="t", reason="connect_failed") + 1, m1
        close_all(filler)
    finally:
        srv.close()


def test_sigterm_with_open_connections_exits_0(targets, lb_factory):
    e = targets.server("echo")
    p = free_port()
    lb = lb_factory(FAST + f"listener l 127.0.0.1:{p} {e.addr}\n")
    lb.wait_target(e.addr, up=True, timeout=5)
    socks = [open_echo(p, f"t{i}") for i in range(50)]
    t0 = time.monotonic()
    assert lb.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - t0 < 5
    for s in socks:
        assert closed_within(s, 2.0) < 2.0
        s.close()
    with pytest.raises(ConnectionRefusedError):
        connect(p).close()


def duplicate_series(m):
    seen, dups = set(), []
    for name, labels, _ in m.samples:
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            dups.append(key)
        seen.add(key)
    return dups


def test_metrics_no_duplicate_series_same_address_two_check_kinds(broker_factory, lb_factory):
    """Each (metric, label set) appears once in GET /metrics (Prometheus rejects a scrape
    with duplicate series), also when one address is checked two ways (docs/lb.md: targets
    are checked once per distinct address and check kind)."""
    b = broker_factory()
    pa, pb = free_port(), free_port()
    lb = lb_factory(FAST + f"listener tcp   127.0.0.1:{pa} {b.bootstrap}\n"
                           f"listener kafka 127.0.0.1:{pb} {b.bootstrap} health_check=kafka\n")
    m = lb.wait_metrics(lambda m: m.find("stratus_lb_target_up", target=b.bootstrap)
                        and all(v == 1.0 for _, v in m.find("stratus_lb_target_up", target=b.bootstrap)),
                        5, "the broker up")
    dups = duplicate_series(m)
    assert not dups, f"duplicate series: {dups}\n{m!r}"


def test_metrics_no_duplicate_series_moved_listener_draining(targets, lb_factory):
    """Each (metric, label set) appears once in GET /metrics, also while the old
    connections of a listener whose bind address moved drain under the same name."""
    e = targets.server("echo")
    pc, pc2 = free_port(), free_port()
    head = FAST + "drain_timeout_ms 3000\n"
    lb = lb_factory(head + f"listener mv 127.0.0.1:{pc} {e.addr}\n")
    lb.wait_target(e.addr, up=True, timeout=5)
    s = open_echo(pc, "old")
    lb.reload(head + f"listener mv 127.0.0.1:{pc2} {e.addr}\n")
    open_echo(pc2, "new").close()
    m = lb.metrics()
    s.close()
    dups = duplicate_series(m)
    assert not dups, f"duplicate series: {dups}\n{m!r}"


def test_reload_by_writing_the_file_in_place(targets, lb_factory):
    """An edit that rewrites the file in place (no rename) reloads it once it is closed."""
    e = targets.server("echo")
    p1, p2 = free_port(), free_port()
    lb = lb_factory(FAST + f"listener a 127.0.0.1:{p1} {e.addr}\n")
    lb.wait_target(e.addr, up=True, timeout=5)
    lb.reload(FAST + f"listener a 127.0.0.1:{p1} {e.addr}\nlistener b 127.0.0.1:{p2} {e.addr}\n",
              how="file", in_place=True)
    wait_until(lambda: lb.listening(p2), 3, "the added listener")
    open_echo(p2, "in-place").close()
    assert lb.metrics().value("stratus_lb_reloads_total", result="error") == 0
