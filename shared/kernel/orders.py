"""Orders: the state machine every order follows, fills, and client order ids.

Pure values: an `Order` is frozen, and `transition` / `apply_fill` return the next
version of it, so the execution service, the paper adapter and the backtester move
orders through exactly the same table.

The lifecycle
-------------
``TRANSITIONS`` is the whole machine::

    from               may go to
    new                submitted, denied (the risk engine said no: never sent)
    submitted          accepted, rejected, ambiguous, partially_filled, filled,
                       canceled, expired
    ambiguous          accepted, rejected, partially_filled, filled, canceled, expired
    accepted           partially_filled, filled, canceled, expired
    partially_filled   partially_filled, filled, canceled, expired (fills kept)

An order whose acknowledgement timed out is `ambiguous`: it may or may not rest at
the exchange, so it is never resent; the sync loop finds it by its client order id
and moves it to what the exchange reports (`rejected` when the exchange never saw
it). `denied`, `rejected`, `filled`, `canceled` and `expired` are terminal.
Fills move an order to `partially_filled` / `filled` only through `apply_fill`, so
the filled quantity, average price and fees always agree with the status.

Client order ids
----------------
`client_order_id(decision_id, leg)` is a pure function of the decision id and the
leg, so a decision delivered twice (delivery is at-least-once) yields the same id:
the service finds the order it already stored under that id, and an exchange
refuses a second order with the id of an open one. The id is `ats` + a one-letter
leg tag + 24 hex digits of SHA-256: 28 characters of `[A-Za-z0-9]`. That fits the
strictest common venue rules: Binance and Bybit allow 36 characters, OKX 32
alphanumerics only, Gate.io 28 after its `t-` prefix. 96 bits of hash make a
collision between two decisions of one account practically impossible, and the
`ats` prefix tells our orders from ones placed by hand when reconciling.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Final
from uuid import UUID

from shared.kernel.frozen import fast_init


class OrderStatus(StrEnum):
    NEW = "new"
    DENIED = "denied"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    """How an order executes.

    `limit` rests at `limit_price`; `stop` becomes a market order once the price
    trades through `stop_price` (a stop-loss, or a breakout entry); `take_profit`
    rests like a limit order at `stop_price` (its trigger and its price).
    """

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    TAKE_PROFIT = "take_profit"


class OrderLeg(StrEnum):
    """Which part of a decision an order carries out."""

    ENTRY = "entry"
    EXIT = "exit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


_S = OrderStatus
TRANSITIONS: Final[MappingProxyType[OrderStatus, frozenset[OrderStatus]]] = MappingProxyType(
    {
        _S.NEW: frozenset({_S.SUBMITTED, _S.DENIED}),
        _S.SUBMITTED: frozenset(
            {
                _S.ACCEPTED,
                _S.REJECTED,
                _S.AMBIGUOUS,
                _S.PARTIALLY_FILLED,
                _S.FILLED,
                _S.CANCELED,
                _S.EXPIRED,
            }
        ),
        _S.AMBIGUOUS: frozenset(
            {_S.ACCEPTED, _S.REJECTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}
        ),
        _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
        # Another partial fill keeps the order partially filled.
        _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
        _S.DENIED: frozenset(),
        _S.REJECTED: frozenset(),
        _S.FILLED: frozenset(),
        _S.CANCELED: frozenset(),
        _S.EXPIRED: frozenset(),
    }
)
"""Every allowed move: `TRANSITIONS[current]` is the set of statuses it may take next."""

TERMINAL: Final = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
"""Statuses an order never leaves."""

WORKING: Final = frozenset({_S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED})
"""Statuses in which an order can still fill (an ambiguous one waits for the sync)."""

_FILL_STATUSES = frozenset({_S.PARTIALLY_FILLED, _S.FILLED})


class InvalidTransition(ValueError):
    """An order was asked to move where its state machine does not allow."""

    def __init__(self, order: Order, to: OrderStatus, hint: str = "") -> None:
        self.client_order_id = order.client_order_id
        self.from_status = order.status
        self.to_status = to
        allowed = ", ".join(sorted(TRANSITIONS[order.status])) or "none: it is terminal"
        super().__init__(
            f"order {order.client_order_id} cannot go from {order.status} to {to} "
            f"(allowed: {allowed}){hint}"
        )


class InvalidFill(ValueError):
    """A fill does not belong to the order or would fill more than it holds."""


def _aware(name: str, value: datetime) -> None:
    # UTC, the usual case, is told by identity: no call to utcoffset().
    if value.tzinfo is not UTC and value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} must be timezone-aware (UTC)")


@fast_init
@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of (part of) an order; `fee` is in the quote currency, the
    adapter converts fees charged in another asset at the fill price.

    `fill_id` is unique per execution and stable when reported again, which is what
    lets orders and portfolios ignore a fill they have already booked.

    `withheld` (buys only) is the part of `quantity` the account did not get to keep:
    the fee an exchange takes from the coin bought (Binance without BNB), plus what
    is left of the rest below the market's amount grid, which no order can sell.
    The books hold `held_quantity`; `fee` counts the withheld coin at `price`, so
    the cash paid is still `quantity x price` plus any fee paid in the quote.
    """

    fill_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    at: datetime
    liquidity: Liquidity | None = None
    leg: OrderLeg | None = None
    withheld: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise InvalidFill(f"fill {self.fill_id} has quantity {self.quantity}; it must be > 0")
        if self.price <= 0:
            raise InvalidFill(f"fill {self.fill_id} has price {self.price}; it must be > 0")
        if self.withheld:
            if self.side is not OrderSide.BUY:
                raise InvalidFill(
                    f"fill {self.fill_id}: only a buy can have coin withheld "
                    f"({self.withheld}); a sell's fee is paid in the quote"
                )
            if not 0 < self.withheld < self.quantity:
                raise InvalidFill(
                    f"fill {self.fill_id}: withheld {self.withheld} must be between 0 and "
                    f"the quantity {self.quantity}"
                )
        _aware("fill time", self.at)

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price

    @property
    def held_quantity(self) -> Decimal:
        """What the account holds of a buy: `quantity` less the coin withheld."""
        # Exactly `quantity` when nothing is withheld: `q - 0` may change its exponent.
        return self.quantity - self.withheld if self.withheld else self.quantity


