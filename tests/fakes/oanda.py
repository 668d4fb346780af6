"""A local OANDA v20 REST server: one account, a few instruments, real order semantics.

It answers the endpoints of https://developer.oanda.com/rest-live-v20/ that an
execution adapter uses, with OANDA's JSON shapes (decimals as strings, RFC 3339 times
with nanoseconds, transactions with string ids):

    GET  /v3/accounts                                  the token's accounts
    GET  /v3/accounts/{id}/summary                     balance, NAV, margin
    GET  /v3/accounts/{id}/instruments[?instruments=]  tradeable instruments
    GET  /v3/accounts/{id}/pricing?instruments=        bids, asks, closeout prices
    POST /v3/accounts/{id}/orders                      MARKET (FOK, IOC), LIMIT (GTC), and a
                                                       trade's STOP_LOSS and TAKE_PROFIT
    GET  /v3/accounts/{id}/orders/{id | @clientId}     one order
    PUT  /v3/accounts/{id}/orders/{id | @clientId}/cancel
    GET  /v3/accounts/{id}/pendingOrders
    GET  /v3/accounts/{id}/openPositions
    GET  /v3/accounts/{id}/openTrades
    GET  /v3/accounts/{id}/trades/{tradeID}            an open or a closed trade
    PUT  /v3/accounts/{id}/positions/{instrument}/close
    GET  /v3/accounts/{id}/transactions/{transactionId}

Behaviour, as OANDA's:

* `Authorization: Bearer <token>` or 401 `Insufficient authorization to perform
  request.`; another account id gets 403.
* A MARKET order fills at once at the ask (buy) or the bid (sell), or is cancelled in
  the same `201` answer with an `orderCancelTransaction` when the margin it needs is
  more than the account's NAV (`INSUFFICIENT_MARGIN`).
* A LIMIT order that the price already crosses fills at once at the market price;
  otherwise it rests (`PENDING`) until `fill_crossed()` finds the price through it,
  and then fills at its limit price.
* STOP_LOSS and TAKE_PROFIT orders belong to an open trade (`tradeID`; no instrument
  or units of their own), one of each per trade, price on the instrument's tick.
  `fill_crossed()` triggers them on the price that closes the trade (a long trade's
  bid, a short trade's ask): a stop-loss once that price is at or through its price,
  a take-profit once it is at or beyond. OANDA fills a stop-loss at "the first price
  equal to or worse than" its price and a take-profit at "the first price equal to
  or better": a stop fills at the current price (a gap through it fills worse), a
  take-profit at its own price (the price passed through it, as a LIMIT's does here).
  The fill closes that trade only (`tradesClosed`, realized profit and loss into the
  balance); the trade's other dependent order is cancelled in the same batch
  (`ORDER_CANCEL`, reason `LINKED_TRADE_CLOSED`), as it is when any other fill (a
  FIFO market order, `close_position`) closes the trade.
* A client order id held by a *pending* order is refused with 400
  `CLIENT_ORDER_ID_ALREADY_EXISTS`; one of a filled or cancelled order is not (that is
  OANDA's rule, and the reason the adapter looks an id up before it places).
* Fills open and close trades first in, first out; a position is the sum of its
  trades, long and short apart; realized profit and loss moves the balance.

Test controls are plain methods (no HTTP): `set_price`, `fill_crossed`,
`rate_limit_next`, `refuse_next`, `hang_next_order`, `close_position`; `requests` records every
`(method, path)` served, `commission` charges a flat fee per fill.

    async with FakeOanda() as oanda:
        adapter = OandaAdapter(spec_with(api_url=oanda.url, account_id=oanda.account_id, ...))
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import LocalServer

TOKEN = "oanda-test-token-0123456789abcdef"
ACCOUNT_ID = "101-004-1234567-001"
ZERO = Decimal(0)
MONEY = Decimal("0.0001")


def now_rfc3339() -> str:
    """OANDA's time format: RFC 3339 with nanoseconds, in UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _money(value: Decimal) -> str:
    return str(value.quantize(MONEY))


def _units(value: Decimal) -> str:
    return str(int(value)) if value == value.to_integral_value() else f"{value.normalize():f}"


@dataclass
class Instrument:
    """A currency pair: `mid` is the market price, bid and ask are `half_spread` off it."""

    name: str
    mid: Decimal
    half_spread: Decimal
    display_precision: int = 5
    units_precision: int = 0
    minimum_trade_size: Decimal = Decimal(1)
    maximum_order_units: Decimal = Decimal(100_000_000)
    margin_rate: Decimal = Decimal("0.02")

    @property
    def base(self) -> str:
        return self.name.split("_")[0]

    @property
    def quote(self) -> str:
        return self.name.split("_")[1]

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.display_precision)

    @property
    def bid(self) -> Decimal:
        return (self.mid - self.half_spread).quantize(self.tick)

    @property
    def ask(self) -> Decimal:
        return (self.mid + self.half_spread).quantize(self.tick)

    def price_text(self, price: Decimal) -> str:
        return str(price.quantize(self.tick))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": "CURRENCY",
            "displayName": f"{self.base}/{self.quote}",
            "pipLocation": -4 if self.display_precision == 5 else -2,
            "displayPrecision": self.display_precision,
            "tradeUnitsPrecision": self.units_precision,
            "minimumTradeSize": str(self.minimum_trade_size),
            "maximumTrailingStopDistance": "1.00000",
            "minimumTrailingStopDistance": "0.00050",
            "maximumPositionSize": "0",
            "maximumOrderUnits": str(self.maximum_order_units),
            "marginRate": str(self.margin_rate),
            "guaranteedStopLossOrderMode": "DISABLED",
            "tags": [{"type": "ASSET_CLASS", "name": "CURRENCY"}],
        }


