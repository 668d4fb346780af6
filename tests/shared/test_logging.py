"""Secrets never reach the logs: the redaction processor."""

from __future__ import annotations

from typing import Any

import pytest

from shared.logging import REDACTED, redact_secrets, redact_text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('"WebSocket /ws/events?trigger_token=ats_trg_abc123" [accepted]', "ats_trg_abc123"),
        ("GET /x?api_key=s3cr3t&b=1", "s3cr3t"),
        ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi.abc.def"),
        ("connecting with ats_grp_AbCdEfGhIjKlMnOpQrStUv", "ats_grp_AbCdEfGhIjKlMnOpQrStUv"),
        ("postgresql+asyncpg://ats:hunter2@db:5432/ats", "hunter2"),
    ],
)
def test_redact_text_scrubs_secret(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert REDACTED in out


def test_redact_secrets_masks_secret_keys_at_any_depth() -> None:
    event: dict[str, Any] = {
        "event": "account_loaded",
        "api_key": "k",
        "account": {"name": "binance-1", "credentials": {"secret": "s"}, "password": "p"},
        "tokens": ["x"],
        "note": "harmless",
    }
    out = redact_secrets(None, "info", event)
    assert out["api_key"] == REDACTED
    assert out["account"]["credentials"] == REDACTED
    assert out["account"]["password"] == REDACTED
    assert out["account"]["name"] == "binance-1"
    assert out["tokens"] == REDACTED
    assert out["note"] == "harmless"
