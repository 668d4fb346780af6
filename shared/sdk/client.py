"""`GatewayClient`: the one async client every service uses to talk to the gateway.

Three tasks run while the client runs:

* the connection loop: websockets' reconnecting iterator; for each session it
  re-sends every frame still awaiting its ack, then reads frames. Reading never
  waits on a handler, so a handler can itself `publish()` and get its ack.
* the dispatcher: runs handlers one event at a time in delivery order, drops
  duplicates by event id (delivery is at-least-once), then marks the event done.
* the acker: tells the gateway the highest done `seq`, batched (acks are
  cumulative), so a reconnect replays only what was not handled yet.

A reader that outruns the dispatcher by `max_queued_events` stops queueing, lets
the dispatcher drain, then reconnects to have the gateway replay the rest from
the acknowledged cursor: memory stays bounded and nothing is lost (the same rule
the gateway applies to slow clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, Self, cast, overload
from uuid import UUID, uuid4

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import PydanticSerializationError
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from shared.config import CommonSettings
from shared.events import (
    Ack,
    Category,
    ConfigUpdateEvent,
    DecisionEvent,
    DecisionEventIn,
    DeliveredEvent,
    HeldPosition,
    Log,
    LogIn,
    LogLevel,
    OrderEvent,
    OrderEventIn,
    RejectReason,
    Role,
    SignalEvent,
    SignalEventIn,
    Trace,
    server_frame_adapter,
)
from shared.logging import get_logger, redact_text
from shared.sdk.connection import (
    SessionConnect,
    SessionConnection,
    classify_connect_error,
    is_fatal_close,
    jittered_backoff,
)
from shared.sdk.errors import (
    AckTimeout,
    AuthenticationError,
    ClientClosed,
    ForbiddenEvent,
    InvalidEvent,
    ProtocolError,
    PublishRejected,
    RateLimited,
    TooLarge,
    Unavailable,
)

type Handler[E] = Callable[[E], Awaitable[None] | None]
"""An event handler: a coroutine function (or a plain function) taking the event."""

type ConnectCallback = Callable[[Ack], Awaitable[None] | None]

#: Handle every category with `client.on(ALL)`.
ALL = "*"

_EVENT_MODELS: dict[str, type[BaseModel]] = {
    Category.SIGNAL.value: SignalEventIn,
    Category.DECISION.value: DecisionEventIn,
    Category.ORDER.value: OrderEventIn,
}
_HANDLED = frozenset({*(c.value for c in Category), ALL})
_RETRY_FIRST_DELAY = 0.05
_RETRY_MAX_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The gateway's acknowledgement of a published event: it is stored as `seq`."""

    seq: int
    id: UUID
    dispatched_clients: int
    #: The gateway had stored this id before (a re-send); `seq` is the original one.
    duplicate: bool


@dataclass(slots=True)
class ClientStats:
    """Counters since the client was created, for health checks and tests."""

    connect_attempts: int = 0
    connects: int = 0
    events_received: int = 0
    events_handled: int = 0
    duplicates: int = 0
    handler_errors: int = 0
    resyncs: int = 0
    acks_sent: int = 0


@dataclass(eq=False, slots=True)
class _Request:
    id: UUID
    text: str
    future: asyncio.Future[Ack]
    gen: int = 0  # the session it was last sent on; 0: not sent yet


