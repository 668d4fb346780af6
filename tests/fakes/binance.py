"""A local Binance spot exchange speaking the signed REST API v3 that ccxt's `binance` uses.

It answers the way Binance does
(https://developers.binance.com/docs/binance-spot-api-docs/rest-api), for one account
and a few spot markets, enough for ccxt's real `binance` class to load markets, read
prices and balances, and place, find and cancel orders:

- public: `GET /api/v3/ping`, `/time`, `/exchangeInfo` (symbols with PRICE_FILTER,
  LOT_SIZE and NOTIONAL filters), `/ticker/24hr`, `/ticker/price`;
- signed (`X-MBX-APIKEY` header, HMAC-SHA256 `signature` over the query string
  followed by the body, `timestamp` within `recvWindow`): `POST /api/v3/order`
  (MARKET fills at once at the current price; LIMIT fills at once when marketable,
  otherwise rests with its funds locked; `newOrderRespType` ACK, RESULT or FULL),
  `GET /api/v3/order` (by `orderId` or `origClientOrderId`), `DELETE /api/v3/order`,
  `GET /api/v3/openOrders`, `GET /api/v3/account`, `GET /api/v3/myTrades`;
  `POST /api/v3/orderList/oco` (a one-cancels-other pair), `GET` and `DELETE
  /api/v3/orderList`. `POST /api/v3/order` also takes STOP_LOSS_LIMIT,
  TAKE_PROFIT_LIMIT (with `stopPrice`) and LIMIT_MAKER.

Order lists, as Binance runs them: an OCO's legs are ordinary orders with the list's
`orderListId` (in `GET /api/v3/order`, `openOrders` and `myTrades`); a SELL OCO
needs the LIMIT_MAKER leg above the last price and the stop below it, both on the
grid, and reserves its quantity once for both legs. When the stop leg triggers (the
last price reaches its `stopPrice`) or the limit leg fills, the other leg is
EXPIRED; cancelling either leg (`DELETE /api/v3/order`) or the list cancels both.
A triggered STOP_LOSS_LIMIT is a limit order at its `price`: it fills at once when
marketable, else it rests.

Errors have Binance's shape `{"code": -2010, "msg": "..."}` with its status codes:
401 -2014 / -2015 for a missing or unknown API key, 400 -1022 for a bad signature,
400 -2010 for a duplicate open client order id ("Duplicate order sent.") or a short
balance ("Account has insufficient balance for requested action."), 400 -2013
("Order does not exist."), 400 -2011 ("Unknown order sent.") on cancelling an order
that is not open, 400 -1013 ("Filter failure: LOT_SIZE" / "PRICE_FILTER" /
"NOTIONAL"), 429 -1003 with `Retry-After`. Like Binance, a client order id is unique
among *open* orders only: a filled or cancelled order's id may be used again.

Commission is 0.1 % of each execution, charged in the quote currency by default
(`commission="quote"`), or, as Binance does without BNB, in the asset received
(`commission="received"`: the base currency on a buy).

The test drives the market with plain methods (not HTTP): `set_price`,
`fill_crossed` (stops the price reached trigger; resting orders the price crossed
fill at their limit),
`fill_partially`, `rate_limit_next`, `hang_next_order` / `hang_next` (carry the
next placement, or request, out but never answer it), `stall_next` (hold the next
request unanswered and never carry it out: lost on the way), `sell_base_by_hand` (a user
closing the position on the website), `set_balance`. Every request is recorded in `requests`.

    async with FakeBinance(api_key="k", secret="s") as binance:
        exchange = ccxt_async.binance({"apiKey": "k", "secret": "s"})
        ...  # point exchange.urls["api"] at binance.url
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import LocalServer

COMMISSION_RATE = Decimal("0.001")
_EIGHT = Decimal("0.00000001")
_CLIENT_ID = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
_OPEN = ("NEW", "PARTIALLY_FILLED")
OrderKind = Literal["MARKET", "LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"]
_STOPS = ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")


def _fmt(value: Decimal) -> str:
    """A number as Binance prints it: eight decimals."""
    return f"{value.quantize(_EIGHT):f}"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class SpotMarket:
    """One spot symbol and its filters (Binance ids: `ETHBTC`, assets `ETH`, `BTC`)."""

    symbol: str
    base: str
    quote: str
    step_size: Decimal = Decimal("0.0001")
    min_qty: Decimal = Decimal("0.0001")
    max_qty: Decimal = Decimal("100000")
    tick_size: Decimal = Decimal("0.000001")
    min_price: Decimal = Decimal("0.000001")
    max_price: Decimal = Decimal("922327")
    min_notional: Decimal = Decimal("0.0001")
    #: Whether the symbol takes order lists (`ocoAllowed` in exchangeInfo).
    oco_allowed: bool = True


ETHBTC = SpotMarket("ETHBTC", "ETH", "BTC")


@dataclass
class Trade:
    id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool
    order_list_id: int = -1

    def as_fill(self) -> dict[str, Any]:
        return {
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "commission": _fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.id,
        }

    def as_my_trade(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "id": self.id,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "quoteQty": _fmt(self.price * self.qty),
            "commission": _fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: Literal["BUY", "SELL"]
    type: OrderKind
    quantity: Decimal
    price: Decimal | None
    time: int
    status: str = "NEW"
    stop_price: Decimal | None = None
    #: A stop order waits for its stop price; once triggered it is a limit order.
    triggered: bool = False
    order_list_id: int = -1
    executed: Decimal = Decimal(0)
    quote_executed: Decimal = Decimal(0)
    update_time: int = 0
    trades: list[Trade] = field(default_factory=list)
    locked: Decimal = Decimal(0)  # funds still reserved for the unfilled rest

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed

    @property
    def working(self) -> bool:
        """On the book (a stop only once triggered)."""
        return self.type not in _STOPS or self.triggered

    def as_json(self) -> dict[str, Any]:
        """GET /api/v3/order's answer (and RESULT's, plus `transactTime`)."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price or Decimal(0)),
            "origQty": _fmt(self.quantity),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote_executed),
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(self.stop_price or Decimal(0)),
            "icebergQty": _fmt(Decimal(0)),
            "time": self.time,
            "updateTime": self.update_time or self.time,
            "isWorking": self.working,
            "workingTime": self.time if self.working else -1,
            "origQuoteOrderQty": _fmt(Decimal(0)),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass
