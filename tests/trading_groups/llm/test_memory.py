"""Memory: which reflections a prompt recalls (relevance, bounds), and the reflections
written with and without the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from trading_groups.llm.memory import (
    ClosedTrade,
    Remembered,
    model_reflection,
    recall,
    template_reflection,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def r(day: int, symbol: str, content: str) -> Remembered:
    return Remembered(symbol, content, T0 + timedelta(days=day))


STORED = [
    r(1, "BTC/USDT", "btc old"),
    r(2, "ETH/BTC", "eth old"),
    r(3, "BTC/USDT", "btc new"),
    r(4, "SOL/USDT", "sol newest"),
    r(5, "ETH/BTC", "eth new"),
]


def test_recall_same_symbol_first_then_the_others_newest_first() -> None:
    got = recall(STORED, symbol="BTC/USDT", max_items=10, max_chars=10_000)
    assert got == [
        "2025-03-04 BTC/USDT: btc new",
        "2025-03-02 BTC/USDT: btc old",
        "2025-03-06 ETH/BTC: eth new",
        "2025-03-05 SOL/USDT: sol newest",
        "2025-03-03 ETH/BTC: eth old",
    ]


def test_recall_stops_at_max_items() -> None:
    got = recall(STORED, symbol="ETH/BTC", max_items=3, max_chars=10_000)
    assert [line.split(": ")[1] for line in got] == ["eth new", "eth old", "sol newest"]


def test_recall_keeps_the_total_within_max_chars_skipping_what_does_not_fit() -> None:
    stored = [r(3, "ETH/BTC", "x" * 50), r(2, "ETH/BTC", "y" * 500), r(1, "BTC/USDT", "z" * 30)]
    got = recall(stored, symbol="ETH/BTC", max_items=5, max_chars=200)
    assert [line[-3:] for line in got] == ["xxx", "zzz"]  # the 500-character one is skipped
    assert sum(map(len, got)) <= 200


def test_recall_cuts_the_most_relevant_one_rather_than_recall_nothing() -> None:
    got = recall([r(1, "ETH/BTC", "word " * 100)], symbol="ETH/BTC", max_items=5, max_chars=60)
    assert len(got) == 1 and len(got[0]) <= 60 and got[0].endswith("[...]")
    assert recall(STORED, symbol="ETH/BTC", max_items=0, max_chars=100) == []
    assert recall(STORED, symbol="ETH/BTC", max_items=3, max_chars=0) == []


TRADE = ClosedTrade(
    symbol="ETH/BTC",
    pnl=Decimal("-0.0021"),
    exit_price=Decimal("0.0951"),
    quantity=Decimal("0.5"),
    entry_reason="RSI oversold and rising volume.",
    exit_reason="Trend broke below the 20-period SMA.",
)


def test_reflections_state_the_trade_and_the_lesson_or_why_there_is_none() -> None:
    facts = (
        "Closed ETH/BTC with realized PnL -0.0021 (a loss), sold 0.5 at 0.0951. "
        "Entry: RSI oversold and rising volume. Exit: Trend broke below the 20-period SMA."
    )
    assert TRADE.facts() == facts
    assert model_reflection(TRADE, "Wait for confirmation.", max_chars=600) == (
        f"{facts} Lesson: Wait for confirmation."
    )
    assert template_reflection(TRADE, why="daily token budget reached", max_chars=600) == (
        f"{facts} (No lesson drawn: daily token budget reached.)"
    )
    assert len(model_reflection(TRADE, "long " * 500, max_chars=300)) <= 300
    win = ClosedTrade("BTC/USDT", Decimal("0.5"), None, None)
    assert win.facts() == "Closed BTC/USDT with realized PnL 0.5 (a win)."
