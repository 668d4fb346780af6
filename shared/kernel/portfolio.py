"""Portfolio accounting: one trade account's cash, positions, PnL, equity and record.

Long-only spot, one quote currency per account (fills of every symbol are priced
and charged in it). Everything is `Decimal`; nothing reads a clock: times come from
the fills and from the `since` / `at` the caller passes.

The books
---------
- A buy of `q` at `p` with fee `f` pays `q*p + f` from cash and adds it to the
  position's `cost_basis`; `average_entry_price` is the quantity-weighted mean of
  the fill prices (fees excluded).
- A sell of `q` of a position of `Q` receives `q*p - f` into cash and takes the
  share `q/Q` of the cost basis (all of it when `q == Q`). Its realized PnL is
  `(q*p - f) - cost_basis * q/Q`, net of both the exit fee and its share of the
  entry fees, and is recorded as a `ClosedTrade` (a partial exit is a closed trade
  of its own).
- A position's unrealized PnL is `q * mark - cost_basis`, so a position just
  bought shows minus its entry fee. The mark is the price of the symbol's latest
  fill until `mark()` sets a newer one (the last close, from the shell's feed).

So, exactly: `equity = cash + sum(q * mark) = initial_cash + realized_pnl +
unrealized_pnl`, and `realized_pnl` is the sum of the closed trades' PnL.

`snapshot()` records equity and moves the peak; drawdown is `(peak - equity) /
peak`. A fill the books cannot hold (selling more than is held, buying with cash
that is not there) raises a `PortfolioError`: the books and the exchange disagree,
which the service turns into a reconciliation incident; `can_apply` asks first.
A fill already booked (same `fill_id`) is ignored: delivery is at-least-once.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from shared.kernel.frozen import fast_init
from shared.kernel.orders import Fill, OrderLeg, OrderSide
from shared.kernel.strategy import Outcome, Position

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


class PortfolioError(ValueError):
    """A fill the books cannot hold; `code` is a stable reason."""

    code = "portfolio_error"


class InsufficientCash(PortfolioError):
    code = "insufficient_cash"


class Oversold(PortfolioError):
    code = "oversold"


@fast_init
@dataclass(frozen=True, slots=True)
class Holding:
    """An open long position. `cost_basis` is the quote currency paid for the
    quantity still held, buy fees included; `entry_fees` the part of it that was fees."""

    symbol: str
    quantity: Decimal
    average_entry_price: Decimal
    cost_basis: Decimal
    entry_fees: Decimal
    opened_at: datetime
    updated_at: datetime

    def value(self, mark: Decimal) -> Decimal:
        return self.quantity * mark

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.quantity * mark - self.cost_basis

    def as_position(self) -> Position:
        """The position as a strategy sees it in its `Context`."""
        return Position(self.symbol, self.quantity, self.average_entry_price, self.opened_at)


@fast_init
@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A sell of (part of) a position and what it earned.

    `cost` is the share of the cost basis the sell closed (entry fees included),
    `proceeds` what the sell brought in after its fee, `pnl = proceeds - cost`,
    `fees` the entry-fee share plus the exit fee. `exit_leg` says which order closed
    it: a stop-loss, a take-profit, an exit decision (None when unknown).
    """

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    opened_at: datetime
    closed_at: datetime
    cost: Decimal
    proceeds: Decimal
    pnl: Decimal
    fees: Decimal
    exit_leg: OrderLeg | None
    client_order_id: str

    @property
    def won(self) -> bool:
        return self.pnl > 0

    @property
    def return_pct(self) -> float:
        """PnL over cost, in percent."""
        return float(self.pnl / self.cost * _HUNDRED) if self.cost else 0.0

    @property
    def stopped_out(self) -> bool:
        return self.exit_leg is OrderLeg.STOP_LOSS

    def as_outcome(self, strategy: str | None = None) -> Outcome:
        """The trade as the performance tracker and strategies read it."""
        return Outcome(self.symbol, self.pnl, self.return_pct, self.closed_at, strategy)


@fast_init
@dataclass(frozen=True, slots=True)
class Booking:
    """What applying one fill did: the position after it (None when flat) and, for a
    sell, the closed trade. `duplicate` fills change nothing."""

    fill: Fill
    duplicate: bool
    position: Holding | None
    closed_trade: ClosedTrade | None = None


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    """The account's value at `at`; `drawdown` is a fraction of `peak_equity`."""

    at: datetime
    cash: Decimal
    positions_value: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees_paid: Decimal
    peak_equity: Decimal
    drawdown: Decimal
    open_positions: int


