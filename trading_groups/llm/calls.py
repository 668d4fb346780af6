"""Every call a member makes: under the budget, recorded, retried once when invalid.

`Ledger.ask` is the one way the group calls a model. Before the call, the budget
gate reads today's spend (one SQL aggregate) and admits the call or raises
`BudgetExceeded`. After it, the call is stored in `llm_calls` (prompt, answer,
status, tokens, cost from the price table, latency, prompt hash), and so is every
HTTP attempt the client retried on the way (a 429, a timeout: status `error`, no
tokens). An answer that does not validate is asked for once more with the error;
a second invalid answer, or a call that failed, raises `MemberFailed`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import httpx
from pydantic import BaseModel

from shared.llm.budget import Budget, BudgetGate, Usage, bound_usage
from shared.llm.client import ChatMessage, ModelAnswer, ModelSpec, StructuredModel, prompt_hash
from shared.llm.pricing import ZERO, PriceTable
from shared.llm.store import LlmStore
from trading_groups.llm.config import Member
from trading_groups.llm.prompts import corrected


class MemberFailed(Exception):
    """A member gave no usable answer: invalid twice, or its call failed."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"{member}: {reason}")
        self.member = member
        self.reason = reason


@dataclass
class Tally:
    """What a discussion's calls used, failed ones included."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    calls: int = 0


@dataclass(frozen=True, slots=True)
class Answered:
    value: BaseModel
    call_id: int


class Asker(Protocol):
    """What a discussion calls its members through: the live `Ledger`, or a backtest's
    (`trading_groups.llm.backtest.RunLedger`)."""

    async def ask(
        self,
        member: Member,
        messages: Sequence[ChatMessage],
        schema: type[BaseModel],
        *,
        tally: Tally | None = None,
        discussion_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Answered: ...


class Models:
    """One `StructuredModel` per model spec, sharing one HTTP client."""

    def __init__(self, http_client: httpx.AsyncClient | None = None) -> None:
        self._http = http_client
        self._models: dict[ModelSpec, StructuredModel] = {}

    def model(self, spec: ModelSpec) -> StructuredModel:
        found = self._models.get(spec)
        if found is None:
            found = self._models[spec] = StructuredModel(spec, http_client=self._http)
        return found


class Ledger(Models):
    """Calls for one group (see the module docstring).

    Args:
        group: the group's name, as the calls are stored.
        store: the LLM tables.
        clock: the time now (UTC); "today" for the budget is its UTC date.
        http_client: shared by every model (see `shared.llm.client.make_http_client`).
        unknown_price: awaited once per model the price table does not know.
    """

    def __init__(
        self,
        *,
        group: str,
        store: LlmStore,
        clock: Callable[[], datetime],
        http_client: httpx.AsyncClient | None = None,
        unknown_price: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.group = group
        self.store = store
        self.clock = clock
        self.budget = Budget()
        self.prices = PriceTable()
        super().__init__(http_client)
        self.gate = BudgetGate(self._spent_today)
        self._unknown_price = unknown_price
        self._warned: set[str] = set()

    async def _spent_today(self) -> Usage:
        """Tokens and cost of the group's calls since midnight UTC: one SQL aggregate."""
        midnight = self.clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return await self.store.spent_since(self.group, midnight)

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
        """The member's answer as `schema`.

        Raises:
            BudgetExceeded: no call may start today (none was made).
            MemberFailed: the answer was invalid twice, or the call failed.
        """
        model = self.model(member.spec)
        price = self.prices.price(model.model)
        if price is None and model.model not in self._warned:
            self._warned.add(model.model)
            if self._unknown_price is not None:
                await self._unknown_price(model.model)

        async def call(prompt: list[ChatMessage]) -> tuple[ModelAnswer, int]:
            bound = bound_usage(prompt, member.spec.max_tokens, price or ZERO)
            async with self.gate.admit(self.budget, bound):
                answer = await model.ask(prompt, schema)
                call_id = await self._record(
                    member.name, model.model, prompt, answer, tally, discussion_id, correlation_id
                )
            return answer, call_id

        return await answer_within_two(member.name, list(messages), call)

    async def _record(
        self,
        member: str,
        model: str,
        prompt: Sequence[ChatMessage],
        answer: ModelAnswer,
        tally: Tally | None,
        discussion_id: str | None,
        correlation_id: str | None,
    ) -> int:
        digest = prompt_hash(model, prompt)
        for retried in answer.retried:
            await self.store.record_call(
                group=self.group,
                member=member,
                model=model,
                prompt_hash=digest,
                messages=prompt,
                answer=None,
                status="error",
                error=f"{retried.error}; retried by the client",
                tokens_in=0,
                tokens_out=0,
                cost=Decimal(0),
                latency_ms=retried.latency_ms,
                created_at=self.clock(),
                discussion_id=discussion_id,
                correlation_id=correlation_id,
            )
        cost = self.prices.cost(model, answer.tokens_in, answer.tokens_out)
        call_id = await self.store.record_call(
            group=self.group,
            member=member,
            model=model,
            prompt_hash=digest,
            messages=prompt,
            answer=answer.text,
            status=answer.status,
            error=answer.error,
            tokens_in=answer.tokens_in,
            tokens_out=answer.tokens_out,
            cost=cost,
            latency_ms=answer.latency_ms,
            created_at=self.clock(),
            discussion_id=discussion_id,
            correlation_id=correlation_id,
        )
        if tally is not None:
            tally.tokens_in += answer.tokens_in
            tally.tokens_out += answer.tokens_out
            tally.cost += cost
            tally.calls += 1 + len(answer.retried)
        return call_id


async def answer_within_two(
    member: str,
    prompt: list[ChatMessage],
    call: Callable[[list[ChatMessage]], Awaitable[tuple[ModelAnswer, int]]],
) -> Answered:
    """`call` the model; an invalid answer is asked once more, with the error appended
    (`corrected`), live and in backtests alike.

    Raises:
        MemberFailed: the call failed, or the answer was invalid twice.
    """
    for attempt in (1, 2):
        answer, call_id = await call(prompt)
        if answer.status == "ok" and answer.parsed is not None:
            return Answered(answer.parsed, call_id)
        error = answer.error or "no answer"
        if answer.status == "error":
            raise MemberFailed(member, error)
        if attempt == 2:
            raise MemberFailed(member, f"invalid output twice; last: {error}")
        prompt = corrected(prompt, answer.text, error)
    raise AssertionError("unreachable")  # pragma: no cover
