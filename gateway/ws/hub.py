"""The `/ws/events` hub: authenticate, validate, persist, route, acknowledge.

Each session has a reader (the endpoint coroutine) and a writer task that owns all
sends; they run together and when one ends the other is cancelled. Nobody awaits a
subscriber: routing appends to the session's outbox, and a session whose outbox
overflows is closed and catches up by replay on its next connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gateway.metrics import Metrics
from gateway.security import hash_token
from gateway.settings import GatewaySettings
from gateway.ws.persist import (
    Committed,
    PendingEvent,
    PendingLog,
    Persister,
    PersistUnavailable,
    frame_with_seq,
)
from gateway.ws.routing import Forbidden, RoutingTable, load_routing, principal
from gateway.ws.taps import OperatorTap
from shared.db.models import (
    ClientCursor,
    EventRow,
    ExecutionServiceRow,
    PositionRow,
    TokenRow,
    TradingGroupRow,
    TriggerRow,
)
from shared.events import (
    ALLOWED_CATEGORIES,
    PROTOCOL_VERSION,
    AckIn,
    Category,
    LogIn,
    RejectReason,
    Role,
    client_frame_adapter,
)
from shared.logging import get_logger

log = get_logger(__name__)

# Close codes (RFC 6455 and the registered 1013).
POLICY_VIOLATION = 1008
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013

_TOKEN_PARAMS = {
    "trigger_token": Role.TRIGGER,
    "trading_group_token": Role.TRADING_GROUP,
    "execution_token": Role.EXECUTION,
}
_PRINCIPAL_TABLES: dict[Role, Any] = {
    Role.TRIGGER: TriggerRow,
    Role.TRADING_GROUP: TradingGroupRow,
    Role.EXECUTION: ExecutionServiceRow,
}
_REPLAY_PAGE = 500
_MAX_INFLIGHT = 1000
_CLOSE_READ_TIMEOUT = 2.0


class AuthError(Exception):
    """Why a connection was refused; sent as the 1008 close reason."""


@dataclass(eq=False)
class Session:
    ws: WebSocket
    role: Role
    name: str
    key: str  # role:name, the routing and cursor key
    client_id: str
    send_limit: int
    outbox: deque[tuple[int, str]] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    queued_events: int = 0
    replaying: bool = True
    missed_during_replay: bool = False
    last_seq: int = 0
    closing: tuple[int, str] | None = None
    tokens: float = 0.0
    token_time: float = 0.0
    bad_frames: deque[float] = field(default_factory=deque)
    inflight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(_MAX_INFLIGHT))
    writer: asyncio.Task[None] | None = None

    def push_event(self, seq: int, text: str) -> bool:
        """Queue a routed event; False when the outbox is full (the session must go)."""
        if self.closing is not None:
            return False
        if self.queued_events >= self.send_limit:
            if self.replaying:
                # Replay will read it from the database; no need to hold it here.
                self.missed_during_replay = True
                return False
            self.close(TRY_AGAIN_LATER, "send queue overflow: reconnect to catch up")
            return False
        self.outbox.append((seq, text))
        self.queued_events += 1
        self.wakeup.set()
        return True

    def push_reply(self, text: str) -> None:
        """Queue a reply (ack or rejection); replies are never dropped."""
        self.outbox.append((0, text))
        self.wakeup.set()

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self.wakeup.set()
            if code == TRY_AGAIN_LATER and self.writer is not None:
                # The writer is likely stuck in a send to this very peer; flushing is
                # pointless, replay will deliver what it misses.
                self.writer.cancel()


class Hub:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.metrics = metrics
        self.sessions: dict[str, Session] = {}
        # Operator streams (`/api/v1/stream`): read-only, fed after commit, never awaited.
        self.taps: set[OperatorTap] = set()
        self.routing = RoutingTable()
        self.persister = Persister(
            engine,
            metrics=metrics,
            batch_max=settings.persist_batch_max,
            cursor_flush_interval=settings.cursor_flush_interval,
        )
        self.persister.set_router(self._route)
        self._accepting = True
        self._routing_lock = asyncio.Lock()
        self._all_closed = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.reload_routing(notify=False)
        self.persister.start()

    async def close_sessions(self) -> None:
        """Stop accepting, let every session flush what it was sent, close with 1001."""
        self._accepting = False
        for s in list(self.sessions.values()):
            s.close(GOING_AWAY, "gateway shutting down")
        for tap in list(self.taps):
            tap.close("gateway shutting down")
        if self.sessions:
            self._all_closed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), self.settings.shutdown_timeout)

    async def shutdown(self) -> None:
        """Close every session, then commit what is queued and flush the cursors."""
        await self.close_sessions()
        await self.persister.stop()

    # ------------------------------------------------------------------ configuration

    async def reload_routing(self, *, notify: bool = True) -> None:
        """Rebuild the routing table; tell each client whose configuration changed."""
        async with self._routing_lock:
            async with self.sessionmaker() as db:
                table = await load_routing(db)
            old, self.routing = self.routing, table
            for key in table.disabled:
                self.disconnect(key, POLICY_VIOLATION, "disabled")
            if not notify:
                return
            for key, view in table.views.items():
                before = old.views.get(key)
                if before is not None and before == view:
                    continue
                if before is None and key not in self.sessions:
                    continue
                await self.publish_config_update(key, view.subscriptions, view.config)

    async def publish_config_update(
        self, key: str, subscriptions: list[str], config: dict[str, Any]
    ) -> Committed:
        event_id = str(uuid.uuid4())
        body = orjson.dumps(
            {
                "kind": "event",
                "category": Category.CONFIG_UPDATE.value,
                "id": event_id,
                "source": "gateway",
                "ts": _now_iso(),
                "priority": 5,
                "targets": [key.split(":", 1)[1]],
                "title": "configuration changed",
                "tags": [],
                "trace": {"correlation_id": None, "causation_id": None},
                "payload": {"config": config, "subscriptions": subscriptions},
            }
        ).decode()
        fut: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        self.persister.submit_event(
            PendingEvent(
                id=event_id,
                category=Category.CONFIG_UPDATE.value,
                source="gateway",
                symbol=None,
                correlation_id=None,
                causation_id=None,
                ts=datetime.now(UTC),
                recipients=(key,),
                body=body,
                future=fut,
            )
        )
        return await fut

    def disconnect(self, key: str, code: int, reason: str) -> None:
        session = self.sessions.get(key)
        if session is not None:
            session.close(code, reason)

    # ------------------------------------------------------------------ routing

    def _route(self, events: Sequence[PendingEvent], seqs: Sequence[int]) -> list[int]:
        dispatched: list[int] = []
        sessions = self.sessions
        frames_out = self.metrics.frames_out
        taps = self.taps
        for e, seq in zip(events, seqs, strict=True):
            text = frame_with_seq(seq, e.body)
            n = 0
            for key in e.recipients:
                s = sessions.get(key)
                if s is not None and s.push_event(seq, text):
                    n += 1
            if n:
                frames_out.labels(e.category).inc(n)
            dispatched.append(n)
            for tap in taps:
                tap.push_event(seq, e.category, e.source, e.symbol, text)
        return dispatched

    # ------------------------------------------------------------------ sessions

    async def serve(self, ws: WebSocket) -> None:
        """The endpoint: authenticate, then run reader and writer until either ends."""
        await ws.accept()
        if not self._accepting:
            await ws.close(GOING_AWAY, "gateway shutting down")
            return
        try:
            role, name = await self._authenticate(ws)
        except AuthError as e:
            self.metrics.disconnects.labels("auth").inc()
            await ws.close(POLICY_VIOLATION, str(e)[:120])
            return
        key = principal(role, name)
        if key in self.routing.disabled:
            self.metrics.disconnects.labels("auth").inc()
            await ws.close(POLICY_VIOLATION, "disabled")
            return
        if key in self.sessions:
            self.metrics.disconnects.labels("already_connected").inc()
            await ws.close(POLICY_VIOLATION, "token already connected")
            return
        session = Session(
            ws=ws,
            role=role,
            name=name,
            key=key,
            client_id=f"{key}:{uuid.uuid4().hex[:4]}",
            send_limit=self.settings.ws_send_queue,
            tokens=float(self.settings.ws_rate_burst),
            token_time=time.monotonic(),
        )
        self.sessions[key] = session
        self.metrics.connections.labels(role.value).inc()
        log.info("client_connected", client_id=session.client_id)
        try:
            await self._hello(session)
            await self._run_session(session)
        except WebSocketDisconnect:
            pass
        finally:
            self.sessions.pop(key, None)
            if not self.sessions:
                self._all_closed.set()
            self.metrics.connections.labels(role.value).dec()
            if session.closing is not None:
                code, reason = session.closing
                self.metrics.disconnects.labels(_reason_label(code)).inc()
                if ws.application_state is WebSocketState.CONNECTED:
                    # The peer may be gone or stuck; there may be nobody left to tell.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(code, reason), 1.0)
            log.info("client_disconnected", client_id=session.client_id, closing=session.closing)

    async def _hello(self, session: Session) -> None:
        """The connect ack: the client's config, subscriptions, cursor and limits."""
        cursor = await self._load_cursor(session.key)
        view = self.routing.view(session.key)
        session.last_seq = cursor
        await session.ws.send_text(
            orjson.dumps(
                {
                    "kind": "ack",
                    "ok": True,
                    "message": "connected",
                    "protocol": PROTOCOL_VERSION,
                    "client_id": session.client_id,
                    "role": session.role.value,
                    "subscriptions": view.subscriptions,
                    "cursor": cursor,
                    "config": view.config,
                    "limits": {
                        "max_frame_bytes": self.settings.ws_max_frame_bytes,
                        "rate_limit": self.settings.ws_rate_limit,
                        "rate_burst": self.settings.ws_rate_burst,
                        "send_queue": self.settings.ws_send_queue,
                    },
                    **(
                        {"positions": await self._held(session.name)}
                        if session.role is Role.TRADING_GROUP
                        else {}
                    ),
                }
            ).decode()
        )

    async def _held(self, group: str) -> list[dict[str, Any]]:
        """The group's open positions as execution stored them: a group keeps its book
        from order events, and a restarted one would otherwise start out flat while it
        holds, never selling what it bought before."""
        async with self.sessionmaker() as db:
            rows = await db.scalars(
                select(PositionRow)
                .where(PositionRow.trading_group == group, PositionRow.quantity != Decimal(0))
                .order_by(PositionRow.symbol, PositionRow.account)
            )
            return [
                {
                    "trade_account": r.account,
                    "symbol": r.symbol,
                    "quantity": str(r.quantity),
                    "average_price": None if r.average_price is None else str(r.average_price),
                    "opened_at": None if r.opened_at is None else _iso(r.opened_at),
                }
                for r in rows
            ]

    async def _run_session(self, session: Session) -> None:
        """Reader and writer together; when one ends the other is cancelled."""
        reader = asyncio.create_task(self._reader(session), name=f"reader:{session.key}")
        writer = asyncio.create_task(self._writer(session), name=f"writer:{session.key}")
        session.writer = writer
        done, pending = await asyncio.wait({reader, writer}, return_when="FIRST_COMPLETED")
        if writer in done and reader in pending and not writer.cancelled():
            # We sent a close: read on until the client's close arrives, so the acks
            # it sent before it are counted and its cursor is exact on reconnect.
            done_r, pending = await asyncio.wait({reader}, timeout=_CLOSE_READ_TIMEOUT)
            done |= done_r
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            exc = None if t.cancelled() else t.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect):
                log.warning("session_error", client_id=session.client_id, error=repr(exc))

    async def _authenticate(self, ws: WebSocket) -> tuple[Role, str]:
        offered: list[tuple[Role | None, str]] = [
            (role, ws.query_params[param])
            for param, role in _TOKEN_PARAMS.items()
            if param in ws.query_params
        ]
        header = ws.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError("malformed Authorization header: use 'Bearer <token>'")
            offered.append((None, value.strip()))
        if not offered:
            raise AuthError("missing token")
        if len(offered) > 1:
            raise AuthError("more than one token: send exactly one")
        claimed_role, token = offered[0]
        async with self.sessionmaker() as db:
            row = await db.scalar(select(TokenRow).where(TokenRow.token_hash == hash_token(token)))
            if row is None:
                raise AuthError("invalid token")
            if row.revoked:
                raise AuthError("token revoked")
            role = Role(row.role)
            if claimed_role is not None and claimed_role is not role:
                raise AuthError("invalid token")
            name = await db.scalar(
                select(_PRINCIPAL_TABLES[role].name).where(
                    _PRINCIPAL_TABLES[role].id == row.principal_id
                )
            )
        if name is None:
            raise AuthError("invalid token")
        return role, name

    async def _load_cursor(self, key: str) -> int:
        async with self.sessionmaker() as db:
            stored = await db.scalar(select(ClientCursor.seq).where(ClientCursor.principal == key))
        pending = self.persister.pending_cursor(key)  # acked but not flushed yet
        return max(stored or 0, pending)

    # ------------------------------------------------------------------ writer

    async def _writer(self, s: Session) -> None:
        await self._replay(s)
        ws = s.ws
        while True:
            while s.outbox:
                seq, text = s.outbox.popleft()
                if seq:
                    s.queued_events -= 1
                    if seq <= s.last_seq:
                        continue  # already sent by replay
                    s.last_seq = seq
                await ws.send_text(text)
            if s.closing is not None:
                code, reason = s.closing
                await ws.close(code, reason)
                return
            s.wakeup.clear()
            await s.wakeup.wait()

    async def _replay(self, s: Session) -> None:
        """Send every event routed to this client after its cursor, then go live."""
        table = EventRow.__table__
        pattern = f" {s.key} "
        while True:
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(table.c.seq, table.c.body)
                        .where(table.c.seq > s.last_seq)
                        .where(table.c.recipients.contains(pattern, autoescape=True))
                        .order_by(table.c.seq)
                        .limit(_REPLAY_PAGE)
                    )
                ).all()
            for row in rows:
                await s.ws.send_text(frame_with_seq(row.seq, row.body))
                s.last_seq = row.seq
            if rows:
                self.metrics.replayed.inc(len(rows))
            if len(rows) == _REPLAY_PAGE:
                continue
            if s.missed_during_replay:
                s.missed_during_replay = False
                continue
            s.replaying = False
            return

    # ------------------------------------------------------------------ reader

    async def _reader(self, s: Session) -> None:
        ws = s.ws
        limit = self.settings.ws_max_frame_bytes
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text: str | None = message.get("text")
            if text is None:
                raw = message.get("bytes") or b""
                if len(raw) > limit:
                    self._reject(s, RejectReason.TOO_LARGE, _too_large(len(raw), limit))
                    continue
                try:
                    text = raw.decode()
                except UnicodeDecodeError:
                    self._reject(s, RejectReason.BAD_JSON, "binary frame is not UTF-8 text")
                    continue
            elif len(text) > limit // 4 and len(text.encode()) > limit:
                self._reject(s, RejectReason.TOO_LARGE, _too_large(len(text.encode()), limit))
                continue
            await self._handle_text(s, text)

    async def _handle_text(self, s: Session, text: str) -> None:
        try:
            frame = client_frame_adapter.validate_json(text)
        except ValidationError as e:
            self._reject_invalid(s, e, text)
            return
        if isinstance(frame, AckIn):
            # A client cannot acknowledge what it was never sent.
            self.persister.ack_cursor(s.key, min(frame.seq, s.last_seq))
            return
        if not self._take_token(s):
            self._reject(
                s,
                RejectReason.RATE_LIMITED,
                f"more than {self.settings.ws_rate_limit:g} frames/s; slow down and resend",
                frame_id=str(frame.id) if frame.id else None,
            )
            return
        if isinstance(frame, LogIn):
            await self._accept_log(s, frame)
            return
        category = Category(frame.category)
        if category not in ALLOWED_CATEGORIES[s.role]:
            allowed = ", ".join(sorted(c.value for c in ALLOWED_CATEGORIES[s.role]))
            self._reject(
                s,
                RejectReason.FORBIDDEN_EVENT,
                f"a {s.role.value} may publish only: {allowed}",
                frame_id=str(frame.id) if frame.id else None,
            )
            return
        try:
            recipients = self.routing.recipients(
                s.role, s.name, category.value, frame.targets, frame.payload
            )
        except Forbidden as e:
            self._reject(
                s,
                RejectReason.FORBIDDEN_EVENT,
                str(e),
                frame_id=str(frame.id) if frame.id else None,
            )
            return
        event_id = str(frame.id) if frame.id else str(uuid.uuid4())
        ts = frame.ts or datetime.now(UTC)
        data = frame.model_dump(mode="json", exclude={"id", "ts"})
        payload = data["payload"]
        body = orjson.dumps(
            {"kind": "event", "id": event_id, "source": s.key, "ts": _iso(ts), **data}
        ).decode()
        symbol = payload.get("symbol")
        if symbol is None and payload.get("affected_symbols"):
            symbol = payload["affected_symbols"][0]
        self.metrics.frames_in.labels(category.value).inc()
        await s.inflight.acquire()
        fut: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: self._event_done(s, event_id, f))
        self.persister.submit_event(
            PendingEvent(
                id=event_id,
                category=category.value,
                source=s.key,
                symbol=symbol,
                correlation_id=frame.trace.correlation_id,
                causation_id=frame.trace.causation_id,
                ts=ts,
                recipients=recipients,
                body=body,
                future=fut,
            )
        )

    def _event_done(self, s: Session, event_id: str, fut: asyncio.Future[Committed]) -> None:
        s.inflight.release()
        exc = fut.exception()
        if exc is not None:
            detail = "the event store is unavailable; resend with the same id"
            if not isinstance(exc, PersistUnavailable):
                log.error("persist_error", error=repr(exc))
            self._reject(s, RejectReason.UNAVAILABLE, detail, frame_id=event_id)
            return
        outcome = fut.result()
        s.push_reply(
            orjson.dumps(
                {
                    "kind": "ack",
                    "ok": True,
                    "message": "duplicate" if outcome.duplicate else "accepted",
                    "id": event_id,
                    "seq": outcome.seq,
                    "dispatched_clients": outcome.dispatched,
                }
            ).decode()
        )

    async def _accept_log(self, s: Session, frame: LogIn) -> None:
        log_id = str(frame.id) if frame.id else str(uuid.uuid4())
        ts = frame.ts or datetime.now(UTC)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.metrics.frames_in.labels("log").inc()
        await s.inflight.acquire()

        def done(f: asyncio.Future[None]) -> None:
            s.inflight.release()
            if f.exception() is not None:
                self._reject(
                    s, RejectReason.UNAVAILABLE, "the log store is unavailable", frame_id=log_id
                )
            else:
                s.push_reply(
                    orjson.dumps(
                        {"kind": "ack", "ok": True, "message": "accepted", "id": log_id}
                    ).decode()
                )
                for tap in self.taps:
                    tap.log_committed(frame.code, s.key)

        fut.add_done_callback(done)
        self.persister.submit_log(
            PendingLog(
                row={
                    "id": log_id,
                    "source": s.key,
                    "level": frame.level.value,
                    "code": frame.code,
                    "message": frame.message,
                    "data": frame.data,
                    "correlation_id": frame.trace.correlation_id,
                    "causation_id": frame.trace.causation_id,
                    "ts": ts,
                    "received_at": datetime.now(UTC),
                },
                future=fut,
            )
        )

    # ------------------------------------------------------------------ rejections

    def _take_token(self, s: Session) -> bool:
        now = time.monotonic()
        rate = self.settings.ws_rate_limit
        s.tokens = min(float(self.settings.ws_rate_burst), s.tokens + (now - s.token_time) * rate)
        s.token_time = now
        if s.tokens < 1.0:
            return False
        s.tokens -= 1.0
        return True

    def _reject_invalid(self, s: Session, error: ValidationError, text: str) -> None:
        errors = error.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            self._reject(s, RejectReason.BAD_JSON, errors[0]["msg"])
            return
        # Echo the frame's id when it has a readable one, so the sender can match the
        # rejection to what it sent.
        frame_id = None
        with contextlib.suppress(orjson.JSONDecodeError):
            raw = orjson.loads(text)
            if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                frame_id = raw["id"][:64]
        detail = []
        for e in errors[:20]:
            loc = [str(p) for p in e["loc"]]
            # The union tags (kind, category) lead every path; they are not fields.
            if loc[:1] in (["event"], ["log"], ["ack"]):
                loc = loc[2:] if loc[0] == "event" else loc[1:]
            msg = e["msg"]
            if e["type"] == "extra_forbidden" and loc and loc[-1] in ("source", "seq"):
                msg = f"{loc[-1]} is set by the gateway from your token; do not send it"
            detail.append({"loc": loc, "msg": msg, "type": e["type"]})
        self._reject(s, RejectReason.VALIDATION_ERROR, detail, frame_id=frame_id)

    def _reject(
        self, s: Session, reason: RejectReason, detail: Any, *, frame_id: str | None = None
    ) -> None:
        self.metrics.rejected.labels(reason.value).inc()
        s.push_reply(
            orjson.dumps(
                {
                    "kind": "ack",
                    "ok": False,
                    "message": reason.value,
                    "id": frame_id,
                    "detail": detail,
                }
            ).decode()
        )
        if reason in (RejectReason.UNAVAILABLE, RejectReason.RATE_LIMITED):
            return  # not a malformed frame: throttle or our failure, never a reason to close
        now = time.monotonic()
        s.bad_frames.append(now)
        while s.bad_frames and s.bad_frames[0] < now - 60:
            s.bad_frames.popleft()
        if len(s.bad_frames) > self.settings.ws_bad_frame_limit:
            s.close(POLICY_VIOLATION, "too many rejected frames")


def _too_large(size: int, limit: int) -> str:
    return f"frame of {size} bytes exceeds the limit of {limit} bytes"


def _reason_label(code: int) -> str:
    return {GOING_AWAY: "shutdown", TRY_AGAIN_LATER: "overflow", POLICY_VIOLATION: "policy"}.get(
        code, str(code)
    )


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _now_iso() -> str:
    return _iso(datetime.now(UTC))
