"""What the risk engine answers: the verdict, its stable reason codes, and the trail of
checks that led to it (persisted with the order intent and published)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from shared.events import Action
from shared.kernel.frozen import fast_init


class RiskCheck(StrEnum):
    """The checks, in the order the engine runs them."""

    KILL_SWITCH = "kill_switch"
    LIVE_MODE = "live_mode"
    CONFIDENCE = "confidence"
    DECISION_AGE = "decision_age"
    CANDLE_AGE = "candle_age"
    STOP_GEOMETRY = "stop_geometry"
    SIZING = "sizing"
    OPEN_POSITIONS = "open_positions"
    POSITIONS_PER_SYMBOL = "positions_per_symbol"
    TRADES_PER_DAY = "trades_per_day"
    TRADE_COOLDOWN = "trade_cooldown"
    LOSS_COOLDOWN = "loss_cooldown"
    DAILY_LOSS = "daily_loss"
    DAILY_LOSS_PCT = "daily_loss_pct"
    DRAWDOWN = "drawdown"
    STOPLOSS_GUARD = "stoploss_guard"
    LOW_PROFIT = "low_profit"
    EXPOSURE = "exposure"


class RiskReason(StrEnum):
    """Why an intent was rejected. The values are stable: they are stored, published
    and matched by clients; add new ones, never rename."""

    KILL_SWITCH = "kill_switch"
    LIVE_TRADING_NOT_CONFIRMED = "live_trading_not_confirmed"
    CONFIDENCE_TOO_LOW = "confidence_too_low"
    STALE_DECISION = "stale_decision"
    STALE_CANDLE = "stale_candle"
    STOP_LOSS_REQUIRED = "stop_loss_required"
    STOP_LOSS_WRONG_SIDE = "stop_loss_wrong_side"
    TAKE_PROFIT_WRONG_SIDE = "take_profit_wrong_side"
    STOP_LOSS_TOO_FAR = "stop_loss_too_far"
    NOTHING_TO_CLOSE = "nothing_to_close"
    INSUFFICIENT_CASH = "insufficient_cash"
    BELOW_MIN_AMOUNT = "below_min_amount"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    MAX_OPEN_POSITIONS = "max_open_positions"
    MAX_POSITIONS_PER_SYMBOL = "max_positions_per_symbol"
    MAX_TRADES_PER_DAY = "max_trades_per_day"
    COOLDOWN_AFTER_TRADE = "cooldown_after_trade"
    COOLDOWN_AFTER_LOSS = "cooldown_after_loss"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    DAILY_LOSS_LIMIT_PCT = "daily_loss_limit_pct"
    MAX_DRAWDOWN = "max_drawdown"
    STOPLOSS_GUARD = "stoploss_guard"
    LOW_PROFIT_SYMBOL = "low_profit_symbol"
    MAX_EXPOSURE = "max_exposure"
    # Never produced by the engine: for the shell, when a decision cannot even be
    # turned into a `TradeIntent` (the ValueError's message says why).
    INVALID_INTENT = "invalid_intent"


class CheckStatus(StrEnum):
    PASSED = "passed"
    SKIPPED = "skipped"  # the limit is off, or the check does not apply to exits
    REJECTED = "rejected"


@fast_init
@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome, with the numbers it compared."""

    check: RiskCheck
    status: CheckStatus
    details: Mapping[str, Any] = field(default_factory=dict)
    reason: RiskReason | None = None
    message: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The engine's answer for one intent.

    Attributes:
        accepted: True when the order may be placed.
        symbol: The intent's symbol.
        side: The intent's side.
        quantity: Accepted: the quantity to order, in base units, rounded down to the
            market's step/precision. Rejected: the sized quantity if sizing ran, else None.
        price: The entry rounded to the market's tick (quote currency), when sizing ran.
        notional: quantity x price in the account's currency, when sizing ran.
        reason: Rejected: the stable code of the check that refused; None if accepted.
        message: What happened, for people; a rejection says what to do about it.
        details: Rejected: the refusing check's numbers; accepted: the sizing's.
        trail: Every check run, in order: passed or skipped, and the one that refused.
    """

    accepted: bool
    symbol: str
    side: Action
    quantity: Decimal | None
    price: Decimal | None
    notional: Decimal | None
    reason: RiskReason | None
    message: str
    details: Mapping[str, Any]
    trail: tuple[CheckResult, ...]

    @property
    def checks_passed(self) -> tuple[RiskCheck, ...]:
        return tuple(r.check for r in self.trail if r.status is CheckStatus.PASSED)

    @classmethod
    def rejected(
        cls,
        *,
        symbol: str,
        side: Action,
        reason: RiskReason,
        message: str,
        details: Mapping[str, Any] | None = None,
    ) -> RiskVerdict:
        """A rejection made outside the engine (e.g. `RiskReason.INVALID_INTENT`)."""
        return cls(False, symbol, side, None, None, None, reason, message, details or {}, ())

    def to_json(self) -> dict[str, Any]:
        """The verdict as JSON-ready values (Decimals as strings, times in ISO 8601)."""
        return {
            "accepted": self.accepted,
            "symbol": self.symbol,
            "side": self.side.value,
            "quantity": jsonable(self.quantity),
            "price": jsonable(self.price),
            "notional": jsonable(self.notional),
            "reason": jsonable(self.reason),
            "message": self.message,
            "details": jsonable(self.details),
            "checks_passed": [c.value for c in self.checks_passed],
            "trail": [
                {
                    "check": r.check.value,
                    "status": r.status.value,
                    "details": jsonable(r.details),
                    **({"reason": r.reason.value, "message": r.message} if r.reason else {}),
                }
                for r in self.trail
            ],
        }


def jsonable(value: Any) -> Any:
    """Turn check details into JSON values: Decimal -> str, datetime -> ISO 8601,
    timedelta -> seconds, enums -> their value."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value
