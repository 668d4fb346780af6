"""The event-driven backtester: history through the live code path, in one process.

Per candle, in time order across symbols (one account shares them), it does what the
live system does for that candle, with the same kernel code:

1. **The market moves** (the paper exchange, `shared.kernel.fills`): orders waiting
   for this symbol fill if the candle allows: a market order at the open of the
   first candle at or after its `not_before`, a stop-loss or take-profit pair when
   the candle crosses one (one cancels the other).
2. **The strategy decides** on the closed candle (`StrategyEngine` + `safe_decide`,
   as a trading group does), at `now` = the candle's close.
3. **Execution** (as `execution/service.py` does on the market clock): the decision
   becomes a `TradeIntent` checked by the `RiskEngine` against the account's books
   (`account_state` of the `Portfolio`), the account's and group's limits merged,
   and the market's rules; an accepted one becomes a market order that may fill no
   earlier than the next candle's open. A BUY with a stop-loss or take-profit gets
   them as a one-cancels-other pair once it fills; a SELL cancels them.

So a decision made on a candle's close fills at the next price, never the close it
was made on, and the trades, fees and equity are those a paper run of the same
candles makes (the parity test replays both).

When the data ends, a position still open is valued at its symbol's last close in
`final_equity` and listed in `BacktestResult.open_trades` (`exit_reason` "end",
unrealized: no exit fill, no exit fee), apart from the closed trades the metrics
count. Exposure is counted per bar time (a time with a position open in any market
counts once), not per symbol's candle.

Speed (bench/backtest.py, docs/PERFORMANCE.md): the SMA(10)/SMA(30) cross on a
million 1-minute bars, 19,457 round trips, runs in about 3.5 µs a bar, 1.5x
backtesting.py on the same run. What is left is the live path itself: per bar the
indicators, the `Context`, `safe_decide`, the strategy and the loop (about 1.7 µs),
per round trip two risk checks with their `AccountState`, the intents, orders,
fills and bookings (about 85 µs).
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice, repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.backtest.result import BacktestResult, TradeRecord
from shared.events import Action
from shared.kernel.engine import StrategyEngine
from shared.kernel.fills import FillModelConfig, decimal_price, simulate, simulate_oco
from shared.kernel.orders import (
    Fill,
    Order,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    apply_fill,
    client_order_id,
    exit_orders,
    transition,
)
from shared.kernel.portfolio import Holding, Portfolio, PortfolioError
from shared.kernel.risk import (
    MarketRules,
    Mode,
    RiskEngine,
    RiskLimits,
    TradeIntent,
    merge_limits,
)
from shared.kernel.risk.state import DEFAULT_LOOKBACK, account_state
from shared.kernel.strategy import Outcome, Position, Strategy
from shared.market.candles import Candle, timeframe_delta
from shared.market.indicators import indicator_table


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    """What to replay and how to trade it.

    Attributes:
        capital, currency: the account's starting cash.
        fill_model: slippage and fees (the paper exchange's).
        risk: the account's risk limits; `group_risk` the group's, merged with them.
        markets: per symbol, the exchange's rules (precision, minimums); default:
            8 decimals, no minimums.
        group: the deciding group's name (it appears in intents).
    """

    capital: Decimal = Decimal(10_000)
    currency: str = "USDT"
    fill_model: FillModelConfig = field(default_factory=FillModelConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    group_risk: RiskLimits | None = None
    markets: Mapping[str, MarketRules] = field(default_factory=dict)
    group: str = "backtest"


@dataclass
class _Market:
    symbol: str
    engine: StrategyEngine
    rules: MarketRules
    pending: list[Order] = field(default_factory=list)  # waiting entries / exits
    exits: list[Order] = field(default_factory=list)  # a filled entry's stop / target
    stops: tuple[Decimal | None, Decimal | None] = (None, None)
    last: Candle | None = None
    # What the strategy sees of the account in this symbol: rebuilt when a fill is
    # booked, not on every candle.
    positions: tuple[Position, ...] = ()
    # The strategy's indicator values per candle, computed ahead (None: no indicators).
    table: list[dict[str, float | None]] | None = None
    index: int = 0  # candles replayed so far


Progress = Callable[[int, int], None]

#: How many closed trades a strategy sees in `Context.outcomes`.
RECENT_TRADES = 50


class Backtest:
    """One run. Build it, `run()` it once; `result()` is the outcome.

    How it stays fast without leaving the live code path: per candle it still updates
    the strategy's engine, builds the `Context` and calls `safe_decide`, and a decision
    still goes through the risk engine, the fill model and the portfolio. What it
    skips is work whose result it already has: the indicators are computed ahead,
    column by column, by the window's own calculators (`indicator_table`, the same
    numbers bit for bit); the strategy's positions and outcomes are rebuilt when a
    fill is booked, not on every candle, and the loop rereads them only then; orders
    are numbered, not hashed; a flat account's equity is its cash; and with one
    symbol the equity of the candles a position was held is computed at the end, all
    at once, equal bit for bit to the `Decimal` arithmetic `Portfolio.equity()` does
    (cash + quantity x the close; `held_equity`).
    """

    def __init__(
        self,
        strategy: Callable[[], Strategy],
        candles: Mapping[str, Sequence[Candle]],
        config: BacktestConfig,
        *,
        strategy_name: str = "",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if not candles or not any(candles.values()):
            raise ValueError("no candles to replay: give at least one symbol with candles")
        timeframes = {c[0].timeframe for c in candles.values() if c}
        if len(timeframes) != 1:
            raise ValueError(f"all symbols must share one timeframe, got {sorted(timeframes)}")
        self.timeframe = timeframes.pop()
        self.config = config
        self.candles = candles
        self.limits = merge_limits(config.risk, config.group_risk)
        self.risk = RiskEngine(live_trading_enabled=False)
        self.portfolio = Portfolio("backtest", config.capital, currency=config.currency)
        self.markets = {
            symbol: _Market(
                symbol,
                StrategyEngine(strategy()),
                config.markets.get(symbol)
                or MarketRules.from_config(symbol, None, taker_fee=config.fill_model.taker_fee),
            )
            for symbol in candles
        }
        first = next(iter(self.markets.values())).engine.strategy
        self.strategy_name = strategy_name or first.name
        self.params = dict(params or {})
        self.rejections: Counter[str] = Counter()
        self.fills: list[Fill] = []
        self.equity_times: list[datetime] = []
        self.equity: list[float] = []
        self.exposure_bars = 0
        self.bars = 0
        self._step = timeframe_delta(self.timeframe)
        # Only the stop-loss guard and the low-profit lock read the account's recent
        # closed trades (the last loss has its own field): without them, none are
        # converted for the risk engine on every decision.
        protected = self.limits.stoploss_guard or self.limits.low_profit_lock
        self._lookback = DEFAULT_LOOKBACK if protected else timedelta(0)
        self._recent: deque[Outcome] = deque(maxlen=RECENT_TRADES)
        self._outcomes: tuple[Outcome, ...] = ()
        self._flat_equity = float(self.portfolio.equity())
        # One symbol: index in `equity` where the current position's candles begin;
        # their entries hold the close until `_settle` turns them into equity.
        self._held_from: int | None = None
        self._decisions = 0  # accepted decisions: their orders' ids
        # One symbol: the held stretches settled so far, (start, stop, cash, quantity)
        # in `equity`, whose closes `held_equity` turns into equity at the end.
        self._stretches: list[tuple[int, int, Decimal, Decimal]] = []
        # Several symbols: the bar time being replayed, and whether a position was
        # open after its latest candle (see `_run_many`).
        self._exposure_time: datetime | None = None
        self._exposed = False

    # ------------------------------------------------------------------ the loop

    def run(self, progress: Progress | None = None) -> BacktestResult:
        total = sum(len(c) for c in self.candles.values())
        for market in self.markets.values():
            self._prepare(market, self.candles[market.symbol])
        step = max(total // 100, 1) if progress is not None else max(total, 1)
        if len(self.markets) == 1:
            (market,) = self.markets.values()
            candles = self.candles[market.symbol]
            for start in range(0, len(candles), step):
                self._run_one(market, candles, start, min(start + step, len(candles)))
                if progress is not None and self.bars % step == 0:
                    progress(self.bars, total)
            self._settle()
        else:
            ordered = _in_time_order(self.candles)
            while self.bars < total:
                self._run_many(islice(ordered, step))
                if progress is not None and self.bars % step == 0:
                    progress(self.bars, total)
            self.exposure_bars += self._exposed  # the last time
            self._exposed = False
        if progress is not None:
            progress(self.bars, total)
        return self.result()

    def _prepare(self, market: _Market, candles: Sequence[Candle]) -> None:
        """Refuse bad candles up front, as the per-candle path would have on reaching
        them, and compute the strategy's indicators ahead."""
        for candle in candles:
            if not candle.close > 0:
                self.portfolio.mark(market.symbol, decimal_price(candle.close))  # raises
        window = market.engine.window
        if window is not None:
            market.table = indicator_table(window.specs, candles)

    def _run_one(self, market: _Market, candles: Sequence[Candle], start: int, stop: int) -> None:
        """Candles `start` to `stop` of the only symbol: see `_run_many` for what each
        does; the equity of candles with a position open is settled later."""
        step, gap, hold = market.engine.step, self._step, Action.HOLD
        add_time, add_equity = self.equity_times.append, self.equity.append
        table = market.table
        values = repeat(None) if table is None else table[start:stop]
        # What only a fill or an order changes, read again after one: the loop body
        # runs a million times, so every attribute read counts.
        waiting = bool(market.pending or market.exits)
        positions, outcomes = market.positions, self._outcomes
        flat, flat_equity = self._held_from is None, self._flat_equity
        # Not strict: without indicators `values` repeats None without end.
        for candle, row in zip(candles[start:stop], values, strict=False):
            if waiting:
                self._fill(market, candle)
                waiting = bool(market.pending or market.exits)
                positions, outcomes = market.positions, self._outcomes
                flat, flat_equity = self._held_from is None, self._flat_equity
            now = candle.open_time + gap
            decision = step(candle, now, positions, outcomes, row)
            if decision.action is not hold:
                self._execute(market, candle, now, decision)
                waiting = bool(market.pending or market.exits)
            add_time(now)
            # A held candle's close, turned into equity (and counted as exposed) by
            # `_settle` once the position changes.
            add_equity(flat_equity if flat else candle.close)
        market.last = candles[stop - 1]
        self.bars += stop - start

    def _run_many(self, candles: Iterable[Candle]) -> None:
        """Per candle, in time order: the market moves (orders fill), the strategy
        decides on the closed candle, execution acts on the decision."""
        gap, hold = self._step, Action.HOLD
        portfolio, markets = self.portfolio, self.markets
        for candle in candles:
            market = markets[candle.symbol]
            if market.pending or market.exits:
                self._fill(market, candle)
            market.last = candle
            held = portfolio.open_positions
            if held and candle.symbol in portfolio.positions:
                portfolio.mark(candle.symbol, decimal_price(candle.close))
            table = market.table
            now = candle.open_time + gap
            decision = market.engine.step(
                candle,
                now,
                market.positions,
                self._outcomes,
                table[market.index] if table is not None else None,
            )
            market.index += 1
            if decision.action is not hold:
                self._execute(market, candle, now, decision)
            self.equity_times.append(now)
            if held:
                self.equity.append(float(portfolio.equity()))
            else:
                self.equity.append(self._flat_equity)
            # Exposure is per bar time, not per symbol's candle: a time counts when a
            # position is open after its last candle, when every market has moved.
            if now != self._exposure_time:
                self.exposure_bars += self._exposed
                self._exposure_time = now
            self._exposed = held > 0
            self.bars += 1

    def _settle(self) -> None:
        """Note the closes held in `equity` since the position opened, with the books
        they were held at, for `held_equity` to turn into equity at the end:
        `Portfolio.equity()` of one holding, cash + quantity x the close as a Decimal
        (adding its zero start changes no digit), to a float."""
        start = self._held_from
        if start is None:
            return
        ((symbol, holding),) = self.portfolio.positions.items()
        stop = len(self.equity)
        self.exposure_bars += stop - start
        if stop > start:  # valued all at once, at the end (`held_equity`)
            self._stretches.append((start, stop, self.portfolio.cash, holding.quantity))
        self._held_from = stop

    # ------------------------------------------------------------------ the exchange

    def _fill(self, market: _Market, candle: Candle) -> None:
        for order in list(market.pending):
            fill = simulate(order, candle, self.config.fill_model)
            if fill is None:
                continue
            market.pending.remove(order)
            booked = self._book(market, fill)
            if booked and order.leg is OrderLeg.ENTRY:
                stop, target = market.stops
                if stop is not None or target is not None:
                    market.exits = list(
                        exit_orders(
                            apply_fill(order, fill),
                            stop_loss=stop,
                            take_profit=target,
                            at=fill.at,
                            not_before=fill.at,
                        )
                    )
                    market.exits = [
                        transition(o, OrderStatus.SUBMITTED, at=fill.at) for o in market.exits
                    ]
        if market.exits:
            fill = simulate_oco(market.exits, candle, self.config.fill_model)
            if fill is not None:
                (order,) = [o for o in market.exits if o.client_order_id == fill.client_order_id]
                market.exits = []
                market.stops = (None, None)
                self._book(market, fill)

    def _book(self, market: _Market, fill: Fill) -> bool:
        """Book `fill` if the books can hold it. (The order's own record of the fill,
        `apply_fill`, is made only where it is read: an entry's exits hang on it.)"""
        portfolio = self.portfolio
        single = len(self.markets) == 1
        if single:
            # The candles before this one, at the books before it (settling twice
            # changes nothing, should the fill be refused).
            self._settle()
        try:
            booking = portfolio.apply(fill)
        except PortfolioError:
            # The books cannot hold it (cash moved since sizing): the paper exchange
            # would cancel it for want of funds.
            self.rejections["insufficient_funds"] += 1
            return False
        self.fills.append(fill)
        holding = booking.position
        market.positions = (holding.as_position(),) if holding is not None else ()
        trade = booking.closed_trade
        if trade is not None:
            if portfolio.last_closed_trades(1)[0] is trade:
                self._recent.append(trade.as_outcome(self.strategy_name))
            else:  # closed before a trade of another symbol booked earlier: re-sort
                self._recent.clear()
                self._recent.extend(
                    t.as_outcome(self.strategy_name)
                    for t in portfolio.last_closed_trades(RECENT_TRADES)
                )
            self._outcomes = tuple(self._recent)
        if portfolio.open_positions:
            self._held_from = len(self.equity) if single else None
        else:
            self._held_from = None
            self._flat_equity = float(portfolio.equity())
        return True

    # ------------------------------------------------------------------ execution

    def _execute(self, market: _Market, candle: Candle, now: datetime, decision: Any) -> None:
        portfolio, symbol = self.portfolio, candle.symbol
        if portfolio.position(symbol) is not None:
            # With one symbol the marks are set only when read: here, and at the end.
            portfolio.mark(symbol, decimal_price(candle.close))
        try:
            intent = TradeIntent(
                "backtest",
                self.config.group,
                symbol,
                decision.action,
                decision.confidence,
                decision.entry or decimal_price(candle.close),
                now,
                decision.stop_loss,
                decision.take_profit,
                candle.open_time,
                candle.timeframe,
                decision.size_hint,
            )
        except ValueError:
            self.rejections["invalid_intent"] += 1
            return
        verdict = self.risk.evaluate(
            intent,
            account_state(portfolio, mode=Mode.PAPER, now=now, lookback=self._lookback),
            market.rules,
            self.limits,
            now=now,
        )
        if not verdict.accepted or verdict.quantity is None:
            self.rejections[verdict.reason.value if verdict.reason else "rejected"] += 1
            return
        # Live, a decision's id is its event's UUID; here the decisions are numbered,
        # which is as unique within the run and costs no hashing.
        self._decisions += 1
        decision_id = f"backtest-{self._decisions}"
        leg = OrderLeg.ENTRY if intent.is_entry else OrderLeg.EXIT
        if not intent.is_entry:
            market.exits = []
            market.stops = (None, None)
        else:
            market.stops = (decision.stop_loss, decision.take_profit)
        # Sent at once: the order `transition(new, SUBMITTED, at=now)` would give.
        order = Order(
            client_order_id=client_order_id(decision_id, leg),
            account="backtest",
            symbol=candle.symbol,
            side=OrderSide.BUY if intent.is_entry else OrderSide.SELL,
            type=OrderType.MARKET,
            quantity=verdict.quantity,
            created_at=now,
            status=OrderStatus.SUBMITTED,
            updated_at=now,
            leg=leg,
            decision_id=decision_id,
            not_before=now,
        )
        market.pending.append(order)

    # ------------------------------------------------------------------ the outcome

    def result(self) -> BacktestResult:
        self._settle()
        if self._stretches:
            held_equity(self.equity, self._stretches)
            self._stretches = []
        for market in self.markets.values():
            if market.last is not None and market.symbol in self.portfolio.positions:
                self.portfolio.mark(market.symbol, decimal_price(market.last.close))
        trades = [
            TradeRecord(
                symbol=t.symbol,
                quantity=t.quantity,
                entry_time=t.opened_at,
                exit_time=t.closed_at,
                entry_price=t.entry_price,
                exit_price=t.exit_price,
                pnl=t.pnl,
                return_pct=t.return_pct,
                fees=t.fees,
                exit_reason=(t.exit_leg.value if t.exit_leg else "exit"),
            )
            for t in self.portfolio.closed_trades
        ]
        starts = [c[0].open_time for c in self.candles.values() if c]
        open_trades = [
            _still_open(holding, self.markets[symbol], self.portfolio, self._step)
            for symbol, holding in self.portfolio.positions.items()
        ]
        ends = [c[-1].open_time + self._step for c in self.candles.values() if c]
        return BacktestResult(
            strategy=self.strategy_name,
            params=self.params,
            symbols=list(self.candles),
            timeframe=self.timeframe,
            start=min(starts),
            end=max(ends),
            bars=self.bars,
            capital=self.config.capital,
            currency=self.config.currency,
            final_equity=self.portfolio.equity(),
            fees_paid=self.portfolio.fees_paid,
            trades=trades,
            open_trades=open_trades,
            equity_times=self.equity_times,
            equity=self.equity,
            exposure_bars=self.exposure_bars,
            rejections=dict(self.rejections),
            fills=len(self.fills),
            settings={
                "fill_model": self.config.fill_model.model_dump(mode="json"),
                "risk": self.limits.model_dump(mode="json"),
            },
        )


