"""OANDA v20 REST adapter (forex and CFDs), on httpx.

What it speaks (https://developer.oanda.com/rest-live-v20/introduction/):

* Symbols are ours, `EUR/USD`; OANDA names the instrument `EUR_USD` (`to_instrument`,
  `to_symbol`). Quantities are units of the base currency, integers on currency pairs
  (`tradeUnitsPrecision`); a sell is negative units on the wire.
* `place_order` sends a MARKET order as fill-or-kill and a LIMIT order as good till
  cancelled, with our client order id in `clientExtensions.id`. `fetch_order` and
  `cancel_order` address the order as `@<client order id>`, so an order whose answer
  was lost is found without knowing OANDA's own id.
* OANDA refuses a client id only while another order with it is *pending*: a market
  order that filled leaves its id free for a second order. The adapter therefore
  looks the id up before it places (one extra read) and raises `DuplicateOrder` when
  any order already carries it, which is what makes "never twice" hold here.
* A MARKET order OANDA cannot fill comes back `201 Created` with an
  `orderCancelTransaction` and a reason, not an HTTP error: `INSUFFICIENT_MARGIN`
  raises `InsufficientFunds`, any other reason is a `rejected` report naming it.
* Protective orders (`holds_exits`: always; `place_exits`): OANDA holds a trade's
  stop-loss and take-profit as orders that belong to the trade, `STOP_LOSS` and
  `TAKE_PROFIT` with its `tradeID` and our client order id, one request each. When
  one fills it closes the trade and OANDA cancels the other (`LINKED_TRADE_CLOSED`),
  as it does when any other fill closes the trade. They are placed only on a
  position that is exactly one trade with the legs' units; anything else (several
  trades, a quantity that is not the trade's) raises `InvalidOrder`, and the service
  watches the position instead. Both legs are looked up by client order id first, so
  a retry returns the legs placed before. Reported, a leg's symbol and quantity come
  from its fill transaction or its trade, its side is the trade's opposite.
* Fills come from the order's `ORDER_FILL` transaction: `fill_id` is that
  transaction's id, `price` its price. `fee` is `commission + guaranteedExecutionFee`,
  the charges OANDA books on top of the price, converted to the quote currency.
  `halfSpreadCost` is *not* added: the fill price is already the ask (buy) or the bid
  (sell), so the half spread is in the price, and adding it would count it twice.
  Financing (overnight interest) is not a fee of the fill either.
* `balances` reports the account currency only: `free` is `marginAvailable` (what new
  positions may use), `total` is `NAV` (balance plus unrealized profit and loss, what
  the account is worth if everything were closed now).
* `positions` nets OANDA's long and short sides into one signed quantity; its average
  price is that of the side that remains.

Config (the trade account's `config`): `api_url` (a host to use instead of OANDA's;
tests), `sandbox` (true: the practice host, false: the live host; unset: practice on a
paper account, live on a live one), `account_id` (or credentials `account_id`; unset:
the token's only account), `timeout_seconds` (default 10), `currency` (optional: refuse
to start when the account's currency differs). Credentials: `api_token` (required).

Errors are translated in one place, `translate_error`; the token never reaches a
message or a log line (messages are built from OANDA's answer, and scrubbed of the
token besides).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import quote as url_quote

import httpx

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
    PositionReport,
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
from shared.kernel.orders import OrderSide, OrderStatus, OrderType
from shared.kernel.risk import MarketRules, Mode
from shared.logging import get_logger

PRACTICE_URL: Final = "https://api-fxpractice.oanda.com"
LIVE_URL: Final = "https://api-fxtrade.oanda.com"
DEFAULT_TIMEOUT: Final = 10.0

_log = get_logger("execution.adapters.oanda")

# OANDA's order types as ours.
_ORDER_TYPES: Final = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "STOP": OrderType.STOP,
    "MARKET_IF_TOUCHED": OrderType.TAKE_PROFIT,
}
# Orders that belong to a trade: no instrument or units of their own (the trade's).
# Others of the kind (TRAILING_STOP_LOSS, GUARANTEED_STOP_LOSS) are not ours: skipped.
_TRADE_ORDER_TYPES: Final = {
    "STOP_LOSS": OrderType.STOP,
    "TAKE_PROFIT": OrderType.TAKE_PROFIT,
}
_EXIT_TYPES: Final = {OrderType.STOP: "STOP_LOSS", OrderType.TAKE_PROFIT: "TAKE_PROFIT"}

# Error codes (`errorCode`, or a reject transaction's `rejectReason`) by meaning.
_DUPLICATE_CODES: Final = frozenset({"CLIENT_ORDER_ID_ALREADY_EXISTS"})
_FUNDS_CODES: Final = frozenset({"INSUFFICIENT_MARGIN", "INSUFFICIENT_LIQUIDITY"})
_UNKNOWN_INSTRUMENT_CODES: Final = frozenset({"INSTRUMENT_UNKNOWN", "INSTRUMENT_MISSING"})
_NOT_TRADEABLE_CODES: Final = frozenset({"INSTRUMENT_NOT_TRADEABLE"})
_NO_ORDER_CODES: Final = frozenset({"ORDER_DOESNT_EXIST", "NO_SUCH_ORDER"})


# --------------------------------------------------------------------------- symbols


def to_instrument(symbol: str) -> str:
    """OANDA's name of our symbol: `EUR/USD` -> `EUR_USD`.

    Raises:
        UnknownSymbol: `symbol` is not of the form BASE/QUOTE.
    """
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote or "/" in quote or "_" in symbol:
        raise UnknownSymbol(
            f"{symbol!r} is not a symbol of the form BASE/QUOTE (EUR/USD, XAU/USD)",
            exchange="oanda",
        )
    return f"{base.upper()}_{quote.upper()}"


def to_symbol(instrument: str) -> str:
    """Our symbol of an OANDA instrument: `EUR_USD` -> `EUR/USD`."""
    base, _, quote = instrument.rpartition("_")
    return f"{base}/{quote}" if base else instrument


def base_url(spec: AccountSpec) -> str:
    """The host `spec`'s adapter talks to (see the module docstring for the rule)."""
    api_url = spec.config.get("api_url")
    if api_url:
        return str(api_url).rstrip("/")
    sandbox = spec.config.get("sandbox")
    practice = spec.mode is Mode.PAPER if sandbox is None else bool(sandbox)
    return PRACTICE_URL if practice else LIVE_URL


