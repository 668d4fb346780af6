"""An algorithmic trading group: signals in, a strategy's decision out.

For each signal the group advances its market view to the signal's candle, asks the
strategy (through the safe wrapper) for a decision, streams its reasoning as a
discussion log, and publishes the decision with the signal as its cause. Each
decision's id is derived from the group, market and candle, so one candle yields at
most one decision however many signals point at it, and a restarted group that
re-reads signals publishes nothing twice.

Positions: the group keeps its own book, opened by its BUY and closed by its SELL
decisions at once (so a long-only strategy does not buy twice while an order is in
flight), then corrected by the `order` events execution sends back: a rejected,
denied or canceled order undoes the step; a fill sets the real quantity and price.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.events import (
    TRADING_GROUP_DISCUSSION_LOG,
    Action,
    Category,
    ConfigUpdateEvent,
    OrderEvent,
    SignalEvent,
    Trace,
)
from shared.kernel.engine import StrategyEngine
from shared.kernel.strategy import Decision, Outcome, Strategy, strategy_names
from shared.logging import get_logger
from shared.market.candles import Candle
from shared.market.feeds import parse_feed_spec
from shared.ml import build_strategy
from shared.sdk import AckTimeout, GatewayClient, Unavailable
from trading_groups.book import PositionBook
from trading_groups.market import FeedCursor

log = get_logger(__name__)

DECISION_NAMESPACE = uuid.UUID("5d1f3f8e-7c1a-4b7e-9b61-3f6c8e2a9d44")
_KEEP_CANDLES = 2000


def decision_id(group: str, symbol: str, candle_time: datetime, epoch: str = "") -> uuid.UUID:
    """The decision's id; `epoch` (the group's `id_epoch` config) starts a new id space."""
    key = f"{group}|{symbol}|{candle_time.isoformat()}"
    return uuid.uuid5(DECISION_NAMESPACE, f"{key}|{epoch}" if epoch else key)


@dataclass
class GroupStats:
    signals: int = 0
    decisions: int = 0
    holds: int = 0
    skipped: int = 0
    orders: int = 0


@dataclass
class _Market:
    spec: str
    cursor: FeedCursor
    engine: StrategyEngine
    candles: deque[Candle] = field(default_factory=lambda: deque(maxlen=_KEEP_CANDLES))
    decided: set[datetime] = field(default_factory=set)


class AlgoGroup:
    """Decide with one strategy per market; `feeds` maps symbol -> feed spec (a
    `feeds` object in the group's config when not given here)."""

    def __init__(
        self,
        client: GatewayClient,
        *,
        strategy: str | None = None,
        params: Mapping[str, Any] | None = None,
        feeds: Mapping[str, str] | None = None,
        timeframe: str = "5m",
        budget_seconds: float = 2.0,
    ) -> None:
        """Strategy, params and feeds given here win; what is not given comes from the
        group's configuration (`strategy`, `params`, `feeds` in its REST config)."""
        self.client = client
        self._given_strategy = strategy
        self._given_params = dict(params) if params is not None else None
        self._given_feeds = dict(feeds) if feeds is not None else None
        self.strategy_name = strategy or ""
        self.params: dict[str, Any] = dict(params or {})
        self.timeframe = timeframe
        self.budget_seconds = budget_seconds
        self.stats = GroupStats()
        self.book = PositionBook()
        self.outcomes: deque[Outcome] = deque(maxlen=200)
        self._markets: dict[str, _Market] = {}
        self._strategy: Strategy | None = None
        if strategy and params is not None:
            self._strategy = build_strategy(strategy, self.params)  # fail fast
        elif strategy and strategy not in strategy_names():
            build_strategy(strategy, {})  # raises, naming the known ones
        self._lock = asyncio.Lock()
        client.add_handler(Category.SIGNAL, self.on_signal)
        client.add_handler(Category.ORDER, self.on_order)
        client.add_handler(Category.CONFIG_UPDATE, self.on_config_update)

    @property
    def name(self) -> str:
        return str(self.client.config.get("name") or "group")

    @property
    def strategy(self) -> Strategy:
        """The strategy, resolved from the group's configuration on first use."""
        if self._strategy is None:
            own = self.client.config.get("config") or {}
            name, params = self._chosen(own, {})
            if not name:
                raise ValueError(
                    own.get("strategy_error")
                    or 'no strategy: pass --strategy or set "strategy" (or "strategy_ref") in '
                    "the group's config"
                )
            self.strategy_name, self.params = name, params
            self._strategy = build_strategy(name, self.params)
        return self._strategy

    def _chosen(
        self, own: Mapping[str, Any], current: Mapping[str, Any]
    ) -> tuple[str | None, dict[str, Any]]:
        """The strategy and params to run with the group's stored config `own`: those
        given on the command line win. A strategy given without params takes the
        stored params only while the config names that same strategy, and its defaults
        otherwise: params stored for another strategy do not fit it. So what runs is a
        function of the flags and the config as it stands, the same after a restart.
        Stored params missing from an update are `current`."""
        stored = own.get("strategy")
        name = self._given_strategy or stored
        if self._given_params is not None:
            params: Mapping[str, Any] = self._given_params
        elif name == stored:
            params = own.get("params", current)
        else:
            params = {}
        return name, dict(params)

    # ------------------------------------------------------------------ markets

    def _feed_spec(self, symbol: str) -> str | None:
        if self._given_feeds is not None:
            return self._given_feeds.get(symbol)
        # The live configuration: a config_update may have changed the feeds.
        own = self.client.config.get("config") or {}
        spec = (own.get("feeds") or {}).get(symbol)
        return str(spec) if spec else None

    async def _market(self, symbol: str, timeframe: str) -> _Market | None:
        spec = self._feed_spec(symbol)
        market = self._markets.get(symbol)
        if market is not None and market.spec != spec:
            await market.cursor.close()
            del self._markets[symbol]
            market = None
        if market is None and spec is not None:
            feed = parse_feed_spec(spec, symbol=symbol, timeframe=timeframe)
            market = _Market(
                spec,
                FeedCursor(feed),
                StrategyEngine(self.strategy, budget_seconds=self.budget_seconds),
            )
            self._markets[symbol] = market
        return market

    async def close(self) -> None:
        for market in self._markets.values():
            await market.cursor.close()

    # ------------------------------------------------------------------ handlers

    async def on_signal(self, event: SignalEvent) -> None:
        async with self._lock:
            await self._on_signal(event)

    async def _on_signal(self, event: SignalEvent) -> None:
        self.stats.signals += 1
        self.book.seed(self.client.positions)
        try:
            self.strategy  # noqa: B018 - resolve it now, to say why if it cannot be
        except ValueError as e:
            await self._discuss(event, f"cannot decide: {e}")
            self.stats.skipped += 1
            return
        p = event.payload
        symbol = p.symbol or (p.affected_symbols[0] if p.affected_symbols else None)
        if symbol is None or p.candle_time is None:
            await self._discuss(event, f"signal {event.id} names no symbol or candle time; ignored")
            self.stats.skipped += 1
            return
        timeframe = p.timeframe or self.timeframe
        market = await self._market(symbol, timeframe)
        if market is None:
            await self._discuss(
                event, f"no market data configured for {symbol}; add a feed for it to decide"
            )
            self.stats.skipped += 1
            return
        for candle in await market.cursor.advance_to(p.candle_time):
            market.engine.update(candle)
            market.candles.append(candle)
        if not market.cursor.at(p.candle_time):
            await self._discuss(
                event,
                f"no {symbol} candle at {p.candle_time.isoformat()} in the group's feed "
                f"(it is at {market.cursor.describe_position()}); no decision",
            )
            self.stats.skipped += 1
            return
        if p.candle_time in market.decided:
            await self._discuss(event, f"already decided on {symbol} {p.candle_time.isoformat()}")
            return
        market.decided.add(p.candle_time)
        ctx = market.engine.context(
            now=market.candles[-1].close_time,
            signal=p.model_dump(mode="json"),
            positions=self.book.held(),
            outcomes=list(self.outcomes),
        )
        decision = market.engine.decide(ctx)
        await self._act(event, symbol, timeframe, p.candle_time, decision)

    async def _act(
        self,
        event: SignalEvent,
        symbol: str,
        timeframe: str,
        candle_time: datetime,
        decision: Decision,
    ) -> None:
        correlation = event.trace.correlation_id or str(event.id)
        await self._discuss(
            event,
            f"{self.strategy.name}: {decision.action.value} ({decision.confidence:.2f}) "
            f"— {decision.reasoning}",
            data={"action": decision.action.value, "confidence": decision.confidence},
        )
        if decision.action is Action.HOLD:
            self.stats.holds += 1
            return
        payload: dict[str, Any] = {
            "symbol": symbol,
            "action": decision.action.value,
            "confidence": decision.confidence,
            "reasoning": decision.reasoning,
            "timeframe": timeframe,
            "entry": decision.entry,
            "stop_loss": decision.stop_loss,
            "take_profit": decision.take_profit,
            "size_hint": decision.size_hint,
            "strategy": self.strategy.name,
            "params": self.params,
            "candle_time": candle_time.isoformat().replace("+00:00", "Z"),
            **{k: v for k, v in decision.details.items() if k not in ("symbol", "action")},
        }
        await self._publish(
            decision_id(
                self.name,
                symbol,
                candle_time,
                str((self.client.config.get("config") or {}).get("id_epoch") or ""),
            ),
            {k: v for k, v in payload.items() if v is not None},
            Trace(correlation_id=correlation, causation_id=str(event.id)),
            title=f"{decision.action.value} {symbol} ({self.strategy.name})",
        )
        self.stats.decisions += 1
        self.book.decided(symbol, decision.action, decision.size_hint, decision.entry, candle_time)

    async def on_order(self, event: OrderEvent) -> None:
        self.stats.orders += 1
        self.book.seed(self.client.positions)
        self.book.apply(event)
        p = event.payload
        status, side, symbol = p.status.lower(), (p.side or "").lower(), p.symbol
        if symbol is None:
            return
        pnl = (event.payload.model_extra or {}).get("realized_pnl")
        if status == "filled" and side == "sell" and pnl is not None:
            self.outcomes.append(
                Outcome(symbol, Decimal(str(pnl)), 0.0, event.ts, self.strategy_name)
            )

    async def on_config_update(self, event: ConfigUpdateEvent) -> None:
        """New strategy or params from the operator: rebuild, re-warm, keep the book."""
        config = event.payload.config.get("config", {})
        if config.get("strategy_error") and not self._given_strategy:
            # Its stored strategy is gone (deleted, or a typo in strategy_ref): say so and
            # keep deciding with what it has rather than stop.
            await self.client.log(
                f"config update refused, keeping {self.strategy_name or 'no strategy'}: "
                f"{config['strategy_error']}",
                level="error",
                code="CONFIG_REJECTED",
            )
            return
        stored = config.get("strategy")
        if self._given_strategy and stored and stored != self._given_strategy:
            # Say why the operator's change does nothing, rather than ignore it silently.
            await self.client.log(
                f"config update names {stored}; this group runs {self._given_strategy}, as "
                "its command line says (--strategy), with "
                + ("the given --params" if self._given_params is not None else "its defaults"),
                level="warning",
                code="CONFIG_IGNORED",
            )
        strategy, params = self._chosen(config, self.params)
        strategy = strategy or self.strategy_name
        if strategy == self.strategy_name and params == self.params:
            return
        try:
            new: Strategy = build_strategy(strategy, params)
        except ValueError as e:
            await self.client.log(
                f"config update refused, keeping {self.strategy_name}: {e}",
                level="error",
                code="CONFIG_REJECTED",
            )
            return
        async with self._lock:
            self.strategy_name, self.params, self._strategy = strategy, dict(params), new
            for market in self._markets.values():
                market.engine = StrategyEngine(new, budget_seconds=self.budget_seconds)
                for candle in market.candles:
                    market.engine.update(candle)
        await self.client.log(
            f"now deciding with {new.describe()}", code="CONFIG_APPLIED", data={"params": params}
        )

    # ------------------------------------------------------------------ output

    async def _discuss(
        self, event: SignalEvent, message: str, *, data: dict[str, Any] | None = None
    ) -> None:
        await self.client.log(
            message,
            code=TRADING_GROUP_DISCUSSION_LOG,
            data={"member": self.strategy_name, "signal": str(event.id), **(data or {})},
            trace=Trace(
                correlation_id=event.trace.correlation_id or str(event.id),
                causation_id=str(event.id),
            ),
        )

    async def _publish(
        self, event_id: uuid.UUID, payload: dict[str, Any], trace: Trace, *, title: str
    ) -> None:
        while True:
            try:
                await self.client.publish(
                    Category.DECISION,
                    payload,
                    id=event_id,
                    trace=trace,
                    title=title,
                    ts=datetime.now(UTC),
                )
                return
            except (AckTimeout, Unavailable) as e:
                # Same id on every try: the gateway stores it once.
                log.warning("decision_retry", decision=str(event_id), error=repr(e))
