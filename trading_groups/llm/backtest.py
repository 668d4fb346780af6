"""Backtest an LLM group: the team discusses the signals a trigger rule raises in the
history, and its decisions trade through the backtester like any strategy's.

A registered strategy stands in for the trigger the group subscribes to: on each
candle it decides, and a BUY or SELL is a signal (long or short, its confidence the
strength, its reasoning the analysis). On a signal the team discusses it as the live
group does (`team.py`), with the brief the live group writes at that candle: the
signal, the last `context.candles` candles and the group's indicators, the open
positions, its recent decisions and what came of them, the lessons of its closed
trades (a reflection after each, asked for as live). The team's decision, or a HOLD,
is the strategy's decision on that candle, and goes through the risk engine and the
paper fills (`shared.backtest.engine`). `TeamStrategy` is that adapter: its
`decide()` runs the discussion on an event loop the run owns.

Every call goes through `RunLedger`: first the answer cache (`shared.llm.cache`),
keyed by the prompt hash and the call settings; an answer found there is used as it
is, costs 0, makes no request and is recorded as cached. Otherwise the call is made,
under the run's budget (the gate of `shared.llm.budget`, counting only the requests
this run made), priced, recorded, and its answer cached. So a second run over the
same candles with the same team asks nothing and gives the same trades and equity;
a change anywhere in a prompt (another candle window, a member's prompt, another
model or temperature) asks again for that call and those after it.

When the budget is reached, further uncached calls are refused: the discussion ends
in a HOLD that says so, and the run's report says after how many signals.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from shared.backtest.data import BacktestRequest
from shared.backtest.engine import BacktestConfig, Progress, run_backtest
from shared.backtest.lookahead import DEFAULT_CUTS, LookaheadReport, Prepare, lookahead_check
from shared.backtest.result import BacktestResult
from shared.config import LLMSettings
from shared.events import Action, Direction, SignalPayload
from shared.kernel.strategy import Context, Decision, Outcome, Position, Strategy, safe_decide
from shared.llm.budget import Budget, BudgetExceeded, BudgetGate, Usage, bound_usage
from shared.llm.cache import AnswerCache, answer_key
from shared.llm.client import (
    ChatMessage,
    ModelAnswer,
    make_http_client,
    prompt_hash,
)
from shared.llm.pricing import ZERO, PriceTable
from shared.market.candles import Candle
from shared.market.indicators import IndicatorSpec, IndicatorWindow
from trading_groups.llm.calls import Answered, MemberFailed, Models, Tally, answer_within_two
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
    decision_line,
    messages,
    system_prompt,
)
from trading_groups.llm.schemas import ReflectionNote
from trading_groups.llm.team import Discussion, Said

#: Signal ids: UUID 5 of the trigger rule, the market and the candle.
SIGNAL_NAMESPACE = uuid.UUID("7d1e4b0a-6c2f-4f5e-8a3b-9e0d1c2b3a4f")


# ----------------------------------------------------------------------- the budget


@dataclass(frozen=True, slots=True)
class RunBudget(Budget):
    """A run's limits: tokens (in and out together) and cost of the requests it made;
    None: no limit of that kind. (The fields keep `Budget`'s names; here they bound a
    whole run, not a day.)"""

    def exceeded(self, used: Usage) -> str | None:
        if self.daily_tokens is not None and used.tokens >= self.daily_tokens:
            return (
                f"the run's token budget is reached: {used.tokens:,} of "
                f"{self.daily_tokens:,} tokens used by this backtest's requests"
            )
        if self.daily_cost is not None and used.cost >= self.daily_cost:
            return (
                f"the run's cost budget is reached: {used.cost:f} of {self.daily_cost:f} USD "
                "spent by this backtest's requests"
            )
        return None


# ----------------------------------------------------------------------- the calls


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call of the run: made (`cached` False) or read from the cache."""

    id: int
    member: str
    model: str
    prompt_hash: str
    key: str
    status: str
    cached: bool
    tokens_in: int
    tokens_out: int
    cost: Decimal
    retried: int
    discussion: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "member": self.member,
            "model": self.model,
            "prompt_hash": self.prompt_hash,
            "key": self.key,
            "status": self.status,
            "cached": self.cached,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": str(self.cost),
            "retried": self.retried,
            "discussion": self.discussion,
            "error": self.error,
        }