class OrderList:
    """An OCO: its legs are ordinary orders that carry its `orderListId`."""

    order_list_id: int
    list_client_order_id: str
    symbol: str
    legs: list[Order]
    time: int

    @property
    def is_open(self) -> bool:
        return any(leg.is_open for leg in self.legs)

    def as_json(self, *, reports: bool) -> dict[str, Any]:
        """The list as `GET /api/v3/orderList` shows it; `orderReports` as a placement
        or a cancel answers with them."""
        done = "ALL_DONE" if not self.is_open else None
        answer: dict[str, Any] = {
            "orderListId": self.order_list_id,
            "contingencyType": "OCO",
            "listStatusType": done or "EXEC_STARTED",
            "listOrderStatus": done or "EXECUTING",
            "listClientOrderId": self.list_client_order_id,
            "transactionTime": max([self.time, *(leg.update_time for leg in self.legs)]),
            "symbol": self.symbol,
            "orders": [
                {
                    "symbol": leg.symbol,
                    "orderId": leg.order_id,
                    "clientOrderId": leg.client_order_id,
                }
                for leg in self.legs
            ],
        }
        if reports:
            answer["orderReports"] = [
                {
                    k: v
                    for k, v in leg.as_json().items()
                    if k not in ("time", "updateTime", "isWorking")
                }
                | {"transactTime": leg.update_time or leg.time}
                for leg in self.legs
            ]
        return answer


@dataclass
class Wallet:
    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)


@dataclass(frozen=True)
class Hit:
    """One request the server received."""

    method: str
    path: str
    params: Mapping[str, str]


