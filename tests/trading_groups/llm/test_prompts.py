"""Prompt building: each role's system prompt with the answer's schema, a member's own
template, and the brief every member is shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import SecretStr

from shared.kernel.strategy import Position
from shared.llm.client import ModelSpec
from shared.market.candles import Candle
from trading_groups.llm.config import Member, Role, Tier
from trading_groups.llm.prompts import (
    CORRECTION,
    MAX_SIGNAL_CHARS,
    ROLE_PROMPTS,
    Brief,
    clip,
    corrected,
    fill,
    messages,
    system_prompt,
)
from trading_groups.llm.schemas import AnalystReport, Proposal

SPEC = ModelSpec(base_url="http://h/v1", model="m", api_key=SecretStr("k"))
T0 = datetime(2018, 1, 10, 6, tzinfo=UTC)


def member(role: Role, prompt: str | None = None) -> Member:
    return Member(name="m1", role=role, tier=Tier.CHEAP, spec=SPEC, prompt=prompt)


def test_system_prompt_is_the_roles_then_the_answers_json_schema() -> None:
    text = system_prompt(
        member(Role.TECHNICAL), AnalystReport, group="g1", symbol="ETH/BTC", timeframe="5m"
    )
    assert text.startswith("You are the technical analyst of g1, an automated trading team "
                           "deciding on ETH/BTC (5m candles).")  # fmt: skip
    assert "Reply with one JSON object and nothing else" in text
    schema = json.loads(text.split("```")[1])
    assert set(schema["properties"]) == {"stance", "confidence", "summary", "key_points"}
    assert set(ROLE_PROMPTS) == set(Role)


def test_system_prompt_a_members_template_keeps_its_braces_and_the_format() -> None:
    own = 'You are {member}, a {role} on {symbol}. Example: {"action": "HOLD"} {unknown}'
    text = system_prompt(
        member(Role.TRADER, own), Proposal, group="g1", symbol="BTC/USDT", timeframe="1h"
    )
    assert text.startswith(
        'You are m1, a trader on BTC/USDT. Example: {"action": "HOLD"} {unknown}'
    )
    assert '"action"' in text.split("```")[1]
    assert fill("{a}{b}{a}", {"a": "1"}) == "1{b}1"


def candles(n: int) -> list[Candle]:
    return [
        Candle(
            "ETH/BTC", "5m", T0 + timedelta(minutes=5 * i), 0.1, 0.11, 0.09, 0.105 + i / 1e4, 12.5
        )
        for i in range(n)
    ]


def test_brief_renders_signal_market_positions_decisions_and_lessons() -> None:
    brief = Brief(
        group="g1",
        symbol="ETH/BTC",
        timeframe="5m",
        signal={"id": "s1", "payload": {"symbol": "ETH/BTC", "direction": "long", "rsi": 28.4}},
        candles=candles(3),
        indicators={"rsi_14": 28.4123456789, "sma_50": None},
        positions=[Position("ETH/BTC", Decimal("0.5"), Decimal("0.1"), T0)],
        decisions=["2018-01-10 05:00 ETH/BTC: BUY (decided) — trend up"],
        reflections=["2018-01-09 ETH/BTC: Closed with a loss. Lesson: wait for volume."],
    )
    text = brief.render()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## The signal",
        "## Market data",
        "## Open positions of the group",
        "## The group's recent decisions",
        "## Lessons from the group's closed trades",
    ]
    assert '"rsi": 28.4' in text
    assert "2018-01-10 06:10, 0.1, 0.11, 0.09, 0.1052, 12.5" in text  # newest last
    assert "rsi_14 28.412346, sma_50 n/a" in text
    assert "ETH/BTC: long 0.5 at 0.1, since 2018-01-10 06:00" in text
    assert "- 2018-01-10 05:00 ETH/BTC: BUY (decided) — trend up" in text
    assert "Lesson: wait for volume." in text


def test_brief_without_data_says_so_and_bounds_the_signal() -> None:
    huge = {"analysis": "word " * 5_000}
    text = Brief(
        group="g1", symbol="SOL/USDT", timeframe="1h", signal=huge,
        market_note="No candle feed is configured for SOL/USDT: judge from the signal alone.",
    ).render()  # fmt: skip
    assert "No candle feed is configured for SOL/USDT" in text
    assert "none (the group is flat)" in text
    assert text.count("none yet") == 2
    signal = text.split("## The signal\n\n")[1].split("\n\n## ")[0]
    assert len(signal) <= MAX_SIGNAL_CHARS and signal.endswith("[...]")


def test_corrected_shows_the_model_its_answer_and_the_error() -> None:
    first = messages("system text", "user text")
    again = corrected(first, "not json", "Invalid json output: not json")
    assert [m.role for m in again] == ["system", "user", "assistant", "user"]
    assert again[2].content == "not json"
    assert again[3].content == CORRECTION.format(error="Invalid json output: not json")
    assert corrected(first, None, "e")[2].content == "(empty reply)"
    assert clip("one two three four", 12) == "one [...]"