# --------------------------------------------------------------------------- errors


def translate_error(
    failure: httpx.Response | httpx.HTTPError,
    *,
    what: str,
    venue: str = "oanda",
    secrets: Sequence[str] = (),
) -> ExchangeError:
    """The typed error for a failed request: an error answer or a transport failure.

    `what` names the request (`POST /v3/accounts/X/orders`) for the message; the
    message is built from OANDA's `errorCode` / `errorMessage` (or a reject
    transaction's `rejectReason`), never from the request, and any of `secrets` is
    cut out of it in case the server echoed one.
    """
    if isinstance(failure, httpx.HTTPError):
        return _transport_error(failure, what=what, venue=venue)

    status = failure.status_code
    body = _json_object(failure)
    code = str(body.get("errorCode") or _reject_reason(body) or "")
    detail = str(body.get("errorMessage") or failure.reason_phrase or "no message")
    message = _scrub(f"{what}: HTTP {status}{f' {code}' if code else ''}: {detail}", secrets)
    if status == 429:
        return RateLimited(message, exchange=venue, retry_after=_retry_after(failure))
    if status >= 500:
        return ExchangeUnavailable(message, exchange=venue)
    if status == 401:
        return AuthenticationError(
            f"{message}; check the trade account's api_token", exchange=venue
        )
    if status == 403 or code in _NOT_TRADEABLE_CODES:
        return PermissionDenied(message, exchange=venue)
    if code in _DUPLICATE_CODES:
        return DuplicateOrder(message, exchange=venue)
    if code in _FUNDS_CODES:
        return InsufficientFunds(message, exchange=venue)
    if code in _UNKNOWN_INSTRUMENT_CODES or "'instrument" in detail:
        return UnknownSymbol(message, exchange=venue)
    if status == 404 and code in _NO_ORDER_CODES:
        return OrderNotFound(message, exchange=venue)
    if status == 400:
        return InvalidOrder(message, exchange=venue)
    return ExchangeRejected(message, exchange=venue)


