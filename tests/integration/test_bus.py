"""The control-plane bus (src/bus) against a real `stratus broker`, driven through
tests/integration/clients/bus_probe.c (built by scripts/build-test-clients.sh):
produce with idempotence, consume every partition from the beginning, caught_up,
tombstones, a topic created after subscribing, and a broker restart mid-stream."""
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import _REPO

PROBE = os.path.join(_REPO, "build", "clients", "bus_probe")


@pytest.fixture(scope="module", autouse=True)
def built_probe():
    r = subprocess.run([os.path.join(_REPO, "scripts", "build-test-clients.sh"), "bus_probe"],
                       cwd=_REPO, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot build bus_probe:\n{r.stdout}{r.stderr}")


class Probe:
    def __init__(self, workdir, bootstrap, name="probe"):
        self.err_path = os.path.join(workdir, f"{name}.stderr")
        err = open(self.err_path, "ab")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
        self.proc = subprocess.Popen([PROBE, "--bootstrap", bootstrap, "--client-id", name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env)
        err.close()
        self.events = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            ev = json.loads(raw)
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def of(self, kind, **match):
        with self.cond:
            return [e for e in self.events if e["event"] == kind
                    and all(e.get(k) == v for k, v in match.items())]

    def wait(self, pred, timeout=20.0, what="event"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                         f"last events {self.events[-5:]}\n{self.stderr()[-3000:]}")
                self.cond.wait(min(left, 0.1))

    def call(self, line, kind, timeout=20.0):
        """Sends <line> and returns the next <kind> event that answers it."""
        before = len(self.of(kind))
        self.send(line)
        return self.wait(lambda: self.of(kind)[before:] and self.of(kind)[before], timeout, kind)

    def messages(self, topic):
        return [e for e in self.of("message") if e["topic"] == topic]

    def stats(self):
        return self.call("stats", "stats")

    def quit(self):
        self.send("quit")
        self.proc.stdin.close()
        assert self.proc.wait(20) == 0, self.stderr()
        err = self.stderr()
        assert "AddressSanitizer" not in err and "runtime error:" not in err, err

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")


@pytest.fixture
def probes(workdir):
    made = []

    def make(bootstrap, name=None):
        p = Probe(workdir, bootstrap, name or f"probe{len(made)}")
        made.append(p)
        return p
    yield make
    for p in made:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def ensure(probe, args):
    ev = probe.call(f"ensure {args}", "ensured")
    assert ev["rc"] == 0, ev["error"]


def test_bus_produces_and_reads_from_the_beginning_with_caught_up(broker, probes):
    writer = probes(broker.bootstrap, "writer")
    ensure(writer, "psc.sat-a 3")
    ensure(writer, "psc.sat-a 3")  # an existing topic is success
    writer.call("produce_many psc.sat-a 300 v", "queued")
    assert writer.call("flush 20000", "flushed")["rc"] == 0
    s = writer.stats()
    assert (s["pending"], s["failures"]) == (0, 0)

    reader = probes(broker.bootstrap, "reader")
    reader.call("subscribe psc.sat-a", "subscribed")
    reader.wait(lambda: reader.of("caught_up", topic="psc.sat-a"), what="caught_up")
    got = reader.messages("psc.sat-a")
    assert len(got) == 300, "every message before caught_up"
    assert sorted(int(m["value"][1:]) for m in got) == list(range(300))
    assert all(m["key"] == "k" + m["value"][1:] for m in got)

    # Live messages after caught_up arrive within well under a second.
    t0 = time.monotonic()
    writer.call("produce psc.sat-a live hello", "queued")
    reader.wait(lambda: [m for m in reader.messages("psc.sat-a") if m["key"] == "live"], 5, "live message")
    assert time.monotonic() - t0 < 1.0
    assert len(reader.of("caught_up")) == 1, "caught_up is called once"
    writer.quit()
    reader.quit()


def test_bus_empty_topic_is_caught_up_at_once(broker, probes):
    p = probes(broker.bootstrap)
    ensure(p, "status 2")
    p.call("subscribe status", "subscribed")
    p.wait(lambda: p.of("caught_up", topic="status"), 10, "caught_up on an empty topic")
    assert p.messages("status") == []
    p.quit()


def test_bus_topic_created_after_subscribing(broker, probes):
    reader = probes(broker.bootstrap, "reader")
    assert reader.call("subscribe late", "subscribed")["rc"] == 0
    time.sleep(0.5)  # let the reader retry against a topic that does not exist yet
    assert not reader.of("caught_up")
    writer = probes(broker.bootstrap, "writer")
    ensure(writer, "late 2")
    writer.call("produce late a 1", "queued")
    writer.call("produce late b 2", "queued")
    assert writer.call("flush 10000", "flushed")["rc"] == 0
    reader.wait(lambda: len(reader.messages("late")) == 2, 10, "both messages of the late topic")
    reader.wait(lambda: reader.of("caught_up", topic="late"), 10, "caught_up")
    writer.quit()
    reader.quit()


def test_bus_tombstones_arrive_as_null_values(broker, probes):
    p = probes(broker.bootstrap)
    ensure(p, "psc.sat-t 1")
    p.call("produce psc.sat-t pkc-1 {\"generation\":1}", "queued")
    p.call("produce psc.sat-t pkc-1 -", "queued")
    assert p.call("flush 10000", "flushed")["rc"] == 0
    p.call("subscribe psc.sat-t", "subscribed")
    p.wait(lambda: p.of("caught_up"), 10, "caught_up")
    got = p.messages("psc.sat-t")
    assert [(m["key"], m["value"]) for m in got] == [("pkc-1", '{"generation":1}'), ("pkc-1", None)]
    assert [m["offset"] for m in got] == [0, 1]
    p.quit()


def test_bus_broker_restart_mid_stream_loses_and_duplicates_nothing(broker, probes):
    writer = probes(broker.bootstrap, "writer")
    reader = probes(broker.bootstrap, "reader")
    ensure(writer, "stream 2")
    reader.call("subscribe stream", "subscribed")
    reader.wait(lambda: reader.of("caught_up"), 10, "caught_up")
    writer.call("produce_many stream 500 a", "queued")
    broker.stop()
    writer.call("produce_many stream 500 b", "queued")  # queued while the broker is down
    time.sleep(0.3)
    broker.start()
    assert writer.call("flush 60000", "flushed", timeout=70)["rc"] == 0
    s = writer.stats()
    assert (s["pending"], s["failures"]) == (0, 0)
    reader.wait(lambda: len(reader.messages("stream")) >= 1000, 30, "1000 messages after the restart")
    time.sleep(0.3)
    got = reader.messages("stream")
    values = [m["value"] for m in got]
    assert len(values) == 1000 and len(set(values)) == 1000, "no loss, no duplicates"
    # Per key (so per partition) the produce order is kept: a<i> before b<i>.
    by_key = {}
    for m in got:
        by_key.setdefault(m["key"], []).append(m["value"][0])
    assert all(v == ["a", "b"] for v in by_key.values())
    writer.quit()
    reader.quit()