@fast_init
@dataclass(frozen=True, slots=True)
class Order:
    """An order and everything known about its execution so far.

    Prices: `limit_price` for `limit` orders; `stop_price` for `stop` and
    `take_profit` orders (the trigger). `fees` are in the quote currency.
    `not_before` is the earliest candle open time the paper fill model lets the
    order fill on (default `created_at`); a live service sets it to the close time
    of the candle the decision was made on, so paper trading fills on the same
    candle as a backtest. `parent_id` is the entry's client order id for the
    stop-loss and take-profit children of an entry.
    """

    client_order_id: str
    account: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    created_at: datetime
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    fees: Decimal = Decimal(0)
    updated_at: datetime | None = None
    leg: OrderLeg = OrderLeg.ENTRY
    decision_id: str | None = None
    correlation_id: str | None = None
    parent_id: str | None = None
    exchange_order_id: str | None = None
    reason: str | None = None
    not_before: datetime | None = None
    expires_at: datetime | None = None
    fill_ids: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"order {self.client_order_id}: quantity {self.quantity} must be > 0")
        needs_limit = self.type is OrderType.LIMIT
        needs_stop = self.type in (OrderType.STOP, OrderType.TAKE_PROFIT)
        if needs_limit != (self.limit_price is not None):
            raise ValueError(
                f"order {self.client_order_id}: a {self.type} order "
                f"{'needs' if needs_limit else 'takes no'} limit_price"
            )
        if needs_stop != (self.stop_price is not None):
            raise ValueError(
                f"order {self.client_order_id}: a {self.type} order "
                f"{'needs' if needs_stop else 'takes no'} stop_price"
            )
        for price in (self.limit_price, self.stop_price):
            if price is not None and price <= 0:
                raise ValueError(f"order {self.client_order_id}: price {price} must be > 0")
        _aware("created_at", self.created_at)
        if self.updated_at is None:
            object.__setattr__(self, "updated_at", self.created_at)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_working(self) -> bool:
        return self.status in WORKING

    @property
    def fills_from(self) -> datetime:
        """The earliest candle open time the paper fill model may fill this order on."""
        return self.not_before if self.not_before is not None else self.created_at

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    return new in TRANSITIONS[current]


