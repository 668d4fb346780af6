"""Built-in triggers: RSI, moving-average cross, MACD cross, N-bar breakout, price level.

Crossing conventions, shared by every rule here so tests and strategies can
compute the same thing independently: `a` crosses above `b` on a candle when
`a <= b` before it and `a > b` after it; crosses below when `a >= b` before and
`a < b` after. Nothing fires while an indicator is still warming up (None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, model_validator

from shared.events import Direction
from shared.kernel.strategies import crossed_above, crossed_below
from shared.market.candles import Candle
from shared.market.indicators import (
    EmaSpec,
    IndicatorSpec,
    MacdSpec,
    RsiSpec,
    SmaSpec,
)
from triggers.base import SignalDraft, Trigger, TriggerParams, register_trigger


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


# --------------------------------------------------------------------------- RSI


class RsiParams(TriggerParams):
    length: int = Field(default=14, ge=2, le=500)
    lower: float = Field(default=30.0, gt=0, lt=100, description="Oversold level.")
    upper: float = Field(default=70.0, gt=0, lt=100, description="Overbought level.")
    mode: Literal["threshold", "cross"] = Field(
        default="threshold",
        description="threshold: fire when RSI enters a zone (crosses below `lower` -> long, "
        "above `upper` -> short); cross: fire when it leaves the zone (back above `lower` "
        "-> long, back below `upper` -> short).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RsiParams:
        if self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


@register_trigger("rsi")
class RsiTrigger(Trigger):
    """RSI against an oversold and an overbought level."""

    Params = RsiParams
    params: RsiParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        return [RsiSpec(kind="rsi", length=self.params.length)]

    def evaluate(
        self,
        candle: Candle,
        now: dict[str, float | None],
        before: dict[str, float | None],
        previous: Sequence[Candle],
    ) -> list[SignalDraft]:
        p = self.params
        col = f"rsi_{p.length}"
        r0, r1 = before[col], now[col]
        if r0 is None or r1 is None:
            return []
        values = {col: r1, "close": candle.close}
        name = f"RSI({p.length})"
        where = f"{self.symbol} {self.timeframe}"
        if p.mode == "threshold":
            if crossed_below(r0, p.lower, r1, p.lower):
                return [
                    SignalDraft(
                        "rsi_below_lower",
                        Direction.LONG,
                        _clamp((p.lower - r1) / p.lower * 4 + 0.5),
                        f"{name} crossed below {p.lower:g} on {where} ({r1:.1f})",
                        values,
                    )
                ]
            if crossed_above(r0, p.upper, r1, p.upper):
                return [
                    SignalDraft(
                        "rsi_above_upper",
                        Direction.SHORT,
                        _clamp((r1 - p.upper) / (100 - p.upper) * 4 + 0.5),
                        f"{name} crossed above {p.upper:g} on {where} ({r1:.1f})",
                        values,
                    )
                ]
            return []
        if crossed_above(r0, p.lower, r1, p.lower):
            return [
                SignalDraft(
                    "rsi_exit_oversold",
                    Direction.LONG,
                    0.7,
                    f"{name} rose back above {p.lower:g} on {where} ({r1:.1f})",
                    values,
                )
            ]
        if crossed_below(r0, p.upper, r1, p.upper):
            return [
                SignalDraft(
                    "rsi_exit_overbought",
                    Direction.SHORT,
                    0.7,
                    f"{name} fell back below {p.upper:g} on {where} ({r1:.1f})",
                    values,
                )
            ]
        return []


# --------------------------------------------------------------------------- MA cross


class MaCrossParams(TriggerParams):
    fast: int = Field(default=10, ge=1, le=1000)
    slow: int = Field(default=30, ge=2, le=5000)
    ma: Literal["sma", "ema"] = "sma"

    @model_validator(mode="after")
    def _ordered(self) -> MaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


@register_trigger("ma_cross")
class MaCrossTrigger(Trigger):
    """A fast moving average of closes crossing a slow one (SMA or EMA)."""

    Params = MaCrossParams
    params: MaCrossParams

    def _spec(self, length: int) -> IndicatorSpec:
        if self.params.ma == "sma":
            return SmaSpec(kind="sma", length=length)
        return EmaSpec(kind="ema", length=length)

    def indicators(self) -> Sequence[IndicatorSpec]:
        return [self._spec(self.params.fast), self._spec(self.params.slow)]

    def evaluate(
        self,
        candle: Candle,
        now: dict[str, float | None],
        before: dict[str, float | None],
        previous: Sequence[Candle],
    ) -> list[SignalDraft]:
        p = self.params
        f, s = f"{p.ma}_{p.fast}", f"{p.ma}_{p.slow}"
        f0, s0, f1, s1 = before[f], before[s], now[f], now[s]
        if f1 is None or s1 is None:
            return []
        values = {f: f1, s: s1, "close": candle.close}
        label = f"{p.ma.upper()}({p.fast}) and {p.ma.upper()}({p.slow}) on {self.symbol}"
        spread = abs(f1 - s1) / s1 if s1 else 0.0
        if crossed_above(f0, s0, f1, s1):
            return [
                SignalDraft(
                    "ma_cross_up",
                    Direction.LONG,
                    _clamp(0.5 + spread * 100),
                    f"{label}: fast crossed above slow",
                    values,
                )
            ]
        if crossed_below(f0, s0, f1, s1):
            return [
                SignalDraft(
                    "ma_cross_down",
                    Direction.SHORT,
                    _clamp(0.5 + spread * 100),
                    f"{label}: fast crossed below slow",
                    values,
                )
            ]
        return []


# --------------------------------------------------------------------------- MACD


class MacdParams(TriggerParams):
    fast: int = Field(default=12, ge=1)
    slow: int = Field(default=26, ge=2)
    signal: int = Field(default=9, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> MacdParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


@register_trigger("macd_cross")
class MacdCrossTrigger(Trigger):
    """The MACD line crossing its signal line."""

    Params = MacdParams
    params: MacdParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        p = self.params
        return [MacdSpec(kind="macd", fast=p.fast, slow=p.slow, signal=p.signal)]

    def evaluate(
        self,
        candle: Candle,
        now: dict[str, float | None],
        before: dict[str, float | None],
        previous: Sequence[Candle],
    ) -> list[SignalDraft]:
        p = self.params
        suffix = f"{p.fast}_{p.slow}_{p.signal}"
        m, s, h = f"macd_{suffix}", f"macds_{suffix}", f"macdh_{suffix}"
        m0, s0, m1, s1 = before[m], before[s], now[m], now[s]
        if m1 is None or s1 is None:
            return []
        values = {m: m1, s: s1, "close": candle.close}
        if now[h] is not None:
            values[h] = now[h]  # type: ignore[assignment]
        label = f"MACD({p.fast},{p.slow},{p.signal}) on {self.symbol} {self.timeframe}"
        if crossed_above(m0, s0, m1, s1):
            return [
                SignalDraft(
                    "macd_cross_up", Direction.LONG, 0.6, f"{label}: crossed above signal", values
                )
            ]
        if crossed_below(m0, s0, m1, s1):
            return [
                SignalDraft(
                    "macd_cross_down",
                    Direction.SHORT,
                    0.6,
                    f"{label}: crossed below signal",
                    values,
                )
            ]
        return []


# --------------------------------------------------------------------------- breakout


class BreakoutParams(TriggerParams):
    length: int = Field(default=20, ge=1, le=5000, description="Bars before this one.")


@register_trigger("breakout")
class BreakoutTrigger(Trigger):
    """A close above the highest high (or below the lowest low) of the previous N bars."""

    Params = BreakoutParams
    params: BreakoutParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        return []

    def history(self) -> int:
        return self.params.length

    def evaluate(
        self,
        candle: Candle,
        now: dict[str, float | None],
        before: dict[str, float | None],
        previous: Sequence[Candle],
    ) -> list[SignalDraft]:
        n = self.params.length
        if len(previous) < n:
            return []
        high = max(c.high for c in previous)
        low = min(c.low for c in previous)
        values = {f"high_{n}": high, f"low_{n}": low, "close": candle.close}
        if candle.close > high:
            return [
                SignalDraft(
                    "breakout_up",
                    Direction.LONG,
                    0.6,
                    f"{self.symbol} {self.timeframe} closed above its {n}-bar high {high:g}",
                    values,
                )
            ]
        if candle.close < low:
            return [
                SignalDraft(
                    "breakout_down",
                    Direction.SHORT,
                    0.6,
                    f"{self.symbol} {self.timeframe} closed below its {n}-bar low {low:g}",
                    values,
                )
            ]
        return []


# --------------------------------------------------------------------------- price level


class PriceLevelParams(TriggerParams):
    level: float = Field(gt=0)
    side: Literal["above", "below", "both"] = Field(
        default="both", description="Which crossings of the level fire."
    )


@register_trigger("price_level")
class PriceLevelTrigger(Trigger):
    """The close crossing a fixed price level."""

    Params = PriceLevelParams
    params: PriceLevelParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        return []

    def evaluate(
        self,
        candle: Candle,
        now: dict[str, float | None],
        before: dict[str, float | None],
        previous: Sequence[Candle],
    ) -> list[SignalDraft]:
        if not previous:
            return []
        p = self.params
        c0, c1 = previous[-1].close, candle.close
        values = {"level": p.level, "close": c1}
        if p.side in ("above", "both") and crossed_above(c0, p.level, c1, p.level):
            return [
                SignalDraft(
                    "price_above",
                    Direction.LONG,
                    0.5,
                    f"{self.symbol} closed above {p.level:g} ({c1:g})",
                    values,
                )
            ]
        if p.side in ("below", "both") and crossed_below(c0, p.level, c1, p.level):
            return [
                SignalDraft(
                    "price_below",
                    Direction.SHORT,
                    0.5,
                    f"{self.symbol} closed below {p.level:g} ({c1:g})",
                    values,
                )
            ]
        return []