def _still_open(
    holding: Holding, market: _Market, books: Portfolio, step: timedelta
) -> TradeRecord:
    """A position still open when the data ends, as a trade closed at its symbol's last
    close for the report, `exit_reason` "end": the value `final_equity` counts it at.
    Its PnL is unrealized (`Holding.unrealized_pnl`: no exit fee, no fill), its fees
    the entry's; it is not a closed trade and no trade metric counts it."""
    mark = books.price(holding.symbol)
    # A held symbol was traded (so marked) and replayed.
    assert mark is not None  # noqa: S101
    assert market.last is not None  # noqa: S101
    pnl = holding.unrealized_pnl(mark)
    return TradeRecord(
        symbol=holding.symbol,
        quantity=holding.quantity,
        entry_time=holding.opened_at,
        exit_time=market.last.open_time + step,
        entry_price=holding.average_entry_price,
        exit_price=mark,
        pnl=pnl,
        # As `ClosedTrade.return_pct`: PnL over the cost, entry fees included.
        return_pct=float(pnl / holding.cost_basis * 100) if holding.cost_basis else 0.0,
        fees=holding.entry_fees,
        exit_reason="end",
    )


def held_equity(equity: list[float], stretches: list[tuple[int, int, Decimal, Decimal]]) -> None:
    """Replace each close in `equity[start:stop]` by the equity of `cash` and a holding
    of `quantity` at that close: `float(cash + quantity * Decimal(repr(close)))`, what
    `Portfolio.equity()` gives (28 digits, half-even, then the nearest float), bit for
    bit.

    Exact `Decimal` arithmetic costs about a microsecond a bar, most of it `repr`.
    So the value is first bounded in double-double arithmetic, all bars at once: the
    cash and the quantity as sums of two floats, the product by Dekker's split, the
    sum by Knuth's two-sum; the bound covers the unknown distance between the close
    and its shortest repr (half a unit in its last place, times the quantity), every
    rounding, and the 28-digit roundings. Where every value within the bound rounds to
    the same float, that float is the answer; elsewhere (about one bar in ten at 10 %
    of equity held; all of them with the whole account in one position) the bar is
    valued in `Decimal` as before.
    """
    starts = np.array([s[0] for s in stretches], dtype=np.int64)
    lengths = np.array([s[1] - s[0] for s in stretches], dtype=np.int64)
    at = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(
        starts - (np.cumsum(lengths) - lengths), lengths
    )
    values = np.array(equity, dtype=np.float64)
    x = values[at]
    per_stretch = [(*_split(cash), *_split(quantity)) for _, _, cash, quantity in stretches]
    cash_hi, cash_lo, qty_hi, qty_lo = (
        np.repeat(np.array(column, dtype=np.float64), lengths)
        for column in zip(*per_stretch, strict=True)
    )
    with np.errstate(all="ignore"):  # a non-finite step fails the test below
        product, product_error = _two_product(qty_hi, x)
        high, low = _two_sum(cash_hi, product)
        small = qty_lo * x
        tail = ((low + product_error) + cash_lo) + small
        top = high + tail
        rest = tail - (top - high)  # top + rest == high + tail, |high| >= |tail|
        bound = (
            np.abs(qty_hi) * np.spacing(x) * 0.5000001  # the close vs its shortest repr
            + (np.abs(low) + np.abs(product_error) + np.abs(cash_lo) + np.abs(small)) * 2.0**-50
            + (np.abs(top) + np.abs(product)) * 2.0**-88  # 28-digit roundings, splits
        )
        above = np.nextafter(top, np.inf) - top
        below = top - np.nextafter(top, -np.inf)
        sure = (
            np.isfinite(top)
            & np.isfinite(bound)
            & (top > 0)
            & (np.abs(product) > 2.0**-900)  # Dekker's split is exact above underflow
            & (rest + bound < above / 2)
            & (rest - bound > -below / 2)
        )
    values[at[sure]] = top[sure]
    unsure = np.flatnonzero(~sure)
    if len(unsure):
        owner = np.repeat(np.arange(len(stretches)), lengths)[unsure]
        for i, k, close in zip(
            at[unsure].tolist(), owner.tolist(), x[unsure].tolist(), strict=True
        ):
            _, _, cash, quantity = stretches[k]
            values[i] = float(cash + quantity * Decimal(repr(close)))
    equity[:] = values.tolist()


