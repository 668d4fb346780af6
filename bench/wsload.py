"""A lean WebSocket load generator: publishers and subscribers on raw asyncio protocols.

The load generator shares a 2-core machine with the server, so it must cost far less
per frame than what it measures. A general client (the `websockets` library, our SDK)
spends more CPU receiving a frame than a relay spends forwarding it, and a benchmark
driven by one measures the client. So this speaks just enough RFC 6455 itself: a
hand-written upgrade request; unmasked server frames parsed in place in
`data_received`, many per call; client frames masked (with the C helper of
`websockets`) and written in batches. It reads nothing of a delivered frame but its
`seq` and the send time `t0` stamped into its payload.

Latency is publish-to-deliver: `time.monotonic_ns()` when the publisher builds the
frame, against the same clock when the subscriber's bytes arrive. CLOCK_MONOTONIC is
system-wide on Linux, and here both ends live in this one process anyway.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import re
import resource
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from websockets.speedups import apply_mask

_SEQ = re.compile(rb'\{"seq":(\d+)')
_T0 = re.compile(rb'"t0":(\d+)')
_ACCEPTED = b'{"kind":"ack","ok":true,"message":"accepted"'
_REJECTED = b'"ok":false'
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
ACK_EVERY = 100  # events; acks are cumulative, so one per 100 (or per 50 ms) says it all
ACK_INTERVAL = 0.05


def client_frame(payload: bytes, opcode: int = 0x1, *, compressed: bool = False) -> bytes:
    """One masked, final client frame (RFC 6455 section 5.2); RSV1 marks it deflated."""
    n = len(payload)
    first = 0x80 | (0x40 if compressed else 0) | opcode
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2)
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8)
    mask = random.randbytes(4)
    return head + mask + apply_mask(payload, mask)


class HandshakeError(Exception):
    """The server did not switch protocols; the message carries its status line."""


class _Conn(asyncio.Protocol):
    """The framing shared by publishers and subscribers; subclasses handle text."""

    def __init__(
        self, host: str, port: int, path: str, *, expect_hello: bool, deflate: bool = False
    ) -> None:
        offer = (
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            if deflate
            else ""
        )
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"{offer}\r\n"
        ).encode()
        self.deflate = deflate
        self._compressor: Any = None  # zlib objects once permessage-deflate is agreed
        self._decompressor: Any = None
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.expect_hello = expect_hello
        self.hello: bytes | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[tuple[int, str]] = loop.create_future()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost before ready: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result((1006, repr(exc) if exc else ""))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded and not self._upgrade():
            return
        self._parse(time.monotonic_ns())

    # ------------------------------------------------------------------ framing

    def _upgrade(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(self.buf[: self.buf.find(b"\r\n")]).decode(errors="replace")
        if not status.startswith("HTTP/1.1 101"):
            self.ready.set_exception(HandshakeError(status))
            assert self.transport is not None
            self.transport.close()
            return False
        headers = bytes(self.buf[:end]).decode(errors="replace").lower()
        if self.deflate:
            agreed = re.search(r"sec-websocket-extensions:\s*permessage-deflate([^\r\n]*)", headers)
            if agreed is None:
                self.ready.set_exception(HandshakeError("the server refused permessage-deflate"))
                assert self.transport is not None
                self.transport.close()
                return False
            bits = re.search(r"client_max_window_bits=(\d+)", agreed.group(1))
            # Context takeover both ways: uvicorn asks for neither no_context_takeover.
            self._compressor = zlib.compressobj(wbits=-int(bits.group(1) if bits else 15))
            self._decompressor = zlib.decompressobj(wbits=-15)
        del self.buf[: end + 4]
        self.upgraded = True
        if not self.expect_hello:
            self.ready.set_result(None)
        return True

    def _parse(self, now: int) -> None:
        buf = self.buf
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10])
                head = 10
            end = pos + head + length
            if end > n:
                break
            self._frame(buf[pos], pos + head, end, now)
            pos = end
        if pos:
            del buf[:pos]

    def _frame(self, first: int, start: int, stop: int, now: int) -> None:
        opcode = first & 0x0F
        if opcode == 0x1:
            text: bytes | bytearray = self.buf
            if first & 0x40:  # RSV1: deflated (RFC 7692 section 7.2.2)
                text = self._decompressor.decompress(bytes(text[start:stop]) + _DEFLATE_TAIL)
                start, stop = 0, len(text)
            if self.hello is None and self.expect_hello:
                self.hello = bytes(text[start:stop])
                self.ready.set_result(None)
            else:
                self.on_text(text, start, stop, now)
        elif opcode == 0x9:  # ping: answer with its payload
            self.write(client_frame(bytes(self.buf[start:stop]), 0xA))
        elif opcode == 0x8:
            self._on_close(bytes(self.buf[start:stop]))

    def _on_close(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2]) if len(payload) >= 2 else 1005
        reason = payload[2:].decode(errors="replace")
        if not self.closed.done():
            self.closed.set_result((code, reason))
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed {code}: {reason}"))
        self.write(client_frame(payload[:2], 0x8))
        assert self.transport is not None
        self.transport.close()

    def on_text(self, buf: bytes | bytearray, start: int, end: int, now: int) -> None:
        raise NotImplementedError

    def text_frame(self, payload: bytes) -> bytes:
        if self._compressor is None:
            return client_frame(payload)
        data = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        return client_frame(data[:-4], compressed=True)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame((1000).to_bytes(2), 0x8))
            self.transport.close()


class Subscriber(_Conn):
    """Counts deliveries, records latencies while told to, acks cumulatively."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        expect_hello: bool,
        on_progress: Callable[[], None],
        deflate: bool = False,
    ) -> None:
        super().__init__(host, port, path, expect_hello=expect_hello, deflate=deflate)
        self.count = 0
        self.max_seq = 0
        self.unacked = 0
        self.latencies: list[int] | None = None
        self.on_progress = on_progress
        self._ack_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._ack_timer = asyncio.get_running_loop().call_later(ACK_INTERVAL, self._tick)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.on_progress()

    def on_text(self, buf: bytes | bytearray, start: int, end: int, now: int) -> None:
        self.count += 1
        m = _SEQ.match(buf, start, end)
        # The bare relay forwards frames as published: no seq, so ack the count.
        self.max_seq = int(m.group(1)) if m else self.count
        if self.latencies is not None:
            t = _T0.search(buf, start, end)
            if t is not None:
                self.latencies.append(now - int(t.group(1)))
        self.unacked += 1
        if self.unacked >= ACK_EVERY:
            self._ack()

    def _ack(self) -> None:
        self.unacked = 0
        self.write(self.text_frame(b'{"kind":"ack","seq":%d}' % self.max_seq))

    def _tick(self) -> None:
        if self.unacked:
            self._ack()
        self._ack_timer = asyncio.get_running_loop().call_later(ACK_INTERVAL, self._tick)


