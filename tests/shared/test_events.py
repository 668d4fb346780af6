"""Protocol models: what parses, what is refused, and the committed JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.events import (
    AckIn,
    DecisionEventIn,
    LogIn,
    SignalEventIn,
    client_frame_adapter,
    event_adapter,
    protocol_json_schema,
)

ROOT = Path(__file__).resolve().parents[2]


def test_client_frame_signal_keeps_indicator_values() -> None:
    frame = client_frame_adapter.validate_json(
        '{"kind":"event","category":"signal","payload":{"symbol":"BTC/USDT","rsi":28.4}}'
    )
    assert isinstance(frame, SignalEventIn)
    assert frame.payload.model_extra == {"rsi": 28.4}


def test_client_frame_kinds_are_told_apart() -> None:
    assert isinstance(client_frame_adapter.validate_python({"kind": "ack", "seq": 3}), AckIn)
    assert isinstance(client_frame_adapter.validate_python({"kind": "log"}), LogIn)
    decision = client_frame_adapter.validate_python(
        {
            "kind": "event",
            "category": "decision",
            "payload": {"symbol": "ETH/BTC", "action": "BUY", "confidence": 0.7, "entry": "0.1"},
        }
    )
    assert isinstance(decision, DecisionEventIn)
    assert str(decision.payload.entry) == "0.1"


@pytest.mark.parametrize(
    ("frame", "loc"),
    [
        ({"kind": "event", "category": "signal", "payload": {}, "source": "x"}, "source"),
        ({"kind": "event", "category": "signal", "payload": {}, "seq": 4}, "seq"),
        ({"kind": "event", "category": "nope", "payload": {}}, "event"),
        ({"kind": "event", "category": "decision", "payload": {"symbol": "X"}}, "action"),
        (
            {
                "kind": "event",
                "category": "decision",
                "payload": {"symbol": "X", "action": "BUY", "confidence": 2},
            },
            "confidence",
        ),
        ({"kind": "event", "category": "signal", "payload": {}, "ts": "2024-01-01T00:00"}, "ts"),
        ({"kind": "ack", "seq": 0}, "seq"),
    ],
)
def test_client_frame_invalid_is_refused_at_the_field(frame: dict[str, object], loc: str) -> None:
    with pytest.raises(ValidationError) as err:
        client_frame_adapter.validate_python(frame)
    assert any(loc in [str(p) for p in e["loc"]] for e in err.value.errors())


def test_delivered_event_requires_the_stamped_envelope() -> None:
    with pytest.raises(ValidationError):
        event_adapter.validate_python({"kind": "event", "category": "signal", "payload": {}})
    ev = event_adapter.validate_python(
        {
            "kind": "event",
            "category": "signal",
            "payload": {},
            "id": "3f1c0d4e-0000-4000-8000-000000000001",
            "seq": 7,
            "source": "trigger:t1",
            "ts": "2024-01-01T00:00:00Z",
        }
    )
    assert ev.seq == 7


def test_protocol_schema_committed_copy_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "protocol.schema.json").read_text())
    assert committed == json.loads(json.dumps(protocol_json_schema()))


def test_protocol_schema_check_command_fails_on_a_stale_copy(tmp_path: Path) -> None:
    stale = tmp_path / "schema.json"
    stale.write_text("{}")
    cmd = [sys.executable, "-c", "from ats.cli import main; main()", "schema", "--check"]
    assert subprocess.run([*cmd, str(stale)], capture_output=True).returncode == 1
    current = subprocess.run([*cmd, str(ROOT / "docs" / "protocol.schema.json")])
    assert current.returncode == 0
