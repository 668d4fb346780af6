"""An LLM trading group: a team of model-backed members discusses each signal.

For each signal the group aligns its market view to the signal's candle (as the
algorithmic group does, from the feeds in its config), writes the brief every member
is shown (the signal, recent candles and indicators, its open positions, its recent
decisions and what came of them, the most relevant lessons of its closed trades),
and lets the team discuss (`team.py`). Every message is stored in
`discussion_messages` and then streamed as a `log` frame
(`TRADING_GROUP_DISCUSSION_LOG`); every call is stored in `llm_calls` and budgeted
(`calls.py`). A BUY, SELL or CLOSE is published as a `decision` whose cause is the
signal and whose payload names the discussion (`discussion_id`); a HOLD is not
published, but its discussion says why.

Ids and replays: the decision's id is derived like the algorithmic group's (group,
market, candle, `id_epoch`; a signal without a candle by its own id), so one candle
yields one decision. A signal delivered again after a restart finds its finished
discussion and re-publishes its decision with the same id (which the gateway stores
once) instead of paying for a second discussion; a discussion the restart cut short
is marked `failed` and held again.

Positions and memory follow the `order` events execution sends back: the book as in
the algorithmic group, and after a filled sell with a realized PnL, a reflection.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from shared.config import LLMSettings
from shared.db.models import DiscussionRow
from shared.events import (
    TRADING_GROUP_DISCUSSION_LOG,
    Action,
    Category,
    ConfigUpdateEvent,
    LogLevel,
    OrderEvent,
    SignalEvent,
    Trace,
)
from shared.kernel.strategy import Decision
from shared.llm.budget import LLM_BUDGET_EXCEEDED, Budget, BudgetExceeded
from shared.llm.store import FINISHED, LlmStore
from shared.logging import get_logger
from shared.market.candles import Candle
from shared.market.feeds import parse_feed_spec
from shared.market.indicators import IndicatorWindow
from shared.sdk import AckTimeout, GatewayClient, GatewayError, Unavailable
from trading_groups.book import PositionBook
from trading_groups.llm.calls import Ledger, MemberFailed
from trading_groups.llm.config import (
    LLMGroupConfig,
    Member,
    parse_config,
    reflection_member,
    resolve_member,
)
from trading_groups.llm.memory import (
    ClosedTrade,
    Remembered,
    model_reflection,
    recall,
    template_reflection,
)
from trading_groups.llm.prompts import (
    INDICATORS,
    REFLECTION_PROMPT,
    Brief,
    clip,
    decision_line,
    messages,
    system_prompt,
)
from trading_groups.llm.schemas import ReflectionNote
from trading_groups.llm.team import Discussion, Outcome, Said
from trading_groups.market import FeedCursor

log = get_logger(__name__)

LLM_PRICE_UNKNOWN = "LLM_PRICE_UNKNOWN"
LLM_REFLECTION = "LLM_REFLECTION"
STRATEGY_NAME = "llm"

_KEEP_CANDLES = 200
#: Decision ids: UUID 5 of the group, the market and the candle (or the signal, for one
#: without a candle) and the `id_epoch`, the algorithmic group's scheme in a namespace
#: of its own (not imported from it: that would load scikit-learn into this process).
DECISION_NAMESPACE = uuid.UUID("0b6f1c52-3f0e-4a8e-9d0c-6a1e7f3b2c91")

#: Log frames are bounded (64 KiB by default); a message longer than this is cut.
_MAX_LOG_CHARS = 8_000


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class GroupStats:
    signals: int = 0
    discussions: int = 0
    decisions: int = 0
    holds: int = 0
    skipped: int = 0
    orders: int = 0
    reflections: int = 0


@dataclass
class _Market:
    spec: str
    cursor: FeedCursor
    window: IndicatorWindow = field(default_factory=lambda: IndicatorWindow(INDICATORS))
    candles: deque[Candle] = field(default_factory=lambda: deque(maxlen=_KEEP_CANDLES))
    values: dict[str, float | None] = field(default_factory=dict)
    decided: set[datetime] = field(default_factory=set)

    def update(self, candle: Candle) -> None:
        self.values = self.window.update(candle)
        self.candles.append(candle)


class LLMGroup:
    """Discuss each signal with the team configured in the group's REST config.

    Args:
        client: the gateway client (the group's token).
        store: the LLM tables.
        settings: the endpoint and the models of each tier.
        clock: the time now (UTC): the budget's day, the stored times.
        http_client: shared by every model; see `shared.llm.client.make_http_client`.
        environ: where members' `api_key_env` variables are read.
    """

    def __init__(
        self,
        client: GatewayClient,
        store: LlmStore,
        settings: LLMSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        http_client: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.clock = clock
        self.environ = os.environ if environ is None else environ
        self.stats = GroupStats()
        self.book = PositionBook()
        #: What execution reported of each decision, by decision id (for the prompts).
        self.outcomes: dict[str, str] = {}
        self.ledger = Ledger(
            group="",
            store=store,
            clock=clock,
            http_client=http_client,
            unknown_price=self._unknown_price,
        )
        self._config: LLMGroupConfig | None = None
        self._team: list[Member] = []
        self._reflector: Member | None = None
        self._markets: dict[str, _Market] = {}
        self._lock = asyncio.Lock()
        client.add_handler(Category.SIGNAL, self.on_signal)
        client.add_handler(Category.ORDER, self.on_order)
        client.add_handler(Category.CONFIG_UPDATE, self.on_config_update)

    @property
    def name(self) -> str:
        return str(self.client.config.get("name") or "group")

    # ------------------------------------------------------------------ config

    @property
    def config(self) -> LLMGroupConfig:
        """The configuration in force, read from the group's REST config on first use.

        Raises:
            ValueError: the group's config is invalid (and no earlier one was valid).
        """
        if self._config is None:
            self._apply(self.client.config)
        assert self._config is not None
        return self._config

    def _apply(self, view: Mapping[str, Any]) -> LLMGroupConfig:
        """Apply the group's configuration as the gateway sends it (name, kind, config)."""
        kind = view.get("kind")
        if kind not in (None, "llm"):
            raise ValueError(
                f"this group is of kind {kind!r}, not 'llm': run `ats group {kind}` for it, "
                'or set its kind to "llm"'
            )
        config = parse_config(view.get("config") or {})
        team = [
            resolve_member(m, config.defaults, self.settings, self.environ) for m in config.members
        ]
        reflector = reflection_member(config.defaults, self.settings)
        self._config, self._team, self._reflector = config, team, reflector
        self.ledger.group = self.name
        self.ledger.budget = Budget(config.budgets.daily_tokens, config.budgets.daily_cost)
        self.ledger.prices = config.price_table()
        return config

    async def on_config_update(self, event: ConfigUpdateEvent) -> None:
        """A new config from the operator: applied between discussions, or refused
        (the one in force stays) with the reason."""
        async with self._lock:
            try:
                config = self._apply(event.payload.config)
            except ValueError as e:
                await self._log(
                    f"config update refused, keeping the current one: {e}",
                    level=LogLevel.ERROR,
                    code="CONFIG_REJECTED",
                )
                return
        await self._log(
            f"now discussing with {', '.join(f'{m.name} ({m.spec.model})' for m in self._team)}",
            code="CONFIG_APPLIED",
            data={
                "team": [m.name for m in self._team],
                "budgets": config.budgets.model_dump(mode="json"),
            },
        )

    # ------------------------------------------------------------------ markets

    async def _market(self, symbol: str, timeframe: str, config: LLMGroupConfig) -> _Market | None:
        spec = config.feeds.get(symbol)
        market = self._markets.get(symbol)
        if market is not None and market.spec != spec:
            await market.cursor.close()
            del self._markets[symbol]
            market = None
        if market is None and spec is not None:
            feed = parse_feed_spec(spec, symbol=symbol, timeframe=timeframe)
            market = self._markets[symbol] = _Market(spec, FeedCursor(feed))
        return market

    async def close(self) -> None:
        for market in self._markets.values():
            await market.cursor.close()

    # ------------------------------------------------------------------ signals

    async def on_signal(self, event: SignalEvent) -> None:
        async with self._lock:
            self.stats.signals += 1
            try:
                await self._on_signal(event)
            except Exception as e:  # one bad signal must not stop the group
                log.exception("signal_failed", signal=str(event.id))
                await self._note(event, f"cannot decide: {type(e).__name__}: {e}")

    async def _on_signal(self, event: SignalEvent) -> None:
        self.book.seed(self.client.positions)
        try:
            config = self.config
        except ValueError as e:
            await self._note(event, f"cannot decide: {e}")
            self.stats.skipped += 1
            return
        p = event.payload
        symbol = p.symbol or (p.affected_symbols[0] if p.affected_symbols else None)
        if symbol is None:
            await self._note(event, f"signal {event.id} names no symbol; ignored")
            self.stats.skipped += 1
            return
        if await self._seen_before(event):
            return
        timeframe = p.timeframe or config.timeframe
        market = await self._market(symbol, timeframe, config)
        note = ""
        if market is not None and p.candle_time is not None:
            for candle in await market.cursor.advance_to(p.candle_time):
                market.update(candle)
            if not market.cursor.at(p.candle_time):
                await self._note(
                    event,
                    f"no {symbol} candle at {p.candle_time.isoformat()} in the group's feed "
                    f"(it is at {market.cursor.describe_position()}); no decision",
                )
                self.stats.skipped += 1
                return
            if p.candle_time in market.decided:
                await self._note(event, f"already decided on {symbol} {p.candle_time.isoformat()}")
                return
            market.decided.add(p.candle_time)
        elif market is not None:
            note = "The signal names no candle: the market data is the group's latest."
        else:
            note = f"No candle feed is configured for {symbol}: judge from the signal alone."
        decision = decision_id(self.name, symbol, p.candle_time, str(event.id), config.id_epoch)
        brief = await self._brief(event, symbol, timeframe, market, note, config)
        await self._discuss(event, brief, decision, market)

    async def _seen_before(self, event: SignalEvent) -> bool:
        """Whether this signal was discussed already (delivered again after a restart):
        its decision is published again, with the same id; a discussion cut short is
        closed as failed, and the signal discussed anew."""
        previous = await self.store.discussion_of_signal(self.name, str(event.id))
        if previous is None:
            return False
        if previous.status not in FINISHED:
            await self.store.finish_discussion(
                previous.id,
                status="failed",
                action=Action.HOLD.value,
                reason="interrupted: the group stopped during the discussion",
                finished_at=self.clock(),
            )
            return False
        if previous.status == "decided" and previous.decision_id is not None:
            payload = next(
                (
                    m.data["payload"]
                    for m in reversed(await self.store.messages(previous.id))
                    if m.kind == "decision" and "payload" in m.data
                ),
                None,
            )
            if payload is not None:
                await self._publish(uuid.UUID(previous.decision_id), payload, _trace(event))
        await self._note(event, f"already discussed in {previous.id} ({previous.status})")
        return True

    async def _brief(
        self,
        event: SignalEvent,
        symbol: str,
        timeframe: str,
        market: _Market | None,
        note: str,
        config: LLMGroupConfig,
    ) -> Brief:
        candles = list(market.candles)[-config.context.candles :] if market else []
        if config.context.candles == 0:
            candles = []
        recent = await self.store.recent_discussions(self.name, limit=config.context.decisions)
        decisions = []
        for d in recent:
            came = None
            if d.status == "decided" and d.decision_id is not None:
                came = self.outcomes.get(d.decision_id, "no order reported yet")
            decisions.append(
                decision_line(d.started_at, d.symbol, d.action, d.status, d.reason, came)
            )
        memory = config.memory
        stored = await self.store.reflections(
            self.name, symbol=symbol, limit=max(memory.max_reflections * 3, 10)
        )
        lessons = recall(
            [Remembered(r.symbol, r.content, r.created_at) for r in stored],
            symbol=symbol,
            max_items=memory.max_reflections,
            max_chars=memory.max_chars,
        )
        signal = {
            "id": str(event.id),
            "source": event.source,
            "title": event.title,
            "time": event.ts.isoformat(),
            "payload": event.payload.model_dump(mode="json", exclude_none=True),
        }
        return Brief(
            group=self.name,
            symbol=symbol,
            timeframe=timeframe,
            signal=signal,
            candles=candles,
            indicators=market.values if market else {},
            positions=self.book.held(),
            decisions=decisions,
            reflections=lessons,
            market_note=note,
        )

    async def _discuss(
        self, event: SignalEvent, brief: Brief, decision: uuid.UUID, market: _Market | None
    ) -> None:
        config = self.config
        discussion = str(uuid.uuid4())
        trace = _trace(event)
        candle_time = event.payload.candle_time
        last_close = Decimal(str(market.candles[-1].close)) if market and market.candles else None

        def payload(data: Mapping[str, Any]) -> dict[str, Any]:
            fields = {
                "symbol": brief.symbol,
                "action": data["action"],
                "confidence": data["confidence"],
                "reasoning": clip(str(data.get("reasoning", "")), 4_000),
                "timeframe": brief.timeframe,
                "entry": data.get("entry") or (str(last_close) if last_close else None),
                "stop_loss": data.get("stop_loss"),
                "take_profit": data.get("take_profit"),
                "size_hint": data.get("size_hint"),
                "strategy": STRATEGY_NAME,
                "discussion_id": discussion,
                "candle_time": (
                    candle_time.isoformat().replace("+00:00", "Z") if candle_time else None
                ),
            }
            return {k: v for k, v in fields.items() if v is not None}

        await self.store.start_discussion(
            id=discussion,
            group=self.name,
            signal_id=str(event.id),
            correlation_id=trace.correlation_id,
            symbol=brief.symbol,
            started_at=self.clock(),
        )
        self.stats.discussions += 1
        run = Discussion(
            team=self._team,
            config=config,
            ledger=self.ledger,
            brief=brief,
            say=self._sayer(event, discussion, payload),
            discussion_id=discussion,
            correlation_id=trace.correlation_id,
        )
        try:
            outcome: Outcome = await run.run()
        except Exception as e:  # run() holds on its own; this is its last line of defence
            log.exception("discussion_failed", discussion=discussion)
            reason = f"no decision: the discussion failed: {type(e).__name__}: {e}"
            outcome = Outcome(Decision.hold(reason), "failed", reason)
        if outcome.budget is not None:
            await self._budget_reached(outcome.budget, trace, discussion=discussion)
        decided = outcome.status == "decided"
        tally = run.tally
        await self.store.finish_discussion(
            discussion,
            status=outcome.status,
            action=outcome.decision.action.value,
            reason=outcome.reason,
            decision_id=str(decision) if decided else None,
            tokens_in=tally.tokens_in,
            tokens_out=tally.tokens_out,
            cost=tally.cost,
            finished_at=self.clock(),
        )
        if not decided:
            self.stats.holds += 1
            return
        d = outcome.decision
        data = {
            "action": d.action.value,
            "confidence": d.confidence,
            "reasoning": d.reasoning,
            **{
                k: str(v)
                for k, v in (
                    ("entry", d.entry),
                    ("stop_loss", d.stop_loss),
                    ("take_profit", d.take_profit),
                    ("size_hint", d.size_hint),
                )
                if v is not None
            },
        }
        await self._publish(decision, payload(data), trace)
        self.stats.decisions += 1
        self.book.decided(
            brief.symbol, d.action, d.size_hint, d.entry or last_close, candle_time or self.clock()
        )

    def _sayer(
        self,
        event: SignalEvent,
        discussion: str,
        payload: Callable[[Mapping[str, Any]], dict[str, Any]],
    ) -> Callable[[Said], Any]:
        """Store each message, then stream it as a discussion log frame."""
        numbers = itertools.count(1)
        trace = _trace(event)

        async def say(said: Said) -> None:
            seq = next(numbers)  # taken before any await: concurrent members get their own
            data = dict(said.data)
            if said.kind == "decision" and data.get("action") not in (None, Action.HOLD.value):
                data["payload"] = payload(data)
            await self.store.add_message(
                discussion_id=discussion,
                seq=seq,
                member=said.member,
                role=said.role,
                kind=said.kind,
                content=said.content,
                data=data,
                llm_call_id=said.llm_call_id,
                created_at=self.clock(),
            )
            await self._log(
                clip(f"{said.member} ({said.role}): {said.content}", _MAX_LOG_CHARS),
                level=LogLevel.WARNING if said.kind == "error" else LogLevel.INFO,
                code=TRADING_GROUP_DISCUSSION_LOG,
                data={
                    "discussion_id": discussion,
                    "member": said.member,
                    "role": said.role,
                    "kind": said.kind,
                    "seq": seq,
                    "signal": str(event.id),
                    "llm_call_id": said.llm_call_id,
                    "answer": data,
                },
                trace=trace,
            )

        return say

    # ------------------------------------------------------------------ orders

    async def on_order(self, event: OrderEvent) -> None:
        async with self._lock:
            self.stats.orders += 1
            try:
                await self._on_order(event)
            except Exception:  # one bad event must not stop the group
                log.exception("order_failed", order=str(event.id))

    async def _on_order(self, event: OrderEvent) -> None:
        self.book.seed(self.client.positions)
        p = event.payload
        status, side, symbol = p.status.lower(), (p.side or "").lower(), p.symbol
        if symbol is None:
            return
        self.book.apply(event)
        extra = p.model_extra or {}
        pnl = _decimal(extra.get("realized_pnl"))
        cause = event.trace.causation_id
        if cause is not None:
            what = f"{status} {side} {p.quantity or ''} @ {p.price or ''}".replace("  ", " ")
            if pnl is not None:
                what += f", realized PnL {pnl}"
            if p.reason:
                what += f" ({clip(p.reason, 200)})"
            self.outcomes[cause] = what.strip()
        if status == "filled" and side == "sell" and pnl is not None:
            await self._reflect(event, symbol, pnl)

    async def _reflect(self, event: OrderEvent, symbol: str, pnl: Decimal) -> None:
        """Write what this closed trade teaches (once per closing decision)."""
        key = event.trace.causation_id or str(event.id)
        if await self.store.has_reflection(self.name, key):
            return
        try:
            config: LLMGroupConfig | None = self.config
        except ValueError:
            config = None
        entry: DiscussionRow | None
        exit_reason: str | None
        exit_ = await self.store.discussion_of_decision(key)
        if exit_ is not None and exit_.action == Action.BUY.value:
            # A stop or target of the entry closed it, not a decision of the group.
            entry, exit_reason = (
                exit_,
                _order_reason(event) or "closed by a stop loss or take profit",
            )
        else:
            entry = await self.store.decided(
                self.name,
                symbol=symbol,
                action=Action.BUY.value,
                before=exit_.started_at if exit_ else None,
            )
            exit_reason = exit_.reason if exit_ else _order_reason(event)
        trade = ClosedTrade(
            symbol=symbol,
            pnl=pnl,
            exit_price=event.payload.price,
            quantity=event.payload.quantity,
            entry_reason=entry.reason if entry else None,
            exit_reason=exit_reason,
        )
        limit = config.memory.reflection_chars if config else 600
        content = await self._lesson(event, trade, config, limit)
        await self.store.add_reflection(
            group=self.name,
            symbol=symbol,
            decision_id=key,
            pnl=pnl,
            content=content,
            created_at=self.clock(),
        )
        self.stats.reflections += 1
        await self._log(
            content,
            code=LLM_REFLECTION,
            data={"symbol": symbol, "decision_id": key, "pnl": str(pnl)},
            trace=event.trace,
        )

    async def _lesson(
        self, event: OrderEvent, trade: ClosedTrade, config: LLMGroupConfig | None, limit: int
    ) -> str:
        if config is None or self._reflector is None:
            return template_reflection(trade, why="the group's config is invalid", max_chars=limit)
        if not config.memory.reflect:
            return template_reflection(
                trade, why="reflections by the model are off", max_chars=limit
            )
        system = system_prompt(
            self._reflector,
            ReflectionNote,
            group=self.name,
            symbol=trade.symbol,
            timeframe=config.timeframe,
            template=REFLECTION_PROMPT,
        )
        user = f"## The closed trade\n\n{trade.facts()}\n\n## Your task\n\nWrite the lesson."
        try:
            answered = await self.ledger.ask(
                self._reflector,
                messages(system, user),
                ReflectionNote,
                correlation_id=event.trace.correlation_id,
            )
        except BudgetExceeded as e:
            await self._budget_reached(e, event.trace)
            return template_reflection(trade, why=e.reason, max_chars=limit)
        except MemberFailed as e:
            return template_reflection(
                trade, why=f"the model gave none ({e.reason})", max_chars=limit
            )
        note = answered.value
        assert isinstance(note, ReflectionNote)
        return model_reflection(trade, note.lesson, max_chars=limit)

    # ------------------------------------------------------------------ output

    async def _budget_reached(
        self, e: BudgetExceeded, trace: Trace, *, discussion: str | None = None
    ) -> None:
        await self._log(
            f"LLM budget reached, holding: {e.reason}",
            level=LogLevel.WARNING,
            code=LLM_BUDGET_EXCEEDED,
            data={
                "discussion_id": discussion,
                "tokens_used": e.used.tokens,
                "cost_used": str(e.used.cost),
                "daily_tokens": e.budget.daily_tokens,
                "daily_cost": None if e.budget.daily_cost is None else str(e.budget.daily_cost),
            },
            trace=trace,
        )

    async def _unknown_price(self, model: str) -> None:
        await self._log(
            f"no price for model {model} in the price table: its calls cost 0 and do not "
            "count towards the daily cost budget; add it to the group's config `prices`",
            level=LogLevel.WARNING,
            code=LLM_PRICE_UNKNOWN,
            data={"model": model},
        )

    async def _note(self, event: SignalEvent, message: str) -> None:
        """A discussion line that is not a member's: why a signal is not discussed."""
        await self._log(
            message,
            code=TRADING_GROUP_DISCUSSION_LOG,
            data={"member": "group", "kind": "note", "signal": str(event.id)},
            trace=_trace(event),
        )

    async def _log(
        self,
        message: str,
        *,
        code: str,
        level: LogLevel = LogLevel.INFO,
        data: Mapping[str, Any] | None = None,
        trace: Trace | None = None,
    ) -> None:
        # What is logged is already stored (or only informative): a gateway that
        # does not acknowledge it must not stop the discussion.
        try:
            await self.client.log(message, level=level, code=code, data=data, trace=trace)
        except GatewayError as e:
            log.warning("log_frame_lost", code=code, error=repr(e))

    async def _publish(self, event_id: uuid.UUID, payload: dict[str, Any], trace: Trace) -> None:
        while True:
            try:
                await self.client.publish(
                    Category.DECISION,
                    payload,
                    id=event_id,
                    trace=trace,
                    title=f"{payload['action']} {payload['symbol']} ({STRATEGY_NAME})",
                    ts=self.clock(),
                )
                return
            except (AckTimeout, Unavailable) as e:
                # Same id on every try: the gateway stores it once.
                log.warning("decision_retry", decision=str(event_id), error=repr(e))


def decision_id(
    group: str, symbol: str, candle_time: datetime | None, signal_id: str, epoch: str = ""
) -> uuid.UUID:
    """The decision's id: one per market and candle (per signal without a candle)."""
    key = f"{group}|{symbol}|{candle_time.isoformat()}" if candle_time else f"{group}|{signal_id}"
    return uuid.uuid5(DECISION_NAMESPACE, f"{key}|{epoch}" if epoch else key)


def _trace(event: SignalEvent) -> Trace:
    return Trace(
        correlation_id=event.trace.correlation_id or str(event.id), causation_id=str(event.id)
    )


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _order_reason(event: OrderEvent) -> str | None:
    return event.payload.reason