class Publisher(_Conn):
    """Sends signal events stamped with `t0`; counts the gateway's acks."""

    def __init__(
        self, host: str, port: int, path: str, *, expect_hello: bool, deflate: bool = False
    ) -> None:
        super().__init__(host, port, path, expect_hello=expect_hello, deflate=deflate)
        self.sent = 0
        self.acked = 0
        self.rejected = 0
        self.first_rejection: bytes | None = None
        # Ids as UUID strings from a random prefix and a counter: unique, and cheaper
        # than uuid4() per event.
        self._id_prefix = str(uuid.uuid4())[:24]

    def publish(self, k: int) -> None:
        frames = []
        prefix = self._id_prefix
        for _ in range(k):
            self.sent += 1
            text = (
                f'{{"kind":"event","category":"signal","id":"{prefix}{self.sent:012x}",'
                '"title":"bench","payload":{"symbol":"BTC/USDT","direction":"long",'
                f'"strength":0.8,"rsi":28.4,"t0":{time.monotonic_ns()}}}}}'
            )
            frames.append(self.text_frame(text.encode()))
        self.write(b"".join(frames))

    def on_text(self, buf: bytes | bytearray, start: int, end: int, now: int) -> None:
        if buf.startswith(_ACCEPTED, start, end):
            self.acked += 1
        elif buf.find(_REJECTED, start, end) >= 0:
            self.rejected += 1
            if self.first_rejection is None:
                self.first_rejection = bytes(buf[start:end])


