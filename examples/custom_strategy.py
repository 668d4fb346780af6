"""A custom strategy: buy a close above the upper Bollinger Band, sell one below the middle.

Registered, it runs like a built-in in an algorithmic group: the same feed alignment,
safe wrapper, discussion, decision ids and config updates. From the repository, in
its virtualenv:

  ATS_TRADING_GROUP_TOKEN=ats_grp_... .venv/bin/python examples/custom_strategy.py algo \
      --strategy band_breakout --params '{"std": 2.5}' --feed ETH/BTC=csv:data/ETH-BTC_5m.csv
"""

from collections.abc import Sequence
from decimal import Decimal

from pydantic import Field

from shared.events import Action
from shared.kernel.strategy import Context, Decision, Strategy, StrategyParams, register_strategy
from shared.market.indicators import BbandsSpec, IndicatorSpec


class BandBreakoutParams(StrategyParams):
    length: int = Field(default=20, ge=2, le=5000, description="Candles of the bands' SMA.")
    std: float = Field(default=2.0, gt=0, le=10, description="Band width in standard deviations.")


@register_strategy("band_breakout")
class BandBreakout(Strategy):
    """BUY when the close breaks above the upper band; SELL when it falls below the middle."""

    Params = BandBreakoutParams
    params: BandBreakoutParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        return [BbandsSpec(length=self.params.length, std=self.params.std)]

    def decide(self, ctx: Context) -> Decision:
        bands = BbandsSpec(length=self.params.length, std=self.params.std)
        lower, middle, upper = (ctx.indicators[column] for column in bands.columns)
        if middle is None or upper is None:
            return Decision.hold("the Bollinger Bands are still warming up")
        close = ctx.candle.close
        entry = Decimal(repr(close))
        if close > upper and ctx.position() is None:
            why = f"close {close:.8g} broke above the upper band {upper:.8g}"
            return Decision(Action.BUY, confidence=0.6, reasoning=why, entry=entry)
        if close < middle and ctx.position() is not None:
            why = f"close {close:.8g} fell below the middle band {middle:.8g}"
            return Decision(Action.SELL, confidence=0.6, reasoning=why, entry=entry)
        return Decision.hold(f"close {close:.8g}, bands [{lower:.8g}, {upper:.8g}]: nothing to do")


if __name__ == "__main__":
    # Imported after the registration above, so `band_breakout` is a known strategy.
    from trading_groups.cli import app

    app()
