"""Opening a session: websockets' reconnecting `connect`, extended to read the connect ack.

The gateway accepts the WebSocket before it checks the token, so a refused token
arrives as a 1008 close right after the handshake, not as an HTTP error. Reading
the connect ack inside `connect()` makes such a refusal a failed *connection
attempt*, which websockets' own iterator then retries with backoff or raises,
depending on `classify_connect_error`. A hand-written retry loop is not needed.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Generator
from typing import Any

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import backoff
from websockets.client import process_exception as default_process_exception
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared.events import Ack
from shared.sdk.errors import AuthenticationError, ProtocolError

POLICY_VIOLATION = 1008

#: 1008 reasons that mean the token itself is refused: stop, do not retry.
FATAL_CLOSE_REASONS = frozenset(
    {"invalid token", "token revoked", "missing token", "token rotated", "deleted", "disabled"}
)
#: 1008 reasons that pass: the gateway frees the previous session within 30 s.
TRANSIENT_CLOSE_REASONS = frozenset({"token already connected", "too many rejected frames"})


class SessionConnection(ClientConnection):
    """A connection that carries the gateway's connect ack once it is open."""

    hello: Ack | None = None


class Refused(Exception):
    """The gateway closed the connection before or instead of the connect ack."""

    def __init__(self, code: int | None, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"the gateway closed the connection with {code} ({reason or '-'})")


def is_fatal_close(code: int | None, reason: str, *, before_ack: bool) -> bool:
    """Whether a close means the token is refused for good.

    Before the connect ack every 1008 is an authentication failure (a malformed
    header, two tokens) unless the gateway says it passes; after it only the
    reasons that name the token are.
    """
    if code != POLICY_VIOLATION:
        return False
    if reason in FATAL_CLOSE_REASONS:
        return True
    return before_ack and reason not in TRANSIENT_CLOSE_REASONS


def classify_connect_error(exc: Exception) -> Exception | None:
    """`process_exception` for websockets: None to retry with backoff, else raise it."""
    if isinstance(exc, Refused):
        if is_fatal_close(exc.code, exc.reason, before_ack=True):
            return AuthenticationError(exc.reason, code=exc.code)
        return None
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return AuthenticationError(f"HTTP {status}", code=None)
        if status == 429:
            return None
    return default_process_exception(exc)


def jittered_backoff(min_delay: float, max_delay: float) -> Callable[[], Generator[float]]:
    """websockets' exponential backoff with every step jittered, so that many clients
    cut off at once by a gateway restart do not all come back in the same instant."""

    def delays() -> Generator[float]:
        first = True
        for delay in backoff(initial_delay=min_delay, min_delay=min_delay, max_delay=max_delay):
            # The first delay is already random in [0, min_delay).
            yield delay if first else delay * (0.5 + random.random() / 2)  # noqa: S311
            first = False

    return delays


def parse_connect_ack(raw: str | bytes) -> Ack:
    """The connect ack, ignoring fields a newer gateway may add (`Ack` forbids extras)."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the connect ack is not a JSON object")
    return Ack.model_validate({k: v for k, v in data.items() if k in Ack.model_fields})


class SessionConnect(connect):
    """`websockets.asyncio.client.connect` whose attempt ends with the connect ack read."""

    def __init__(
        self, uri: str, *, on_attempt: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(uri, create_connection=SessionConnection, **kwargs)
        self._on_attempt = on_attempt

    async def connect(self) -> SessionConnection:
        if self._on_attempt is not None:
            self._on_attempt()
        conn = await super().connect()
        assert isinstance(conn, SessionConnection)
        try:
            async with asyncio.timeout(self.open_timeout):
                raw = await conn.recv()
        except ConnectionClosed as e:
            rcvd = e.rcvd
            raise (Refused(rcvd.code, rcvd.reason) if rcvd else Refused(None, "")) from e
        except BaseException:
            conn.transport.abort()
            raise
        try:
            hello = parse_connect_ack(raw)
        except (ValidationError, ValueError) as e:
            conn.transport.abort()
            raise ProtocolError(
                f"the gateway's first frame is not a connect ack ({e}); "
                "is the URL the gateway's /ws/events endpoint?"
            ) from e
        if not hello.ok or hello.message != "connected" or hello.client_id is None:
            conn.transport.abort()
            raise ProtocolError(f"unexpected connect ack from the gateway: {hello.message!r}")
        conn.hello = hello
        return conn
