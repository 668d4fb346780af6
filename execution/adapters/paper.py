"""The paper exchange: simulated fills on real market data, no money at stake.

Fills follow the kernel's paper fill model (`shared.kernel.fills`), the one the
backtester uses, so a paper run and a backtest of the same candles make the same
trades: a market order fills at the open of the first candle that opens at or after
its `not_before` (the close of the candle the decision was made on), slipped, with
the taker fee; limit, stop-loss and take-profit orders fill when a closed candle
crosses them, a stop-loss and a take-profit of the same entry cancelling each other.

Market data
    One candle feed per symbol (`config.feeds`: `{"ETH/BTC": "csv:data/ETH-BTC_5m.csv"}`
    or `{"ETH/BTC": {"feed": "ccxt:binance", "timeframe": "1m"}}`), read by a
    background task into a one-candle hand-off, and consumed up to the adapter's
    clock: a closed candle once its close time has come, and the open of the next
    one as soon as it has opened (that is the "next available price" a market order
    fills at). A replayed CSV file is read on the market clock the service gives
    (the time of the latest decision's candle), so the replay moves exactly as far
    as the decisions have; a live feed is read on the wall clock.

State
    Balances, orders and each feed's position are written to `config.state_file`
    (JSON, replaced atomically) after every change, so a restarted service finds
    the paper exchange as it left it, as it would find a real one. Without a state
    file (tests) the exchange lives in memory.

Out of scope: partial fills, order book depth, shorting (a spot account).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    register_adapter,
)
from execution.adapters.errors import (
    AdapterConfigError,
    DuplicateOrder,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    UnknownSymbol,
)
from shared.kernel.fills import FillModelConfig, decimal_price, simulate, simulate_oco
from shared.kernel.orders import (
    Fill,
    Liquidity,
    Order,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    apply_fill,
    leg_of,
    transition,
)
from shared.kernel.risk import MarketRules
from shared.logging import get_logger
from shared.market.candles import Candle
from shared.market.errors import FeedError
from shared.market.feeds import CandleFeed, CsvReplayFeed, parse_feed_spec

log = get_logger(__name__)

DEFAULT_TIMEFRAME = "5m"


@dataclass
class _Market:
    """One symbol's feed as the paper exchange reads it."""

    symbol: str
    feed: CandleFeed
    queue: asyncio.Queue[Candle | BaseException | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1)
    )
    #: The first candle not yet closed on the clock (its open may be usable).
    head: Candle | None = None
    #: Open time of the last closed candle processed (persisted: resume point).
    processed: datetime | None = None
    last_price: Decimal | None = None
    ended: bool = False
    task: asyncio.Task[None] | None = None


