"""Risk limits, set per trade account and per trading group, and how they merge.

Every limit is optional: None (or False) turns its check off. Only sizing always has
a value: with no `sizing` configured, an entry is sized at `DEFAULT_SIZING`.

Both levels are stored as JSON in the account's and the group's config, e.g.::

    {"sizing": {"method": "risk_per_trade", "risk_pct": 1},
     "min_confidence": 0.6, "max_open_positions": 5, "max_daily_loss_pct": 3,
     "stoploss_guard": {"trade_limit": 3, "lookback_minutes": 240,
                        "stop_duration_minutes": 120}}

`merge_limits(account, group)` combines levels field by field so that the stricter
value wins (`_MERGE` says how for each field): the higher minimum, the lower
maximum, the longer cooldown, a switch that is on at any level. The sizing methods
of all levels are each computed and the smallest quantity wins. The protections
merge field by field (fewer trades to trip, longer look-back, longer pause, higher
required profit), which is at least as strict as each level's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_Pct = Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False)]
_Minutes = Annotated[float, Field(gt=0, le=366 * 24 * 60, allow_inf_nan=False)]


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FixedNotional(_Config):
    """Buy a fixed value: `notional` in the account's currency."""

    method: Literal["fixed_notional"] = "fixed_notional"
    notional: Decimal = Field(gt=0, allow_inf_nan=False)


class PercentOfEquity(_Config):
    """Buy `pct` percent of the account's equity."""

    method: Literal["percent_equity"] = "percent_equity"
    pct: _Pct


class RiskPerTrade(_Config):
    """Risk `risk_pct` percent of equity between entry and stop loss: quantity =
    equity x risk_pct / 100 / (entry - stop_loss). Needs the decision's stop loss."""

    method: Literal["risk_per_trade"] = "risk_per_trade"
    risk_pct: _Pct


Sizing = Annotated[FixedNotional | PercentOfEquity | RiskPerTrade, Field(discriminator="method")]

DEFAULT_SIZING: Sizing = PercentOfEquity(pct=Decimal(10))
"""How an entry is sized when no level configures `sizing`: 10 % of equity."""


class StoplossGuard(_Config):
    """Pause entries after `trade_limit` stop-outs within `lookback_minutes`.

    Like freqtrade's StoplossGuard: a stop-out that brings the count within the
    look-back window (ending at that stop-out) to `trade_limit` locks entries for
    `stop_duration_minutes` from that stop-out. With `only_per_symbol`, only the
    intent's symbol's stop-outs count and only that symbol is locked.
    """

    trade_limit: int = Field(ge=1, le=1000)
    lookback_minutes: _Minutes
    stop_duration_minutes: _Minutes
    only_per_symbol: bool = False

    @property
    def lookback(self) -> timedelta:
        return timedelta(minutes=self.lookback_minutes)

    @property
    def stop_duration(self) -> timedelta:
        return timedelta(minutes=self.stop_duration_minutes)

    def merge(self, other: StoplossGuard) -> StoplossGuard:
        return StoplossGuard(
            trade_limit=min(self.trade_limit, other.trade_limit),
            lookback_minutes=max(self.lookback_minutes, other.lookback_minutes),
            stop_duration_minutes=max(self.stop_duration_minutes, other.stop_duration_minutes),
            # Counting every symbol's stop-outs trips sooner and locks more.
            only_per_symbol=self.only_per_symbol and other.only_per_symbol,
        )


class LowProfitLock(_Config):
    """Lock a symbol whose recent trades earned too little.

    Like freqtrade's LowProfitPairs: when a trade of a symbol closes and the symbol's
    trades closed within `lookback_minutes` before it number at least `trade_limit`
    and their PnL sums to less than `required_profit` (account currency; 0 means
    "lost money"), entries on that symbol are locked for `stop_duration_minutes` from
    that close.
    """

    trade_limit: int = Field(ge=1, le=1000)
    lookback_minutes: _Minutes
    stop_duration_minutes: _Minutes
    required_profit: Decimal = Field(default=Decimal(0), allow_inf_nan=False)

    @property
    def lookback(self) -> timedelta:
        return timedelta(minutes=self.lookback_minutes)

    @property
    def stop_duration(self) -> timedelta:
        return timedelta(minutes=self.stop_duration_minutes)

    def merge(self, other: LowProfitLock) -> LowProfitLock:
        return LowProfitLock(
            trade_limit=min(self.trade_limit, other.trade_limit),
            lookback_minutes=max(self.lookback_minutes, other.lookback_minutes),
            stop_duration_minutes=max(self.stop_duration_minutes, other.stop_duration_minutes),
            required_profit=max(self.required_profit, other.required_profit),
        )


