"""Built-in strategies: sma_cross, rsi_reversal, breakout.

Spot accounts are long-only: BUY opens a long when none is open, SELL closes it;
a sell condition without a position is a HOLD. Crossings follow the convention of
the triggers (`a` crosses above `b` when `a <= b` before and `a > b` now).

Stop-loss and take-profit are off unless set, as a multiple of ATR
(`{"kind": "atr", "multiple": 2.0, "length": 14}`) or a fraction of the entry price
(`{"kind": "pct", "value": 0.02}`), and are attached to BUY decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from shared.events import Action
from shared.kernel.strategy import Context, Decision, Strategy, StrategyParams, register_strategy
from shared.market.indicators import AtrSpec, IndicatorSpec, RsiSpec, SmaSpec


# The crossing convention of every rule in the platform (triggers, strategies, JSON rules).
def crossed_above(a0: float | None, b0: float | None, a1: float | None, b1: float | None) -> bool:
    if a0 is None or b0 is None or a1 is None or b1 is None:
        return False
    return a0 <= b0 and a1 > b1


def crossed_below(a0: float | None, b0: float | None, a1: float | None, b1: float | None) -> bool:
    if a0 is None or b0 is None or a1 is None or b1 is None:
        return False
    return a0 >= b0 and a1 < b1


class AtrStop(StrategyParams):
    # Strict like the JSON rules that embed it: "7" is not a number.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["atr"]
    multiple: float = Field(gt=0, le=50)
    length: int = Field(default=14, ge=1, le=500)


class PctStop(StrategyParams):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: Literal["pct"]
    value: float = Field(gt=0, lt=1, description="Fraction of the entry price, e.g. 0.02.")


StopRule = Annotated[AtrStop | PctStop, Field(discriminator="kind")]


class ExitParams(StrategyParams):
    stop_loss: StopRule | None = None
    take_profit: StopRule | None = None


def _exit_specs(p: ExitParams) -> list[IndicatorSpec]:
    return [
        AtrSpec(kind="atr", length=rule.length)
        for rule in (p.stop_loss, p.take_profit)
        if isinstance(rule, AtrStop)
    ]


def _distance(rule: AtrStop | PctStop, ctx: Context, price: float) -> float | None:
    if isinstance(rule, PctStop):
        return price * rule.value
    atr = ctx.indicators.get(f"atr_{rule.length}")
    return None if atr is None else atr * rule.multiple


def _buy(ctx: Context, p: ExitParams, confidence: float, reasoning: str) -> Decision:
    price = ctx.candle.close
    stop = take = None
    notes = []
    if p.stop_loss is not None:
        d = _distance(p.stop_loss, ctx, price)
        if d is None:
            return Decision.hold("stop-loss rule set but its ATR is still warming up")
        stop = _dec(price - d)
        notes.append(f"stop {stop}")
    if p.take_profit is not None:
        d = _distance(p.take_profit, ctx, price)
        if d is None:
            return Decision.hold("take-profit rule set but its ATR is still warming up")
        take = _dec(price + d)
        notes.append(f"target {take}")
    suffix = f" ({', '.join(notes)})" if notes else ""
    return Decision(
        Action.BUY,
        confidence,
        reasoning + suffix,
        entry=_dec(price),
        stop_loss=stop,
        take_profit=take,
    )


def _dec(x: float) -> Decimal:
    # repr gives the shortest string that round-trips, so prices keep their digits.
    return Decimal(repr(x))


def _sell(ctx: Context, confidence: float, reasoning: str) -> Decision:
    if ctx.position() is None:
        return Decision.hold(f"{reasoning}, but no position is open to close (spot: long only)")
    return Decision(Action.SELL, confidence, reasoning, entry=_dec(ctx.candle.close))


# --------------------------------------------------------------------------- sma_cross


class SmaCrossParams(ExitParams):
    fast: int = Field(default=10, ge=1, le=1000)
    slow: int = Field(default=30, ge=2, le=5000)

    @model_validator(mode="after")
    def _ordered(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


@register_strategy("sma_cross")
class SmaCross(Strategy):
    """BUY when the fast SMA of closes crosses above the slow one; SELL (close) when it
    crosses below. Params: `fast` (10), `slow` (30), optional `stop_loss`/`take_profit`."""

    Params = SmaCrossParams
    params: SmaCrossParams

    def __init__(self, params: StrategyParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self._columns = (f"sma_{p.fast}", f"sma_{p.slow}")
        # Most candles are one of these two holds: built once, not on every candle.
        self._warming_up = Decision.hold(f"SMA({p.slow}) is still warming up")
        self._no_cross = Decision.hold(f"no SMA({p.fast})/SMA({p.slow}) cross on this candle")

    def indicators(self) -> Sequence[IndicatorSpec]:
        p = self.params
        return [
            SmaSpec(kind="sma", length=p.fast),
            SmaSpec(kind="sma", length=p.slow),
            *_exit_specs(p),
        ]

    def decide(self, ctx: Context) -> Decision:
        f, s = self._columns
        now, previous = ctx.indicators, ctx.previous
        f1, s1 = now.get(f), now.get(s)
        if f1 is None or s1 is None:
            return self._warming_up
        f0, s0 = previous.get(f), previous.get(s)
        if f0 is None or s0 is None:
            return self._no_cross
        # `crossed_above` / `crossed_below` written out (all four values are set): a
        # call each on every candle of a backtest.
        if f0 <= s0 and f1 > s1:
            p = self.params
            if ctx.position() is not None:
                return Decision.hold("SMA cross up, but a position is already open")
            return _buy(
                ctx,
                p,
                _gap_confidence(f1, s1),
                f"SMA({p.fast}) {f1:.8g} crossed above SMA({p.slow}) {s1:.8g}",
            )
        if f0 >= s0 and f1 < s1:
            p = self.params
            return _sell(
                ctx,
                _gap_confidence(f1, s1),
                f"SMA({p.fast}) {f1:.8g} crossed below SMA({p.slow}) {s1:.8g}",
            )
        return self._no_cross


def _gap_confidence(fast: float, slow: float) -> float:
    """0.6, plus 50 times the relative gap between the averages, at most 1."""
    gap = abs(fast - slow) / slow if slow else 0.0
    return min(1.0, 0.6 + gap * 50)


# --------------------------------------------------------------------------- rsi_reversal


class RsiReversalParams(ExitParams):
    length: int = Field(default=14, ge=2, le=500)
    lower: float = Field(default=30.0, gt=0, lt=100)
    upper: float = Field(default=70.0, gt=0, lt=100)

    @model_validator(mode="after")
    def _ordered(self) -> RsiReversalParams:
        if self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


@register_strategy("rsi_reversal")
class RsiReversal(Strategy):
    """BUY when RSI rises back above `lower` (leaving oversold); SELL (close) when it
    crosses above `upper` (overbought). Params: `length` (14), `lower` (30), `upper` (70),
    optional `stop_loss`/`take_profit`."""

    Params = RsiReversalParams
    params: RsiReversalParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        return [RsiSpec(kind="rsi", length=self.params.length), *_exit_specs(self.params)]

    def decide(self, ctx: Context) -> Decision:
        p = self.params
        col = f"rsi_{p.length}"
        r0, r1 = ctx.previous.get(col), ctx.indicators.get(col)
        if r1 is None:
            return Decision.hold(f"RSI({p.length}) is still warming up")
        if crossed_above(r0, p.lower, r1, p.lower):
            if ctx.position() is not None:
                return Decision.hold("RSI left oversold, but a position is already open")
            depth = (p.lower - min(r0 or p.lower, p.lower)) / p.lower
            return _buy(
                ctx,
                p,
                min(1.0, 0.6 + depth),
                f"RSI({p.length}) rose back above {p.lower:g} ({r1:.1f})",
            )
        if crossed_above(r0, p.upper, r1, p.upper):
            return _sell(ctx, 0.7, f"RSI({p.length}) crossed above {p.upper:g} ({r1:.1f})")
        return Decision.hold(f"RSI({p.length}) {r1:.1f}: no reversal")


# --------------------------------------------------------------------------- breakout


class BreakoutParams(ExitParams):
    length: int = Field(default=20, ge=1, le=5000, description="Entry: bars before this one.")
    exit_length: int = Field(default=10, ge=1, le=5000, description="Exit: bars before this one.")


@register_strategy("breakout")
class Breakout(Strategy):
    """BUY when the close breaks above the highest high of the previous `length` bars;
    SELL (close) when it breaks below the lowest low of the previous `exit_length` bars."""

    Params = BreakoutParams
    params: BreakoutParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        return _exit_specs(self.params)

    def history(self) -> int:
        return max(self.params.length, self.params.exit_length) + 1

    def decide(self, ctx: Context) -> Decision:
        p = self.params
        before = ctx.candles[:-1]
        if len(before) < max(p.length, p.exit_length):
            return Decision.hold("not enough candles yet for the breakout window")
        close = ctx.candle.close
        high = max(c.high for c in before[-p.length :])
        low = min(c.low for c in before[-p.exit_length :])
        if close > high:
            if ctx.position() is not None:
                return Decision.hold("breakout, but a position is already open")
            return _buy(
                ctx, p, 0.65, f"close {close:.8g} broke above the {p.length}-bar high {high:.8g}"
            )
        if close < low:
            return _sell(
                ctx, 0.65, f"close {close:.8g} broke below the {p.exit_length}-bar low {low:.8g}"
            )
        return Decision.hold(f"close {close:.8g} inside [{low:.8g}, {high:.8g}]")