def _transport_error(failure: httpx.HTTPError, *, what: str, venue: str) -> ExchangeError:
    # The message names the exception class only: httpx's own text may quote the request.
    kind = type(failure).__name__
    if isinstance(failure, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # No connection, so the request never left: the venue did not act.
        return ExchangeUnavailable(
            f"{what}: could not connect ({kind}); the request was not sent", exchange=venue
        )
    if isinstance(failure, httpx.TimeoutException):
        return OutcomeUnknown(
            f"{what}: no answer in time ({kind}); OANDA may have carried it out", exchange=venue
        )
    return OutcomeUnknown(
        f"{what}: the connection failed ({kind}); OANDA may have carried it out", exchange=venue
    )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _reject_reason(body: Mapping[str, Any]) -> str | None:
    """`rejectReason` of the reject transaction in an error answer, if any."""
    for key, value in body.items():
        if key.endswith("RejectTransaction") and isinstance(value, dict):
            reason = value.get("rejectReason")
            if reason:
                return str(reason)
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # the HTTP-date form: fall back to the policy's backoff
        return None
    return max(0.0, seconds) if seconds is not None else None


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


# --------------------------------------------------------------------------- values


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ExchangeRejected(f"OANDA sent {name}={value!r}, not a number", exchange="oanda")
    return number


def _optional_decimal(value: Any, name: str) -> Decimal | None:
    return None if value is None or value == "" else _decimal(value, name)


_FRACTION = re.compile(r"\.(\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """An OANDA time (RFC 3339 with up to nanoseconds, or UNIX seconds) in UTC."""
    if not value:
        return None
    text = str(value)
    try:
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), tz=UTC)
        # Python reads at most microseconds; OANDA sends nanoseconds.
        parsed = datetime.fromisoformat(_FRACTION.sub(r".\1", text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)


def _units(quantity: Decimal, side: OrderSide) -> str:
    """Signed units as OANDA reads them: `1000`, `-1000` (no exponent, no `.0`)."""
    signed = quantity if side is OrderSide.BUY else -quantity
    if signed == signed.to_integral_value():
        return str(int(signed))
    return f"{signed.normalize():f}"


def _price(price: Decimal) -> str:
    return f"{price.normalize():f}"


def _with_message(error: ExchangeError, message: str) -> ExchangeError:
    """`error`'s kind (so the caller branches as before) with another message."""
    text = message.removeprefix(f"{error.exchange}: ") if error.exchange else message
    if isinstance(error, RateLimited):
        return RateLimited(text, exchange=error.exchange, retry_after=error.retry_after)
    return type(error)(text, exchange=error.exchange)


# --------------------------------------------------------------------------- adapter


@register_adapter("oanda")
class OandaAdapter(ExchangeAdapter):
    """OANDA v20 over REST; see the module docstring for what it maps and why."""

    capabilities = Capabilities(
        market_orders=True,
        limit_orders=True,
        stop_orders=True,
        client_order_ids=True,
        positions=True,
        sandbox=True,
    )

    def __init__(self, spec: AccountSpec, *, clock: Clock) -> None:
        super().__init__(spec, clock=clock)
        (self._token,) = spec.credentials.require("api_token", exchange=spec.exchange)
        self.base_url = base_url(spec)
        account = spec.config.get("account_id") or spec.credentials.get("account_id")
        self.account_id: str | None = str(account) if account else None
        timeout = spec.config.get("timeout_seconds", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise AdapterConfigError(
                f"trade account {spec.name!r}: timeout_seconds must be a positive number of "
                f"seconds, not {timeout!r}"
            )
        #: The account's currency, known once `start` has read the account.
        self.currency: str | None = None
        self._instruments: dict[str, dict[str, Any]] | None = None
        self._retry = RetryPolicy()
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=float(timeout),
            headers={
                "Authorization": f"Bearer {self._token}",
                "Accept-Datetime-Format": "RFC3339",
                "Content-Type": "application/json",
            },
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Find the account, check its currency, and load its instruments."""
        if self.account_id is None:
            self.account_id = await self._only_account()
        account = await self._account()
        currency = str(account.get("currency") or "")
        expected = self.spec.config.get("currency")
        if expected and str(expected).upper() != currency:
            raise AdapterConfigError(
                f"trade account {self.spec.name!r}: OANDA account {self.account_id} is in "
                f"{currency}, but the trade account's config says currency {expected}"
            )
        self.currency = currency
        await self._load_instruments()

    async def close(self) -> None:
        await self._client.aclose()

    async def _only_account(self) -> str:
        body = await self._request("GET", "/v3/accounts")
        ids = [str(a["id"]) for a in body.get("accounts", []) if isinstance(a, dict)]
        if len(ids) != 1:
            raise AdapterConfigError(
                f"trade account {self.spec.name!r}: the token reaches {len(ids)} OANDA "
                f"accounts ({', '.join(ids) or 'none'}); set config account_id to one of them"
            )
        return ids[0]

    # ------------------------------------------------------------------ market data

    async def market_rules(self, symbol: str) -> MarketRules:
        info = await self._instrument(symbol)
        display = int(info.get("displayPrecision", 5))
        units_precision = int(info.get("tradeUnitsPrecision", 0))
        max_units = _optional_decimal(info.get("maximumOrderUnits"), "maximumOrderUnits")
        return MarketRules(
            symbol=symbol,
            amount_step=Decimal(1).scaleb(-units_precision),
            amount_precision=units_precision,
            price_tick=Decimal(1).scaleb(-display),
            price_precision=display,
            min_amount=_decimal(info.get("minimumTradeSize", "1"), "minimumTradeSize"),
            max_amount=max_units if max_units and max_units > 0 else None,
            # OANDA's standard pricing charges the spread, which is in the fill price.
            taker_fee=ZERO,
        )

    async def last_price(self, symbol: str) -> Decimal:
        """The mid of the best bid and ask (the closeout prices when no book is sent)."""
        info = await self._instrument(symbol)
        body = await self._request(
            "GET", f"{self._account_path}/pricing", params={"instruments": info["name"]}
        )
        for price in body.get("prices", []):
            if price.get("instrument") != info["name"]:
                continue
            bids, asks = price.get("bids") or [], price.get("asks") or []
            if bids and asks:
                bid, ask = bids[0].get("price"), asks[0].get("price")
            else:
                bid, ask = price.get("closeoutBid"), price.get("closeoutAsk")
            if bid is not None and ask is not None:
                return (_decimal(bid, "bid") + _decimal(ask, "ask")) / 2
        raise ExchangeRejected(f"OANDA sent no price for {symbol}", exchange=self.venue)

    # ------------------------------------------------------------------ orders

    async def place_order(self, request: OrderRequest) -> OrderReport:
        info = await self._instrument(request.symbol)
        order = self._order_body(request, info["name"])
        await self._refuse_known_id(request.client_order_id)
        body = await self._request(
            "POST", f"{self._account_path}/orders", json={"order": order}, idempotent=False
        )
        return self._placed(request, body)

    def _order_body(self, request: OrderRequest, instrument: str) -> dict[str, Any]:
        order: dict[str, Any] = {
            "instrument": instrument,
            "units": _units(request.quantity, request.side),
            "positionFill": "DEFAULT",
            "clientExtensions": {"id": request.client_order_id},
        }
        if request.type is OrderType.MARKET:
            return order | {"type": "MARKET", "timeInForce": "FOK"}
        if request.type is OrderType.LIMIT:
            if request.limit_price is None:
                raise InvalidOrder(
                    f"limit order {request.client_order_id} has no limit price",
                    exchange=self.venue,
                )
            return order | {
                "type": "LIMIT",
                "timeInForce": "GTC",
                "price": _price(request.limit_price),
            }
        raise InvalidOrder(
            f"order {request.client_order_id}: the OANDA adapter places market and limit "
            f"orders, not {request.type} (a stop-loss or take-profit belongs to a trade: "
            "place_exits)",
            exchange=self.venue,
        )

    async def _refuse_known_id(self, client_order_id: str) -> None:
        """Raise `DuplicateOrder` when any order, even a filled one, has this id."""
        try:
            existing = await self._get_order(client_order_id)
        except OrderNotFound:
            return
        raise DuplicateOrder(
            f"client order id {client_order_id} is already used by OANDA order "
            f"{existing.get('id')} ({existing.get('state')}); fetch that order instead",
            exchange=self.venue,
        )

    def _placed(self, request: OrderRequest, body: Mapping[str, Any]) -> OrderReport:
        created = body.get("orderCreateTransaction") or {}
        order_id = str(created["id"]) if created.get("id") is not None else None
        common: dict[str, Any] = {
            "client_order_id": request.client_order_id,
            "symbol": request.symbol,
            "side": request.side,
            "type": request.type,
            "quantity": request.quantity,
            "exchange_order_id": order_id,
            "limit_price": request.limit_price,
        }
        cancelled = body.get("orderCancelTransaction")
        if isinstance(cancelled, dict):
            reason = str(cancelled.get("reason") or "CANCELLED")
            if reason in _FUNDS_CODES:
                raise InsufficientFunds(
                    f"order {request.client_order_id} ({request.side} {request.quantity} "
                    f"{request.symbol}) was cancelled by OANDA: {reason}",
                    exchange=self.venue,
                )
            return OrderReport(
                status=OrderStatus.REJECTED,
                reason=reason,
                updated_at=parse_time(cancelled.get("time")) or self.clock(),
                **common,
            )
        filled = body.get("orderFillTransaction")
        if isinstance(filled, dict):
            fill = self._fill_report(filled, request.client_order_id, request.symbol)
            return self._with_fills(common, request.quantity, (fill,), fill.at)
        return OrderReport(
            status=OrderStatus.ACCEPTED,
            updated_at=parse_time(created.get("time")) or self.clock(),
            **common,
        )

    def holds_exits(self, symbol: str) -> bool:
        """OANDA holds every instrument's stop-loss and take-profit on the trade."""
        return True

    async def place_exits(
        self, stop: OrderRequest | None, target: OrderRequest | None
    ) -> list[OrderReport]:
        """The position's trade's STOP_LOSS and TAKE_PROFIT, one request each (see the
        module docstring). Legs placed before (found by client order id) are returned,
        not placed again; a leg still missing beside a pending one is placed on the
        same trade.

        Raises:
            InvalidOrder: the position is not one trade of the legs' units, or a leg
                is malformed; nothing was placed.
            ExchangeError: placing a leg failed; its message says which legs stand.
        """
        legs = [leg for leg in (stop, target) if leg is not None]
        if not legs:
            return []
        info = await self._exit_legs_checked(legs)
        found: dict[str, dict[str, Any]] = {}
        for leg in legs:
            try:
                found[leg.client_order_id] = await self._get_order(leg.client_order_id)
            except OrderNotFound:
                continue
        missing = [leg for leg in legs if leg.client_order_id not in found]
        if found and (not missing or any(o.get("state") != "PENDING" for o in found.values())):
            # Done before, or ended since (a leg filled: the trade is closed).
            return [await self._report(o) for o in found.values()]
        trade_id = next((str(o["tradeID"]) for o in found.values() if o.get("tradeID")), None)
        if trade_id is None:
            trade_id = await self._only_trade(legs[0], info["name"])
        reports = [await self._report(o) for o in found.values()]
        for leg in missing:
            try:
                reports.append(await self._place_exit(leg, trade_id))
            except ExchangeError as e:
                if not reports:
                    raise
                standing = ", ".join(r.client_order_id for r in reports)
                raise _with_message(
                    e, f"{e}; {standing} placed before it stands on trade {trade_id}"
                ) from e
        return reports

    async def _exit_legs_checked(self, legs: Sequence[OrderRequest]) -> dict[str, Any]:
        """The legs' instrument, once they are known to be one position's exits."""
        check_exit_legs(legs, venue=self.venue)
        for leg in legs:
            if leg.type not in _EXIT_TYPES:
                raise InvalidOrder(
                    f"order {leg.client_order_id}: a stop-loss or take-profit needs type "
                    f"stop or take_profit, not {leg.type}",
                    exchange=self.venue,
                )
        first = legs[0]
        info = await self._instrument(first.symbol)
        tick = Decimal(1).scaleb(-int(info.get("displayPrecision", 5)))
        for leg in legs:
            assert leg.stop_price is not None
            if leg.stop_price <= 0 or leg.stop_price % tick != 0:
                # Refused, not rounded: a stop moved by rounding is not the decision's.
                raise InvalidOrder(
                    f"order {leg.client_order_id}: price {leg.stop_price} is not on "
                    f"{info['name']}'s tick of {tick}",
                    exchange=self.venue,
                )
        return info

    async def _only_trade(self, leg: OrderRequest, instrument: str) -> str:
        """The id of the one open trade the legs close, or `InvalidOrder`."""
        body = await self._request("GET", f"{self._account_path}/openTrades")
        trades = [
            t
            for t in body.get("trades", [])
            if isinstance(t, dict) and t.get("instrument") == instrument
        ]
        wanted = -_decimal(_units(leg.quantity, leg.side), "units")  # a sell closes a long
        if len(trades) != 1:
            raise InvalidOrder(
                f"{leg.symbol}: OANDA holds {len(trades)} open trades of {instrument}, and a "
                "stop-loss or take-profit belongs to one trade; the service watches the "
                "position instead",
                exchange=self.venue,
            )
        (trade,) = trades
        units = _decimal(trade.get("currentUnits"), "currentUnits")
        if units != wanted:
            raise InvalidOrder(
                f"{leg.symbol}: OANDA trade {trade.get('id')} holds {units} units, the exits "
                f"would close {wanted}; the service watches the position instead",
                exchange=self.venue,
            )
        return str(trade["id"])

    async def _place_exit(self, leg: OrderRequest, trade_id: str) -> OrderReport:
        assert leg.stop_price is not None
        order = {
            "type": _EXIT_TYPES[leg.type],
            "tradeID": trade_id,
            "price": _price(leg.stop_price),
            "timeInForce": "GTC",
            "clientExtensions": {"id": leg.client_order_id},
        }
        body = await self._request(
            "POST", f"{self._account_path}/orders", json={"order": order}, idempotent=False
        )
        created = body.get("orderCreateTransaction") or {}
        if isinstance(body.get("orderFillTransaction"), dict) or isinstance(
            body.get("orderCancelTransaction"), dict
        ):
            # Filled or cancelled in the same answer: read it as any order.
            return await self.fetch_order(leg.symbol, leg.client_order_id)
        return OrderReport(
            client_order_id=leg.client_order_id,
            symbol=leg.symbol,
            side=leg.side,
            type=leg.type,
            status=OrderStatus.ACCEPTED,
            quantity=leg.quantity,
            exchange_order_id=str(created["id"]) if created.get("id") is not None else None,
            updated_at=parse_time(created.get("time")) or self.clock(),
            stop_price=leg.stop_price,
        )

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        return await self._report(await self._get_order(client_order_id))

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        """Cancel the order; one that filled or closed meanwhile is returned as it is."""
        try:
            await self._request(
                "PUT",
                f"{self._account_path}/orders/@{url_quote(client_order_id, safe='')}/cancel",
                idempotent=True,
            )
        except (OrderNotFound, InvalidOrder):
            # Not pending any more (filled, cancelled) or never placed: say which.
            report = await self.fetch_order(symbol, client_order_id)
            if report.status is OrderStatus.ACCEPTED:
                raise
            return report
        return await self.fetch_order(symbol, client_order_id)

    async def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        body = await self._request("GET", f"{self._account_path}/pendingOrders")
        wanted = to_instrument(symbol) if symbol is not None else None
        orders = [o for o in body.get("orders", []) if isinstance(o, dict)]
        trades: dict[str, dict[str, Any]] = {}
        if any(o.get("type") in _TRADE_ORDER_TYPES for o in orders):
            # A pending stop-loss or take-profit's trade is open: one read for all.
            listed = await self._request("GET", f"{self._account_path}/openTrades")
            trades = {str(t.get("id")): t for t in listed.get("trades", []) if isinstance(t, dict)}
        reports = []
        for order in orders:
            if order.get("type") in _TRADE_ORDER_TYPES:
                trade = trades.get(str(order.get("tradeID")))
                if trade is None:
                    trade = await self._trade(order.get("tradeID"))
                instrument = trade.get("instrument")
            elif order.get("type") in _ORDER_TYPES and "units" in order:
                trade, instrument = None, order.get("instrument")
            else:
                continue  # a trailing or guaranteed stop: not an order of ours
            if wanted is not None and instrument != wanted:
                continue
            reports.append(await self._report(order, trade))
        return reports

    async def _get_order(self, client_order_id: str) -> dict[str, Any]:
        specifier = "@" + url_quote(client_order_id, safe="")
        body = await self._request("GET", f"{self._account_path}/orders/{specifier}")
        order = body.get("order")
        if not isinstance(order, dict):
            raise ExchangeRejected(
                f"OANDA answered the order {client_order_id} without an order",
                exchange=self.venue,
            )
        return order

    async def _trade(self, trade_id: Any) -> dict[str, Any]:
        """A trade, open or closed."""
        body = await self._request(
            "GET", f"{self._account_path}/trades/{url_quote(str(trade_id), safe='')}"
        )
        trade = body.get("trade")
        if not isinstance(trade, dict):
            raise ExchangeRejected(
                f"OANDA answered trade {trade_id} without a trade", exchange=self.venue
            )
        return trade

    async def _transaction(self, transaction_id: Any) -> dict[str, Any]:
        body = await self._request("GET", f"{self._account_path}/transactions/{transaction_id}")
        transaction = body.get("transaction")
        return transaction if isinstance(transaction, dict) else {}

    async def _report(
        self, order: Mapping[str, Any], trade: Mapping[str, Any] | None = None
    ) -> OrderReport:
        """Our report of an OANDA order, with its fill transaction when it filled.
        A stop-loss or take-profit takes its instrument and units from `trade` (read
        when not given) or its fill: the units it closes, negated."""
        type_ = str(order.get("type"))
        dependent = type_ in _TRADE_ORDER_TYPES
        if not dependent and (type_ not in _ORDER_TYPES or "units" not in order):
            raise ExchangeRejected(
                f"OANDA order {order.get('id')} is a {type_} order, which this adapter does "
                "not report",
                exchange=self.venue,
            )
        fill_tx: dict[str, Any] = {}
        if order.get("fillingTransactionID"):
            fill_tx = await self._transaction(order["fillingTransactionID"])
            if fill_tx.get("type") != "ORDER_FILL":
                fill_tx = {}
        if not dependent:
            kind = _ORDER_TYPES[type_]
            units, instrument = _decimal(order["units"], "units"), order.get("instrument")
        elif fill_tx:
            kind = _TRADE_ORDER_TYPES[type_]
            units, instrument = _decimal(fill_tx.get("units"), "units"), fill_tx.get("instrument")
        else:
            kind = _TRADE_ORDER_TYPES[type_]
            if trade is None:
                trade = await self._trade(order.get("tradeID"))
            # A closed trade's currentUnits is 0: what the leg would have closed is
            # what the trade opened with.
            current = _decimal(trade.get("currentUnits") or 0, "currentUnits")
            held = current or _decimal(trade.get("initialUnits") or 0, "initialUnits")
            units, instrument = -held, trade.get("instrument")
        symbol = to_symbol(str(instrument or ""))
        extensions = order.get("clientExtensions") or {}
        client_order_id = str(extensions.get("id") or order.get("id"))
        price = _optional_decimal(order.get("price"), "price")
        common: dict[str, Any] = {
            "client_order_id": client_order_id,
            "symbol": symbol,
            "side": OrderSide.BUY if units > 0 else OrderSide.SELL,
            "type": kind,
            "quantity": abs(units),
            "exchange_order_id": str(order.get("id")),
            "limit_price": price if kind is OrderType.LIMIT else None,
            "stop_price": price if kind in (OrderType.STOP, OrderType.TAKE_PROFIT) else None,
        }
        state = order.get("state")
        if fill_tx:
            fill = self._fill_report(fill_tx, client_order_id, symbol)
            return self._with_fills(common, abs(units), (fill,), fill.at)
        if state == "CANCELLED":
            reason = None
            if order.get("cancellingTransactionID"):
                cancelled = await self._transaction(order["cancellingTransactionID"])
                reason = cancelled.get("reason")
            if reason == "TIME_IN_FORCE_EXPIRED":
                status = OrderStatus.EXPIRED
            elif kind is OrderType.MARKET:  # a market order is only cancelled unfilled
                status = OrderStatus.REJECTED
            else:
                status = OrderStatus.CANCELED
            return OrderReport(
                status=status,
                reason=str(reason) if reason else None,
                updated_at=parse_time(order.get("cancelledTime")) or self.clock(),
                **common,
            )
        return OrderReport(
            status=OrderStatus.ACCEPTED,
            updated_at=parse_time(order.get("createTime")) or self.clock(),
            **common,
        )

    def _with_fills(
        self,
        common: Mapping[str, Any],
        quantity: Decimal,
        fills: tuple[FillReport, ...],
        at: datetime,
    ) -> OrderReport:
        filled = sum((f.quantity for f in fills), ZERO)
        value = sum((f.quantity * f.price for f in fills), ZERO)
        return OrderReport(
            status=OrderStatus.FILLED if filled >= quantity else OrderStatus.PARTIALLY_FILLED,
            filled_quantity=filled,
            average_price=value / filled if filled else None,
            fee=sum((f.fee for f in fills), ZERO),
            updated_at=at,
            fills=fills,
            **common,
        )

    def _fill_report(
        self, transaction: Mapping[str, Any], client_order_id: str, symbol: str
    ) -> FillReport:
        units = _decimal(transaction.get("units"), "units")
        price = _decimal(transaction.get("price"), "price")
        charged = _decimal(transaction.get("commission") or 0, "commission") + _decimal(
            transaction.get("guaranteedExecutionFee") or 0, "guaranteedExecutionFee"
        )
        fee, fee_currency = self._fee_in_quote(charged, transaction, symbol, price)
        return FillReport(
            fill_id=str(transaction.get("id")),
            client_order_id=client_order_id,
            symbol=symbol,
            side=OrderSide.BUY if units > 0 else OrderSide.SELL,
            quantity=abs(units),
            price=price,
            fee=fee,
            at=parse_time(transaction.get("time")) or self.clock(),
            fee_currency=fee_currency,
        )

    def _fee_in_quote(
        self, fee: Decimal, transaction: Mapping[str, Any], symbol: str, price: Decimal
    ) -> tuple[Decimal, str | None]:
        """OANDA charges in the account currency; reports want the quote currency."""
        base, _, quote = symbol.partition("/")
        home = self.currency
        if fee == 0 or home is None or home == quote:
            return fee, quote
        if home == base:  # one base unit is worth `price` quote units
            return fee * price, quote
        factors = transaction.get("quoteHomeConversionFactors") or {}
        factor = _optional_decimal(factors.get("positiveUnits"), "quoteHomeConversionFactors")
        if factor:
            return fee / factor, quote
        return fee, home

    # ------------------------------------------------------------------ account

    async def balances(self) -> dict[str, Balance]:
        account = await self._account()
        currency = str(account.get("currency"))
        nav = account.get("NAV", account.get("balance"))
        return {
            currency: Balance(
                currency=currency,
                free=_decimal(account.get("marginAvailable"), "marginAvailable"),
                total=_decimal(nav, "NAV"),
            )
        }

    async def positions(self, symbols: Sequence[str]) -> list[PositionReport]:
        body = await self._request("GET", f"{self._account_path}/openPositions")
        held = {p.get("instrument"): p for p in body.get("positions", [])}
        reports = []
        for symbol in symbols:
            position = held.get(to_instrument(symbol))
            if position is None:
                reports.append(PositionReport(symbol, ZERO))
                continue
            long, short = position.get("long") or {}, position.get("short") or {}
            net = _decimal(long.get("units") or 0, "long.units") + _decimal(
                short.get("units") or 0, "short.units"
            )
            side = long if net > 0 else short if net < 0 else {}
            reports.append(
                PositionReport(
                    symbol,
                    net,
                    average_price=_optional_decimal(side.get("averagePrice"), "averagePrice"),
                    unrealized_pnl=_optional_decimal(position.get("unrealizedPL"), "unrealizedPL"),
                )
            )
        return reports

    async def _account(self) -> dict[str, Any]:
        body = await self._request("GET", f"{self._account_path}/summary")
        account = body.get("account")
        if not isinstance(account, dict):
            raise ExchangeRejected(
                "OANDA answered the account summary without an account", exchange=self.venue
            )
        return account

    # ------------------------------------------------------------------ plumbing

    @property
    def _account_path(self) -> str:
        if self.account_id is None:
            raise AdapterConfigError(
                f"trade account {self.spec.name!r}: no OANDA account id yet; set config "
                "account_id, or call start() to use the token's only account"
            )
        return f"/v3/accounts/{self.account_id}"

    async def _instrument(self, symbol: str) -> dict[str, Any]:
        """The account's instrument for `symbol` (loaded once; raises `UnknownSymbol`)."""
        name = to_instrument(symbol)
        instruments = self._instruments
        if instruments is None:
            instruments = await self._load_instruments()
        info = instruments.get(name)
        if info is None:
            raise UnknownSymbol(
                f"{symbol} ({name}) is not an instrument OANDA account {self.account_id} can trade",
                exchange=self.venue,
            )
        return info

    async def _load_instruments(self) -> dict[str, dict[str, Any]]:
        body = await self._request("GET", f"{self._account_path}/instruments")
        self._instruments = {
            str(i["name"]): i for i in body.get("instruments", []) if isinstance(i, dict)
        }
        return self._instruments

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Send one request, retried as `call_with_retry` allows; the JSON answer."""
        what = f"{method} {path}"

        async def once() -> dict[str, Any]:
            try:
                response = await self._client.request(method, path, params=params, json=json)
            except httpx.HTTPError as e:
                raise translate_error(e, what=what, venue=self.venue) from e
            if response.status_code >= 400:
                raise translate_error(response, what=what, venue=self.venue, secrets=(self._token,))
            body = _json_object(response)
            if not body and response.content.strip() not in (b"{}", b""):
                # It answered with success, so it acted; what it did is unreadable.
                raise OutcomeUnknown(
                    f"{what}: HTTP {response.status_code} with a body that is not a JSON object",
                    exchange=self.venue,
                )
            return body

        return await call_with_retry(
            once, policy=self._retry, idempotent=idempotent, on_retry=self._retried
        )

    def _retried(self, attempt: int, error: ExchangeError, wait: float) -> None:
        _log.warning(
            "oanda request retried",
            account=self.spec.name,
            attempt=attempt,
            code=error.code,
            error=str(error),
            wait=round(wait, 3),
        )
