"""Small TCP servers and clients for the `stratus lb` tests (a module, not a program).

Everything runs on one asyncio loop in a background thread (`TargetLoop`); the test thread
drives it with blocking calls. Servers listen on 127.0.0.1 only, on a free port that stays
the same across stop()/start(), so a test can take a target down and bring it back:

- `echo`: writes back what it reads; closes after the client's EOF.
- `eof_reply`: reads until EOF, then answers `reply_factor` times what it read and closes
  (only works through a relay that passes a half-close on).
- `blast`: sends `PATTERN` bytes (data[i] = i % 251) as fast as the peer takes them; reads
  and discards what comes in.
- `silent`: accepts and reads, never answers (a Kafka health check must fail).
- `record`: sends `greeting`, then records what it reads.
- `write_then_eof`: sends `greeting`, half-closes (FIN), keeps reading and recording.

Every server records per accepted connection (`Conn`) the first bytes read (up to
`record_limit`), the byte count, and the first line (`token`): clients that start with
"<name>\\n" tell which server they reached. `RefusingPort` is a bound, never listening
socket: connecting to it is refused. `EchoLoad` keeps many echo connections busy."""
import asyncio
import random
import socket
import struct
import threading
import time

PATTERN_PERIOD = 251
PATTERN = bytes(range(PATTERN_PERIOD)) * 4097        # ~1 MiB plus one period
BLAST_CHUNK = PATTERN[:PATTERN_PERIOD * 1024]        # a whole number of periods


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pattern_ok(offset, data):
    """True when <data> is the blast pattern starting at stream offset <offset>."""
    mv = memoryview(data)
    step = PATTERN_PERIOD * 4096
    pos = 0
    while pos < len(mv):
        n = min(step, len(mv) - pos)
        start = (offset + pos) % PATTERN_PERIOD
        if mv[pos:pos + n] != PATTERN[start:start + n]:
            return False
        pos += n
    return True


class TargetLoop:
    """One asyncio loop on a daemon thread; owns every server and client load made here."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.servers = []
        self.loads = []
        self.refusing = []
        self.thread = threading.Thread(target=self._run, name="tcp-targets", daemon=True)
        self.thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro, timeout=60):
        """Runs <coro> on the loop and returns its result (blocking)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def server(self, mode="echo", port=None, **kw):
        s = TcpServer(self, mode, port, **kw)
        self.servers.append(s)
        s.start()
        return s

    def refusing_port(self):
        r = RefusingPort()
        self.refusing.append(r)
        return r

    def echo_load(self, port, n, prefix, interval=0.5):
        load = EchoLoad(self, port, n, prefix, interval)
        self.loads.append(load)
        return load

    def close(self):
        try:
            for load in self.loads:
                load.close()
            for s in self.servers:
                s.stop(close_conns=True)
            self.call(self._cancel_all(), timeout=10)
        finally:
            for r in self.refusing:
                r.close()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()

    async def _cancel_all(self):
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Conn:
    """One connection accepted by a TcpServer."""

    def __init__(self, peer, limit):
        self.peer = peer
        self.limit = limit
        self.data = bytearray()
        self.nbytes = 0
        self.sent = 0
        self.token = None
        self.error = None
        self.opened_at = time.monotonic()
        self.closed_at = None
        self.eof_at = None
        self.writer = None

    @property
    def closed(self):
        return self.closed_at is not None


class TcpServer:
    def __init__(self, tl, mode, port=None, greeting=b"", reply_factor=1, record_limit=1 << 20):
        assert mode in ("echo", "eof_reply", "blast", "silent", "record", "write_then_eof"), mode
        self.tl = tl
        self.mode = mode
        self.port = port or free_port()
        self.greeting = greeting
        self.reply_factor = reply_factor
        self.record_limit = record_limit
        self.conns = []
        self.tokens = []
        self._server = None
        self._lock = threading.Lock()

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def __repr__(self):
        return f"TcpServer({self.mode} {self.addr})"

    # -- control (from the test thread)

    def start(self):
        self.tl.call(self._start())
        return self

    def stop(self, close_conns=False, reset=False):
        """Closes the listening socket (connecting is refused from now on); with
        <close_conns> also closes every open connection (with an RST when <reset>)."""
        self.tl.call(self._stop(close_conns, reset))

    def reset_conns(self):
        """Aborts every open connection with an RST (SO_LINGER 0); keeps listening."""
        self.tl.call(self._close_conns(reset=True))

    @property
    def listening(self):
        return self._server is not None

    # -- observations (safe from the test thread)

    def data_conns(self):
        """Connections that carried at least one byte (health checks carry none)."""
        with self._lock:
            return [c for c in self.conns if c.nbytes > 0]

    def open_conns(self):
        with self._lock:
            return [c for c in self.conns if not c.closed]

    def open_data_conns(self):
        with self._lock:
            return [c for c in self.conns if not c.closed and c.nbytes > 0]

    def token_set(self):
        with self._lock:
            return set(self.tokens)

    def sent_total(self):
        with self._lock:
            return sum(c.sent for c in self.conns)

    # -- the loop side

    async def _start(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True, backlog=4096)

    async def _stop(self, close_conns, reset):
        if self._server is not None:
            self._server.close()   # closes the listening sockets now; no wait_closed()
            self._server = None
        if close_conns:
            await self._close_conns(reset)

    async def _close_conns(self, reset=False):
        with self._lock:
            conns = [c for c in self.conns if not c.closed and c.writer is not None]
        for c in conns:
            if reset:
                sock = c.writer.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
            c.writer.transport.abort()

    def _note(self, c, data):
        c.nbytes += len(data)
        if len(c.data) < c.limit:
            c.data += data[:c.limit - len(c.data)]
        if c.token is None:
            i = c.data.find(b"\n")
            if i >= 0:
                c.token = c.data[:i].decode(errors="replace")
                with self._lock:
                    self.tokens.append(c.token)

    async def _handle(self, reader, writer):
        c = Conn(writer.get_extra_info("peername"), self.record_limit)
        c.writer = writer
        with self._lock:
            self.conns.append(c)
        try:
            await getattr(self, "_mode_" + self.mode)(c, reader, writer)
        except (ConnectionError, OSError) as e:
            c.error = repr(e)
        finally:
            c.closed_at = time.monotonic()
            try:
                writer.close()
            except Exception:
                pass

    async def _read_all(self, c, reader):
        while True:
            data = await reader.read(65536)
            if not data:
                c.eof_at = time.monotonic()
                return
            self._note(c, data)

    async def _mode_echo(self, c, reader, writer):
        while True:
            data = await reader.read(65536)
            if not data:
                c.eof_at = time.monotonic()
                return
            self._note(c, data)
            writer.write(data)
            c.sent += len(data)
            await writer.drain()

    async def _mode_eof_reply(self, c, reader, writer):
        await self._read_all(c, reader)
        reply = bytes(c.data) * self.reply_factor
        writer.write(reply)
        c.sent += len(reply)
        await writer.drain()

    async def _mode_blast(self, c, reader, writer):
        async def discard():
            try:
                await self._read_all(c, reader)
            except (ConnectionError, OSError):
                pass
        task = asyncio.ensure_future(discard())
        try:
            while True:
                writer.write(BLAST_CHUNK)
                await writer.drain()
                c.sent += len(BLAST_CHUNK)
                if writer.transport.is_closing():
                    return
        finally:
            task.cancel()

    async def _mode_silent(self, c, reader, writer):
        await self._read_all(c, reader)

    async def _mode_record(self, c, reader, writer):
        if self.greeting:
            writer.write(self.greeting)
            c.sent += len(self.greeting)
            await writer.drain()
        await self._read_all(c, reader)

    async def _mode_write_then_eof(self, c, reader, writer):
        writer.write(self.greeting)
        c.sent += len(self.greeting)
        await writer.drain()
        writer.write_eof()
        await self._read_all(c, reader)


