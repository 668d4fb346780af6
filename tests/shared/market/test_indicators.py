"""Indicator specs, `compute` against pandas-ta, and the incremental window's accuracy.

The tolerances here are the ones the module docstring of
`shared.market.indicators` states; measured values are listed there.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest
from pydantic import ValidationError

from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv
from shared.market.indicators import (
    INDICATOR_SPECS,
    AtrSpec,
    BbandsSpec,
    EmaSpec,
    IndicatorSpec,
    IndicatorWindow,
    MacdSpec,
    RsiSpec,
    SmaSpec,
    candles_to_frame,
    compute,
    compute_all,
    parse_indicator_spec,
)
from tests.shared.market.data import DATA, ETH, csv_rows

ETH_CANDLES = read_candles_csv(ETH, "ETH/BTC", "5m")
FRAME = candles_to_frame(ETH_CANDLES)

SPECS: list[IndicatorSpec] = INDICATOR_SPECS.validate_python(
    [
        {"kind": "rsi", "length": 14},
        {"kind": "sma", "length": 20},
        {"kind": "ema", "length": 20},
        {"kind": "macd"},
        {"kind": "bbands"},
        {"kind": "atr", "length": 14},
        {"kind": "rsi", "length": 6},
        {"kind": "sma", "length": 200},
        {"kind": "ema", "length": 50},
        {"kind": "macd", "fast": 5, "slow": 35, "signal": 5},
        {"kind": "bbands", "length": 50, "std": 2.5},
        {"kind": "atr", "length": 30},
    ]
)

# Relative tolerance of the window against pandas-ta over the full history.
RECURSIVE_RTOL = 1e-12  # EMA, RSI, MACD, ATR: identical in practice
SMA_RTOL = 1e-12
BBANDS_RTOL = 1e-10
# pandas-ta widens every high-low range by 2.2e-16 when any bar of the series has
# high == low (ADA-BTC has two); ATR of such a series moves by ~3e-9 relative.
ATR_EPSILON_RTOL = 1e-8


def tolerance(spec: IndicatorSpec, frame: pd.DataFrame) -> float:
    if isinstance(spec, SmaSpec):
        return SMA_RTOL
    if isinstance(spec, BbandsSpec):
        return BBANDS_RTOL
    if isinstance(spec, AtrSpec) and bool((frame["high"] == frame["low"]).any()):
        return ATR_EPSILON_RTOL
    return RECURSIVE_RTOL


def direct(spec: IndicatorSpec, frame: pd.DataFrame) -> dict[str, pd.Series]:
    """pandas-ta called the documented way, with its own column names."""
    close = frame["close"]
    if isinstance(spec, RsiSpec):
        return {f"RSI_{spec.length}": ta.rsi(close, length=spec.length, talib=False)}
    if isinstance(spec, SmaSpec):
        return {f"SMA_{spec.length}": ta.sma(close, length=spec.length, talib=False)}
    if isinstance(spec, EmaSpec):
        return {f"EMA_{spec.length}": ta.ema(close, length=spec.length, talib=False)}
    if isinstance(spec, MacdSpec):
        out = ta.macd(close, fast=spec.fast, slow=spec.slow, signal=spec.signal, talib=False)
        s = f"{spec.fast}_{spec.slow}_{spec.signal}"
        return {name: out[name] for name in (f"MACD_{s}", f"MACDs_{s}", f"MACDh_{s}")}
    if isinstance(spec, BbandsSpec):
        out = ta.bbands(
            close, length=spec.length, lower_std=spec.std, upper_std=spec.std, talib=False
        )
        s = f"{spec.length}_{spec.std}_{spec.std}"
        return {name: out[name] for name in (f"BBL_{s}", f"BBM_{s}", f"BBU_{s}")}
    assert isinstance(spec, AtrSpec)
    return {
        f"ATRr_{spec.length}": ta.atr(
            frame["high"], frame["low"], close, length=spec.length, talib=False
        )
    }


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(s.columns))
def test_compute_each_kind_equals_pandas_ta_called_directly(spec: IndicatorSpec) -> None:
    result = compute(spec, FRAME)

    expected = direct(spec, FRAME)
    assert list(result.columns) == list(spec.columns)
    assert result.index.equals(FRAME.index)
    for ours, theirs in zip(spec.columns, expected, strict=True):
        np.testing.assert_array_equal(result[ours].to_numpy(), expected[theirs].to_numpy())
    assert result.iloc[-1].notna().all()


def test_compute_column_names_are_stable() -> None:
    assert list(compute_all(SPECS[:6], FRAME).columns) == [
        "rsi_14",
        "sma_20",
        "ema_20",
        "macd_12_26_9",
        "macds_12_26_9",
        "macdh_12_26_9",
        "bbl_20_2.0",
        "bbm_20_2.0",
        "bbu_20_2.0",
        "atr_14",
    ]


@pytest.mark.parametrize("spec", SPECS[:6], ids=lambda s: s.kind)
def test_compute_frame_shorter_than_warmup_is_all_nan(spec: IndicatorSpec) -> None:
    short = FRAME.iloc[: spec.warmup - 1]
    result = compute(spec, short)
    assert result.shape == (spec.warmup - 1, len(spec.columns))
    assert result.isna().all().all()
    # One more candle and pandas-ta gives its first value: that is the warm-up.
    assert compute(spec, FRAME.iloc[: spec.warmup]).iloc[-1].notna().all()


def test_compute_frame_without_needed_columns_raises() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        compute(AtrSpec(length=14), FRAME[["close"]])


def test_candles_to_frame_has_utc_index_and_float_columns() -> None:
    frame = candles_to_frame(ETH_CANDLES[:3])
    rows = csv_rows(ETH)[:3]
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC"
    assert [ts.to_pydatetime() for ts in frame.index] == [t for t, _ in rows]
    assert [tuple(r) for r in frame.itertuples(index=False)] == [v for _, v in rows]


def window_history(specs: list[IndicatorSpec], candles: list[Candle]) -> pd.DataFrame:
    window = IndicatorWindow(specs)
    rows = [window.update(candle) for candle in candles]
    return pd.DataFrame(rows, index=candles_to_frame(candles).index, dtype=float)


@pytest.mark.parametrize("market", ["ETH-BTC", "LTC-BTC", "ADA-BTC", "XRP-USDT"])
def test_indicator_window_matches_pandas_ta_over_full_history(market: str) -> None:
    candles = read_candles_csv(DATA / f"{market}_5m.csv", market.replace("-", "/"), "5m")
    frame = candles_to_frame(candles)
    windowed = window_history(SPECS, candles)

    for spec in SPECS:
        full = compute(spec, frame)
        for column in spec.columns:
            ours = windowed[column].to_numpy()
            theirs = full[column].to_numpy()
            # None exactly before the warm-up, a value from then on.
            assert np.isnan(ours[: spec.warmup - 1]).all(), column
            assert not np.isnan(ours[spec.warmup - 1 :]).any(), column
            np.testing.assert_allclose(
                ours[spec.warmup - 1 :],
                theirs[spec.warmup - 1 :],
                rtol=tolerance(spec, frame),
                atol=0,
                err_msg=f"{market} {column}",
            )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(s.columns))
def test_indicator_window_equals_pandas_ta_on_each_prefix(spec: IndicatorSpec) -> None:
    # What a live trigger sees after n candles is what pandas-ta computes from
    # those n candles: checked at the warm-up edge and at a few later points.
    window = IndicatorWindow([spec])
    checkpoints = {spec.warmup - 1, spec.warmup, spec.warmup + 1, 777, 3001, 5760}
    for n, candle in enumerate(ETH_CANDLES, start=1):
        values = window.update(candle)
        if n not in checkpoints:
            continue
        expected = compute(spec, FRAME.iloc[:n]).iloc[-1]
        for column in spec.columns:
            if math.isnan(expected[column]):
                assert values[column] is None, (n, column)
            else:
                assert values[column] == pytest.approx(
                    expected[column], rel=tolerance(spec, FRAME), abs=0
                ), (n, column)


def test_indicator_window_memory_is_bounded() -> None:
    window = IndicatorWindow(SPECS, max_history=250)
    for candle in ETH_CANDLES:
        window.update(candle)
    assert window.count == 5760
    assert len(window.candles) == 250
    assert window.candles[-1] == ETH_CANDLES[-1]
    assert window.ready


def test_indicator_window_default_history_is_longest_warmup() -> None:
    window = IndicatorWindow(SPECS)
    assert window.max_history == max(spec.warmup for spec in SPECS) == 200
    assert window.columns[:3] == ("rsi_14", "sma_20", "ema_20")
    assert window.values == dict.fromkeys(window.columns)


def test_indicator_window_rejects_history_too_short_for_sma() -> None:
    with pytest.raises(ValueError, match="shorter than the 200 closes"):
        IndicatorWindow([SmaSpec(length=200)], max_history=100)


def test_indicator_window_rejects_out_of_order_candle() -> None:
    window = IndicatorWindow([RsiSpec()])
    window.update(ETH_CANDLES[1])
    with pytest.raises(ValueError, match="is not after the previous"):
        window.update(ETH_CANDLES[0])
    with pytest.raises(ValueError, match="is not after the previous"):
        window.update(ETH_CANDLES[1])


def test_indicator_window_rejects_candle_of_another_market() -> None:
    window = IndicatorWindow([RsiSpec()])
    window.update(ETH_CANDLES[0])
    other = Candle("LTC/BTC", "5m", ETH_CANDLES[1].open_time, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="use one window per market"):
        window.update(other)


def test_indicator_window_flat_prices_give_none_rsi_like_pandas_nan() -> None:
    t0 = ETH_CANDLES[0].open_time
    flat = [
        Candle("X/Y", "5m", t0 + i * timedelta(minutes=5), 1.0, 1.0, 1.0, 1.0, 1.0)
        for i in range(20)
    ]
    window = IndicatorWindow([RsiSpec(length=14)])
    assert window.extend(flat) == {"rsi_14": None}
    assert math.isnan(compute(RsiSpec(length=14), candles_to_frame(flat))["rsi_14"].iloc[-1])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "rsi", "length": 14}, RsiSpec(length=14)),
        ({"kind": "rsi"}, RsiSpec(length=14)),
        ({"kind": "sma", "length": 50}, SmaSpec(length=50)),
        ({"kind": "ema", "length": "21"}, EmaSpec(length=21)),
        ({"kind": "macd"}, MacdSpec(fast=12, slow=26, signal=9)),
        ({"kind": "bbands", "std": 2}, BbandsSpec(length=20, std=2.0)),
        ({"kind": "atr"}, AtrSpec(length=14)),
    ],
)
def test_parse_indicator_spec_valid_config(data: dict[str, Any], expected: IndicatorSpec) -> None:
    spec = parse_indicator_spec(data)
    assert spec == expected
    assert type(spec) is type(expected)


@pytest.mark.parametrize(
    ("data", "loc", "message"),
    [
        ({"kind": "rsi", "length": 0}, ("rsi", "length"), "greater than or equal to 1"),
        ({"kind": "rsi", "lenght": 14}, ("rsi", "lenght"), "Extra inputs are not permitted"),
        ({"kind": "sma"}, ("sma", "length"), "Field required"),
        ({"kind": "ema", "length": 2.5}, ("ema", "length"), "valid integer"),
        ({"kind": "ema", "length": 100_000}, ("ema", "length"), "less than or equal to 5000"),
        ({"kind": "macd", "fast": 26, "slow": 12}, ("macd", "slow"), "must be longer than fast"),
        ({"kind": "bbands", "std": -1}, ("bbands", "std"), "greater than 0"),
        ({"kind": "bbands", "length": 1}, ("bbands", "length"), "greater than or equal to 2"),
        ({"kind": "vwap", "length": 14}, (), "'kind'"),
        ({"length": 14}, (), "'kind'"),
    ],
)
def test_parse_indicator_spec_bad_config_names_the_field(
    data: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_indicator_spec(data)
    errors = info.value.errors()
    assert len(errors) == 1
    assert errors[0]["loc"] == loc
    assert message in errors[0]["msg"] or message in str(info.value)


def test_indicator_spec_is_frozen_and_hashable() -> None:
    spec = RsiSpec(length=14)
    with pytest.raises(ValidationError):
        spec.length = 7  # type: ignore[misc]
    assert len({spec, RsiSpec(length=14), parse_indicator_spec({"kind": "rsi"})}) == 1


def test_indicator_window_duplicate_specs_computed_once() -> None:
    window = IndicatorWindow([RsiSpec(), RsiSpec(length=14), SmaSpec(length=3)])
    assert window.columns == ("rsi_14", "sma_3")
