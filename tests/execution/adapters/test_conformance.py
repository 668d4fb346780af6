"""What every exchange adapter must do, checked against each venue's stand-in.

The harnesses (`harness_<venue>.py`) give each adapter a real counterpart: a local
server speaking the exchange's protocol, or pushed candles for paper. A venue that
cannot fail in some way (paper trades in-process: nothing to rate limit or lose on
the wire) skips that test with the reason.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from execution.adapters.base import Credentials, OrderReport, OrderRequest
from execution.adapters.errors import (
    AuthenticationError,
    DuplicateOrder,
    InsufficientFunds,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    UnknownSymbol,
)
from shared.kernel.orders import OrderLeg, OrderSide, OrderStatus, OrderType, client_order_id
from shared.kernel.risk.sizing import round_price
from tests.execution.adapters.harness import Harness


def new_id(leg: OrderLeg = OrderLeg.ENTRY) -> str:
    return client_order_id(uuid.uuid4(), leg)


def market(
    h: Harness, side: OrderSide, quantity: Decimal | None = None, **kw: object
) -> OrderRequest:
    return OrderRequest(
        client_order_id=str(kw.get("cid") or new_id()),
        symbol=h.symbol,
        side=side,
        type=OrderType.MARKET,
        quantity=quantity if quantity is not None else h.quantity,
    )


async def position(h: Harness) -> Decimal:
    (report,) = await h.adapter.positions([h.symbol])
    return report.quantity


def needs_network(h: Harness) -> None:
    if not getattr(h, "networked", True):
        pytest.skip(f"{h.name} trades in-process: no request goes over a wire")


async def filled(h: Harness, report: OrderReport) -> OrderReport:
    await h.settle()
    return await h.adapter.fetch_order(h.symbol, report.client_order_id)


async def test_market_rules_and_price(harness: Harness) -> None:
    rules = await harness.adapter.market_rules(harness.symbol)
    assert rules.symbol == harness.symbol
    assert rules.min_amount is None or rules.min_amount <= harness.quantity
    price = await harness.adapter.last_price(harness.symbol)
    assert abs(price - harness.price) / harness.price < Decimal("0.01")
    with pytest.raises(UnknownSymbol):
        await harness.adapter.market_rules("NOPE/NOTHING")


async def test_market_buy_fills_and_is_found_by_client_id(harness: Harness) -> None:
    before = await position(harness)
    placed = await harness.adapter.place_order(market(harness, OrderSide.BUY))
    assert placed.status in {OrderStatus.ACCEPTED, OrderStatus.FILLED}
    report = await filled(harness, placed)
    assert report.status is OrderStatus.FILLED
    assert report.client_order_id == placed.client_order_id
    assert report.filled_quantity == harness.quantity
    assert sum(f.quantity for f in report.fills) == harness.quantity
    assert len({f.fill_id for f in report.fills}) == len(report.fills)
    assert report.average_price is not None
    assert abs(report.average_price - harness.price) / harness.price < Decimal("0.01")
    assert report.fee >= 0
    assert await position(harness) == before + harness.quantity


async def test_a_client_order_id_makes_one_order(harness: Harness) -> None:
    before = await position(harness)
    request = market(harness, OrderSide.BUY)
    first = await filled(harness, await harness.adapter.place_order(request))
    try:
        again = await harness.adapter.place_order(request)
    except DuplicateOrder:
        pass
    else:
        assert again.client_order_id == first.client_order_id
    await harness.settle()
    assert await position(harness) == before + harness.quantity


async def test_limit_order_rests_then_cancels(harness: Harness) -> None:
    rules = await harness.adapter.market_rules(harness.symbol)
    limit = round_price(harness.price * Decimal("0.8"), rules)
    request = OrderRequest(
        new_id(),
        harness.symbol,
        OrderSide.BUY,
        OrderType.LIMIT,
        harness.quantity,
        limit_price=limit,
    )
    placed = await harness.adapter.place_order(request)
    await harness.settle()
    resting = await harness.adapter.fetch_order(harness.symbol, request.client_order_id)
    assert placed.status is OrderStatus.ACCEPTED and resting.status is OrderStatus.ACCEPTED
    assert request.client_order_id in {
        o.client_order_id for o in await harness.adapter.open_orders()
    }
    canceled = await harness.adapter.cancel_order(harness.symbol, request.client_order_id)
    assert canceled.status is OrderStatus.CANCELED
    assert request.client_order_id not in {
        o.client_order_id for o in await harness.adapter.open_orders(harness.symbol)
    }
    final = await harness.adapter.fetch_order(harness.symbol, request.client_order_id)
    assert final.status is OrderStatus.CANCELED and final.filled_quantity == 0


async def test_limit_order_fills_when_the_price_crosses_it(harness: Harness) -> None:
    rules = await harness.adapter.market_rules(harness.symbol)
    limit = round_price(harness.price * Decimal("0.95"), rules)
    request = OrderRequest(
        new_id(),
        harness.symbol,
        OrderSide.BUY,
        OrderType.LIMIT,
        harness.quantity,
        limit_price=limit,
    )
    await harness.adapter.place_order(request)
    await harness.move_price(round_price(harness.price * Decimal("0.94"), rules))
    await harness.settle()
    report = await harness.adapter.fetch_order(harness.symbol, request.client_order_id)
    assert report.status is OrderStatus.FILLED
    assert report.average_price is not None and report.average_price <= limit


async def test_unknown_order_is_not_found(harness: Harness) -> None:
    with pytest.raises(OrderNotFound):
        await harness.adapter.fetch_order(harness.symbol, new_id())


async def test_insufficient_funds_is_typed(harness: Harness) -> None:
    with pytest.raises(InsufficientFunds):
        await harness.adapter.place_order(
            market(harness, OrderSide.BUY, harness.quantity * 1_000_000)
        )


async def test_sell_closes_the_position(harness: Harness) -> None:
    before = await position(harness)
    await filled(harness, await harness.adapter.place_order(market(harness, OrderSide.BUY)))
    report = await filled(
        harness, await harness.adapter.place_order(market(harness, OrderSide.SELL))
    )
    assert report.status is OrderStatus.FILLED
    assert await position(harness) == before


async def test_a_position_closed_by_hand_shows(harness: Harness) -> None:
    await filled(harness, await harness.adapter.place_order(market(harness, OrderSide.BUY)))
    assert await position(harness) > 0
    await harness.close_position_by_hand(harness.symbol)
    assert await position(harness) == 0


async def test_rate_limits_are_retried_then_typed(harness: Harness) -> None:
    needs_network(harness)
    await harness.rate_limit_next(2)
    assert await harness.adapter.last_price(harness.symbol) > 0
    await harness.rate_limit_next(100)
    with pytest.raises(RateLimited):
        await harness.adapter.last_price(harness.symbol)


async def test_a_lost_answer_is_outcome_unknown_and_the_order_is_found(harness: Harness) -> None:
    needs_network(harness)
    await harness.hang_next_order()
    request = market(harness, OrderSide.BUY)
    with pytest.raises(OutcomeUnknown):
        await harness.adapter.place_order(request)
    await harness.settle()
    report = await harness.adapter.fetch_order(harness.symbol, request.client_order_id)
    assert report.status is OrderStatus.FILLED


async def test_bad_credentials_are_typed_and_never_shown(harness: Harness) -> None:
    needs_network(harness)
    wrong = Credentials(
        {
            k: f"wrong-{v}-secret"
            for k, v in {"api_key": "k", "secret": "s", "api_token": "t"}.items()
        }
    )

    async def use_them() -> None:
        # A venue may refuse the credentials when the adapter starts or on first use.
        adapter = await harness.adapter_with(wrong)
        await adapter.balances()

    with pytest.raises(AuthenticationError) as caught:
        await use_them()
    text = f"{caught.value!s} {caught.value!r}"
    for secret in (*harness.secrets(), *wrong.values()):
        assert secret not in text


async def test_a_protective_pair_sells_the_position_once(harness: Harness) -> None:
    """Where the venue holds exits, `place_exits` places a stop-loss and a take-profit
    that cancel each other: the stop sells the position once, the target ends."""
    if not harness.adapter.holds_exits(harness.symbol):
        pytest.skip(f"{harness.name} holds no exits there: the service watches them")
    before = await position(harness)
    entry = await filled(harness, await harness.adapter.place_order(market(harness, OrderSide.BUY)))
    rules = await harness.adapter.market_rules(harness.symbol)
    decision = uuid.uuid4()

    def leg(leg: OrderLeg, kind: OrderType, factor: str) -> OrderRequest:
        return OrderRequest(
            client_order_id(decision, leg),
            harness.symbol,
            OrderSide.SELL,
            kind,
            entry.filled_quantity,
            stop_price=round_price(harness.price * Decimal(factor), rules),
            parent_id=entry.client_order_id,
        )

    stop = leg(OrderLeg.STOP_LOSS, OrderType.STOP, "0.96")
    target = leg(OrderLeg.TAKE_PROFIT, OrderType.TAKE_PROFIT, "1.1")
    ids = {stop.client_order_id, target.client_order_id}
    placed = await harness.adapter.place_exits(stop, target)
    assert {r.client_order_id for r in placed} == ids
    assert {r.status for r in placed} == {OrderStatus.ACCEPTED}
    again = await harness.adapter.place_exits(stop, target)
    assert {r.client_order_id for r in again} == ids, "placed again: the same pair"
    assert ids <= {o.client_order_id for o in await harness.adapter.open_orders(harness.symbol)}
    # Through the stop, within a stop-limit's allowance of 1 % below it.
    await harness.move_price(round_price(harness.price * Decimal("0.955"), rules))
    await harness.settle()
    sold = await harness.adapter.fetch_order(harness.symbol, stop.client_order_id)
    assert sold.status is OrderStatus.FILLED
    assert sold.filled_quantity == entry.filled_quantity
    ended = await harness.adapter.fetch_order(harness.symbol, target.client_order_id)
    assert ended.status in {OrderStatus.CANCELED, OrderStatus.EXPIRED}
    assert ended.filled_quantity == 0
    assert await position(harness) == before
    assert not ids & {o.client_order_id for o in await harness.adapter.open_orders()}
