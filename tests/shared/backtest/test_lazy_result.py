"""The compiled mode's result is lazy: its trades and its equity curve are built on
first use, once, equal to the eager lists, and `compute_metrics` reads its arrays
without building them, to the same floats bit for bit.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import struct
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from shared.backtest import BacktestConfig, BacktestResult
from shared.backtest.fast import FastData, curve_statistics, run_fast
from shared.backtest.metrics import Metrics, compute_metrics
from shared.backtest.result import Lazy, as_list, microseconds
from shared.market.candles import Candle
from tests.shared.backtest.test_engine import shipped, walk
from tests.shared.backtest.test_fast import engine


def eager(result: BacktestResult) -> BacktestResult:
    """`result` with its trades and curve as plain lists (built from the lazy ones)."""
    return replace(
        result,
        trades=list(result.trades),
        equity=list(result.equity),
        equity_times=list(result.equity_times),
    )


def bits(m: Metrics) -> dict[str, Any]:
    """Every metric, floats as their bits: equal only if equal bit for bit."""
    return {
        k: struct.pack("<d", v).hex() if isinstance(v, float) else v for k, v in m.to_json().items()
    }


def built(*values: Lazy[Any]) -> list[bool]:
    return [v.materialized for v in values]


def test_trades_and_curve_are_built_on_first_use_once() -> None:
    result = run_fast("sma_cross", FastData.from_candles(walk(3000, 5)), params={})
    trades, equity, times = result.trades, result.equity, result.equity_times
    assert isinstance(trades, Lazy) and isinstance(equity, Lazy) and isinstance(times, Lazy)
    assert len(trades) > 10 and len(equity) == len(times) == 3000
    assert built(trades, equity, times) == [False] * 3
    compute_metrics(result)  # ranking a run builds none of them
    assert built(trades, equity, times) == [False] * 3
    first = trades[0]
    assert built(trades, equity, times) == [True, False, False]
    assert trades.items is trades.items
    assert trades[0] is first and list(trades)[0] is first
    assert as_list(trades) is trades.items
    assert equity.array is not None
    assert equity[-1] == float(equity.array[-1]) and as_list(equity) is equity.items
    assert "not built" in repr(Lazy(2, lambda: [1, 2]))


@pytest.mark.parametrize("seed", [1, 2])
def test_the_lazy_result_equals_the_engine_and_its_eager_copy(seed: int) -> None:
    candles = walk(4000, seed)
    want = engine(candles, {"fast": 5, "slow": 20}, BacktestConfig())
    got = run_fast("sma_cross", {candles[0].symbol: candles}, params={"fast": 5, "slow": 20})
    assert isinstance(got.trades, Lazy) and len(got.trades) == len(want.trades) > 10
    assert got.trades == want.trades and want.trades == got.trades
    assert got.equity_times == want.equity_times
    assert got == eager(got) and eager(got) == got
    assert got.to_json() == eager(got).to_json()
    json.dumps(got.to_json())  # the REST API stores it as JSON
    assert pickle.loads(pickle.dumps(got)) == got == copy.deepcopy(got)  # noqa: S301 - our own bytes
    assert BacktestResult.from_json(got.to_json()) == got
    assert got.trades != want.trades[:-1] and got.trades != "trades"


def test_column_gives_each_field_of_the_records() -> None:
    result = run_fast("sma_cross", FastData.from_candles(walk(3000, 7)), params={})
    trades = result.trades
    assert isinstance(trades, Lazy) and trades.column is not None
    columns = {name: trades.column(name) for name in ("pnl", "quantity", "entry_time", "fees")}
    columns |= {n: trades.column(n) for n in ("exit_time", "return_pct", "symbol", "exit_reason")}
    columns |= {n: trades.column(n) for n in ("entry_price", "exit_price")}
    assert not trades.materialized
    for name, values in columns.items():
        assert values == [getattr(t, name) for t in trades]
    assert all(isinstance(p, Decimal) for p in columns["pnl"])
    with pytest.raises(KeyError):
        trades.column("colour")


CASES: dict[str, tuple[Callable[[], list[Candle]], dict[str, Any]]] = {
    "walk": (lambda: walk(20_000, 11), {"fast": 10, "slow": 30}),
    "walk, often": (lambda: walk(5000, 12), {"fast": 3, "slow": 7}),
    "shipped": (lambda: shipped("XRP-USDT"), {"fast": 10, "slow": 30}),
    "no trade": (lambda: walk(40, 13), {"fast": 10, "slow": 30}),
    "one bar": (lambda: walk(1, 14), {"fast": 10, "slow": 30}),
    "two bars": (lambda: walk(2, 15), {"fast": 10, "slow": 30}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_metrics_from_the_arrays_equal_those_from_the_lists_bit_for_bit(case: str) -> None:
    candles, params = CASES[case]
    result = run_fast("sma_cross", FastData.from_candles(candles()), params=params)
    assert isinstance(result.equity, Lazy) and result.equity.array is not None
    assert bits(compute_metrics(result)) == bits(compute_metrics(eager(result)))


def test_curve_statistics_sums_as_python_sums() -> None:
    """Python 3.12's `sum()` of floats is compensated (Neumaier): the compiled sums
    follow it step for step, on returns hard to sum and across signs and scales."""
    rng = np.random.default_rng(3)
    for values in (
        100 * np.exp(np.cumsum(rng.normal(0, 0.01, 50_000))),
        np.abs(rng.standard_cauchy(20_000)) + 1e-3,
        np.concatenate(([1.0, 1e150, 1.0, 1e-150, 3.0, 0.0, 5.0, 0.0], rng.random(100))),
    ):
        at = np.arange(len(values) - 1, dtype=np.int64) * 60_000_000
        got = curve_statistics(values, at, -1, float(values[0]))
        total, squares, down, count, _, _, overflow = got
        assert not overflow
        a, b = values[:-1].tolist(), values[1:].tolist()
        returns = [(y / x - 1) if x else 0.0 for x, y in zip(a, b, strict=True)]
        mean = sum(returns) / len(returns)
        assert count == len(returns)
        assert total.hex() == float(sum(returns)).hex()
        assert squares.hex() == float(sum((r - mean) ** 2 for r in returns)).hex()
        assert down.hex() == float(sum(min(r, 0.0) ** 2 for r in returns)).hex()
        assert math.isfinite(total)


def test_metrics_keep_the_last_value_at_each_time_as_from_the_lists() -> None:
    result = run_fast("sma_cross", FastData.from_candles(walk(3000, 9)), params={})
    times = list(result.equity_times)
    doubled = [t for t in times for _ in (0, 1)]  # two symbols' points per bar
    values = np.repeat(np.asarray(list(result.equity)), 2) * np.tile([0.999, 1.0], 3000)
    lazy = replace(
        result,
        equity_times=Lazy(
            6000,
            doubled.copy,
            array=np.repeat(np.asarray([microseconds(t) for t in times], np.int64), 2),
        ),
        equity=Lazy(6000, values.tolist, array=values),
    )
    assert bits(compute_metrics(lazy)) == bits(compute_metrics(eager(lazy)))
    assert compute_metrics(lazy).max_drawdown_pct == compute_metrics(result).max_drawdown_pct


def test_a_square_that_overflows_raises_as_on_the_lists() -> None:
    result = run_fast("sma_cross", FastData.from_candles(walk(50, 3)), params={})
    curve = np.full(50, 1e300)
    curve[::2] = 1.0  # returns of 1e300: their squares overflow
    lazy = replace(result, equity=Lazy(50, curve.tolist, array=curve))
    for each in (lazy, eager(lazy)):
        with pytest.raises(OverflowError):
            compute_metrics(each)


def test_microseconds_reads_naive_times_as_utc() -> None:
    aware = walk(2, 1)[1].open_time
    assert microseconds(aware) == microseconds(aware.replace(tzinfo=None))
    assert microseconds(aware) == int(aware.timestamp()) * 1_000_000