class RunLedger(Models):
    """The calls of one backtest: cache first, then the model under the run's budget
    (see the module docstring). A discussion calls it as it calls the live `Ledger`.

    Args:
        budget: the run's limits.
        prices: what a call costs.
        cache: where answers are kept; None: every call is made.
        http_client: shared by every model of the run.
    """

    def __init__(
        self,
        *,
        budget: Budget,
        prices: PriceTable,
        cache: AnswerCache | None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.budget = budget
        self.prices = prices
        self.cache = cache
        self.used = Usage()
        self.saved = Decimal(0)
        self.calls: list[CallRecord] = []
        #: Calls not found in the cache, made or refused: (discussion, member).
        self.misses: list[tuple[str | None, str]] = []
        self.unpriced: set[str] = set()
        super().__init__(http_client)
        self.gate = BudgetGate(self._spent)
        #: The discussion the calls being made belong to (set by the run around each).
        self.discussion: str | None = None

    async def _spent(self) -> Usage:
        return self.used

    async def ask(
        self,
        member: Member,
        messages: Sequence[ChatMessage],
        schema: type[BaseModel],
        *,
        tally: Tally | None = None,
        discussion_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Answered:
        """The member's answer as `schema`, from the cache or the model.

        Raises:
            BudgetExceeded: the call is not cached and the run's budget is reached.
            MemberFailed: the answer was invalid twice, or the call failed.
        """
        spec = member.spec
        price = self.prices.price(spec.model)
        if price is None:
            self.unpriced.add(spec.model)

        async def call(prompt: list[ChatMessage]) -> tuple[ModelAnswer, int]:
            key = answer_key(spec, prompt, schema)
            answer = self.cache.get(key, schema) if self.cache is not None else None
            cached = answer is not None
            if answer is None:
                self.misses.append((self.discussion, member.name))
                bound = bound_usage(prompt, spec.max_tokens, price or ZERO)
                async with self.gate.admit(self.budget, bound):
                    answer = await self.model(spec).ask(prompt, schema)
                    cost = self.prices.cost(spec.model, answer.tokens_in, answer.tokens_out)
                    self.used += Usage(answer.tokens_in + answer.tokens_out, cost)
                if self.cache is not None:
                    self.cache.put(key, model=spec.model, messages=prompt, answer=answer)
            else:
                cost = Decimal(0)
                self.saved += self.prices.cost(spec.model, answer.tokens_in, answer.tokens_out)
            call_id = self._record(member.name, spec.model, prompt, key, answer, cached, cost)
            if tally is not None and not cached:
                tally.tokens_in += answer.tokens_in
                tally.tokens_out += answer.tokens_out
                tally.cost += cost
                tally.calls += 1 + len(answer.retried)
            return answer, call_id

        return await answer_within_two(member.name, list(messages), call)

    def _record(
        self,
        member: str,
        model: str,
        prompt: Sequence[ChatMessage],
        key: str,
        answer: ModelAnswer,
        cached: bool,
        cost: Decimal,
    ) -> int:
        call_id = len(self.calls) + 1
        self.calls.append(
            CallRecord(
                id=call_id,
                member=member,
                model=model,
                prompt_hash=prompt_hash(model, prompt),
                key=key,
                status=answer.status,
                cached=cached,
                tokens_in=answer.tokens_in,
                tokens_out=answer.tokens_out,
                cost=cost,
                retried=len(answer.retried),
                discussion=self.discussion,
                error=answer.error,
            )
        )
        return call_id


# ----------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class Discussed:
    """One signal and what the team made of it."""

    id: str
    time: datetime
    symbol: str
    signal: str
    action: str
    status: str
    reason: str
    calls: int
    cached: int
    cost: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "symbol": self.symbol,
            "signal": self.signal,
            "action": self.action,
            "status": self.status,
            "reason": self.reason,
            "calls": self.calls,
            "cached": self.cached,
            "cost": str(self.cost),
        }


@dataclass
class LLMRunReport:
    """What the run's calls came to; `to_json()` is `result.json`'s `llm`."""

    group: str
    trigger: str
    trigger_params: dict[str, Any]
    budget_tokens: int | None
    budget_cost: Decimal | None
    cache: str | None
    signals: int = 0
    decided: int = 0
    holds: int = 0
    budget_reason: str | None = None
    #: The signal (1-based, in time order) whose discussion first met the limit.
    budget_reached_at_signal: int | None = None
    calls: list[CallRecord] = field(default_factory=list)
    discussions: list[Discussed] = field(default_factory=list)
    reflections: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    saved_cost: Decimal = Decimal(0)
    unpriced_models: list[str] = field(default_factory=list)

    @property
    def calls_made(self) -> int:
        """Calls sent to the model (each may include attempts its client retried)."""
        return sum(1 for c in self.calls if not c.cached)

    @property
    def calls_cached(self) -> int:
        return sum(1 for c in self.calls if c.cached)

    @property
    def budget_reached(self) -> bool:
        return self.budget_reason is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "trigger": self.trigger,
            "trigger_params": self.trigger_params,
            "signals": self.signals,
            "decided": self.decided,
            "holds": self.holds,
            "reflections": self.reflections,
            "calls_made": self.calls_made,
            "calls_cached": self.calls_cached,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": str(self.cost),
            "saved_cost": str(self.saved_cost),
            "unpriced_models": self.unpriced_models,
            "budget": {
                "tokens": self.budget_tokens,
                "cost": None if self.budget_cost is None else str(self.budget_cost),
                "reached": self.budget_reached,
                "reason": self.budget_reason,
                "reached_at_signal": self.budget_reached_at_signal,
            },
            "cache": self.cache,
            "discussions": [d.to_json() for d in self.discussions],
            "calls": [c.to_json() for c in self.calls],
        }