class RiskLimits(_Config):
    """One level's risk limits (a trade account's or a trading group's).

    Fields, with their defaults (None or False: the check is off):

    - `kill_switch` (False): refuse every order, exits included.
    - `sizing` (none: `DEFAULT_SIZING`): how to size an entry, one method or a list;
      the smallest quantity wins.
    - `min_confidence` (None): refuse entries whose confidence is below it (0..1).
    - `max_decision_age_seconds` (None): refuse entries decided longer ago than this.
    - `max_candle_age_candles` (None): refuse entries whose candle closed more than
      this many of its timeframe's candles ago (2: the decision missed two bars).
    - `require_stop_loss` (False): refuse entries without a stop loss.
    - `max_stop_loss_pct` (None): refuse entries whose stop is farther than this
      percentage below the entry.
    - `max_open_positions` (None): refuse an entry on a new symbol while this many
      symbols are held.
    - `max_positions_per_symbol` (None): refuse an entry on a symbol held in this many
      positions (1: never add to a position).
    - `max_trades_per_day` (None): refuse entries once this many were opened today.
    - `cooldown_after_trade_minutes` (None): refuse an entry on a symbol traded less
      than this long ago.
    - `cooldown_after_loss_minutes` (None): refuse entries for this long after a
      losing trade closed.
    - `max_daily_loss` (None): refuse entries once today's realized loss reaches this
      amount, in the account's currency (a positive number: 500 means -500).
    - `max_daily_loss_pct` (None): refuse entries once today's realized loss reaches
      this percentage of the equity at the start of the day.
    - `max_drawdown_pct` (None): refuse entries while equity is this percentage or more
      below its peak.
    - `stoploss_guard` (None): see `StoplossGuard`.
    - `low_profit_lock` (None): see `LowProfitLock`.
    - `max_exposure_pct` (None): refuse an entry that would take the value of open
      positions above this percentage of equity.
    """

    kill_switch: bool = False
    sizing: tuple[Sizing, ...] = ()
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    max_decision_age_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_candle_age_candles: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    require_stop_loss: bool = False
    max_stop_loss_pct: _Pct | None = None
    max_open_positions: int | None = Field(default=None, ge=0)
    max_positions_per_symbol: int | None = Field(default=None, ge=0)
    max_trades_per_day: int | None = Field(default=None, ge=0)
    cooldown_after_trade_minutes: _Minutes | None = None
    cooldown_after_loss_minutes: _Minutes | None = None
    max_daily_loss: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_daily_loss_pct: _Pct | None = None
    max_drawdown_pct: _Pct | None = None
    stoploss_guard: StoplossGuard | None = None
    low_profit_lock: LowProfitLock | None = None
    max_exposure_pct: Decimal | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)

    @field_validator("sizing", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, dict | BaseModel) else value

    @property
    def sizings(self) -> tuple[Sizing, ...]:
        """The sizing methods in force: the configured ones, or `DEFAULT_SIZING`."""
        return self.sizing or (DEFAULT_SIZING,)

    @property
    def needs_stop_loss(self) -> bool:
        """True when an entry must carry a stop loss (required, or sized from it)."""
        return self.require_stop_loss or any(isinstance(s, RiskPerTrade) for s in self.sizing)


# Merged values are checked again by `RiskLimits.model_validate`, hence `Any` here.
def _lower(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)


def _higher(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    return max(a, b)


def _either(a: bool, b: bool) -> bool:
    return a or b


def _both_sizings(a: tuple[Sizing, ...], b: tuple[Sizing, ...]) -> tuple[Sizing, ...]:
    return a + tuple(s for s in b if s not in a)


def _protection(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    return a.merge(b)


# How each field merges so that the stricter level wins; a test keeps it complete.
_MERGE: dict[str, Callable[[Any, Any], Any]] = {
    "kill_switch": _either,
    "sizing": _both_sizings,
    "min_confidence": _higher,
    "max_decision_age_seconds": _lower,
    "max_candle_age_candles": _lower,
    "require_stop_loss": _either,
    "max_stop_loss_pct": _lower,
    "max_open_positions": _lower,
    "max_positions_per_symbol": _lower,
    "max_trades_per_day": _lower,
    "cooldown_after_trade_minutes": _higher,
    "cooldown_after_loss_minutes": _higher,
    "max_daily_loss": _lower,
    "max_daily_loss_pct": _lower,
    "max_drawdown_pct": _lower,
    "stoploss_guard": _protection,
    "low_profit_lock": _protection,
    "max_exposure_pct": _lower,
}


def merge_limits(*levels: RiskLimits | None) -> RiskLimits:
    """Merge the limits of several levels (a trade account's, a trading group's, an
    operator's override) so that, field by field, the stricter value wins.

    None levels are ignored; no levels at all give the defaults.
    """
    defaults = RiskLimits()
    merged: dict[str, Any] = {name: getattr(defaults, name) for name in _MERGE}
    for level in levels:
        if level is None:
            continue
        for name, combine in _MERGE.items():
            merged[name] = combine(merged[name], getattr(level, name))
    return RiskLimits.model_validate(merged)
