"""The shipped candle files, read with the csv module, independently of shared.market."""

from __future__ import annotations

import csv
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.market.candles import Candle
from shared.market.feeds import CandleFeed

DATA = Path(__file__).resolve().parents[3] / "data"
ETH = DATA / "ETH-BTC_5m.csv"
ADA = DATA / "ADA-BTC_5m.csv"
STEP = timedelta(minutes=5)


def csv_rows(path: Path) -> list[tuple[datetime, tuple[float, ...]]]:
    """(open time, (open, high, low, close, volume)) of every row."""
    with path.open(newline="") as f:
        return [
            (
                datetime.strptime(r["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
                tuple(float(r[k]) for k in ("open", "high", "low", "close", "volume")),
            )
            for r in csv.DictReader(f)
        ]


def csv_times(path: Path) -> list[datetime]:
    return [t for t, _ in csv_rows(path)]


def expected_gaps(path: Path) -> list[tuple[datetime, datetime, int]]:
    """(last bar before, first bar after, bars missing) for each hole in the file."""
    times = csv_times(path)
    return [
        (a, b, (b - a) // STEP - 1) for a, b in zip(times, times[1:], strict=False) if b - a > STEP
    ]


def as_rows(candles: list[Candle]) -> list[tuple[datetime, tuple[float, ...]]]:
    return [(c.open_time, (c.open, c.high, c.low, c.close, c.volume)) for c in candles]


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def collect(feed: CandleFeed, limit: int | None = None) -> list[Candle]:
    """Candles from the feed until it ends or `limit` were received; closes the stream."""
    out: list[Candle] = []
    async with aclosing(feed.stream()) as candles:
        async for candle in candles:
            out.append(candle)
            if limit is not None and len(out) >= limit:
                break
    return out
