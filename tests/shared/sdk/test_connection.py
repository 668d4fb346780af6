"""Which closes and handshake failures stop the client, and which are retried."""

from __future__ import annotations

import pytest

from shared.sdk.connection import Refused, classify_connect_error, is_fatal_close, jittered_backoff
from shared.sdk.errors import AuthenticationError


@pytest.mark.parametrize(
    ("code", "reason", "before_ack", "fatal"),
    [
        (1008, "invalid token", True, True),
        (1008, "missing token", True, True),
        (1008, "token revoked", False, True),
        (1008, "token rotated", False, True),
        (1008, "deleted", False, True),
        (1008, "malformed Authorization header: use 'Bearer <token>'", True, True),
        (1008, "token already connected", True, False),
        (1008, "too many rejected frames", False, False),
        (1001, "gateway shutting down", True, False),
        (1013, "send queue overflow: reconnect to catch up", False, False),
        (None, "", True, False),
    ],
)
def test_is_fatal_close_stops_only_on_refused_tokens(
    code: int | None, reason: str, before_ack: bool, fatal: bool
) -> None:
    assert is_fatal_close(code, reason, before_ack=before_ack) is fatal


def test_classify_connect_error_turns_refusals_into_authentication_errors() -> None:
    refused = classify_connect_error(Refused(1008, "invalid token"))
    assert isinstance(refused, AuthenticationError) and refused.reason == "invalid token"
    assert classify_connect_error(Refused(1008, "token already connected")) is None
    assert classify_connect_error(ConnectionRefusedError()) is None


def test_jittered_backoff_grows_to_the_cap() -> None:
    delays = jittered_backoff(0.1, 1.0)()
    first = [next(delays) for _ in range(20)]
    assert 0 <= first[0] < 0.1
    assert all(0.05 <= d <= 1.0 for d in first[1:])
    assert max(first[-5:]) > 0.5