@dataclass
class _Decided:
    """A decision of the group, for the briefs' "recent decisions"."""

    time: datetime
    symbol: str
    action: str
    status: str
    reason: str
    outcome: str | None = None  # what came of a published one, once the books show it


class LLMBacktest:
    """One backtest run of an LLM group: its event loop, calls, memory and report.

    Use it as a context manager (it closes the loop and the HTTP client), and give
    `strategy` to the backtester as the strategy factory, or call `run`.

    Args:
        config: the group's config (its `feeds`, `timeframe` and `budgets` are not
            used: the candles are the backtest's, the budget is `budget`).
        team: the resolved members (`resolve_member`); `reflector` the member who
            writes reflections.
        name: the group's name, as the prompts call it.
        trigger: the rule that raises the signals (a fresh one per symbol).
        budget: the run's limits.
        cache: where answers are kept; None: every call is made.
    """

    def __init__(
        self,
        config: LLMGroupConfig,
        team: Sequence[Member],
        *,
        reflector: Member,
        name: str,
        trigger: Callable[[], Strategy],
        trigger_name: str,
        trigger_params: Mapping[str, Any] | None = None,
        budget: RunBudget,
        cache: AnswerCache | None,
    ) -> None:
        self.config = config
        self.team = list(team)
        self.reflector = reflector
        self.name = name
        self.trigger = trigger
        self.trigger_name = trigger_name
        self.loop = asyncio.new_event_loop()
        self._http = make_http_client()
        self.ledger = RunLedger(
            budget=budget, prices=config.price_table(), cache=cache, http_client=self._http
        )
        self.report = LLMRunReport(
            group=name,
            trigger=trigger_name,
            trigger_params=dict(trigger_params or {}),
            budget_tokens=budget.daily_tokens,
            budget_cost=budget.daily_cost,
            cache=str(cache.directory) if cache is not None else None,
        )
        self._decided: list[_Decided] = []
        #: Published decisions whose outcome the books have not shown yet.
        self._unsettled: list[_Decided] = []
        self._positions: dict[str, tuple[Position, ...]] = {}
        self._reflections: list[Remembered] = []
        self._seen_outcomes: dict[str, datetime] = {}

    def __enter__(self) -> LLMBacktest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self._http.aclose())
            self.loop.close()

    def strategy(self) -> TeamStrategy:
        """A strategy for one symbol (the backtester makes one per symbol)."""
        return TeamStrategy(self, self.trigger())

    def run(
        self,
        candles: Mapping[str, Sequence[Candle]],
        config: BacktestConfig,
        *,
        progress: Progress | None = None,
    ) -> BacktestResult:
        """Replay `candles`: the backtester's result; `report` holds the calls."""
        result = run_backtest(
            self.strategy,
            candles,
            config,
            strategy_name=f"llm:{self.name}",
            params={"trigger": self.trigger_name, "trigger_params": self.report.trigger_params},
            progress=progress,
        )
        self._finish()
        return result

    def _finish(self) -> None:
        report, ledger = self.report, self.ledger
        report.calls = list(ledger.calls)
        made = [c for c in ledger.calls if not c.cached]
        report.tokens_in = sum(c.tokens_in for c in made)
        report.tokens_out = sum(c.tokens_out for c in made)
        report.cost = ledger.used.cost
        report.saved_cost = ledger.saved
        report.unpriced_models = sorted(ledger.unpriced)

    # ------------------------------------------------------------------ per candle

    def observe(self, ctx: Context) -> None:
        """What the books show of this symbol at this candle: the positions the briefs
        list, what came of earlier decisions; and a reflection per newly closed trade."""
        symbol = ctx.symbol
        self._positions[symbol] = tuple(ctx.positions)
        position = ctx.position()
        for d in [d for d in self._unsettled if d.symbol == symbol and d.time < ctx.now]:
            # Decided on an earlier candle, so filled (or not) by this one's open.
            self._unsettled.remove(d)
            if d.action == Action.BUY.value:
                if position is not None and position.opened_at >= d.time:
                    d.outcome = f"filled buy {position.quantity} @ {position.entry_price}"
                else:
                    d.outcome = "not filled (refused by the risk engine, or no funds)"
            else:
                closed = next(
                    (o for o in ctx.outcomes if o.symbol == symbol and o.closed_at >= d.time), None
                )
                d.outcome = (
                    f"filled sell, realized PnL {closed.pnl}"
                    if closed is not None
                    else "not filled (no position to sell, or refused by the risk engine)"
                )
        last = self._seen_outcomes.get(symbol)
        fresh = [
            o for o in ctx.outcomes if o.symbol == symbol and (last is None or o.closed_at > last)
        ]
        if fresh:
            self._seen_outcomes[symbol] = max(o.closed_at for o in fresh)
            for outcome in fresh:
                self.loop.run_until_complete(self._reflect(outcome))

    def discuss(
        self, ctx: Context, signal: Decision, indicators: Mapping[str, float | None]
    ) -> Decision:
        """The team's decision on `signal`, raised on the last candle of `ctx`."""
        self.report.signals += 1
        return self.loop.run_until_complete(self._discuss(ctx, signal, indicators))

    async def _discuss(
        self, ctx: Context, signal: Decision, indicators: Mapping[str, float | None]
    ) -> Decision:
        config, candle = self.config, ctx.candle
        signal_id = uuid.uuid5(
            SIGNAL_NAMESPACE, f"{self.trigger_name}|{ctx.symbol}|{candle.open_time.isoformat()}"
        )
        payload = SignalPayload.model_validate(
            {
                "signal_type": "immediate",
                "symbol": ctx.symbol,
                "timeframe": ctx.timeframe,
                "direction": Direction.LONG if signal.action is Action.BUY else Direction.SHORT,
                "strength": round(signal.confidence, 4),
                "analysis": signal.reasoning,
                "candle_time": candle.open_time,
                "trigger": self.trigger_name,
            }
        )
        view = {
            # As the live group shows a signal event (`LLMGroup._brief`).
            "id": str(signal_id),
            "source": f"trigger:{self.trigger_name}",
            "title": f"{self.trigger_name}: {signal.action.value} {ctx.symbol}",
            "time": ctx.now.isoformat(),
            "payload": payload.model_dump(mode="json", exclude_none=True),
        }
        count = config.context.candles
        recent = self._decided[-config.context.decisions :] if config.context.decisions else []
        brief = Brief(
            group=self.name,
            symbol=ctx.symbol,
            timeframe=ctx.timeframe,
            signal=view,
            candles=list(ctx.candles)[-count:] if count else [],
            indicators=dict(indicators),
            positions=[p for held in self._positions.values() for p in held],
            decisions=[
                decision_line(
                    d.time,
                    d.symbol,
                    d.action,
                    d.status,
                    d.reason,
                    (d.outcome or "no order reported yet") if d.status == "decided" else None,
                )
                for d in reversed(recent)
            ],
            reflections=recall(
                self._reflections,
                symbol=ctx.symbol,
                max_items=config.memory.max_reflections,
                max_chars=config.memory.max_chars,
            ),
        )
        discussion_id = f"{ctx.symbol}|{candle.open_time.isoformat()}"

        async def say(_: Said) -> None:
            return None

        first = len(self.ledger.calls)
        self.ledger.discussion = discussion_id
        try:
            outcome = await Discussion(
                team=self.team,
                config=config,
                ledger=self.ledger,
                brief=brief,
                say=say,
                discussion_id=discussion_id,
                correlation_id=str(signal_id),
            ).run()
        finally:
            self.ledger.discussion = None
        calls = self.ledger.calls[first:]
        report = self.report
        if outcome.budget is not None and report.budget_reason is None:
            report.budget_reason = outcome.budget.reason
            report.budget_reached_at_signal = report.signals
        decided = outcome.status == "decided"
        report.decided += decided
        report.holds += not decided
        report.discussions.append(
            Discussed(
                id=discussion_id,
                time=ctx.now,
                symbol=ctx.symbol,
                signal=signal.action.value,
                action=outcome.decision.action.value,
                status=outcome.status,
                reason=outcome.reason,
                calls=sum(1 for c in calls if not c.cached),
                cached=sum(1 for c in calls if c.cached),
                cost=sum((c.cost for c in calls), Decimal(0)),
            )
        )
        made = _Decided(
            ctx.now, ctx.symbol, outcome.decision.action.value, outcome.status, outcome.reason
        )
        self._decided.append(made)
        if decided:
            self._unsettled.append(made)
        return outcome.decision

    async def _reflect(self, outcome: Outcome) -> None:
        """The lesson of a closed trade, as the live group writes it after a filled sell."""
        entry = next(
            (
                d
                for d in reversed(self._decided)
                if d.symbol == outcome.symbol
                and d.action == Action.BUY.value
                and d.time <= outcome.closed_at
                and (d.outcome or "").startswith("filled")
            ),
            None,
        )
        exit_ = next(
            (
                d
                for d in reversed(self._decided)
                if d.symbol == outcome.symbol
                and d.action in (Action.SELL.value, Action.CLOSE.value)
                and d.time <= outcome.closed_at
                and (entry is None or d.time > entry.time)
                and (d.outcome or "").startswith("filled")
            ),
            None,
        )
        trade = ClosedTrade(
            symbol=outcome.symbol,
            pnl=outcome.pnl,
            exit_price=None,
            quantity=None,
            entry_reason=entry.reason if entry else None,
            exit_reason=exit_.reason if exit_ else "closed by a stop loss or take profit",
        )
        memory = self.config.memory
        limit = memory.reflection_chars
        if not memory.reflect:
            content = template_reflection(
                trade, why="reflections by the model are off", max_chars=limit
            )
        else:
            system = system_prompt(
                self.reflector,
                ReflectionNote,
                group=self.name,
                symbol=trade.symbol,
                timeframe=self.config.timeframe,
                template=REFLECTION_PROMPT,
            )
            user = f"## The closed trade\n\n{trade.facts()}\n\n## Your task\n\nWrite the lesson."
            try:
                answered = await self.ledger.ask(
                    self.reflector, messages(system, user), ReflectionNote
                )
            except BudgetExceeded as e:
                content = template_reflection(trade, why=e.reason, max_chars=limit)
            except MemberFailed as e:
                content = template_reflection(
                    trade, why=f"the model gave none ({e.reason})", max_chars=limit
                )
            else:
                note = answered.value
                assert isinstance(note, ReflectionNote)
                content = model_reflection(trade, note.lesson, max_chars=limit)
        self._reflections.append(Remembered(outcome.symbol, content, outcome.closed_at))
        self.report.reflections += 1


