"""The trigger contract: a pure rule over closed candles, and the registry of rules.

A trigger decides, candle by candle, whether something happened worth telling the
trading groups. It does no I/O and keeps no clock: the runner (triggers/runner.py)
feeds it candles and publishes what it returns, and a backtest can call it the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.events import Direction
from shared.market.candles import Candle
from shared.market.indicators import IndicatorSpec, IndicatorWindow

INTERFACE_VERSION = 1


class TriggerParams(BaseModel):
    """Base of every trigger's parameters: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True, slots=True)
class SignalDraft:
    """What a trigger saw on one candle; the runner turns it into a `signal` event."""

    rule: str  # which condition fired, e.g. "rsi_cross_below"; part of the signal's id
    direction: Direction
    strength: float
    title: str
    values: dict[str, float] = field(default_factory=dict)


class Trigger(ABC):
    """A rule over closed candles of one market.

    Subclasses set `kind` (the registry name) and `Params`, declare the indicators
    they need in `indicators()`, and implement `evaluate()`. The engine calls
    `evaluate()` once per candle with the indicator values after and before it.
    """

    kind: ClassVar[str]
    Params: ClassVar[type[TriggerParams]] = TriggerParams

    def __init__(self, params: TriggerParams, *, symbol: str, timeframe: str) -> None:
        self.params = params
        self.symbol = symbol
        self.timeframe = timeframe

    @abstractmethod
    def indicators(self) -> Sequence[IndicatorSpec]:
        """The indicators `evaluate` reads."""

    def history(self) -> int:
        """How many candles before the current one `evaluate` looks back at."""
        return 1

    @abstractmethod
    def evaluate(
        self,
        candle: Candle,
        now: dict[str, float | None],
        before: dict[str, float | None],
        previous: Sequence[Candle],
    ) -> list[SignalDraft]:
        """Signals for this candle.

        Args:
            candle: the candle that just closed.
            now: indicator values including it; None while warming up.
            before: the values one candle earlier.
            previous: up to `history()` earlier candles, oldest first.
        """

    def describe(self) -> str:
        return f"{self.kind} {self.symbol} {self.timeframe}"


_REGISTRY: dict[str, type[Trigger]] = {}


def register_trigger(kind: str) -> Callable[[type[Trigger]], type[Trigger]]:
    """Class decorator: make a trigger available by name (`ats trigger <kind>`)."""

    def decorate(cls: type[Trigger]) -> type[Trigger]:
        if kind in _REGISTRY:
            raise ValueError(f"trigger kind {kind!r} is registered twice")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return decorate


def trigger_kinds() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def create_trigger(
    kind: str, params: dict[str, Any] | None, *, symbol: str, timeframe: str
) -> Trigger:
    """Build a registered trigger; unknown kinds and bad params raise ValueError."""
    _load_builtins()
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ValueError(f"unknown trigger {kind!r}; known: {', '.join(sorted(_REGISTRY))}")
    try:
        parsed = cls.Params.model_validate(params or {})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in e.errors()
        )
        raise ValueError(f"bad params for trigger {kind!r}: {problems}") from e
    return cls(parsed, symbol=symbol, timeframe=timeframe)


def _load_builtins() -> None:
    # Registration happens on import; importing here keeps `base` free of a cycle.
    import triggers.builtin  # noqa: F401


class TriggerEngine:
    """Runs a trigger over candles: the indicator state, the previous values and the
    recent candles it looks back at."""

    def __init__(self, trigger: Trigger) -> None:
        self.trigger = trigger
        specs = list(trigger.indicators())
        self.window = IndicatorWindow(specs) if specs else None
        self._before: dict[str, float | None] = dict.fromkeys(
            self.window.columns if self.window else ()
        )
        self._previous: deque[Candle] = deque(maxlen=max(trigger.history(), 1))
        self.candles = 0

    def _advance(self, candle: Candle) -> dict[str, float | None]:
        now = self.window.update(candle) if self.window is not None else {}
        self.candles += 1
        return now

    def warm_up(self, candles: Sequence[Candle]) -> None:
        """Feed history without evaluating (a restart resuming from the candle store)."""
        for candle in candles:
            self._before = self._advance(candle)
            self._previous.append(candle)

    def on_candle(self, candle: Candle) -> list[SignalDraft]:
        before = self._before
        now = self._advance(candle)
        drafts = self.trigger.evaluate(candle, now, before, tuple(self._previous))
        self._before = now
        self._previous.append(candle)
        return drafts
