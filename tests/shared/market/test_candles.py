"""Candles, gaps and timeframes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.market.candles import Candle, timeframe_seconds

CCXT_TIMEFRAMES = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "1w": 604800,
}


@pytest.mark.parametrize(("timeframe", "seconds"), CCXT_TIMEFRAMES.items())
def test_timeframe_seconds_ccxt_timeframes_convert(timeframe: str, seconds: int) -> None:
    assert timeframe_seconds(timeframe) == seconds


@pytest.mark.parametrize("timeframe", ["", "5", "m5", "0m", "1M", "1y", "5 m", "-5m"])
def test_timeframe_seconds_unknown_timeframe_raises(timeframe: str) -> None:
    with pytest.raises(ValueError, match="unknown timeframe"):
        timeframe_seconds(timeframe)


def test_candle_close_time_is_next_open() -> None:
    candle = Candle("ETH/BTC", "15m", datetime(2018, 1, 10, 4, 45, tzinfo=UTC), 1, 2, 0.5, 1.5, 9)
    assert candle.close_time == datetime(2018, 1, 10, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "open_time",
    [datetime(2018, 1, 10), datetime(2018, 1, 10, tzinfo=timezone(timedelta(hours=2)))],  # noqa: DTZ001
)
def test_candle_non_utc_open_time_raises(open_time: datetime) -> None:
    with pytest.raises(ValueError, match="timezone-aware UTC"):
        Candle("ETH/BTC", "5m", open_time, 1, 2, 0.5, 1.5, 9)


def test_candle_is_frozen() -> None:
    candle = Candle("ETH/BTC", "5m", datetime(2018, 1, 10, tzinfo=UTC), 1, 2, 0.5, 1.5, 9)
    with pytest.raises(AttributeError):
        candle.close = 3.0  # type: ignore[misc]
