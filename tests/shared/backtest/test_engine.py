"""The event-driven backtester's fast paths change no result.

`shared/backtest/engine.py` skips work it already has the answer to: indicators
computed ahead (`indicator_table`), the strategy's positions and outcomes rebuilt on
fills only, the equity of a held stretch settled in one pass, no recent trades
converted for a risk engine that does not read them. `reference()` below is the
engine as first written, every step on every candle with the kernel's plain API
(`update`, `context`, `decide`, `mark`, `equity()`, `account_state` with its default
look-back); the tests replay the same candles through both and compare everything:
trades, final equity, the equity curve bit for bit, exposure, rejections, fills.
"""

from __future__ import annotations

import heapq
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from shared.backtest import BacktestConfig, BacktestResult, run_backtest
from shared.backtest import engine as engine_module
from shared.backtest.engine import held_equity
from shared.backtest.metrics import compute_metrics
from shared.events import Action
from shared.kernel.engine import StrategyEngine
from shared.kernel.fills import FillModelConfig, decimal_price, simulate, simulate_oco
from shared.kernel.orders import (
    Fill,
    Order,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    apply_fill,
    client_order_id,
    exit_orders,
    transition,
)
from shared.kernel.portfolio import Portfolio
from shared.kernel.risk import MarketRules, Mode, RiskEngine, RiskLimits, TradeIntent, merge_limits
from shared.kernel.risk.state import account_state
from shared.kernel.strategy import Context, Decision, Strategy, create_strategy, safe_decide
from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv
from shared.market.indicators import (
    INDICATOR_SPECS,
    IndicatorWindow,
    _exact_means,
    indicator_table,
)
from tests.conftest import ROOT

DATA = ROOT / "data"
DECISIONS = uuid.UUID("2f3d7a9c-5b1e-4c8a-9e6f-0a1b2c3d4e5f")


def shipped(name: str, count: int | None = None) -> list[Candle]:
    candles = read_candles_csv(DATA / f"{name}_5m.csv", name.replace("-", "/"), "5m")
    return candles[:count] if count else candles


