"""Feeds a strategy its candles and builds its `Context`, the same way live and in a
backtest: indicator state, the values one candle earlier, and the recent candles."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.kernel.strategy import Context, Decision, Outcome, Position, Strategy, safe_decide
from shared.market.candles import Candle
from shared.market.indicators import IndicatorWindow


class StrategyEngine:
    def __init__(self, strategy: Strategy, *, budget_seconds: float | None = None) -> None:
        self.strategy = strategy
        self.budget_seconds = budget_seconds
        specs = list(strategy.indicators())
        self.window = IndicatorWindow(specs) if specs else None
        self._now: dict[str, float | None] = dict.fromkeys(
            self.window.columns if self.window else ()
        )
        self._before: dict[str, float | None] = dict(self._now)
        self._candles: deque[Candle] = deque(maxlen=max(strategy.history(), 2))

    @property
    def last(self) -> Candle | None:
        return self._candles[-1] if self._candles else None

    def update(self, candle: Candle) -> None:
        """Add the next closed candle (oldest first, once each)."""
        self._before = self._now
        self._now = self.window.update(candle) if self.window is not None else {}
        self._candles.append(candle)

    def context(
        self,
        *,
        now: datetime,
        signal: Mapping[str, Any] | None = None,
        positions: Sequence[Position] = (),
        outcomes: Sequence[Outcome] = (),
    ) -> Context:
        last = self.last
        if last is None:
            raise ValueError("no candle yet: update() the engine before asking for a context")
        return Context(
            symbol=last.symbol,
            timeframe=last.timeframe,
            now=now,
            candles=tuple(self._candles),
            indicators=dict(self._now),
            previous=dict(self._before),
            signal=signal,
            positions=tuple(positions),
            outcomes=tuple(outcomes),
        )

    def decide(self, ctx: Context) -> Decision:
        return safe_decide(self.strategy, ctx, budget_seconds=self.budget_seconds)
