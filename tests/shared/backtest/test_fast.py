"""The compiled mode makes exactly the event engine's trades.

Both run the same candles with the same settings; the compiled run must give the
same `TradeRecord`s (every Decimal equal, and written the same), the same fees,
fills, rejections, exposure and final equity, and an equity curve within a few
units in the last place (bit for bit with `exact_curve=True`). Its SMA must be
`math.fsum(window) / n` bit for bit, on real prices and on sums built to be hard.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from decimal import Decimal
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.backtest import BacktestConfig, BacktestResult, fast, run_backtest
from shared.backtest.fast import FastData, exact_means, run_fast, supports, sweep_fast, unsupported
from shared.kernel.fills import FillModelConfig
from shared.kernel.risk import MarketRules, RiskLimits, merge_limits
from shared.kernel.strategy import create_strategy
from shared.market.candles import Candle
from tests.shared.backtest.test_engine import shipped, walk

BTC: dict[str, Any] = {"capital": Decimal(1), "currency": "BTC"}
SLIPPED = FillModelConfig(slippage_bps=Decimal(5), taker_fee=Decimal("0.00075"))


def engine(candles: list[Candle], params: dict[str, Any], config: BacktestConfig) -> BacktestResult:
    return run_backtest(
        lambda: create_strategy("sma_cross", params),
        {candles[0].symbol: candles},
        config,
        strategy_name="sma_cross",
        params=params,
    )


def assert_same_trades(got: BacktestResult, want: BacktestResult, *, curve_ulps: bool) -> None:
    assert got.trades == want.trades
    assert [t.to_json() for t in got.trades] == [t.to_json() for t in want.trades]
    assert [t.to_json() for t in got.open_trades] == [t.to_json() for t in want.open_trades]
    assert str(got.final_equity) == str(want.final_equity)
    assert got.fees_paid == want.fees_paid
    assert (got.fills, got.rejections, got.exposure_bars, got.bars) == (
        want.fills,
        want.rejections,
        want.exposure_bars,
        want.bars,
    )
    assert (got.start, got.end, got.equity_times) == (want.start, want.end, want.equity_times)
    assert got.settings == want.settings and got.params == want.params
    if curve_ulps:
        assert len(got.equity) == len(want.equity)
        worst = max(abs(a - b) / abs(b) for a, b in zip(got.equity, want.equity, strict=True))
        assert worst <= 1e-15
    else:
        assert got.equity == want.equity


PAIRS = [(10, 30), (5, 20), (3, 7), (20, 50)]


@pytest.mark.parametrize("source", ["ETH-BTC", "LTC-BTC", "ADA-BTC", "XRP-USDT"])
@pytest.mark.parametrize(("fast", "slow"), PAIRS)
def test_run_fast_equals_the_engine_on_shipped_data(source: str, fast: int, slow: int) -> None:
    candles = shipped(source)
    config = BacktestConfig(**BTC) if source.endswith("BTC") else BacktestConfig()
    params = {"fast": fast, "slow": slow}
    want = engine(candles, params, config)
    got = run_fast("sma_cross", {candles[0].symbol: candles}, config, params=params, fallback=False)
    assert want.trades
    assert_same_trades(got, want, curve_ulps=True)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("fast", "slow"), PAIRS[:3])
def test_run_fast_equals_the_engine_on_a_random_walk(seed: int, fast: int, slow: int) -> None:
    candles = walk(20_000, seed)
    config = BacktestConfig(fill_model=SLIPPED)
    params = {"fast": fast, "slow": slow}
    want = engine(candles, params, config)
    got = run_fast("sma_cross", {candles[0].symbol: candles}, config, params=params, fallback=False)
    assert len(want.trades) > 100
    assert_same_trades(got, want, curve_ulps=True)
    exact = run_fast(
        "sma_cross", {candles[0].symbol: candles}, config, params=params, exact_curve=True
    )
    assert_same_trades(exact, want, curve_ulps=False)


ETH_RULES = MarketRules.from_config(
    "ETH/BTC",
    {"amount_step": "0.001", "price_tick": "0.000001", "min_notional": "0.0101"},
    taker_fee=Decimal("0.001"),
)

CONFIGS: dict[str, BacktestConfig] = {
    "notional_step_min_notional": BacktestConfig(
        **BTC,
        fill_model=SLIPPED,
        risk=RiskLimits.model_validate(
            {"sizing": {"method": "fixed_notional", "notional": "0.0102"}}
        ),
        markets={"ETH/BTC": ETH_RULES},
    ),
    "two_sizings_the_smaller_wins": BacktestConfig(
        **BTC,
        risk=RiskLimits.model_validate(
            {
                "sizing": [
                    {"method": "fixed_notional", "notional": "0.05"},
                    {"method": "percent_equity", "pct": 4},
                ],
                "max_positions_per_symbol": 1,
                "max_candle_age_candles": 2,
            }
        ),
        group_risk=RiskLimits.model_validate({"max_open_positions": 3}),
    ),
    "all_in_the_fills_are_refused": BacktestConfig(
        **BTC,
        fill_model=FillModelConfig(slippage_bps=Decimal(20)),
        risk=RiskLimits.model_validate({"sizing": {"method": "percent_equity", "pct": 100}}),
    ),
    "all_in_cash_caps": BacktestConfig(
        **BTC,
        risk=RiskLimits.model_validate({"sizing": {"method": "percent_equity", "pct": 100}}),
        markets={
            "ETH/BTC": MarketRules.from_config(
                "ETH/BTC", {"amount_precision": 2, "max_amount": "12"}, taker_fee=Decimal("0.002")
            )
        },
    ),
    "whole_units_too_small": BacktestConfig(
        **BTC,
        markets={
            "ETH/BTC": MarketRules.from_config(
                "ETH/BTC", {"amount_precision": 0, "min_amount": "1"}, taker_fee=Decimal("0.001")
            )
        },
    ),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_run_fast_equals_the_engine_with_market_rules_and_sizing(case: str) -> None:
    candles = shipped("ETH-BTC")
    config = CONFIGS[case]
    params = {"fast": 5, "slow": 20}
    want = engine(candles, params, config)
    got = run_fast("sma_cross", {"ETH/BTC": candles}, config, params=params, fallback=False)
    if "refused" in case or "too_small" in case:
        assert want.rejections  # the case exercises a refusal
    assert want.trades or want.rejections
    assert_same_trades(got, want, curve_ulps=True)


def test_sweep_fast_shares_one_load_and_equals_single_runs() -> None:
    candles = shipped("LTC-BTC")
    data = FastData.from_candles(candles)
    grid = [{"fast": f, "slow": s} for f in (5, 10) for s in (20, 30)]
    results = sweep_fast("sma_cross", data, grid, BacktestConfig(**BTC))
    assert sorted(data._means) == [5, 10, 20, 30]
    for params, got in zip(grid, results, strict=True):
        assert_same_trades(got, engine(candles, params, BacktestConfig(**BTC)), curve_ulps=True)


def test_run_fast_falls_back_to_the_engine_and_says_why() -> None:
    candles = shipped("ETH-BTC", 2000)
    stops = {"stop_loss": {"kind": "pct", "value": 0.01}}
    guarded = BacktestConfig(**BTC, risk=RiskLimits.model_validate({"max_trades_per_day": 3}))
    cases: list[tuple[str, dict[str, Any], dict[str, list[Candle]], BacktestConfig, str]] = [
        ("sma_cross", stops, {"ETH/BTC": candles}, BacktestConfig(**BTC), "stop-loss"),
        ("sma_cross", {}, {"ETH/BTC": candles}, guarded, "max_trades_per_day"),
        ("rsi_reversal", {}, {"ETH/BTC": candles}, BacktestConfig(**BTC), "no compiled mode"),
        (
            "sma_cross",
            {},
            {"ETH/BTC": candles, "LTC/BTC": shipped("LTC-BTC", 2000)},
            BacktestConfig(**BTC),
            "only one symbol",
        ),
    ]
    for name, params, data, config, why in cases:
        with pytest.raises(ValueError, match=why):
            run_fast(name, data, config, params=params, fallback=False)
        want = run_backtest(partial(create_strategy, name, params), data, config)
        got = run_fast(name, data, config, params=params)
        assert got.trades == want.trades and got.equity == want.equity


def test_run_fast_falls_back_for_candles_closer_than_their_timeframe() -> None:
    candles = shipped("ETH-BTC", 500)
    # Relabelled 15m while 5m apart: an order waits for a candle opening after the
    # decision's close, which is not the next one. The engine knows; so the fallback.
    squeezed = [replace(c, timeframe="15m") for c in candles]
    with pytest.raises(ValueError, match="closer than their timeframe"):
        run_fast("sma_cross", {"ETH/BTC": squeezed}, fallback=False)
    want = engine(squeezed, {}, BacktestConfig(**BTC))
    assert want.trades
    assert run_fast("sma_cross", {"ETH/BTC": squeezed}, BacktestConfig(**BTC)).trades == want.trades


def test_supports_names_what_runs_compiled() -> None:
    assert supports("sma_cross", {"fast": 5, "slow": 20})
    assert supports("sma_cross", {}, BacktestConfig(risk=RiskLimits(max_open_positions=1)))
    assert not supports("sma_cross", {"fast": 30, "slow": 5})
    assert not supports("breakout", {})
    assert not supports("sma_cross", {}, BacktestConfig(risk=RiskLimits(kill_switch=True)))
    assert not supports("sma_cross", {}, BacktestConfig(risk=RiskLimits(max_open_positions=0)))
    assert "fast (30) must be shorter" in (unsupported("sma_cross", {"fast": 30, "slow": 5}) or "")


# --------------------------------------------------------------------------- the SMA


def _fsum_means(values: list[float], n: int) -> list[float]:
    return [math.nan] * (n - 1) + [
        math.fsum(values[i - n : i]) / n for i in range(n, len(values) + 1)
    ]


def _same_bits(got: npt.NDArray[np.float64], want: list[float]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got.tolist(), want, strict=True):
        assert (math.isnan(a) and math.isnan(b)) or a.hex() == b.hex()


@pytest.mark.parametrize("n", [1, 2, 3, 7, 30, 200])
def test_exact_means_is_fsum_over_n_on_real_prices(n: int) -> None:
    for source in ("ETH-BTC", "XRP-USDT"):
        closes = [c.close for c in shipped(source)]
        _same_bits(exact_means(closes, n), _fsum_means(closes, n))


def test_exact_means_is_fsum_over_n_where_the_sum_is_hard() -> None:
    rng = random.Random(11)
    series = {
        # Every magnitude at once: no common scale fits 64 bits (the partials path).
        "wide": [rng.choice([1e-9, 1.0, 1e9]) * rng.uniform(1, 2) for _ in range(3000)],
        # Signs mixed, cancellation everywhere.
        "cancelling": [rng.choice([-1, 1]) * 10 ** rng.uniform(-3, 3) for _ in range(3000)],
        # Ties: sums exactly halfway between two floats, rounded to even.
        "ties": [2.0**53, 1.0, -(2.0**53), 1.0, 2.0**53 + 2, 1.0, 3.0, 2.0**-60] * 200,
        # Close prices that all share one scale (the integer path).
        "prices": [round(rng.uniform(90, 110), 2) for _ in range(3000)],
    }
    for values in series.values():
        for n in (2, 3, 5, 30):
            _same_bits(exact_means(values, n), _fsum_means(values, n))


def test_exact_means_shorter_than_the_window_is_all_nan() -> None:
    assert np.isnan(exact_means([1.0, 2.0], 3)).all()
    assert exact_means([], 3).size == 0


def test_exact_means_at_the_edge_of_the_integer_sum() -> None:
    # The largest and the finest values three binades apart (55-bit integers): the
    # running sum of n + 1 of them fits an int64 up to n = 254, then the partials.
    top, fine = math.nextafter(8.0, 0.0), math.nextafter(1.0, 2.0)
    values = [top if i % 3 else fine for i in range(2000)]
    data = FastData.from_candles(shipped("ETH-BTC", 1))  # for its cache, replaced below
    data.closes = np.array(values)
    data._means.clear()
    for n in (126, 127, 128, 253, 254, 255, 256, 600):
        want = _fsum_means(values, n)
        _same_bits(exact_means(values, n), want)
        _same_bits(data.sma(n), want)


# --------------------------------------------------------------------------- the books

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _scaled(candles: list[Candle], factor: float) -> list[Candle]:
    return [
        replace(
            c,
            open=c.open * factor,
            high=c.high * factor,
            low=c.low * factor,
            close=c.close * factor,
        )
        for c in candles
    ]


@st.composite
def settings_of_a_run(draw: st.DrawFn) -> tuple[float, BacktestConfig]:
    def maybe(values: list[Any]) -> Any:
        return draw(st.sampled_from([None, *values]))

    sizing: list[dict[str, Any]] = []
    if draw(st.booleans()):
        sizing.append(
            {"method": "percent_equity", "pct": draw(st.sampled_from(["1", "10", "33.3", "100"]))}
        )
    if not sizing or draw(st.booleans()):
        sizing.append(
            {
                "method": "fixed_notional",
                "notional": draw(st.sampled_from(["50", "1000", "123.45", "0.37"])),
            }
        )
    taker = Decimal(draw(st.sampled_from(["0", "0.0001", "0.00075", "0.001", "0.0025"])))
    rules = {
        "amount_precision": draw(st.sampled_from([None, 0, 2, 3, 3, 8, 8])),
        "price_precision": draw(st.sampled_from([None, 2, 4, 8])),
        "amount_step": maybe(["0.001", "0.25"]),
        "price_tick": maybe(["0.01", "0.005"]),
        "min_amount": maybe(["0.01"]),
        "min_notional": maybe(["10"]),
        "max_amount": maybe(["5", "0.5"]),
    }
    config = BacktestConfig(
        capital=Decimal(draw(st.sampled_from(["10000", "1234.5678", "250"]))),
        fill_model=FillModelConfig(
            slippage_bps=Decimal(draw(st.sampled_from(["0", "1", "5", "12.5", "100"]))),
            taker_fee=Decimal(draw(st.sampled_from(["0", "0.001", "0.00075"]))),
        ),
        risk=RiskLimits.model_validate({"sizing": sizing}),
        markets={"SIM/USDT": MarketRules.from_config("SIM/USDT", rules, taker_fee=taker)},
    )
    return draw(st.sampled_from([1.0, 0.01, 3.7, 250.0])), config


WALK = walk(1500, 5)


@PROPERTY
@given(settings_of_a_run(), st.sampled_from([(3, 7), (5, 20), (2, 4)]), st.integers(300, 1500))
def test_compiled_books_equal_the_engine_across_fees_slippage_sizing_and_rules(
    run: tuple[float, BacktestConfig], pair: tuple[int, int], length: int
) -> None:
    factor, config = run
    candles = _scaled(WALK[:length], factor)  # ending flat, or with a position open
    params = {"fast": pair[0], "slow": pair[1]}
    want = engine(candles, params, config)
    event(f"trades: {'some' if want.trades else 'none'}; open: {bool(want.open_trades)}")
    event(f"refusals: {sorted(want.rejections)}")
    data = FastData.from_candles(candles)
    got = run_fast("sma_cross", data, config, params=params, fallback=False)
    assert_same_trades(got, want, curve_ulps=True)
    # The books were kept compiled, not in Python's Decimal (which the exact curve uses).
    assert _books_compiled(data, params, config)
    in_python = run_fast("sma_cross", data, config, params=params, exact_curve=True)
    assert_same_trades(in_python, want, curve_ulps=False)


def _books_compiled(data: FastData, params: dict[str, Any], config: BacktestConfig) -> bool:
    rules = config.markets["SIM/USDT"]
    market = fast._Market.of(rules, merge_limits(config.risk, config.group_risk), config.fill_model)
    index, kind = fast._signals(data, params["fast"], params["slow"])
    return fast._compiled_books(data, index, kind, market, config.capital) is not None


def test_books_fall_back_to_python_where_the_compiled_decimals_cannot_follow() -> None:
    candles = walk(3000, 3)
    params = {"fast": 3, "slow": 7}
    # A capital of 40 digits does not fit the compiled decimals (36): Python books it.
    config = BacktestConfig(capital=Decimal("1234567890123456789012345678901234567.891"))
    data = FastData.from_candles(candles)
    index, kind = fast._signals(data, 3, 7)
    assert (
        fast._compiled_books(
            data,
            index,
            kind,
            fast._Market.of(
                MarketRules.from_config("SIM/USDT", None), RiskLimits(), config.fill_model
            ),
            config.capital,
        )
        is None
    )
    assert_same_trades(
        run_fast("sma_cross", data, config, params=params, fallback=False),
        engine(candles, params, config),
        curve_ulps=True,
    )


def test_prices_repr_cannot_be_computed_for_are_read_by_repr() -> None:
    # Below 1e-5 the compiled shortest repr hands the price to Python's repr.
    candles = _scaled(walk(3000, 4), 1e-8)
    params = {"fast": 3, "slow": 7}
    config = BacktestConfig(
        **BTC,
        markets={
            "SIM/USDT": MarketRules.from_config(
                "SIM/USDT", {"price_precision": 12, "amount_precision": 2}
            )
        },
    )
    want = engine(candles, params, config)
    assert len(want.trades) > 100
    assert_same_trades(
        run_fast("sma_cross", {"SIM/USDT": candles}, config, params=params, fallback=False),
        want,
        curve_ulps=True,
    )