class TeamStrategy(Strategy):
    """The LLM group as a strategy: `trigger` raises the signals, the team decides.

    Not pure, unlike other strategies: `decide` asks models (through the run's cache
    and budget). It keeps the group's indicators itself, updated on every candle, as
    the live group keeps them on its feed.
    """

    name = "llm"

    def __init__(self, run: LLMBacktest, trigger: Strategy) -> None:
        super().__init__()
        self.run = run
        self.trigger = trigger
        self._window = IndicatorWindow(INDICATORS)
        self._trigger_history = max(trigger.history(), 2)
        self._history = max(self._trigger_history, run.config.context.candles)

    def indicators(self) -> Sequence[IndicatorSpec]:
        return self.trigger.indicators()

    def history(self) -> int:
        return self._history

    def decide(self, ctx: Context) -> Decision:
        values = self._window.update(ctx.candle)
        candles = ctx.candles
        if len(candles) > self._trigger_history:
            candles = tuple(candles)[-self._trigger_history :]
        signal = safe_decide(
            self.trigger,
            Context(
                ctx.symbol,
                ctx.timeframe,
                ctx.now,
                candles,
                ctx.indicators,
                ctx.previous,
                ctx.signal,
                ctx.positions,
                ctx.outcomes,
            ),
        )
        self.run.observe(ctx)
        if signal.action is Action.HOLD:
            return signal
        return self.run.discuss(ctx, signal, values)