def transition(
    order: Order,
    new_status: OrderStatus,
    *,
    at: datetime,
    reason: str | None = None,
    exchange_order_id: str | None = None,
) -> Order:
    """Move `order` to `new_status` and return the new version.

    Fills are recorded with `apply_fill`, which also sets `partially_filled` and
    `filled`; `transition` refuses those two so quantities cannot disagree with the
    status.

    Raises:
        InvalidTransition: the table does not allow the move.
    """
    if new_status in _FILL_STATUSES:
        raise InvalidTransition(order, new_status, "; record fills with apply_fill")
    if new_status not in TRANSITIONS[order.status]:
        raise InvalidTransition(order, new_status)
    _aware("transition time", at)
    return replace(
        order,
        status=new_status,
        updated_at=at,
        reason=reason if reason is not None else order.reason,
        exchange_order_id=exchange_order_id or order.exchange_order_id,
    )


def apply_fill(order: Order, fill: Fill) -> Order:
    """Book `fill` on `order`: filled quantity, volume-weighted average price, fees,
    and the status `partially_filled` or `filled`. A fill already booked (same
    `fill_id`) returns the order unchanged.

    Raises:
        InvalidFill: the fill is for another order, symbol or side, or more than
            the order's remaining quantity.
        InvalidTransition: the order's status does not allow a fill (it is new,
            denied, rejected or already closed).
    """
    if fill.fill_id in order.fill_ids:
        return order
    if (fill.client_order_id, fill.symbol, fill.side) != (
        order.client_order_id,
        order.symbol,
        order.side,
    ):
        raise InvalidFill(
            f"fill {fill.fill_id} ({fill.client_order_id} {fill.side} {fill.symbol}) does not "
            f"belong to order {order.client_order_id} ({order.side} {order.symbol})"
        )
    if fill.quantity > order.remaining:
        raise InvalidFill(
            f"fill {fill.fill_id} of {fill.quantity} exceeds the {order.remaining} that "
            f"order {order.client_order_id} has left; check the exchange's report"
        )
    filled = order.filled_quantity + fill.quantity
    status = OrderStatus.FILLED if filled == order.quantity else OrderStatus.PARTIALLY_FILLED
    if status not in TRANSITIONS[order.status]:
        raise InvalidTransition(order, status)
    previous_value = order.filled_quantity * (order.average_fill_price or Decimal(0))
    return replace(
        order,
        status=status,
        filled_quantity=filled,
        average_fill_price=(
            fill.price
            if order.filled_quantity == 0
            else (previous_value + fill.quantity * fill.price) / filled
        ),
        fees=order.fees + fill.fee,
        updated_at=max(fill.at, order.updated_at or fill.at),
        fill_ids=order.fill_ids | {fill.fill_id},
    )


def fill_from_totals(
    order: Order,
    *,
    filled_quantity: Decimal,
    average_price: Decimal,
    fees: Decimal,
    at: datetime,
    fill_id: str,
) -> Fill | None:
    """The fill that takes `order` to the cumulative totals an exchange reports
    (filled quantity, average price, total fees); None when nothing new was filled.

    For adapters that report an order's totals rather than its individual trades.

    Raises:
        InvalidFill: the report shows less filled than already booked.
    """
    increment = filled_quantity - order.filled_quantity
    if increment < 0:
        raise InvalidFill(
            f"order {order.client_order_id}: the exchange reports {filled_quantity} filled, "
            f"less than the {order.filled_quantity} already booked; reconcile the account"
        )
    if increment == 0:
        return None
    booked_value = order.filled_quantity * (order.average_fill_price or Decimal(0))
    return Fill(
        fill_id=fill_id,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=increment,
        price=(filled_quantity * average_price - booked_value) / increment,
        fee=fees - order.fees,
        at=at,
        leg=order.leg,
    )