class Portfolio:
    """The books of one trade account.

    Args:
        account: the trade account's name.
        cash: the quote currency balance to start from.
        currency: the quote currency's code, a label for reports.
        peak_equity: the peak to resume from when the books are rebuilt by
            replaying stored fills (default: the starting cash).
    """

    def __init__(
        self,
        account: str,
        cash: Decimal,
        *,
        currency: str = "",
        peak_equity: Decimal | None = None,
    ) -> None:
        if cash < 0:
            raise ValueError(f"portfolio {account}: starting cash {cash} must be >= 0")
        self.account = account
        self.currency = currency
        self.initial_cash = cash
        self._cash = cash
        self._realized = _ZERO
        self._fees = _ZERO
        self._peak = peak_equity if peak_equity is not None else cash
        self._max_drawdown = _ZERO
        self._holdings: dict[str, Holding] = {}
        self._marks: dict[str, Decimal] = {}
        self._fill_ids: set[str] = set()
        # Kept sorted by time so "since" questions are a bisect, not a scan: the
        # risk engine asks them on every decision, the backtester on every bar.
        self._closed: list[ClosedTrade] = []
        self._entries: list[tuple[datetime, str, str]] = []  # (first fill, symbol, order)
        self._entry_orders: set[str] = set()
        self._last_trade_at: dict[str, datetime] = {}
        self._last_loss_at: dict[str, datetime] = {}
        self._last_loss_any: datetime | None = None
        # The account-wide "since" sums the risk engine asks for on every decision
        # (today's realized PnL, today's entries), carried forward as trades append;
        # `_reordered` counts insertions before the end, which void them.
        self._reordered = 0
        self._pnl_since: tuple[datetime, int, int, Decimal] | None = None
        self._opened_since: tuple[datetime, int, int, int] | None = None

    # ------------------------------------------------------------------ booking

    def can_apply(self, fill: Fill) -> PortfolioError | None:
        """The error `apply(fill)` would raise, or None if the books can hold it."""
        if fill.fill_id in self._fill_ids:
            return None
        if fill.side is OrderSide.BUY:
            cost = fill.held_quantity * fill.price + fill.fee
            if cost > self._cash:
                return InsufficientCash(
                    f"portfolio {self.account}: buying {fill.quantity} {fill.symbol} costs "
                    f"{cost} with fees, but cash is {self._cash}; size orders within the "
                    "cash, fees and slippage included, or reconcile the balance"
                )
            return None
        held = self._holdings.get(fill.symbol)
        if held is None or fill.quantity > held.quantity:
            return Oversold(
                f"portfolio {self.account}: selling {fill.quantity} {fill.symbol} but "
                f"{held.quantity if held else 0} is held; spot accounts are long-only, "
                "reconcile the position with the exchange"
            )
        return None

    def apply(self, fill: Fill) -> Booking:
        """Book `fill`: cash, position, fees, and for a sell the realized PnL.

        Raises:
            InsufficientCash: a buy costs more than the cash.
            Oversold: a sell of more than the position holds.
        """
        if fill.fill_id in self._fill_ids:
            return Booking(fill, True, self._holdings.get(fill.symbol))
        error = self.can_apply(fill)
        if error is not None:
            raise error
        self._fill_ids.add(fill.fill_id)
        self._fees += fill.fee
        last = self._last_trade_at.get(fill.symbol)
        if last is None or fill.at >= last:
            # The latest trade is a price; a fill the sync reports late is not.
            self._last_trade_at[fill.symbol] = fill.at
            self._marks[fill.symbol] = fill.price
        if fill.side is OrderSide.BUY:
            return Booking(fill, False, self._buy(fill))
        return self._sell(fill)

    def apply_all(self, fills: Iterable[Fill]) -> list[Booking]:
        return [self.apply(f) for f in fills]

    def _buy(self, fill: Fill) -> Holding:
        # The coin withheld (`Fill.withheld`) is not held; its value is in the fee.
        bought = fill.held_quantity
        cost = bought * fill.price + fill.fee
        self._cash -= cost
        held = self._holdings.get(fill.symbol)
        if held is None:
            holding = Holding(fill.symbol, bought, fill.price, cost, fill.fee, fill.at, fill.at)
        else:
            quantity = held.quantity + bought
            holding = Holding(
                fill.symbol,
                quantity,
                (held.quantity * held.average_entry_price + bought * fill.price) / quantity,
                held.cost_basis + cost,
                held.entry_fees + fill.fee,
                min(held.opened_at, fill.at),
                max(held.updated_at, fill.at),
            )
        self._holdings[fill.symbol] = holding
        if fill.client_order_id not in self._entry_orders:
            self._entry_orders.add(fill.client_order_id)
            entry = (fill.at, fill.symbol, fill.client_order_id)
            entries = self._entries
            self._reordered += _insert_sorted(entries, entry, bisect_right(entries, entry))
        return holding

    def _sell(self, fill: Fill) -> Booking:
        held = self._holdings[fill.symbol]
        proceeds = fill.quantity * fill.price - fill.fee
        if fill.quantity == held.quantity:
            cost, entry_fees = held.cost_basis, held.entry_fees
            after: Holding | None = None
            del self._holdings[fill.symbol]
        else:
            # Multiply first: one rounding, at the context's 28 digits, not two.
            cost = held.cost_basis * fill.quantity / held.quantity
            entry_fees = held.entry_fees * fill.quantity / held.quantity
            after = Holding(
                held.symbol,
                held.quantity - fill.quantity,
                held.average_entry_price,
                held.cost_basis - cost,
                held.entry_fees - entry_fees,
                held.opened_at,
                max(held.updated_at, fill.at),
            )
            self._holdings[fill.symbol] = after
        pnl = proceeds - cost
        self._cash += proceeds
        self._realized += pnl
        trade = ClosedTrade(
            symbol=fill.symbol,
            quantity=fill.quantity,
            entry_price=held.average_entry_price,
            exit_price=fill.price,
            opened_at=held.opened_at,
            closed_at=fill.at,
            cost=cost,
            proceeds=proceeds,
            pnl=pnl,
            fees=entry_fees + fill.fee,
            exit_leg=fill.leg,
            client_order_id=fill.client_order_id,
        )
        closed = self._closed
        self._reordered += _insert_sorted(
            closed, trade, bisect_right(closed, fill.at, key=_closed_at)
        )
        if pnl < 0:
            last = self._last_loss_at.get(fill.symbol)
            if last is None or fill.at > last:
                self._last_loss_at[fill.symbol] = fill.at
            if self._last_loss_any is None or fill.at > self._last_loss_any:
                self._last_loss_any = fill.at
        return Booking(fill, False, after, trade)

    # ------------------------------------------------------------------ marks and equity

    def mark(self, symbol: str, price: Decimal) -> None:
        """Value `symbol` at `price` from now on (the last close, the last trade)."""
        if price <= 0:
            raise ValueError(f"mark price of {symbol} must be > 0, got {price}")
        self._marks[symbol] = price

    def mark_all(self, prices: Mapping[str, Decimal]) -> None:
        for symbol, price in prices.items():
            self.mark(symbol, price)

    def price(self, symbol: str) -> Decimal | None:
        """The price `symbol` is valued at, None if it was never marked nor traded."""
        return self._marks.get(symbol)

    @property
    def cash(self) -> Decimal:
        return self._cash

    @property
    def realized_pnl(self) -> Decimal:
        """Realized PnL since the start, net of all fees of the closed quantities."""
        return self._realized

    @property
    def fees_paid(self) -> Decimal:
        """Every fee booked, on open and closed positions."""
        return self._fees

    @property
    def positions(self) -> Mapping[str, Holding]:
        """Open positions by symbol (read-only)."""
        return MappingProxyType(self._holdings)

    @property
    def open_positions(self) -> int:
        return len(self._holdings)

    def position(self, symbol: str) -> Holding | None:
        return self._holdings.get(symbol)

    def position_value(self, symbol: str) -> Decimal:
        held = self._holdings.get(symbol)
        return held.value(self._marks[symbol]) if held is not None else _ZERO

    def positions_value(self) -> Decimal:
        """Open positions at their marks: the account's exposure."""
        # sum(h.value(mark) ...) from _ZERO, written out: the same additions in the
        # same order, without a generator and a call per holding.
        total, marks = _ZERO, self._marks
        for symbol, holding in self._holdings.items():
            total = total + holding.quantity * marks[symbol]
        return total

    def unrealized_pnl(self, symbol: str | None = None) -> Decimal:
        """Of one open position, or of all; entry fees count as already lost."""
        if symbol is not None:
            held = self._holdings.get(symbol)
            return held.unrealized_pnl(self._marks[symbol]) if held is not None else _ZERO
        return sum((h.unrealized_pnl(self._marks[s]) for s, h in self._holdings.items()), _ZERO)

    def equity(self) -> Decimal:
        """Cash plus open positions at their marks."""
        return self._cash + self.positions_value()

    @property
    def peak_equity(self) -> Decimal:
        """The highest equity a snapshot has recorded (or the starting cash)."""
        return self._peak

    @property
    def max_drawdown(self) -> Decimal:
        """The deepest drawdown a snapshot has recorded, as a fraction."""
        return self._max_drawdown

    def drawdown(self) -> Decimal:
        """How far equity is below its peak now, as a fraction (0 at a new peak)."""
        equity = self.equity()
        return _drawdown(max(self._peak, equity), equity)

    def snapshot(self, at: datetime) -> EquitySnapshot:
        """The account's value at `at`; records the peak and the maximum drawdown."""
        positions_value = self.positions_value()
        equity = self._cash + positions_value
        self._peak = max(self._peak, equity)
        drawdown = _drawdown(self._peak, equity)
        self._max_drawdown = max(self._max_drawdown, drawdown)
        return EquitySnapshot(
            at=at,
            cash=self._cash,
            positions_value=positions_value,
            equity=equity,
            realized_pnl=self._realized,
            unrealized_pnl=self.unrealized_pnl(),
            fees_paid=self._fees,
            peak_equity=self._peak,
            drawdown=drawdown,
            open_positions=len(self._holdings),
        )

    # ------------------------------------------------------------------ the record

    @property
    def closed_trades(self) -> tuple[ClosedTrade, ...]:
        """Every closed trade, oldest first."""
        return tuple(self._closed)

    def last_closed_trades(self, count: int) -> tuple[ClosedTrade, ...]:
        """The `count` most recent closed trades (by close time), oldest first."""
        return tuple(self._closed[-count:]) if count > 0 else ()

    def closed_trades_since(self, since: datetime, symbol: str | None = None) -> list[ClosedTrade]:
        """Trades closed at or after `since`, oldest first, of `symbol` if given."""
        closed = self._closed
        if not closed or closed[-1].closed_at < since:
            return []  # the risk engine's usual question: nothing that recent
        start = bisect_left(closed, since, key=_closed_at)
        return [t for t in self._closed[start:] if symbol is None or t.symbol == symbol]

    def realized_pnl_since(self, since: datetime, symbol: str | None = None) -> Decimal:
        """Realized PnL of the trades closed at or after `since` (e.g. the day's start)."""
        if symbol is not None:
            return sum((t.pnl for t in self.closed_trades_since(since, symbol)), _ZERO)
        # The sum, oldest first from _ZERO, of the trades since `since`; asked again
        # with the same `since`, the trades appended meanwhile are added to the last
        # answer: the same additions in the same order.
        closed, memo = self._closed, self._pnl_since
        if memo is not None and memo[0] == since and memo[1] == self._reordered:
            count, total = memo[2], memo[3]
        else:
            count, total = bisect_left(closed, since, key=_closed_at), _ZERO
        for trade in closed[count:]:
            if trade.closed_at >= since:
                total = total + trade.pnl
        self._pnl_since = (since, self._reordered, len(closed), total)
        return total

    def trades_opened_since(self, since: datetime, symbol: str | None = None) -> int:
        """Buy orders whose first fill came at or after `since` (partial fills of one
        order count once)."""
        entries = self._entries
        if symbol is not None:
            start = bisect_left(entries, since, key=_first)
            return sum(1 for e in entries[start:] if e[1] == symbol)
        memo = self._opened_since  # as in realized_pnl_since
        if memo is not None and memo[0] == since and memo[1] == self._reordered:
            count, total = memo[2], memo[3]
        else:
            count, total = bisect_left(entries, since, key=_first), 0
        for entry in entries[count:]:
            if entry[0] >= since:
                total += 1
        self._opened_since = (since, self._reordered, len(entries), total)
        return total

    def last_trade_at(self, symbol: str | None = None) -> datetime | None:
        """When `symbol` (or any symbol) last had a fill."""
        return _latest(self._last_trade_at, symbol)

    @property
    def last_trade_times(self) -> MappingProxyType[str, datetime]:
        """Per symbol, when it last had a fill (read-only)."""
        return MappingProxyType(self._last_trade_at)

    def last_loss_at(self, symbol: str | None = None) -> datetime | None:
        """When a losing trade of `symbol` (or of any symbol) last closed."""
        if symbol is None:
            return self._last_loss_any
        return self._last_loss_at.get(symbol)

    def stop_outs_since(self, since: datetime, symbol: str | None = None) -> list[ClosedTrade]:
        """Trades closed by a stop-loss at or after `since`, oldest first."""
        return [t for t in self.closed_trades_since(since, symbol) if t.stopped_out]

    def strategy_positions(self) -> list[Position]:
        """Open positions as a strategy's `Context.positions`."""
        return [h.as_position() for h in self._holdings.values()]


def _insert_sorted(items: list[Any], item: Any, index: int) -> int:
    """Insert `item` at `index` (where `bisect_right` put it, as `insort` does); 1 if
    that was before the end, else 0."""
    items.insert(index, item)
    return 0 if index == len(items) - 1 else 1


def _drawdown(peak: Decimal, equity: Decimal) -> Decimal:
    return (peak - equity) / peak if peak > 0 and equity < peak else _ZERO


def _closed_at(trade: ClosedTrade) -> datetime:
    return trade.closed_at


def _first(entry: tuple[datetime, str, str]) -> datetime:
    return entry[0]


def _latest(times: Mapping[str, datetime], symbol: str | None) -> datetime | None:
    if symbol is not None:
        return times.get(symbol)
    return max(times.values(), default=None)