def _split(value: Decimal) -> tuple[float, float]:
    """`value` as the sum of two floats, to about 106 bits."""
    high = float(value)
    return high, float(value - Decimal(high))


_DEKKER = 2.0**27 + 1


def _two_product(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> tuple[Any, Any]:
    """(p, e) with p = fl(a * b) and p + e == a * b exactly (Dekker; no overflow)."""
    p = a * b
    a_big = _DEKKER * a
    a_hi = a_big - (a_big - a)
    a_lo = a - a_hi
    b_big = _DEKKER * b
    b_hi = b_big - (b_big - b)
    b_lo = b - b_hi
    e = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, e


def _two_sum(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> tuple[Any, Any]:
    """(s, e) with s = fl(a + b) and s + e == a + b exactly (Knuth)."""
    s = a + b
    v = s - a
    e = (a - (s - v)) + (b - v)
    return s, e


def _in_time_order(candles: Mapping[str, Sequence[Candle]]) -> Iterable[Candle]:
    """All symbols' candles by close time (then symbol): the order the market saw them."""
    if len(candles) == 1:
        yield from next(iter(candles.values()))
        return
    # One timeframe for all: ordering by open time is ordering by close time.
    yield from heapq.merge(*candles.values(), key=lambda c: (c.open_time, c.symbol))


def run_backtest(
    strategy: Callable[[], Strategy],
    candles: Mapping[str, Sequence[Candle]],
    config: BacktestConfig | None = None,
    *,
    strategy_name: str = "",
    params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay `candles` through a fresh `strategy()` per symbol; see the module doc."""
    return Backtest(
        strategy, candles, config or BacktestConfig(), strategy_name=strategy_name, params=params
    ).run(progress)
