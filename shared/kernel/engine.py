"""Feeds a strategy its candles and builds its `Context`, the same way live and in a
backtest: indicator state, the values one candle earlier, and the recent candles."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.kernel.strategy import (
    Context,
    Decision,
    Outcome,
    Position,
    Strategy,
    _ContextFields,
    _new_fields,
    new_context,
    safe_decide,
)
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

    def update(self, candle: Candle, values: dict[str, float | None] | None = None) -> None:
        """Add the next closed candle (oldest first, once each).

        `values` are the indicator values for `candle` computed ahead, as
        `shared.market.indicators.indicator_table` computes them for a whole history
        (a backtest): they replace the window's update. Give them for every candle
        or for none.
        """
        self._before = self._now
        if values is not None:
            self._now = values
        else:
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
        if not self._candles:
            raise ValueError("no candle yet: update() the engine before asking for a context")
        candles = tuple(self._candles)
        last = candles[-1]
        return new_context(
            last.symbol,
            last.timeframe,
            now,
            candles,
            dict(self._now),
            dict(self._before),
            signal,
            tuple(positions),
            tuple(outcomes),
        )

    def decide(self, ctx: Context) -> Decision:
        return safe_decide(self.strategy, ctx, budget_seconds=self.budget_seconds)

    def step(
        self,
        candle: Candle,
        now: datetime,
        positions: Sequence[Position],
        outcomes: Sequence[Outcome],
        values: dict[str, float | None] | None = None,
    ) -> Decision:
        """`update(candle, values)`, then `decide` on the `context` at `now`: what a
        backtest does on every candle, in one call (it makes millions of them).
        Kept in step with `update` and `context` (tests/shared/backtest/test_engine.py)."""
        before = self._before = self._now
        if values is None:
            values = self.window.update(candle) if self.window is not None else {}
        self._now = values
        candles = self._candles
        candles.append(candle)
        # `new_context`, inlined: a call less per candle.
        ctx: Any = _new_fields(_ContextFields)
        ctx.symbol = candle.symbol
        ctx.timeframe = candle.timeframe
        ctx.now = now
        ctx.candles = tuple(candles)
        ctx.indicators = dict(values)
        ctx.previous = dict(before)
        ctx.signal = None
        ctx.positions = tuple(positions)
        ctx.outcomes = tuple(outcomes)
        ctx.__class__ = Context
        if self.budget_seconds is None:
            return safe_decide(self.strategy, ctx)
        return safe_decide(self.strategy, ctx, budget_seconds=self.budget_seconds)