async def open_conn[C: _Conn](factory: Callable[[], C], host: str, port: int) -> C:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        _, proto = await loop.create_connection(factory, host, port)
        await proto.ready
    return proto


# --------------------------------------------------------------------------- phases


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of processes (Linux /proc); vanished ones count zero."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def machine_cpu_seconds() -> float:
    """CPU time every core spent busy (not idle, not waiting on I/O), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class PhaseResult:
    """What one scenario measured over its window."""

    name: str
    seconds: float
    sent: int
    delivered: int
    acked: int
    rejected: int
    lost: int
    latencies_ns: list[int] = field(repr=False)
    server_cpu: float
    client_cpu: float
    db_cpu: float | None
    other_cpu: float  # the rest of the machine: anything else running skews the numbers

    @property
    def rate(self) -> float:
        """Events per second delivered: deliveries / subscribers / seconds."""
        return self.delivered / self.seconds

    @property
    def server_us_per_event(self) -> float:
        """Server CPU per delivered event: robust where the rate is not, on a busy host."""
        return 1e6 * self.server_cpu / self.rate if self.rate else 0.0

    @property
    def ack_rate(self) -> float:
        return self.acked / self.seconds

    def percentile(self, p: float) -> float | None:
        """Latency percentile in milliseconds (nearest rank)."""
        lat = self.latencies_ns
        if not lat:
            return None
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] / 1e6


class Load:
    """Publishers and subscribers of one target, driven phase by phase."""

    def __init__(
        self,
        publishers: list[Publisher],
        subscribers: list[Subscriber],
        *,
        window: int,
        server_pids: Callable[[], Sequence[int]],
        db_pids: Callable[[], Sequence[int]] | None,
    ) -> None:
        self.publishers = publishers
        self.subscribers = subscribers
        self.window = window
        self._server_pids = server_pids
        self._db_pids = db_pids
        self._progress = asyncio.Event()
        self._waiting = False

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        publisher_paths: list[str],
        subscriber_paths: list[str],
        expect_hello: bool,
        window: int,
        server_pids: Callable[[], Sequence[int]],
        db_pids: Callable[[], Sequence[int]] | None = None,
        deflate: bool = False,
    ) -> Load:
        load: Load | None = None

        def progress() -> None:
            if load is not None:
                load.notify()

        subs = [
            await open_conn(
                partial(
                    Subscriber,
                    host,
                    port,
                    p,
                    expect_hello=expect_hello,
                    on_progress=progress,
                    deflate=deflate,
                ),
                host,
                port,
            )
            for p in subscriber_paths
        ]
        pubs = [
            await open_conn(
                partial(Publisher, host, port, p, expect_hello=expect_hello, deflate=deflate),
                host,
                port,
            )
            for p in publisher_paths
        ]
        load = cls(pubs, subs, window=window, server_pids=server_pids, db_pids=db_pids)
        return load

    def notify(self) -> None:
        if self._waiting:
            self._progress.set()

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.publishers)

    def delivered_to_all(self) -> int:
        return min(s.count for s in self.subscribers)

    def close(self) -> None:
        for c in [*self.publishers, *self.subscribers]:
            c.close()

    def _check_alive(self) -> None:
        for c in [*self.publishers, *self.subscribers]:
            if c.closed.done():
                code, reason = c.closed.result()
                raise ConnectionError(f"the server closed a connection: {code} {reason}")

    async def _publish(self, k: int) -> None:
        """Publish `k` events round-robin, never more than `window` undelivered."""
        while k > 0:
            room = self.window - (self.sent - self.delivered_to_all())
            if room <= 0:
                self._check_alive()
                self._waiting = True
                self._progress.clear()
                try:
                    await asyncio.wait_for(self._progress.wait(), 1.0)
                except TimeoutError:
                    pass
                finally:
                    self._waiting = False
                continue
            step = min(k, room, 100)
            per, extra = divmod(step, len(self.publishers))
            for i, pub in enumerate(self.publishers):
                if n := per + (1 if i < extra else 0):
                    pub.publish(n)
            k -= step

    async def drain(self) -> int:
        """Wait (30 s at most) until every subscriber has every event; returns how many
        deliveries never came."""
        deadline = time.monotonic() + 30
        while self.delivered_to_all() < self.sent and time.monotonic() < deadline:
            if any(c.closed.done() for c in self.subscribers):
                break
            await asyncio.sleep(0.01)
        return sum(max(0, self.sent - s.count) for s in self.subscribers)

    def _snapshot(self) -> _Counters:
        return _Counters(
            sent=self.sent,
            deliveries=sum(s.count for s in self.subscribers),
            acked=sum(p.acked for p in self.publishers),
            rejected=sum(p.rejected for p in self.publishers),
            server=cpu_seconds(self._server_pids()),
            client=own_cpu_seconds(),
            db=cpu_seconds(self._db_pids()) if self._db_pids else 0.0,
            machine=machine_cpu_seconds(),
        )

    def _record(self, on: bool) -> None:
        for s in self.subscribers:
            s.latencies = [] if on else None

    def _take_latencies(self) -> list[int]:
        latencies = sorted(x for s in self.subscribers for x in (s.latencies or ()))
        self._record(False)
        return latencies

    async def run(self, name: str, seconds: float, rate: float | None) -> PhaseResult:
        """Publish at `rate` events/s, or as fast as the window allows when None.

        At a fixed rate every event of the phase counts, including those still in
        flight when it ends; at the maximum rate only what arrived within it.
        """
        await self.drain()
        self._record(True)
        before = self._snapshot()
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < seconds:
            if rate is None:
                await self._publish(100)
                await asyncio.sleep(0)  # let the replies in
                continue
            due = int(elapsed * rate) + 1 - (self.sent - before.sent)
            if due > 0:
                await self._publish(due)
            next_at = (self.sent - before.sent) / rate
            await asyncio.sleep(max(0.0, next_at - (time.monotonic() - start)))
        window_s = time.monotonic() - start
        after = self._snapshot()
        if rate is None:
            latencies = self._take_latencies()
        lost = await self.drain()
        if rate is not None:
            latencies = self._take_latencies()
            after.deliveries = sum(s.count for s in self.subscribers)
        deliveries = after.deliveries - before.deliveries
        self._check_alive()
        cpu = after.cpu_minus(before)
        return PhaseResult(
            name=name,
            seconds=window_s,
            sent=after.sent - before.sent,
            delivered=deliveries // len(self.subscribers),
            acked=after.acked - before.acked,
            rejected=after.rejected - before.rejected,
            lost=lost,
            latencies_ns=latencies,
            server_cpu=cpu.server / window_s,
            client_cpu=cpu.client / window_s,
            db_cpu=cpu.db / window_s if self._db_pids else None,
            other_cpu=max(0.0, cpu.machine - cpu.server - cpu.client - cpu.db) / window_s,
        )


@dataclass
class _Counters:
    sent: int
    deliveries: int
    acked: int
    rejected: int
    server: float
    client: float
    db: float
    machine: float

    def cpu_minus(self, before: _Counters) -> _Counters:
        return _Counters(
            0,
            0,
            0,
            0,
            self.server - before.server,
            self.client - before.client,
            self.db - before.db,
            self.machine - before.machine,
        )
