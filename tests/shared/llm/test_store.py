"""The LLM tables through `LlmStore`, on SQLite and PostgreSQL: today's spend is one
exact aggregate, transcripts read back in order, reflections by relevance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.db.engine import create_engine
from shared.llm.budget import Usage
from shared.llm.client import ChatMessage, prompt_hash
from shared.llm.store import LlmStore
from tests.conftest import Database

NOON = datetime(2025, 3, 4, 12, tzinfo=UTC)
MIDNIGHT = datetime(2025, 3, 4, tzinfo=UTC)
PROMPT = [ChatMessage("system", "be brief"), ChatMessage("user", "BTC?")]


@pytest.fixture
async def store(database: Database) -> AsyncIterator[LlmStore]:
    engine = create_engine(database.url, schema=database.schema)
    try:
        yield LlmStore(engine)
    finally:
        await engine.dispose()


async def _call(
    store: LlmStore, *, group: str = "g1", at: datetime = NOON, cost: str = "0.1", tokens: int = 10
) -> int:
    return await store.record_call(
        group=group,
        member="technical",
        model="m",
        prompt_hash=prompt_hash("m", PROMPT),
        messages=PROMPT,
        answer='{"x": 1}',
        status="ok",
        error=None,
        tokens_in=tokens,
        tokens_out=tokens // 2,
        cost=Decimal(cost),
        latency_ms=12.5,
        created_at=at,
        discussion_id="d1",
        correlation_id="c1",
    )


async def test_store_spent_since_sums_tokens_and_exact_cost_of_the_group_today(
    store: LlmStore,
) -> None:
    assert await store.spent_since("g1", MIDNIGHT) == Usage(0, Decimal(0))
    # 0.1 + 0.2 is not 0.3 in doubles; 18 places must survive the sum.
    await _call(store, cost="0.1", tokens=10)
    await _call(store, cost="0.2", tokens=20)
    await _call(store, cost="0.000000000000000001", tokens=2)
    await _call(store, at=MIDNIGHT - timedelta(microseconds=1), cost="5", tokens=1000)  # yesterday
    await _call(store, group="g2", cost="7", tokens=1000)  # another group
    spent = await store.spent_since("g1", MIDNIGHT)
    assert spent.tokens == (10 + 5) + (20 + 10) + (2 + 1)
    assert spent.cost == Decimal("0.300000000000000001")


async def test_store_record_call_keeps_the_prompt_answer_and_hash(store: LlmStore) -> None:
    call_id = await _call(store)
    (row,) = await store.calls(discussion_id="d1")
    assert row.id == call_id
    assert row.prompt == [m.to_json() for m in PROMPT]
    assert row.prompt_hash == prompt_hash("m", PROMPT)
    assert (row.status, row.tokens_in, row.tokens_out, row.cost) == ("ok", 10, 5, Decimal("0.1"))
    assert row.created_at == NOON


async def test_store_discussion_transcript_reads_back_in_order_and_finishes(
    store: LlmStore,
) -> None:
    await store.start_discussion(
        id="d1", group="g1", signal_id="s1", correlation_id="c1", symbol="ETH/BTC", started_at=NOON
    )
    for seq, member in ((2, "bull"), (1, "technical"), (3, "leader")):
        await store.add_message(
            discussion_id="d1",
            seq=seq,
            member=member,
            role=member,
            kind="analysis",
            content=f"{member} says",
            data={"seq": seq},
            created_at=NOON,
        )
    assert [m.member for m in await store.messages("d1")] == ["technical", "bull", "leader"]
    running = await store.discussion_of_signal("g1", "s1")
    assert running is not None and running.status == "running"
    await store.finish_discussion(
        "d1",
        status="decided",
        action="BUY",
        reason="all agree",
        decision_id="dec-1",
        tokens_in=30,
        tokens_out=12,
        cost=Decimal("0.25"),
        finished_at=NOON + timedelta(seconds=5),
    )
    done = await store.discussion("d1")
    assert done is not None
    assert (done.status, done.action, done.decision_id, done.cost) == (
        "decided", "BUY", "dec-1", Decimal("0.25"),
    )  # fmt: skip
    assert [d.id for d in await store.recent_discussions("g1", limit=5)] == ["d1"]
    assert await store.decided("g1", symbol="ETH/BTC", action="BUY") is not None
    assert await store.decided("g1", symbol="ETH/BTC", action="SELL") is None
    assert (await store.discussion_of_decision("dec-1")) is not None
    with pytest.raises(ValueError, match="finishes as one of"):
        await store.finish_discussion(
            "d1", status="running", action=None, reason=None, finished_at=NOON
        )


async def test_store_reflections_same_symbol_first_then_newest(store: LlmStore) -> None:
    for minutes, symbol in ((1, "BTC/USDT"), (2, "ETH/BTC"), (3, "BTC/USDT"), (4, "SOL/USDT")):
        await store.add_reflection(
            group="g1",
            symbol=symbol,
            decision_id=f"dec-{minutes}",
            pnl=Decimal("-0.5"),
            content=f"lesson {minutes}",
            created_at=NOON + timedelta(minutes=minutes),
        )
    await store.add_reflection(
        group="g2", symbol="ETH/BTC", decision_id="x", pnl=None, content="other", created_at=NOON
    )
    got = await store.reflections("g1", symbol="ETH/BTC", limit=3)
    assert [r.content for r in got] == ["lesson 2", "lesson 4", "lesson 3"]
    assert await store.has_reflection("g1", "dec-3")
    assert not await store.has_reflection("g1", "x")
    assert await store.reflections("g1", symbol="ETH/BTC", limit=0) == []