# ----------------------------------------------------------------------- building one


def read_group(path: Path) -> tuple[str, LLMGroupConfig]:
    """An LLM group from a JSON file: its REST body (`{"name": ..., "kind": "llm",
    "config": {...}}`, as `POST /api/v1/trading-groups` takes it) or its `config`
    alone, then named after the file.

    Raises:
        ValueError: the file cannot be read, is not JSON, or the config is invalid.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read the LLM group file {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"the LLM group file {path} is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"the LLM group file {path} must hold a JSON object")
    name = path.stem
    if "config" in data:
        kind = data.get("kind", "llm")
        if kind != "llm":
            raise ValueError(f"{path} describes a group of kind {kind!r}, not 'llm'")
        name = str(data.get("name") or name)
        data = data["config"]
        if not isinstance(data, dict):
            raise ValueError(f"the config in {path} must be a JSON object")
    return name, parse_config(data)


def build_run(
    config: LLMGroupConfig,
    *,
    name: str,
    settings: LLMSettings,
    trigger: Callable[[], Strategy],
    trigger_name: str,
    trigger_params: Mapping[str, Any] | None = None,
    budget_cost: Decimal | None = None,
    budget_tokens: int | None = None,
    cache: AnswerCache | None,
    environ: Mapping[str, str] | None = None,
) -> LLMBacktest:
    """An `LLMBacktest` with the members resolved against `settings` (the live group's
    ATS_LLM_* variables). With neither budget given, the run may spend what the group
    may spend in a day (`config.budgets`).

    Raises:
        ValueError: a member has no model or endpoint, or its key's variable is unset.
    """
    team = [resolve_member(m, config.defaults, settings, environ) for m in config.members]
    reflector = reflection_member(config.defaults, settings)
    if budget_cost is None and budget_tokens is None:
        budget_cost, budget_tokens = config.budgets.daily_cost, config.budgets.daily_tokens
    return LLMBacktest(
        config,
        team,
        reflector=reflector,
        name=name,
        trigger=trigger,
        trigger_name=trigger_name,
        trigger_params=trigger_params,
        budget=RunBudget(budget_tokens, budget_cost),
        cache=cache,
    )


def run_llm_backtest(
    request: BacktestRequest,
    config: LLMGroupConfig,
    *,
    name: str,
    settings: LLMSettings,
    cache: AnswerCache | None,
    budget_cost: Decimal | None = None,
    budget_tokens: int | None = None,
    candles: Mapping[str, Sequence[Candle]] | None = None,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[BacktestResult, LLMRunReport]:
    """Backtest the group on `request`'s candles, money and rules, its strategy (with
    its params) raising the signals. Blocks; runs its own event loop, so call it from
    a thread without one (`asyncio.to_thread` from async code).

    Raises:
        ValueError: a member cannot be resolved (see `build_run`).
        BacktestInputError: a candle file cannot be read.
    """
    run = _request_run(request, config, name, settings, budget_cost, budget_tokens, cache, environ)
    with run:
        result = run.run(
            candles if candles is not None else request.load(),
            _account(request, config),
            progress=progress,
        )
    return result, run.report


def _request_run(
    request: BacktestRequest,
    config: LLMGroupConfig,
    name: str,
    settings: LLMSettings,
    budget_cost: Decimal | None,
    budget_tokens: int | None,
    cache: AnswerCache | None,
    environ: Mapping[str, str] | None,
) -> LLMBacktest:
    """`build_run` with `request`'s strategy (and params) raising the signals."""
    return build_run(
        config,
        name=name,
        settings=settings,
        trigger=request.build_strategy,
        trigger_name=request.strategy,
        trigger_params=request.params,
        budget_cost=budget_cost,
        budget_tokens=budget_tokens,
        cache=cache,
        environ=environ,
    )


