"""The ensemble strategy (the seed's "Mother AI"): member strategies vote, their track
records weigh the votes, and risk gates decide whether the combined vote is traded.

Params::

    {"members": [{"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}},
                 {"strategy": "rsi_reversal", "name": "rsi"}],
     "min_confidence": 0.55, "cooldown_minutes": 60, "max_atr_pct": 5.0,
     "atr_length": 14, "max_trades_per_day": 10, "tracker": {...}}

`name` labels a member in votes, weights and outcomes (default: its strategy name;
two members of the same strategy need distinct names). `tracker` takes the
`TrackerParams` of shared/kernel/performance.py, which documents the weights.

How a decision is made, on the last candle of the context:

1. Every member decides on the same `Context` through `safe_decide` (a failing
   member holds, and says why).
2. Votes are weighed: HOLD abstains, BUY is one side, SELL and CLOSE the other. The
   side with the larger sum of `weight x confidence` wins; the combined confidence is
   `(winning sum - losing sum) / max(weight of all voters, 1.0)`, so opposing votes
   cancel, agreeing ones average, and a lone member below neutral weight is
   discounted while a strong one is not inflated beyond its own confidence.
3. Spot is long-only: a BUY while a position is open, or a SELL with none, holds.
4. The gates, in order; the first that blocks turns the decision into a HOLD that
   names it: minimum confidence (any side); then, for BUY only, the cooldown per
   symbol since its last trade (its last BUY or SELL, or the close of an outcome),
   the volatility filter (ATR as % of the close above `max_atr_pct`, or no ATR yet),
   and the cap on positions opened per UTC day of `ctx.now` (all symbols). Exits
   are never held back by the risk gates: they exist to stop new risk, and holding
   an exit the members asked for would add risk instead.

Attribution: an outcome whose `strategy` names a member is credited to it. Any
other outcome (the group names itself) is credited to the members that voted BUY
for the entry it closes: the oldest entry on that symbol the ensemble has since
sold, or else (a stop or target filled by execution) the latest entry opened
before the outcome closed. If the outcome carries no return, it is derived from the
position's cost seen in `ctx.positions`. The ensemble is long-lived and keeps that
state; time only comes from `ctx.now` and the outcomes' `closed_at`, and an outcome
stamped later than `ctx.now` (execution's clock during a replay of old candles)
counts as closed at `ctx.now`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator, model_validator

from shared.events import Action
from shared.kernel.performance import (
    NEUTRAL_WEIGHT,
    PerformanceTracker,
    TrackerParams,
)
from shared.kernel.strategy import (
    Context,
    Decision,
    Outcome,
    Strategy,
    StrategyParams,
    create_strategy,
    register_strategy,
    safe_decide,
)
from shared.market.indicators import AtrSpec, IndicatorSpec

_SELL_SIDE = (Action.SELL, Action.CLOSE)
_OPEN_ENTRIES = 16  # per symbol; entries whose outcome never comes must not pile up


class MemberSpec(StrategyParams):
    """One member: a registered strategy, its params, and an optional label."""

    strategy: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, min_length=1, max_length=64)

    @property
    def label(self) -> str:
        return self.name or self.strategy

    @model_validator(mode="after")
    def _buildable(self) -> MemberSpec:
        create_strategy(self.strategy, self.params)  # ValueError says what is wrong
        return self


class EnsembleParams(StrategyParams):
    members: list[MemberSpec] = Field(min_length=1, max_length=32)
    min_confidence: float = Field(default=0.55, ge=0, le=1)
    cooldown_minutes: float = Field(default=60.0, ge=0, le=7 * 24 * 60)
    max_atr_pct: float | None = Field(
        default=5.0, gt=0, le=1000, description="ATR as % of the close; None turns it off."
    )
    atr_length: int = Field(default=14, ge=1, le=500)
    max_trades_per_day: int | None = Field(
        default=10, ge=0, le=100_000, description="Positions opened per UTC day; None: no cap."
    )
    tracker: TrackerParams = Field(default_factory=TrackerParams)

    @field_validator("members")
    @classmethod
    def _distinct_labels(cls, members: list[MemberSpec]) -> list[MemberSpec]:
        seen: dict[str, int] = {}
        for i, m in enumerate(members):
            if m.label in seen:
                raise ValueError(
                    f"members {seen[m.label]} and {i} are both called {m.label!r}; "
                    'give each a distinct "name"'
                )
            seen[m.label] = i
        return members


@dataclass(frozen=True, slots=True)
class Vote:
    """A member's decision and the weight its record earned."""

    member: str
    decision: Decision
    weight: float

    @property
    def action(self) -> Action:
        return self.decision.action

    @property
    def score(self) -> float:
        return self.weight * self.decision.confidence

    def describe(self) -> str:
        w = f"x w={self.weight:.2f}"
        if self.action is Action.HOLD:
            return f"{self.member} HOLD {w}"
        return f"{self.member} {self.action.value} {self.decision.confidence:.2f} {w}"

    def as_data(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "action": self.action.value,
            "confidence": self.decision.confidence,
            "weight": self.weight,
            "reasoning": self.decision.reasoning,
        }


