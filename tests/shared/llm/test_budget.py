"""The budget gate: concurrent calls stop at the limit exactly, as if made one at a
time, and run in parallel while far from it. Today's spend comes from a real
`LlmStore` (SQLite), as in the group."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from shared.db.engine import create_engine, upgrade
from shared.llm.budget import Budget, BudgetExceeded, BudgetGate, Usage, bound_tokens
from shared.llm.client import ChatMessage
from shared.llm.store import LlmStore

MIDNIGHT = datetime(2025, 3, 4, tzinfo=UTC)
NOON = datetime(2025, 3, 4, 12, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LlmStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ats.db'}")
    await upgrade(engine)
    try:
        yield LlmStore(engine)
    finally:
        await engine.dispose()


class Caller:
    """Calls through the gate, each using a known number of tokens and cost."""

    def __init__(self, store: LlmStore, budget: Budget, *, tokens: int, cost: str) -> None:
        self.store, self.budget = store, budget
        self.tokens, self.cost = tokens, Decimal(cost)
        self.gate = BudgetGate(lambda: store.spent_since("g1", MIDNIGHT))
        self.made = 0
        self.refused = 0
        self.most_at_once = 0

    async def call(self, bound: Usage) -> None:
        try:
            async with self.gate.admit(self.budget, bound):
                self.made += 1
                self.most_at_once = max(self.most_at_once, self.gate.running)
                await asyncio.sleep(0.01)  # the model answering, while others ask
                await self.store.record_call(
                    group="g1", member="m", model="m", prompt_hash="h", messages=[],
                    answer="{}", status="ok", error=None, tokens_in=self.tokens, tokens_out=0,
                    cost=self.cost, latency_ms=10, created_at=NOON,
                )  # fmt: skip
        except BudgetExceeded:
            self.refused += 1


async def test_budget_gate_concurrent_calls_stop_at_the_token_limit_exactly(
    store: LlmStore,
) -> None:
    # 30 tokens a call, bounded by 40, limit 100: one at a time, calls start at 0, 30,
    # 60 and 90 spent, so exactly 4 run (120 spent) and the rest are refused.
    caller = Caller(store, Budget(daily_tokens=100), tokens=30, cost="0")
    await asyncio.gather(*(caller.call(Usage(40, Decimal(0))) for _ in range(12)))
    assert (caller.made, caller.refused) == (4, 8)
    assert (await store.spent_since("g1", MIDNIGHT)).tokens == 120
    # Far from the limit they ran side by side: 0 + 40 + 40 < 100 let three start.
    assert caller.most_at_once == 3


async def test_budget_gate_concurrent_calls_stop_at_the_cost_limit_exactly(
    store: LlmStore,
) -> None:
    caller = Caller(store, Budget(daily_cost=Decimal("0.3")), tokens=1, cost="0.1")
    await asyncio.gather(*(caller.call(Usage(1, Decimal("0.1"))) for _ in range(10)))
    # 0.1 + 0.2 reaches 0.3 exactly (no float drift lets a fourth call in).
    assert (caller.made, caller.refused) == (3, 7)
    assert (await store.spent_since("g1", MIDNIGHT)).cost == Decimal("0.3")


async def test_budget_gate_refuses_at_once_when_the_day_is_spent(store: LlmStore) -> None:
    caller = Caller(store, Budget(daily_tokens=10), tokens=10, cost="0")
    await caller.call(Usage(1, Decimal(0)))
    with pytest.raises(BudgetExceeded, match=r"daily token budget reached: 10 of 10") as e:
        async with caller.gate.admit(caller.budget, Usage(1, Decimal(0))):
            pass
    assert e.value.used == Usage(10, Decimal(0))
    assert caller.gate.running == 0


async def test_budget_gate_without_limits_admits_everything(store: LlmStore) -> None:
    caller = Caller(store, Budget(), tokens=10**6, cost="100")
    await asyncio.gather(*(caller.call(Usage(10**7, Decimal(1000))) for _ in range(5)))
    assert (caller.made, caller.refused, caller.most_at_once) == (5, 0, 5)


def test_bound_tokens_covers_bytes_framing_and_the_output_cap() -> None:
    messages = [ChatMessage("system", "abc"), ChatMessage("user", "été")]  # 3 + 5 bytes
    prompt, completion = bound_tokens(messages, 256)
    assert prompt == 3 + 5 + 2 * 8 + 8
    assert completion == 256