def _account(request: BacktestRequest, config: LLMGroupConfig) -> BacktestConfig:
    """`request`'s money and rules with the group's own risk limits, merged with the
    account's, as execution does live."""
    return replace(request.to_config(), group_risk=config.risk)


# ----------------------------------------------------------------------- look-ahead


@dataclass(frozen=True, slots=True)
class PromptMiss:
    """A prompt a truncated run sent that the whole run never did: what the team was
    shown on or before the cut depended on candles after it."""

    cut: int  # the truncated run's last candle
    time: datetime | None  # the discussed signal's decision time; None: a reflection
    member: str


@dataclass(frozen=True, slots=True)
class LLMLookahead:
    """`shared.backtest.lookahead`'s report on the group, with the prompts compared."""

    report: LookaheadReport
    calls: LLMRunReport  # the whole run's
    misses: tuple[PromptMiss, ...]

    @property
    def clean(self) -> bool:
        return self.report.clean and not self.misses


def llm_lookahead(
    build: Callable[[RunBudget | None, AnswerCache], LLMBacktest],
    candles: Sequence[Candle],
    config: BacktestConfig,
    *,
    cache: AnswerCache | None,
    cuts: int | Sequence[int] = DEFAULT_CUTS,
    prepare: Prepare | None = None,
    progress: Progress | None = None,
) -> LLMLookahead:
    """The look-ahead check of an LLM group (`shared.backtest.lookahead.lookahead_check`
    with the group as the strategy), and of its prompts.

    The whole run asks the team as a backtest does (under the budget `build` is
    given None for: the run's own); each truncated run gets a budget of nothing, so
    it replays the whole run's answers from the cache and asks no model. Every
    prompt of a truncated run covers candles up to its cut, all of which the whole
    run saw too: a prompt the cache does not hold is one whose brief changed when
    the future was cut off (`PromptMiss`), a look-ahead in what the team is shown
    (the signal's analysis, the context, the memory), found even where the refused
    call leaves the decision as it was. The decisions are compared as for any
    strategy.

    Args:
        build: a fresh run with the given budget (None: the run's own) and cache.
        cache: where the answers are kept; None: a temporary one for the check.
    """
    runs: list[LLMBacktest] = []
    nothing = RunBudget(0, Decimal(0))

    def strategy(store: AnswerCache) -> Callable[[], Strategy]:
        def fresh() -> Strategy:
            run = build(None if not runs else nothing, store)
            runs.append(run)
            return run.strategy()

        return fresh

    with tempfile.TemporaryDirectory(prefix="ats-llm-lookahead-") as scratch:
        store = cache if cache is not None else AnswerCache(Path(scratch))
        try:
            report = lookahead_check(
                strategy(store),
                candles,
                cuts=cuts,
                config=config,
                prepare=prepare,
                progress=progress,
            )
            for run in runs:
                run._finish()
        finally:
            for run in runs:
                run.close()
    whole, truncated = runs[0], runs[1:]
    misses: list[PromptMiss] = []
    for cut, run in zip(report.cuts, truncated, strict=True):
        times = {d.id: d.time for d in run.report.discussions}
        misses.extend(
            PromptMiss(cut.cut, times.get(discussion) if discussion else None, member)
            for discussion, member in run.ledger.misses
        )
    # Named as its backtests are (`llm:<group>`), not after the adapter's class.
    named = replace(report, strategy=f"llm:{whole.report.group}")
    return LLMLookahead(named, whole.report, tuple(misses))


