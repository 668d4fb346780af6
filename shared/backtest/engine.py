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
"""

from __future__ import annotations

import heapq
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

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
from shared.kernel.portfolio import Portfolio
from shared.kernel.risk import (
    MarketRules,
    Mode,
    RiskEngine,
    RiskLimits,
    TradeIntent,
    merge_limits,
)
from shared.kernel.risk.state import account_state
from shared.kernel.strategy import Strategy
from shared.market.candles import Candle

DECISIONS = uuid.UUID("2f3d7a9c-5b1e-4c8a-9e6f-0a1b2c3d4e5f")


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


Progress = Callable[[int, int], None]


class Backtest:
    """One run. Build it, `run()` it once; `result()` is the outcome."""

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

    # ------------------------------------------------------------------ the loop

    def run(self, progress: Progress | None = None) -> BacktestResult:
        total = sum(len(c) for c in self.candles.values())
        step = max(total // 100, 1)
        for candle in _in_time_order(self.candles):
            self._bar(candle)
            self.bars += 1
            if progress is not None and self.bars % step == 0:
                progress(self.bars, total)
        if progress is not None:
            progress(self.bars, total)
        return self.result()

    def _bar(self, candle: Candle) -> None:
        market = self.markets[candle.symbol]
        self._fill(market, candle)
        market.last = candle
        self.portfolio.mark(candle.symbol, decimal_price(candle.close))
        market.engine.update(candle)
        ctx = market.engine.context(
            now=candle.close_time,
            positions=[p for p in self.portfolio.strategy_positions() if p.symbol == candle.symbol],
            outcomes=[t.as_outcome(self.strategy_name) for t in self._recent_trades()],
        )
        decision = market.engine.decide(ctx)
        if decision.action is not Action.HOLD:
            self._execute(market, candle, decision.action, decision)
        self.equity_times.append(candle.close_time)
        self.equity.append(float(self.portfolio.equity()))
        if self.portfolio.positions:
            self.exposure_bars += 1

    def _recent_trades(self) -> Sequence[Any]:
        trades = self.portfolio.closed_trades
        return trades[-50:]

    # ------------------------------------------------------------------ the exchange

    def _fill(self, market: _Market, candle: Candle) -> None:
        for order in list(market.pending):
            fill = simulate(order, candle, self.config.fill_model)
            if fill is None:
                continue
            market.pending.remove(order)
            filled = self._book(order, fill)
            if filled is not None and order.leg is OrderLeg.ENTRY:
                stop, target = market.stops
                if stop is not None or target is not None:
                    market.exits = list(
                        exit_orders(
                            filled,
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
                self._book(order, fill)

    def _book(self, order: Order, fill: Fill) -> Order | None:
        if self.portfolio.can_apply(fill) is not None:
            # The books cannot hold it (cash moved since sizing): the paper exchange
            # would cancel it for want of funds.
            self.rejections["insufficient_funds"] += 1
            return None
        self.portfolio.apply(fill)
        self.fills.append(fill)
        return apply_fill(order, fill)

    # ------------------------------------------------------------------ execution

    def _execute(self, market: _Market, candle: Candle, action: Action, decision: Any) -> None:
        now = candle.close_time
        entry = decision.entry or decimal_price(candle.close)
        try:
            intent = TradeIntent(
                account="backtest",
                group=self.config.group,
                symbol=candle.symbol,
                side=action,
                confidence=decision.confidence,
                entry=entry,
                decided_at=now,
                stop_loss=decision.stop_loss,
                take_profit=decision.take_profit,
                candle_time=candle.open_time,
                timeframe=candle.timeframe,
                size_hint=decision.size_hint,
            )
        except ValueError:
            self.rejections["invalid_intent"] += 1
            return
        verdict = self.risk.evaluate(
            intent,
            account_state(self.portfolio, mode=Mode.PAPER, now=now),
            market.rules,
            self.limits,
            now=now,
        )
        if not verdict.accepted or verdict.quantity is None:
            self.rejections[verdict.reason.value if verdict.reason else "rejected"] += 1
            return
        decision_id = uuid.uuid5(DECISIONS, f"{candle.symbol}|{candle.open_time.isoformat()}")
        leg = OrderLeg.ENTRY if intent.is_entry else OrderLeg.EXIT
        if not intent.is_entry:
            market.exits = []
            market.stops = (None, None)
        else:
            market.stops = (decision.stop_loss, decision.take_profit)
        order = Order(
            client_order_id=client_order_id(decision_id, leg),
            account="backtest",
            symbol=candle.symbol,
            side=OrderSide.BUY if intent.is_entry else OrderSide.SELL,
            type=OrderType.MARKET,
            quantity=verdict.quantity,
            created_at=now,
            leg=leg,
            decision_id=str(decision_id),
            not_before=now,
        )
        market.pending.append(transition(order, OrderStatus.SUBMITTED, at=now))

    # ------------------------------------------------------------------ the outcome

    def result(self) -> BacktestResult:
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
        ends = [c[-1].close_time for c in self.candles.values() if c]
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


def _in_time_order(candles: Mapping[str, Sequence[Candle]]) -> Iterable[Candle]:
    """All symbols' candles by close time (then symbol): the order the market saw them."""
    if len(candles) == 1:
        yield from next(iter(candles.values()))
        return
    yield from heapq.merge(*candles.values(), key=lambda c: (c.close_time, c.symbol))


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
