"""Group commit: one writer task persists whatever arrived during the last commit.

A gateway that commits each event alone tops out near the database's single-row
commit rate (about 2,600/s on PostgreSQL here); committing batches lifts that to
tens of thousands while every event is still acknowledged only after its own batch
is durable. The writer also routes each batch after it commits, in `seq` order, so
delivery order equals commit order and nothing is delivered that is not stored.

Events are stored with ONE statement per batch, through the driver, on a connection
the writer holds, in autocommit (a single statement is atomic and durable when it
returns): `INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id, seq`, so the ids it
does not return are the duplicates. On PostgreSQL the rows travel as arrays
(`unnest`), one prepared statement for every batch size. Compared with a pooled
SQLAlchemy transaction (checkout, pre-ping, BEGIN, SELECT known ids, INSERT, COMMIT:
about 7 round trips) this took p99 at 1,000 events/s from ~25 ms to ~9 ms and the
maximum rate up by 40% (SQLite: 2.7x); see docs/PERFORMANCE.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.metrics import Metrics
from shared.db.models import ClientCursor, EventRow, LogRow, utcnow
from shared.logging import get_logger

log = get_logger(__name__)

# Core tables: the hot path inserts plain dicts, skipping the ORM's unit of work.
_events: Table = EventRow.__table__  # type: ignore[assignment]
_logs: Table = LogRow.__table__  # type: ignore[assignment]
_cursors: Table = ClientCursor.__table__  # type: ignore[assignment]


_PG_INSERT_EVENTS = """
INSERT INTO events (id, category, source, symbol, correlation_id, causation_id, ts,
                    received_at, recipients, body)
SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[],
                     $5::varchar[], $6::varchar[], $7::timestamptz[], $8::timestamptz[],
                     $9::text[], $10::text[])
ON CONFLICT (id) DO NOTHING
RETURNING id, seq
"""
_PG_KNOWN_IDS = "SELECT id, seq FROM events WHERE id = ANY($1::varchar[])"
_PG_UPSERT_CURSORS = """
INSERT INTO client_cursors (principal, seq, updated_at)
SELECT * FROM unnest($1::varchar[], $2::bigint[], $3::timestamptz[])
ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
WHERE client_cursors.seq < excluded.seq
"""
_LITE_INSERT_EVENTS = """
INSERT INTO events (id, category, source, symbol, correlation_id, causation_id, ts,
                    received_at, recipients, body)
VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id, seq
"""
_LITE_UPSERT_CURSORS = """
INSERT INTO client_cursors (principal, seq, updated_at) VALUES {}
ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
WHERE client_cursors.seq < excluded.seq
"""


def _sqlite_time(ts: datetime) -> str:
    """A UTC time as SQLAlchemy stores it in SQLite (naive ISO text), so both agree."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class PersistUnavailable(Exception):
    """The database refused or failed the batch; nothing in it was stored."""


@dataclass(slots=True)
class PendingEvent:
    id: str
    category: str
    source: str
    symbol: str | None
    correlation_id: str | None
    causation_id: str | None
    ts: datetime
    recipients: tuple[str, ...]
    body: str  # the frame without `seq`; `seq` is spliced in once the database assigns it
    future: asyncio.Future[Committed] = field(repr=False)


@dataclass(slots=True)
class PendingLog:
    row: dict[str, Any]
    future: asyncio.Future[None] = field(repr=False)


@dataclass(slots=True)
class Committed:
    """The outcome of one event: its `seq`, and whether it had been stored before."""

    seq: int
    duplicate: bool
    dispatched: int = 0


def frame_with_seq(seq: int, body: str) -> str:
    """Splice `seq` into a stored frame: `{"kind":...}` -> `{"seq":N,"kind":...}`."""
    return f'{{"seq":{seq},{body[1:]}'


RouteFn = Callable[[Sequence[PendingEvent], Sequence[int]], Sequence[int]]
"""Routes committed events; returns how many live clients each was dispatched to."""