def walk(n: int, seed: int, symbol: str = "SIM/USDT") -> list[Candle]:
    """`n` 1m candles of a seeded geometric random walk around 100."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate(([100.0], closes[:-1]))
    spread = np.abs(rng.normal(0, 0.0005, n)) * closes
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Candle(
            symbol,
            "1m",
            t0 + timedelta(minutes=i),
            float(opens[i]),
            float(max(opens[i], closes[i]) + spread[i]),
            float(min(opens[i], closes[i]) - spread[i]),
            float(closes[i]),
            1.0,
        )
        for i in range(n)
    ]


# --------------------------------------------------------------------------- reference


@dataclass
class _RefMarket:
    engine: StrategyEngine
    rules: MarketRules
    pending: list[Order] = field(default_factory=list)
    exits: list[Order] = field(default_factory=list)
    stops: tuple[Decimal | None, Decimal | None] = (None, None)


@dataclass
class _Reference:
    portfolio: Portfolio
    equity: list[float] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    held_at: dict[datetime, bool] = field(default_factory=dict)  # after each time's candles
    fills: int = 0
    rejections: Counter[str] = field(default_factory=Counter)


def reference(
    strategy: Callable[[], Strategy],
    candles: Mapping[str, Sequence[Candle]],
    config: BacktestConfig,
) -> _Reference:
    """The backtester with no shortcut: everything on every candle."""
    limits = merge_limits(config.risk, config.group_risk)
    risk = RiskEngine()
    run = _Reference(Portfolio("backtest", config.capital, currency=config.currency))
    books = run.portfolio
    markets = {
        s: _RefMarket(
            StrategyEngine(strategy()),
            config.markets.get(s)
            or MarketRules.from_config(s, None, taker_fee=config.fill_model.taker_fee),
        )
        for s in candles
    }
    name = next(iter(markets.values())).engine.strategy.name

    def book(order: Order, fill: Fill) -> Order | None:
        if books.can_apply(fill) is not None:
            run.rejections["insufficient_funds"] += 1
            return None
        books.apply(fill)
        run.fills += 1
        return apply_fill(order, fill)

    ordered = heapq.merge(*candles.values(), key=lambda c: (c.close_time, c.symbol))
    for candle in ordered:
        m = markets[candle.symbol]
        for order in list(m.pending):
            fill = simulate(order, candle, config.fill_model)
            if fill is None:
                continue
            m.pending.remove(order)
            filled = book(order, fill)
            if filled is not None and order.leg is OrderLeg.ENTRY and any(m.stops):
                m.exits = [
                    transition(o, OrderStatus.SUBMITTED, at=fill.at)
                    for o in exit_orders(
                        filled,
                        stop_loss=m.stops[0],
                        take_profit=m.stops[1],
                        at=fill.at,
                        not_before=fill.at,
                    )
                ]
        if m.exits:
            fill = simulate_oco(m.exits, candle, config.fill_model)
            if fill is not None:
                (order,) = [o for o in m.exits if o.client_order_id == fill.client_order_id]
                m.exits, m.stops = [], (None, None)
                book(order, fill)
        books.mark(candle.symbol, decimal_price(candle.close))
        m.engine.update(candle)
        now = candle.close_time
        decision = m.engine.decide(
            m.engine.context(
                now=now,
                positions=[p for p in books.strategy_positions() if p.symbol == candle.symbol],
                outcomes=[t.as_outcome(name) for t in books.closed_trades[-50:]],
            )
        )
        if decision.action is not Action.HOLD:
            _reference_execute(run, m, candle, decision, risk, limits, config)
        run.times.append(now)
        run.equity.append(float(books.equity()))
        run.held_at[now] = bool(books.positions)
    return run


def _reference_execute(
    run: _Reference,
    m: _RefMarket,
    candle: Candle,
    decision: Decision,
    risk: RiskEngine,
    limits: RiskLimits,
    config: BacktestConfig,
) -> None:
    now = candle.close_time
    try:
        intent = TradeIntent(
            account="backtest",
            group=config.group,
            symbol=candle.symbol,
            side=decision.action,
            confidence=decision.confidence,
            entry=decision.entry or decimal_price(candle.close),
            decided_at=now,
            stop_loss=decision.stop_loss,
            take_profit=decision.take_profit,
            candle_time=candle.open_time,
            timeframe=candle.timeframe,
            size_hint=decision.size_hint,
        )
    except ValueError:
        run.rejections["invalid_intent"] += 1
        return
    verdict = risk.evaluate(
        intent, account_state(run.portfolio, mode=Mode.PAPER, now=now), m.rules, limits, now=now
    )
    if not verdict.accepted or verdict.quantity is None:
        run.rejections[verdict.reason.value if verdict.reason else "rejected"] += 1
        return
    decision_id = uuid.uuid5(DECISIONS, f"{candle.symbol}|{candle.open_time.isoformat()}")
    leg = OrderLeg.ENTRY if intent.is_entry else OrderLeg.EXIT
    if intent.is_entry:
        m.stops = (decision.stop_loss, decision.take_profit)
    else:
        m.exits, m.stops = [], (None, None)
    order = Order(
        client_order_id=client_order_id(decision_id, leg),
        account="backtest",
        symbol=candle.symbol,
        side=OrderSide.BUY if intent.is_entry else OrderSide.SELL,
        type=OrderType.MARKET,
        quantity=verdict.quantity,
        created_at=now,
        leg=leg,
        decision_id=str(decision_id),
        not_before=now,
    )
    m.pending.append(transition(order, OrderStatus.SUBMITTED, at=now))


def assert_same(result: BacktestResult, ref: _Reference) -> None:
    books = ref.portfolio
    expected = [
        (t.symbol, t.quantity, t.opened_at, t.closed_at, t.entry_price, t.exit_price, t.pnl)
        for t in books.closed_trades
    ]
    got = [
        (t.symbol, t.quantity, t.entry_time, t.exit_time, t.entry_price, t.exit_price, t.pnl)
        for t in result.trades
    ]
    assert got == expected
    assert [t.fees for t in result.trades] == [t.fees for t in books.closed_trades]
    assert result.final_equity == books.equity()
    assert str(result.final_equity) == str(books.equity())
    assert result.fees_paid == books.fees_paid
    assert result.equity_times == ref.times
    assert result.equity == ref.equity  # floats, bit for bit
    assert result.exposure_bars == sum(ref.held_at.values())
    assert result.rejections == dict(ref.rejections)
    assert result.fills == ref.fills


# --------------------------------------------------------------------------- cases

FEES = FillModelConfig(slippage_bps=Decimal(5), taker_fee=Decimal("0.001"))
BTC: dict[str, Any] = {"capital": Decimal(1), "currency": "BTC"}

CASES: dict[str, tuple[str, dict[str, Any], list[str], dict[str, Any]]] = {
    "sma": ("sma_cross", {"fast": 10, "slow": 30}, ["ETH-BTC"], BTC),
    "sma_fees_step": (
        "sma_cross",
        {"fast": 5, "slow": 20},
        ["LTC-BTC"],
        {
            **BTC,
            "fill_model": FEES,
            "risk": RiskLimits.model_validate(
                {"sizing": {"method": "fixed_notional", "notional": "0.01"}}
            ),
            "markets": {
                "LTC/BTC": MarketRules.from_config(
                    "LTC/BTC", {"amount_step": "0.001"}, taker_fee=Decimal("0.001")
                )
            },
        },
    ),
    "sma_stops": (
        "sma_cross",
        {
            "fast": 10,
            "slow": 30,
            "stop_loss": {"kind": "pct", "value": 0.01},
            "take_profit": {"kind": "atr", "multiple": 2.0},
        },
        ["ADA-BTC"],
        BTC,
    ),
    "sma_all_in": (
        "sma_cross",
        {"fast": 3, "slow": 7},
        ["XRP-USDT"],
        {
            "risk": RiskLimits.model_validate({"sizing": {"method": "percent_equity", "pct": 99}}),
            "fill_model": FillModelConfig(slippage_bps=Decimal(10)),
        },
    ),
    "sma_limits": (
        "sma_cross",
        {"fast": 4, "slow": 9},
        ["ETH-BTC"],
        {
            **BTC,
            "risk": RiskLimits.model_validate(
                {
                    "max_trades_per_day": 5,
                    "cooldown_after_loss_minutes": 30,
                    "max_daily_loss_pct": 1,
                    "stoploss_guard": {
                        "lookback_minutes": 600,
                        "trade_limit": 2,
                        "stop_duration_minutes": 120,
                    },
                }
            ),
        },
    ),
    "rsi_stops": (
        "rsi_reversal",
        {
            "stop_loss": {"kind": "atr", "multiple": 1.5},
            "take_profit": {"kind": "pct", "value": 0.02},
        },
        ["LTC-BTC"],
        {**BTC, "fill_model": FillModelConfig(slippage_bps=Decimal(3))},
    ),
    "breakout": ("breakout", {}, ["ADA-BTC"], BTC),
    "three_symbols": (
        "sma_cross",
        {"fast": 10, "slow": 30},
        ["ETH-BTC", "LTC-BTC", "ADA-BTC"],
        {**BTC, "risk": RiskLimits.model_validate({"max_open_positions": 2})},
    ),
    "two_symbols_stops": (
        "breakout",
        {"length": 10, "exit_length": 5, "stop_loss": {"kind": "pct", "value": 0.005}},
        ["ETH-BTC", "LTC-BTC"],
        BTC,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_engine_equals_the_every_candle_reference(case: str) -> None:
    name, params, files, settings = CASES[case]
    count = 3000 if len(files) > 1 else None
    candles = {c[0].symbol: c for c in (shipped(f, count) for f in files)}
    config = BacktestConfig(**settings)
    result = run_backtest(lambda: create_strategy(name, params), candles, config)
    assert result.trades  # the case trades
    assert_same(result, reference(lambda: create_strategy(name, params), candles, config))


def test_engine_equals_reference_on_a_random_walk() -> None:
    candles = {"SIM/USDT": walk(20_000, seed=7)}
    config = BacktestConfig(fill_model=FEES)
    strategy = lambda: create_strategy("sma_cross", {"fast": 10, "slow": 30})  # noqa: E731
    result = run_backtest(strategy, candles, config)
    assert len(result.trades) > 100
    assert_same(result, reference(strategy, candles, config))


def test_engine_progress_reports_every_percent_and_the_end() -> None:
    candles = {"ETH/BTC": shipped("ETH-BTC", 1000)}
    seen: list[tuple[int, int]] = []
    result = run_backtest(
        lambda: create_strategy("sma_cross", {}),
        candles,
        BacktestConfig(**BTC),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (1000, 1000) and result.bars == 1000
    assert [d for d, _ in seen[:3]] == [10, 20, 30]


def test_engine_refuses_candles_out_of_order_like_the_window() -> None:
    candles = shipped("ETH-BTC", 100)
    swapped = [*candles[:50], candles[51], candles[50], *candles[52:]]
    with pytest.raises(ValueError, match="is not after the previous one"):
        run_backtest(lambda: create_strategy("sma_cross", {}), {"ETH/BTC": swapped})


def test_engine_refuses_a_close_of_zero_like_the_portfolio_mark() -> None:
    candles = shipped("ETH-BTC", 100)
    candles[70] = replace(candles[70], close=0.0)
    with pytest.raises(ValueError, match="mark price of ETH/BTC must be > 0"):
        run_backtest(lambda: create_strategy("sma_cross", {}), {"ETH/BTC": candles})


# --------------------------------------------------------------------------- kernel pieces

ALL_KINDS = INDICATOR_SPECS.validate_python(
    [
        {"kind": "sma", "length": 1},
        {"kind": "sma", "length": 10},
        {"kind": "sma", "length": 30},
        {"kind": "ema", "length": 20},
        {"kind": "rsi", "length": 14},
        {"kind": "macd"},
        {"kind": "bbands", "length": 20, "std": 2.0},
        {"kind": "atr", "length": 14},
    ]
)


@pytest.mark.parametrize("source", ["ETH-BTC", "ADA-BTC", "XRP-USDT", "walk"])
def test_indicator_table_equals_the_window_bit_for_bit(source: str) -> None:
    candles = walk(5000, seed=3) if source == "walk" else shipped(source)
    window = IndicatorWindow(ALL_KINDS)
    expected = [window.update(c) for c in candles]
    table = indicator_table(ALL_KINDS, candles)
    assert len(table) == len(expected)
    for want, got in zip(expected, table, strict=True):
        assert list(got) == list(want)
        for column, value in want.items():
            other = got[column]
            # Equal as floats, and the same bits (0.0 and -0.0 are equal floats).
            assert (other is None) == (value is None), column
            if value is not None and other is not None:
                assert value.hex() == other.hex(), column


def test_indicator_table_shorter_than_warmup_is_all_none() -> None:
    candles = shipped("ETH-BTC", 5)
    table = indicator_table(ALL_KINDS[1:3], candles)
    assert table == [{"sma_10": None, "sma_30": None}] * 5
    assert indicator_table(ALL_KINDS[1:3], []) == []


def test_strategy_engine_step_is_update_context_decide() -> None:
    strategy = create_strategy("sma_cross", {"fast": 3, "slow": 5})
    one, two = StrategyEngine(strategy), StrategyEngine(strategy)
    candles = shipped("ETH-BTC", 300)
    table = indicator_table(strategy.indicators(), candles)
    for i, c in enumerate(candles):
        one.update(c)
        want = one.decide(one.context(now=c.close_time))
        assert two.step(c, c.close_time, (), (), table[i]) == want


def test_safe_decide_reads_no_clock_without_a_budget() -> None:
    calls: list[float] = []

    def timer() -> float:
        calls.append(time.perf_counter())
        return calls[-1]

    strategy = create_strategy("sma_cross", {})
    ctx = Context("X/Y", "5m", datetime(2024, 1, 1, tzinfo=UTC), [shipped("ETH-BTC", 1)[0]], {}, {})
    assert safe_decide(strategy, ctx, timer=timer).action is Action.HOLD
    assert calls == []
    safe_decide(strategy, ctx, budget_seconds=1.0, timer=timer)
    assert len(calls) == 2


def test_context_is_still_a_frozen_dataclass() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    ctx = Context("X/Y", "5m", now, (), {"a": 1.0}, {})
    assert ctx == Context(
        symbol="X/Y", timeframe="5m", now=now, candles=(), indicators={"a": 1.0}, previous={}
    )
    assert (ctx.signal, ctx.positions, ctx.outcomes) == (None, (), ())
    with pytest.raises(FrozenInstanceError):
        ctx.symbol = "Z/Y"  # type: ignore[misc]
    assert replace(ctx, symbol="Z/Y").symbol == "Z/Y"


# --------------------------------------------------------------------------- exposure, open trades


class _Scripted(Strategy):
    """BUY on the candle closing at minute `buy`, SELL on the one closing at `sell`."""

    name = "scripted"

    def __init__(self, buy: int, sell: int | None) -> None:
        super().__init__()
        self.buy, self.sell = buy, sell

    def decide(self, ctx: Context) -> Decision:
        minute = int((ctx.now - T0).total_seconds() // 60)
        if minute == self.buy:
            return Decision(Action.BUY, 1.0, "scripted buy")
        if minute == self.sell:
            return Decision(Action.SELL, 1.0, "scripted sell")
        return Decision.hold("scripted hold")


T0 = datetime(2024, 1, 1, tzinfo=UTC)


def scripted_run(
    plans: dict[str, tuple[int, int | None]], count: int = 100
) -> tuple[BacktestResult, dict[str, list[Candle]]]:
    candles = {s: walk(count, seed=i, symbol=s) for i, s in enumerate(plans)}
    made = iter(plans.values())  # one strategy per symbol, in the order of `candles`
    result = run_backtest(lambda: _Scripted(*next(made)), candles, BacktestConfig())
    return result, candles


def test_exposure_with_two_symbols_is_the_share_of_time_with_any_position_open() -> None:
    # A is bought on the close at minute 10 and filled at the open of the candle
    # closing at 11, sold on the close at 30 and filled at the next open: held at 20
    # bar times (11..30); B at 21..40. Some position is open at 30 of the 100 times;
    # the symbols' candles with their own position open are 40 of 200 (20 %).
    result, _ = scripted_run({"A/USDT": (10, 30), "B/USDT": (20, 40)})
    assert len(result.trades) == 2
    assert result.bars == 200
    assert result.exposure_bars == 30
    assert compute_metrics(result).exposure_pct == 30.0


def test_exposure_with_one_symbol_counts_its_bars() -> None:
    result, _ = scripted_run({"A/USDT": (10, 30)})
    assert result.exposure_bars == 20
    assert compute_metrics(result).exposure_pct == 20.0


def test_a_position_open_at_the_end_is_an_unrealized_end_trade() -> None:
    result, candles = scripted_run({"A/USDT": (10, 30), "B/USDT": (50, None)})
    (closed,) = result.trades
    (still,) = result.open_trades
    last = candles["B/USDT"][-1]
    books_mark = Decimal(repr(last.close))
    assert closed.symbol == "A/USDT" and closed.exit_reason == "exit"
    assert still.symbol == "B/USDT" and still.exit_reason == "end"
    # Decided on the candle closing at minute 50, filled at the next one's open.
    assert still.entry_time == candles["B/USDT"][50].open_time
    assert (still.exit_time, still.exit_price) == (last.close_time, books_mark)
    # Marked like final_equity: the cash plus the open quantity at the last close.
    assert still.pnl == still.quantity * books_mark - (
        still.quantity * still.entry_price + still.fees
    )
    cash = result.capital + closed.pnl - (still.quantity * still.entry_price + still.fees)
    assert result.final_equity == cash + still.quantity * books_mark
    # Trade metrics count closed trades only; the JSON flags the open one.
    assert compute_metrics(result).trades == 1
    data = result.to_json()
    assert [t["exit_reason"] for t in data["open_trades"]] == ["end"]
    assert data["open_trades"][0]["unrealized"] is True
    assert [t["exit_reason"] for t in data["trades"]] == ["exit"]
    assert BacktestResult.from_json(data).open_trades == result.open_trades


def test_a_run_that_ends_flat_has_no_open_trades() -> None:
    result, _ = scripted_run({"A/USDT": (10, 30)})
    assert result.open_trades == []
    assert result.to_json()["open_trades"] == []


def _hex(values: Sequence[float | None]) -> list[str | None]:
    return [v.hex() if v is not None else None for v in values]


@pytest.mark.parametrize("n", [1, 2, 7, 30, 200])
@pytest.mark.parametrize("kind", ["walk", "mantissas", "cancelling"])
def test_exact_rolling_means_are_fsum_over_each_window_bit_for_bit(
    kind: str, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SMA column's integer rolling sum against `math.fsum` of each window, on
    prices and on sums built to round, at the widest span of binary orders the
    64-bit sum allows for `n`: random 53-bit mantissas, and large values of both
    signs cancelling to leave small ones."""
    rng = np.random.default_rng(n)
    size, room = 600, 63 - 53 - n.bit_length()  # the orders a block may span

    def mantissa() -> str:
        return f"0x1.{int(rng.integers(0, 2**52)):013x}"

    if kind == "walk":
        values = [x.close for x in walk(size, seed=n)]
    elif kind == "mantissas":
        values = [
            float.fromhex(f"{mantissa()}p{int(rng.integers(0, room + 1))}") for _ in range(size)
        ]
    else:
        big = [float.fromhex(f"{sign}{mantissa()}p{room}") for sign in ("", "-")]
        values = [float(v) for v in rng.choice([*big, *big, 1.5, 1.0 + 2.0**-52, 1.75], size)]
    want = [math.fsum(values[i - n : i]) / n for i in range(n, size + 1)]

    def no_fsum(*_: object) -> float:
        raise AssertionError("summed by fsum, not by the integer path under test")

    monkeypatch.setattr(math, "fsum", no_fsum)  # the module indicators sums with
    got = _exact_means(values, n)
    assert got is not None
    assert _hex(got) == _hex(want)
    # And through `indicator_table`, as the engine calls it.
    specs = INDICATOR_SPECS.validate_python([{"kind": "sma", "length": n}])
    table = indicator_table(specs, [_at(i, v) for i, v in enumerate(values)])
    expected: list[float | None] = [None] * (n - 1)
    assert _hex([row[f"sma_{n}"] for row in table]) == _hex([*expected, *want])


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0, float("inf"), 3.0],  # fsum's overflow and nan rules
        [1.0, -0.0, 2.0, 0.0],  # signed zeros
    ],
)
def test_exact_rolling_means_leave_what_they_cannot_prove_to_fsum(values: list[float]) -> None:
    assert _exact_means(values, 2) is None


