"""One discussion of one signal by the team, from the analysts to the leader.

1. The analysts report, in parallel.
2. The bull and the bear researcher debate for `debate_rounds` rounds.
3. The trader proposes an action; HOLD ends the discussion there.
4. The risk manager approves, adjusts or rejects it, alone or, with `risk_mode`
   `debate`, after the aggressive, conservative and neutral voices have argued for
   `risk_rounds` rounds. A rejection is a HOLD.
5. The leader decides: the approved action or HOLD. A team without a leader takes
   the approved proposal as it is.

Each message is handed to `say` as soon as it is final (the analysts' in team order,
once all have answered, so the transcript reads the same every time). A discussion
never raises for what a member did: a budget reached, an answer invalid twice, or a
failed call ends it in a HOLD that says why; so does any other error, which is
reported as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from shared.events import Action
from shared.kernel.strategy import Decision
from shared.llm.budget import BudgetExceeded
from trading_groups.llm.calls import Answered, Asker, MemberFailed, Tally
from trading_groups.llm.config import ANALYSTS, RISK_VOICES, LLMGroupConfig, Member, RiskMode, Role
from trading_groups.llm.prompts import Brief, clip, messages, system_prompt
from trading_groups.llm.schemas import (
    AnalystReport,
    Argument,
    LeaderDecision,
    Proposal,
    RiskVerdict,
    Verdict,
)

Status = Literal["decided", "hold", "failed"]
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Said:
    """One message of the transcript."""

    member: str
    role: str
    kind: str  # analysis | argument | proposal | risk | decision | note | error
    content: str
    data: dict[str, Any] = field(default_factory=dict)
    llm_call_id: int | None = None


Say = Callable[[Said], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the discussion ended: the decision (a HOLD unless `decided`) and why."""

    decision: Decision
    status: Status
    reason: str
    budget: BudgetExceeded | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """The trade on the table: the trader's proposal, as the risk manager left it."""

    action: Action
    confidence: float
    reasoning: str
    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    size_hint: Decimal | None

    def describe(self) -> str:
        text = f"{self.action.value} (confidence {self.confidence:.2f})"
        for label, value in (
            ("entry", self.entry),
            ("stop loss", self.stop_loss),
            ("take profit", self.take_profit),
            ("size", self.size_hint),
        ):
            if value is not None:
                text += f", {label} {value}"
        return f"{text}: {self.reasoning}"


