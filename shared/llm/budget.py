"""Daily token and cost budgets that stop calls at the limit exactly.

The rule is the one a single caller making one call at a time would follow: **a call
may start while today's (UTC) spend is below every limit**; the call that crosses a
limit completes and counts, and no call starts after it. Today's spend is one SQL
aggregate over the stored calls, read before every call.

Callers are concurrent (a group's analysts run in parallel), and a call's tokens are
known only once it returns. So each call reserves an upper bound of what it can
cost (`bound_tokens`: the prompt's UTF-8 bytes, since a token is at least one byte,
plus per-message framing, plus `max_tokens` of output). A call starts at once when
the spend plus every running call's reservation is still below the limits: then
whatever those calls use, this one would have been allowed after them too. Otherwise
it waits for the running calls to finish and reads the spend again. Far from the
limit calls run in parallel; near it they run one at a time; the outcome is the
one-at-a-time outcome either way.

The gate is per process (one process serves a group). It relies on the endpoint
honouring `max_tokens`; one that does not can overshoot by what its running calls
used beyond their bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

from shared.llm.client import ChatMessage
from shared.llm.pricing import Price, cost_of

#: Per-message framing tokens a chat template adds (OpenAI counts 3 or 4), generous.
_FRAMING_TOKENS = 8

LLM_BUDGET_EXCEEDED = "LLM_BUDGET_EXCEEDED"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens (in and out together) and cost."""

    tokens: int = 0
    cost: Decimal = Decimal(0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.tokens + other.tokens, self.cost + other.cost)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.tokens - other.tokens, self.cost - other.cost)


@dataclass(frozen=True, slots=True)
class Budget:
    """A day's limits; None: no limit of that kind."""

    daily_tokens: int | None = None
    daily_cost: Decimal | None = None

    def exceeded(self, used: Usage) -> str | None:
        """Why no call may start after `used`, or None while one may."""
        if self.daily_tokens is not None and used.tokens >= self.daily_tokens:
            return (
                f"daily token budget reached: {used.tokens:,} of {self.daily_tokens:,} "
                "tokens used today (UTC)"
            )
        if self.daily_cost is not None and used.cost >= self.daily_cost:
            return (
                f"daily cost budget reached: {used.cost:f} of {self.daily_cost:f} spent today (UTC)"
            )
        return None

    def below(self, used: Usage) -> bool:
        """Whether `used` is below every limit."""
        return self.exceeded(used) is None


class BudgetExceeded(Exception):
    """No call may start today: a limit is reached."""

    code = LLM_BUDGET_EXCEEDED

    def __init__(self, reason: str, *, used: Usage, budget: Budget) -> None:
        super().__init__(reason)
        self.reason = reason
        self.used = used
        self.budget = budget


def bound_tokens(messages: Sequence[ChatMessage], max_tokens: int) -> tuple[int, int]:
    """Upper bounds of a call's prompt and completion tokens.

    A byte-level BPE token covers at least one byte of text, so a prompt cannot take
    more tokens than its UTF-8 bytes plus the chat template's framing; the completion
    is capped by `max_tokens`.
    """
    prompt = sum(len(m.content.encode("utf-8")) + _FRAMING_TOKENS for m in messages)
    return prompt + _FRAMING_TOKENS, max_tokens


def bound_usage(messages: Sequence[ChatMessage], max_tokens: int, price: Price) -> Usage:
    """What a call can cost at most (see `bound_tokens`)."""
    tokens_in, tokens_out = bound_tokens(messages, max_tokens)
    return Usage(tokens_in + tokens_out, cost_of(price, tokens_in, tokens_out))


class BudgetGate:
    """Admits calls under a `Budget` (see the module docstring).

    Args:
        spent: today's spend, read from storage (one SQL aggregate per read). A call
            admitted by the gate must have its usage stored before it leaves the
            gate, so the next read includes it.
    """

    def __init__(self, spent: Callable[[], Awaitable[Usage]]) -> None:
        self._spent = spent
        self._changed = asyncio.Condition()
        self._running = 0
        self._reserved = Usage()

    @property
    def running(self) -> int:
        """Calls admitted and not yet finished."""
        return self._running

    @asynccontextmanager
    async def admit(self, budget: Budget, bound: Usage) -> AsyncIterator[Usage]:
        """Wait until a call bounded by `bound` may start; yield today's spend as read.

        Raises:
            BudgetExceeded: a limit is reached; no call may start today.
        """
        async with self._changed:
            while True:
                used = await self._spent()
                reason = budget.exceeded(used)
                if reason is not None:
                    raise BudgetExceeded(reason, used=used, budget=budget)
                if self._running == 0 or budget.below(used + self._reserved):
                    self._running += 1
                    self._reserved = self._reserved + bound
                    break
                await self._changed.wait()
        try:
            yield used
        finally:
            async with self._changed:
                self._running -= 1
                self._reserved = self._reserved - bound
                self._changed.notify_all()
