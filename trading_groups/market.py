"""The group's view of the market: candles up to the one a signal was raised on.

A group decides on the same closed candle its trigger saw. It reads candles from its
own feed per symbol (a CSV replay or a live ccxt feed) and advances that feed until
the signal's candle, so its indicators are computed over exactly the history the
trigger's were, without the trigger having to ship candles in its signals.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

from shared.market.candles import Candle
from shared.market.feeds import CandleFeed


class FeedCursor:
    """Pulls candles from a feed, in order, up to a requested open time."""

    def __init__(self, feed: CandleFeed) -> None:
        self.feed = feed
        self._stream: AsyncGenerator[Candle, None] = feed.stream()
        self.last: Candle | None = None
        self.ended = False

    async def advance_to(self, open_time: datetime) -> list[Candle]:
        """Candles after the last one up to `open_time` (or the first past it), oldest
        first. Check `at(open_time)` afterwards: the feed may have ended or have no
        candle at that time."""
        pulled: list[Candle] = []
        if self.last is not None and self.last.open_time >= open_time:
            return pulled
        while not self.ended:
            try:
                candle = await anext(self._stream)
            except StopAsyncIteration:
                self.ended = True
                break
            self.last = candle
            pulled.append(candle)
            if candle.open_time >= open_time:
                break
        return pulled

    def at(self, open_time: datetime) -> bool:
        return self.last is not None and self.last.open_time == open_time

    def describe_position(self) -> str:
        return self.last.open_time.isoformat() if self.last else "no candle yet"

    async def close(self) -> None:
        await self._stream.aclose()