class Discussion:
    """The team's discussion of one signal (see the module docstring)."""

    def __init__(
        self,
        *,
        team: Sequence[Member],
        config: LLMGroupConfig,
        ledger: Asker,
        brief: Brief,
        say: Say,
        discussion_id: str,
        correlation_id: str | None,
    ) -> None:
        self.team = list(team)
        self.config = config
        self.ledger = ledger
        self.brief = brief
        self._say = say
        self.discussion_id = discussion_id
        self.correlation_id = correlation_id
        self.tally = Tally()
        self._context = brief.render()
        self._leader_name = next((m.name for m in team if m.role is Role.LEADER), "leader")

    def _members(self, *roles: Role) -> list[Member]:
        return [m for m in self.team if m.role in roles]

    def _member(self, role: Role) -> Member:
        return next(m for m in self.team if m.role is role)

    # ------------------------------------------------------------------ the run

    async def run(self) -> Outcome:
        """Discuss; never raises except on cancellation."""
        try:
            return await self._discuss()
        except BudgetExceeded as e:
            return await self._hold("failed", f"no decision: {e.reason}", budget=e)
        except MemberFailed as e:
            return await self._hold(
                "failed", f"no decision: {e.member} gave no answer ({e.reason})"
            )
        except Exception as e:  # a bug must end in a HOLD, never in a crash or a trade
            return await self._hold(
                "failed", f"no decision: the discussion failed: {type(e).__name__}: {e}"
            )

    async def _discuss(self) -> Outcome:
        reports = await self._analyse()
        debate = await self._debate(reports)
        proposal = await self._propose(reports, debate)
        if proposal.action is Action.HOLD:
            return await self._hold("hold", f"the trader proposes no trade: {proposal.reasoning}")
        plan = _Plan(
            proposal.action,
            proposal.confidence,
            proposal.reasoning,
            proposal.entry,
            proposal.stop_loss,
            proposal.take_profit,
            proposal.size_hint,
        )
        verdict = await self._assess(reports, debate, plan)
        if verdict.verdict is Verdict.REJECT:
            return await self._hold(
                "hold", f"the risk manager rejected {plan.action.value}: {verdict.reasoning}"
            )
        if verdict.verdict is Verdict.ADJUST:
            plan = replace(
                plan,
                confidence=plan.confidence if verdict.confidence is None else verdict.confidence,
                stop_loss=verdict.stop_loss or plan.stop_loss,
                take_profit=verdict.take_profit or plan.take_profit,
                size_hint=plan.size_hint if verdict.size_hint is None else verdict.size_hint,
            )
        return await self._lead(reports, debate, plan, verdict)

    # ------------------------------------------------------------------ phases

    async def _analyse(self) -> list[tuple[Member, AnalystReport]]:
        analysts = [m for m in self.team if m.role in ANALYSTS]
        task = "Write your report."
        results = await asyncio.gather(
            *(self._ask(m, AnalystReport, self._context, task) for m in analysts),
            return_exceptions=True,
        )
        reports: list[tuple[Member, AnalystReport]] = []
        failure: Exception | None = None
        for member, result in zip(analysts, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation
                failure = failure or result
                continue
            report, call_id = result
            reports.append((member, report))
            await self._said(
                member,
                "analysis",
                f"{report.stance.value} ({report.confidence:.2f}): {report.summary}",
                report,
                call_id,
            )
        if failure is not None:
            raise failure
        return reports

    async def _debate(self, reports: list[tuple[Member, AnalystReport]]) -> list[str]:
        rounds = self.config.debate_rounds
        if rounds == 0:
            return []
        bull, bear = self._member(Role.BULL), self._member(Role.BEAR)
        said: list[str] = []
        for number in range(1, rounds + 1):
            for member in (bull, bear):
                context = self._join(
                    self._context, _section("Analyst reports", _reports(reports)),
                    _section("The debate so far", said or ["(you speak first)"]),
                )  # fmt: skip
                task = f"Debate round {number} of {rounds}: make your case."
                argument, call_id = await self._ask(member, Argument, context, task)
                said.append(f"{member.name} ({member.role.value}, round {number}): "
                            f"{argument.argument}")  # fmt: skip
                await self._said(member, "argument", argument.argument, argument, call_id,
                                 round=number)  # fmt: skip
        return said

    async def _propose(
        self, reports: list[tuple[Member, AnalystReport]], debate: list[str]
    ) -> Proposal:
        trader = self._member(Role.TRADER)
        context = self._join(
            self._context,
            _section("Analyst reports", _reports(reports)),
            _section("The researchers' debate", debate or ["(no debate)"]),
        )
        proposal, call_id = await self._ask(trader, Proposal, context, "Propose your action.")
        plan = _Plan(
            proposal.action, proposal.confidence, proposal.reasoning, proposal.entry,
            proposal.stop_loss, proposal.take_profit, proposal.size_hint,
        )  # fmt: skip
        await self._said(trader, "proposal", plan.describe(), proposal, call_id)
        return proposal

    async def _assess(
        self, reports: list[tuple[Member, AnalystReport]], debate: list[str], plan: _Plan
    ) -> RiskVerdict:
        base = self._join(
            self._context,
            _section("Analyst reports", _reports(reports)),
            _section("The researchers' debate", debate or ["(no debate)"]),
            _section("The trader's proposal", [plan.describe()]),
        )
        voices: list[str] = []
        if self.config.risk_mode is RiskMode.DEBATE:
            rounds = self.config.risk_rounds
            speakers = [self._member(role) for role in RISK_VOICES]
            for number in range(1, rounds + 1):
                for member in speakers:
                    context = self._join(
                        base, _section("The risk debate so far", voices or ["(you speak first)"])
                    )
                    task = f"Risk debate round {number} of {rounds}: argue your view."
                    argument, call_id = await self._ask(member, Argument, context, task)
                    voices.append(f"{member.name} ({member.role.value}, round {number}): "
                                  f"{argument.argument}")  # fmt: skip
                    await self._said(member, "argument", argument.argument, argument, call_id,
                                     round=number)  # fmt: skip
        manager = self._member(Role.RISK_MANAGER)
        context = base if not voices else self._join(base, _section("The risk debate", voices))
        verdict, call_id = await self._ask(
            manager, RiskVerdict, context, "Approve, adjust or reject the proposal."
        )
        await self._said(
            manager, "risk", f"{verdict.verdict.value}: {verdict.reasoning}", verdict, call_id
        )
        return verdict

    async def _lead(
        self,
        reports: list[tuple[Member, AnalystReport]],
        debate: list[str],
        plan: _Plan,
        verdict: RiskVerdict,
    ) -> Outcome:
        leaders = self._members(Role.LEADER)
        if not leaders:
            return await self._decide(plan, plan.reasoning, plan.confidence, None)
        leader = leaders[0]
        context = self._join(
            self._context,
            _section("Analyst reports", _reports(reports)),
            _section("The researchers' debate", debate or ["(no debate)"]),
            _section("The approved plan", [plan.describe()]),
            _section("The risk manager", [f"{verdict.verdict.value}: {verdict.reasoning}"]),
        )
        task = f"Decide: {plan.action.value} as approved, or HOLD."
        choice, call_id = await self._ask(leader, LeaderDecision, context, task)
        if choice.action is Action.HOLD:
            return await self._hold(
                "hold", f"the leader holds: {choice.reasoning}", data=choice, call_id=call_id
            )
        if choice.action is not plan.action:
            return await self._hold(
                "hold",
                f"the leader answered {choice.action.value}, but only {plan.action.value} "
                f"was approved: {choice.reasoning}",
                data=choice,
                call_id=call_id,
            )
        return await self._decide(plan, choice.reasoning, choice.confidence, call_id)

    # ------------------------------------------------------------------ endings

    async def _decide(
        self, plan: _Plan, reasoning: str, confidence: float, call_id: int | None
    ) -> Outcome:
        decision = Decision(
            plan.action,
            confidence,
            reasoning,
            entry=plan.entry,
            stop_loss=plan.stop_loss,
            take_profit=plan.take_profit,
            size_hint=plan.size_hint,
        )
        content = f"{plan.action.value} ({confidence:.2f}) — {reasoning}"
        data = {
            "action": plan.action.value,
            "confidence": confidence,
            "reasoning": reasoning,
            **{
                k: str(v)
                for k, v in (
                    ("entry", plan.entry),
                    ("stop_loss", plan.stop_loss),
                    ("take_profit", plan.take_profit),
                    ("size_hint", plan.size_hint),
                )
                if v is not None
            },
        }
        await self._say(
            Said(self._leader_name, Role.LEADER.value, "decision", content, data, call_id)
        )
        return Outcome(decision, "decided", reasoning)

    async def _hold(
        self,
        status: Status,
        reason: str,
        *,
        budget: BudgetExceeded | None = None,
        data: BaseModel | None = None,
        call_id: int | None = None,
    ) -> Outcome:
        details: dict[str, Any] = {"action": Action.HOLD.value, "reason": reason, "status": status}
        if data is not None:
            details["answer"] = data.model_dump(mode="json")
        await self._say(
            Said(
                self._leader_name, Role.LEADER.value, "decision", f"HOLD — {reason}", details,
                call_id,
            )
        )  # fmt: skip
        return Outcome(Decision.hold(reason), status, reason, budget)

    # ------------------------------------------------------------------ calls

    async def _ask(self, member: Member, schema: type[T], context: str, task: str) -> tuple[T, int]:
        system = system_prompt(
            member,
            schema,
            group=self.brief.group,
            symbol=self.brief.symbol,
            timeframe=self.brief.timeframe,
        )
        try:
            answered: Answered = await self.ledger.ask(
                member,
                messages(system, self._join(context, f"## Your task\n\n{task}")),
                schema,
                tally=self.tally,
                discussion_id=self.discussion_id,
                correlation_id=self.correlation_id,
            )
        except MemberFailed as e:
            await self._say(Said(member.name, member.role.value, "error", e.reason))
            raise
        value = answered.value
        assert isinstance(value, schema)
        return value, answered.call_id

    async def _said(
        self,
        member: Member,
        kind: str,
        content: str,
        answer: BaseModel,
        call_id: int,
        **extra: Any,
    ) -> None:
        data = {**answer.model_dump(mode="json"), **extra}
        await self._say(Said(member.name, member.role.value, kind, content, data, call_id))

    @staticmethod
    def _join(*parts: str) -> str:
        return "\n\n".join(parts)


def _section(title: str, lines: Sequence[str]) -> str:
    return f"## {title}\n\n" + "\n".join(f"- {line}" for line in lines)


def _reports(reports: list[tuple[Member, AnalystReport]]) -> list[str]:
    lines = []
    for member, report in reports:
        line = (
            f"{member.name} ({member.role.value}): {report.stance.value}, confidence "
            f"{report.confidence:.2f}. {report.summary}"
        )
        if report.key_points:
            line += " Key points: " + "; ".join(report.key_points)
        lines.append(clip(line, 2_500))
    return lines
