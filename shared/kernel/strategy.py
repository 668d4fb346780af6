"""The strategy interface: one pure `decide()` over a context, and the safe wrapper.

The same code runs in a trading group process and in the backtester, so a strategy
does no I/O and reads no clock: everything it may know arrives in the `Context`.
User, ML and LLM code always runs through `safe_decide`, which turns an exception
or an overrun into a HOLD with the reason instead of a crash.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.events import Action
from shared.kernel.frozen import fast_init
from shared.market.candles import Candle
from shared.market.indicators import IndicatorSpec

INTERFACE_VERSION = 1


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: frozen, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@fast_init
@dataclass(frozen=True, slots=True)
class Position:
    """An open position the group holds (long-only on spot accounts)."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    opened_at: datetime
    side: str = "long"


@fast_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """A closed trade of the group: what its decisions earned."""

    symbol: str
    pnl: Decimal
    return_pct: float
    closed_at: datetime
    strategy: str | None = None

    @property
    def won(self) -> bool:
        return self.pnl > 0


@dataclass(frozen=True, slots=True, init=False)
class Context:
    """Everything a strategy may know when it decides.

    `indicators` holds the values of the strategy's declared indicators on the last
    closed candle, `previous` the values one candle earlier (None while warming up);
    `candles` the recent closed candles, oldest first, the last one being the candle
    the decision is made on.
    """

    symbol: str
    timeframe: str
    now: datetime
    candles: Sequence[Candle]
    indicators: Mapping[str, float | None]
    previous: Mapping[str, float | None]
    signal: Mapping[str, Any] | None = None
    positions: Sequence[Position] = ()
    outcomes: Sequence[Outcome] = ()

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        now: datetime,
        candles: Sequence[Candle],
        indicators: Mapping[str, float | None],
        previous: Mapping[str, float | None],
        signal: Mapping[str, Any] | None = None,
        positions: Sequence[Position] = (),
        outcomes: Sequence[Outcome] = (),
    ) -> None:
        # The generated __init__ of a frozen dataclass stores each field through
        # object.__setattr__ by name; a backtest builds a Context per candle, so this
        # one stores through the slots' descriptors, in half the time. Same fields,
        # same defaults, still frozen.
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = _CONTEXT_SLOTS
        s0(self, symbol)
        s1(self, timeframe)
        s2(self, now)
        s3(self, candles)
        s4(self, indicators)
        s5(self, previous)
        s6(self, signal)
        s7(self, positions)
        s8(self, outcomes)

    @property
    def candle(self) -> Candle:
        return self.candles[-1]

    def position(self, symbol: str | None = None) -> Position | None:
        wanted = symbol or self.symbol
        return next((p for p in self.positions if p.symbol == wanted), None)


_CONTEXT_SLOTS: tuple[Callable[[Context, Any], None], ...] = tuple(
    getattr(Context, f.name).__set__ for f in fields(Context)
)


class _ContextFields:
    """`Context`'s slots, in its order, without the frozen guard: `new_context` fills
    one with plain attribute stores and then makes it a `Context`. The two types have
    the same layout, so CPython allows the `__class__` assignment; the result is a
    `Context` like any other (frozen, equal, `replace`-able)."""

    __slots__ = tuple(f.name for f in fields(Context))


def new_context(
    symbol: str,
    timeframe: str,
    now: datetime,
    candles: Sequence[Candle],
    indicators: Mapping[str, float | None],
    previous: Mapping[str, float | None],
    signal: Mapping[str, Any] | None,
    positions: Sequence[Position],
    outcomes: Sequence[Outcome],
) -> Context:
    """`Context(...)` with every field given, in about 40 % of the time: a backtest
    builds one per candle (`StrategyEngine.step`). Tested equal to the constructor."""
    ctx: Any = _new_fields(_ContextFields)
    ctx.symbol = symbol
    ctx.timeframe = timeframe
    ctx.now = now
    ctx.candles = candles
    ctx.indicators = indicators
    ctx.previous = previous
    ctx.signal = signal
    ctx.positions = positions
    ctx.outcomes = outcomes
    ctx.__class__ = Context
    return cast(Context, ctx)


_new_fields = object.__new__


@fast_init
@dataclass(frozen=True, slots=True)
class Decision:
    """A typed decision; `reasoning` is shown to operators as written."""

    action: Action
    confidence: float = 0.0
    reasoning: str = ""
    entry: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    size_hint: Decimal | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} is outside 0..1")

    @classmethod
    def hold(cls, reasoning: str, **details: Any) -> Decision:
        return cls(Action.HOLD, 0.0, reasoning, details=details)


class Strategy(ABC):
    """A decision rule. Subclasses set `name` (by `@register_strategy`) and `Params`,
    declare their `indicators()` and `history()`, and implement `decide()`."""

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    INTERFACE_VERSION: ClassVar[int] = INTERFACE_VERSION

    def __init__(self, params: StrategyParams | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def indicators(self) -> Sequence[IndicatorSpec]:
        """Indicators `decide` reads from `ctx.indicators` / `ctx.previous`."""
        return ()

    def history(self) -> int:
        """How many recent candles `decide` needs in `ctx.candles`."""
        return 2

    @abstractmethod
    def decide(self, ctx: Context) -> Decision:
        """Decide on the last closed candle of `ctx`. Pure: no I/O, no clock."""

    def describe(self) -> str:
        return f"{self.name}({self.params.model_dump_json()})"


_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: make a strategy available by name; a duplicate name raises."""

    def decorate(cls: type[Strategy]) -> type[Strategy]:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def strategy_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def strategy_class(name: str) -> type[Strategy]:
    """The registered strategy class `name`; an unknown name raises ValueError."""
    _load_builtins()
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return cls


def create_strategy(name: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """Build a registered strategy; an unknown name or bad params raise ValueError."""
    cls = strategy_class(name)
    try:
        parsed = cls.Params.model_validate(dict(params or {}))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in e.errors()
        )
        raise ValueError(f"bad params for strategy {name!r}: {problems}") from e
    return cls(parsed)


def _load_builtins() -> None:
    # Registration happens on import.
    import shared.kernel.ensemble  # noqa: F401
    import shared.kernel.ml  # noqa: F401
    import shared.kernel.rules  # noqa: F401
    import shared.kernel.strategies  # noqa: F401


def safe_decide(
    strategy: Strategy,
    ctx: Context,
    *,
    budget_seconds: float | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> Decision:
    """Run `strategy.decide(ctx)`; any exception, a wrong return type or an overrun of
    `budget_seconds` becomes a HOLD that says why. Never raises."""
    # Without a budget the clock is not read: a backtest calls this once per candle.
    started = timer() if budget_seconds is not None else 0.0
    decision: Any  # user code may return anything, whatever its annotation says
    try:
        decision = strategy.decide(ctx)
    except Exception as e:  # user code: every failure is a HOLD, never a crash
        return Decision.hold(
            f"strategy {strategy.name} failed: {type(e).__name__}: {e}", error=type(e).__name__
        )
    if not isinstance(decision, Decision):
        return Decision.hold(
            f"strategy {strategy.name} returned {type(decision).__name__}, not a Decision",
            error="bad_return",
        )
    if budget_seconds is not None:
        elapsed = timer() - started
        if elapsed > budget_seconds:
            return Decision.hold(
                f"strategy {strategy.name} took {elapsed:.3f}s, over its "
                f"{budget_seconds:g}s budget",
                error="timeout",
            )
    return decision