class RefusingPort:
    """A port that refuses connections: a bound socket that never listens."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        self.sock.close()


class LoadConn:
    def __init__(self, name):
        self.name = name
        self.reader = None
        self.writer = None
        self.rounds = 0
        self.last_ok = None          # monotonic time a round trip that succeeded was started
        self.error = None
        self.closed_at = None
        self.local_port = None

    @property
    def ok(self):
        return self.error is None


class EchoLoad:
    """<n> connections to 127.0.0.1:<port> (through the lb to echo servers). Each sends
    "<name>\\n" first (its token at the server), then "<name> <seq>\\n" every ~<interval> s
    (jittered) and checks the echo. A connection that sees EOF, an error, a wrong echo or
    no echo within 10 s stops and keeps the reason in `error` and the time in `closed_at`."""

    def __init__(self, tl, port, n, prefix, interval=0.5):
        self.tl = tl
        self.port = port
        self.conns = [LoadConn(f"{prefix}{i}") for i in range(n)]
        self.interval = interval
        self.stopping = False
        self.tasks = []

    def start(self, batch=100, timeout=60):
        """Opens every connection (in batches) and starts the traffic; returns at once
        after the connects. Raises if a connect fails."""
        self.tl.call(self._open_all(batch), timeout)
        return self

    async def _open_all(self, batch):
        for i in range(0, len(self.conns), batch):
            await asyncio.gather(*(self._open(c) for c in self.conns[i:i + batch]))
        for c in self.conns:
            self.tasks.append(asyncio.ensure_future(self._run(c)))

    async def _open(self, c):
        c.reader, c.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port, limit=1 << 16), 10)
        c.local_port = c.writer.get_extra_info("sockname")[1]

    async def _round(self, c, msg):
        t0 = time.monotonic()
        c.writer.write(msg)
        await c.writer.drain()
        line = await asyncio.wait_for(c.reader.readuntil(b"\n"), 10)
        if line != msg:
            raise ValueError(f"bad echo {line[:80]!r} for {msg!r}")
        c.rounds += 1
        c.last_ok = t0

    async def _run(self, c):
        try:
            await self._round(c, f"{c.name}\n".encode())
            seq = 0
            while not self.stopping:
                await asyncio.sleep(self.interval * (0.5 + random.random()))
                if self.stopping:
                    break
                seq += 1
                await self._round(c, f"{c.name} {seq}\n".encode())
        except asyncio.CancelledError:
            raise
        except asyncio.IncompleteReadError:
            c.error = "eof"
        except asyncio.TimeoutError:
            c.error = "timeout"
        except (ConnectionError, OSError, ValueError) as e:
            c.error = repr(e)
        if c.error is not None:
            c.closed_at = time.monotonic()

    # -- observations

    def started_all(self):
        """True when every connection finished its first round trip (or failed)."""
        return all(c.rounds >= 1 or c.error is not None for c in self.conns)

    def failed(self):
        return [c for c in self.conns if c.error is not None]

    def not_ok_since(self, t):
        """Connections without a successful round trip started at or after <t>."""
        return [c for c in self.conns if c.last_ok is None or c.last_ok < t]

    # -- end

    def close(self):
        if self.stopping:
            return
        self.stopping = True
        try:
            self.tl.call(self._close(), 20)
        except Exception:
            pass

    async def _close(self):
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for c in self.conns:
            if c.writer is not None:
                c.writer.close()
