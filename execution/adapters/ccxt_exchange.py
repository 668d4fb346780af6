"""The generic adapter: any exchange ccxt supports, through ccxt's async API.

A trade account whose `exchange` is a ccxt id (`binance`, or `ccxt:binance`) trades
through `CcxtAdapter`. Config keys (the account's `config`):

- `sandbox` (bool): trade on the exchange's sandbox / testnet (ccxt
  `set_sandbox_mode(True)`); refused for an exchange ccxt knows no sandbox of.
- `api_url` (str, optional): send every REST request to this host instead of the
  exchange's own: each ccxt API base URL keeps its path and gets this scheme, host
  and port (`https://api.binance.com/api/v3` becomes `http://127.0.0.1:8080/api/v3`;
  a path in `api_url` is put in front: `http://proxy/binance` gives
  `http://proxy/binance/api/v3`). The way to reach a forwarding proxy or a local test
  server. Applied after `sandbox`, so the sandbox's endpoints move too.
- `timeout_seconds` (number, default 10): one request's timeout.
- `options` (object): ccxt options, over the adapter's defaults (below).
- `rate_limit` (bool, default true): ccxt's client-side throttle, which spaces
  requests by their weight at the exchange (Binance: all open orders weigh 80, so
  the next request waits 0.8 s). Switch it off only towards a server that sets no
  limits of its own, such as a local test server.
- `stop_limit_allowance_bps` (number, default 100): how far beyond its stop price
  an exchange-held stop-loss may sell (below it for a sell), in basis points. A
  Binance stop-loss is a STOP_LOSS_LIMIT order: once the stop triggers it is a limit
  order at this price, so the allowance is what lets it fill when the price gaps
  through the stop (a wider one fills in deeper gaps, at a worse worst price).

Credentials: the ones ccxt says the exchange requires (`requiredCredentials`), named
`api_key`, `secret`, `password` (OKX, KuCoin: the API passphrase), `uid`, ...; a
missing one is an `AdapterConfigError` naming it, never showing a value.

Protective orders (`holds_exits`, `place_exits`): on a Binance-protocol venue (the
ccxt class has Binance's order-list endpoint) for a market whose exchange info says
`ocoAllowed`, a position's stop-loss and take-profit are one OCO order list (`POST
/api/v3/orderList/oco` through ccxt's `private_post_orderlist_oco`, signed like
every request): the take-profit a LIMIT_MAKER leg at its price, the stop-loss a
STOP_LOSS_LIMIT leg at its stop price with a limit `stop_limit_allowance_bps`
beyond it, both legs with our client order ids (`aboveClientOrderId`,
`belowClientOrderId`) and the list with `listClientOrderId` = the entry's id +
`-oco`. The exchange reserves the quantity once; when one leg fills, the other
expires; cancelling one leg cancels the list. A lone stop-loss or take-profit is a
STOP_LOSS_LIMIT or TAKE_PROFIT_LIMIT order (ccxt's `stopLossPrice` /
`takeProfitPrice`). Other venues and markets keep `stop` orders refused: the service
watches the price there.

Default ccxt options, chosen for spot trading with the fewest requests:
`warnOnFetchOpenOrdersWithoutSymbol: false` (open orders of all symbols are asked
for on purpose), and for Binance `fetchMarkets: {types: [spot]}` (no futures market
lists), `fetchCurrencies: false` and `fetchMargins: false` (no signed `sapi` calls
while loading markets: they are not needed to trade, and a key without wallet
permission would fail them).

How the adapter keeps the contract of `base.ExchangeAdapter`:

- Client order ids: sent as ccxt's unified `clientOrderId` param (Binance:
  `newClientOrderId`); orders are found and cancelled by it (ccxt's `clientOrderId`
  param to `fetch_order` / `cancel_order`, Binance: `origClientOrderId`). Binance
  refuses a client order id only while an order with it is *open*, so `place_order`
  first looks the id up and returns the order it finds instead of placing a second
  one: one read per placement buys "never twice" for filled and cancelled orders.
- Amounts and prices off the market's grid are refused (`InvalidOrder`) rather than
  silently truncated by ccxt: the risk engine rounds, the adapter does not.
- Fills are the exchange's trades (from the placement's answer, else
  `fetch_order_trades`), so a fill has the same id in every report. For an
  exchange that cannot list an order's trades the report has no fills, only the
  totals (filled quantity, average price, fee); the service then books the
  difference with `shared.kernel.orders.fill_from_totals`.
- Fees are converted to the quote currency: a fee charged in the base currency
  (Binance takes its commission from the asset received) is multiplied by the
  fill's price and also reported in base units (`FillReport.base_fee`: the coin
  the account does not hold, see `Fill.withheld`); one in a third currency (BNB)
  at that currency's last price against the quote when the exchange lists the
  pair, else it is reported in its own currency (`FillReport.fee_currency`).
- Errors: `translate_error` is the one place where ccxt's exceptions become ours.
  Reads are retried with `call_with_retry(idempotent=True)`; a placement with
  `idempotent=False`: a 429 is retried (the exchange did not act), a timeout is not
  (the order may exist: `OutcomeUnknown`, found later by its client order id).
  Messages are scrubbed of the credentials and of request signatures.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async

from execution.adapters.base import (
    ZERO,
    AccountSpec,
    Balance,
    Capabilities,
    Clock,
    ExchangeAdapter,
    FillReport,
    OrderReport,
    OrderRequest,
    check_exit_legs,
    register_adapter,
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
from execution.adapters.retry import RetryPolicy, call_with_retry
from shared.kernel.orders import Liquidity, OrderSide, OrderStatus, OrderType
from shared.kernel.risk import MarketRules
from shared.logging import get_logger, redact_text

_log = get_logger("execution.adapters.ccxt")

DEFAULT_TIMEOUT_SECONDS = 10.0

_DEFAULT_OPTIONS: dict[str, Any] = {"warnOnFetchOpenOrdersWithoutSymbol": False}
_EXCHANGE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    },
}

# ccxt's credential attribute -> the name on the trade account.
_CREDENTIALS = {
    "apiKey": "api_key",
    "secret": "secret",
    "password": "password",
    "uid": "uid",
    "login": "login",
    "twofa": "twofa",
    "privateKey": "private_key",
    "walletAddress": "wallet_address",
    "token": "token",
}

# Request signatures travel in ccxt's error messages with the URL; within the
# exchange's receive window a leaked one replays the request, so it is scrubbed too.
_SIGNATURE = re.compile(r"\b(signature|sign|sig)=[^&\s\"']+", re.IGNORECASE)
# ccxt raises InvalidOrder for Binance's -2010 "Duplicate order sent." (and its like
# elsewhere: "Duplicated clOrdId", "OrderLinkedID is duplicate").
_DUPLICATE = re.compile(r"duplicat", re.IGNORECASE)
# What ccxt's parsers raise when an answer does not have the expected shape.
_PARSE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError, InvalidOperation)

# ccxt classes -> ours, checked in this order (subclasses before their bases) after
# rate limits and duplicate ids, before the network errors that need context.
_TRANSLATIONS: tuple[
    tuple[type[Exception] | tuple[type[Exception], ...], type[ExchangeError]], ...
] = (
    (ccxt.OnMaintenance, ExchangeUnavailable),
    (ccxt.InvalidNonce, ExchangeRejected),  # a refused timestamp: the clock is off
    (ccxt.DuplicateOrderId, DuplicateOrder),
    (ccxt.OrderNotFound, OrderNotFound),
    (ccxt.InvalidOrder, InvalidOrder),
    (ccxt.InsufficientFunds, InsufficientFunds),
    ((ccxt.PermissionDenied, ccxt.AccountSuspended), PermissionDenied),
    (ccxt.AuthenticationError, AuthenticationError),
    (ccxt.BadSymbol, UnknownSymbol),
)

_ORDER_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT}
# Binance's conditional order types (ccxt reports them as `limit` / `market`).
_NATIVE_TYPES = {
    "STOP_LOSS_LIMIT": OrderType.STOP,
    "STOP_LOSS": OrderType.STOP,
    "TAKE_PROFIT_LIMIT": OrderType.TAKE_PROFIT,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT,
}
DEFAULT_STOP_LIMIT_ALLOWANCE_BPS = Decimal(100)


def _decimal(value: Any) -> Decimal | None:
    """A ccxt number (float, int or numeric string) as an exact Decimal; None if absent.

    ccxt parses the exchange's decimal strings into floats; `str()` of a float is the
    shortest text that reads back as it, which is the exchange's own text."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _positive(value: Any) -> Decimal | None:
    number = _decimal(value)
    return number if number is not None and number > 0 else None