# ----------------------------------------------------------------- client order ids

CLIENT_ORDER_ID_PREFIX: Final = "ats"
CLIENT_ORDER_ID_LENGTH: Final = 28
"""Length of every id `client_order_id` makes; see the module docstring for why."""

_LEG_TAGS: Final = {
    OrderLeg.ENTRY: "E",
    OrderLeg.EXIT: "X",
    OrderLeg.STOP_LOSS: "S",
    OrderLeg.TAKE_PROFIT: "T",
}
_TAG_LEGS: Final = {tag: leg for leg, tag in _LEG_TAGS.items()}
_DIGEST_CHARS = CLIENT_ORDER_ID_LENGTH - len(CLIENT_ORDER_ID_PREFIX) - 1
_OURS = re.compile(rf"^{CLIENT_ORDER_ID_PREFIX}([EXST])[0-9a-f]{{{_DIGEST_CHARS}}}$")


def client_order_id(decision_id: str | UUID, leg: OrderLeg | str = OrderLeg.ENTRY) -> str:
    """The exchange client order id for `leg` of the decision `decision_id`.

    Deterministic: the same decision and leg always give the same id, so a decision
    delivered twice cannot make two orders. 28 characters of `[A-Za-z0-9]`.

    Raises:
        ValueError: `decision_id` is empty or `leg` is not an `OrderLeg`.
    """
    key = decision_id if type(decision_id) is str else str(decision_id)
    if not key:
        raise ValueError("client_order_id needs the decision id; it was empty")
    if type(leg) is not OrderLeg:
        try:
            leg = OrderLeg(leg)
        except ValueError:
            known = ", ".join(OrderLeg)
            raise ValueError(f"unknown order leg {leg!r}; use one of {known}") from None
    digest = hashlib.sha256(f"{key}\x1f{leg.value}".encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{CLIENT_ORDER_ID_PREFIX}{_LEG_TAGS[leg]}{digest}"


def leg_of(client_order_id: str) -> OrderLeg | None:
    """The leg encoded in one of our client order ids; None for any other id (an
    order placed by hand or by another system)."""
    match = _OURS.match(client_order_id)
    return _TAG_LEGS[match.group(1)] if match else None


def exit_orders(
    entry: Order,
    *,
    stop_loss: Decimal | None,
    take_profit: Decimal | None,
    at: datetime,
    not_before: datetime | None = None,
    quantity: Decimal | None = None,
) -> tuple[Order, ...]:
    """The stop-loss and take-profit children of a filled (or partly filled) entry:
    opposite side, the entry's filled quantity (or `quantity`, what the account
    holds of it when the exchange withheld part as its fee), status `new`,
    one-cancels-other (they share `parent_id`). `not_before` defaults to `at`: pass
    the entry fill's time so a stop crossed later in the entry's own candle counts.

    Raises:
        ValueError: the entry has nothing filled or no decision id to derive ids from.
    """
    if entry.filled_quantity <= 0:
        raise ValueError(
            f"order {entry.client_order_id} has nothing filled yet; "
            "place its stop-loss and take-profit after its first fill"
        )
    if entry.decision_id is None:
        raise ValueError(
            f"order {entry.client_order_id} has no decision_id to derive its exits' ids from"
        )
    children = []
    for leg, kind, price in (
        (OrderLeg.STOP_LOSS, OrderType.STOP, stop_loss),
        (OrderLeg.TAKE_PROFIT, OrderType.TAKE_PROFIT, take_profit),
    ):
        if price is None:
            continue
        children.append(
            Order(
                client_order_id=client_order_id(entry.decision_id, leg),
                account=entry.account,
                symbol=entry.symbol,
                side=entry.side.opposite,
                type=kind,
                quantity=entry.filled_quantity if quantity is None else quantity,
                created_at=at,
                stop_price=price,
                leg=leg,
                decision_id=entry.decision_id,
                correlation_id=entry.correlation_id,
                parent_id=entry.client_order_id,
                not_before=not_before if not_before is not None else at,
            )
        )
    return tuple(children)
