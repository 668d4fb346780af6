"""Run `ats gateway` with prototype changes patched in, to measure a proposal first.

The bench runs a target spelled `postgres/one-statement` through this launcher instead of
the `ats` script: it applies the named patches, then hands over to the CLI. Nothing
here is used by the gateway itself; a patch that pays off is proposed for the real
module (see docs/PERFORMANCE.md) and deleted here once it lands.

    python bench/experiment.py one-statement [more patches] -- gateway [ats args]

Patches:
  one-statement  store each batch of events with one statement, in autocommit (a single
              statement is atomic), on a connection the writer holds, through the
              driver: no pool checkout, pre-ping or reset, no BEGIN/COMMIT round trips,
              no SELECT for known ids (`ON CONFLICT (id) DO NOTHING RETURNING id, seq`
              says which were new), no SQLAlchemy compilation per batch.
              PostgreSQL: `INSERT ... SELECT FROM unnest($1::varchar[], ...)`, one
              prepared statement for every batch size. SQLite: a multi-row VALUES
              insert through aiosqlite's `execute_fetchall`, one thread hop per batch.
  async-commit  with one-statement on PostgreSQL: `SET synchronous_commit = off` on the
              writer's connection. A commit returns before its WAL reaches the disk, so
              a PostgreSQL crash (not a gateway crash) can lose the last ~0.2-0.6 s of
              acknowledged events: a trade-off to measure, not a default.
  metric-children  cache the Prometheus children per category instead of calling
              `.labels()` for every frame.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.ws import hub as hub_module  # noqa: E402
from gateway.ws.persist import Committed, PendingEvent, PendingLog, Persister  # noqa: E402
from shared.db.models import utcnow  # noqa: E402

_INSERT_EVENTS = """
INSERT INTO events (id, category, source, symbol, correlation_id, causation_id, ts,
                    received_at, recipients, body)
SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[],
                     $5::varchar[], $6::varchar[], $7::timestamptz[], $8::timestamptz[],
                     $9::text[], $10::text[])
ON CONFLICT (id) DO NOTHING
RETURNING id, seq
"""
_KNOWN_IDS = "SELECT id, seq FROM events WHERE id = ANY($1::varchar[])"
_SQLITE_INSERT_EVENTS = """
INSERT INTO events (id, category, source, symbol, correlation_id, causation_id, ts,
                    received_at, recipients, body)
VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id, seq
"""
_SQLITE_UPSERT_CURSORS = """
INSERT INTO client_cursors (principal, seq, updated_at) VALUES {}
ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
WHERE client_cursors.seq < excluded.seq
"""
_UPSERT_CURSORS = """
INSERT INTO client_cursors (principal, seq, updated_at)
SELECT * FROM unnest($1::varchar[], $2::bigint[], $3::timestamptz[])
ON CONFLICT (principal) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
WHERE client_cursors.seq < excluded.seq
"""


class OneStatementPersister(Persister):
    """`Persister` storing a batch of events in one statement (`one-statement` above)."""

    _held: Any = None  # the SQLAlchemy AsyncConnection kept checked out
    _pg: Any = None  # its driver (asyncpg or aiosqlite) connection
    async_commit = False

    async def _driver(self) -> Any:
        if self._pg is None:
            self._held = await self._engine.connect()
            raw = await self._held.get_raw_connection()
            self._pg = raw.driver_connection
            if self._dialect == "sqlite":
                self._pg.isolation_level = None  # autocommit: the statement is the unit
            elif self.async_commit:
                await self._pg.execute("SET synchronous_commit = off")
        return self._pg

    async def _drop_driver(self) -> None:
        held, self._held, self._pg = self._held, None, None
        if held is not None:
            try:
                await held.invalidate()
            finally:
                await held.close()

    async def _commit(
        self, batch: list[PendingEvent | PendingLog], cursors: dict[str, int]
    ) -> None:
        if any(isinstance(b, PendingLog) for b in batch):
            await super()._commit(batch, cursors)
            return
        events = [b for b in batch if isinstance(b, PendingEvent)]
        try:
            await self._store(events, cursors)
        except Exception:
            await self._drop_driver()
            raise

    async def _store(self, events: list[PendingEvent], cursors: dict[str, int]) -> None:
        pg = await self._driver()
        started = time.perf_counter()
        now = utcnow()
        returned: dict[str, int] = {}
        if self._dialect == "sqlite":
            returned, known = await self._store_sqlite(pg, events, cursors, now)
            self._finish(events, returned, known, started)
            return
        if events:
            rows = await pg.fetch(
                _INSERT_EVENTS,
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
            await pg.execute(
                _UPSERT_CURSORS, list(cursors), list(cursors.values()), [now] * len(cursors)
            )
        missing = [e.id for e in events if e.id not in returned]
        known = {r["id"]: r["seq"] for r in await pg.fetch(_KNOWN_IDS, missing)} if missing else {}
        self._finish(events, returned, known, started)

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
            rows = await conn.execute_fetchall(_SQLITE_INSERT_EVENTS.format(values), params)
            returned = {r[0]: r[1] for r in rows}
            missing = [e.id for e in events if e.id not in returned]
            if missing:
                marks = ",".join("?" * len(missing))
                sql = f"SELECT id, seq FROM events WHERE id IN ({marks})"  # noqa: S608
                known = {r[0]: r[1] for r in await conn.execute_fetchall(sql, missing)}
        if cursors:
            values = ",".join(["(?,?,?)"] * len(cursors))
            flat = [v for p, q in cursors.items() for v in (p, q, received)]
            await conn.execute_fetchall(_SQLITE_UPSERT_CURSORS.format(values), flat)
        return returned, known

    def _finish(
        self,
        events: list[PendingEvent],
        returned: dict[str, int],
        known: dict[str, int],
        started: float,
    ) -> None:
        self._metrics.persist_seconds.observe(time.perf_counter() - started)
        self._metrics.persist_batch_size.observe(len(events))
        results: list[Committed] = []
        new_events: list[PendingEvent] = []
        new_results: list[Committed] = []
        seen: set[str] = set()
        for e in events:
            if e.id in returned and e.id not in seen:
                outcome = Committed(seq=returned[e.id], duplicate=False)
                new_events.append(e)
                new_results.append(outcome)
            else:
                outcome = Committed(seq=returned.get(e.id) or known.get(e.id, 0), duplicate=True)
            seen.add(e.id)
            results.append(outcome)
        if new_events:
            route_started = time.perf_counter()
            order = sorted(range(len(new_events)), key=lambda i: new_results[i].seq)
            routed = [new_events[i] for i in order]
            dispatched = self._route(routed, [new_results[i].seq for i in order])
            for i, n in zip(order, dispatched, strict=True):
                new_results[i].dispatched = n
            self._metrics.route_seconds.observe(time.perf_counter() - route_started)
        for e, outcome in zip(events, results, strict=True):
            if not e.future.done():
                e.future.set_result(outcome)

    async def stop(self) -> None:
        await super().stop()
        await self._drop_driver()


def _metric_children() -> None:
    """Cache `Counter.labels(category)` children: one dict lookup per frame instead."""

    class _Cached:
        def __init__(self, counter: Any) -> None:
            self._counter = counter
            self._children: dict[tuple[str, ...], Any] = {}

        def labels(self, *values: str) -> Any:
            child = self._children.get(values)
            if child is None:
                child = self._children[values] = self._counter.labels(*values)
            return child

        def __getattr__(self, name: str) -> Any:
            return getattr(self._counter, name)

    original: Callable[..., None] = hub_module.Hub.__init__

    def init(self: hub_module.Hub, **kwargs: Any) -> None:
        original(self, **kwargs)
        self.metrics.frames_in = _Cached(self.metrics.frames_in)  # type: ignore[assignment]
        self.metrics.frames_out = _Cached(self.metrics.frames_out)  # type: ignore[assignment]

    hub_module.Hub.__init__ = init  # type: ignore[method-assign]


def _sqlite_time(ts: datetime) -> str:
    """How SQLAlchemy stores a UTCDateTime in SQLite: naive UTC, microseconds."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _one_statement() -> None:
    hub_module.Persister = OneStatementPersister  # type: ignore[attr-defined]


def _async_commit() -> None:
    OneStatementPersister.async_commit = True
    _one_statement()


PATCHES: dict[str, Callable[[], None]] = {
    "one-statement": _one_statement,
    "async-commit": _async_commit,
    "metric-children": _metric_children,
}


def main(argv: Sequence[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: experiment.py PATCH... -- gateway [ats args]")
    split = list(argv).index("--")
    for name in argv[:split]:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}: choose from {', '.join(PATCHES)}")
        PATCHES[name]()
    from ats.cli import main as ats_main

    sys.argv = ["ats", *argv[split + 1 :]]
    ats_main()


if __name__ == "__main__":
    main(sys.argv[1:])
