"""The paper fill model: how paper trading and backtests fill orders on candles.

One model for both, so a backtest and a paper run of the same data make the same
trades. Everything is `Decimal`; a candle's float prices are read through their
shortest repr (`0.05123`, not the binary expansion).

When an order may fill
    Only on a candle that opens at or after `order.fills_from` (its `not_before`,
    else its creation time). A decision made on a candle's close therefore fills no
    earlier than the next candle: the next price after the decision. An order
    whose `expires_at` has come fills on no candle opening at or after it.

Prices
    Market: the candle's open, slipped. Slippage is `slippage_bps` against you: a
    buy pays `price * (1 + bps / 10000)`, a sell gets `price * (1 - bps / 10000)`.

    Limit (and take-profit, which rests like a limit at its `stop_price`): a buy
    fills when the low touches the limit (`low <= limit`), a sell when the high
    does. If the candle already opens through the limit (a gap in your favour),
    the order took liquidity on arrival: it fills at the open, slipped, and never
    worse than its limit. Otherwise it fills at exactly the limit, no slippage.

    Stop: a sell stop (a long's stop-loss) triggers when the low touches the stop,
    a buy stop when the high does, and then executes as a market order: at the
    stop price slipped, or, if the candle opens through the stop (a gap against
    you), at the open slipped.

Fees
    `fee = price * quantity * rate` in the quote currency: the maker rate for a
    limit or take-profit resting in the book and filled at its price, the taker
    rate for everything that crosses the spread (market orders, triggered stops,
    limits marketable on arrival).

Fill time
    A fill at the open is stamped with the candle's open time. A fill inside the
    candle's range is stamped with its close time: the model cannot know when in
    the candle it happened, and the close is when a live paper account learns of it.
    Exits placed with `not_before` = the entry fill's time therefore see the rest of
    the entry's candle only when the entry filled at the open.

One-cancels-other (`simulate_oco`)
    When one candle crosses both a stop-loss and a take-profit of the same entry,
    an order the candle opens through fills first (at the open); otherwise the stop
    fills: the conservative reading, since the path inside a candle is unknown.

Out of scope
    Partial fills: an order fills its whole remaining quantity, whatever the
    candle's volume. Order book depth, latency inside a candle, and price
    precision (tick size) rounding are not modelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.kernel.orders import WORKING, Fill, Liquidity, Order, OrderSide, OrderType
from shared.market.candles import Candle

_BPS = Decimal(10_000)


class FillModelConfig(BaseModel):
    """Slippage and fee rates of the paper fill model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slippage_bps: Annotated[Decimal, Field(ge=0, le=1000)] = Field(
        default=Decimal(0), description="Slippage against the trader, in basis points."
    )
    taker_fee: Annotated[Decimal, Field(ge=0, le=Decimal("0.1"))] = Field(
        default=Decimal("0.001"),
        description="Fee rate for fills that take liquidity (0.001 = 0.1 %).",
    )
    maker_fee: Annotated[Decimal, Field(ge=Decimal("-0.01"), le=Decimal("0.1"))] = Field(
        default=Decimal("0.001"),
        description="Fee rate for resting limit fills; negative for a rebate.",
    )


def decimal_price(value: float) -> Decimal:
    """A candle's float price as the `Decimal` it was written as (its shortest repr)."""
    return Decimal(repr(value))


def slipped(reference: Decimal, side: OrderSide, config: FillModelConfig) -> Decimal:
    """`reference` moved `config.slippage_bps` against a trader on `side`."""
    if not config.slippage_bps:
        return reference
    factor = config.slippage_bps / _BPS
    return reference * (1 + factor if side is OrderSide.BUY else 1 - factor)


def simulate(order: Order, candle: Candle, config: FillModelConfig) -> Fill | None:
    """The fill `candle` gives `order` under the paper fill model, or None.

    The fill carries the order's whole remaining quantity. See the module docstring
    for the rules.

    Raises:
        ValueError: the candle is of another symbol, or the order cannot fill (it is
            not submitted, accepted or partially filled).
    """
    if candle.symbol != order.symbol:
        raise ValueError(
            f"candle of {candle.symbol} given for order {order.client_order_id} "
            f"on {order.symbol}; pass the order's own symbol's candles"
        )
    if order.status not in WORKING:
        raise ValueError(
            f"order {order.client_order_id} is {order.status}; only submitted, accepted "
            "or partially filled orders can fill"
        )
    start = order.not_before if order.not_before is not None else order.created_at
    if candle.open_time < start or (
        order.expires_at is not None and candle.open_time >= order.expires_at
    ):
        return None
    match = _match(order, candle, config)
    if match is None:
        return None
    fill_price, liquidity, at_open = match
    quantity = order.remaining
    rate = config.maker_fee if liquidity is Liquidity.MAKER else config.taker_fee
    return Fill(
        # Stable per order and candle: simulating the same candle again (a restart)
        # gives the same id, and the books ignore it.
        fill_id=f"{order.client_order_id}@{int(candle.open_time.timestamp())}",
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=quantity,
        price=fill_price,
        fee=fill_price * quantity * rate,
        at=candle.open_time if at_open else candle.close_time,
        liquidity=liquidity,
        leg=order.leg,
    )


def simulate_oco(orders: Sequence[Order], candle: Candle, config: FillModelConfig) -> Fill | None:
    """The one fill `candle` gives a one-cancels-other group (an entry's stop-loss and
    take-profit), or None. The caller cancels the others.

    An order the candle opens through comes first; then stops before limits and
    take-profits (when a candle crosses both, assume the loss came first); then the
    order listed first.
    """
    best: tuple[tuple[int, int, int], Fill] | None = None
    for index, order in enumerate(orders):
        fill = simulate(order, candle, config)
        if fill is None:
            continue
        rank = (
            0 if fill.at == candle.open_time else 1,
            0 if order.type is OrderType.STOP else 1,
            index,
        )
        if best is None or rank < best[0]:
            best = (rank, fill)
    return best[1] if best is not None else None


def _match(
    order: Order, candle: Candle, config: FillModelConfig
) -> tuple[Decimal, Liquidity, bool] | None:
    """(price, liquidity, filled at the open) for `order` on `candle`, or None."""
    kind = order.type
    if kind is OrderType.MARKET:
        return slipped(decimal_price(candle.open), order.side, config), Liquidity.TAKER, True
    buy = order.side is OrderSide.BUY
    stop = kind is OrderType.STOP
    level = order.limit_price if kind is OrderType.LIMIT else order.stop_price
    assert level is not None  # Order.__post_init__ guarantees it
    # A buy stop and a resting sell wait for the price to rise to `level`; a sell
    # stop and a resting buy for it to fall to it.
    rising = buy if stop else not buy
    # Most candles cross nothing: rule them out in floats first. Exact, because
    # rounding to a float is monotonic and each float is its own shortest repr.
    if rising:
        if max(candle.open, candle.high) < float(level):
            return None
    elif min(candle.open, candle.low) > float(level):
        return None
    open_ = decimal_price(candle.open)
    if (open_ >= level) if rising else (open_ <= level):
        taken = slipped(open_, order.side, config)
        if stop:
            return taken, Liquidity.TAKER, True
        # A resting order marketable on arrival: never worse than its price.
        return (min(taken, level) if buy else max(taken, level)), Liquidity.TAKER, True
    extreme = decimal_price(candle.high if rising else candle.low)
    if (extreme >= level) if rising else (extreme <= level):
        if stop:
            return slipped(level, order.side, config), Liquidity.TAKER, False
        return level, Liquidity.MAKER, False
    return None
