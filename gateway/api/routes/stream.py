"""The operator's live stream: server-sent events of what the gateway stores, read-only.

`GET /api/v1/stream` answers `text/event-stream` under the operator key. It is fed by
an `OperatorTap` that the hub fills after each commit (see `gateway/ws/taps.py`), and
resumes by `seq` from the event store, so a browser that reconnects with the last
`seq` it saw misses nothing. The protocol (docs/DASHBOARD.md):

    event: hello   data: {"after": N, "log_after": M}   where the stream starts
    id: SEQ
    event: event   data: <the event frame as /ws/events delivered it>
    event: log     data: <a log as /api/v1/logs returns it, with its own seq>
    event: lagged  data: {"dropped": K, "after": N}      fell behind; the gap was
                                                         read back from the store
    event: bye     data: {"reason": "..."}              the gateway is stopping
    : keepalive                                         every 15 s when idle

Browsers' `EventSource` cannot send an `Authorization` header, and the key must not
travel in a URL (it would land in logs and history), so the dashboard reads this with
`fetch` and a stream reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import func, select

from gateway.api.deps import StateDep
from gateway.api.routes._common import Responses
from gateway.api.schemas import LogPublic, Problem
from gateway.ws.hub import Hub
from gateway.ws.persist import frame_with_seq
from gateway.ws.taps import OperatorTap, TapFilter
from shared.db.models import EventRow, LogRow
from shared.events import Category, LogLevel, Trace

router = APIRouter(tags=["stream"])

#: Frames an operator stream may have queued before it reads the rest from the store.
QUEUE_LIMIT = 1_000
#: Open operator streams at once; each holds a tap the hub feeds.
MAX_STREAMS = 32
#: An idle stream sends a comment this often, so proxies and the browser keep it.
KEEPALIVE_SECONDS = 15.0
_PAGE = 500
_ALL = "*"


def _comma_list(value: Any) -> list[str]:
    """`x=a,b&x=c` -> `["a", "b", "c"]`: both forms a client may send."""
    items = value if isinstance(value, list) else [value]
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Annotated[list[Category], BeforeValidator(_comma_list)] = Field(
        default_factory=list,
        max_length=10,
        description="Only these event categories (repeat it or list them); none: all.",
    )
    source: CommaList = Field(
        default_factory=list,
        max_length=100,
        description="Only events and logs from these publishers (`trigger:rsi-btc`).",
    )
    symbol: CommaList = Field(
        default_factory=list, max_length=100, description="Only events about these symbols."
    )
    logs: CommaList = Field(
        default_factory=list,
        max_length=50,
        description="Log codes to include (`TRADING_GROUP_DISCUSSION_LOG`); `*`: every "
        "log; none: no logs.",
    )
    after: int | None = Field(
        default=None,
        ge=0,
        description="Replay stored events after this `seq` first; omitted: from now on.",
    )
    log_after: int | None = Field(
        default=None,
        ge=0,
        description="Replay stored logs after this log `seq` first; omitted: from now on.",
    )

    def tap_filter(self) -> TapFilter:
        def some(values: list[str]) -> frozenset[str] | None:
            return frozenset(values) if values else None

        codes = None
        if self.logs:
            codes = frozenset() if _ALL in self.logs else frozenset(self.logs)
        return TapFilter(
            categories=some([c.value for c in self.category]),
            sources=some(self.source),
            symbols=some(self.symbol),
            log_codes=codes,
        )


_BUSY: Responses = {
    503: {"model": Problem, "description": "Too many operator streams are open; close one."}
}


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        **_BUSY,
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."},
    },
    summary="Follow events and logs live (server-sent events)",
)
async def stream(query: Annotated[StreamQuery, Query()], state: StateDep) -> StreamingResponse:
    """Every stored event (and the logs asked for) as it is committed, as server-sent
    events; resume with `after` (and `log_after`) set to the last `seq` seen."""
    hub = state.hub
    if len(hub.taps) >= MAX_STREAMS:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{MAX_STREAMS} operator streams are open already: close one (another browser "
            "tab) and retry",
        )
    writer = _StreamWriter(hub, query)
    return StreamingResponse(
        writer.frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _StreamWriter:
    """Turns a tap and the store into the frames of one response."""

    def __init__(self, hub: Hub, query: StreamQuery) -> None:
        self.hub = hub
        self.query = query
        self.filter = query.tap_filter()
        self.tap = OperatorTap(self.filter, limit=QUEUE_LIMIT)
        self.after = 0
        self.log_after = 0

    async def frames(self) -> AsyncIterator[str]:
        # Registered before the cursors are read: what commits in between is queued
        # and skipped by `seq` if the replay already sent it.
        self.hub.taps.add(self.tap)
        try:
            async for frame in self._frames():
                yield frame
        finally:
            self.hub.taps.discard(self.tap)

    async def _frames(self) -> AsyncIterator[str]:
        tap, q = self.tap, self.query
        self.after = q.after if q.after is not None else await self._max(EventRow.seq)
        self.log_after = q.log_after if q.log_after is not None else await self._max(LogRow.seq)
        yield _sse("hello", orjson.dumps({"after": self.after, "log_after": self.log_after}))
        if q.after is not None:
            async for frame in self._replay_events():
                yield frame
        if q.log_after is not None and self.filter.log_codes is not None:
            async for frame in self._replay_logs():
                yield frame
        while True:
            async for frame in self._pending():
                yield frame
            if tap.closing is not None and not tap.has_work_besides_closing:
                yield _sse("bye", orjson.dumps({"reason": tap.closing}))
                return
            tap.wakeup.clear()
            if tap.has_work:
                continue
            try:
                await asyncio.wait_for(tap.wakeup.wait(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"

    async def _pending(self) -> AsyncIterator[str]:
        """What the tap holds: a gap to read back, queued frames, new logs."""
        tap = self.tap
        if tap.missed:
            tap.missed = False
            async for frame in self._replay_events():
                yield frame
            yield _sse("lagged", orjson.dumps({"dropped": tap.dropped, "after": self.after}))
        while tap.queue:
            seq, text = tap.queue.popleft()
            if seq > self.after:  # else the replay sent it already
                self.after = seq
                yield _event(seq, text)
        if tap.logs_pending:
            tap.logs_pending = False
            async for frame in self._replay_logs():
                yield frame

    async def _max(self, column: Any) -> int:
        async with self.hub.sessionmaker() as db:
            return int(await db.scalar(select(func.coalesce(func.max(column), 0))) or 0)

    async def _replay_events(self) -> AsyncIterator[str]:
        """Stored events after `self.after` that the filter wants, page by page."""
        table = EventRow.__table__
        f = self.filter
        while True:
            stmt = select(table.c.seq, table.c.body).where(table.c.seq > self.after)
            if f.categories is not None:
                stmt = stmt.where(table.c.category.in_(sorted(f.categories)))
            if f.sources is not None:
                stmt = stmt.where(table.c.source.in_(sorted(f.sources)))
            if f.symbols is not None:
                stmt = stmt.where(table.c.symbol.in_(sorted(f.symbols)))
            async with self.hub.engine.connect() as conn:
                rows = (await conn.execute(stmt.order_by(table.c.seq).limit(_PAGE))).all()
            for row in rows:
                self.after = row.seq
                yield _event(row.seq, frame_with_seq(row.seq, row.body))
            if len(rows) < _PAGE:
                return

    async def _replay_logs(self) -> AsyncIterator[str]:
        """Stored logs after `self.log_after` that the filter wants, page by page."""
        f = self.filter
        while True:
            stmt = select(LogRow).where(LogRow.seq > self.log_after)
            if f.log_codes:
                stmt = stmt.where(LogRow.code.in_(sorted(f.log_codes)))
            if f.sources is not None:
                stmt = stmt.where(LogRow.source.in_(sorted(f.sources)))
            async with self.hub.sessionmaker() as db:
                rows = list(await db.scalars(stmt.order_by(LogRow.seq).limit(_PAGE)))
            for row in rows:
                self.log_after = row.seq
                yield _sse("log", _log_json(row))
            if len(rows) < _PAGE:
                return


def _log_json(row: LogRow) -> bytes:
    """A log exactly as `/api/v1/logs` returns it."""
    return (
        LogPublic(
            seq=row.seq,
            id=UUID(row.id),
            source=row.source,
            level=LogLevel(row.level),
            code=row.code,
            message=row.message,
            data=row.data,
            trace=Trace(correlation_id=row.correlation_id, causation_id=row.causation_id),
            ts=row.ts,
        )
        .model_dump_json()
        .encode()
    )


def _sse(event: str, data: bytes) -> str:
    return f"event: {event}\ndata: {data.decode()}\n\n"


def _event(seq: int, text: str) -> str:
    # Stored frames are orjson output: one line, so one `data:` field holds them.
    return f"id: {seq}\nevent: event\ndata: {text}\n\n"