def _when(ms: Any) -> datetime | None:
    if isinstance(ms, int | float) and not isinstance(ms, bool) and ms > 0:
        return datetime.fromtimestamp(ms / 1000, UTC)
    return None


def order_status(status: str | None, filled: Decimal, amount: Decimal) -> OrderStatus:
    """Our status for a ccxt order status and its filled amount.

    `open` is `accepted`, or `partially_filled` once something filled; `closed` is
    `filled` (a `closed` order with less filled was closed by the exchange: it will
    fill no more, so `canceled`); `canceled`, `expired` and `rejected` map to
    themselves. Without a status (some exchanges omit it), the amounts decide.
    """
    working = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
    match status:
        case "open" | "canceling":
            return working
        case "closed":
            return OrderStatus.FILLED if filled >= amount else OrderStatus.CANCELED
        case "canceled" | "cancelled":
            return OrderStatus.CANCELED
        case "expired":
            return OrderStatus.EXPIRED
        case "rejected":
            return OrderStatus.REJECTED
    return OrderStatus.FILLED if amount > 0 and filled >= amount else working


def _retry_after(exchange: Any) -> float | None:
    headers = getattr(exchange, "last_response_headers", None) or {}
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            with contextlib.suppress(TypeError, ValueError):
                return max(float(value), 0.0)
    return None