@register_adapter("paper")
class PaperAdapter(ExchangeAdapter):
    """Simulated spot exchange; see the module docstring."""

    capabilities = Capabilities(stop_orders=True, client_order_ids=True, sandbox=False)

    def __init__(
        self,
        spec: AccountSpec,
        *,
        clock: Clock,
        feeds: Mapping[str, CandleFeed] | None = None,
    ) -> None:
        super().__init__(spec, clock=clock)
        config = spec.config
        try:
            self.fill_model = FillModelConfig.model_validate(config.get("fill_model") or {})
        except ValueError as e:
            raise AdapterConfigError(f"trade account {spec.name!r}: fill_model: {e}") from e
        self.currency = str(config.get("currency") or "USDT")
        start = config.get("balances") or {self.currency: "10000"}
        self._balances: dict[str, Decimal] = {k: Decimal(str(v)) for k, v in start.items()}
        self._orders: dict[str, Order] = {}
        self._fills: dict[str, list[Fill]] = {}
        self._markets = {s: _Market(s, f) for s, f in (feeds or self._feeds_from(spec)).items()}
        state = config.get("state_file")
        self._state_file = Path(state) if state else None
        self._market_rules = dict(config.get("markets") or {})
        self._lock = asyncio.Lock()
        self._sequence = 0

    @property
    def venue(self) -> str:
        return f"paper({self.spec.exchange})" if self.spec.exchange != "paper" else "paper"

    @staticmethod
    def _feeds_from(spec: AccountSpec) -> dict[str, CandleFeed]:
        feeds: dict[str, CandleFeed] = {}
        default_timeframe = str(spec.config.get("timeframe") or DEFAULT_TIMEFRAME)
        for symbol, value in (spec.config.get("feeds") or {}).items():
            entry = {"feed": value} if isinstance(value, str) else dict(value)
            try:
                feeds[symbol] = parse_feed_spec(
                    str(entry["feed"]),
                    symbol=symbol,
                    timeframe=str(entry.get("timeframe") or default_timeframe),
                )
            except (KeyError, ValueError) as e:
                raise AdapterConfigError(
                    f"trade account {spec.name!r}: feeds[{symbol!r}]: {e}"
                ) from e
        return feeds

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._load_state()
        for market in self._markets.values():
            market.task = asyncio.create_task(
                self._read(market), name=f"paper-feed-{self.spec.name}-{market.symbol}"
            )
        await self.poll()

    async def close(self) -> None:
        for market in self._markets.values():
            if market.task is not None:
                market.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await market.task
        self._save_state()

    async def _read(self, market: _Market) -> None:
        stream = market.feed.stream()
        try:
            async for candle in stream:
                if market.processed is not None and candle.open_time <= market.processed:
                    continue  # already processed before a restart
                await market.queue.put(candle)
            await market.queue.put(None)
        except FeedError as e:
            await market.queue.put(e)
        finally:
            await stream.aclose()

    # ------------------------------------------------------------------ the market

    async def poll(self) -> None:
        """Process every candle the clock has reached, filling what it crosses."""
        async with self._lock:
            for market in self._markets.values():
                await self._advance(market)
            self._save_state()

    async def _advance(self, market: _Market) -> None:
        now = self.clock()
        while True:
            if market.head is None:
                market.head = await self._next(market)
                if market.head is None:
                    return
            head = market.head
            if head.close_time <= now:
                self._on_candle(head)
                market.processed = head.open_time
                market.last_price = decimal_price(head.close)
                market.head = None
                continue
            if head.open_time <= now:
                # The candle has opened: its open is the next available price.
                market.last_price = decimal_price(head.open)
                self._fill_market_orders(head)
            return

    async def _next(self, market: _Market) -> Candle | None:
        if market.ended:
            return None
        if market.queue.empty():
            # The reader may be one step behind a CSV file it is reading flat out;
            # give it a moment, but never wait on a live feed's next candle.
            for _ in range(3):
                await asyncio.sleep(0)
            if market.queue.empty() and not self._replay(market):
                return None
        item = await market.queue.get()
        if item is None:
            market.ended = True
            return None
        if isinstance(item, BaseException):
            market.ended = True
            log.error("paper_feed_failed", symbol=market.symbol, error=str(item))
            return None
        return item

    @staticmethod
    def _replay(market: _Market) -> bool:
        return isinstance(market.feed, CsvReplayFeed) and market.feed.speed is None

    def _fill_market_orders(self, candle: Candle) -> None:
        for order in self._working(candle.symbol):
            if order.type is OrderType.MARKET:
                fill = simulate(order, candle, self.fill_model)
                if fill is not None:
                    self._book(order, fill)

    def _on_candle(self, candle: Candle) -> None:
        working = self._working(candle.symbol)
        groups: dict[str, list[Order]] = {}
        for order in working:
            parent = order.parent_id
            if parent is None:
                fill = simulate(order, candle, self.fill_model)
                if fill is not None:
                    self._book(order, fill)
            else:
                groups.setdefault(parent, []).append(order)
        for siblings in groups.values():
            fill = simulate_oco(siblings, candle, self.fill_model)
            if fill is None:
                continue
            filled = self._orders[fill.client_order_id]
            self._book(filled, fill)
            for other in siblings:
                if other.client_order_id != fill.client_order_id:
                    self._orders[other.client_order_id] = transition(
                        self._orders[other.client_order_id],
                        OrderStatus.CANCELED,
                        at=fill.at,
                        reason=f"one-cancels-other: {filled.client_order_id} filled",
                    )

    def _working(self, symbol: str) -> list[Order]:
        return [o for o in self._orders.values() if o.symbol == symbol and o.is_working]

    def _book(self, order: Order, fill: Fill) -> None:
        base, quote = _currencies(order.symbol)
        notional = fill.quantity * fill.price
        if order.side is OrderSide.BUY:
            cost = notional + fill.fee
            if self._balances.get(quote, ZERO) < cost:
                # The price moved against a market buy between placement and fill.
                self._orders[order.client_order_id] = transition(
                    order,
                    OrderStatus.CANCELED,
                    at=fill.at,
                    reason=f"insufficient {quote} at fill time: needed {cost}",
                )
                return
            self._balances[quote] = self._balances.get(quote, ZERO) - cost
            self._balances[base] = self._balances.get(base, ZERO) + fill.quantity
        else:
            held = self._balances.get(base, ZERO)
            if held < fill.quantity:
                self._orders[order.client_order_id] = transition(
                    order,
                    OrderStatus.CANCELED,
                    at=fill.at,
                    reason=f"only {held} {base} held at fill time, {fill.quantity} to sell",
                )
                return
            self._balances[base] = held - fill.quantity
            self._balances[quote] = self._balances.get(quote, ZERO) + notional - fill.fee
        self._orders[order.client_order_id] = apply_fill(order, fill)
        self._fills.setdefault(order.client_order_id, []).append(fill)

    # ------------------------------------------------------------------ the interface

    def _market(self, symbol: str) -> _Market:
        market = self._markets.get(symbol)
        if market is None:
            raise UnknownSymbol(
                f"no feed for {symbol!r}: add it to the trade account's config.feeds "
                f"(has: {', '.join(sorted(self._markets)) or 'none'})",
                exchange=self.venue,
            )
        return market

    async def market_rules(self, symbol: str) -> MarketRules:
        self._market(symbol)
        return MarketRules.from_config(
            symbol, self._market_rules.get(symbol), taker_fee=self.fill_model.taker_fee
        )

    async def last_price(self, symbol: str) -> Decimal:
        market = self._market(symbol)
        if market.last_price is None:
            await self.poll()
        if market.last_price is None:
            raise ExchangeUnavailable(
                f"no {symbol} price yet: its feed has no candle up to {self.clock().isoformat()}",
                exchange=self.venue,
            )
        return market.last_price

    async def place_order(self, request: OrderRequest) -> OrderReport:
        market = self._market(request.symbol)
        async with self._lock:
            if request.client_order_id in self._orders:
                raise DuplicateOrder(
                    f"client order id {request.client_order_id} is already in use",
                    exchange=self.venue,
                )
            now = self.clock()
            try:
                order = Order(
                    client_order_id=request.client_order_id,
                    account=self.spec.name,
                    symbol=request.symbol,
                    side=request.side,
                    type=request.type,
                    quantity=request.quantity,
                    created_at=now,
                    limit_price=request.limit_price,
                    stop_price=request.stop_price,
                    not_before=request.not_before,
                    parent_id=request.parent_id,
                    leg=leg_of(request.client_order_id) or OrderLeg.ENTRY,
                    exchange_order_id=self._next_id(),
                )
            except ValueError as e:
                raise InvalidOrder(str(e), exchange=self.venue) from e
            self._check_funds(order, market)
            order = transition(order, OrderStatus.SUBMITTED, at=now)
            order = transition(order, OrderStatus.ACCEPTED, at=now)
            self._orders[order.client_order_id] = order
            if market.head is not None and market.head.open_time <= now:
                self._fill_market_orders(market.head)
            self._save_state()
            return self._report(self._orders[order.client_order_id])

    def _next_id(self) -> str:
        self._sequence += 1
        return f"paper-{self._sequence}"

    def _check_funds(self, order: Order, market: _Market) -> None:
        base, quote = _currencies(order.symbol)
        if order.side is OrderSide.SELL:
            committed = sum(
                (o.remaining for o in self._working(order.symbol) if o.side is OrderSide.SELL),
                ZERO,
            )
            if order.parent_id is not None:
                # The stop-loss and take-profit of one entry sell the same coins: one
                # of them fills, the other is cancelled, so count the pair once.
                committed = sum(
                    (
                        o.remaining
                        for o in self._working(order.symbol)
                        if o.side is OrderSide.SELL and o.parent_id != order.parent_id
                    ),
                    ZERO,
                )
            held = self._balances.get(base, ZERO)
            if held - committed < order.quantity:
                raise InsufficientFunds(
                    f"account has insufficient balance: {held} {base} held, "
                    f"{committed} committed to open orders, {order.quantity} to sell",
                    exchange=self.venue,
                )
            return
        price = order.limit_price or order.stop_price or market.last_price
        if price is None:
            return  # no price yet: checked again at fill time
        cost = order.quantity * price * (1 + self.fill_model.taker_fee)
        free = self._balances.get(quote, ZERO) - sum(
            (
                o.remaining * (o.limit_price or o.stop_price or price)
                for o in self._working(order.symbol)
                if o.side is OrderSide.BUY
            ),
            ZERO,
        )
        if free < cost:
            raise InsufficientFunds(
                f"account has insufficient balance: {free} {quote} free, about {cost:.8f} "
                f"needed for {order.quantity} {base}",
                exchange=self.venue,
            )

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        order = self._orders.get(client_order_id)
        if order is None or order.symbol != symbol:
            raise OrderNotFound(f"order {client_order_id} does not exist", exchange=self.venue)
        return self._report(order)

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        async with self._lock:
            order = self._orders.get(client_order_id)
            if order is None or order.symbol != symbol:
                raise OrderNotFound(f"order {client_order_id} does not exist", exchange=self.venue)
            if not order.is_working:
                raise OrderNotFound(
                    f"order {client_order_id} is {order.status}, not open", exchange=self.venue
                )
            order = transition(order, OrderStatus.CANCELED, at=self.clock(), reason="canceled")
            self._orders[client_order_id] = order
            self._save_state()
            return self._report(order)

    async def open_orders(self, symbol: str | None = None) -> list[OrderReport]:
        return [
            self._report(o)
            for o in self._orders.values()
            if o.is_working and (symbol is None or o.symbol == symbol)
        ]

    async def balances(self) -> dict[str, Balance]:
        return {c: Balance(c, v, v) for c, v in self._balances.items()}

    # ------------------------------------------------------------------ hand edits

    def set_balance(self, currency: str, amount: Decimal) -> None:
        """What a user does on an exchange's website (deposit, withdraw, sell by
        hand): the adapter's books do not see it, reconciliation does."""
        self._balances[currency] = amount
        self._save_state()

    # ------------------------------------------------------------------ reports & state

    def _report(self, order: Order) -> OrderReport:
        fills = tuple(
            FillReport(
                fill_id=f.fill_id,
                client_order_id=f.client_order_id,
                symbol=f.symbol,
                side=f.side,
                quantity=f.quantity,
                price=f.price,
                fee=f.fee,
                at=f.at,
                fee_currency=_currencies(f.symbol)[1],
                liquidity=f.liquidity,
            )
            for f in self._fills.get(order.client_order_id, [])
        )
        return OrderReport(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            status=order.status,
            quantity=order.quantity,
            filled_quantity=order.filled_quantity,
            average_price=order.average_fill_price,
            fee=order.fees,
            exchange_order_id=order.exchange_order_id,
            updated_at=order.updated_at,
            fills=fills,
            reason=order.reason,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
        )

    def _save_state(self) -> None:
        if self._state_file is None:
            return
        state = {
            "version": 1,
            "sequence": self._sequence,
            "balances": {c: str(v) for c, v in self._balances.items()},
            "processed": {
                s: m.processed.isoformat() for s, m in self._markets.items() if m.processed
            },
            "last_price": {
                s: str(m.last_price) for s, m in self._markets.items() if m.last_price is not None
            },
            "orders": [_order_json(o) for o in self._orders.values()],
            "fills": [_fill_json(f) for fills in self._fills.values() for f in fills],
        }
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self._state_file)

    def _load_state(self) -> None:
        if self._state_file is None or not self._state_file.exists():
            return
        state = json.loads(self._state_file.read_text())
        self._sequence = int(state.get("sequence", 0))
        self._balances = {c: Decimal(v) for c, v in state["balances"].items()}
        for symbol, at in state.get("processed", {}).items():
            if symbol in self._markets:
                self._markets[symbol].processed = datetime.fromisoformat(at)
        for symbol, price in state.get("last_price", {}).items():
            if symbol in self._markets:
                self._markets[symbol].last_price = Decimal(price)
        for data in state.get("orders", []):
            order = _order_from_json(data)
            self._orders[order.client_order_id] = order
        for data in state.get("fills", []):
            fill = _fill_from_json(data)
            self._fills.setdefault(fill.client_order_id, []).append(fill)


