"""The ccxt adapter beyond the conformance suite, through ccxt's real `binance` class.

The venue is `tests.fakes.binance.FakeBinance`, a local server speaking Binance's
signed spot REST API; the adapter is built by the factory as the service builds it
(`harness_ccxt.build_adapter`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import ccxt
import pytest

from execution.adapters.base import (
    AccountSpec,
    Credentials,
    OrderRequest,
    create_adapter,
)
from execution.adapters.ccxt_exchange import CcxtAdapter, order_status
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
from execution.adapters.retry import RetryPolicy
from shared.kernel.orders import Liquidity, OrderSide, OrderStatus, OrderType, client_order_id
from shared.kernel.risk import Mode
from tests.conftest import free_port
from tests.execution.adapters.harness_ccxt import (
    API_KEY,
    PRICE,
    QUANTITY,
    SECRET,
    CcxtHarness,
    build_adapter,
    credentials,
    open_harness,
)
from tests.fakes.binance import SpotMarket

SYMBOL = "ETH/BTC"
ORDER = "/api/v3/order"


@pytest.fixture
async def venue() -> AsyncIterator[CcxtHarness]:
    async with open_harness() as h:
        yield h


def new_id() -> str:
    return client_order_id(uuid.uuid4())


def market_order(side: OrderSide = OrderSide.BUY, quantity: Decimal = QUANTITY) -> OrderRequest:
    return OrderRequest(new_id(), SYMBOL, side, OrderType.MARKET, quantity)


def limit_order(price: Decimal, quantity: Decimal = QUANTITY) -> OrderRequest:
    return OrderRequest(
        new_id(), SYMBOL, OrderSide.BUY, OrderType.LIMIT, quantity, limit_price=price
    )


def adapter_of(h: CcxtHarness) -> CcxtAdapter:
    assert isinstance(h.adapter, CcxtAdapter)
    return h.adapter


def spec(**config: object) -> AccountSpec:
    return AccountSpec(
        name="t",
        exchange="binance",
        mode=Mode.LIVE,
        config=config,
        credentials=credentials(),
    )


def build(**config: object) -> CcxtAdapter:
    adapter = create_adapter(spec(**config), clock=lambda: datetime.now(UTC))
    assert isinstance(adapter, CcxtAdapter)
    return adapter


# ----------------------------------------------------------------- credentials


async def test_ccxt_bad_secret_fails_the_signature_check_without_showing_credentials(
    venue: CcxtHarness,
) -> None:
    wrong_secret = "a-wrong-secret-0123456789abcdef"
    adapter = await venue.adapter_with(Credentials({"api_key": API_KEY, "secret": wrong_secret}))

    with pytest.raises(AuthenticationError) as caught:
        await adapter.balances()

    (hit,) = [h for h in venue.binance.requests if h.path == "/api/v3/account"]
    assert hit.params["signature"]  # signed, and refused by the server's HMAC check
    text = f"{caught.value!s} {caught.value!r} {caught.value.__cause__!s}"
    assert "-1022" in text  # Binance's "Signature for this request is not valid."
    for secret in (API_KEY, SECRET, wrong_secret, hit.params["signature"]):
        assert secret not in text


async def test_ccxt_unknown_key_is_an_authentication_error(venue: CcxtHarness) -> None:
    adapter = await venue.adapter_with(Credentials({"api_key": "nobody", "secret": SECRET}))

    with pytest.raises(AuthenticationError, match="-2015"):
        await adapter.place_order(market_order())

    assert venue.binance.orders == []


def test_ccxt_missing_credentials_name_what_is_missing_not_values() -> None:
    only_key = AccountSpec(
        name="t",
        exchange="ccxt:binance",
        mode=Mode.LIVE,
        credentials=Credentials({"api_key": API_KEY}),
    )

    with pytest.raises(AdapterConfigError, match="secret") as caught:
        create_adapter(only_key, clock=lambda: datetime.now(UTC))

    assert API_KEY not in str(caught.value)


def test_ccxt_asks_for_the_credentials_the_exchange_needs() -> None:
    okx = AccountSpec(name="t", exchange="okx", mode=Mode.LIVE, credentials=credentials())

    with pytest.raises(AdapterConfigError, match="okx needs credentials password"):
        create_adapter(okx, clock=lambda: datetime.now(UTC))


def test_ccxt_bad_config_is_refused() -> None:
    with pytest.raises(AdapterConfigError, match="timeout_seconds"):
        build(timeout_seconds=0)
    with pytest.raises(AdapterConfigError, match="api_url"):
        build(api_url="127.0.0.1:8080")
    with pytest.raises(AdapterConfigError, match="options"):
        build(options=["spot"])


# ----------------------------------------------------------------- sandbox and URLs


async def test_ccxt_sandbox_without_api_url_uses_binance_testnet() -> None:
    sandbox, live = build(sandbox=True), build()
    try:
        assert sandbox.exchange.isSandboxModeEnabled
        assert sandbox.exchange.urls["api"]["public"] == "https://testnet.binance.vision/api/v3"
        assert sandbox.exchange.urls["api"]["private"] == "https://testnet.binance.vision/api/v3"
        assert live.exchange.urls["api"]["private"] == "https://api.binance.com/api/v3"
        assert sandbox.exchange.timeout == 10_000  # the default timeout_seconds
    finally:
        await sandbox.close()
        await live.close()


async def test_ccxt_sandbox_with_api_url_reaches_the_overridden_host(venue: CcxtHarness) -> None:
    adapter = adapter_of(venue)

    await adapter.balances()

    assert adapter.exchange.isSandboxModeEnabled
    assert all(
        url.startswith(venue.binance.url + "/") for url in adapter.exchange.urls["api"].values()
    )
    assert adapter.exchange.urls["api"]["private"] == f"{venue.binance.url}/api/v3"
    assert [h.path for h in venue.binance.requests] == [
        "/api/v3/exchangeInfo",
        "/api/v3/account",
    ]


def test_ccxt_api_url_keeps_each_endpoint_path_behind_a_prefix() -> None:
    adapter = build(api_url="https://proxy.internal/binance/")

    assert adapter.exchange.urls["api"]["sapi"] == "https://proxy.internal/binance/sapi/v1"
    assert adapter.exchange.urls["api"]["public"] == "https://proxy.internal/binance/api/v3"


async def test_ccxt_unreachable_host_is_unavailable() -> None:
    adapter = build(api_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
    adapter.retry_policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01)
    try:
        with pytest.raises(ExchangeUnavailable):
            await adapter.start()
    finally:
        await adapter.close()


# ----------------------------------------------------------------- market data


async def test_ccxt_market_rules_come_from_exchange_info() -> None:
    odd = SpotMarket(
        "ADABTC",
        "ADA",
        "BTC",
        step_size=Decimal("1"),
        min_qty=Decimal("1"),
        max_qty=Decimal("90000000"),
        tick_size=Decimal("0.00000001"),
        min_price=Decimal("0.00000001"),
        min_notional=Decimal("0.0001"),
    )
    async with open_harness(markets=(SpotMarket("ETHBTC", "ETH", "BTC"), odd)) as h:
        eth = await h.adapter.market_rules(SYMBOL)
        ada = await h.adapter.market_rules("ADA/BTC")

    assert (eth.amount_step, eth.price_tick) == (Decimal("0.0001"), Decimal("0.000001"))
    assert (eth.min_amount, eth.max_amount) == (Decimal("0.0001"), Decimal("100000"))
    assert eth.min_notional == Decimal("0.0001")
    assert eth.taker_fee == Decimal("0.001")
    assert eth.amount_precision is None and eth.price_precision is None  # TICK_SIZE mode
    assert (ada.amount_step, ada.price_tick) == (Decimal("1"), Decimal("0.00000001"))
    assert (ada.min_amount, ada.max_amount) == (Decimal("1"), Decimal("90000000"))


async def test_ccxt_market_rules_in_decimal_places_mode() -> None:
    # Some ccxt exchanges count decimals instead of giving a tick size; ccxt's own
    # set_markets loads such a market without a server.
    adapter = build()
    adapter.exchange.precisionMode = ccxt.DECIMAL_PLACES
    adapter.exchange.set_markets(
        [
            {
                "id": "XBTEUR",
                "symbol": "BTC/EUR",
                "base": "BTC",
                "quote": "EUR",
                "spot": True,
                "type": "spot",
                "taker": 0.0026,
                "precision": {"amount": 8, "price": 1},
                "limits": {"amount": {"min": 0.0001, "max": None}, "cost": {"min": 0.5}},
            }
        ]
    )
    try:
        rules = await adapter.market_rules("BTC/EUR")
    finally:
        await adapter.close()

    assert (rules.amount_precision, rules.price_precision) == (8, 1)
    assert rules.amount_step is None and rules.price_tick is None
    assert (rules.min_amount, rules.min_notional, rules.max_amount) == (
        Decimal("0.0001"),
        Decimal("0.5"),
        None,
    )
    assert rules.taker_fee == Decimal("0.0026")


async def test_ccxt_last_price_reads_the_ticker(venue: CcxtHarness) -> None:
    venue.binance.set_price(Decimal("0.061234"))

    assert await venue.adapter.last_price(SYMBOL) == Decimal("0.061234")
    assert venue.binance.hits("GET", "/api/v3/ticker/24hr") == 1


# ----------------------------------------------------------------- retries and timeouts


async def test_ccxt_rate_limited_placement_is_retried_and_places_once(venue: CcxtHarness) -> None:
    venue.binance.rate_limit_next(2, method="POST", path=ORDER)

    report = await venue.adapter.place_order(market_order())

    assert report.status is OrderStatus.FILLED
    assert venue.binance.hits("POST", ORDER) == 3  # two 429s, then the order
    assert len(venue.binance.orders) == 1


async def test_ccxt_rate_limit_carries_retry_after(venue: CcxtHarness) -> None:
    adapter = adapter_of(venue)
    adapter.retry_policy = RetryPolicy(attempts=1)
    venue.binance.rate_limit_next(1, retry_after=7)

    with pytest.raises(RateLimited, match="-1003") as caught:
        await adapter.balances()

    assert caught.value.retry_after == 7.0


async def test_ccxt_placement_timeout_is_outcome_unknown_then_found(venue: CcxtHarness) -> None:
    venue.binance.hang_next_order()
    request = market_order()

    with pytest.raises(OutcomeUnknown) as caught:
        await venue.adapter.place_order(request)

    assert venue.binance.hits("POST", ORDER) == 1  # never sent twice
    (posted,) = [h for h in venue.binance.requests if h.method == "POST"]
    assert posted.params["signature"] not in str(caught.value)
    assert "no answer within 1 s" in str(caught.value)
    report = await venue.adapter.fetch_order(SYMBOL, request.client_order_id)
    assert report.status is OrderStatus.FILLED
    assert report.filled_quantity == QUANTITY


async def test_ccxt_read_timeouts_are_retried(venue: CcxtHarness) -> None:
    venue.binance.hang_next("GET", "/api/v3/account")

    balances = await venue.adapter.balances()

    assert balances["BTC"].total == 1
    assert venue.binance.hits("GET", "/api/v3/account") == 2


async def test_ccxt_timeout_messages_show_no_signature(venue: CcxtHarness) -> None:
    adapter_of(venue).retry_policy = RetryPolicy(attempts=1)
    venue.binance.hang_next("GET", "/api/v3/account")

    with pytest.raises(OutcomeUnknown) as caught:
        await venue.adapter.balances()

    # ccxt put the signed URL in its message; the signature is scrubbed, cause included.
    (hit,) = venue.binance.requests[-1:]
    text = f"{caught.value} {caught.value.__cause__}"
    assert hit.params["signature"] not in text
    assert "signature=<redacted>" in text and "no answer within 1 s" in text


async def test_ccxt_failed_duplicate_check_places_nothing(venue: CcxtHarness) -> None:
    adapter_of(venue).retry_policy = RetryPolicy(attempts=1)
    venue.binance.hang_next("GET", ORDER)

    with pytest.raises(ExchangeUnavailable, match="none was placed"):
        await venue.adapter.place_order(market_order())

    assert venue.binance.hits("POST", ORDER) == 0


# ----------------------------------------------------------------- orders


async def test_ccxt_partial_fill_then_fill_keeps_fill_ids(venue: CcxtHarness) -> None:
    request = limit_order(Decimal("0.049"), quantity=Decimal("0.03"))
    placed = await venue.adapter.place_order(request)
    assert placed.status is OrderStatus.ACCEPTED and placed.fills == ()

    venue.binance.fill_partially(request.client_order_id, Decimal("0.01"))
    partial = await venue.adapter.fetch_order(SYMBOL, request.client_order_id)
    (working,) = await venue.adapter.open_orders()
    venue.binance.set_price(Decimal("0.0485"))
    venue.binance.fill_crossed()
    full = await venue.adapter.fetch_order(SYMBOL, request.client_order_id)

    assert partial.status is OrderStatus.PARTIALLY_FILLED
    assert partial.filled_quantity == Decimal("0.01")
    assert [f.quantity for f in partial.fills] == [Decimal("0.01")]
    assert working == partial
    assert full.status is OrderStatus.FILLED
    assert full.fills[0] == partial.fills[0]  # the same execution, the same id
    assert [f.quantity for f in full.fills] == [Decimal("0.01"), Decimal("0.02")]
    assert full.average_price == Decimal("0.049")
    assert all(f.liquidity is Liquidity.MAKER for f in full.fills)
    assert full.fee == sum(f.fee for f in full.fills) == Decimal("0.03") * Decimal("0.049") / 1000


async def test_ccxt_without_trade_listing_reports_totals_only(venue: CcxtHarness) -> None:
    # An exchange whose ccxt class cannot list an order's trades (has no
    # fetchOrderTrades): the report carries totals, and the service books them
    # with fill_from_totals.
    adapter = adapter_of(venue)
    adapter.exchange.has = {**adapter.exchange.has, "fetchOrderTrades": False}
    request = limit_order(Decimal("0.049"), quantity=Decimal("0.03"))
    await adapter.place_order(request)
    venue.binance.fill_partially(request.client_order_id, Decimal("0.01"))

    report = await adapter.fetch_order(SYMBOL, request.client_order_id)

    assert report.fills == ()
    assert report.status is OrderStatus.PARTIALLY_FILLED
    assert (report.filled_quantity, report.average_price) == (Decimal("0.01"), Decimal("0.049"))
    assert venue.binance.hits("GET", "/api/v3/myTrades") == 0


async def test_ccxt_cancel_after_a_partial_fill_keeps_the_fill(venue: CcxtHarness) -> None:
    request = limit_order(Decimal("0.049"), quantity=Decimal("0.03"))
    await venue.adapter.place_order(request)
    venue.binance.fill_partially(request.client_order_id, Decimal("0.01"))

    canceled = await venue.adapter.cancel_order(SYMBOL, request.client_order_id)

    assert canceled.status is OrderStatus.CANCELED
    assert canceled.client_order_id == request.client_order_id
    assert canceled.filled_quantity == Decimal("0.01")
    assert [f.quantity for f in canceled.fills] == [Decimal("0.01")]
    assert venue.binance.balance("BTC").locked == 0


async def test_ccxt_cancel_of_a_filled_order_returns_it(venue: CcxtHarness) -> None:
    placed = await venue.adapter.place_order(market_order())

    report = await venue.adapter.cancel_order(SYMBOL, placed.client_order_id)

    assert report.status is OrderStatus.FILLED
    with pytest.raises(OrderNotFound):
        await venue.adapter.cancel_order(SYMBOL, new_id())


async def test_ccxt_fee_in_base_is_converted_to_quote() -> None:
    async with open_harness(commission="received") as h:
        buy = await h.adapter.place_order(market_order())
        fetched = await h.adapter.fetch_order(SYMBOL, buy.client_order_id)
        sell = await h.adapter.place_order(market_order(OrderSide.SELL, Decimal("0.0099")))

    # Binance took 0.1 % of the ETH received; at 0.05 BTC/ETH that is 5e-7 BTC.
    (fill,) = buy.fills
    assert (fill.fee, fill.fee_currency) == (Decimal("0.00001") * PRICE, "BTC")
    assert fill.base_fee == Decimal("0.00001")  # the ETH the account paid and lacks
    assert buy.fee == fetched.fee == Decimal("0.0000005")
    assert fetched.fills == buy.fills
    # A sell pays in BTC, the asset received: no conversion (Binance rounds to 1e-8).
    assert sell.fee == Decimal("0.00000050")
    assert sell.fills[0].fee_currency == "BTC"
    assert sell.fills[0].base_fee == 0


async def test_ccxt_same_client_id_returns_the_existing_order(venue: CcxtHarness) -> None:
    resting = limit_order(Decimal("0.04"))
    first = await venue.adapter.place_order(resting)
    again = await venue.adapter.place_order(resting)
    canceled = await venue.adapter.cancel_order(SYMBOL, resting.client_order_id)
    after_cancel = await venue.adapter.place_order(resting)

    assert again.exchange_order_id == first.exchange_order_id
    assert after_cancel.status is OrderStatus.CANCELED
    assert after_cancel.exchange_order_id == canceled.exchange_order_id
    assert len(venue.binance.orders) == 1
    assert venue.binance.hits("POST", ORDER) == 1


async def test_ccxt_orders_are_sent_with_our_client_order_id(venue: CcxtHarness) -> None:
    request = limit_order(Decimal("0.04"))

    await venue.adapter.place_order(request)

    (posted,) = [h for h in venue.binance.requests if h.method == "POST"]
    assert posted.params["newClientOrderId"] == request.client_order_id
    assert posted.params["quantity"] == "0.01" and posted.params["price"] == "0.04"
    assert venue.binance.order(request.client_order_id).type == "LIMIT"


async def test_ccxt_refuses_what_it_cannot_place_before_sending(venue: CcxtHarness) -> None:
    assert not CcxtAdapter.capabilities.stop_orders, "not on every ccxt venue"
    async with open_harness(markets=(SpotMarket("ETHBTC", "ETH", "BTC", oco_allowed=False),)) as h:
        # A market without order lists: its stops are the service's to watch.
        assert not h.adapter.holds_exits(SYMBOL)
        stop = OrderRequest(
            new_id(), SYMBOL, OrderSide.SELL, OrderType.STOP, QUANTITY, stop_price=Decimal("0.04")
        )
        with pytest.raises(InvalidOrder, match="stop"):
            await h.adapter.place_order(stop)
        assert not [r for r in h.binance.requests if r.method == "POST"]
    with pytest.raises(InvalidOrder, match="grid"):
        await venue.adapter.place_order(market_order(quantity=Decimal("0.00015")))
    with pytest.raises(InvalidOrder, match="grid"):
        await venue.adapter.place_order(limit_order(Decimal("0.0400005")))
    with pytest.raises(UnknownSymbol):
        await venue.adapter.place_order(
            OrderRequest(new_id(), "NOPE/BTC", OrderSide.BUY, OrderType.MARKET, QUANTITY)
        )

    assert venue.binance.hits("POST", ORDER) == 0


async def test_ccxt_exchange_refusals_are_typed(venue: CcxtHarness) -> None:
    # 0.0001 ETH at 0.05 is 0.000005 BTC, under the NOTIONAL filter's 0.0001.
    with pytest.raises(InvalidOrder, match="NOTIONAL"):
        await venue.adapter.place_order(market_order(quantity=Decimal("0.0001")))
    with pytest.raises(InsufficientFunds, match="insufficient balance"):
        await venue.adapter.place_order(market_order(OrderSide.SELL))

    assert venue.binance.orders == []


async def test_ccxt_balances_and_positions(venue: CcxtHarness) -> None:
    await venue.adapter.place_order(market_order())
    await venue.adapter.place_order(limit_order(Decimal("0.04")))

    balances = await venue.adapter.balances()
    (position,) = await venue.adapter.positions([SYMBOL])

    cost = QUANTITY * PRICE * Decimal("1.001")
    reserved = QUANTITY * Decimal("0.04") * Decimal("1.001")
    assert balances["ETH"].free == balances["ETH"].total == QUANTITY
    assert balances["BTC"].total == 1 - cost
    assert balances["BTC"].free == 1 - cost - reserved
    assert position.quantity == QUANTITY


# ----------------------------------------------------------------- mappings


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("open", "0", OrderStatus.ACCEPTED),
        ("open", "0.4", OrderStatus.PARTIALLY_FILLED),
        ("canceling", "0", OrderStatus.ACCEPTED),
        ("closed", "1", OrderStatus.FILLED),
        ("closed", "0.4", OrderStatus.CANCELED),
        ("canceled", "0", OrderStatus.CANCELED),
        ("canceled", "0.4", OrderStatus.CANCELED),
        ("expired", "0", OrderStatus.EXPIRED),
        ("rejected", "0", OrderStatus.REJECTED),
        (None, "1", OrderStatus.FILLED),
        (None, "0", OrderStatus.ACCEPTED),
    ],
)
def test_ccxt_order_status_maps_to_ours(
    status: str | None, filled: str, expected: OrderStatus
) -> None:
    assert order_status(status, Decimal(filled), Decimal(1)) is expected


@pytest.mark.parametrize(
    ("error", "placing", "expected"),
    [
        (ccxt.RateLimitExceeded("binance 429"), True, RateLimited),
        (ccxt.DDoSProtection("binance 418"), False, RateLimited),
        (ccxt.OnMaintenance("binance System is under maintenance."), True, ExchangeUnavailable),
        (ccxt.RequestTimeout("binance POST url request timeout"), True, OutcomeUnknown),
        (ccxt.RequestTimeout("binance GET url request timeout"), False, OutcomeUnknown),
        (ccxt.ExchangeNotAvailable("binance 502 Bad Gateway"), True, OutcomeUnknown),
        (ccxt.ExchangeNotAvailable("binance 502 Bad Gateway"), False, ExchangeUnavailable),
        (ccxt.NetworkError("binance connection reset"), True, OutcomeUnknown),
        (ccxt.InvalidNonce('binance {"code":-1021}'), False, ExchangeRejected),
        (ccxt.InsufficientFunds("binance insufficient balance"), True, InsufficientFunds),
        (
            ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'),
            True,
            DuplicateOrder,
        ),
        (ccxt.DuplicateOrderId("okx clOrdId in use"), True, DuplicateOrder),
        (ccxt.InvalidOrder("binance Filter failure: LOT_SIZE"), True, InvalidOrder),
        (
            ccxt.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}'),
            False,
            OrderNotFound,
        ),
        (ccxt.AuthenticationError('binance {"code":-2015}'), False, AuthenticationError),
        (ccxt.PermissionDenied("binance Rest API trading is not enabled."), True, PermissionDenied),
        (ccxt.AccountSuspended("binance This action is disabled."), True, PermissionDenied),
        (ccxt.BadSymbol('binance {"code":-1121,"msg":"Invalid symbol."}'), False, UnknownSymbol),
        (ccxt.BadRequest("binance Filter failure: NOTIONAL"), True, InvalidOrder),
        (ccxt.BadRequest("binance bad parameter"), False, ExchangeRejected),
        (ccxt.BadResponse("binance answered HTML"), True, OutcomeUnknown),
        (ccxt.BadResponse("binance answered HTML"), False, ExchangeUnavailable),
        (ccxt.ExchangeError("binance something else"), True, ExchangeRejected),
        (KeyError("fills"), True, OutcomeUnknown),
        (KeyError("fills"), False, ExchangeRejected),
    ],
)
def test_ccxt_errors_translate_to_ours(
    error: Exception, placing: bool, expected: type[ExchangeError]
) -> None:
    adapter = build()

    translated = adapter.translate_error(error, placing=placing)

    assert type(translated) is expected
    assert translated.exchange == "binance"


def test_ccxt_error_messages_are_scrubbed() -> None:
    adapter = build()
    error = ccxt.RequestTimeout(
        f"binance GET https://api.binance.com/api/v3/account?timestamp=1&signature=abc123def "
        f"key {API_KEY} secret {SECRET}"
    )

    text = str(adapter.translate_error(error))

    assert "abc123def" not in text and API_KEY not in text and SECRET not in text
    assert "signature=<redacted>" in text


# ---------------------------------------------------------------- protective orders


def exit_leg(kind: OrderType, stop: str, quantity: Decimal = QUANTITY) -> OrderRequest:
    return OrderRequest(
        new_id(), SYMBOL, OrderSide.SELL, kind, quantity, stop_price=Decimal(stop), parent_id="p"
    )


async def bought(venue: CcxtHarness) -> None:
    await venue.adapter.place_order(market_order())


async def test_ccxt_a_lone_stop_is_a_stop_loss_limit_with_the_allowance() -> None:
    async with open_harness() as venue:
        await venue.adapter.close()
        venue.adapter = build_adapter(venue.binance.url, credentials(), stop_limit_allowance_bps=50)
        await venue.adapter.start()
        await bought(venue)
        stop = exit_leg(OrderType.STOP, "0.04")
        (report,) = await venue.adapter.place_exits(stop, None)
        assert report.status is OrderStatus.ACCEPTED and report.type is OrderType.STOP
        assert report.stop_price == Decimal("0.04") and report.limit_price == Decimal("0.0398")
        posted = [h for h in venue.binance.requests if h.method == "POST"][-1]
        assert posted.path == ORDER
        assert posted.params["type"] == "STOP_LOSS_LIMIT"
        assert posted.params["stopPrice"] == "0.04" and posted.params["price"] == "0.0398"
        assert posted.params["newClientOrderId"] == stop.client_order_id
        venue.binance.set_price(Decimal("0.0399"))
        venue.binance.fill_crossed()
        sold = await venue.adapter.fetch_order(SYMBOL, stop.client_order_id)
        assert sold.status is OrderStatus.FILLED and sold.average_price == Decimal("0.0399")


async def test_ccxt_a_lone_target_is_a_take_profit_limit(venue: CcxtHarness) -> None:
    await bought(venue)
    target = exit_leg(OrderType.TAKE_PROFIT, "0.06")
    (report,) = await venue.adapter.place_exits(None, target)
    assert report.type is OrderType.TAKE_PROFIT and report.stop_price == Decimal("0.06")
    posted = [h for h in venue.binance.requests if h.method == "POST"][-1]
    assert posted.params["type"] == "TAKE_PROFIT_LIMIT"
    assert posted.params["stopPrice"] == posted.params["price"] == "0.06"
    venue.binance.set_price(Decimal("0.061"))
    venue.binance.fill_crossed()
    sold = await venue.adapter.fetch_order(SYMBOL, target.client_order_id)
    assert sold.status is OrderStatus.FILLED and sold.filled_quantity == QUANTITY


async def test_ccxt_an_oco_on_the_wrong_side_of_the_price_is_refused(venue: CcxtHarness) -> None:
    await bought(venue)
    stop = exit_leg(OrderType.STOP, "0.051")  # above the price of 0.05: already crossed
    target = exit_leg(OrderType.TAKE_PROFIT, "0.06")
    with pytest.raises(InvalidOrder, match="relationship of the prices"):
        await venue.adapter.place_exits(stop, target)
    assert venue.binance.order_lists == []
    assert venue.binance.balance("ETH").locked == 0


async def test_ccxt_an_oco_needs_the_position(venue: CcxtHarness) -> None:
    with pytest.raises(InsufficientFunds):
        await venue.adapter.place_exits(
            exit_leg(OrderType.STOP, "0.04"), exit_leg(OrderType.TAKE_PROFIT, "0.06")
        )


async def test_ccxt_cancelling_one_oco_leg_cancels_both(venue: CcxtHarness) -> None:
    await bought(venue)
    stop, target = exit_leg(OrderType.STOP, "0.04"), exit_leg(OrderType.TAKE_PROFIT, "0.06")
    await venue.adapter.place_exits(stop, target)
    canceled = await venue.adapter.cancel_order(SYMBOL, target.client_order_id)
    assert canceled.status is OrderStatus.CANCELED
    other = await venue.adapter.cancel_order(SYMBOL, stop.client_order_id)
    assert other.status is OrderStatus.CANCELED
    assert venue.binance.balance("ETH").free == QUANTITY
    assert await venue.adapter.open_orders() == []


def test_ccxt_stop_limit_allowance_is_checked() -> None:
    with pytest.raises(AdapterConfigError, match="stop_limit_allowance_bps"):
        build_adapter("http://127.0.0.1:1", credentials(), stop_limit_allowance_bps=-5)
    with pytest.raises(AdapterConfigError, match="stop_limit_allowance_bps"):
        build_adapter("http://127.0.0.1:1", credentials(), stop_limit_allowance_bps="wide")
