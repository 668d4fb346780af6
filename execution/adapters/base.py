"""The one interface every exchange adapter implements, and the values it speaks.

An adapter is the execution service's only door to an exchange. It speaks in typed
reports (`OrderReport`, `FillReport`, `PositionReport`, `Balance`) and typed errors
(`execution.adapters.errors`), never in an exchange's own shapes, so the service,
its sync loop and its reconciliation are written once for every venue.

Required methods (abstract): `market_rules`, `last_price`, `place_order`,
`fetch_order`, `cancel_order`, `open_orders`, `balances`.
Optional methods, with defaults that are right for a spot exchange:
`start` / `close` (connect, load markets), `positions` (spot: derived from the base
currency's balance), `poll` (called once per sync round; the paper adapter moves its
market there and fills what the market crossed), `holds_exits` (whether the venue
holds a symbol's stop-loss and take-profit; default: `capabilities.stop_orders`) and
`place_exits` (a position's stop-loss and take-profit as one protective pair;
default: one `place_order` each).

What an adapter promises (the conformance suite in `tests/execution/adapters`
checks each promise against every adapter):

* `place_order` sends the request's `client_order_id` to the exchange, so a second
  request with the same id cannot create a second order: it raises `DuplicateOrder`
  or returns the existing order.
* `fetch_order` finds an order by its client order id, including one whose
  placement timed out; `OrderNotFound` means the exchange never took it.
* Quantities and prices are `Decimal`; fees are in the quote currency.
* Errors are the typed ones; messages never contain credentials.
* Where `holds_exits(symbol)`, `place_exits` places a stop-loss and a take-profit
  that cancel each other: once one fills, the other ends (`canceled` or `expired`)
  and the position's quantity is sold once. Placed again with the same client
  order ids, it returns the legs it placed before.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

from execution.adapters.errors import AdapterConfigError, DuplicateOrder, InvalidOrder
from shared.kernel.orders import Liquidity, OrderSide, OrderStatus, OrderType
from shared.kernel.risk import MarketRules, Mode

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an adapter can do; the service plans around what it cannot.

    Attributes:
        market_orders / limit_orders: order types it places.
        stop_orders: it holds stop-loss and take-profit orders itself; otherwise the
            service watches the price and sends a market exit.
        client_order_ids: the exchange stores our client order id and finds orders
            by it (what makes "never twice" hold across a crash).
        positions: the venue reports positions (margin, forex); a spot venue's
            positions are its base-currency balances.
        sandbox: it has a sandbox / testnet / practice host.
    """

    market_orders: bool = True
    limit_orders: bool = True
    stop_orders: bool = False
    client_order_ids: bool = True
    positions: bool = False
    sandbox: bool = False


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to place. `not_before` (paper) is the earliest candle it may fill on."""

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    not_before: datetime | None = None
    #: The entry's client order id, for its stop-loss and take-profit: orders with
    #: the same parent cancel each other when one fills (one-cancels-other).
    parent_id: str | None = None


@dataclass(frozen=True, slots=True)
class FillReport:
    """One execution as the exchange reports it; `fill_id` is stable across reports.

    `fee` is in the quote currency (`fee_currency` when it could not be converted);
    `base_fee` is the part of it the exchange took from the base currency, in base
    units: on a buy, coin the account paid and does not hold."""

    fill_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    fee: Decimal
    at: datetime
    fee_currency: str | None = None
    liquidity: Liquidity | None = None
    base_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class OrderReport:
    """An order as the exchange sees it now.

    `status` is already in our state machine's terms (`accepted` for an order
    resting at the exchange). `fills` lists the executions the adapter knows of;
    an adapter that only knows totals reports one synthetic fill per change of
    `filled_quantity` (`shared.kernel.orders.fill_from_totals`).
    """

    client_order_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    filled_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    fee: Decimal = ZERO
    exchange_order_id: str | None = None
    updated_at: datetime | None = None
    fills: tuple[FillReport, ...] = ()
    reason: str | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PositionReport:
    """A position at the exchange; `quantity` is signed (negative: short)."""

    symbol: str
    quantity: Decimal
    average_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    free: Decimal
    total: Decimal


class Credentials(Mapping[str, str]):
    """A trade account's decrypted credentials. Never printed: `repr` and `str`
    show the key names only, so a credential in a log line or a traceback's locals
    reads `<redacted>`."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = {str(k): str(v) for k, v in (values or {}).items() if v is not None}

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Credentials({', '.join(f'{k}=<redacted>' for k in self._values)})"

    __str__ = __repr__

    def require(self, *names: str, exchange: str) -> tuple[str, ...]:
        missing = [n for n in names if not self._values.get(n)]
        if missing:
            raise AdapterConfigError(
                f"{exchange} needs credentials {', '.join(missing)}: set them on the trade "
                "account (PATCH /api/v1/trade-accounts/NAME with a 'credentials' object)"
            )
        return tuple(self._values[n] for n in names)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What the factory needs to build a trade account's adapter.

    `config` is the account's `config` object: adapter options (`sandbox`, `api_url`,
    `feeds` for paper, ...), risk limits, currency.
    """

    name: str
    exchange: str
    mode: Mode = Mode.PAPER
    config: Mapping[str, Any] = field(default_factory=dict)
    credentials: Credentials = field(default_factory=Credentials)


Clock = Callable[[], datetime]


class ExchangeAdapter(ABC):
    """Base class of every adapter; see the module docstring for the contract."""

    #: The registry name (`paper`, `ccxt`, `oanda`).
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, spec: AccountSpec, *, clock: Clock) -> None:
        self.spec = spec
        self.clock = clock

    @property
    def venue(self) -> str:
        """The exchange as named in errors and logs (`binance`, `oanda`, `paper`)."""
        return self.spec.exchange

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and load what later calls need (markets, account id)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def poll(self) -> None:  # noqa: B027 - optional hook
        """Called once per sync round before orders are fetched."""

    @abstractmethod
    async def market_rules(self, symbol: str) -> MarketRules:
        """Precision, minimums and taker fee of `symbol` (raises `UnknownSymbol`)."""

    @abstractmethod
    async def last_price(self, symbol: str) -> Decimal:
        """The latest traded (or mid) price of `symbol`."""

    @abstractmethod
    async def place_order(self, request: OrderRequest) -> OrderReport:
        """Send an order; return what the exchange answered."""

    @abstractmethod
    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        """The order with this client order id (raises `OrderNotFound`)."""

    @abstractmethod
    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        """Cancel a working order; return its final state."""

    @abstractmethod
    async def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        """Working orders, of one symbol or all."""

    @abstractmethod
    async def balances(self) -> dict[str, Balance]:
        """Balances by currency."""

    def holds_exits(self, symbol: str) -> bool:
        """Whether the venue holds `symbol`'s stop-loss and take-profit as orders
        (placed with `place_exits`), so they protect a position while the service
        is down; otherwise the service watches the price and sends a market exit."""
        return self.capabilities.stop_orders

    async def place_exits(
        self, stop: OrderRequest | None, target: OrderRequest | None
    ) -> list[OrderReport]:
        """Place a position's stop-loss (`stop`, type `stop`) and take-profit
        (`target`, type `take_profit`) as one one-cancels-other pair; either may be
        None. Returns a report per leg placed.

        The default places them one by one (an adapter that holds the pair's
        one-cancels-other link itself, like paper's); a leg placed before (same
        client order id) is returned as it is. A venue with native order lists
        overrides it and sends one request.
        """
        reports = []
        for request in (stop, target):
            if request is None:
                continue
            try:
                reports.append(await self.place_order(request))
            except DuplicateOrder:
                reports.append(await self.fetch_order(request.symbol, request.client_order_id))
        return reports

    async def positions(self, symbols: Sequence[str]) -> list[PositionReport]:
        """Positions in `symbols`. Spot default: each symbol's base-currency balance
        (a spot account is long-only, so what it holds is its position)."""
        balances = await self.balances()
        reports = []
        for symbol in symbols:
            base = symbol.split("/")[0]
            held = balances.get(base)
            reports.append(PositionReport(symbol, held.total if held else ZERO))
        return reports


# --------------------------------------------------------------------------- registry

AdapterFactory = Callable[[AccountSpec, Clock], ExchangeAdapter]


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    cls: type[ExchangeAdapter]
    matches: Callable[[str], bool]


_REGISTRY: dict[str, _Entry] = {}


def check_exit_legs(legs: Sequence[OrderRequest], *, venue: str) -> None:
    """Refuse a protective pair whose legs could not close one position together: each
    needs its `stop_price`, and all the same symbol, side and quantity.

    Raises:
        InvalidOrder: a leg without a stop price, or legs that differ.
    """
    if not legs:
        return
    first = legs[0]
    for leg in legs:
        if leg.stop_price is None:
            raise InvalidOrder(
                f"order {leg.client_order_id}: a stop-loss or take-profit needs a stop_price",
                exchange=venue,
            )
        if (leg.symbol, leg.side, leg.quantity) != (first.symbol, first.side, first.quantity):
            raise InvalidOrder(
                "a stop-loss and take-profit close one position: the same symbol, side and "
                f"quantity ({first.client_order_id}: {first.side} {first.quantity} "
                f"{first.symbol}, {leg.client_order_id}: {leg.side} {leg.quantity} "
                f"{leg.symbol})",
                exchange=venue,
            )


def register_adapter[A: type[ExchangeAdapter]](
    name: str, *, matches: Callable[[str], bool] | None = None
) -> Callable[[A], A]:
    """Class decorator: make an adapter available to the factory under `name`.

    `matches` lets one adapter serve many `exchange` values (the ccxt adapter
    serves every ccxt exchange id); by default it serves exactly `name`.
    """

    def decorate(cls: A) -> A:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"an adapter named {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = _Entry(name, cls, matches or (lambda exchange: exchange == name))
        return cls

    return decorate


def registered_adapters() -> Mapping[str, type[ExchangeAdapter]]:
    _load_builtins()
    return MappingProxyType({n: e.cls for n, e in _REGISTRY.items()})


def adapter_class(spec: AccountSpec) -> type[ExchangeAdapter]:
    """The adapter that places `spec`'s orders.

    `exchange: paper` is always the paper adapter. A paper-mode account on a real
    exchange trades on that exchange's sandbox when `config.sandbox` is true, and on
    the paper adapter (simulated fills on that exchange's market data) otherwise:
    paper mode never sends an order to a real-money venue.
    """
    _load_builtins()
    exchange = spec.exchange.removeprefix("ccxt:")
    if spec.mode is Mode.PAPER and exchange != "paper" and not spec.config.get("sandbox"):
        return _REGISTRY["paper"].cls
    for entry in _REGISTRY.values():
        if entry.matches(exchange):
            return entry.cls
    names = ", ".join(sorted(_REGISTRY))
    raise AdapterConfigError(
        f"trade account {spec.name!r}: no adapter for exchange {spec.exchange!r} "
        f"(adapters: {names}; the ccxt adapter takes any ccxt exchange id)"
    )


def create_adapter(spec: AccountSpec, *, clock: Clock) -> ExchangeAdapter:
    """Build the adapter for a trade account (see `adapter_class`)."""
    return adapter_class(spec)(spec, clock=clock)


_BUILTINS = (
    "execution.adapters.paper",
    "execution.adapters.ccxt_exchange",
    "execution.adapters.oanda",
)


def _load_builtins() -> None:
    import importlib

    for module in _BUILTINS:
        importlib.import_module(module)