def test_exact_rolling_means_sum_blocks_spanning_many_orders_with_fsum() -> None:
    # 1e300 next to 1e-300 spans more binary orders than 64 bits hold: those windows
    # go to fsum, the others keep the integer sum; all equal fsum's.
    values = [1.5, 2.25, 1e300, 1e-300, 3.0, *[float(i % 7 + 1) for i in range(9000)]]
    got = _exact_means(values, 3)
    assert got is not None
    assert _hex(got) == _hex([math.fsum(values[i - 3 : i]) / 3 for i in range(3, len(values) + 1)])


def _at(i: int, close: float) -> Candle:
    """A 1m candle of open, high, low and close `close` (any float: only closes count)."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return Candle("SIM/USDT", "1m", t0 + timedelta(minutes=i), close, close, close, close, 1.0)


@pytest.mark.parametrize("exposure", [0.001, 0.1, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_held_equity_is_the_decimal_equity_bit_for_bit(exposure: float, seed: int) -> None:
    """`held_equity` (double-double bounds, `Decimal` where unsure) against
    `float(cash + quantity * Decimal(repr(close)))` for every bar: cash and
    quantities with the books' 28 digits, closes of a walk, from a sliver of the
    account in the position to all of it."""
    rng = np.random.default_rng(seed)
    closes = [x.close for x in walk(3000, seed=seed)]
    equity = list(closes)
    stretches = []
    for start in range(0, 3000, 50):
        stop = start + int(rng.integers(1, 50))
        equity_now = Decimal(10_000) * Decimal(repr(float(rng.uniform(0.5, 2))))
        price = Decimal(repr(closes[start]))
        quantity = (equity_now * Decimal(repr(exposure)) / price).quantize(Decimal("1e-8"))
        cash = equity_now - quantity * price - quantity * price * Decimal("0.001")
        cash = max(cash, Decimal(0)) / Decimal(3) * Decimal(3)  # 28 digits, as the books
        stretches.append((start, stop, cash, quantity))
    want = list(equity)
    for start, stop, cash, quantity in stretches:
        want[start:stop] = [float(cash + quantity * Decimal(repr(c))) for c in closes[start:stop]]
    held_equity(equity, stretches)
    assert _hex(equity) == _hex(want)


def test_held_equity_takes_the_fast_path_for_most_bars_at_a_tenth_of_equity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closes = [x.close for x in walk(5000, seed=9)]
    equity = list(closes)
    stretches = [(0, 5000, Decimal("9000.123456789012345678901234"), Decimal("9.87654321"))]
    exact: list[float] = []

    def counting(value: str | float = "0") -> Decimal:
        exact.append(1.0)
        return Decimal(value)  # the engine's Decimal is this module's

    monkeypatch.setattr(engine_module, "Decimal", counting)
    held_equity(equity, stretches)
    assert len(exact) < 0.25 * len(closes)  # most bars need no Decimal at all
    cash, quantity = stretches[0][2], stretches[0][3]
    assert equity == [float(cash + quantity * Decimal(repr(c))) for c in closes]