class BinanceError(Exception):
    """An error answer: HTTP `status` and Binance's `{"code", "msg"}` body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def _mandatory(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def _filter_failure(name: str) -> BinanceError:
    return BinanceError(400, -1013, f"Filter failure: {name}")


def _insufficient() -> BinanceError:
    return BinanceError(400, -2010, "Account has insufficient balance for requested action.")


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    raw = params.get(name)
    if not raw:
        raise _mandatory(name)
    try:
        value = Decimal(raw)
    except ArithmeticError:
        raise BinanceError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ) from None
    if not value.is_finite():
        raise _mandatory(name)
    return value


def _split_signature(raw: str) -> tuple[str, str | None]:
    """`raw` without its `signature=` parameter, and the signature."""
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = unquote(part.removeprefix("signature="))
        else:
            kept.append(part)
    return "&".join(kept), signature


Handler = Callable[[dict[str, str]], Awaitable[Any]]


class FakeBinance:
    """The exchange: one account, its balances, its orders and trades, and the market."""

    def __init__(
        self,
        *,
        api_key: str,
        secret: str,
        markets: tuple[SpotMarket, ...] = (ETHBTC,),
        prices: Mapping[str, Decimal] | None = None,
        balances: Mapping[str, Decimal] | None = None,
        commission: Literal["quote", "received"] = "quote",
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.markets = {m.symbol: m for m in markets}
        self.prices = {m.symbol: Decimal("0.05") for m in markets} | dict(prices or {})
        self.wallets: dict[str, Wallet] = {}
        for asset, free in (balances or {}).items():
            self.set_balance(asset, free)
        self.commission = commission
        self.orders: list[Order] = []
        self.order_lists: list[OrderList] = []
        self.trades: list[Trade] = []
        self.requests: list[Hit] = []
        self._order_ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._by_hand = itertools.count(1)
        self._rate_limited = 0
        self._rate_limit_only: tuple[str | None, str | None] = (None, None)
        self._retry_after = 0
        self._hang: set[tuple[str, str]] = set()
        self._stall: set[tuple[str, str]] = set()
        self._released = asyncio.Event()
        self.app = Starlette(routes=self._routes())
        self.server = LocalServer(self.app, name="fake binance")

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return self.server.url

    async def __aenter__(self) -> Self:
        await self.server.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        await self.server.stop()

    def release(self) -> None:
        """Let hung requests finish (their clients are gone), so the server stops at once."""
        self._released.set()

    # ------------------------------------------------------------------ test controls

    def set_price(self, price: Decimal, symbol: str = "ETHBTC") -> None:
        """Move the market; resting orders it crosses fill on `fill_crossed`."""
        self.prices[symbol] = price

    def set_balance(self, asset: str, free: Decimal) -> None:
        self.wallets.setdefault(asset, Wallet()).free = free

    def balance(self, asset: str) -> Wallet:
        return self.wallets.setdefault(asset, Wallet())

    def fill_crossed(self) -> list[Order]:
        """Trigger every stop the current price reached (a triggered stop-limit fills
        at once, as a taker at the current price, when its limit allows, else it
        rests), and fill every resting limit order the price reached, at its limit.
        An order list's other leg expires as one leg triggers or fills."""
        filled = []
        for order in list(self.orders):
            if not order.is_open or order.price is None:
                continue
            price = self.prices[order.symbol]
            crossed = price <= order.price if order.side == "BUY" else price >= order.price
            if not order.working:
                if not self._reached(order, price):
                    continue
                order.triggered = True
                order.update_time = _now_ms()
                self._expire_siblings(order)
                if crossed:
                    self._execute(order, order.remaining, price, maker=False)
                    filled.append(order)
            elif crossed:
                self._expire_siblings(order)
                self._execute(order, order.remaining, order.price, maker=True)
                filled.append(order)
        return filled

    @staticmethod
    def _reached(order: Order, price: Decimal) -> bool:
        """Whether `price` triggers the stop order: a stop-loss when the price falls
        to it (a sell) or rises to it (a buy), a take-profit the other way."""
        assert order.stop_price is not None
        falls_to = (order.type == "STOP_LOSS_LIMIT") == (order.side == "SELL")
        return price <= order.stop_price if falls_to else price >= order.stop_price

    def _list_of(self, order: Order) -> OrderList | None:
        if order.order_list_id == -1:
            return None
        return next(x for x in self.order_lists if x.order_list_id == order.order_list_id)

    def _expire_siblings(self, order: Order) -> None:
        """`order` triggered or filled: the other legs of its list expire, and the
        funds the list reserved once are now `order`'s."""
        order_list = self._list_of(order)
        for leg in order_list.legs if order_list else ():
            if leg is order:
                continue
            order.locked += leg.locked
            leg.locked = Decimal(0)
            if leg.is_open:
                leg.status = "EXPIRED"
                leg.update_time = _now_ms()

    def fill_partially(self, client_order_id: str, quantity: Decimal) -> Order:
        """Fill `quantity` of the open order `client_order_id` at its limit price."""
        order = self.order(client_order_id)
        assert order.is_open and order.price is not None, f"{client_order_id} is not resting"
        assert 0 < quantity < order.remaining, "a partial fill leaves some of the order open"
        self._expire_siblings(order)
        self._execute(order, quantity, order.price, maker=True)
        return order

    def rate_limit_next(
        self,
        count: int,
        *,
        retry_after: int = 0,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next `count` requests with 429 -1003 and `Retry-After`; only those
        with this `method` and `path` (`POST`, `/api/v3/order`) when given."""
        self._rate_limited = count
        self._rate_limit_only = (method, path)
        self._retry_after = retry_after

    def hang_next_order(self) -> None:
        """Carry out the next order placement but never answer it."""
        self.hang_next("POST", "/api/v3/order")

    def hang_next(self, method: str, path: str) -> None:
        """Carry out the next `method path` request but never answer it (the
        connection stays open until the client gives up)."""
        self._hang.add((method, path))

    def stall_next(self, method: str, path: str) -> None:
        """Hold the next `method path` request unanswered and never carry it out: the
        request was lost on its way to the matching engine."""
        self._stall.add((method, path))

    def order_list(self, list_client_order_id: str) -> OrderList:
        """The latest order list placed with this list client order id."""
        for order_list in reversed(self.order_lists):
            if order_list.list_client_order_id == list_client_order_id:
                return order_list
        raise KeyError(list_client_order_id)

    def sell_base_by_hand(self, symbol: str = "ETHBTC") -> Order | None:
        """Sell the account's whole free base balance at market, as a user on the
        website would (a client order id that is not ours); None when there is none."""
        market = self.markets[symbol]
        free = self.balance(market.base).free
        quantity = (free / market.step_size).to_integral_value(ROUND_DOWN) * market.step_size
        if quantity < market.min_qty:
            return None
        order = self._new_order(
            market, "SELL", "MARKET", quantity, None, f"web_{next(self._by_hand)}"
        )
        self._execute(order, quantity, self.prices[symbol], maker=False, at=order.time)
        return order

    def order(self, client_order_id: str) -> Order:
        """The latest order placed with this client order id."""
        for order in reversed(self.orders):
            if order.client_order_id == client_order_id:
                return order
        raise KeyError(client_order_id)

    def hits(self, method: str, path: str) -> int:
        """How many `method path` requests arrived (`GET`, `/api/v3/order`)."""
        return sum(1 for h in self.requests if h.method == method and h.path == path)

    # ------------------------------------------------------------------ HTTP plumbing

    def _routes(self) -> list[Route]:
        public: dict[str, Handler] = {
            "/api/v3/ping": self._ping,
            "/api/v3/time": self._time,
            "/api/v3/exchangeInfo": self._exchange_info,
            "/api/v3/ticker/24hr": self._ticker_24hr,
            "/api/v3/ticker/price": self._ticker_price,
        }
        routes = [Route(p, self._endpoint(h, signed=False)) for p, h in public.items()]
        routes += [
            Route(
                "/api/v3/order",
                self._dispatch({"POST": self._place, "GET": self._query, "DELETE": self._cancel}),
                methods=["POST", "GET", "DELETE"],
            ),
            Route("/api/v3/openOrders", self._endpoint(self._open_orders, signed=True)),
            Route(
                "/api/v3/orderList/oco",
                self._endpoint(self._place_oco, signed=True),
                methods=["POST"],
            ),
            Route(
                "/api/v3/orderList",
                self._dispatch({"GET": self._query_list, "DELETE": self._cancel_list}),
                methods=["GET", "DELETE"],
            ),
            Route("/api/v3/account", self._endpoint(self._account, signed=True)),
            Route("/api/v3/myTrades", self._endpoint(self._my_trades, signed=True)),
        ]
        return routes

    def _dispatch(
        self, handlers: Mapping[str, Handler]
    ) -> Callable[[Request], Awaitable[Response]]:
        endpoints = {m: self._endpoint(h, signed=True) for m, h in handlers.items()}

        async def endpoint(request: Request) -> Response:
            return await endpoints[request.method](request)

        return endpoint

    def _endpoint(
        self, handler: Handler, *, signed: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            raw_query = request.url.query
            raw_body = (await request.body()).decode()
            params = dict(parse_qsl(raw_query, keep_blank_values=True))
            params |= dict(parse_qsl(raw_body, keep_blank_values=True))
            self.requests.append(Hit(request.method, request.url.path, params))
            if (request.method, request.url.path) in self._stall:
                self._stall.discard((request.method, request.url.path))
                await self._released.wait()
                return JSONResponse({"code": -1007, "msg": "Timeout."}, status_code=503)
            limited = self._rate_limit(request.method, request.url.path)
            if limited is not None:
                return limited
            response: Response
            try:
                if signed:
                    self._authenticate(request, raw_query, raw_body, params)
                response = JSONResponse(await handler(params))
            except BinanceError as e:
                response = JSONResponse({"code": e.code, "msg": e.msg}, status_code=e.status)
            if (request.method, request.url.path) in self._hang:
                # Carried out, never answered: the client's request times out.
                self._hang.discard((request.method, request.url.path))
                await self._released.wait()
            return response

        return endpoint

    def _rate_limit(self, method: str, path: str) -> Response | None:
        only_method, only_path = self._rate_limit_only
        if (
            self._rate_limited <= 0
            or only_method not in (None, method)
            or only_path not in (None, path)
        ):
            return None
        self._rate_limited -= 1
        return JSONResponse(
            {
                "code": -1003,
                "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per "
                "minute. Please use the websocket for live updates to avoid polling the API.",
            },
            status_code=429,
            headers={"Retry-After": str(self._retry_after)},
        )

    def _authenticate(
        self, request: Request, raw_query: str, raw_body: str, params: Mapping[str, str]
    ) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key, self.api_key):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query, query_signature = _split_signature(raw_query)
        body, body_signature = _split_signature(raw_body)
        signature = query_signature or body_signature
        if not signature:
            raise _mandatory("signature")
        # Binance signs totalParams: the query string followed directly by the body.
        expected = hmac.new(self.secret.encode(), (query + body).encode(), hashlib.sha256)
        if not hmac.compare_digest(signature.lower(), expected.hexdigest()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise _mandatory("timestamp")
        timestamp = int(params["timestamp"])
        window = int(params.get("recvWindow", "5000"))
        now = _now_ms()
        if not (timestamp < now + 1000 and now - timestamp <= window):
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )

    def _market(self, params: Mapping[str, str]) -> SpotMarket:
        symbol = params.get("symbol")
        if not symbol:
            raise _mandatory("symbol")
        market = self.markets.get(symbol)
        if market is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return market

    # ------------------------------------------------------------------ public endpoints

    async def _ping(self, params: dict[str, str]) -> Any:
        return {}

    async def _time(self, params: dict[str, str]) -> Any:
        return {"serverTime": _now_ms()}

    async def _exchange_info(self, params: dict[str, str]) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(m) for m in self.markets.values()],
        }

    @staticmethod
    def _symbol_info(market: SpotMarket) -> dict[str, Any]:
        return {
            "symbol": market.symbol,
            "status": "TRADING",
            "baseAsset": market.base,
            "baseAssetPrecision": 8,
            "quoteAsset": market.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": market.oco_allowed,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _fmt(market.min_price),
                    "maxPrice": _fmt(market.max_price),
                    "tickSize": _fmt(market.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _fmt(market.min_qty),
                    "maxQty": _fmt(market.max_qty),
                    "stepSize": _fmt(market.step_size),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _fmt(market.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    async def _ticker_24hr(self, params: dict[str, str]) -> Any:
        market = self._market(params)
        price = _fmt(self.prices[market.symbol])
        now = _now_ms()
        return {
            "symbol": market.symbol,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": price,
            "prevClosePrice": price,
            "lastPrice": price,
            "lastQty": "1.00000000",
            "bidPrice": price,
            "bidQty": "1.00000000",
            "askPrice": price,
            "askQty": "1.00000000",
            "openPrice": price,
            "highPrice": price,
            "lowPrice": price,
            "volume": "0.00000000",
            "quoteVolume": "0.00000000",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 0,
            "lastId": 0,
            "count": 0,
        }

    async def _ticker_price(self, params: dict[str, str]) -> Any:
        market = self._market(params)
        return {"symbol": market.symbol, "price": _fmt(self.prices[market.symbol])}

    # ------------------------------------------------------------------ trading

    async def _place(self, params: dict[str, str]) -> Any:
        market = self._market(params)
        side: Literal["BUY", "SELL"]
        match params.get("side"):
            case "BUY" | "SELL" as side:
                pass
            case _:
                raise BinanceError(400, -1117, "Invalid side.")
        kind: OrderKind
        match params.get("type"):
            case (
                "MARKET" | "LIMIT" | "STOP_LOSS_LIMIT" | "TAKE_PROFIT_LIMIT" | "LIMIT_MAKER" as kind
            ):
                pass
            case _:
                raise BinanceError(400, -1116, "Invalid orderType.")
        quantity = _decimal(params, "quantity")
        price: Decimal | None = None
        stop: Decimal | None = None
        if kind != "MARKET":
            price = _decimal(params, "price")
            if kind != "LIMIT_MAKER" and params.get("timeInForce") != "GTC":
                raise BinanceError(400, -1115, "Invalid timeInForce.")
        if kind in _STOPS:
            stop = _decimal(params, "stopPrice")
            self._check_price(market, stop)
        client_id = self._client_id(params, "newClientOrderId")
        self._check_filters(market, quantity, price)
        if any(o.is_open and o.client_order_id == client_id for o in self.orders):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        current = self.prices[market.symbol]
        if stop is not None:
            probe = Order(0, client_id, market.symbol, side, kind, quantity, price, 0)
            probe.stop_price = stop
            if self._reached(probe, current):
                raise BinanceError(400, -2010, "Order would trigger immediately.")
        takes = price is not None and (price >= current if side == "BUY" else price <= current)
        if kind == "LIMIT_MAKER" and takes:
            raise BinanceError(400, -2010, "Order would immediately match and take.")
        order = self._open(market, side, kind, quantity, price, client_id, stop=stop)
        return self._placed(order, params.get("newOrderRespType", "ACK"))

    def _client_id(self, params: Mapping[str, str], name: str) -> str:
        client_id = params.get(name) or f"fake{next(self._by_hand)}"
        if not _CLIENT_ID.match(client_id):
            raise BinanceError(
                400,
                -1100,
                f"Illegal characters found in parameter '{name}'; legal "
                "range is '^[a-zA-Z0-9-_]{1,36}$'.",
            )
        return client_id

    def _check_price(self, market: SpotMarket, price: Decimal) -> None:
        if (
            not market.min_price <= price <= market.max_price
            or (price - market.min_price) % market.tick_size
        ):
            raise _filter_failure("PRICE_FILTER")

    async def _place_oco(self, params: dict[str, str]) -> Any:
        """`POST /api/v3/orderList/oco`: a SELL pair above and below the last price
        (the only side this fake takes: a spot position's protection)."""
        market = self._market(params)
        if not market.oco_allowed:
            raise BinanceError(400, -1158, "OCO orders are not supported for this symbol.")
        if params.get("side") != "SELL":
            raise BinanceError(400, -1117, "Invalid side (this fake takes SELL OCOs only).")
        quantity = _decimal(params, "quantity")
        if params.get("aboveType") != "LIMIT_MAKER" or params.get("belowType") != "STOP_LOSS_LIMIT":
            raise BinanceError(400, -1116, "Invalid orderType.")
        above = _decimal(params, "abovePrice")
        below_stop = _decimal(params, "belowStopPrice")
        below = _decimal(params, "belowPrice")
        if params.get("belowTimeInForce") != "GTC":
            raise BinanceError(400, -1115, "Invalid timeInForce.")
        list_id = self._client_id(params, "listClientOrderId")
        above_id = self._client_id(params, "aboveClientOrderId")
        below_id = self._client_id(params, "belowClientOrderId")
        self._check_price(market, below_stop)
        self._check_filters(market, quantity, above)
        self._check_filters(market, quantity, below)
        if not above > self.prices[market.symbol] > below_stop:
            raise BinanceError(
                400, -2010, "The relationship of the prices for the orders is not correct."
            )
        if above_id == below_id or any(
            o.is_open and o.client_order_id in (above_id, below_id) for o in self.orders
        ):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        if any(x.is_open and x.list_client_order_id == list_id for x in self.order_lists):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        wallet = self.balance(market.base)
        if wallet.free < quantity:
            raise _insufficient()
        # One reservation for the list: only one leg can execute.
        wallet.free -= quantity
        wallet.locked += quantity
        order_list_id = next(self._list_ids)
        stop = self._new_order(market, "SELL", "STOP_LOSS_LIMIT", quantity, below, below_id)
        stop.stop_price, stop.locked = below_stop, quantity
        limit = self._new_order(market, "SELL", "LIMIT_MAKER", quantity, above, above_id)
        for leg in (stop, limit):
            leg.order_list_id = order_list_id
        order_list = OrderList(order_list_id, list_id, market.symbol, [stop, limit], stop.time)
        self.order_lists.append(order_list)
        return order_list.as_json(reports=True)

    def _find_list(self, params: Mapping[str, str]) -> OrderList | None:
        list_id = params.get("orderListId")
        client_id = params.get("listClientOrderId") or params.get("origClientOrderId")
        if not list_id and not client_id:
            raise BinanceError(
                400,
                -1102,
                "Param 'listClientOrderId' or 'orderListId' must be sent, but both were "
                "empty/null!",
            )
        for order_list in reversed(self.order_lists):
            if list_id and str(order_list.order_list_id) == list_id:
                return order_list
            if not list_id and order_list.list_client_order_id == client_id:
                return order_list
        return None

    async def _query_list(self, params: dict[str, str]) -> Any:
        order_list = self._find_list(params)
        if order_list is None:
            raise BinanceError(400, -2018, "Order list does not exist.")
        return order_list.as_json(reports=False)

    async def _cancel_list(self, params: dict[str, str]) -> Any:
        self._market(params)
        order_list = self._find_list(params)
        if order_list is None or not order_list.is_open:
            raise BinanceError(400, -2011, "Unknown order list sent.")
        self._cancel_legs(order_list)
        return order_list.as_json(reports=True)

    def _cancel_legs(self, order_list: OrderList) -> None:
        now = _now_ms()
        for leg in order_list.legs:
            if leg.is_open:
                leg.status = "CANCELED"
                leg.update_time = now
            self._unlock(leg)

    def _check_filters(self, market: SpotMarket, quantity: Decimal, price: Decimal | None) -> None:
        if (
            not market.min_qty <= quantity <= market.max_qty
            or (quantity - market.min_qty) % market.step_size
        ):
            raise _filter_failure("LOT_SIZE")
        if price is not None and (
            not market.min_price <= price <= market.max_price
            or (price - market.min_price) % market.tick_size
        ):
            raise _filter_failure("PRICE_FILTER")
        if quantity * (price or self.prices[market.symbol]) < market.min_notional:
            raise _filter_failure("NOTIONAL")

    def _new_order(
        self,
        market: SpotMarket,
        side: Literal["BUY", "SELL"],
        kind: OrderKind,
        quantity: Decimal,
        price: Decimal | None,
        client_id: str,
    ) -> Order:
        order = Order(
            next(self._order_ids), client_id, market.symbol, side, kind, quantity, price, _now_ms()
        )
        self.orders.append(order)
        return order

    def _open(
        self,
        market: SpotMarket,
        side: Literal["BUY", "SELL"],
        kind: OrderKind,
        quantity: Decimal,
        price: Decimal | None,
        client_id: str,
        *,
        stop: Decimal | None = None,
    ) -> Order:
        current = self.prices[market.symbol]
        marketable = kind in ("MARKET", "LIMIT") and (
            price is None or (price >= current if side == "BUY" else price <= current)
        )
        if marketable:
            # Taker: the whole quantity at the current price, paid from free funds.
            if side == "BUY":
                need = quantity * current * (1 + self._quote_fee_rate)
                if self.balance(market.quote).free < need:
                    raise _insufficient()
            elif self.balance(market.base).free < quantity:
                raise _insufficient()
            order = self._new_order(market, side, kind, quantity, price, client_id)
            self._execute(order, quantity, current, maker=False, at=order.time)
            return order
        assert price is not None
        # Resting: reserve what a full fill at the limit will take.
        asset = market.quote if side == "BUY" else market.base
        need = quantity * price * (1 + self._quote_fee_rate) if side == "BUY" else quantity
        wallet = self.balance(asset)
        if wallet.free < need:
            raise _insufficient()
        wallet.free -= need
        wallet.locked += need
        order = self._new_order(market, side, kind, quantity, price, client_id)
        order.locked, order.stop_price = need, stop
        return order

    @property
    def _quote_fee_rate(self) -> Decimal:
        return COMMISSION_RATE if self.commission == "quote" else Decimal(0)

    def _execute(
        self, order: Order, quantity: Decimal, price: Decimal, *, maker: bool, at: int | None = None
    ) -> None:
        """Book one execution of `order`: the trade, the balances, the order's totals."""
        market = self.markets[order.symbol]
        cost = quantity * price
        base, quote = self.balance(market.base), self.balance(market.quote)
        if order.side == "BUY":
            if self.commission == "quote":
                fee, fee_asset = (cost * COMMISSION_RATE).quantize(_EIGHT), market.quote
                spent = cost + fee
                received = quantity
            else:
                fee, fee_asset = (quantity * COMMISSION_RATE).quantize(_EIGHT), market.base
                spent = cost
                received = quantity - fee
            self._spend(order, quote, spent)
            base.free += received
        else:
            fee, fee_asset = (cost * COMMISSION_RATE).quantize(_EIGHT), market.quote
            self._spend(order, base, quantity)
            quote.free += cost - fee
        now = at or _now_ms()
        trade = Trade(
            next(self._trade_ids),
            order.order_id,
            order.symbol,
            price,
            quantity,
            fee,
            fee_asset,
            now,
            order.side == "BUY",
            maker,
            order.order_list_id,
        )
        self.trades.append(trade)
        order.trades.append(trade)
        order.executed += quantity
        order.quote_executed += cost
        order.update_time = now
        order.status = "FILLED" if order.executed == order.quantity else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._unlock(order)

    def _spend(self, order: Order, wallet: Wallet, amount: Decimal) -> None:
        """Take `amount` from what `order` reserved, or from free funds."""
        if order.locked > 0:
            taken = min(amount, order.locked)
            order.locked -= taken
            wallet.locked -= taken
            wallet.free -= amount - taken
        else:
            wallet.free -= amount

    def _unlock(self, order: Order) -> None:
        if order.locked > 0:
            market = self.markets[order.symbol]
            wallet = self.balance(market.quote if order.side == "BUY" else market.base)
            wallet.locked -= order.locked
            wallet.free += order.locked
            order.locked = Decimal(0)

    def _placed(self, order: Order, response_type: str) -> dict[str, Any]:
        ack = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.time,
        }
        if response_type == "ACK":
            return ack
        full = order.as_json()
        result = ack | {
            k: full[k]
            for k in (
                "price",
                "origQty",
                "executedQty",
                "cummulativeQuoteQty",
                "status",
                "timeInForce",
                "type",
                "side",
                "workingTime",
                "origQuoteOrderQty",
                "selfTradePreventionMode",
            )
        }
        if order.stop_price is not None:
            # Binance's conditional fields appear only where they are set.
            result["stopPrice"] = full["stopPrice"]
        if response_type == "FULL":
            result["fills"] = [t.as_fill() for t in order.trades]
        return result

    def _find(self, params: Mapping[str, str]) -> Order | None:
        market = self._market(params)
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        for order in reversed(self.orders):
            if order.symbol != market.symbol:
                continue
            if order_id and str(order.order_id) == order_id:
                return order
            if not order_id and order.client_order_id == client_id:
                return order
        return None

    async def _query(self, params: dict[str, str]) -> Any:
        order = self._find(params)
        if order is None:
            raise BinanceError(400, -2013, "Order does not exist.")
        return order.as_json()

    async def _cancel(self, params: dict[str, str]) -> Any:
        order = self._find(params)
        if order is None or not order.is_open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        order_list = self._list_of(order)
        if order_list is not None:
            # Cancelling one leg of an order list cancels the whole list.
            self._cancel_legs(order_list)
        order.status = "CANCELED"
        order.update_time = _now_ms()
        self._unlock(order)
        answer = order.as_json()
        return {
            "symbol": order.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": order.order_list_id,
            "clientOrderId": params.get("newClientOrderId") or f"cancel{order.order_id}",
            "transactTime": order.update_time,
            **{
                k: answer[k]
                for k in (
                    "price",
                    "origQty",
                    "executedQty",
                    "cummulativeQuoteQty",
                    "status",
                    "timeInForce",
                    "type",
                    "side",
                    "selfTradePreventionMode",
                )
            },
        }

    async def _open_orders(self, params: dict[str, str]) -> Any:
        symbol = self._market(params).symbol if params.get("symbol") else None
        return [
            o.as_json() for o in self.orders if o.is_open and (symbol is None or o.symbol == symbol)
        ]

    async def _account(self, params: dict[str, str]) -> Any:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": _fmt(COMMISSION_RATE),
                "taker": _fmt(COMMISSION_RATE),
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": _now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": _fmt(w.free), "locked": _fmt(w.locked)}
                for asset, w in self.wallets.items()
            ],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    async def _my_trades(self, params: dict[str, str]) -> Any:
        market = self._market(params)
        trades = [t for t in self.trades if t.symbol == market.symbol]
        if params.get("orderId"):
            trades = [t for t in trades if str(t.order_id) == params["orderId"]]
        if params.get("fromId"):
            trades = [t for t in trades if t.id >= int(params["fromId"])]
        if params.get("startTime"):
            trades = [t for t in trades if t.time >= int(params["startTime"])]
        if params.get("endTime"):
            trades = [t for t in trades if t.time <= int(params["endTime"])]
        limit = int(params.get("limit") or 500)
        return [t.as_my_trade() for t in trades[:limit]]
