"""The OANDA adapter against a local v20 server: what is OANDA's own, beyond the
conformance suite (hosts, symbols, errors, fees, margin, positions)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from execution.adapters.base import (
    AccountSpec,
    Credentials,
    OrderRequest,
    create_adapter,
)
from execution.adapters.errors import (
    AdapterConfigError,
    AuthenticationError,
    DuplicateOrder,
    ExchangeError,
    ExchangeRejected,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OutcomeUnknown,
    PermissionDenied,
    RateLimited,
    UnknownSymbol,
)
from execution.adapters.oanda import (
    LIVE_URL,
    PRACTICE_URL,
    OandaAdapter,
    parse_time,
    to_instrument,
    to_symbol,
    translate_error,
)
from shared.kernel.orders import OrderSide, OrderStatus, OrderType
from shared.kernel.risk import Mode
from tests.execution.adapters.harness_oanda import oanda_spec
from tests.fakes.oanda import FakeOanda


def _clock() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def venue() -> AsyncIterator[FakeOanda]:
    async with FakeOanda() as fake:
        yield fake


async def _adapter(venue: FakeOanda, token: str | None = None, **config: Any) -> OandaAdapter:
    credentials = Credentials({"api_token": token if token is not None else venue.token})
    adapter = create_adapter(oanda_spec(venue, credentials, **config), clock=_clock)
    assert isinstance(adapter, OandaAdapter)
    return adapter


@pytest.fixture
async def adapter(venue: FakeOanda) -> AsyncIterator[OandaAdapter]:
    adapter = await _adapter(venue)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.close()


def _market(cid: str, side: OrderSide, quantity: int, symbol: str = "EUR/USD") -> OrderRequest:
    return OrderRequest(cid, symbol, side, OrderType.MARKET, Decimal(quantity))


def _limit(cid: str, side: OrderSide, quantity: int, price: str) -> OrderRequest:
    return OrderRequest(
        cid, "EUR/USD", side, OrderType.LIMIT, Decimal(quantity), limit_price=Decimal(price)
    )


# --------------------------------------------------------------------------- no network


def test_symbols_map_to_instruments_and_back() -> None:
    assert to_instrument("EUR/USD") == "EUR_USD"
    assert to_instrument("xau/usd") == "XAU_USD"
    assert to_symbol("EUR_USD") == "EUR/USD"
    assert to_symbol("SPX500_USD") == "SPX500/USD"
    for bad in ("EURUSD", "EUR_USD", "EUR/USD/X", "/USD"):
        with pytest.raises(UnknownSymbol):
            to_instrument(bad)


@pytest.mark.parametrize(
    ("mode", "config", "expected"),
    [
        (Mode.PAPER, {"sandbox": True}, PRACTICE_URL),
        (Mode.PAPER, {}, PRACTICE_URL),
        (Mode.LIVE, {}, LIVE_URL),
        (Mode.LIVE, {"sandbox": False}, LIVE_URL),
        (Mode.LIVE, {"sandbox": True}, PRACTICE_URL),
        (Mode.LIVE, {"api_url": "http://127.0.0.1:9/"}, "http://127.0.0.1:9"),
    ],
)
async def test_oanda_host_follows_mode_sandbox_and_api_url(
    mode: Mode, config: dict[str, Any], expected: str
) -> None:
    spec = AccountSpec(
        name="t", exchange="oanda", mode=mode, config=config,
        credentials=Credentials({"api_token": "x"}),
    )  # fmt: skip
    adapter = OandaAdapter(spec, clock=_clock)
    try:
        assert adapter.base_url == expected
    finally:
        await adapter.close()


async def test_oanda_live_account_gets_the_oanda_adapter_on_the_live_host() -> None:
    spec = AccountSpec(
        name="t", exchange="oanda", mode=Mode.LIVE,
        credentials=Credentials({"api_token": "x", "account_id": "001-001-1-001"}),
    )  # fmt: skip
    adapter = create_adapter(spec, clock=_clock)
    try:
        assert isinstance(adapter, OandaAdapter)
        assert adapter.base_url == LIVE_URL
        assert adapter.account_id == "001-001-1-001"
        assert adapter.capabilities.positions and adapter.capabilities.sandbox
    finally:
        await adapter.close()


def test_oanda_without_token_is_a_config_error() -> None:
    spec = AccountSpec(name="t", exchange="oanda", mode=Mode.LIVE)
    with pytest.raises(AdapterConfigError, match="api_token"):
        OandaAdapter(spec, clock=_clock)


@pytest.mark.parametrize("timeout", [0, -1, "10", True])
def test_oanda_bad_timeout_is_a_config_error(timeout: object) -> None:
    spec = AccountSpec(
        name="t", exchange="oanda", mode=Mode.LIVE, config={"timeout_seconds": timeout},
        credentials=Credentials({"api_token": "x"}),
    )  # fmt: skip
    with pytest.raises(AdapterConfigError, match="timeout_seconds"):
        OandaAdapter(spec, clock=_clock)


def _answer(status: int, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (_answer(429, {"errorMessage": "Requests per second exceeded"}), RateLimited),
        (_answer(503, {"errorMessage": "Service unavailable"}), ExchangeUnavailable),
        (_answer(401, {"errorMessage": "Insufficient authorization"}), AuthenticationError),
        (_answer(403, {"errorMessage": "The provided request was forbidden."}), PermissionDenied),
        (
            _answer(404, {"errorCode": "ORDER_DOESNT_EXIST", "errorMessage": "no order"}),
            OrderNotFound,
        ),
        (
            _answer(400, {"errorMessage": "Invalid value specified for 'instruments'"}),
            UnknownSymbol,
        ),
        (
            _answer(
                400,
                {
                    "orderRejectTransaction": {"rejectReason": "CLIENT_ORDER_ID_ALREADY_EXISTS"},
                    "errorMessage": "already assigned",
                },
            ),
            DuplicateOrder,
        ),
        (
            _answer(400, {"errorCode": "INSUFFICIENT_MARGIN", "errorMessage": "margin"}),
            InsufficientFunds,
        ),
        (
            _answer(400, {"errorCode": "INSTRUMENT_NOT_TRADEABLE", "errorMessage": "no"}),
            PermissionDenied,
        ),
        (
            _answer(400, {"errorCode": "UNITS_MINIMUM_NOT_MET", "errorMessage": "min"}),
            InvalidOrder,
        ),
        (_answer(404, {"errorCode": "NO_SUCH_TRANSACTION", "errorMessage": "x"}), ExchangeRejected),
        (httpx.Response(502, text="<html>bad gateway</html>"), ExchangeUnavailable),
    ],
)
def test_translate_error_maps_oanda_answers(
    response: httpx.Response, expected: type[ExchangeError]
) -> None:
    error = translate_error(response, what="GET /v3/x")
    assert type(error) is expected
    assert str(error).startswith("oanda: GET /v3/x: HTTP")


def test_translate_error_reads_retry_after_and_scrubs_secrets() -> None:
    limited = translate_error(
        _answer(429, {"errorMessage": "slow down"}, **{"Retry-After": "0"}), what="GET /x"
    )
    assert isinstance(limited, RateLimited) and limited.retry_after == 0.0
    echoed = translate_error(
        _answer(401, {"errorMessage": "token s3cr3t-token is not valid"}),
        what="GET /x",
        secrets=["s3cr3t-token"],
    )
    assert "s3cr3t-token" not in str(echoed)
    assert "<redacted>" in str(echoed)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("refused"), ExchangeUnavailable),
        (httpx.ConnectTimeout("slow connect"), ExchangeUnavailable),
        (httpx.ReadTimeout("slow answer"), OutcomeUnknown),
        (httpx.RemoteProtocolError("dropped"), OutcomeUnknown),
    ],
)
def test_translate_error_maps_transport_failures(
    failure: httpx.HTTPError, expected: type[ExchangeError]
) -> None:
    error = translate_error(failure, what="POST /v3/accounts/1/orders")
    assert type(error) is expected
    assert type(failure).__name__ in str(error)


def test_parse_time_reads_nanoseconds_and_unix_seconds() -> None:
    at = parse_time("2024-05-06T07:08:09.123456789Z")
    assert at == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert parse_time("1714979289.5") == datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)
    assert parse_time(None) is None
    assert parse_time("yesterday") is None


# --------------------------------------------------------------------------- account


async def test_oanda_bad_token_raises_authentication_error_without_the_token(
    venue: FakeOanda,
) -> None:
    wrong = "wrong-token-9f8e7d6c5b4a"
    adapter = await _adapter(venue, token=wrong)
    try:
        with pytest.raises(AuthenticationError) as info:
            await adapter.start()
        with pytest.raises(AuthenticationError) as again:
            await adapter.balances()
    finally:
        await adapter.close()
    for error in (info.value, again.value):
        text = f"{error} {error!r} {error.args}"
        assert wrong not in text and venue.token not in text
        assert "api_token" in str(error)


async def test_oanda_start_uses_the_tokens_only_account(venue: FakeOanda) -> None:
    adapter = await _adapter(venue, account_id=None)
    try:
        await adapter.start()
        assert adapter.account_id == venue.account_id
        assert adapter.currency == "USD"
    finally:
        await adapter.close()


async def test_oanda_start_refuses_another_currency(venue: FakeOanda) -> None:
    adapter = await _adapter(venue, currency="EUR")
    try:
        with pytest.raises(AdapterConfigError, match="in USD"):
            await adapter.start()
    finally:
        await adapter.close()


async def test_oanda_account_of_another_user_is_permission_denied(venue: FakeOanda) -> None:
    adapter = await _adapter(venue, account_id="101-004-7654321-001")
    try:
        with pytest.raises(PermissionDenied):
            await adapter.start()
    finally:
        await adapter.close()


async def test_oanda_balances_are_margin_available_and_nav(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    before = (await adapter.balances())["USD"]
    assert before.free == before.total == Decimal(100_000)
    await adapter.place_order(_market("b1", OrderSide.BUY, 10_000))
    after = (await adapter.balances())["USD"]
    # 10 000 EUR at 1.10 with 2 % margin ties up 220 USD; the spread is a loss at once.
    assert after.total == Decimal("99998.0000")  # bought at the ask, valued at the bid
    assert after.free == after.total - Decimal("220.0000")


async def test_oanda_rate_limited_reads_are_retried_until_they_succeed(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    venue.rate_limit_next(2)
    hits = venue.hits("/summary")
    balances = await adapter.balances()
    assert balances["USD"].total == Decimal(100_000)
    assert venue.hits("/summary") == hits + 3


async def test_oanda_rate_limited_placement_is_retried_and_placed_once(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    venue.rate_limit_next(2)
    report = await adapter.place_order(_market("rl1", OrderSide.BUY, 1000))
    assert report.status is OrderStatus.FILLED
    assert sum(1 for o in venue.orders.values() if o.client_id == "rl1") == 1


async def test_oanda_rate_limit_beyond_the_retries_raises_rate_limited(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    venue.rate_limit_next(50)
    with pytest.raises(RateLimited):
        await adapter.last_price("EUR/USD")


# --------------------------------------------------------------------------- market data


async def test_oanda_market_rules_come_from_the_instrument(adapter: OandaAdapter) -> None:
    rules = await adapter.market_rules("EUR/USD")
    assert rules.symbol == "EUR/USD"
    assert rules.amount_step == Decimal(1) and rules.amount_precision == 0
    assert rules.price_precision == 5 and rules.price_tick == Decimal("0.00001")
    assert rules.min_amount == Decimal(1)
    assert rules.max_amount == Decimal(100_000_000)
    assert rules.taker_fee == 0
    assert (await adapter.market_rules("USD/JPY")).price_precision == 3


async def test_oanda_last_price_is_the_mid(venue: FakeOanda, adapter: OandaAdapter) -> None:
    assert await adapter.last_price("EUR/USD") == Decimal("1.10000")
    venue.set_price("EUR_USD", Decimal("1.08765"))
    assert await adapter.last_price("EUR/USD") == Decimal("1.08765")


async def test_oanda_unknown_symbol_raises_unknown_symbol(adapter: OandaAdapter) -> None:
    with pytest.raises(UnknownSymbol, match="GBP_CHF"):
        await adapter.market_rules("GBP/CHF")
    with pytest.raises(UnknownSymbol):
        await adapter.last_price("GBP/CHF")
    with pytest.raises(UnknownSymbol):
        await adapter.place_order(_market("u1", OrderSide.BUY, 1000, symbol="GBP/CHF"))


# --------------------------------------------------------------------------- orders


async def test_oanda_market_buy_fills_at_the_ask_with_the_transaction_as_fill(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    venue.commission = Decimal("2.5")
    report = await adapter.place_order(_market("m1", OrderSide.BUY, 1000))
    order = venue.order_by_client_id("m1")
    assert order is not None and order.filling_transaction_id is not None
    assert report.status is OrderStatus.FILLED
    assert report.exchange_order_id == order.id
    assert report.filled_quantity == Decimal(1000)
    assert report.average_price == Decimal("1.10010")
    assert report.fee == Decimal("2.5")
    (fill,) = report.fills
    assert fill.fill_id == order.filling_transaction_id
    assert (fill.side, fill.quantity, fill.price) == (
        OrderSide.BUY,
        Decimal(1000),
        Decimal("1.10010"),
    )
    assert fill.fee_currency == "USD" and fill.at.tzinfo is not None
    fetched = await adapter.fetch_order("EUR/USD", "m1")
    assert fetched.status is OrderStatus.FILLED
    assert fetched.fills == report.fills


async def test_oanda_fee_on_a_usd_base_pair_is_converted_to_the_quote(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    venue.commission = Decimal(1)  # USD, the account currency
    report = await adapter.place_order(_market("j1", OrderSide.SELL, 1000, symbol="USD/JPY"))
    (fill,) = report.fills
    assert fill.price == Decimal("149.990")  # the bid
    assert fill.fee == Decimal("149.990") and fill.fee_currency == "JPY"


async def test_oanda_insufficient_margin_raises_insufficient_funds(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    # 10 million EUR needs 220 000 USD of margin; the account has 100 000.
    with pytest.raises(InsufficientFunds, match="INSUFFICIENT_MARGIN"):
        await adapter.place_order(_market("big", OrderSide.BUY, 10_000_000))
    report = await adapter.fetch_order("EUR/USD", "big")
    assert report.status is OrderStatus.REJECTED
    assert report.reason == "INSUFFICIENT_MARGIN"
    assert (await adapter.positions(["EUR/USD"]))[0].quantity == 0


async def test_oanda_timed_out_placement_is_outcome_unknown_then_found_by_client_id(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    venue.hang_next_order()
    with pytest.raises(OutcomeUnknown) as info:
        await adapter.place_order(_market("t1", OrderSide.BUY, 1000))
    assert venue.token not in str(info.value)
    assert venue.hits("/orders", method="POST") == 1  # a placement is never resent
    report = await adapter.fetch_order("EUR/USD", "t1")
    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == Decimal(1000)


async def test_oanda_unknown_client_id_is_order_not_found(adapter: OandaAdapter) -> None:
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("EUR/USD", "never-placed")
    with pytest.raises(OrderNotFound):
        await adapter.cancel_order("EUR/USD", "never-placed")


async def test_oanda_client_id_of_a_filled_order_is_refused(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    await adapter.place_order(_market("d1", OrderSide.BUY, 1000))
    # OANDA itself would take it (the first order is no longer pending).
    with pytest.raises(DuplicateOrder, match="FILLED"):
        await adapter.place_order(_market("d1", OrderSide.BUY, 1000))
    assert sum(1 for o in venue.orders.values() if o.client_id == "d1") == 1
    assert (await adapter.positions(["EUR/USD"]))[0].quantity == Decimal(1000)


async def test_oanda_limit_rests_then_fills_at_its_price_when_crossed(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    placed = await adapter.place_order(_limit("l1", OrderSide.BUY, 1000, "1.09900"))
    assert placed.status is OrderStatus.ACCEPTED
    assert placed.limit_price == Decimal("1.09900")
    (resting,) = await adapter.open_orders("EUR/USD")
    assert (resting.client_order_id, resting.status) == ("l1", OrderStatus.ACCEPTED)
    assert resting.quantity == Decimal(1000) and resting.side is OrderSide.BUY
    assert await adapter.open_orders("USD/JPY") == []
    venue.set_price("EUR_USD", Decimal("1.09850"))
    assert venue.fill_crossed() == 1
    filled = await adapter.fetch_order("EUR/USD", "l1")
    assert filled.status is OrderStatus.FILLED
    assert filled.average_price == Decimal("1.09900")
    assert await adapter.open_orders() == []


async def test_oanda_limit_through_the_market_fills_at_once(adapter: OandaAdapter) -> None:
    report = await adapter.place_order(_limit("l2", OrderSide.SELL, 1000, "1.09000"))
    assert report.status is OrderStatus.FILLED
    assert report.average_price == Decimal("1.09990")  # the bid, better than the limit


async def test_oanda_cancel_returns_the_final_state(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    await adapter.place_order(_limit("c1", OrderSide.BUY, 1000, "1.09000"))
    cancelled = await adapter.cancel_order("EUR/USD", "c1")
    assert cancelled.status is OrderStatus.CANCELED
    assert cancelled.reason == "CLIENT_REQUEST"
    again = await adapter.cancel_order("EUR/USD", "c1")
    assert again.status is OrderStatus.CANCELED
    # A limit that filled before the cancel arrived reports its fill.
    await adapter.place_order(_limit("c2", OrderSide.BUY, 1000, "1.09000"))
    venue.set_price("EUR_USD", Decimal("1.08000"))
    venue.fill_crossed()
    late = await adapter.cancel_order("EUR/USD", "c2")
    assert late.status is OrderStatus.FILLED


async def test_oanda_pending_client_id_is_refused(adapter: OandaAdapter) -> None:
    await adapter.place_order(_limit("p1", OrderSide.BUY, 1000, "1.09000"))
    with pytest.raises(DuplicateOrder, match="PENDING"):
        await adapter.place_order(_limit("p1", OrderSide.BUY, 1000, "1.09000"))


async def test_oanda_invalid_orders_raise_invalid_order(adapter: OandaAdapter) -> None:
    with pytest.raises(InvalidOrder, match="UNITS_PRECISION_EXCEEDED"):
        await adapter.place_order(
            OrderRequest("i1", "EUR/USD", OrderSide.BUY, OrderType.MARKET, Decimal("10.5"))
        )
    with pytest.raises(InvalidOrder, match="PRICE_PRECISION_EXCEEDED"):
        await adapter.place_order(_limit("i2", OrderSide.BUY, 1000, "1.099001"))
    with pytest.raises(InvalidOrder, match="market and limit"):
        await adapter.place_order(
            OrderRequest(
                "i3",
                "EUR/USD",
                OrderSide.SELL,
                OrderType.STOP,
                Decimal(1000),
                stop_price=Decimal("1.05"),
            )  # fmt: skip
        )


# --------------------------------------------------------------------------- positions


async def test_oanda_short_position_is_negative(venue: FakeOanda, adapter: OandaAdapter) -> None:
    await adapter.place_order(_market("s1", OrderSide.SELL, 1000))
    await adapter.place_order(_market("s2", OrderSide.SELL, 1000))
    eur, jpy = await adapter.positions(["EUR/USD", "USD/JPY"])
    assert eur.symbol == "EUR/USD"
    assert eur.quantity == Decimal(-2000)
    assert eur.average_price == Decimal("1.09990")  # sold at the bid
    assert eur.unrealized_pnl == Decimal("-0.4000")  # valued at the ask
    assert jpy.quantity == 0 and jpy.average_price is None


async def test_oanda_positions_net_and_close_by_hand(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    await adapter.place_order(_market("n1", OrderSide.BUY, 3000))
    await adapter.place_order(_market("n2", OrderSide.SELL, 1000))
    (position,) = await adapter.positions(["EUR/USD"])
    assert position.quantity == Decimal(2000)
    assert position.average_price == Decimal("1.10010")
    venue.close_position("EUR_USD")
    (position,) = await adapter.positions(["EUR/USD"])
    assert position.quantity == 0
    # The orders themselves are unchanged by the closeout.
    assert (await adapter.fetch_order("EUR/USD", "n1")).status is OrderStatus.FILLED


# --------------------------------------------------------------------------- protective orders
# A trade's STOP_LOSS and TAKE_PROFIT: OANDA holds them, and closing the trade by any
# fill cancels what is left of them (LINKED_TRADE_CLOSED).


def _exits(
    prefix: str, quantity: int = 1000, stop: str = "1.09000", target: str = "1.11000"
) -> tuple[OrderRequest, OrderRequest]:
    def leg(suffix: str, kind: OrderType, price: str) -> OrderRequest:
        return OrderRequest(
            f"{prefix}-{suffix}",
            "EUR/USD",
            OrderSide.SELL,
            kind,
            Decimal(quantity),
            stop_price=Decimal(price),
            parent_id=prefix,
        )

    return leg("S", OrderType.STOP, stop), leg("T", OrderType.TAKE_PROFIT, target)


async def _raw(venue: FakeOanda, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request straight to the fake, as another OANDA client would send it."""
    async with httpx.AsyncClient(
        base_url=f"{venue.url}/v3/accounts/{venue.account_id}",
        headers={"Authorization": f"Bearer {venue.token}"},
    ) as client:
        return await client.request(method, path, **kw)


