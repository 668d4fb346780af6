"""Every metric of `compute_metrics`, checked against numbers worked out here by hand
and with numpy on small constructed results, including the undefined (None) cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from shared.backtest.metrics import compute_metrics, drawdowns, equity_curve
from shared.backtest.result import BacktestResult, TradeRecord

START = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
BARS_PER_YEAR = 365 * 24  # 1h bars


def trade(pnl: str, n: int = 0) -> TradeRecord:
    return TradeRecord(
        symbol="ETH/USDT",
        quantity=Decimal(1),
        entry_time=START + n * HOUR,
        exit_time=START + (n + 1) * HOUR,
        entry_price=Decimal(100),
        exit_price=Decimal(100) + Decimal(pnl),
        pnl=Decimal(pnl),
        return_pct=float(pnl),
        fees=Decimal("0.1"),
        exit_reason="exit",
    )


def result(
    equity: list[float],
    *,
    capital: str = "1000",
    trades: list[TradeRecord] | None = None,
    exposure_bars: int = 0,
    timeframe: str = "1h",
    step: timedelta = HOUR,
    final: str | None = None,
) -> BacktestResult:
    times = [START + (i + 1) * step for i in range(len(equity))]
    return BacktestResult(
        strategy="hand",
        params={},
        symbols=["ETH/USDT"],
        timeframe=timeframe,
        start=START,
        end=times[-1],
        bars=len(equity),
        capital=Decimal(capital),
        currency="USDT",
        final_equity=Decimal(final if final is not None else repr(equity[-1])),
        fees_paid=Decimal("3.5"),
        trades=trades or [],
        equity_times=times,
        equity=equity,
        exposure_bars=exposure_bars,
    )


# Two drawdowns that recover: 1010 -> 990 (from t2, back above at t5: 3 h) and
# 1020 -> 1000 (from t5, back above at t10: 5 h, the longest; shallower).
CURVE = [1000.0, 1010.0, 990.0, 1005.0, 1020.0, 1015.0, 1000.0, 1010.0, 1018.0, 1030.0]
TRADES = [trade("30"), trade("-10"), trade("5"), trade("0"), trade("-15")]


def test_compute_metrics_constructed_run_matches_hand_and_numpy() -> None:
    m = compute_metrics(result(CURVE, trades=TRADES, exposure_bars=6))

    values = np.array([1000.0, *CURVE])
    r = values[1:] / values[:-1] - 1
    sd = r.std(ddof=1)
    downside = math.sqrt(float(np.mean(np.minimum(r, 0) ** 2)))
    years = 10 / BARS_PER_YEAR
    assert m.total_return_pct == pytest.approx(3.0)
    assert m.cagr_pct == pytest.approx((1.03 ** (1 / years) - 1) * 100, rel=1e-9)
    assert m.volatility_pct == pytest.approx(sd * math.sqrt(BARS_PER_YEAR) * 100, rel=1e-12)
    assert m.sharpe == pytest.approx(r.mean() / sd * math.sqrt(BARS_PER_YEAR), rel=1e-12)
    assert m.sortino == pytest.approx(r.mean() / downside * math.sqrt(BARS_PER_YEAR), rel=1e-12)
    assert m.max_drawdown_pct == pytest.approx(20 / 1010 * 100, rel=1e-12)
    assert m.max_drawdown_duration_seconds == 5 * 3600  # t5 -> t10, longer than t2 -> t5
    assert m.trades == 5
    assert m.win_rate_pct == pytest.approx(40.0)  # 2 of 5; a 0 PnL trade is no win
    assert m.profit_factor == pytest.approx(35 / 25)
    assert m.expectancy == pytest.approx(10 / 5)
    assert m.exposure_pct == pytest.approx(60.0)
    assert m.fees_paid == 3.5
    assert m.final_equity == 1030.0


def test_compute_metrics_drawdown_open_at_the_end_lasts_until_the_last_bar() -> None:
    m = compute_metrics(result([1000.0, 1100.0, 1050.0, 1000.0, 990.0]))

    assert m.max_drawdown_pct == pytest.approx(110 / 1100 * 100)
    assert m.max_drawdown_duration_seconds == 3 * 3600  # peak at t2, data ends at t5


def test_compute_metrics_first_bar_below_capital_counts_from_the_start() -> None:
    m = compute_metrics(result([990.0, 995.0, 1001.0]))

    assert m.max_drawdown_pct == pytest.approx(1.0)  # 1000 -> 990
    assert m.max_drawdown_duration_seconds == 3 * 3600  # from start (capital) to t3


def test_compute_metrics_no_trades_flat_curve_are_none_not_numbers() -> None:
    m = compute_metrics(result([1000.0, 1000.0, 1000.0]))

    assert m.trades == 0
    assert m.win_rate_pct is None
    assert m.profit_factor is None
    assert m.expectancy is None
    assert m.sharpe is None  # no variation: no ratio
    assert m.sortino is None
    assert m.volatility_pct == 0.0
    assert m.total_return_pct == 0.0
    assert m.cagr_pct == 0.0
    assert m.max_drawdown_pct == 0.0
    assert m.max_drawdown_duration_seconds == 0.0
    assert m.exposure_pct == 0.0


def test_compute_metrics_no_losing_trade_has_no_profit_factor() -> None:
    m = compute_metrics(result(CURVE, trades=[trade("5"), trade("7")]))

    assert m.profit_factor is None
    assert m.win_rate_pct == 100.0
    assert m.expectancy == pytest.approx(6.0)


def test_compute_metrics_only_losses_profit_factor_zero() -> None:
    m = compute_metrics(result(CURVE, trades=[trade("-5")]))

    assert m.profit_factor == 0.0
    assert m.win_rate_pct == 0.0


def test_compute_metrics_never_falling_curve_has_sharpe_but_no_sortino() -> None:
    m = compute_metrics(result([1000.0, 1001.0, 1003.0, 1004.0]))

    assert m.sharpe is not None and m.sharpe > 0
    assert m.sortino is None  # no downside deviation
    assert m.max_drawdown_pct == 0.0


def test_compute_metrics_one_bar_has_no_volatility() -> None:
    m = compute_metrics(result([1010.0]))

    assert m.volatility_pct is None
    assert m.sharpe is None
    assert m.sortino is None
    assert m.total_return_pct == pytest.approx(1.0)


def test_compute_metrics_short_run_with_a_gain_has_no_cagr_instead_of_overflowing() -> None:
    # One 5m bar up 1 %: 1.01 ** 105120 overflows a float.
    m = compute_metrics(result([1010.0], timeframe="5m", step=timedelta(minutes=5)))

    assert m.cagr_pct is None
    assert m.total_return_pct == pytest.approx(1.0)


def test_compute_metrics_lost_everything_has_no_cagr() -> None:
    m = compute_metrics(result([500.0, 0.0], final="0"))

    assert m.cagr_pct is None
    assert m.total_return_pct == -100.0
    assert m.max_drawdown_pct == 100.0


def test_compute_metrics_several_symbols_read_one_point_per_close_time() -> None:
    # Two symbols: the engine records equity after each symbol's candle, so every
    # close time appears twice; the first value of a pair saw only one new mark.
    single = result(CURVE, trades=TRADES, exposure_bars=6)
    # Exposure counts bar times too (6 of the 10), not the 20 symbols' candles.
    doubled = result(CURVE, trades=TRADES, exposure_bars=6)
    doubled.bars = 20
    doubled.symbols = ["ETH/USDT", "BTC/USDT"]
    doubled.equity_times = [t for t in single.equity_times for _ in (0, 1)]
    doubled.equity = [v for value in CURVE for v in (value - 3.0, value)]

    assert equity_curve(doubled) == (single.equity_times, CURVE)
    assert compute_metrics(doubled) == compute_metrics(single)


def test_drawdowns_series_is_the_fall_below_the_running_peak() -> None:
    falls = drawdowns(1000.0, [990.0, 1010.0, 1000.0, 1020.0])

    assert falls == pytest.approx([0.01, 0.0, 10 / 1010, 0.0])