def run_llm_lookahead(
    request: BacktestRequest,
    config: LLMGroupConfig,
    *,
    name: str,
    settings: LLMSettings,
    cache: AnswerCache | None,
    cuts: int | Sequence[int] = DEFAULT_CUTS,
    budget_cost: Decimal | None = None,
    budget_tokens: int | None = None,
    candles: Sequence[Candle] | None = None,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> LLMLookahead:
    """`llm_lookahead` on `request`'s one market, its strategy raising the signals, its
    money and rules with the group's own risk limits (as `run_llm_backtest`); the
    budgets bound the whole run. Blocks, as `run_llm_backtest`.

    Raises:
        ValueError: a member cannot be resolved, or `request` names several markets.
        BacktestInputError: a candle file cannot be read.
    """
    if candles is None:
        loaded = request.load()
        if len(loaded) != 1:
            raise ValueError("the look-ahead check takes one market: give one --data")
        ((_, candles),) = loaded.items()

    def build(budget: RunBudget | None, store: AnswerCache) -> LLMBacktest:
        cost, tokens = (
            (budget.daily_cost, budget.daily_tokens)
            if budget is not None
            else (budget_cost, budget_tokens)
        )
        return _request_run(request, config, name, settings, cost, tokens, store, environ)

    return llm_lookahead(
        build, candles, _account(request, config), cache=cache, cuts=cuts, progress=progress
    )