def _currencies(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    return base, quote.split(":")[0]


def _order_json(order: Order) -> dict[str, Any]:
    def s(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, datetime):
            return v.isoformat()
        return str(v)

    return {
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": str(order.quantity),
        "created_at": order.created_at.isoformat(),
        "limit_price": s(order.limit_price),
        "stop_price": s(order.stop_price),
        "status": order.status.value,
        "filled_quantity": str(order.filled_quantity),
        "average_fill_price": s(order.average_fill_price),
        "fees": str(order.fees),
        "updated_at": s(order.updated_at),
        "leg": order.leg.value,
        "parent_id": order.parent_id,
        "exchange_order_id": order.exchange_order_id,
        "reason": order.reason,
        "not_before": s(order.not_before),
        "fill_ids": sorted(order.fill_ids),
        "account": order.account,
    }


def _order_from_json(d: Mapping[str, Any]) -> Order:
    def dec(v: Any) -> Decimal | None:
        return Decimal(v) if v is not None else None

    def dt(v: Any) -> datetime | None:
        return datetime.fromisoformat(v) if v is not None else None

    created = datetime.fromisoformat(d["created_at"])
    order = Order(
        client_order_id=d["client_order_id"],
        account=d["account"],
        symbol=d["symbol"],
        side=OrderSide(d["side"]),
        type=OrderType(d["type"]),
        quantity=Decimal(d["quantity"]),
        created_at=created,
        limit_price=dec(d["limit_price"]),
        stop_price=dec(d["stop_price"]),
    )
    order = replace(
        order,
        status=OrderStatus(d["status"]),
        filled_quantity=Decimal(d["filled_quantity"]),
        average_fill_price=dec(d["average_fill_price"]),
        fees=Decimal(d["fees"]),
        updated_at=dt(d["updated_at"]) or created,
        leg=OrderLeg(d["leg"]),
        parent_id=d["parent_id"],
        exchange_order_id=d["exchange_order_id"],
        reason=d["reason"],
        not_before=dt(d["not_before"]),
        fill_ids=frozenset(d["fill_ids"]),
    )
    return order


def _fill_json(fill: Fill) -> dict[str, Any]:
    return {
        "fill_id": fill.fill_id,
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": str(fill.quantity),
        "price": str(fill.price),
        "fee": str(fill.fee),
        "at": fill.at.isoformat(),
        "liquidity": fill.liquidity.value if fill.liquidity else None,
    }


def _fill_from_json(d: Mapping[str, Any]) -> Fill:
    return Fill(
        fill_id=d["fill_id"],
        client_order_id=d["client_order_id"],
        symbol=d["symbol"],
        side=OrderSide(d["side"]),
        quantity=Decimal(d["quantity"]),
        price=Decimal(d["price"]),
        fee=Decimal(d["fee"]),
        at=datetime.fromisoformat(d["at"]),
        liquidity=Liquidity(d["liquidity"]) if d["liquidity"] else None,
    )
