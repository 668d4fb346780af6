"""Group commit: one writer task persists whatever arrived during the last commit.

A gateway that commits each event alone tops out near the database's single-row
commit rate (about 2,600/s on PostgreSQL here); committing batches lifts that to
tens of thousands while every event is still acknowledged only after its own batch
is durable. The writer also routes each batch after it commits, in `seq` order, so
delivery order equals commit order and nothing is delivered that is not stored.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select
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
    enqueued: float = 0.0


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
        id_cache_size: int = 100_000,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._batch_max = batch_max
        self._flush_interval = cursor_flush_interval
        self._queue: asyncio.Queue[PendingEvent | PendingLog | None] = asyncio.Queue()
        self._cursors: dict[str, int] = {}
        self._recent_ids: OrderedDict[str, int] = OrderedDict()
        self._id_cache_size = id_cache_size
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

    # ------------------------------------------------------------------ producers

    def submit_event(self, pending: PendingEvent) -> None:
        pending.enqueued = time.perf_counter()
        self._queue.put_nowait(pending)

    def submit_log(self, pending: PendingLog) -> None:
        self._queue.put_nowait(pending)

    def ack_cursor(self, principal: str, seq: int) -> None:
        """Record a client's acknowledgement; written with the next batch or flush."""
        if seq > self._cursors.get(principal, 0):
            self._cursors[principal] = seq

    def pending_cursor(self, principal: str) -> int:
        return self._cursors.get(principal, 0)

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
            except Exception as e:  # the database is down or refused: fail this batch only
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
        cursors, self._cursors = self._cursors, {}
        return cursors

    async def _commit(
        self, batch: list[PendingEvent | PendingLog], cursors: dict[str, int]
    ) -> None:
        events = [b for b in batch if isinstance(b, PendingEvent)]
        logs = [b for b in batch if isinstance(b, PendingLog)]
        started = time.perf_counter()
        async with self._engine.begin() as conn:
            results, new_events = await self._insert_events(conn, events) if events else ([], [])
            if logs:
                await self._insert_logs(conn, logs)
            if cursors:
                await self._upsert_cursors(conn, cursors)
        self._metrics.persist_seconds.observe(time.perf_counter() - started)
        self._metrics.persist_batch_size.observe(len(batch))

        # Route in commit order before anyone is told the event is accepted: a client
        # that sees its ack can count on the subscribers having been handed the event.
        if new_events:
            route_started = time.perf_counter()
            firsts = [r for r in results if not r.duplicate and r.dispatched == -1]
            dispatched = self._route(new_events, [r.seq for r in firsts])
            for outcome, n in zip(firsts, dispatched, strict=True):
                outcome.dispatched = n
            self._metrics.route_seconds.observe(time.perf_counter() - route_started)
        for e, outcome in zip(events, results, strict=True):
            self._remember(e.id, outcome.seq)
            if not e.future.done():
                e.future.set_result(outcome)
        for p in logs:
            if not p.future.done():
                p.future.set_result(None)

    async def _insert_events(
        self, conn: Any, events: list[PendingEvent]
    ) -> tuple[list[Committed], list[PendingEvent]]:
        """Insert the events not stored before; one outcome per event, in order."""
        known = await self._known_ids(conn, [e.id for e in events])
        results: list[Committed] = []
        firsts: dict[str, Committed] = {}
        new_events: list[PendingEvent] = []
        for e in events:
            if e.id in known:
                results.append(Committed(seq=known[e.id], duplicate=True))
            elif e.id in firsts:  # the same id twice within one batch
                results.append(Committed(seq=0, duplicate=True, dispatched=0))
            else:
                firsts[e.id] = Committed(seq=0, duplicate=False, dispatched=-1)
                results.append(firsts[e.id])
                new_events.append(e)
        if new_events:
            now = utcnow()
            result = await conn.execute(
                insert(_events).returning(_events.c.seq, sort_by_parameter_order=True),
                [
                    {
                        "id": e.id,
                        "category": e.category,
                        "source": e.source,
                        "symbol": e.symbol,
                        "correlation_id": e.correlation_id,
                        "causation_id": e.causation_id,
                        "ts": e.ts,
                        "received_at": now,
                        "recipients": " " + " ".join(e.recipients) + " ",
                        "body": e.body,
                    }
                    for e in new_events
                ],
            )
            for e, seq in zip(new_events, result.scalars().all(), strict=True):
                firsts[e.id].seq = seq
        for e, outcome in zip(events, results, strict=True):
            if outcome.duplicate and outcome.seq == 0:
                outcome.seq = firsts[e.id].seq
        return results, new_events

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

    async def _known_ids(self, conn: Any, ids: list[str]) -> dict[str, int]:
        known = {i: self._recent_ids[i] for i in ids if i in self._recent_ids}
        missing = [i for i in ids if i not in known]
        if missing:
            rows = await conn.execute(
                select(_events.c.id, _events.c.seq).where(_events.c.id.in_(missing))
            )
            known.update({row.id: row.seq for row in rows})
        return known

    def _remember(self, event_id: str, seq: int) -> None:
        self._recent_ids[event_id] = seq
        if len(self._recent_ids) > self._id_cache_size:
            self._recent_ids.popitem(last=False)

    async def _upsert_cursors(self, conn: Any, cursors: dict[str, int]) -> None:
        rows = [{"principal": p, "seq": s, "updated_at": utcnow()} for p, s in cursors.items()]
        stmt: Any
        if self._dialect == "postgresql":
            pg = postgresql.insert(_cursors).values(rows)
            stmt = pg.on_conflict_do_update(
                index_elements=[_cursors.c.principal],
                set_={"seq": pg.excluded.seq, "updated_at": pg.excluded.updated_at},
                where=_cursors.c.seq < pg.excluded.seq,
            )
        else:
            lite = sqlite.insert(_cursors).values(rows)
            stmt = lite.on_conflict_do_update(
                index_elements=[_cursors.c.principal],
                set_={"seq": lite.excluded.seq, "updated_at": lite.excluded.updated_at},
                where=_cursors.c.seq < lite.excluded.seq,
            )
        await conn.execute(stmt)