def _transport_failure(error: BaseException) -> bool:
    """ccxt maps aiohttp errors other than connection errors (a truncated body) to a
    plain ExchangeError; they are network trouble, not a refusal."""
    cause = error.__cause__
    return cause is not None and type(cause).__module__.split(".")[0] == "aiohttp"


def _never_sent(error: BaseException) -> bool:
    """The connection was never made (refused, DNS): the exchange saw nothing."""
    return isinstance(error.__cause__, aiohttp.ClientConnectorError | socket.gaierror)


def _point_at(exchange: Any, api_url: str) -> None:
    """Move every REST base URL of `exchange` to `api_url`'s scheme, host and port."""
    base = api_url.rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AdapterConfigError(
            f"api_url {api_url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8080"
        )

    def move(urls: Any) -> Any:
        if isinstance(urls, str):
            return base + urlsplit(urls).path
        if isinstance(urls, Mapping):
            return {name: move(url) for name, url in urls.items()}
        return urls

    exchange.urls["api"] = move(exchange.urls["api"])
    if parts.scheme == "http":
        # ccxt lingers on close() to let TLS connections wind down; there are none.
        exchange.timeout_on_exit = 0


@register_adapter("ccxt", matches=lambda exchange: exchange in ccxt.exchanges)
class CcxtAdapter(ExchangeAdapter):
    """Trade on any ccxt exchange (spot); see the module docstring for config."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        market_orders=True,
        limit_orders=True,
        stop_orders=False,
        client_order_ids=True,
        positions=False,
        sandbox=True,
    )

    def __init__(self, spec: AccountSpec, *, clock: Clock) -> None:
        super().__init__(spec, clock=clock)
        self.exchange_id = spec.exchange.removeprefix("ccxt:")
        if self.exchange_id not in ccxt_async.exchanges:
            raise AdapterConfigError(
                f"trade account {spec.name!r}: {spec.exchange!r} is not a ccxt exchange id "
                "(e.g. binance, kraken, okx)"
            )
        exchange_class = getattr(ccxt_async, self.exchange_id)
        config = spec.config
        timeout = _positive(config.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        if timeout is None:
            raise AdapterConfigError(
                f"trade account {spec.name!r}: timeout_seconds must be a positive number"
            )
        options = config.get("options") or {}
        if not isinstance(options, Mapping):
            raise AdapterConfigError(
                f"trade account {spec.name!r}: options must be an object of ccxt options"
            )
        self.exchange: Any = exchange_class(
            {
                "timeout": int(timeout * 1000),
                "enableRateLimit": bool(config.get("rate_limit", True)),
                "options": {
                    **_DEFAULT_OPTIONS,
                    **_EXCHANGE_OPTIONS.get(self.exchange_id, {}),
                    **options,
                },
            }
        )
        # Which credentials an exchange needs is known once its class described itself.
        credentials = self._credentials(self.exchange.requiredCredentials or {})
        self._secrets = tuple(credentials.values())
        for attribute, value in credentials.items():
            setattr(self.exchange, attribute, value)
        if config.get("sandbox"):
            try:
                self.exchange.set_sandbox_mode(True)
            except ccxt.NotSupported as e:
                raise AdapterConfigError(
                    f"trade account {spec.name!r}: ccxt knows no sandbox of "
                    f"{self.exchange_id}; set sandbox to false (or api_url to a test server)"
                ) from e
        api_url = config.get("api_url")
        if api_url:
            _point_at(self.exchange, str(api_url))
        allowance = _decimal(
            config.get("stop_limit_allowance_bps", DEFAULT_STOP_LIMIT_ALLOWANCE_BPS)
        )
        if allowance is None or not 0 <= allowance < 10_000:
            raise AdapterConfigError(
                f"trade account {spec.name!r}: stop_limit_allowance_bps must be a number "
                "of basis points from 0 to 9999 (default 100: a stop-loss sells down to "
                "1 % below its stop)"
            )
        self.stop_limit_allowance = allowance / 10_000
        #: How reads and placements are retried (tests shorten it).
        self.retry_policy = RetryPolicy()

    def _credentials(self, required: Mapping[str, bool]) -> dict[str, str]:
        needed = [_CREDENTIALS[k] for k, v in required.items() if v and k in _CREDENTIALS]
        self.spec.credentials.require(*needed, exchange=self.exchange_id)
        return {
            attr: self.spec.credentials[name]
            for attr, name in _CREDENTIALS.items()
            if self.spec.credentials.get(name)
        }

    # ------------------------------------------------------------------ errors

    def scrub(self, text: str) -> str:
        """`text` without the account's credentials and request signatures."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "<redacted>")
        return redact_text(_SIGNATURE.sub(r"\1=<redacted>", text))

    def translate_error(self, error: Exception, *, placing: bool = False) -> ExchangeError:
        """The one place where ccxt's exceptions become `execution.adapters.errors`.

        The order of the checks follows ccxt's class tree: rate limits, maintenance
        and timeouts are `NetworkError`s, `OrderNotFound` and `DuplicateOrderId` are
        `InvalidOrder`s, `PermissionDenied` is an `AuthenticationError`.
        `placing` says the request was an order placement: then a timeout, a dropped
        connection or a 5xx means the order may exist (`OutcomeUnknown`, never
        resent; Binance: "the execution status is UNKNOWN and could have been a
        success"), and a refused parameter (`BadRequest`) is an `InvalidOrder`.
        """
        text = self.scrub(str(error) or type(error).__name__)
        venue = self.venue
        if isinstance(error, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
            return RateLimited(text, exchange=venue, retry_after=_retry_after(self.exchange))
        if isinstance(error, ccxt.InvalidOrder) and _DUPLICATE.search(text):
            return DuplicateOrder(text, exchange=venue)
        for ccxt_classes, ours in _TRANSLATIONS:
            if isinstance(error, ccxt_classes):
                return ours(text, exchange=venue)
        if isinstance(error, ccxt.NetworkError) or _transport_failure(error):
            return self._network_error(error, text, placing=placing)
        if placing and isinstance(error, ccxt.BadRequest):
            # Binance's "Filter failure: NOTIONAL" (-1013) and other refused order
            # parameters arrive as BadRequest.
            return InvalidOrder(text, exchange=venue)
        if isinstance(error, ccxt.OperationFailed):
            # An answer ccxt could not use (BadResponse, NullResponse): after a
            # placement the order may exist; a read may succeed when asked again.
            kind = OutcomeUnknown if placing else ExchangeUnavailable
            return kind(text, exchange=venue)
        if not isinstance(error, ccxt.BaseError):
            message = f"could not read the exchange's answer ({type(error).__name__}: {text})"
            unread = OutcomeUnknown if placing else ExchangeRejected
            return unread(message, exchange=venue)
        return ExchangeRejected(text, exchange=venue)

    def _network_error(self, error: Exception, text: str, *, placing: bool) -> ExchangeError:
        if _never_sent(error):
            return ExchangeUnavailable(text, exchange=self.venue)
        if isinstance(error, ccxt.RequestTimeout):
            text = f"{text}: no answer within {self.exchange.timeout / 1000:g} s"
        if placing:
            return OutcomeUnknown(
                f"{text} (the order may have been placed; look it up by its client order id)",
                exchange=self.venue,
            )
        if isinstance(error, ccxt.ExchangeNotAvailable):
            return ExchangeUnavailable(text, exchange=self.venue)
        return OutcomeUnknown(text, exchange=self.venue)

    async def _guard[T](self, call: Callable[[], Awaitable[T]], *, placing: bool) -> T:
        try:
            # ccxt's decimal_to_precision rounds by setting the current decimal context
            # to ROUND_HALF_UP (and trapping Underflow) for good: in a copy here, or every
            # later Decimal sum of the service (fills, fees, PnL) would round that way.
            with localcontext():
                return await call()
        except (ccxt.BaseError, *_PARSE_ERRORS) as e:
            if isinstance(e, ccxt.BaseError):
                # The chained cause is logged with tracebacks: scrub it too.
                e.args = (self.scrub(str(e)),)
            raise self.translate_error(e, placing=placing) from e

    def _on_retry(self, attempt: int, error: ExchangeError, wait: float) -> None:
        _log.warning(
            "exchange_retry",
            account=self.spec.name,
            exchange=self.venue,
            attempt=attempt,
            error=str(error),
            code=error.code,
            wait=round(wait, 3),
        )

    async def _read[T](self, call: Callable[[], Awaitable[T]]) -> T:
        """A read: temporary errors and unknown outcomes are retried."""
        return await call_with_retry(
            lambda: self._guard(call, placing=False),
            policy=self.retry_policy,
            idempotent=True,
            on_retry=self._on_retry,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load the exchange's markets (precision, limits, fees)."""
        await self._read(self.exchange.load_markets)

    async def close(self) -> None:
        await self.exchange.close()

    async def _market(self, symbol: str) -> dict[str, Any]:
        if not self.exchange.markets:
            await self.start()
        market = (self.exchange.markets or {}).get(symbol)
        if market is None:
            raise UnknownSymbol(
                f"{symbol} is not one of its markets (symbols look like ETH/BTC)",
                exchange=self.venue,
            )
        return dict(market)

    # ------------------------------------------------------------------ market data

    async def market_rules(self, symbol: str) -> MarketRules:
        market = await self._market(symbol)
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        amount_limits = limits.get("amount") or {}
        tick_size = self.exchange.precisionMode == ccxt.TICK_SIZE
        decimal_places = self.exchange.precisionMode == ccxt.DECIMAL_PLACES
        # SIGNIFICANT_DIGITS precision is no fixed grid; no rule is given for it.
        amount_digits = precision.get("amount") if decimal_places else None
        price_digits = precision.get("price") if decimal_places else None
        return MarketRules(
            symbol=symbol,
            amount_step=_positive(precision.get("amount")) if tick_size else None,
            amount_precision=int(amount_digits) if amount_digits is not None else None,
            price_tick=_positive(precision.get("price")) if tick_size else None,
            price_precision=int(price_digits) if price_digits is not None else None,
            min_amount=_decimal(amount_limits.get("min")),
            min_notional=_decimal((limits.get("cost") or {}).get("min")),
            max_amount=_positive(amount_limits.get("max")),
            taker_fee=_decimal(market.get("taker")) or ZERO,
        )

    async def last_price(self, symbol: str) -> Decimal:
        await self._market(symbol)
        ticker = await self._read(lambda: self.exchange.fetch_ticker(symbol))
        price = _positive(ticker.get("last")) or _positive(ticker.get("close"))
        if price is None:
            bid, ask = _positive(ticker.get("bid")), _positive(ticker.get("ask"))
            price = (bid + ask) / 2 if bid is not None and ask is not None else None
        if price is None:
            raise ExchangeRejected(f"its ticker of {symbol} has no price", exchange=self.venue)
        return price

    # ------------------------------------------------------------------ orders

    def holds_exits(self, symbol: str) -> bool:
        """A Binance-protocol venue's market that takes OCO order lists."""
        if not hasattr(self.exchange, "private_post_orderlist_oco"):
            return False
        market = (self.exchange.markets or {}).get(symbol) or {}
        return bool(market.get("spot") and (market.get("info") or {}).get("ocoAllowed"))

    async def place_order(self, request: OrderRequest) -> OrderReport:
        native = request.type in (OrderType.STOP, OrderType.TAKE_PROFIT)
        if request.type not in _ORDER_TYPES.values() and not (
            native and self.holds_exits(request.symbol)
        ):
            raise InvalidOrder(
                f"{request.type} orders are not placed on {self.exchange_id} {request.symbol} "
                "through ccxt (it takes no order lists: the service watches the price and "
                "sends a market order)",
                exchange=self.venue,
            )
        if request.quantity <= 0:
            raise InvalidOrder(f"quantity {request.quantity} must be > 0", exchange=self.venue)
        if request.type is OrderType.LIMIT and request.limit_price is None:
            raise InvalidOrder("a limit order needs limit_price", exchange=self.venue)
        if native and request.stop_price is None:
            raise InvalidOrder(f"a {request.type} order needs stop_price", exchange=self.venue)
        await self._market(request.symbol)
        amount = self._on_grid(request.symbol, "quantity", request.quantity)
        price = None
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        kind = request.type.value
        if request.type is OrderType.LIMIT:
            assert request.limit_price is not None
            price = self._on_grid(request.symbol, "price", request.limit_price)
        elif native:
            # STOP_LOSS_LIMIT / TAKE_PROFIT_LIMIT: ccxt's unified trigger params.
            assert request.stop_price is not None
            trigger = self._on_grid(request.symbol, "price", request.stop_price)
            kind = "limit"
            if request.type is OrderType.STOP:
                price = await self._stop_limit(request)
                params["stopLossPrice"] = trigger
            else:
                price = trigger
                params["takeProfitPrice"] = trigger
        existing = await self._lookup(request.symbol, request.client_order_id)
        if existing is not None:
            return existing
        symbol, side = request.symbol, request.side.value

        async def create() -> Any:
            return await self.exchange.create_order(symbol, kind, side, amount, price, params)

        order = await call_with_retry(
            lambda: self._guard(create, placing=True),
            policy=self.retry_policy,
            idempotent=False,
            on_retry=self._on_retry,
        )
        return await self._report(order, symbol, request.client_order_id)

    async def place_exits(
        self, stop: OrderRequest | None, target: OrderRequest | None
    ) -> list[OrderReport]:
        """Both legs: one OCO order list (see the module docstring); one leg: that
        order. Legs placed before (found by client order id) are returned instead."""
        if stop is None or target is None:
            return await super().place_exits(stop, target)
        if not self.holds_exits(stop.symbol):
            raise InvalidOrder(
                f"{self.exchange_id} {stop.symbol} takes no OCO order lists",
                exchange=self.venue,
            )
        check_exit_legs((stop, target), venue=self.venue)
        # Checked just above; for the type checker.
        assert stop.stop_price is not None
        assert target.stop_price is not None
        market = await self._market(stop.symbol)
        symbol = stop.symbol
        amount = self._on_grid(symbol, "quantity", stop.quantity)
        trigger = self._on_grid(symbol, "price", stop.stop_price)
        limit = self._on_grid(symbol, "price", target.stop_price)
        below = await self._stop_limit(stop)
        found = [
            report
            for report in [await self._lookup(symbol, r.client_order_id) for r in (stop, target)]
            if report is not None
        ]
        if found:
            return found
        sell = stop.side is OrderSide.SELL
        # A sell's take-profit is above the price and its stop below; a buy's the reverse.
        profit, loss = ("above", "below") if sell else ("below", "above")
        request = {
            "symbol": market["id"],
            "side": stop.side.value.upper(),
            "quantity": amount,
            "listClientOrderId": f"{stop.parent_id or stop.client_order_id}-oco",
            f"{profit}Type": "LIMIT_MAKER",
            f"{profit}Price": limit,
            f"{profit}ClientOrderId": target.client_order_id,
            f"{loss}Type": "STOP_LOSS_LIMIT",
            f"{loss}StopPrice": trigger,
            f"{loss}Price": below,
            f"{loss}TimeInForce": "GTC",
            f"{loss}ClientOrderId": stop.client_order_id,
            "newOrderRespType": "RESULT",
        }

        async def create() -> Any:
            return await self.exchange.private_post_orderlist_oco(dict(request))

        answer = await call_with_retry(
            lambda: self._guard(create, placing=True),
            policy=self.retry_policy,
            idempotent=False,
            on_retry=self._on_retry,
        )
        reports = []
        for leg in answer.get("orderReports") or []:
            with localcontext():  # see _guard
                parsed = self.exchange.parse_order(leg, market)
            reports.append(await self._report(parsed, symbol))
        return reports

    async def _stop_limit(self, stop: OrderRequest) -> str:
        """The limit of a stop-loss leg: `stop_limit_allowance_bps` beyond its stop
        price, rounded away from it onto the price grid."""
        assert stop.stop_price is not None
        rules = await self.market_rules(stop.symbol)
        tick = rules.price_tick or (
            Decimal(1).scaleb(-rules.price_precision) if rules.price_precision is not None else None
        )
        sell = stop.side is OrderSide.SELL
        price = stop.stop_price * (
            1 - self.stop_limit_allowance if sell else 1 + self.stop_limit_allowance
        )
        if tick is not None:
            steps = (price / tick).to_integral_value(ROUND_FLOOR if sell else ROUND_CEILING)
            price = steps * tick
        if price <= 0:
            raise InvalidOrder(
                f"the stop-loss at {stop.stop_price} leaves no limit price with an allowance "
                f"of {self.stop_limit_allowance * 10_000} bps",
                exchange=self.venue,
            )
        return self._on_grid(stop.symbol, "price", price)

    def _on_grid(self, symbol: str, what: str, value: Decimal) -> str:
        """`value` as ccxt will send it; refused when ccxt would have to round it."""
        to_precision = (
            self.exchange.amount_to_precision
            if what == "quantity"
            else self.exchange.price_to_precision
        )
        try:
            with localcontext():  # see _guard
                sent = str(to_precision(symbol, format(value, "f")))
        except ccxt.BaseError as e:
            raise self.translate_error(e, placing=True) from e
        if Decimal(sent) != value:
            raise InvalidOrder(
                f"{what} {value} of {symbol} is not on the market's grid ({sent} is); "
                "round it with the market rules",
                exchange=self.venue,
            )
        return sent

    async def _lookup(self, symbol: str, client_order_id: str) -> OrderReport | None:
        """The order already placed with this id, if any (checked before placing)."""
        try:
            return await self.fetch_order(symbol, client_order_id)
        except OrderNotFound:
            return None
        except OutcomeUnknown as e:
            # Nothing was sent yet: the placement may simply be tried again.
            raise ExchangeUnavailable(
                f"could not check for an existing order {client_order_id} before placing it, "
                f"so none was placed: {e}",
                exchange=self.venue,
            ) from e

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        await self._market(symbol)
        params = {"clientOrderId": client_order_id}
        order = await self._read(lambda: self.exchange.fetch_order(None, symbol, dict(params)))
        return await self._report(order, symbol, client_order_id)

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        """Cancel by client order id; an order no longer open (filled, cancelled)
        is returned as it is, since Binance answers "Unknown order sent." for it."""
        await self._market(symbol)
        params = {"clientOrderId": client_order_id}
        try:
            order = await self._read(lambda: self.exchange.cancel_order(None, symbol, dict(params)))
        except OrderNotFound:
            return await self.fetch_order(symbol, client_order_id)
        report = await self._report(order, symbol, client_order_id)
        if report.status not in (OrderStatus.CANCELED, OrderStatus.FILLED, OrderStatus.EXPIRED):
            # Some exchanges acknowledge a cancel before carrying it out.
            return await self.fetch_order(symbol, client_order_id)
        return report

    async def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        if symbol is not None:
            await self._market(symbol)
        orders = await self._read(lambda: self.exchange.fetch_open_orders(symbol))
        return [await self._report(order, order.get("symbol") or symbol) for order in orders]

    # ------------------------------------------------------------------ account

    async def balances(self) -> dict[str, Balance]:
        balance = await self._read(self.exchange.fetch_balance)
        free, total = balance.get("free") or {}, balance.get("total") or {}
        result = {}
        for currency in sorted(set(free) | set(total)):
            held = _decimal(total.get(currency)) or ZERO
            result[currency] = Balance(currency, _decimal(free.get(currency)) or ZERO, held)
        return result

    # ------------------------------------------------------------------ reports

    async def _report(
        self, order: Mapping[str, Any], symbol: str | None, client_order_id: str | None = None
    ) -> OrderReport:
        """An OrderReport from a ccxt order structure (fetching its trades if needed)."""
        symbol = str(order.get("symbol") or symbol)
        # A cancel's answer may carry the cancel request's own id; ours is the one asked for.
        cid = client_order_id or str(order.get("clientOrderId") or order.get("id"))
        amount = _decimal(order.get("amount")) or ZERO
        filled = _decimal(order.get("filled")) or ZERO
        average = _positive(order.get("average"))
        cost = _positive(order.get("cost"))
        if average is None and cost is not None and filled > 0:
            average = cost / filled
        side = OrderSide(str(order.get("side")).lower())
        raw = order.get("info")
        info: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        native = _NATIVE_TYPES.get(str(info.get("type")))
        if info.get("type") == "LIMIT_MAKER" and str(info.get("orderListId", -1)) != "-1":
            native = OrderType.TAKE_PROFIT  # an OCO's take-profit leg
        kind = native or _ORDER_TYPES.get(str(order.get("type")).lower(), OrderType.LIMIT)
        status = order_status(order.get("status"), filled, amount)
        updated = (
            _when(order.get("lastUpdateTimestamp"))
            or _when(order.get("lastTradeTimestamp"))
            or _when(order.get("timestamp"))
            or self.clock()
        )
        fills = await self._fills(order, symbol, cid, side, filled, updated)
        quote = symbol.split("/")[1].split(":")[0] if "/" in symbol else None
        if fills:
            fee = sum((f.fee for f in fills if f.fee_currency in (None, quote)), ZERO)
        elif average is not None:
            fee, _, _ = await self._fee_in_quote(order, symbol, average)
        else:
            fee = ZERO
        if status is OrderStatus.REJECTED:
            reason = "the exchange rejected the order"
        elif status is OrderStatus.CANCELED and order.get("status") == "closed":
            reason = f"closed by the exchange with {filled} of {amount} filled"
        else:
            reason = None
        return OrderReport(
            client_order_id=cid,
            symbol=symbol,
            side=side,
            type=kind,
            status=status,
            quantity=amount,
            filled_quantity=filled,
            average_price=average,
            fee=fee,
            exchange_order_id=str(order["id"]) if order.get("id") is not None else None,
            updated_at=updated,
            fills=fills,
            reason=reason,
            limit_price=_positive(order.get("price"))
            if str(order.get("type")) == "limit"
            else None,
            stop_price=(
                _positive(order.get("triggerPrice")) or _positive(order.get("price"))
                if native
                else None
            ),
        )

    async def _fills(
        self,
        order: Mapping[str, Any],
        symbol: str,
        cid: str,
        side: OrderSide,
        filled: Decimal,
        updated: datetime,
    ) -> tuple[FillReport, ...]:
        """The order's executions as the exchange lists them; () when it cannot."""
        if filled <= 0:
            return ()
        trades: Sequence[Mapping[str, Any]] = [
            t for t in order.get("trades") or [] if t.get("id") is not None
        ]
        traded = sum((_decimal(t.get("amount")) or ZERO for t in trades), ZERO)
        if traded < filled and order.get("id") is not None:
            if not self.exchange.has.get("fetchOrderTrades"):
                return ()
            order_id = order["id"]
            trades = await self._read(lambda: self.exchange.fetch_order_trades(order_id, symbol))
        # A market order always takes; an exchange's placement answer may not say so.
        taker = Liquidity.TAKER if str(order.get("type")).lower() == "market" else None
        fills = []
        for trade in trades:
            fill = await self._fill(trade, symbol, cid, side, updated, taker)
            if fill is not None:
                fills.append(fill)
        return tuple(fills)

    async def _fill(
        self,
        trade: Mapping[str, Any],
        symbol: str,
        cid: str,
        side: OrderSide,
        updated: datetime,
        liquidity: Liquidity | None,
    ) -> FillReport | None:
        quantity, price = _positive(trade.get("amount")), _positive(trade.get("price"))
        if quantity is None or price is None:
            return None
        fee, currency, in_base = await self._fee_in_quote(trade, symbol, price)
        maker = trade.get("takerOrMaker")
        return FillReport(
            fill_id=f"{symbol}:{trade['id']}",
            client_order_id=cid,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            fee=fee,
            at=_when(trade.get("timestamp")) or updated,
            fee_currency=currency,
            liquidity=Liquidity(maker) if maker in ("maker", "taker") else liquidity,
            base_fee=in_base,
        )

    async def _fee_in_quote(
        self, item: Mapping[str, Any], symbol: str, price: Decimal
    ) -> tuple[Decimal, str | None, Decimal]:
        """The fees of a ccxt trade or order, in the quote currency where possible, and
        the part of them charged in the base currency, in base units (coin the
        account paid with, so does not hold)."""
        fees = item.get("fees") or ([item["fee"]] if item.get("fee") else [])
        base, _, rest = symbol.partition("/")
        quote = rest.split(":")[0] or None
        total, currency, in_base = ZERO, quote, ZERO
        for fee in fees:
            cost = _decimal((fee or {}).get("cost"))
            if not cost:
                continue
            charged = fee.get("currency")
            if charged in (None, quote):
                total += cost
            elif charged == base:
                total += cost * price
                in_base += cost
            else:
                rate = await self._conversion(str(charged), quote)
                if rate is None:
                    # Not convertible: reported in its own currency.
                    total, currency = total + cost, str(charged)
                else:
                    total += cost * rate
        return total, currency, in_base

    async def _conversion(self, currency: str, quote: str | None) -> Decimal | None:
        pair = f"{currency}/{quote}"
        if quote is None or pair not in (self.exchange.markets or {}):
            return None
        return await self.last_price(pair)