def default_instruments() -> list[Instrument]:
    return [
        Instrument("EUR_USD", Decimal("1.10000"), Decimal("0.00010")),
        Instrument(
            "USD_JPY",
            Decimal("150.000"),
            Decimal("0.010"),
            display_precision=3,
            margin_rate=Decimal("0.04"),
        ),
    ]


@dataclass
class Trade:
    id: str
    instrument: str
    price: Decimal
    open_time: str
    initial_units: Decimal
    current_units: Decimal
    realized_pl: Decimal = ZERO
    close_time: str | None = None
    average_close_price: Decimal | None = None
    closing_transaction_ids: list[str] = field(default_factory=list)


#: Orders that belong to a trade: created with a `tradeID`, no instrument or units.
DEPENDENT = ("STOP_LOSS", "TAKE_PROFIT")


@dataclass
class Order:
    id: str
    type: str
    instrument: str
    units: Decimal
    time_in_force: str
    create_time: str
    client_id: str | None = None
    price: Decimal | None = None
    position_fill: str = "DEFAULT"
    state: str = "PENDING"
    filling_transaction_id: str | None = None
    filled_time: str | None = None
    trade_opened_id: str | None = None
    trade_closed_ids: list[str] = field(default_factory=list)
    cancelling_transaction_id: str | None = None
    cancelled_time: str | None = None
    #: The trade a STOP_LOSS or TAKE_PROFIT order closes (its `instrument` and
    #: `units` are the trade's, kept for the fake's bookkeeping, not shown).
    trade_id: str | None = None

    def to_json(self, instrument: Instrument) -> dict[str, Any]:
        if self.type in DEPENDENT:
            return self._dependent_json(instrument)
        body: dict[str, Any] = {
            "id": self.id,
            "createTime": self.create_time,
            "type": self.type,
            "instrument": self.instrument,
            "units": _units(self.units),
            "timeInForce": self.time_in_force,
            "positionFill": self.position_fill,
            "state": self.state,
        }
        if self.type == "LIMIT":
            body["triggerCondition"] = "DEFAULT"
        if self.price is not None:
            body["price"] = instrument.price_text(self.price)
        if self.client_id is not None:
            body["clientExtensions"] = {"id": self.client_id}
        if self.filling_transaction_id is not None:
            body["fillingTransactionID"] = self.filling_transaction_id
            body["filledTime"] = self.filled_time
            if self.trade_opened_id:
                body["tradeOpenedID"] = self.trade_opened_id
            if self.trade_closed_ids:
                body["tradeClosedIDs"] = list(self.trade_closed_ids)
        if self.cancelling_transaction_id is not None:
            body["cancellingTransactionID"] = self.cancelling_transaction_id
            body["cancelledTime"] = self.cancelled_time
        return body

    def _dependent_json(self, instrument: Instrument) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "createTime": self.create_time,
            "type": self.type,
            "tradeID": self.trade_id,
            "price": instrument.price_text(self.price or ZERO),
            "timeInForce": self.time_in_force,
            "triggerCondition": "DEFAULT",
            "state": self.state,
        }
        if self.client_id is not None:
            body["clientExtensions"] = {"id": self.client_id}
        if self.filling_transaction_id is not None:
            body["fillingTransactionID"] = self.filling_transaction_id
            body["filledTime"] = self.filled_time
            body["tradeClosedIDs"] = list(self.trade_closed_ids)
        if self.cancelling_transaction_id is not None:
            body["cancellingTransactionID"] = self.cancelling_transaction_id
            body["cancelledTime"] = self.cancelled_time
        return body


