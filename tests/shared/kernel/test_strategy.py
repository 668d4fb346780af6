"""Strategies: the built-ins take exactly the decisions computed independently; the
safe wrapper turns every failure into a HOLD with a reason."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, fields, replace
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pandas_ta as ta
import pytest

from shared.events import Action
from shared.kernel.engine import StrategyEngine
from shared.kernel.strategy import (
    Context,
    Decision,
    Outcome,
    Position,
    Strategy,
    create_strategy,
    new_context,
    register_strategy,
    safe_decide,
)
from shared.market.candles import Candle
from shared.market.feeds import CsvReplayFeed
from tests.triggers.expected import load

ETH = "data/ETH-BTC_5m.csv"


def candles(path: str = ETH, symbol: str = "ETH/BTC") -> list[Candle]:
    async def collect() -> list[Candle]:
        return [c async for c in CsvReplayFeed(path, symbol, "5m").stream()]

    return asyncio.run(collect())


def run(strategy: Strategy, data: list[Candle]) -> Iterator[tuple[Candle, Decision]]:
    """Replay with a position book: BUY opens, SELL closes."""
    engine = StrategyEngine(strategy)
    position: Position | None = None
    for c in data:
        engine.update(c)
        d = engine.decide(
            engine.context(now=c.close_time, positions=[position] if position else [])
        )
        if d.action is Action.BUY:
            assert position is None
            assert d.entry is not None
            position = Position(c.symbol, Decimal(1), d.entry, c.close_time)
        elif d.action is Action.SELL:
            assert position is not None
            position = None
        yield c, d


def expected_sma_trades(fast: int, slow: int) -> list[tuple[str, str]]:
    df = load("ETH-BTC_5m.csv")
    f, s = ta.sma(df["close"], length=fast), ta.sma(df["close"], length=slow)
    up = (f.shift(1) <= s.shift(1)) & (f > s)
    down = (f.shift(1) >= s.shift(1)) & (f < s)
    out, holding = [], False
    for t in df.index:
        if up[t] and not holding:
            out.append((t.isoformat(), "BUY"))
            holding = True
        elif down[t] and holding:
            out.append((t.isoformat(), "SELL"))
            holding = False
    return out


@pytest.mark.parametrize(("fast", "slow"), [(10, 30), (5, 20)])
def test_sma_cross_takes_exactly_the_crossings_long_only(fast: int, slow: int) -> None:
    strategy = create_strategy("sma_cross", {"fast": fast, "slow": slow})
    got = [
        (c.open_time.isoformat(), d.action.value)
        for c, d in run(strategy, candles())
        if d.action is not Action.HOLD
    ]
    assert got == expected_sma_trades(fast, slow)
    assert len(got) > 100


def test_rsi_reversal_buys_on_leaving_oversold() -> None:
    df = load("ETH-BTC_5m.csv")
    rsi = ta.rsi(df["close"], length=14)
    leave = (rsi.shift(1) <= 30) & (rsi > 30)
    buys = [
        c.open_time
        for c, d in run(create_strategy("rsi_reversal"), candles())
        if d.action is Action.BUY
    ]
    assert buys
    assert all(bool(leave[pd.Timestamp(t)]) for t in buys)


def test_sma_cross_attaches_atr_stop_and_pct_target() -> None:
    strategy = create_strategy(
        "sma_cross",
        {
            "stop_loss": {"kind": "atr", "multiple": 2.0},
            "take_profit": {"kind": "pct", "value": 0.03},
        },
    )
    df = load("ETH-BTC_5m.csv")
    atr = ta.atr(df["high"], df["low"], df["close"], length=14)
    buys = [(c, d) for c, d in run(strategy, candles()) if d.action is Action.BUY]
    assert buys
    for c, d in buys[:10]:
        assert d.stop_loss is not None and d.take_profit is not None
        assert float(d.stop_loss) == pytest.approx(
            c.close - 2 * atr[pd.Timestamp(c.open_time)], rel=1e-9
        )
        assert float(d.take_profit) == pytest.approx(c.close * 1.03, rel=1e-12)
        assert d.stop_loss < d.entry < d.take_profit  # type: ignore[operator]


def test_create_strategy_bad_params_name_the_field() -> None:
    with pytest.raises(ValueError, match="fast"):
        create_strategy("sma_cross", {"fast": 40, "slow": 30})
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        create_strategy("nope")
    with pytest.raises(ValueError, match="bogus"):
        create_strategy("sma_cross", {"bogus": 1})


def test_register_strategy_twice_raises() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_strategy("sma_cross")(
            type("Again", (Strategy,), {"decide": lambda self, ctx: None})
        )


class _Broken(Strategy):
    name = "broken"

    def __init__(self, behaviour: str) -> None:
        super().__init__()
        self.behaviour = behaviour

    def decide(self, ctx: Context) -> Decision:
        if self.behaviour == "raise":
            raise ZeroDivisionError("division by zero")
        if self.behaviour == "wrong":
            return "BUY"  # type: ignore[return-value]
        return Decision(Action.BUY, 0.9, "fine")


def _ctx() -> Context:
    c = Candle("X/Y", "5m", datetime(2024, 1, 1, tzinfo=UTC), 1, 1, 1, 1, 1)
    return Context("X/Y", "5m", c.close_time, [c], {}, {})


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("raise", "failed: ZeroDivisionError: division by zero"),
        ("wrong", "returned str, not a Decision"),
    ],
)
def test_safe_decide_failure_is_a_hold_with_the_reason(behaviour: str, reason: str) -> None:
    d = safe_decide(_Broken(behaviour), _ctx())
    assert d.action is Action.HOLD
    assert reason in d.reasoning


def test_safe_decide_overrun_is_a_hold() -> None:
    ticks = iter([0.0, 2.5])
    d = safe_decide(_Broken("ok"), _ctx(), budget_seconds=1.0, timer=lambda: next(ticks))
    assert d.action is Action.HOLD
    assert "over its 1s budget" in d.reasoning
    assert safe_decide(_Broken("ok"), _ctx(), budget_seconds=1.0).action is Action.BUY


def test_new_context_is_the_constructors_context() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    args = (
        "X/Y",
        "5m",
        now,
        (),
        {"a": 1.0},
        {"a": None},
        {"k": 1},
        (Position("X/Y", Decimal(1), Decimal(2), now),),
        (Outcome("X/Y", Decimal(-1), -0.5, now),),
    )
    made = new_context(*args)
    assert type(made) is Context
    assert made == Context(*args)
    assert [getattr(made, f.name) for f in fields(Context)] == list(args)
    with pytest.raises(FrozenInstanceError):
        made.now = now  # type: ignore[misc]
    assert replace(made, symbol="Z/Y") == Context("Z/Y", *args[1:])
