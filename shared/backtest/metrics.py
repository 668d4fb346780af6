"""A backtest's metrics, each defined once here (and in docs/BACKTESTING.md).

Returns are per bar, from the equity after each bar; annualization uses the bars per
year of the timeframe (crypto trades every day: 365 days). Ratios use a zero risk-free
rate. A metric that is undefined (no trades, no losing trade, a flat curve) is None,
never a made-up number.

With several symbols the engine records the equity after every symbol's candle, so
one close time appears once per symbol; the curve the ratios and the drawdown read
(`equity_curve`) keeps the last value at each time, one point per bar of the
timeframe, which is what the annualization assumes. Exposure is over the same
points: the share of bar times that ended with a position open in any market.

Trade metrics count closed trades only; a position still open at the end is in
`final_equity` (at its last close) and listed in `BacktestResult.open_trades`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.backtest.result import BacktestResult, Lazy, microseconds
from shared.market.candles import timeframe_seconds

YEAR_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Metrics:
    """A backtest's metrics; `_pct` fields are percentages (5.0 is 5 %), money is in
    the account's currency, None marks a metric that is undefined for this run.
    Each is defined in docs/BACKTESTING.md."""

    total_return_pct: float
    cagr_pct: float | None
    volatility_pct: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown_pct: float
    max_drawdown_duration_seconds: float
    win_rate_pct: float | None
    profit_factor: float | None
    expectancy: float | None
    exposure_pct: float
    trades: int
    fees_paid: float
    final_equity: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compute_metrics(result: BacktestResult) -> Metrics:
    """Every metric of `result`, as defined in the module docstring and the docs."""
    capital = float(result.capital)
    final = float(result.final_equity)
    total_return = (final / capital - 1) if capital else 0.0
    seconds = (result.end - result.start).total_seconds()
    years = seconds / YEAR_SECONDS
    cagr = _cagr(final / capital, years) if years > 0 and capital and final > 0 else None

    per_year = YEAR_SECONDS / timeframe_seconds(result.timeframe)
    volatility = sharpe = sortino = None
    arrays = _curve_arrays(result)
    if arrays is not None:
        # The compiled mode's curve: the same sums from its arrays, compiled.
        from shared.backtest.fast import curve_statistics  # noqa: PLC0415 - numba: only here

        times_us, values = arrays
        total, squares, down, count, max_dd, dd_seconds, overflow = curve_statistics(
            np.concatenate(([capital], values)), times_us, microseconds(result.start), capital
        )
        if overflow:  # as `r ** 2` raises on the lists
            raise OverflowError(34, "Numerical result out of range")
        points = len(times_us)
        if count >= 2:
            mean = total / count
            sd = math.sqrt(squares / (count - 1))
            volatility = sd * math.sqrt(per_year)
            sharpe = (mean / sd * math.sqrt(per_year)) if sd > 0 else None
            downside = math.sqrt(down / count)
            sortino = (mean / downside * math.sqrt(per_year)) if downside > 0 else None
    else:
        times, equity = equity_curve(result)
        points = len(times)
        returns = _returns([capital, *equity])
        if len(returns) >= 2:
            mean = sum(returns) / len(returns)
            sd = _stdev(returns, mean)
            volatility = sd * math.sqrt(per_year)
            sharpe = (mean / sd * math.sqrt(per_year)) if sd > 0 else None
            downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
            sortino = (mean / downside * math.sqrt(per_year)) if downside > 0 else None
        max_dd, dd_seconds = _drawdown(capital, result.start, times, equity)

    trades = result.trades
    if isinstance(trades, Lazy) and trades.column is not None and not trades.materialized:
        pnls: list[Decimal] = trades.column("pnl")  # no TradeRecords built to rank a run
    else:
        pnls = [t.pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    gross_loss = -sum(losses, Decimal(0))
    return Metrics(
        total_return_pct=total_return * 100,
        cagr_pct=cagr * 100 if cagr is not None else None,
        volatility_pct=volatility * 100 if volatility is not None else None,
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown_pct=max_dd * 100,
        max_drawdown_duration_seconds=dd_seconds,
        win_rate_pct=len(wins) / len(pnls) * 100 if pnls else None,
        profit_factor=float(sum(wins, Decimal(0)) / gross_loss) if gross_loss > 0 else None,
        expectancy=float(sum(pnls, Decimal(0)) / len(pnls)) if pnls else None,
        exposure_pct=result.exposure_bars / points * 100 if points else 0.0,
        trades=len(pnls),
        fees_paid=float(result.fees_paid),
        final_equity=final,
    )


def equity_curve(result: BacktestResult) -> tuple[list[datetime], list[float]]:
    """The equity after each bar, one point per time: with several symbols, the value
    after the last symbol's candle of that close time (the others saw stale marks)."""
    times: list[datetime] = []
    values: list[float] = []
    for at, value in zip(result.equity_times, result.equity, strict=True):
        if times and times[-1] == at:
            values[-1] = value
        else:
            times.append(at)
            values.append(value)
    return times, values


def drawdowns(capital: float, equity: list[float]) -> list[float]:
    """The fall below the running peak (starting from `capital`) at each point, as a
    fraction (0.05 is 5 % below the peak): the series `max_drawdown_pct` is the
    largest of."""
    peak = capital
    out: list[float] = []
    for value in equity:
        peak = max(peak, value)
        out.append((peak - value) / peak if peak > 0 else 0.0)
    return out


def _curve_arrays(
    result: BacktestResult,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
    """The compiled mode's curve as arrays, one point per time (`equity_curve`): the
    times in microseconds and the equity; None for a curve held as lists."""
    times, equity = result.equity_times, result.equity
    if not (
        isinstance(times, Lazy)
        and isinstance(equity, Lazy)
        and times.array is not None
        and equity.array is not None
        and len(times.array) == len(equity.array) > 0
    ):
        return None
    at: npt.NDArray[np.int64] = times.array
    values: npt.NDArray[np.float64] = equity.array
    last = np.append(at[1:] != at[:-1], True)  # the last value at each time
    if not last.all():
        at, values = at[last], values[last]
    return at, values


def _cagr(growth: float, years: float) -> float | None:
    # `growth ** (1 / years)` raises OverflowError on a short run with a gain (5
    # minutes up 1 % is 1.01 ** 105120): an annual rate that large means nothing.
    try:
        return math.exp(math.log(growth) / years) - 1
    except OverflowError:
        return None


def _returns(values: list[float]) -> list[float]:
    return [(b / a - 1) if a else 0.0 for a, b in zip(values, values[1:], strict=False)]


def _stdev(values: list[float], mean: float) -> float:
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _drawdown(
    capital: float, start: datetime, times: list[datetime], equity: list[float]
) -> tuple[float, float]:
    """Deepest fall from a running peak (fraction), and the longest time spent below
    a peak (seconds, from the peak to the recovery or to the end of the data)."""
    peak = capital
    peak_at = start
    deepest = longest = 0.0
    underwater = False
    for at, value in zip(times, equity, strict=True):
        if value >= peak:
            if underwater:  # recovered: the drawdown lasted until now
                longest = max(longest, (at - peak_at).total_seconds())
                underwater = False
            peak, peak_at = value, at
            continue
        underwater = True
        deepest = max(deepest, (peak - value) / peak if peak > 0 else 0.0)
        longest = max(longest, (at - peak_at).total_seconds())
    return deepest, longest
