"""Injected time for feeds: the system clock in production, a virtual one in tests.

Everything time-dependent in `shared.market` (replay pacing, poll intervals, retry
backoff, "is this candle closed yet?") asks a `Clock`, so tests and backtests run
without sleeping.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """The current time and a way to wait."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (non-positive values return at once)."""
        ...


class SystemClock:
    """Wall-clock time and `asyncio.sleep`."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class VirtualClock:
    """Time that moves only when someone sleeps on it or calls `advance`.

    `sleep(s)` records `s` in `sleeps`, moves the clock forward by `s` and yields to
    the event loop once, so code paced by this clock runs as fast as the CPU allows
    while seeing exactly the time it asked for.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2020, 1, 1, tzinfo=UTC)
        if start.utcoffset() != timedelta(0):
            raise ValueError("VirtualClock start must be timezone-aware UTC")
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward without recording a sleep."""
        self._now += timedelta(seconds=max(seconds, 0.0))

    def set(self, when: datetime) -> None:
        """Jump to `when` (forward only)."""
        if when < self._now:
            raise ValueError(f"VirtualClock cannot go back from {self._now} to {when}")
        self._now = when

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
