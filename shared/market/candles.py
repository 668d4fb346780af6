"""Candles and gaps: the values every feed, store and indicator speaks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# Pure and called per candle (close times) and per decision (risk checks): cached.
@lru_cache(maxsize=64)
def timeframe_seconds(timeframe: str) -> int:
    """Length of a ccxt timeframe string in seconds: `"5m"` -> 300, `"1w"` -> 604800.

    Raises:
        ValueError: the timeframe is not `<count><unit>` with unit s, m, h, d or w.
            Months (`1M`) have no fixed length and are not supported.
    """
    match = _TIMEFRAME.match(timeframe)
    if match is None:
        raise ValueError(
            f"unknown timeframe {timeframe!r}: use a ccxt timeframe such as "
            "1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@lru_cache(maxsize=64)
def timeframe_delta(timeframe: str) -> timedelta:
    """`timeframe_seconds` as a `timedelta`."""
    return timedelta(seconds=timeframe_seconds(timeframe))


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV bar of `symbol` on `timeframe`, opened at `open_time` (UTC)."""

    symbol: str
    timeframe: str
    open_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __post_init__(self) -> None:
        if self.open_time.utcoffset() != timedelta(0):
            raise ValueError(
                f"candle open_time {self.open_time.isoformat()} must be timezone-aware UTC"
            )

    @property
    def close_time(self) -> datetime:
        """When the bar closes: the open time of the next bar."""
        return self.open_time + timeframe_delta(self.timeframe)


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing between two real candles of a feed.

    Attributes:
        start: open time of the last candle before the gap.
        end: open time of the first candle after the gap.
        missing: how many bars of `timeframe` are absent between them.
    """

    symbol: str
    timeframe: str
    start: datetime
    end: datetime
    missing: int
