"""The compiled mode: simple rule strategies at compiled speed, with the event
engine's trades.

The event-driven engine (`shared.backtest.engine`) calls the strategy on every candle
and walks every decision through the live code path. For a rule whose decisions
depend only on its indicators and on whether a position is open, almost all of that
work is a HOLD: `sma_cross` acts on one candle in a hundred. This mode computes the
indicators compiled (numba), finds the candles where the rule can act, and books only
those, each through the same arithmetic the kernel does: the risk engine's sizing
(`sizing_quantity`, `round_price`, `round_amount`, `div_down`), the paper fill
model's price (`decimal_price`, `slipped`), quantity (the order's remaining) and fee,
and the portfolio's cash, cost basis and PnL, in `Decimal` arithmetic, operation for
operation. So it makes exactly the trades of the event engine, to the last digit of
every price, quantity, fee and PnL, and ends on the same final equity with the same
position open (tests/shared/backtest/test_fast.py holds the two side by side, on
shipped data and across generated fees, slippage, sizings and market rules).

The books are kept in compiled code too (`shared.backtest.fast_books`): numba has no
`Decimal`, so `shared.backtest.decimals` does the default context's 28-digit
arithmetic on integers (the same values and exponents, tested against `decimal`),
and reads each price as written (`Decimal(repr(x))`) from exact integer bounds on the
float. Only what the result reports becomes a Python object, in bulk. Where those
decimals cannot follow (a value over 36 digits, a non-default `decimal` context, a
partial exit), `_trade` books the run in Python's `Decimal`, with the same results.

What it supports (`supports`, `unsupported` says why not): `sma_cross` without
stop-loss or take-profit, on one symbol, with risk limits that only size (fixed
notional, percent of equity), cap positions at one or more, or bound the decision's
and the candle's age (which a backtest always passes); any market rules and fill
model. Anything else runs on the event engine instead (`run_fast` falls back unless
told not to), so `run_fast` always answers exactly.

Two things are computed differently, on purpose:

* **The SMA.** The event engine averages with `math.fsum`, the exactly rounded sum;
  here a compiled rolling sum gives the same exactly rounded sum: in 64-bit integers
  (the closes scaled to a common power of two, when the window's sum fits), else
  with Shewchuk's partials and CPython's final rounding. The same bits, one pass.
* **The equity curve** of candles with a position open is `cash + quantity x close`
  in floats, within a few units in the last place of the event engine's `Decimal`
  sum (flat candles, trades and the final equity are exact). `exact_curve=True`
  computes it in `Decimal` like the event engine, at about 1 µs per held candle
  (and books the run in Python).

Cost (docs/PERFORMANCE.md has the measurements): the first call in a process loads
the compiled functions from numba's cache (`cache=True`, about 0.4 s; the first call
ever compiles them, about 10 s). Then a run over `FastData` (the candles as
arrays, loaded once; each SMA length computed once) costs, per million candles,
about 1.5 ms per SMA (25 ms when the window's sum needs the partials) and 4 ms to
find the crosses; and per round trip about 3 µs: 0.2 µs to read its prices as
written and 2.7 µs for its exact books compiled (sizing 1 µs, of which four 28-digit
divisions). The result is lazy (`shared.backtest.result.Lazy`): the trades stay the
columns the books wrote (five decimals as text, candles and returns as arrays) and
the equity curve and its times numpy arrays, and `compute_metrics` reads those. Only
what reads them builds the Python objects, once: 1.7 µs a round trip for its five
`Decimal`s and its `TradeRecord`, 15 ms a million candles for the curve as a list of
floats and 4 ms for its times. So SMA(10)/SMA(30) on a 1-minute random walk (a trade
every 51 candles) runs at about 13 M candles/s, 1.2x vectorbt's speed, and at half
of it when every trade and the curve are built as Python objects.

numba's cache does not see a change to a function another module compiled in, so
`fast_books` adds the content of `decimals.py` to its functions' cache stamp: an edit
to the decimals recompiles the books.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, getcontext
from typing import Any, cast

import numba  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from shared.backtest import decimals, fast_books
from shared.backtest.engine import BacktestConfig, Progress, run_backtest
from shared.backtest.result import BacktestResult, Lazy, TradeRecord, microseconds
from shared.kernel.fills import FillModelConfig, decimal_price
from shared.kernel.orders import OrderLeg
from shared.kernel.risk import MarketRules, RiskLimits, RiskReason, merge_limits
from shared.kernel.risk.limits import FixedNotional, PercentOfEquity
from shared.kernel.risk.sizing import amount_grid
from shared.kernel.strategies import SmaCrossParams
from shared.kernel.strategy import create_strategy
from shared.market.candles import Candle, timeframe_delta

Floats = npt.NDArray[np.float64]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)
_BPS = Decimal(10_000)
_EXIT = OrderLeg.EXIT.value

#: The risk limits a run may set and still run here: they only size the entry, or
#: never refuse in a backtest (the decision is as old as its candle's close).
_SIZING_ONLY = frozenset(
    {"sizing", "max_open_positions", "max_positions_per_symbol"}
    | {"max_decision_age_seconds", "max_candle_age_candles"}
)


# --------------------------------------------------------------------------- support


def unsupported(
    strategy_name: str,
    params: Mapping[str, Any] | None = None,
    config: BacktestConfig | None = None,
    *,
    symbols: int = 1,
) -> str | None:
    """Why `run_fast` would run this on the event engine, or None if it runs here."""
    if strategy_name != "sma_cross":
        return f"strategy {strategy_name!r} has no compiled mode (only sma_cross has)"
    try:
        parsed = create_strategy(strategy_name, params).params
    except ValueError as e:
        return str(e)
    assert isinstance(parsed, SmaCrossParams)  # noqa: S101 - what create_strategy made
    if parsed.stop_loss is not None or parsed.take_profit is not None:
        return "stop-loss and take-profit orders run on the event engine"
    if symbols != 1:
        return "only one symbol runs compiled; several share an account on the event engine"
    if config is not None:
        return _unsupported_limits(merge_limits(config.risk, config.group_risk))
    return None


def supports(
    strategy_name: str,
    params: Mapping[str, Any] | None = None,
    config: BacktestConfig | None = None,
) -> bool:
    """Whether `run_fast` runs this strategy (and config, if given) compiled."""
    return unsupported(strategy_name, params, config) is None


def _unsupported_limits(limits: RiskLimits) -> str | None:
    defaults = RiskLimits()
    for name in RiskLimits.model_fields:
        if name not in _SIZING_ONLY and getattr(limits, name) != getattr(defaults, name):
            return f"risk limit {name} runs on the event engine"
    for name in ("max_open_positions", "max_positions_per_symbol"):
        if getattr(limits, name) == 0:
            return f"{name} 0 refuses every entry: that runs on the event engine"
    if not all(isinstance(s, FixedNotional | PercentOfEquity) for s in limits.sizings):
        return "risk_per_trade sizing needs a stop loss: that runs on the event engine"
    return None


# --------------------------------------------------------------------------- compiled


def _jit(function: Callable[..., Any]) -> Callable[..., Any]:
    return cast(Callable[..., Any], numba.njit(cache=True, nogil=True)(function))


def _scaling(x: Floats) -> tuple[int, int, npt.NDArray[np.int64]]:
    """The closes as exact integers: (e, bits, x / 2**e as int64), `e` the exponent of
    the smallest unit in the last place among them and `bits` the width of the
    largest. (0, 64, empty) when they do not all fit in 62 bits (a zero, a subnormal,
    an infinity, or magnitudes too far apart): then the sums take the partials.
    Each is below 2**bits, so a sum of k of them below 2**(bits + k.bit_length())."""
    words = x.view(np.int64)
    low, high = 1 << 30, -1
    for w in words:
        e = (w >> 52) & 0x7FF
        if e == 0 or e == 0x7FF:
            return 0, 64, np.empty(0, np.int64)
        low, high = min(low, e), max(high, e)
    bits = high - low + 53
    if low - 1075 < -1000 or bits > 62:
        return 0, 64, np.empty(0, np.int64)
    scaled = np.empty(len(x), np.int64)
    for i in range(len(x)):
        w = words[i]
        v = ((w & 0xFFFFFFFFFFFFF) | 0x10000000000000) << (((w >> 52) & 0x7FF) - low)
        scaled[i] = -v if w < 0 else v
    return low - 1075, bits, scaled


def _means_by_integers(scaled: npt.NDArray[np.int64], exponent: int, n: int, out: Floats) -> None:
    """Rolling means of `n`: the window's exact int64 sum, rounded once to a float
    (int64 -> float64 rounds to nearest, ties to even, as `math.fsum` does), scaled
    back by a power of two (exact), divided by `n` as the window divides."""
    unit = math.ldexp(1.0, exponent)
    total = np.int64(0)
    for i in range(len(scaled)):
        total += scaled[i]
        if i >= n:
            total -= scaled[i - n]
        if i >= n - 1:
            out[i] = float(total) * unit / n


def _fits(bits: int, n: int) -> bool:
    """Whether a running sum of `n` integers below 2**bits fits in an int64: it holds
    n + 1 of them for a moment (the new one in, before the oldest goes out)."""
    count = n + 1
    while count > 0:
        bits += 1
        count >>= 1
    return bits <= 63


def _grow(partials: Floats, count: int, x: float) -> int:
    """Add `x` to the exact sum held as non-overlapping `partials` (CPython's fsum)."""
    i = 0
    for j in range(count):
        y = partials[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        partials[i] = x
        i += 1
    return i


def _round(partials: Floats, count: int) -> float:
    """The exact sum of `partials`, rounded once (CPython's fsum, half-even fix-up)."""
    if count == 0:
        return 0.0
    count -= 1
    hi = float(partials[count])
    lo = 0.0
    while count > 0:
        x = hi
        count -= 1
        y = partials[count]
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            break
    if count > 0 and (
        (lo < 0.0 and partials[count - 1] < 0.0) or (lo > 0.0 and partials[count - 1] > 0.0)
    ):
        y = lo * 2.0
        x = hi + y
        if y == x - hi:
            hi = x
    return hi


def _means_by_partials(x: Floats, n: int, out: Floats) -> None:
    partials = np.zeros(128)
    count = 0
    for i in range(len(x)):
        count = _grow(partials, count, x[i])
        if i >= n:
            count = _grow(partials, count, -x[i - n])
        if i >= n - 1:
            out[i] = _round(partials, count) / n


def _means(x: Floats, n: int) -> Floats:
    out = np.full(len(x), np.nan)
    if n <= len(x):
        exponent, bits, scaled = _scaling(x)
        if _fits(bits, n):
            _means_by_integers(scaled, exponent, n, out)
        else:
            _means_by_partials(x, n, out)
    return out


def _curve(
    closes: Floats, starts: npt.NDArray[np.int64], cash: Floats, quantity: Floats
) -> tuple[Floats, int]:
    """Equity per candle: from `starts[k]` on, `cash[k] + quantity[k] x close`; and
    the number of candles with a position open."""
    out = np.empty(len(closes))
    held = 0
    for k in range(len(starts)):
        end = starts[k + 1] if k + 1 < len(starts) else len(closes)
        if quantity[k] == 0.0:
            out[starts[k] : end] = cash[k]
        else:
            held += end - starts[k]
            for i in range(starts[k], end):
                out[i] = cash[k] + quantity[k] * closes[i]
    return out, held


def _crosses(f: Floats, s: Floats, index: npt.NDArray[np.int64], kind: npt.NDArray[np.int8]) -> int:
    count = 0
    for i in range(1, len(f)):
        f0, s0, f1, s1 = f[i - 1], s[i - 1], f[i], s[i]
        if f0 <= s0 and f1 > s1:
            index[count] = i
            kind[count] = 1
            count += 1
        elif f0 >= s0 and f1 < s1:
            index[count] = i
            kind[count] = -1
            count += 1
    return count


def _sum(total: float, compensation: float, x: float) -> tuple[float, float]:
    """One step of CPython's `sum()` of floats (Neumaier's compensated sum, 3.12)."""
    t = total + x
    if abs(total) >= abs(x):
        compensation += (total - t) + x
    else:
        compensation += (x - t) + total
    return t, compensation


def _summed(total: float, compensation: float) -> float:
    """The end of CPython's `sum()`: the compensation added if it is finite and not 0."""
    if compensation != 0.0 and math.isfinite(compensation):
        return total + compensation
    return total


def curve_statistics(
    values: Floats, times: npt.NDArray[np.int64], start: int, capital: float
) -> tuple[float, float, float, int, float, float, bool]:
    """What `metrics.compute_metrics` computes from the equity curve, from arrays, in
    the same operations in the same order (so the same floats, bit for bit):
    `values` the curve after each bar with the capital first, `times` each bar's
    time in microseconds, `start` the run's start in microseconds. Returns the sum of
    the returns, of their squared deviations from the mean, of the squared negative
    returns, their count; the deepest drawdown and its longest duration (seconds);
    and whether a square overflowed (where Python's `x ** 2` raises OverflowError)."""
    n = len(values) - 1
    returns = np.empty(n)
    for i in range(n):
        a = values[i]
        returns[i] = (values[i + 1] / a - 1) if a != 0.0 else 0.0
    total = compensation = 0.0
    for r in returns:
        total, compensation = _sum(total, compensation, r)
    total = _summed(total, compensation)
    squares = down = 0.0
    overflow = False
    if n >= 2:
        mean = total / n
        compensation = 0.0
        for r in returns:
            d = r - mean
            square = d * d
            overflow |= math.isinf(square) and math.isfinite(d)
            squares, compensation = _sum(squares, compensation, square)
        squares = _summed(squares, compensation)
        compensation = 0.0
        for r in returns:
            low = 0.0 if r > 0.0 else float(r)  # Python's min(r, 0.0)
            low_square = low * low
            overflow |= math.isinf(low_square) and math.isfinite(low)
            down, compensation = _sum(down, compensation, low_square)
        down = _summed(down, compensation)
    peak = capital
    peak_at = start
    deepest = longest = 0.0
    underwater = False
    for i in range(n):
        at, value = times[i], values[i + 1]
        if value >= peak:
            if underwater:
                lasted = (at - peak_at) / 1e6
                if lasted > longest:
                    longest = lasted
                underwater = False
            peak, peak_at = value, at
            continue
        underwater = True
        fall = (peak - value) / peak if peak > 0 else 0.0
        if fall > deepest:
            deepest = fall
        lasted = (at - peak_at) / 1e6
        if lasted > longest:
            longest = lasted
    return total, squares, down, n, deepest, longest, overflow


_sum = _jit(_sum)
_summed = _jit(_summed)
curve_statistics = _jit(curve_statistics)
_scaling = _jit(_scaling)
_means_by_integers = _jit(_means_by_integers)
_fits = _jit(_fits)
_grow = _jit(_grow)
_round = _jit(_round)
_means_by_partials = _jit(_means_by_partials)
_means = _jit(_means)
_curve = _jit(_curve)
_crosses = _jit(_crosses)


def exact_means(closes: Sequence[float] | Floats, length: int) -> Floats:
    """The SMA of `length` over `closes`, NaN while warming up: `math.fsum(window) /
    length`, bit for bit, as `IndicatorWindow` computes it, in one compiled pass."""
    return _means(np.ascontiguousarray(closes, dtype=np.float64), int(length))


def warm_up() -> float:
    """Load (or compile, the first time ever) the compiled functions; seconds taken."""
    started = time.perf_counter()
    x: Floats = np.linspace(1.0, 2.0, 64, dtype=np.float64)
    exact_means(x, 5)
    _means_by_partials(x, 5, np.empty(64))
    _means_by_integers(_scaling(x)[2], 0, 5, np.empty(64))
    _fits(55, 5)
    _curve(x, np.array([0], np.int64), np.array([1.0]), np.array([0.0]))
    curve_statistics(x, np.arange(63, dtype=np.int64), -1, 1.0)
    # The books and the prices as written: a run that trades, compiled all through.
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    wave = (100 + 5 * np.sin(np.arange(64) / 3)).tolist()
    candles = [
        Candle("WARM/UP", "1m", t0 + timedelta(minutes=i), v, v, v, v, 1.0)
        for i, v in enumerate(wave)
    ]
    run_fast("sma_cross", FastData.from_candles(candles), params={"fast": 2, "slow": 5})
    return time.perf_counter() - started


# --------------------------------------------------------------------------- data


@dataclass
class FastData:
    """One symbol's candles, loaded once for any number of compiled runs: the arrays,
    the times, and each SMA length computed so far."""

    symbol: str
    timeframe: str
    candles: Sequence[Candle]
    opens: Floats
    closes: Floats
    open_times: list[datetime]
    close_times: list[datetime]
    open_list: list[float] = field(repr=False)  # the same prices as Python floats
    close_list: list[float] = field(repr=False)
    # The close times in microseconds since the epoch: what `compute_metrics` reads
    # for the drawdown's duration, without the datetimes.
    close_us: npt.NDArray[np.int64] = field(repr=False)
    _means: dict[int, Floats] = field(default_factory=dict, repr=False)
    _scaled: tuple[int, int, npt.NDArray[np.int64]] | None = field(default=None, repr=False)

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> FastData:
        """Raises ValueError for candles the event engine would refuse (out of
        order, of several markets, or a close that is not a positive price)."""
        if not candles:
            raise ValueError("no candles to replay: give at least one candle")
        first = candles[0]
        step = timeframe_delta(first.timeframe)
        open_times = [c.open_time for c in candles]
        opens = np.fromiter((c.open for c in candles), np.float64, len(candles))
        closes = np.fromiter((c.close for c in candles), np.float64, len(candles))
        # A market order decided on a candle fills on the next one only if that one
        # opens at or after the decision candle's close: candles a timeframe apart.
        if (
            any(b - a < step for a, b in zip(open_times, open_times[1:], strict=False))
            or any(c.symbol != first.symbol or c.timeframe != first.timeframe for c in candles)
            or not bool(np.all(closes > 0) and np.all(np.isfinite(closes)))
            or not bool(np.all(opens > 0) and np.all(np.isfinite(opens)))
        ):
            raise ValueError(
                "candles out of order, closer than their timeframe, of several markets or "
                "with a price that is not a positive number"
            )
        close_times = [t + step for t in open_times]
        return cls(
            symbol=first.symbol,
            timeframe=first.timeframe,
            candles=candles,
            opens=opens,
            closes=closes,
            open_times=open_times,
            close_times=close_times,
            open_list=opens.tolist(),
            close_list=closes.tolist(),
            close_us=_microseconds(close_times, step),
        )

    def sma(self, length: int) -> Floats:
        """The SMA of the closes (NaN while warming up), computed once per length; the
        closes are scaled to integers once for all lengths."""
        means = self._means.get(length)
        if means is None:
            if self._scaled is None:
                self._scaled = _scaling(self.closes)
            exponent, bits, scaled = self._scaled
            means = np.full(len(self.closes), np.nan)
            if length <= len(means):
                if _fits(bits, length):
                    _means_by_integers(scaled, exponent, length, means)
                else:
                    _means_by_partials(self.closes, length, means)
            self._means[length] = means
        return means


def _microseconds(times: list[datetime], step: timedelta) -> npt.NDArray[np.int64]:
    """`times` as `result.microseconds` gives each: at one step apart, counted."""
    first = microseconds(times[0])
    if all(b - a == step for a, b in zip(times, times[1:], strict=False)):
        return first + np.arange(len(times), dtype=np.int64) * (step // timedelta(microseconds=1))
    return np.fromiter(map(microseconds, times), np.int64, len(times))


# --------------------------------------------------------------------------- the run


class _Refused(Exception):
    """The run met a case the compiled mode does not model: run it on the engine."""


@dataclass
class _Books:
    """A run's outcome, as `Portfolio` would hold it, in the same Decimals."""

    cash: Decimal
    fees: Decimal = _ZERO
    quantity: Decimal = _ZERO  # held at the end; 0: flat
    # The position held at the end: its buy price, cost basis, entry fee, candle.
    bought: Decimal = _ZERO
    cost_basis: Decimal = _ZERO
    entry_fee: Decimal = _ZERO
    opened: int = 0
    fills: int = 0
    trades: list[TradeRecord] | Lazy[TradeRecord] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    # The books after each fill, from its candle on: (candle, cash, quantity).
    changes: list[tuple[int, Decimal, Decimal]] = field(default_factory=list)


def run_fast(
    strategy_name: str,
    candles: Mapping[str, Sequence[Candle]] | FastData,
    config: BacktestConfig | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    exact_curve: bool = False,
    fallback: bool = True,
    progress: Progress | None = None,
) -> BacktestResult:
    """`run_backtest` of a registered rule strategy, compiled when it can be.

    The same result as `run_backtest(lambda: create_strategy(strategy_name, params),
    candles, config)`: the same trades, fees, rejections and final equity; the
    equity curve as the module docstring says. What the compiled mode does not
    model runs on the event engine, or raises ValueError when `fallback` is False.
    """
    config = config or BacktestConfig()
    data: FastData | None
    mapping: Mapping[str, Sequence[Candle]]
    if isinstance(candles, FastData):
        data, mapping = candles, {candles.symbol: candles.candles}
    else:
        data, mapping = None, candles
    why = unsupported(strategy_name, params, config, symbols=len(mapping))
    if why is None and data is None:
        try:
            data = FastData.from_candles(next(iter(mapping.values())))
        except ValueError as e:
            why = str(e)
    if why is None and data is not None:
        try:
            result = _run(strategy_name, dict(params or {}), data, config, exact_curve)
        except _Refused as e:
            why = str(e)
        else:
            if progress is not None:
                progress(result.bars, result.bars)
            return result
    if not fallback:
        raise ValueError(f"not run compiled: {why}")
    return run_backtest(
        lambda: create_strategy(strategy_name, params),
        mapping,
        config,
        strategy_name=strategy_name,
        params=params,
        progress=progress,
    )


def sweep_fast(
    strategy_name: str,
    candles: Sequence[Candle] | FastData,
    param_sets: Iterable[Mapping[str, Any]],
    config: BacktestConfig | None = None,
    *,
    exact_curve: bool = False,
) -> list[BacktestResult]:
    """`run_fast` for each of `param_sets` over one symbol's candles, loaded once
    (arrays, times and each SMA length shared by every run)."""
    data = candles if isinstance(candles, FastData) else FastData.from_candles(candles)
    return [
        run_fast(strategy_name, data, config, params=p, exact_curve=exact_curve) for p in param_sets
    ]


def _run(
    name: str,
    params: dict[str, Any],
    data: FastData,
    config: BacktestConfig,
    exact_curve: bool,
) -> BacktestResult:
    parsed = create_strategy(name, params).params
    assert isinstance(parsed, SmaCrossParams)  # noqa: S101 - unsupported() checked it
    limits = merge_limits(config.risk, config.group_risk)
    rules = config.markets.get(data.symbol) or MarketRules.from_config(
        data.symbol, None, taker_fee=config.fill_model.taker_fee
    )
    market = _Market.of(rules, limits, config.fill_model)
    index, kind = _signals(data, parsed.fast, parsed.slow)
    booked = None if exact_curve else _compiled_books(data, index, kind, market, config.capital)
    if booked is None:
        books = _Books(config.capital)
        _trade(data, list(zip(index.tolist(), kind.tolist(), strict=True)), books, market)
        equity_list, exposure = _equity(data, books, config.capital, exact_curve)
        equity: Sequence[float] = equity_list
    else:
        books = _Books(
            booked.cash,
            fees=booked.fees,
            quantity=booked.quantity,
            bought=booked.bought,
            cost_basis=booked.cost_basis,
            entry_fee=booked.entry_fee,
            opened=booked.opened,
            fills=booked.fills,
            trades=booked.trades,
            rejections=Counter(booked.rejections),
        )
        curve, held = _curve(data.closes, booked.starts, booked.curve_cash, booked.curve_quantity)
        # Handed over as the array: the list of a million floats (15 ms) is built
        # only if something reads it (`compute_metrics` reads the array).
        equity, exposure = Lazy(len(curve), curve.tolist, array=curve), int(held)
    # Portfolio.equity(): cash + the sum, from 0, of the holdings at the last close.
    last = decimal_price(data.close_list[-1])
    final = books.cash + (_ZERO + books.quantity * last if books.quantity else _ZERO)
    return BacktestResult(
        strategy=name,
        params=params,
        symbols=[data.symbol],
        timeframe=data.timeframe,
        start=data.open_times[0],
        end=data.close_times[-1],
        bars=len(data.closes),
        capital=config.capital,
        currency=config.currency,
        final_equity=final,
        fees_paid=books.fees,
        trades=books.trades,
        open_trades=_still_open(data, books, last) if books.quantity else [],
        equity_times=Lazy(len(data.close_times), data.close_times.copy, array=data.close_us),
        equity=equity,
        exposure_bars=exposure,
        rejections=dict(books.rejections),
        fills=books.fills,
        settings={
            "fill_model": config.fill_model.model_dump(mode="json"),
            "risk": limits.model_dump(mode="json"),
        },
    )


def _still_open(data: FastData, books: _Books, mark: Decimal) -> list[TradeRecord]:
    """The position open when the data ends, as the engine lists it (`_still_open`):
    closed at the last close for the report only, exit reason "end", unrealized."""
    pnl = books.quantity * mark - books.cost_basis
    return [
        TradeRecord(
            symbol=data.symbol,
            quantity=books.quantity,
            entry_time=data.open_times[books.opened],
            exit_time=data.close_times[-1],
            entry_price=books.bought,
            exit_price=mark,
            pnl=pnl,
            return_pct=float(pnl / books.cost_basis * _HUNDRED) if books.cost_basis else 0.0,
            fees=books.entry_fee,
            exit_reason="end",
        )
    ]


def _signals(
    data: FastData, fast: int, slow: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
    """The candles where the averages cross, and +1 for a cross above, -1 below, in
    time order: the platform's crossing convention (`crossed_above`,
    `crossed_below`); a missing value (NaN, None in the engine) crosses nothing."""
    index = np.empty(len(data.closes), np.int64)
    kind = np.empty(len(data.closes), np.int8)
    count = _crosses(data.sma(fast), data.sma(slow), index, kind)
    return index[:count], kind[:count]


def _compiled_books(
    data: FastData,
    index: npt.NDArray[np.int64],
    kind: npt.NDArray[np.int8],
    market: _Market,
    capital: Decimal,
) -> fast_books.Booked | None:
    """The books of the signals' trades in compiled exact decimals
    (`shared.backtest.fast_books`), or None where those cannot follow `Decimal`:
    then `_trade` books them in Python."""
    if not decimals.context_is_default():
        return None
    try:
        constants = np.array(
            [
                fast_books.constant(capital),
                fast_books.constant(market.fee),
                fast_books.constant(market.buy_slip),
                fast_books.constant(market.sell_slip),
                fast_books.constant(market.price_unit),
                fast_books.constant(market.tick),
                fast_books.constant(market.grid),
                fast_books.constant(market.min_amount),
                fast_books.constant(market.min_notional),
                fast_books.constant(market.max_amount),
                fast_books.constant(market.unit_cost_rate),
            ],
            np.int64,
        )
        sizings = np.array(
            [[int(percent), *decimals.from_decimal(amount)] for percent, amount in market.sizings],
            np.int64,
        )
        last = len(data.closes) - 1
        return fast_books.book(
            symbol=data.symbol,
            open_times=data.open_times,
            last=last,
            index=index,
            kind=kind,
            closes=decimals.as_written(data.closes[index]),
            opens=decimals.as_written(data.opens[np.minimum(index + 1, last)]),
            constants=constants,
            sizings=sizings,
            capital=float(capital),
        )
    except (OverflowError, ZeroDivisionError):
        return None


@dataclass(frozen=True, slots=True)
class _Market:
    """What sizing and the fill model read on every signal, computed once a run: the
    same values the kernel's functions derive from the rules on every call."""

    floor: Context  # `div_down`'s context: the current one, rounding down
    grid: Decimal | None  # `amount_grid(rules)`
    price_unit: Decimal | None  # `round_price`: 10 ** -price_precision
    tick: Decimal | None
    min_amount: Decimal | None
    min_notional: Decimal | None
    max_amount: Decimal | None
    unit_cost_rate: Decimal  # `_size_entry`: price x quote rate x (1 + taker fee)
    sizings: tuple[tuple[bool, Decimal], ...]  # (percent of equity?, pct or notional)
    fee: Decimal  # the fill model's taker rate: market orders take
    buy_slip: Decimal | None  # `slipped`: 1 + bps / 10000 (None: no slippage)
    sell_slip: Decimal | None  # 1 - bps / 10000

    @classmethod
    def of(cls, rules: MarketRules, limits: RiskLimits, fill_model: FillModelConfig) -> _Market:
        floor = getcontext().copy()
        floor.rounding = ROUND_FLOOR
        bps = fill_model.slippage_bps
        factor = bps / _BPS if bps else None
        return cls(
            floor=floor,
            grid=amount_grid(rules),
            price_unit=(
                Decimal(1).scaleb(-rules.price_precision)
                if rules.price_precision is not None
                else None
            ),
            tick=rules.price_tick,
            min_amount=rules.min_amount,
            min_notional=rules.min_notional,
            max_amount=rules.max_amount,
            unit_cost_rate=_ONE + rules.taker_fee,
            sizings=tuple(
                (True, s.pct) if isinstance(s, PercentOfEquity) else (False, s.notional)
                for s in limits.sizings
                if isinstance(s, PercentOfEquity | FixedNotional)
            ),
            fee=fill_model.taker_fee,
            buy_slip=_ONE + factor if factor is not None else None,
            sell_slip=_ONE - factor if factor is not None else None,
        )

    def round_price(self, price: Decimal) -> Decimal:
        """`risk.sizing.round_price`."""
        if self.price_unit is not None:
            price = max(price.quantize(self.price_unit, ROUND_HALF_EVEN), self.price_unit)
        if self.tick is not None:
            price = max(
                (price / self.tick).to_integral_value(ROUND_HALF_EVEN) * self.tick, self.tick
            )
        return price

    def fit(self, wanted: Decimal, price: Decimal, *, short_of_cash: bool) -> Decimal | str:
        """`risk.sizing._fit`: the quantity on the amount grid, or the refusal's code."""
        grid = self.grid
        quantity = (
            wanted
            if grid is None
            else self.floor.divide(wanted, grid).to_integral_value(rounding=ROUND_FLOOR) * grid
        )
        if quantity <= 0 or (self.min_amount is not None and quantity < self.min_amount):
            reason = RiskReason.BELOW_MIN_AMOUNT
        elif self.min_notional is not None and quantity * price < self.min_notional:
            reason = RiskReason.BELOW_MIN_NOTIONAL
        else:
            return quantity
        return (RiskReason.INSUFFICIENT_CASH if short_of_cash else reason).value

    def size_entry(self, cash: Decimal, entry: Decimal) -> Decimal | str:
        """`risk.sizing._size_entry` (with `sizing_quantity`) for a flat account."""
        divide = self.floor.divide
        price = self.round_price(entry)
        unit_value = price * _ONE
        quantity: Decimal | None = None
        bound = ""
        for percent, amount in self.sizings:
            if percent:
                budget = divide((cash + _ZERO) * amount, _HUNDRED)  # equity: flat
                asked = divide(budget, unit_value) if budget > 0 else _ZERO
            else:
                asked = divide(amount, unit_value)
            if quantity is None or asked < quantity:  # min(): the first of equals
                quantity, bound = asked, "sizing"
        assert quantity is not None  # noqa: S101 - limits.sizings is never empty
        if self.max_amount is not None and self.max_amount < quantity:
            bound, quantity = "max_amount", self.max_amount
        if cash <= 0:
            return RiskReason.INSUFFICIENT_CASH.value
        affordable = divide(cash, price * _ONE * self.unit_cost_rate)
        if affordable < quantity:
            bound, quantity = "cash", affordable
        return self.fit(quantity, price, short_of_cash=bound == "cash")


def _trade(data: FastData, signals: list[tuple[int, int]], books: _Books, market: _Market) -> None:
    """The decisions, intents and fills of the signal candles, in time order.

    A cross up with a position open, or down without one, is a HOLD (`SmaCross`). A
    BUY is sized on the decision candle's close; an accepted order is a market order
    that fills at the next candle's open (`not_before` = the decision candle's
    close), before anything is decided on that candle: `simulate` prices it (the
    open as written, slipped; the taker fee) and `Portfolio.apply` books it, or
    `can_apply` refuses a buy the cash cannot pay. One loop, the books in locals:
    this is the part of a run that is Python, about 10 µs a round trip."""
    closes, opens, times, symbol = data.close_list, data.open_list, data.open_times, data.symbol
    dec, text, record = Decimal, repr, TradeRecord  # locals: looked up once, not per use
    last = len(closes) - 1
    size_entry, fit, round_price = market.size_entry, market.fit, market.round_price
    fee_rate, buy_slip, sell_slip = market.fee, market.buy_slip, market.sell_slip
    rejections, changes = books.rejections, books.changes
    trades: list[TradeRecord] = []
    books.trades = trades
    cash, fees, fills = books.cash, books.fees, books.fills
    held = _ZERO  # the position's quantity, its buy price, cost basis, entry fee, candle
    bought = cost_basis = entry_fee = _ZERO
    opened = 0
    pending = -1  # the candle an accepted order was decided on; -1: none
    pending_quantity = _ZERO
    signals.append((last + 1, 0))  # a sentinel: fills the order decided last
    for i, kind in signals:
        if pending >= 0:
            k = pending + 1
            pending = -1
            quantity = pending_quantity - _ZERO  # the order's remaining: less 0 filled
            if held:  # a sell: closes the whole position
                price = dec(text(opens[k]))
                if sell_slip is not None:
                    price = price * sell_slip
                fee = price * quantity * fee_rate
                fees += fee
                proceeds = quantity * price - fee
                pnl = proceeds - cost_basis
                cash += proceeds
                trades.append(
                    record(
                        symbol,
                        quantity,
                        times[opened],
                        times[k],
                        bought,
                        price,
                        pnl,
                        float(pnl / cost_basis * _HUNDRED) if cost_basis else 0.0,
                        entry_fee + fee,
                        _EXIT,
                    )
                )
                held = bought = cost_basis = entry_fee = _ZERO
                fills += 1
                changes.append((k, cash, held))
            else:
                price = dec(text(opens[k]))
                if buy_slip is not None:
                    price = price * buy_slip
                fee = price * quantity * fee_rate
                cost = quantity * price + fee
                if cost > cash:
                    rejections["insufficient_funds"] += 1
                else:
                    fees += fee
                    cash -= cost
                    held, bought, cost_basis, entry_fee, opened = (
                        quantity,
                        price,
                        cost,
                        fee,
                        k,
                    )
                    fills += 1
                    changes.append((k, cash, held))
        if kind == 0 or (kind > 0) == bool(held):
            continue  # the sentinel; a cross up with a position, or down without: HOLD
        entry = dec(text(closes[i]))  # `decimal_price`: the strategy's entry
        if kind > 0:
            sized = size_entry(cash, entry)
        else:
            # `risk.sizing._size_exit`: all of it (AccountState.held sums from 0).
            sized = fit(_ZERO + held, round_price(entry), short_of_cash=False)
            if isinstance(sized, Decimal) and sized != held:
                raise _Refused("a partial exit (a position off the grid) runs on the event engine")
        if isinstance(sized, str):
            rejections[sized] += 1
        elif i < last:
            pending, pending_quantity = i, sized
    signals.pop()
    books.cash, books.fees, books.fills, books.quantity = cash, fees, fills, held
    books.bought, books.cost_basis, books.entry_fee = bought, cost_basis, entry_fee
    books.opened = opened


def _equity(
    data: FastData, books: _Books, capital: Decimal, exact: bool
) -> tuple[list[float], int]:
    changes = [(0, capital, _ZERO), *books.changes]
    count = len(changes)
    starts = np.fromiter((c[0] for c in changes), np.int64, count)
    cash = np.fromiter((float(c[1]) for c in changes), np.float64, count)
    quantity = np.fromiter((float(c[2]) for c in changes), np.float64, count)
    curve, held = _curve(data.closes, starts, cash, quantity)
    equity: list[float] = curve.tolist()
    if exact:
        closes = data.closes
        for k, (start, cash_k, quantity_k) in enumerate(changes):
            if quantity_k:
                end = changes[k + 1][0] if k + 1 < len(changes) else len(closes)
                equity[start:end] = map(
                    float,
                    map(
                        cash_k.__add__,
                        map(
                            quantity_k.__mul__, map(Decimal, map(repr, closes[start:end].tolist()))
                        ),
                    ),
                )
    return equity, int(held)


__all__ = [
    "FastData",
    "exact_means",
    "curve_statistics",
    "run_fast",
    "supports",
    "sweep_fast",
    "unsupported",
    "warm_up",
]