@dataclass
class _Entry:
    """A position the ensemble opened, waiting for its outcome to credit its voters."""

    members: tuple[str, ...]
    opened_at: datetime
    cost: Decimal | None = None
    closing: bool = False


@dataclass
class _State:
    last_trade: dict[str, datetime] = field(default_factory=dict)
    entries_by_day: dict[date, set[tuple[str, datetime]]] = field(default_factory=dict)
    open: dict[str, list[_Entry]] = field(default_factory=dict)
    seen: set[tuple[Any, ...]] = field(default_factory=set)


@register_strategy("ensemble")
class Ensemble(Strategy):
    """Weighs its members' votes by their track record and gates the result.
    Params: `members`, `min_confidence` (0.55), `cooldown_minutes` (60),
    `max_atr_pct` (5.0), `atr_length` (14), `max_trades_per_day` (10), `tracker`."""

    Params = EnsembleParams
    params: EnsembleParams

    def __init__(self, params: StrategyParams | None = None) -> None:
        super().__init__(params)
        self.members: dict[str, Strategy] = {
            m.label: create_strategy(m.strategy, m.params) for m in self.params.members
        }
        self.tracker = PerformanceTracker(self.params.tracker)
        self._state = _State()

    @property
    def _atr_column(self) -> str:
        return f"atr_{self.params.atr_length}"

    def indicators(self) -> Sequence[IndicatorSpec]:
        specs: list[IndicatorSpec] = []
        for member in self.members.values():
            specs.extend(s for s in member.indicators() if s not in specs)
        if self.params.max_atr_pct is not None:
            atr = AtrSpec(kind="atr", length=self.params.atr_length)
            if atr not in specs:
                specs.append(atr)
        return specs

    def history(self) -> int:
        return max(2, *(m.history() for m in self.members.values()))

    # ------------------------------------------------------------------ deciding

    def decide(self, ctx: Context) -> Decision:
        now = _utc(ctx.now)
        self._ingest(ctx, now)
        weights = self.tracker.weights(self.members, now=now)
        votes = [
            Vote(label, safe_decide(member, ctx), weights[label])
            for label, member in self.members.items()
        ]
        summary = "; ".join(v.describe() for v in votes)
        data: dict[str, Any] = {"votes": [v.as_data() for v in votes]}

        buy = [v for v in votes if v.action is Action.BUY]
        sell = [v for v in votes if v.action in _SELL_SIDE]
        s_buy, s_sell = sum(v.score for v in buy), sum(v.score for v in sell)
        if s_buy == s_sell:
            why = "no member votes" if not buy and not sell else "BUY and SELL votes cancel out"
            return Decision.hold(f"{summary} -> HOLD: {why}", **data)
        side, winners = (Action.BUY, buy) if s_buy > s_sell else (Action.SELL, sell)
        voters = sum(v.weight for v in buy + sell)
        confidence = min(1.0, abs(s_buy - s_sell) / max(voters, NEUTRAL_WEIGHT))
        verdict = f"{summary} -> {side.value} {confidence:.2f}"
        reasons = " | ".join(f"{v.member}: {v.decision.reasoning}" for v in winners)
        data["combined"] = {"action": side.value, "confidence": confidence}

        blocked = self._gate(ctx, now, side, confidence)
        if blocked is not None:
            gate, why = blocked
            return Decision.hold(f"{verdict}, held by {gate}: {why} [{reasons}]", **data, gate=gate)

        lead = max(winners, key=lambda v: v.score).decision
        decision = Decision(
            side,
            confidence,
            f"{verdict} [{reasons}]",
            entry=lead.entry if lead.entry is not None else _dec(ctx.candle.close),
            stop_loss=lead.stop_loss if side is Action.BUY else None,
            take_profit=lead.take_profit if side is Action.BUY else None,
            size_hint=lead.size_hint,
            details={**data, "members": [v.member for v in winners]},
        )
        self._remember(ctx.symbol, now, side, tuple(v.member for v in winners))
        return decision

    def _gate(
        self, ctx: Context, now: datetime, side: Action, confidence: float
    ) -> tuple[str, str] | None:
        p = self.params
        held = ctx.position() is not None
        if side is Action.BUY and held:
            return "long_only", f"a {ctx.symbol} position is already open"
        if side is Action.SELL and not held:
            return "long_only", f"no {ctx.symbol} position is open to close (spot: long only)"
        if confidence < p.min_confidence:
            return "min_confidence", f"{confidence:.2f} is below {p.min_confidence:.2f}"
        if side is not Action.BUY:
            return None
        last = self._state.last_trade.get(ctx.symbol)
        cooldown = timedelta(minutes=p.cooldown_minutes)
        if last is not None and now - last < cooldown:
            ago = (now - last).total_seconds() / 60
            return (
                "cooldown",
                f"last {ctx.symbol} trade {ago:g} min ago, cooldown {p.cooldown_minutes:g} min",
            )
        if p.max_atr_pct is not None:
            atr = ctx.indicators.get(self._atr_column)
            close = ctx.candle.close
            if atr is None or close <= 0:
                return "volatility", f"ATR({p.atr_length}) is still warming up"
            atr_pct = atr / close * 100
            if atr_pct > p.max_atr_pct:
                return (
                    "volatility",
                    f"ATR({p.atr_length}) is {atr_pct:.2f}% of the close, above {p.max_atr_pct:g}%",
                )
        if p.max_trades_per_day is not None:
            today = self._state.entries_by_day.get(now.date(), set())
            if len(today) >= p.max_trades_per_day and (ctx.symbol, now) not in today:
                return (
                    "max_trades_per_day",
                    f"{len(today)} positions opened on {now.date().isoformat()} (UTC), "
                    f"cap {p.max_trades_per_day}",
                )
        return None

    # ------------------------------------------------------------------ state

    def _remember(self, symbol: str, now: datetime, side: Action, members: tuple[str, ...]) -> None:
        s = self._state
        s.last_trade[symbol] = max(now, s.last_trade.get(symbol, now))
        if side is Action.BUY:
            day = now.date()
            s.entries_by_day = {d: e for d, e in s.entries_by_day.items() if d >= day}
            s.entries_by_day.setdefault(day, set()).add((symbol, now))
            entries = s.open.setdefault(symbol, [])
            entries.append(_Entry(members, now))
            del entries[:-_OPEN_ENTRIES]
        else:
            held = [e for e in s.open.get(symbol, []) if not e.closing]
            if held:
                held[-1].closing = True

    def _ingest(self, ctx: Context, now: datetime) -> None:
        """Credit the outcomes not seen before, and note what the book says about cost."""
        s = self._state
        position = ctx.position()
        entries = s.open.get(ctx.symbol)
        if position is not None and entries:
            entries[-1].cost = position.quantity * position.entry_price
        keys = []
        for outcome in ctx.outcomes:
            key = (
                outcome.symbol,
                outcome.closed_at,
                outcome.pnl,
                outcome.return_pct,
                outcome.strategy,
            )
            keys.append(key)
            if key in s.seen:
                continue
            s.seen.add(key)
            closed = _utc(outcome.closed_at)
            if closed <= now:
                if outcome.symbol not in s.last_trade or s.last_trade[outcome.symbol] < closed:
                    s.last_trade[outcome.symbol] = closed
            else:
                # Stamped by another clock (execution's, while the candles are a replay):
                # on the strategy's clock the trade closed by now. Its own decisions
                # already started the cooldown.
                closed = now
                outcome = replace(outcome, closed_at=now)
            if outcome.strategy in self.members:
                self.tracker.record(outcome)
                continue
            entry = _pop_entry(s.open.get(outcome.symbol, []), closed)
            if entry is None:
                continue  # opened before this ensemble existed: nobody to credit
            credited = _with_return(outcome, entry.cost)
            for member in entry.members:
                self.tracker.record(credited, member=member)
        # ctx.outcomes is a window: what left it never comes back.
        s.seen.intersection_update(keys)


def _pop_entry(entries: list[_Entry], closed: datetime) -> _Entry | None:
    # Long-only, one position per symbol: trades close in the order they opened, so
    # the oldest entry the ensemble sold is the one closing. Without one (a stop or
    # target filled by execution), the latest entry opened before the close.
    for i, entry in enumerate(entries):
        if entry.closing:
            return entries.pop(i)
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].opened_at <= closed:
            return entries.pop(i)
    return None


def _with_return(outcome: Outcome, cost: Decimal | None) -> Outcome:
    if outcome.return_pct != 0.0 or cost is None or cost <= 0:
        return outcome
    return Outcome(
        outcome.symbol,
        outcome.pnl,
        float(outcome.pnl / cost * 100),
        outcome.closed_at,
        outcome.strategy,
    )


def _utc(t: datetime) -> datetime:
    # Candle times are UTC; a naive time is read as UTC, never as the host's zone.
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))