class Persister:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        metrics: Metrics,
        batch_max: int = 500,
        cursor_flush_interval: float = 0.5,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._batch_max = batch_max
        self._flush_interval = cursor_flush_interval
        self._queue: asyncio.Queue[PendingEvent | PendingLog | None] = asyncio.Queue()
        self._cursors: dict[str, int] = {}
        self._writing_cursors: dict[str, int] = {}
        self._held: Any = None  # the SQLAlchemy connection kept checked out
        self._driver_conn: Any = None  # its asyncpg / aiosqlite connection
        self._task: asyncio.Task[None] | None = None
        self._route: RouteFn = lambda events, seqs: [0] * len(events)
        self._dialect = engine.dialect.name

    def set_router(self, route: RouteFn) -> None:
        self._route = route

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="persister")

    async def stop(self) -> None:
        """Commit everything queued, flush cursors, then end the writer."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        await self._drop_driver()

    # ------------------------------------------------------------------ producers

    def submit_event(self, pending: PendingEvent) -> None:
        self._queue.put_nowait(pending)

    def submit_log(self, pending: PendingLog) -> None:
        self._queue.put_nowait(pending)

    def ack_cursor(self, principal: str, seq: int) -> None:
        """Record a client's acknowledgement; written with the next batch or flush."""
        if seq > self._cursors.get(principal, 0):
            self._cursors[principal] = seq

    def pending_cursor(self, principal: str) -> int:
        """The client's acknowledged cursor not yet stored (0 if none)."""
        return max(self._cursors.get(principal, 0), self._writing_cursors.get(principal, 0))

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ writer

    async def _run(self) -> None:
        stopping = False
        last_flush = time.monotonic()
        while not stopping:
            batch, stopping = await self._collect()
            flush_cursors = stopping or time.monotonic() - last_flush >= self._flush_interval
            if not batch and not (flush_cursors and self._cursors):
                continue
            cursors = self._take_cursors() if flush_cursors else {}
            if flush_cursors:
                last_flush = time.monotonic()
            try:
                await self._commit(batch, cursors)
                self._writing_cursors = {}
            except Exception as e:  # the database is down or refused: fail this batch only
                self._writing_cursors = {}
                log.error("persist_failed", error=repr(e), batch=len(batch))
                for c_principal, c_seq in cursors.items():
                    self.ack_cursor(c_principal, c_seq)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(PersistUnavailable(str(e)))

    async def _collect(self) -> tuple[list[PendingEvent | PendingLog], bool]:
        """Wait for work (or the flush interval), then take all that is queued."""
        batch: list[PendingEvent | PendingLog] = []
        try:
            first = await asyncio.wait_for(self._queue.get(), timeout=self._flush_interval)
        except TimeoutError:
            return batch, False
        if first is None:
            return batch, True
        batch.append(first)
        while len(batch) < self._batch_max and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _take_cursors(self) -> dict[str, int]:
        # Until written, they still count: a client reconnecting meanwhile must not
        # read the older stored cursor and be sent again what it acknowledged.
        cursors, self._cursors = self._cursors, {}
        self._writing_cursors = cursors
        return cursors

    async def _commit(
        self, batch: list[PendingEvent | PendingLog], cursors: dict[str, int]
    ) -> None:
        events = [b for b in batch if isinstance(b, PendingEvent)]
        logs = [b for b in batch if isinstance(b, PendingLog)]
        started = time.perf_counter()
        returned: dict[str, int] = {}
        known: dict[str, int] = {}
        if events or cursors:
            try:
                returned, known = await self._store(events, cursors)
            except Exception:
                await self._drop_driver()  # a fresh connection for the next batch
                raise
        if logs:
            async with self._engine.begin() as conn:
                await self._insert_logs(conn, logs)
        self._metrics.persist_seconds.observe(time.perf_counter() - started)
        self._metrics.persist_batch_size.observe(len(batch))
        self._finish(events, returned, known)
        for p in logs:
            if not p.future.done():
                p.future.set_result(None)

    def _finish(
        self, events: list[PendingEvent], returned: dict[str, int], known: dict[str, int]
    ) -> None:
        """Route the new events in `seq` order, then resolve every publisher's future:
        a client that sees its ack can count on the subscribers having the event."""
        results: list[Committed] = []
        new: list[tuple[int, PendingEvent, Committed]] = []
        seen: set[str] = set()
        for e in events:
            if e.id in returned and e.id not in seen:
                outcome = Committed(seq=returned[e.id], duplicate=False)
                new.append((outcome.seq, e, outcome))
            else:  # stored before, or repeated within this batch
                outcome = Committed(seq=returned.get(e.id) or known.get(e.id, 0), duplicate=True)
            seen.add(e.id)
            results.append(outcome)
        if new:
            route_started = time.perf_counter()
            new.sort(key=lambda item: item[0])
            dispatched = self._route([e for _, e, _ in new], [seq for seq, _, _ in new])
            for (_, _, outcome), n in zip(new, dispatched, strict=True):
                outcome.dispatched = n
            self._metrics.route_seconds.observe(time.perf_counter() - route_started)
        for e, outcome in zip(events, results, strict=True):
            if not e.future.done():
                e.future.set_result(outcome)

    async def _driver(self) -> Any:
        if self._driver_conn is None:
            self._held = await self._engine.connect()
            raw = await self._held.get_raw_connection()
            self._driver_conn = raw.driver_connection
            if self._dialect == "sqlite":
                self._driver_conn.isolation_level = None  # autocommit: a statement is the unit
        return self._driver_conn

    async def _drop_driver(self) -> None:
        held, self._held, self._driver_conn = self._held, None, None
        if held is not None:
            try:
                await held.invalidate()
            finally:
                await held.close()

    async def _store(
        self, events: list[PendingEvent], cursors: dict[str, int]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Insert the events (one statement) and upsert the cursors; return the seq of
        each new event and of each already stored one."""
        conn = await self._driver()
        now = utcnow()
        if self._dialect != "postgresql":
            return await self._store_sqlite(conn, events, cursors, now)
        returned: dict[str, int] = {}
        if events:
            rows = await conn.fetch(
                _PG_INSERT_EVENTS,
                [e.id for e in events],
                [e.category for e in events],
                [e.source for e in events],
                [e.symbol for e in events],
                [e.correlation_id for e in events],
                [e.causation_id for e in events],
                [e.ts for e in events],
                [now] * len(events),
                [" " + " ".join(e.recipients) + " " for e in events],
                [e.body for e in events],
            )
            returned = {r["id"]: r["seq"] for r in rows}
        if cursors:
            await conn.execute(
                _PG_UPSERT_CURSORS, list(cursors), list(cursors.values()), [now] * len(cursors)
            )
        missing = [e.id for e in events if e.id not in returned]
        known = {}
        if missing:
            known = {r["id"]: r["seq"] for r in await conn.fetch(_PG_KNOWN_IDS, missing)}
        return returned, known

    async def _store_sqlite(
        self, conn: Any, events: list[PendingEvent], cursors: dict[str, int], now: datetime
    ) -> tuple[dict[str, int], dict[str, int]]:
        returned: dict[str, int] = {}
        known: dict[str, int] = {}
        received = _sqlite_time(now)
        if events:
            params: list[Any] = []
            for e in events:
                params += (
                    e.id,
                    e.category,
                    e.source,
                    e.symbol,
                    e.correlation_id,
                    e.causation_id,
                    _sqlite_time(e.ts),
                    received,
                    " " + " ".join(e.recipients) + " ",
                    e.body,
                )
            values = ",".join(["(?,?,?,?,?,?,?,?,?,?)"] * len(events))
            rows = await conn.execute_fetchall(_LITE_INSERT_EVENTS.format(values), params)
            returned = {r[0]: r[1] for r in rows}
            missing = [e.id for e in events if e.id not in returned]
            if missing:
                marks = ",".join("?" * len(missing))
                sql = f"SELECT id, seq FROM events WHERE id IN ({marks})"  # noqa: S608 - marks only
                known = {r[0]: r[1] for r in await conn.execute_fetchall(sql, missing)}
        if cursors:
            values = ",".join(["(?,?,?)"] * len(cursors))
            flat = [v for p, q in cursors.items() for v in (p, q, received)]
            await conn.execute_fetchall(_LITE_UPSERT_CURSORS.format(values), flat)
        return returned, known

    async def _insert_logs(self, conn: Any, logs: list[PendingLog]) -> None:
        """Insert logs; a re-sent id is accepted and stored once, like events (a
        duplicate must never fail the batch it shares with other clients' frames)."""
        rows = list({p.row["id"]: p.row for p in logs}.values())
        stmt: Any
        if self._dialect == "postgresql":
            stmt = postgresql.insert(_logs).on_conflict_do_nothing(index_elements=["id"])
        else:
            stmt = sqlite.insert(_logs).on_conflict_do_nothing(index_elements=["id"])
        await conn.execute(stmt, rows)