class GatewayClient:
    """Connect to the gateway's `/ws/events`, publish with acks, handle delivered events.

    Use it as `async with GatewayClient(token=...) as client:` (runs in the
    background, returns once connected) or `await client.run()` until
    `await client.close()`.

    Args:
        url: the gateway's WebSocket URL; default `ATS_GATEWAY_URL`.
        token: the service's token (sent as `Authorization: Bearer`, never logged).
        dedup_size: how many recent event ids to remember to drop re-deliveries; keep
            it above `max_queued_events` so a replay after a reconnect is covered.
        ack_timeout: default seconds `publish()` and `log()` wait for the gateway's
            ack, including time spent waiting for a connection.
        min_reconnect_delay: the first reconnect delay (then exponential, jittered).
        max_reconnect_delay: the cap of the reconnect delay.
        open_timeout: seconds to open a connection and receive the connect ack.
        connect_timeout: how long `async with` waits for the first connection;
            None waits until connected or a fatal error.
        ping_interval: keepalive pings, seconds; None disables them.
        ack_batch: acknowledge at least every this many handled events...
        ack_interval: ...and at most this many seconds after an event was handled.
        max_queued_events: events read but not yet handled before the client stops
            reading events and resyncs by replay.
        max_frame_bytes: refuse larger frames locally (the gateway's default limit).
        close_timeout: how long `close()` lets a running handler finish.
        on_connect: called with the connect ack after every (re)connect.
        logger: a structlog logger; default `shared.logging.get_logger("shared.sdk")`.
        settings: where the default URL comes from; default `CommonSettings()`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | SecretStr,
        dedup_size: int = 10_000,
        ack_timeout: float = 30.0,
        min_reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        open_timeout: float = 10.0,
        connect_timeout: float | None = None,
        ping_interval: float | None = 20.0,
        ack_batch: int = 50,
        ack_interval: float = 0.1,
        max_queued_events: int = 5_000,
        max_frame_bytes: int = 64 * 1024,
        close_timeout: float = 5.0,
        on_connect: ConnectCallback | None = None,
        logger: Any = None,
        settings: CommonSettings | None = None,
    ) -> None:
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        if not secret.get_secret_value().strip():
            raise ValueError("token is empty: pass the token the gateway issued for this service")
        _require_positive(
            dedup_size=dedup_size,
            ack_timeout=ack_timeout,
            min_reconnect_delay=min_reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            open_timeout=open_timeout,
            ack_batch=ack_batch,
            ack_interval=ack_interval,
            max_queued_events=max_queued_events,
            max_frame_bytes=max_frame_bytes,
            close_timeout=close_timeout,
        )
        if max_reconnect_delay < min_reconnect_delay:
            raise ValueError("max_reconnect_delay must be at least min_reconnect_delay")
        self._url = url or (settings or CommonSettings()).gateway_url
        self._token = secret
        self._dedup_size = dedup_size
        self._ack_timeout = ack_timeout
        self._reconnect_delays = jittered_backoff(min_reconnect_delay, max_reconnect_delay)
        self._open_timeout = open_timeout
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ack_batch = ack_batch
        self._ack_interval = ack_interval
        self._max_queued = max_queued_events
        self._max_frame_bytes = max_frame_bytes
        self._close_timeout = close_timeout
        self._on_connect = on_connect
        self._log: Any = logger if logger is not None else get_logger("shared.sdk")
        self.stats = ClientStats()

        self._handlers: dict[str, list[Handler[Any]]] = {}
        self._hello: Ack | None = None
        self._config: dict[str, Any] = {}
        self._subscriptions: list[str] = []

        self._conn: SessionConnection | None = None
        self._gen = 0
        self._resending = False
        self._requests: dict[UUID, _Request] = {}
        self._queue: asyncio.Queue[DeliveredEvent] = asyncio.Queue()
        self._overflowed = False
        self._seen: OrderedDict[UUID, None] = OrderedDict()
        self._handling = False

        self._ack_seq = 0
        self._ack_dirty = False
        self._unacked = 0
        self._ack_wakeup = asyncio.Event()

        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._closing = False
        self._stopped = False
        self._fatal: BaseException | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ state

    @property
    def url(self) -> str:
        return self._url

    @property
    def client_id(self) -> str | None:
        """This session's id from the connect ack (`role:name:xxxx`); None before it."""
        return self._hello.client_id if self._hello else None

    @property
    def role(self) -> Role | None:
        return self._hello.role if self._hello else None

    @property
    def cursor(self) -> int | None:
        """The acknowledged `seq` the gateway replayed from at the last connect."""
        return self._hello.cursor if self._hello else None

    @property
    def subscriptions(self) -> list[str]:
        """What this client receives from, as of the last connect ack or config update."""
        return list(self._subscriptions)

    @property
    def config(self) -> dict[str, Any]:
        """This client's configuration, as of the last connect ack or config update."""
        return self._config

    @property
    def positions(self) -> list[HeldPosition]:
        """A trading group's open positions as execution held them at the last connect
        (empty for other roles, or a gateway that does not send them)."""
        return list(self._hello.positions or []) if self._hello else []

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def connection(self) -> ClientConnection | None:
        """The live WebSocket connection, if any (for diagnostics and tests)."""
        return self._conn

    @property
    def closed(self) -> bool:
        return self._closing or self._stopped

    # A timeout argument, not asyncio.timeout(): the caller's bound is part of the API.
    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until a session is open.

        Raises:
            TimeoutError: not connected within `timeout` seconds.
            AuthenticationError: the gateway refused the token.
            ClientClosed: the client was closed.
        """
        if self._connected.is_set():
            return
        if self._done.is_set() or self._closing:
            raise self._stop_error()
        waiters = {
            asyncio.create_task(self._connected.wait()),
            asyncio.create_task(self._done.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if self._connected.is_set():
            return
        if self._done.is_set():
            raise self._stop_error()
        raise TimeoutError(
            f"not connected to {redact_text(self._url)} within {timeout:g}s: "
            "is the gateway running at that address?"
        )

    # ------------------------------------------------------------------ handlers

    # The Literal overloads overlap the `str` fallback on purpose: a known category
    # gets its precise event type, anything else the union.
    @overload
    def on(  # type: ignore[overload-overlap]
        self, category: Literal["signal", Category.SIGNAL]
    ) -> Callable[[Handler[SignalEvent]], Handler[SignalEvent]]: ...
    @overload
    def on(  # type: ignore[overload-overlap]
        self, category: Literal["decision", Category.DECISION]
    ) -> Callable[[Handler[DecisionEvent]], Handler[DecisionEvent]]: ...
    @overload
    def on(  # type: ignore[overload-overlap]
        self, category: Literal["order", Category.ORDER]
    ) -> Callable[[Handler[OrderEvent]], Handler[OrderEvent]]: ...
    @overload
    def on(  # type: ignore[overload-overlap]
        self, category: Literal["config_update", Category.CONFIG_UPDATE]
    ) -> Callable[[Handler[ConfigUpdateEvent]], Handler[ConfigUpdateEvent]]: ...
    @overload
    def on(self, category: str) -> Callable[[Handler[DeliveredEvent]], Handler[DeliveredEvent]]: ...
    def on(self, category: str) -> Callable[[Handler[Any]], Handler[Any]]:
        """Decorator: `@client.on("signal")` registers the function for that category.

        `"*"` (`ALL`) receives every category, after the category's own handlers.
        """

        def register(handler: Handler[Any]) -> Handler[Any]:
            self.add_handler(category, handler)
            return handler

        return register

    def add_handler(self, category: str, handler: Handler[Any]) -> None:
        """Run `handler(event)` for every delivered event of `category` (or `"*"`).

        Handlers run one at a time, in delivery order; each event is acknowledged
        after its handlers return. A handler that raises is logged, and the event is
        still acknowledged, so one bad event cannot stall the stream.
        """
        key = str(category.value if isinstance(category, Category) else category)
        if key not in _HANDLED:
            raise ValueError(
                f"unknown category {category!r}: handle one of {', '.join(sorted(_HANDLED))}"
            )
        self._handlers.setdefault(key, []).append(handler)

    # ------------------------------------------------------------------ publishing

    async def publish(
        self,
        category: Category | str,
        payload: Mapping[str, Any] | BaseModel,
        *,
        id: UUID | str | None = None,
        title: str = "",
        targets: Iterable[str] = (),
        tags: Iterable[str] = (),
        priority: int = 5,
        trace: Trace | Mapping[str, str | None] | None = None,
        ts: datetime | None = None,
        # The ack deadline also bounds retries and waiting for a connection, and a
        # timeout raises AckTimeout; asyncio.timeout() around the call cannot do either.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> PublishResult:
        """Publish an event and wait until the gateway has stored it.

        The frame is validated locally first. If the connection drops before the
        ack, the same frame (same id) is sent again after the reconnect; the
        gateway stores an id once. Rate-limited or unavailable answers are retried
        until `timeout` (default `ack_timeout`), which also bounds waiting for a
        connection.

        Raises:
            InvalidEvent: the frame is invalid (raised before sending).
            PublishRejected: the gateway refused it (`reason`, `detail`).
            AckTimeout: no ack in time; publish again with the same id to be safe.
            AuthenticationError, ClientClosed: the client stopped.
        """
        frame_id = _as_uuid(id)
        key = str(category.value if isinstance(category, Category) else category)
        model = _EVENT_MODELS.get(key)
        if key == Category.CONFIG_UPDATE.value:
            raise ForbiddenEvent(
                RejectReason.FORBIDDEN_EVENT,
                "config_update events are sent by the gateway only; change the "
                "configuration through the REST API",
                id=frame_id,
            )
        if model is None:
            raise InvalidEvent(
                RejectReason.VALIDATION_ERROR,
                f"unknown category {category!r}: publish one of {', '.join(_EVENT_MODELS)}",
                id=frame_id,
            )
        text = self._encode(
            model,
            {
                "id": frame_id,
                "priority": priority,
                "targets": list(targets),
                "title": title,
                "tags": list(tags),
                "trace": trace if trace is not None else {},
                "ts": ts,
                "payload": payload,
            },
            frame_id,
        )
        ack = await self._request(frame_id, text, timeout)
        if ack.seq is None:
            raise ProtocolError(f"the gateway acknowledged event {frame_id} without a seq")
        return PublishResult(
            seq=ack.seq,
            id=frame_id,
            dispatched_clients=ack.dispatched_clients or 0,
            duplicate=ack.message == "duplicate",
        )

    async def log(
        self,
        message: str,
        *,
        level: LogLevel | str = LogLevel.INFO,
        code: str = "LOG",
        data: Mapping[str, Any] | None = None,
        trace: Trace | Mapping[str, str | None] | None = None,
        id: UUID | str | None = None,
        ts: datetime | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (as in publish)
    ) -> UUID:
        """Send a `log` frame (a log line, a heartbeat, a discussion message) and wait
        until the gateway has stored it; returns its id. Raises like `publish()`."""
        frame_id = _as_uuid(id)
        text = self._encode(
            LogIn,
            {
                "id": frame_id,
                "level": level,
                "code": code,
                "message": message,
                "data": dict(data) if data is not None else {},
                "trace": trace if trace is not None else {},
                "ts": ts,
            },
            frame_id,
        )
        await self._request(frame_id, text, timeout)
        return frame_id

    def _encode(self, model: type[BaseModel], data: dict[str, Any], frame_id: UUID) -> str:
        try:
            frame = model.model_validate(data)
            text = frame.model_dump_json()
        except ValidationError as e:
            raise InvalidEvent(
                RejectReason.VALIDATION_ERROR, _field_errors(e), id=frame_id
            ) from None
        except PydanticSerializationError as e:
            raise InvalidEvent(
                RejectReason.VALIDATION_ERROR,
                f"not JSON-serializable: {e}; send plain JSON values",
                id=frame_id,
            ) from None
        size = len(text.encode())
        if size > self._max_frame_bytes:
            raise TooLarge(
                RejectReason.TOO_LARGE,
                f"frame of {size} bytes exceeds the limit of {self._max_frame_bytes} bytes; "
                "send less (summarize or split it)",
                id=frame_id,
            )
        return text

    async def _request(
        self,
        frame_id: UUID,
        text: str,
        timeout: float | None,  # noqa: ASYNC109 (as in publish)
    ) -> Ack:
        """Send a frame (now, or when connected), re-send it after reconnects, and
        return its ack; retry rate-limited and unavailable answers until the deadline."""
        if self._closing or self._stopped:
            raise self._stop_error()
        if frame_id in self._requests:
            raise ValueError(f"a frame with id {frame_id} is already awaiting its ack")
        timeout = self._ack_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        retry_delay = _RETRY_FIRST_DELAY
        while True:
            request = _Request(frame_id, text, loop.create_future())
            self._requests[frame_id] = request
            try:
                ws = self._conn
                if ws is not None and not self._resending:
                    request.gen = self._gen
                    # A failed send is not an error: the next session re-sends it.
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(text)
                try:
                    ack = await asyncio.wait_for(request.future, max(deadline - loop.time(), 0))
                except TimeoutError:
                    raise AckTimeout(frame_id, timeout, why=self._unacked_why()) from None
            finally:
                if self._requests.get(frame_id) is request:
                    del self._requests[frame_id]
            if ack.ok:
                return ack
            error = PublishRejected.from_reply(ack.message, ack.detail, id=frame_id)
            delay = retry_delay * (0.5 + random.random() / 2)  # noqa: S311
            if isinstance(error, RateLimited | Unavailable) and loop.time() + delay < deadline:
                self._log.info("publish_retry", id=str(frame_id), reason=ack.message, delay=delay)
                await asyncio.sleep(delay)
                retry_delay = min(retry_delay * 2, _RETRY_MAX_DELAY)
                continue
            raise error

    def _unacked_why(self) -> str:
        if not self._started:
            return "the client is not running: use `async with GatewayClient(...)` or run()"
        if self._conn is None:
            return f"not connected to {redact_text(self._url)}; still reconnecting"
        return "connected, but the gateway did not answer in time"

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Connect, reconnect, publish and dispatch until `close()`.

        Raises:
            AuthenticationError: the gateway refused the token (no retry).
        """
        if self._started:
            raise RuntimeError("run() was already called: a GatewayClient runs once")
        if self._closing:
            raise ClientClosed("the client is closed: create a new GatewayClient")
        self._started = True
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="sdk-dispatcher")
        self._acker = asyncio.create_task(self._ack_loop(), name="sdk-acker")
        self._loop_task = asyncio.create_task(self._connect_loop(), name="sdk-connection")
        tasks = {self._loop_task, self._dispatcher, self._acker}
        error: BaseException | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    error = task.exception()
                    break
            if error is None and self._loop_task not in done:
                # Only close() ends the dispatcher without an error, and it also
                # ends the connection loop; wait for that.
                await asyncio.wait({self._loop_task})
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            self._stop(error)
        if error is not None:
            if isinstance(error, AuthenticationError):
                self._log.error("gateway_refused_token", reason=error.reason, code=error.code)
            else:
                self._log.error("client_failed", error=repr(error))
            raise error

    async def close(self) -> None:
        """Let a running handler finish (up to `close_timeout`), acknowledge what was
        handled, close the connection with 1000 and stop. Idempotent."""
        in_handler = asyncio.current_task() is self._dispatcher
        if self._closing:
            if self._started and not in_handler:
                await self._done.wait()
            return
        self._closing = True
        if not self._started:
            self._stop(None)
            return
        if in_handler:
            # Called from a handler: the handler has to return before we can finish.
            self._spawn(self._finish_close())
            return
        await self._finish_close()

    async def _finish_close(self) -> None:
        dispatcher = self._dispatcher
        if dispatcher is not None and not dispatcher.done():
            if not self._handling:
                dispatcher.cancel()
            _, pending = await asyncio.wait({dispatcher}, timeout=self._close_timeout)
            if pending:
                self._log.warning("handler_cancelled_on_close", timeout=self._close_timeout)
                dispatcher.cancel()
                await asyncio.wait({dispatcher})
        await self._flush_acks()
        ws = self._conn
        if ws is not None:
            await ws.close(1000, "client closing")
        elif self._loop_task is not None:
            self._loop_task.cancel()
        await self._done.wait()

    async def __aenter__(self) -> Self:
        if self._started:
            raise RuntimeError("the client is already running: use either run() or async with")
        self._run_task = asyncio.create_task(self.run(), name="sdk-run")
        try:
            await self.wait_connected(self._connect_timeout)
        except BaseException:
            await self.close()
            await asyncio.wait({self._run_task})
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        if self._run_task is not None:
            await asyncio.wait({self._run_task})
            error = None if self._run_task.cancelled() else self._run_task.exception()
            # Surface a fatal stop (a revoked token) unless the body already failed.
            if error is not None and exc_type is None:
                raise error

    def _stop(self, error: BaseException | None) -> None:
        self._stopped = True
        self._fatal = error
        self._conn = None
        self._connected.clear()
        for request in self._requests.values():
            if not request.future.done():
                request.future.set_exception(self._stop_error())
        self._requests.clear()
        self._done.set()

    def _stop_error(self) -> BaseException:
        if self._fatal is not None:
            return self._fatal
        return ClientClosed("the client is closed: create a new GatewayClient to reconnect")

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ connection

    async def _connect_loop(self) -> None:
        connector = SessionConnect(
            self._url,
            on_attempt=self._count_attempt,
            additional_headers={"Authorization": f"Bearer {self._token.get_secret_value()}"},
            process_exception=self._classify,
            reconnect_delays=self._reconnect_delays,
            open_timeout=self._open_timeout,
            ping_interval=self._ping_interval,
        )
        # aclosing: leaving the loop on an error must close the iterator's connection.
        sessions = cast(AsyncGenerator[ClientConnection], aiter(connector))
        async with contextlib.aclosing(sessions):
            async for ws in sessions:
                if self._closing:
                    return
                assert isinstance(ws, SessionConnection)
                if not await self._serve(ws):
                    return

    def _count_attempt(self) -> None:
        self.stats.connect_attempts += 1

    def _classify(self, exc: Exception) -> Exception | None:
        outcome = classify_connect_error(exc)
        if outcome is None:
            self._log.warning("gateway_connect_failed", error=str(exc), retrying=True)
        return outcome

    async def _serve(self, ws: SessionConnection) -> bool:
        """Run one session; False when the client is closing and must not reconnect."""
        hello = ws.hello
        assert hello is not None
        self._gen += 1
        self._hello = hello
        self._config = dict(hello.config or {})
        self._subscriptions = list(hello.subscriptions or [])
        if hello.limits is not None:
            # The gateway's own limit wins: a frame it would refuse is refused here first.
            self._max_frame_bytes = min(self._max_frame_bytes, hello.limits.max_frame_bytes)
        self._overflowed = False
        self._conn = ws
        self.stats.connects += 1
        self._log.info(
            "gateway_connected",
            client_id=hello.client_id,
            cursor=hello.cursor,
            resending=len(self._requests),
        )
        if self._ack_seq:
            # Acks sent on the old session may have been lost with it.
            self._ack_dirty = True
            self._ack_wakeup.set()
        self._connected.set()
        if self._on_connect is not None:
            self._spawn(self._call_on_connect(self._on_connect, hello))
        try:
            await self._resend(ws)
            async for raw in ws:
                self._on_frame(raw)
        except ConnectionClosed:
            pass
        finally:
            self._conn = None
            self._connected.clear()
        rcvd = ws.protocol.close_rcvd
        code, reason = (rcvd.code, rcvd.reason) if rcvd else (None, "")
        if is_fatal_close(code, reason, before_ack=False):
            raise AuthenticationError(reason, code=code)
        if self._closing:
            return False
        self._log.warning("gateway_disconnected", code=code, reason=reason)
        return True

    async def _resend(self, ws: SessionConnection) -> None:
        """Send, in their original order, the frames no session has sent yet or whose
        session died before the ack."""
        self._resending = True
        try:
            while True:
                unsent = [
                    r for r in self._requests.values() if r.gen != self._gen and not r.future.done()
                ]
                if not unsent:
                    return
                for request in unsent:
                    request.gen = self._gen
                    await ws.send(request.text)
        finally:
            self._resending = False

    async def _call_on_connect(self, callback: ConnectCallback, hello: Ack) -> None:
        try:
            result = callback(hello)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log.exception("on_connect_failed")

    def _on_frame(self, raw: str | bytes) -> None:
        try:
            frame = server_frame_adapter.validate_json(raw)
        except ValidationError as e:
            # Skipped, not fatal: later acks are cumulative and move past it.
            self._log.error("gateway_frame_invalid", errors=_field_errors(e)[:3], frame=raw[:200])
            return
        if isinstance(frame, Ack):
            self._on_ack(frame)
        elif isinstance(frame, Log):
            self._log.debug("gateway_log_ignored", id=str(frame.id))
        else:
            self._on_event(frame)

    def _on_ack(self, ack: Ack) -> None:
        if ack.id is not None:
            request = self._requests.get(ack.id)
            if request is not None and not request.future.done():
                request.future.set_result(ack)
                return
        if not ack.ok:
            # Without an id (too large, unparsable) it cannot be matched to a publish.
            self._log.warning("frame_rejected", reason=ack.message, detail=ack.detail)

    def _on_event(self, event: DeliveredEvent) -> None:
        self.stats.events_received += 1
        if self._overflowed:
            return
        if self._queue.qsize() >= self._max_queued:
            # Drop this and every later event of this session; the dispatcher
            # reconnects once it has drained, and the gateway replays them.
            self._overflowed = True
            self.stats.resyncs += 1
            self._log.warning("event_queue_full", queued=self._queue.qsize(), seq=event.seq)
            return
        self._queue.put_nowait(event)

    # ------------------------------------------------------------------ dispatch and ack

    async def _dispatch_loop(self) -> None:
        while not self._closing:
            event = await self._queue.get()
            self._handling = True
            try:
                await self._dispatch(event)
            finally:
                self._handling = False
            self._ack_seq = max(self._ack_seq, event.seq)
            self._ack_dirty = True
            self._unacked += 1
            if self._unacked >= self._ack_batch:
                await self._flush_acks()
            else:
                self._ack_wakeup.set()
            if self._overflowed and self._queue.empty() and not self._closing:
                await self._resync()
            # Handlers that never await would otherwise starve the reader (and its
            # keepalive pings) through a long backlog: get() on a full queue never yields.
            await asyncio.sleep(0)

    async def _dispatch(self, event: DeliveredEvent) -> None:
        if event.id in self._seen:
            self._seen.move_to_end(event.id)
            self.stats.duplicates += 1
            return
        self._seen[event.id] = None
        if len(self._seen) > self._dedup_size:
            self._seen.popitem(last=False)
        if isinstance(event, ConfigUpdateEvent):
            self._config = dict(event.payload.config)
            self._subscriptions = list(event.payload.subscriptions)
            self._log.info("config_updated", subscriptions=self._subscriptions)
        for handler in (*self._handlers.get(event.category, ()), *self._handlers.get(ALL, ())):
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.stats.handler_errors += 1
                self._log.exception(
                    "handler_failed",
                    handler=getattr(handler, "__qualname__", repr(handler)),
                    category=event.category,
                    id=str(event.id),
                    seq=event.seq,
                )
        self.stats.events_handled += 1

    async def _resync(self) -> None:
        await self._flush_acks()
        ws = self._conn
        if ws is not None:
            self._log.info("event_queue_resync", acked=self._ack_seq)
            await ws.close(1000, "resync: replay from the acknowledged cursor")

    async def _ack_loop(self) -> None:
        """Acknowledge a trickle of events within `ack_interval`; a full batch is
        acknowledged by the dispatcher at once."""
        while True:
            await self._ack_wakeup.wait()
            await asyncio.sleep(self._ack_interval)
            self._ack_wakeup.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        ws = self._conn
        if ws is None or not self._ack_dirty or not self._ack_seq:
            return
        self._ack_dirty = False
        self._unacked = 0
        try:
            await ws.send(f'{{"kind":"ack","seq":{self._ack_seq}}}')
        except ConnectionClosed:
            self._ack_dirty = True
        else:
            self.stats.acks_sent += 1


def _as_uuid(value: UUID | str | None) -> UUID:
    if value is None:
        return uuid4()
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except ValueError:
        raise InvalidEvent(
            RejectReason.VALIDATION_ERROR,
            [{"loc": ["id"], "msg": f"not a UUID: {value!r}", "type": "uuid_parsing"}],
        ) from None


def _field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """The gateway's `detail` shape for validation errors: loc, msg, type."""
    return [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_input=False)[:20]
    ]


def _require_positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
