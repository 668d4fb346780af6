"""A custom candle trigger: a volume spike, traded in the direction of the trend.

A candle that trades at least `factor` times the average volume of the `length`
candles before it fires: long when it closes above its EMA(`trend`), short otherwise.
Registered, it runs like a built-in trigger, under the same runner (heartbeats, gap
logs, deterministic signal ids, reconnects). From the repository, in its virtualenv:

  ATS_TRIGGER_TOKEN=ats_trg_... .venv/bin/python examples/custom_rule.py volume_spike \
      --symbol ETH/BTC --timeframe 5m --feed csv:data/ETH-BTC_5m.csv --params '{"factor": 4}'
"""

from collections.abc import Sequence

from pydantic import Field

from shared.events import Direction
from shared.market.candles import Candle
from shared.market.indicators import EmaSpec, IndicatorSpec
from triggers.base import SignalDraft, Trigger, TriggerParams, register_trigger


class VolumeSpikeParams(TriggerParams):
    length: int = Field(default=20, ge=1, le=5000, description="Candles whose volume is averaged.")
    factor: float = Field(default=5.0, gt=1, description="Times the average volume that fires.")
    trend: int = Field(default=50, ge=2, le=5000, description="EMA length giving the direction.")


@register_trigger("volume_spike")
class VolumeSpikeTrigger(Trigger):
    """A candle trading `factor` times the average volume of the `length` before it."""

    Params = VolumeSpikeParams
    params: VolumeSpikeParams

    def indicators(self) -> Sequence[IndicatorSpec]:
        return [EmaSpec(kind="ema", length=self.params.trend)]

    def history(self) -> int:
        return self.params.length  # `previous` holds up to this many earlier candles

    def evaluate(
        self,
        candle: Candle,
        now: dict[str, float | None],
        before: dict[str, float | None],
        previous: Sequence[Candle],
    ) -> list[SignalDraft]:
        p = self.params
        ema = now[f"ema_{p.trend}"]
        if ema is None or len(previous) < p.length:
            return []  # still warming up
        average = sum(c.volume for c in previous) / len(previous)
        if average <= 0 or candle.volume < p.factor * average:
            return []
        ratio = candle.volume / average
        return [
            SignalDraft(
                rule="volume_spike",  # with the candle's time, this names the signal's id
                direction=Direction.LONG if candle.close > ema else Direction.SHORT,
                strength=min(1.0, ratio / (2 * p.factor)),
                title=f"{self.symbol} {self.timeframe} traded {ratio:.1f}x its average volume",
                values={
                    "volume": candle.volume,
                    f"volume_avg_{p.length}": average,
                    f"ema_{p.trend}": ema,
                    "close": candle.close,
                },
            )
        ]


if __name__ == "__main__":
    # Imported after the registration above, so `volume_spike` is one of its commands.
    from triggers.cli import app

    app()