async def _protected(venue: FakeOanda, adapter: OandaAdapter, prefix: str) -> str:
    """A long trade of 1000 EUR/USD bought at 1.10010, its exits resting; its id."""
    await adapter.place_order(_market(prefix, OrderSide.BUY, 1000))
    (trade_id,) = venue.trades
    placed = await adapter.place_exits(*_exits(prefix))
    assert [r.status for r in placed] == [OrderStatus.ACCEPTED, OrderStatus.ACCEPTED]
    return trade_id


async def test_oanda_holds_a_trades_stop_loss_and_take_profit(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    assert adapter.holds_exits("EUR/USD") and adapter.holds_exits("USD/JPY")
    await adapter.place_order(_market("e1", OrderSide.BUY, 1000))
    (trade_id,) = venue.trades
    stop, target = _exits("e1")
    placed = await adapter.place_exits(stop, target)
    assert [(r.client_order_id, r.type, r.side, r.quantity, r.stop_price) for r in placed] == [
        ("e1-S", OrderType.STOP, OrderSide.SELL, Decimal(1000), Decimal("1.09000")),
        ("e1-T", OrderType.TAKE_PROFIT, OrderSide.SELL, Decimal(1000), Decimal("1.11000")),
    ]
    # On the wire: one order each, belonging to the trade, our id in clientExtensions.
    assert venue.hits("/orders", "POST") == 3
    for cid, kind, price in (("e1-S", "STOP_LOSS", "1.09000"), ("e1-T", "TAKE_PROFIT", "1.11000")):
        answer = await _raw(venue, "GET", f"/orders/@{cid}")
        order = answer.json()["order"]
        assert order["type"] == kind and order["tradeID"] == trade_id
        assert order["price"] == price and order["timeInForce"] == "GTC"
        assert order["state"] == "PENDING" and order["clientExtensions"] == {"id": cid}
        assert "instrument" not in order and "units" not in order
        created = venue.transactions[order["id"]]
        assert created["type"] == f"{kind}_ORDER" and created["tradeID"] == trade_id
    trade = (await _raw(venue, "GET", f"/trades/{trade_id}")).json()["trade"]
    assert trade["stopLossOrder"]["clientExtensions"]["id"] == "e1-S"
    assert trade["takeProfitOrder"]["clientExtensions"]["id"] == "e1-T"
    # Placed again (a retry after a crash): the same legs, nothing sent.
    again = await adapter.place_exits(stop, target)
    assert {r.client_order_id for r in again} == {"e1-S", "e1-T"}
    assert {r.status for r in again} == {OrderStatus.ACCEPTED}
    assert venue.hits("/orders", "POST") == 3
    resting = {r.client_order_id: r for r in await adapter.open_orders("EUR/USD")}
    assert set(resting) == {"e1-S", "e1-T"}
    assert resting["e1-S"].symbol == "EUR/USD" and resting["e1-S"].side is OrderSide.SELL
    assert resting["e1-T"].type is OrderType.TAKE_PROFIT
    assert resting["e1-T"].quantity == Decimal(1000)
    assert await adapter.open_orders("USD/JPY") == []


async def test_oanda_take_profit_fills_at_its_price_and_cancels_the_stop(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    trade_id = await _protected(venue, adapter, "t1")
    venue.set_price("EUR_USD", Decimal("1.10900"))  # bid 1.10890: not there yet
    assert venue.fill_crossed() == 0
    venue.set_price("EUR_USD", Decimal("1.11200"))  # bid 1.11190, through it
    assert venue.fill_crossed() == 1
    sold = await adapter.fetch_order("EUR/USD", "t1-T")
    assert sold.status is OrderStatus.FILLED
    assert (sold.side, sold.filled_quantity) == (OrderSide.SELL, Decimal(1000))
    (fill,) = sold.fills
    assert fill.price == Decimal("1.11000") and fill.quantity == Decimal(1000)
    assert fill.fill_id == venue.order_by_client_id("t1-T").filling_transaction_id  # type: ignore[union-attr]
    ended = await adapter.fetch_order("EUR/USD", "t1-S")
    assert ended.status is OrderStatus.CANCELED and ended.reason == "LINKED_TRADE_CLOSED"
    assert ended.filled_quantity == 0 and ended.quantity == Decimal(1000)
    assert (await adapter.positions(["EUR/USD"]))[0].quantity == 0
    # Bought at the ask 1.10010, sold at 1.11000: 9.90 USD.
    assert venue.balance == Decimal(100_000) + Decimal("9.9")
    assert await adapter.open_orders() == []
    order = (await _raw(venue, "GET", "/orders/@t1-T")).json()["order"]
    assert order["state"] == "FILLED" and order["tradeClosedIDs"] == [trade_id]
    assert order["fillingTransactionID"] and order["filledTime"]
    fill_tx = venue.transactions[order["fillingTransactionID"]]
    assert fill_tx["reason"] == "TAKE_PROFIT_ORDER"
    assert fill_tx["tradesClosed"][0]["tradeID"] == trade_id
    cancelled = (await _raw(venue, "GET", "/orders/@t1-S")).json()["order"]
    assert cancelled["state"] == "CANCELLED" and cancelled["cancelledTime"]
    assert venue.transactions[cancelled["cancellingTransactionID"]]["reason"] == (
        "LINKED_TRADE_CLOSED"
    )
    closed = (await _raw(venue, "GET", f"/trades/{trade_id}")).json()["trade"]
    assert closed["state"] == "CLOSED" and closed["currentUnits"] == "0"


async def test_oanda_stop_loss_gapped_through_fills_at_the_bid(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    await _protected(venue, adapter, "g1")
    venue.set_price("EUR_USD", Decimal("1.08000"))  # bid 1.07990, far below the stop
    assert venue.fill_crossed() == 1
    sold = await adapter.fetch_order("EUR/USD", "g1-S")
    assert sold.status is OrderStatus.FILLED and sold.average_price == Decimal("1.07990")
    assert (await adapter.fetch_order("EUR/USD", "g1-T")).status is OrderStatus.CANCELED
    assert venue.fill_crossed() == 0, "the take-profit went with the trade"
    assert venue.balance == Decimal(100_000) - Decimal("20.2")  # 1.07990 - 1.10010


@pytest.mark.parametrize("by", ["market sell", "close position"])
async def test_oanda_closing_the_trade_otherwise_cancels_its_exits(
    venue: FakeOanda, adapter: OandaAdapter, by: str
) -> None:
    await _protected(venue, adapter, "m1")
    if by == "market sell":
        await adapter.place_order(_market("m2", OrderSide.SELL, 1000))
    else:
        venue.close_position("EUR_USD")
    for cid in ("m1-S", "m1-T"):
        report = await adapter.fetch_order("EUR/USD", cid)
        assert report.status is OrderStatus.CANCELED and report.reason == "LINKED_TRADE_CLOSED"
        # Cancelling what OANDA already cancelled returns it as it is.
        assert (await adapter.cancel_order("EUR/USD", cid)).status is OrderStatus.CANCELED
    assert await adapter.open_orders() == []


async def test_oanda_exits_cancel_by_client_id(venue: FakeOanda, adapter: OandaAdapter) -> None:
    await _protected(venue, adapter, "x1")
    report = await adapter.cancel_order("EUR/USD", "x1-S")
    assert report.status is OrderStatus.CANCELED and report.reason == "CLIENT_REQUEST"
    assert [r.client_order_id for r in await adapter.open_orders()] == ["x1-T"]
    (trade,) = venue.trades.values()
    assert trade.current_units == 1000, "cancelling a stop leaves the trade"


async def test_oanda_exits_need_one_trade_of_their_quantity(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    with pytest.raises(InvalidOrder, match="0 open trades"):
        await adapter.place_exits(*_exits("w0"))
    await adapter.place_order(_market("w1", OrderSide.BUY, 1000))
    with pytest.raises(InvalidOrder, match="holds 1000 units, the exits would close 1500"):
        await adapter.place_exits(*_exits("w1", quantity=1500))
    with pytest.raises(InvalidOrder, match="not on EUR_USD's tick"):
        await adapter.place_exits(*_exits("w1", stop="1.090001"))
    await adapter.place_order(_market("w2", OrderSide.BUY, 500))
    with pytest.raises(InvalidOrder, match="2 open trades of EUR_USD"):
        await adapter.place_exits(*_exits("w2", quantity=1500))
    assert venue.hits("/orders", "POST") == 2, "only the two buys"
    for cid in ("w0-S", "w1-S", "w1-T", "w2-S", "w2-T"):
        with pytest.raises(OrderNotFound):
            await adapter.fetch_order("EUR/USD", cid)


async def test_oanda_second_exit_refused_leaves_the_first_standing_and_a_retry_completes(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    await adapter.place_order(_market("f1", OrderSide.BUY, 1000))
    (trade_id,) = venue.trades
    # Someone else's take-profit on the trade: OANDA holds one per trade.
    other = await _raw(
        venue,
        "POST",
        "/orders",
        json={"order": {"type": "TAKE_PROFIT", "tradeID": trade_id, "price": "1.12000"}},
    )
    assert other.status_code == 201
    with pytest.raises(InvalidOrder, match="TAKE_PROFIT_ORDER_ALREADY_EXISTS") as caught:
        await adapter.place_exits(*_exits("f1"))
    assert "f1-S placed before it stands" in str(caught.value)
    assert (await adapter.fetch_order("EUR/USD", "f1-S")).status is OrderStatus.ACCEPTED
    with pytest.raises(OrderNotFound):
        await adapter.fetch_order("EUR/USD", "f1-T")
    other_id = other.json()["orderCreateTransaction"]["id"]
    assert (await _raw(venue, "PUT", f"/orders/{other_id}/cancel")).status_code == 200
    placed = await adapter.place_exits(*_exits("f1"))
    assert [(r.client_order_id, r.status) for r in placed] == [
        ("f1-S", OrderStatus.ACCEPTED),
        ("f1-T", OrderStatus.ACCEPTED),
    ]
    assert sum(1 for o in venue.orders.values() if o.client_id == "f1-S") == 1


async def test_fake_oanda_validates_dependent_orders(
    venue: FakeOanda, adapter: OandaAdapter
) -> None:
    async def create(order: dict[str, Any]) -> tuple[int, str | None]:
        answer = await _raw(venue, "POST", "/orders", json={"order": order})
        return answer.status_code, answer.json().get("errorCode")

    assert await create({"type": "STOP_LOSS", "price": "1.09000"}) == (
        400,
        "TRADE_ID_UNSPECIFIED",
    )
    assert await create({"type": "STOP_LOSS", "tradeID": "999", "price": "1.09000"}) == (
        400,
        "TRADE_DOESNT_EXIST",
    )
    await adapter.place_order(_market("v1", OrderSide.BUY, 1000))
    (trade_id,) = venue.trades
    assert await create({"type": "STOP_LOSS", "tradeID": trade_id, "price": "1.090001"}) == (
        400,
        "PRICE_PRECISION_EXCEEDED",
    )
    ours = {"id": "v1-S"}
    sl = {"type": "STOP_LOSS", "tradeID": trade_id, "price": "1.09000", "clientExtensions": ours}
    assert (await create(sl))[0] == 201
    tp = {"type": "TAKE_PROFIT", "tradeID": trade_id, "price": "1.11", "clientExtensions": ours}
    assert await create(tp) == (400, "CLIENT_ORDER_ID_ALREADY_EXISTS")
    assert await create(sl | {"clientExtensions": {"id": "v1-S2"}}) == (
        400,
        "STOP_LOSS_ORDER_ALREADY_EXISTS",
    )
    pending = (await _raw(venue, "GET", "/pendingOrders")).json()["orders"]
    assert [(o["type"], o["tradeID"]) for o in pending] == [("STOP_LOSS", trade_id)]