class _Reject(Exception):
    """An order request OANDA refuses: `reason` is its reject reason."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        self.reason = reason
        self.message = message
        self.status = status
        super().__init__(message)


class FakeOanda:
    """The server, its one account, and the controls tests drive it with."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        account_id: str = ACCOUNT_ID,
        currency: str = "USD",
        balance: Decimal = Decimal(100_000),
        instruments: list[Instrument] | None = None,
    ) -> None:
        self.token = token
        self.account_id = account_id
        self.currency = currency
        self.balance = balance
        self.instruments = {i.name: i for i in (instruments or default_instruments())}
        #: A flat commission charged per fill, in the account currency.
        self.commission = ZERO
        #: Every request served, as (method, path).
        self.requests: list[tuple[str, str]] = []
        self.orders: dict[str, Order] = {}
        self.trades: dict[str, Trade] = {}
        self.closed_trades: dict[str, Trade] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._rate_limited = 0
        self._hang_next = False
        self._refuse: dict[str, str] = {}
        self._closing = asyncio.Event()
        base = "/v3/accounts/{account}"
        self.app = Starlette(
            routes=[
                Route("/v3/accounts", self._accounts, methods=["GET"]),
                Route(base + "/summary", self._summary, methods=["GET"]),
                Route(base + "/instruments", self._instruments, methods=["GET"]),
                Route(base + "/pricing", self._pricing, methods=["GET"]),
                Route(base + "/orders", self._create_order, methods=["POST"]),
                Route(base + "/orders/{spec}", self._get_order, methods=["GET"]),
                Route(base + "/orders/{spec}/cancel", self._cancel_order, methods=["PUT"]),
                Route(base + "/pendingOrders", self._pending_orders, methods=["GET"]),
                Route(base + "/openPositions", self._open_positions, methods=["GET"]),
                Route(base + "/openTrades", self._open_trades, methods=["GET"]),
                Route(base + "/trades/{spec}", self._get_trade, methods=["GET"]),
                Route(base + "/positions/{instrument}/close", self._close, methods=["PUT"]),
                Route(base + "/transactions/{tx}", self._transaction, methods=["GET"]),
            ]
        )
        self.app.add_middleware(_Gate, fake=self)
        self._server = LocalServer(self.app, name="fake OANDA")

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return self._server.url

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        self._closing.set()  # releases an answer held back by hang_next_order
        await self._server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ controls

    def set_price(self, instrument: str, mid: Decimal) -> None:
        """Move the market; bid and ask stay `half_spread` either side of `mid`."""
        self.instruments[instrument].mid = mid

    def fill_crossed(self) -> int:
        """Fill every pending LIMIT order the price has crossed, at its limit price
        (or cancel it for INSUFFICIENT_MARGIN, as OANDA does), and every STOP_LOSS and
        TAKE_PROFIT order the price has reached (see the module docstring); how many
        it filled."""
        filled = 0
        for order in list(self.orders.values()):
            if order.state == "PENDING" and order.type in DEPENDENT:
                filled += self._trigger(order)
                continue
            if order.state != "PENDING" or order.type != "LIMIT" or order.price is None:
                continue
            instrument = self.instruments[order.instrument]
            crossed = (
                instrument.ask <= order.price if order.units > 0 else instrument.bid >= order.price
            )
            if not crossed:
                continue
            if self._fill(order, order.price, reason="LIMIT_ORDER") is not None:
                filled += 1
            else:
                self._cancel(order, "INSUFFICIENT_MARGIN")
        return filled

    def _trigger(self, order: Order) -> int:
        """Fill a trade's stop-loss or take-profit if the price has reached it."""
        trade = self.trades.get(order.trade_id or "")
        if trade is None or order.price is None:
            return 0
        instrument = self.instruments[trade.instrument]
        long = trade.current_units > 0
        # The price that closes the trade: a long trade sells at the bid.
        market = instrument.bid if long else instrument.ask
        losing = market <= order.price if long else market >= order.price
        gaining = market >= order.price if long else market <= order.price
        if order.type == "STOP_LOSS" and losing:
            price, reason = market, "STOP_LOSS_ORDER"
        elif order.type == "TAKE_PROFIT" and gaining:
            price, reason = order.price, "TAKE_PROFIT_ORDER"
        else:
            return 0
        order.units = -trade.current_units
        return 1 if self._fill(order, price, reason=reason) is not None else 0

    def rate_limit_next(self, count: int) -> None:
        """Answer the next `count` requests with 429 and `Retry-After: 0`."""
        self._rate_limited = count

    def refuse_next(self, kind: str, reason: str) -> None:
        """Refuse the next order request of type `kind` (`TAKE_PROFIT`, ...) with
        400 and OANDA's reject `reason`, as OANDA refuses a price it finds too close."""
        self._refuse[kind] = reason

    def hang_next_order(self) -> None:
        """Carry out the next order request, then hold its answer until the server
        stops (the client times out)."""
        self._hang_next = True

    def close_position(self, instrument: str) -> list[dict[str, Any]]:
        """Close both sides of the position at market, as a user on OANDA's platform
        would; the fill transactions."""
        fills = []
        for side in ("long", "short"):
            units = self._side_units(instrument, side)
            if units != 0:
                fills.append(self._closeout(instrument, -units)[1])
        return fills

    def order_by_client_id(self, client_id: str) -> Order | None:
        for order in reversed(self.orders.values()):
            if order.client_id == client_id:
                return order
        return None

    def hits(self, path_suffix: str, method: str = "GET") -> int:
        """How many `method` requests ended in `path_suffix`."""
        return sum(1 for m, p in self.requests if m == method and p.endswith(path_suffix))

    # ------------------------------------------------------------------ accounting

    def _rate(self, instrument: Instrument) -> Decimal:
        """Value of one quote-currency unit in the account currency."""
        if instrument.quote == self.currency:
            return Decimal(1)
        if instrument.base == self.currency:
            return 1 / instrument.mid
        raise AssertionError(f"the fake cannot convert {instrument.quote} to {self.currency}")

    def _net_units(self, name: str) -> Decimal:
        return sum((t.current_units for t in self.trades.values() if t.instrument == name), ZERO)

    def _side_units(self, name: str, side: str) -> Decimal:
        sign = 1 if side == "long" else -1
        return sum(
            (
                t.current_units
                for t in self.trades.values()
                if t.instrument == name and t.current_units * sign > 0
            ),
            ZERO,
        )

    def _unrealized(self, trade: Trade) -> Decimal:
        instrument = self.instruments[trade.instrument]
        close = instrument.bid if trade.current_units > 0 else instrument.ask
        return (close - trade.price) * trade.current_units * self._rate(instrument)

    def _margin_used(self, nets: Mapping[str, Decimal] | None = None) -> Decimal:
        total = ZERO
        for name, instrument in self.instruments.items():
            net = nets[name] if nets is not None and name in nets else self._net_units(name)
            total += abs(net) * instrument.mid * instrument.margin_rate * self._rate(instrument)
        return total

    def _nav(self) -> Decimal:
        return self.balance + sum((self._unrealized(t) for t in self.trades.values()), ZERO)

    # ------------------------------------------------------------------ transactions

    def _transact(self, type_: str, **fields: Any) -> dict[str, Any]:
        tx_id = str(next(self._ids))
        tx = {
            "id": tx_id,
            "time": now_rfc3339(),
            "userID": 1234567,
            "accountID": self.account_id,
            "batchID": tx_id,
            "requestID": f"2{tx_id:0>17}",
            "type": type_,
            **fields,
        }
        self.transactions[tx_id] = tx
        return tx

    @property
    def _last_id(self) -> str:
        return str(max((int(i) for i in self.transactions), default=0))

    def _place(self, spec: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Carry out an order request; the status and body OANDA would answer."""
        kind = str(spec.get("type", "MARKET"))
        try:
            order = self._validate(kind, spec)
        except _Reject as e:
            tx = self._transact(
                f"{kind}_ORDER_REJECT",
                instrument=spec.get("instrument"),
                units=spec.get("units"),
                rejectReason=e.reason,
                clientExtensions=spec.get("clientExtensions"),
            )
            return e.status, {
                "orderRejectTransaction": tx,
                "relatedTransactionIDs": [tx["id"]],
                "lastTransactionID": tx["id"],
                "errorCode": e.reason,
                "errorMessage": e.message,
            }
        instrument = self.instruments[order.instrument]
        if kind in DEPENDENT:
            return self._place_dependent(order, instrument)
        created = self._transact(
            f"{kind}_ORDER",
            instrument=order.instrument,
            units=_units(order.units),
            timeInForce=order.time_in_force,
            positionFill=order.position_fill,
            reason="CLIENT_ORDER",
            **({"price": instrument.price_text(order.price)} if order.price is not None else {}),
            **({"clientExtensions": {"id": order.client_id}} if order.client_id else {}),
        )
        order.id = created["id"]
        order.create_time = created["time"]
        self.orders[order.id] = order
        body: dict[str, Any] = {"orderCreateTransaction": created}
        market = instrument.ask if order.units > 0 else instrument.bid
        crossed = kind == "MARKET" or (
            order.price is not None
            and (market <= order.price if order.units > 0 else market >= order.price)
        )
        if crossed:
            reason = "MARKET_ORDER" if kind == "MARKET" else "LIMIT_ORDER"
            fill = self._fill(order, market, reason=reason)
            if fill is not None:
                body["orderFillTransaction"] = fill
            else:
                body["orderCancelTransaction"] = self._cancel(order, "INSUFFICIENT_MARGIN")
        ids = [tx["id"] for tx in body.values()]
        return 201, body | {"relatedTransactionIDs": ids, "lastTransactionID": ids[-1]}

    def _place_dependent(self, order: Order, instrument: Instrument) -> tuple[int, dict[str, Any]]:
        created = self._transact(
            f"{order.type}_ORDER",
            tradeID=order.trade_id,
            price=instrument.price_text(order.price or ZERO),
            timeInForce=order.time_in_force,
            triggerCondition="DEFAULT",
            reason="CLIENT_ORDER",
            **({"clientExtensions": {"id": order.client_id}} if order.client_id else {}),
        )
        order.id = created["id"]
        order.create_time = created["time"]
        self.orders[order.id] = order
        return 201, {
            "orderCreateTransaction": created,
            "relatedTransactionIDs": [created["id"]],
            "lastTransactionID": created["id"],
        }

    def _validate_dependent(self, kind: str, spec: Mapping[str, Any]) -> Order:
        refused = self._refuse.pop(kind, None)
        if refused is not None:
            raise _Reject(refused, "The order was refused (a test's refuse_next)")
        trade_id = spec.get("tradeID")
        if not trade_id:
            raise _Reject("TRADE_ID_UNSPECIFIED", "The Trade ID has not been specified")
        trade = self.trades.get(str(trade_id))
        if trade is None:
            raise _Reject("TRADE_DOESNT_EXIST", "The Trade specified does not exist")
        if any(
            o.trade_id == trade.id and o.type == kind and o.state == "PENDING"
            for o in self.orders.values()
        ):
            raise _Reject(
                f"{kind}_ORDER_ALREADY_EXISTS",
                f"The Trade already has a {kind.replace('_', ' ').title()} Order",
            )
        instrument = self.instruments[trade.instrument]
        price = _checked_price(instrument, spec.get("price"))
        tif = str(spec.get("timeInForce") or "GTC")
        if tif not in ("GTC", "GFD", "GTD"):
            raise _Reject("TIME_IN_FORCE_INVALID", f"The time in force {tif} is invalid")
        client_id = self._free_client_id(spec)
        return Order(
            id="",
            type=kind,
            instrument=trade.instrument,
            units=-trade.current_units,
            time_in_force=tif,
            create_time="",
            client_id=client_id,
            price=price,
            position_fill="REDUCE_ONLY",
            trade_id=trade.id,
        )

    def _free_client_id(self, spec: Mapping[str, Any]) -> str | None:
        client_id = (spec.get("clientExtensions") or {}).get("id")
        if client_id is None:
            return None
        held = self.order_by_client_id(str(client_id))
        if held is not None and held.state == "PENDING":
            raise _Reject(
                "CLIENT_ORDER_ID_ALREADY_EXISTS",
                "The client order ID specified is already assigned to another pending order",
            )
        return str(client_id)

    def _validate(self, kind: str, spec: Mapping[str, Any]) -> Order:
        if kind in DEPENDENT:
            return self._validate_dependent(kind, spec)
        if kind not in ("MARKET", "LIMIT"):
            raise _Reject(
                "ORDER_TYPE_INVALID",
                f"The fake supports MARKET, LIMIT, STOP_LOSS and TAKE_PROFIT, not {kind}",
            )
        name = spec.get("instrument")
        if not name:
            raise _Reject("INSTRUMENT_MISSING", "The instrument has not been specified")
        instrument = self.instruments.get(str(name))
        if instrument is None:
            raise _Reject("INSTRUMENT_UNKNOWN", "The instrument specified is unknown")
        units = _checked_units(instrument, spec.get("units"))
        price = _checked_price(instrument, spec.get("price")) if kind == "LIMIT" else None
        tif = str(spec.get("timeInForce") or ("FOK" if kind == "MARKET" else "GTC"))
        allowed = ("FOK", "IOC") if kind == "MARKET" else ("GTC", "GFD", "GTD", "FOK", "IOC")
        if tif not in allowed:
            raise _Reject("TIME_IN_FORCE_INVALID", f"The time in force {tif} is invalid")
        client_id = self._free_client_id(spec)
        return Order(
            id="",
            type=kind,
            instrument=instrument.name,
            units=units,
            time_in_force=tif,
            create_time="",
            client_id=client_id,
            price=price,
            position_fill=str(spec.get("positionFill") or "DEFAULT"),
        )

    def _fill(self, order: Order, price: Decimal, *, reason: str) -> dict[str, Any] | None:
        """Fill `order` at `price`: the ORDER_FILL transaction, or None when the account
        lacks the margin for the position it would leave."""
        net = self._net_units(order.instrument)
        after = net + order.units
        if abs(after) > abs(net) and self._margin_used({order.instrument: after}) > self._nav():
            return None
        fill = self._execute(order, price, reason=reason)
        order.state = "FILLED"
        order.filling_transaction_id = fill["id"]
        order.filled_time = fill["time"]
        order.trade_opened_id = (fill.get("tradeOpened") or {}).get("tradeID")
        order.trade_closed_ids = [t["tradeID"] for t in fill.get("tradesClosed", [])]
        if fill.get("tradeReduced"):
            order.trade_closed_ids.append(fill["tradeReduced"]["tradeID"])
        return fill

    def _execute(self, order: Order, price: Decimal, *, reason: str) -> dict[str, Any]:
        """Book `order`'s fill at `price`: close opposite trades FIFO (a stop-loss or
        take-profit: its own trade only), open the rest; cancel the dependent orders of
        the trades it closed."""
        name, units = order.instrument, order.units
        instrument = self.instruments[name]
        rate = self._rate(instrument)
        tx_id = str(next(self._ids))
        time = now_rfc3339()
        remaining = units
        closed: list[dict[str, Any]] = []
        reduced: dict[str, Any] | None = None
        pl = ZERO
        for trade in list(self.trades.values()):
            if remaining == 0:
                break
            if trade.instrument != name or trade.current_units * remaining >= 0:
                continue
            if order.trade_id is not None and trade.id != order.trade_id:
                continue
            take = -trade.current_units if abs(trade.current_units) <= abs(remaining) else remaining
            trade_pl = (price - trade.price) * -take * rate
            pl += trade_pl
            trade.realized_pl += trade_pl
            entry = {
                "tradeID": trade.id,
                "units": _units(take),
                "price": instrument.price_text(price),
                "realizedPL": _money(trade_pl),
                "financing": "0.0000",
                "guaranteedExecutionFee": "0.0000",
                "halfSpreadCost": _money(abs(take) * instrument.half_spread * rate),
            }
            trade.current_units += take
            remaining -= take
            trade.closing_transaction_ids.append(tx_id)
            if trade.current_units == 0:
                del self.trades[trade.id]
                trade.close_time, trade.average_close_price = time, price
                self.closed_trades[trade.id] = trade
                closed.append(entry)
            else:
                reduced = entry
        opened = None
        if remaining != 0:
            self.trades[tx_id] = Trade(tx_id, name, price, time, remaining, remaining)
            opened = {
                "tradeID": tx_id,
                "units": _units(remaining),
                "price": instrument.price_text(price),
                "guaranteedExecutionFee": "0.0000",
                "halfSpreadCost": _money(abs(remaining) * instrument.half_spread * rate),
                "initialMarginRequired": _money(
                    abs(remaining) * price * instrument.margin_rate * rate
                ),
            }
        commission = self.commission
        self.balance += pl - commission
        full_price = self._price_json(instrument)
        fill: dict[str, Any] = {
            "id": tx_id,
            "time": time,
            "userID": 1234567,
            "accountID": self.account_id,
            "batchID": order.id,
            "requestID": f"2{tx_id:0>17}",
            "type": "ORDER_FILL",
            "orderID": order.id,
            "instrument": name,
            "units": _units(units),
            "price": instrument.price_text(price),
            "fullVWAP": instrument.price_text(price),
            "fullPrice": {
                "type": "PRICE",
                "bids": full_price["bids"],
                "asks": full_price["asks"],
                "closeoutBid": full_price["closeoutBid"],
                "closeoutAsk": full_price["closeoutAsk"],
                "timestamp": time,
            },
            "reason": reason,
            "pl": _money(pl),
            "financing": "0.0000",
            "commission": _money(commission),
            "guaranteedExecutionFee": "0.0000",
            "accountBalance": _money(self.balance),
            "halfSpreadCost": _money(abs(units) * instrument.half_spread * rate),
        }
        if order.client_id is not None:
            fill["clientOrderID"] = order.client_id
        if opened is not None:
            fill["tradeOpened"] = opened
        if closed:
            fill["tradesClosed"] = closed
        if reduced is not None:
            fill["tradeReduced"] = reduced
        self.transactions[tx_id] = fill
        self._cancel_linked(order, {c["tradeID"] for c in closed})
        return fill

    def _cancel_linked(self, filled: Order, trade_ids: set[str]) -> None:
        """Closed trades take their pending stop-loss and take-profit with them."""
        for other in list(self.orders.values()):
            if other is not filled and other.state == "PENDING" and other.trade_id in trade_ids:
                self._cancel(other, "LINKED_TRADE_CLOSED")

    def _cancel(self, order: Order, reason: str) -> dict[str, Any]:
        tx = self._transact(
            "ORDER_CANCEL",
            orderID=order.id,
            reason=reason,
            **({"clientOrderID": order.client_id} if order.client_id else {}),
        )
        order.state = "CANCELLED"
        order.cancelling_transaction_id = tx["id"]
        order.cancelled_time = tx["time"]
        return tx

    def _closeout(self, name: str, units: Decimal) -> tuple[dict[str, Any], dict[str, Any]]:
        """A MARKET order for `units` that closes (part of) a position, and its fill."""
        instrument = self.instruments[name]
        created = self._transact(
            "MARKET_ORDER",
            instrument=name,
            units=_units(units),
            timeInForce="FOK",
            positionFill="REDUCE_ONLY",
            reason="POSITION_CLOSEOUT",
            **{
                "longPositionCloseout" if units < 0 else "shortPositionCloseout": {
                    "instrument": name,
                    "units": _units(abs(units)),
                }
            },
        )
        order = Order(
            id=created["id"],
            type="MARKET",
            instrument=name,
            units=units,
            time_in_force="FOK",
            create_time=created["time"],
            position_fill="REDUCE_ONLY",
        )
        self.orders[order.id] = order
        price = instrument.ask if units > 0 else instrument.bid
        fill = self._execute(order, price, reason="MARKET_ORDER_POSITION_CLOSEOUT")
        order.state = "FILLED"
        order.filling_transaction_id = fill["id"]
        order.filled_time = fill["time"]
        return created, fill

    # ------------------------------------------------------------------ JSON views

    def _price_json(self, instrument: Instrument) -> dict[str, Any]:
        return {
            "type": "PRICE",
            "instrument": instrument.name,
            "time": now_rfc3339(),
            "status": "tradeable",
            "tradeable": True,
            "bids": [{"price": instrument.price_text(instrument.bid), "liquidity": 10_000_000}],
            "asks": [{"price": instrument.price_text(instrument.ask), "liquidity": 10_000_000}],
            "closeoutBid": instrument.price_text(instrument.bid - instrument.half_spread),
            "closeoutAsk": instrument.price_text(instrument.ask + instrument.half_spread),
        }

    def _account_json(self) -> dict[str, Any]:
        unrealized = sum((self._unrealized(t) for t in self.trades.values()), ZERO)
        margin = self._margin_used()
        nav = self.balance + unrealized
        pending = sum(1 for o in self.orders.values() if o.state == "PENDING")
        return {
            "id": self.account_id,
            "alias": "Primary",
            "currency": self.currency,
            "balance": _money(self.balance),
            "NAV": _money(nav),
            "unrealizedPL": _money(unrealized),
            "pl": _money(self.balance - Decimal(100_000)),
            "marginRate": "0.02",
            "marginUsed": _money(margin),
            "marginAvailable": _money(max(ZERO, nav - margin)),
            "positionValue": _money(margin * 50),
            "openTradeCount": len(self.trades),
            "openPositionCount": sum(1 for n in self.instruments if self._net_units(n) != 0),
            "pendingOrderCount": pending,
            "hedgingEnabled": False,
            "createdTime": "2024-01-02T03:04:05.000000000Z",
            "lastTransactionID": self._last_id,
        }

    def _position_side(self, name: str, side: str) -> dict[str, Any]:
        sign = 1 if side == "long" else -1
        trades = [
            t for t in self.trades.values() if t.instrument == name and t.current_units * sign > 0
        ]
        units = sum((t.current_units for t in trades), ZERO)
        body: dict[str, Any] = {
            "units": _units(units),
            "pl": "0.0000",
            "resettablePL": "0.0000",
            "financing": "0.0000",
            "unrealizedPL": _money(sum((self._unrealized(t) for t in trades), ZERO)),
        }
        if trades:
            value = sum((t.price * t.current_units for t in trades), ZERO)
            body["averagePrice"] = self.instruments[name].price_text(value / units)
            body["tradeIDs"] = [t.id for t in trades]
        return body

    def _trade_json(self, trade: Trade) -> dict[str, Any]:
        instrument = self.instruments[trade.instrument]
        if trade.close_time is not None:
            return {
                "id": trade.id,
                "instrument": trade.instrument,
                "price": instrument.price_text(trade.price),
                "openTime": trade.open_time,
                "state": "CLOSED",
                "initialUnits": _units(trade.initial_units),
                "initialMarginRequired": "0.0000",
                "currentUnits": "0",
                "realizedPL": _money(trade.realized_pl),
                "financing": "0.0000",
                "closingTransactionIDs": list(trade.closing_transaction_ids),
                "closeTime": trade.close_time,
                "averageClosePrice": instrument.price_text(trade.average_close_price or ZERO),
            }
        dependents = {
            ("takeProfitOrder" if o.type == "TAKE_PROFIT" else "stopLossOrder"): o.to_json(
                instrument
            )
            for o in self.orders.values()
            if o.trade_id == trade.id and o.state == "PENDING"
        }
        return dependents | {
            "id": trade.id,
            "instrument": trade.instrument,
            "price": instrument.price_text(trade.price),
            "openTime": trade.open_time,
            "state": "OPEN",
            "initialUnits": _units(trade.initial_units),
            "initialMarginRequired": "0.0000",
            "currentUnits": _units(trade.current_units),
            "realizedPL": _money(trade.realized_pl),
            "unrealizedPL": _money(self._unrealized(trade)),
            "marginUsed": _money(
                abs(trade.current_units)
                * instrument.mid
                * instrument.margin_rate
                * self._rate(instrument)
            ),
            "financing": "0.0000",
        }

    def _find(self, spec: str) -> Order | None:
        if spec.startswith("@"):
            return self.order_by_client_id(spec[1:])
        return self.orders.get(spec)

    # ------------------------------------------------------------------ endpoints

    async def _accounts(self, request: Request) -> Response:
        return JSONResponse({"accounts": [{"id": self.account_id, "tags": []}]})

    async def _summary(self, request: Request) -> Response:
        return JSONResponse({"account": self._account_json(), "lastTransactionID": self._last_id})

    async def _instruments(self, request: Request) -> Response:
        names = _names(request)
        if names is not None and any(n not in self.instruments for n in names):
            return _invalid_instruments()
        chosen = [i for n, i in self.instruments.items() if names is None or n in names]
        return JSONResponse(
            {"instruments": [i.to_json() for i in chosen], "lastTransactionID": self._last_id}
        )

    async def _pricing(self, request: Request) -> Response:
        names = _names(request)
        if not names or any(n not in self.instruments for n in names):
            return _invalid_instruments()
        return JSONResponse(
            {
                "prices": [self._price_json(self.instruments[n]) for n in names],
                "time": now_rfc3339(),
            }
        )

    async def _create_order(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        spec = body.get("order") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            return _error(400, "Invalid value specified for 'order'")
        hang, self._hang_next = self._hang_next, False
        status, answer = self._place(spec)
        if hang:
            await self._closing.wait()
        return JSONResponse(answer, status_code=status)

    async def _get_order(self, request: Request) -> Response:
        order = self._find(request.path_params["spec"])
        if order is None:
            return _error(404, "The Order specified does not exist", "ORDER_DOESNT_EXIST")
        return JSONResponse(
            {
                "order": order.to_json(self.instruments[order.instrument]),
                "lastTransactionID": self._last_id,
            }
        )

    async def _cancel_order(self, request: Request) -> Response:
        spec = request.path_params["spec"]
        order = self._find(spec)
        if order is None or order.state != "PENDING":
            tx = self._transact(
                "ORDER_CANCEL_REJECT",
                orderID=order.id if order is not None else None,
                clientOrderID=spec[1:] if spec.startswith("@") else None,
                rejectReason="ORDER_DOESNT_EXIST",
            )
            return JSONResponse(
                {
                    "orderCancelRejectTransaction": tx,
                    "relatedTransactionIDs": [tx["id"]],
                    "lastTransactionID": tx["id"],
                    "errorCode": "ORDER_DOESNT_EXIST",
                    "errorMessage": "The Order specified does not exist",
                },
                status_code=404,
            )
        tx = self._cancel(order, "CLIENT_REQUEST")
        return JSONResponse(
            {
                "orderCancelTransaction": tx,
                "relatedTransactionIDs": [tx["id"]],
                "lastTransactionID": tx["id"],
            }
        )

    async def _pending_orders(self, request: Request) -> Response:
        pending = [
            o.to_json(self.instruments[o.instrument])
            for o in self.orders.values()
            if o.state == "PENDING"
        ]
        return JSONResponse({"orders": pending, "lastTransactionID": self._last_id})

    async def _open_positions(self, request: Request) -> Response:
        positions = []
        for name in self.instruments:
            long = self._position_side(name, "long")
            short = self._position_side(name, "short")
            if long["units"] == "0" and short["units"] == "0":
                continue
            unrealized = Decimal(long["unrealizedPL"]) + Decimal(short["unrealizedPL"])
            positions.append(
                {
                    "instrument": name,
                    "pl": "0.0000",
                    "resettablePL": "0.0000",
                    "financing": "0.0000",
                    "commission": "0.0000",
                    "unrealizedPL": _money(unrealized),
                    "marginUsed": _money(self._margin_used({name: self._net_units(name)})),
                    "long": long,
                    "short": short,
                }
            )
        return JSONResponse({"positions": positions, "lastTransactionID": self._last_id})

    async def _open_trades(self, request: Request) -> Response:
        trades = [self._trade_json(t) for t in reversed(self.trades.values())]
        return JSONResponse({"trades": trades, "lastTransactionID": self._last_id})

    async def _get_trade(self, request: Request) -> Response:
        spec = request.path_params["spec"]
        trade = self.trades.get(spec) or self.closed_trades.get(spec)
        if trade is None:
            return _error(404, "The Trade specified does not exist", "TRADE_DOESNT_EXIST")
        return JSONResponse({"trade": self._trade_json(trade), "lastTransactionID": self._last_id})

    async def _close(self, request: Request) -> Response:
        name = request.path_params["instrument"]
        if name not in self.instruments:
            return _error(400, "Invalid value specified for 'instrument'")
        try:
            body = await request.json()
        except ValueError:
            body = {}
        answer: dict[str, Any] = {}
        for side in ("long", "short"):
            wanted = str((body or {}).get(f"{side}Units", "NONE"))
            if wanted == "NONE":
                continue
            held = self._side_units(name, side)
            if held == 0:
                return _error(
                    400,
                    f"The Position requested to be closed out does not exist ({side})",
                    "CLOSEOUT_POSITION_DOESNT_EXIST",
                )
            units = held if wanted == "ALL" else Decimal(wanted) * (1 if side == "long" else -1)
            created, fill = self._closeout(name, -units)
            answer[f"{side}OrderCreateTransaction"] = created
            answer[f"{side}OrderFillTransaction"] = fill
        ids = [tx["id"] for tx in answer.values()]
        return JSONResponse(
            answer | {"relatedTransactionIDs": ids, "lastTransactionID": self._last_id}
        )

    async def _transaction(self, request: Request) -> Response:
        tx = self.transactions.get(request.path_params["tx"])
        if tx is None:
            return _error(404, "The transaction ID specified does not exist", "NO_SUCH_TRANSACTION")
        return JSONResponse({"transaction": tx, "lastTransactionID": self._last_id})


class _Gate:
    """ASGI middleware: records each request, then rate limits, authenticates and
    checks the account id before any endpoint runs, as OANDA's front end does."""

    def __init__(self, app: Any, fake: FakeOanda) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fake = self.fake
        path: str = scope["path"]
        fake.requests.append((scope["method"], path))
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        response: Response | None = None
        if fake._rate_limited > 0:
            fake._rate_limited -= 1
            response = _error(429, "Requests per second exceeded", headers={"Retry-After": "0"})
        elif headers.get("authorization") != f"Bearer {fake.token}":
            response = _error(401, "Insufficient authorization to perform request.")
        elif path.startswith("/v3/accounts/"):
            account = path.split("/")[3]
            if account != fake.account_id:
                response = _error(403, "The provided request was forbidden.")
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _checked_units(instrument: Instrument, value: Any) -> Decimal:
    if value is None:
        raise _Reject("UNITS_MISSING", "Order units have not been specified")
    units = _parse(value)
    if units is None or units == 0:
        raise _Reject("UNITS_INVALID", "The units specified are invalid")
    if _decimals(units) > instrument.units_precision:
        raise _Reject("UNITS_PRECISION_EXCEEDED", "The units precision has been exceeded")
    if abs(units) < instrument.minimum_trade_size:
        raise _Reject("UNITS_MINIMUM_NOT_MET", "The units specified are below the minimum")
    if abs(units) > instrument.maximum_order_units:
        raise _Reject("UNITS_LIMIT_EXCEEDED", "The units specified exceed the maximum")
    return units


def _checked_price(instrument: Instrument, value: Any) -> Decimal:
    if value is None:
        raise _Reject("PRICE_MISSING", "The price has not been specified")
    price = _parse(value)
    if price is None or price <= 0:
        raise _Reject("PRICE_INVALID", "The price specified is invalid")
    if _decimals(price) > instrument.display_precision:
        raise _Reject("PRICE_PRECISION_EXCEEDED", "The price precision has been exceeded")
    return price


def _decimals(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _names(request: Request) -> list[str] | None:
    raw = request.query_params.get("instruments")
    return [n for n in raw.split(",") if n] if raw is not None else None


def _parse(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _invalid_instruments() -> Response:
    return _error(400, "Invalid value specified for 'instruments'")


def _error(
    status: int,
    message: str,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"errorMessage": message}
    if code is not None:
        body["errorCode"] = code
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))
