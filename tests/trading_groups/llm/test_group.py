"""`ats group llm` as a real process against a real gateway, its team answered by a
local OpenAI-compatible server through the real LangChain client: the discussion,
its transcript, the recorded calls and their cost, the budget, malformed answers,
retried transport failures, reflections, and the offline refusal."""

from __future__ import annotations

import asyncio
import signal as signals
from decimal import Decimal

from sqlalchemy import select

from shared.db.models import DiscussionRow
from shared.llm.pricing import Price, cost_of
from tests.conftest import TIMEOUT_FACTOR, eventually
from tests.fakes.openai import json_reply, rate_limited, reply, slow
from tests.trading_groups.llm.conftest import (
    CHEAP,
    GROUP,
    PRICES,
    STRONG,
    MakeSetup,
    Team,
    decisions,
    fake_usage,
    request_hash,
)

TEAM_ORDER = [
    ("technical", "technical_analyst", "analysis"),
    ("sentiment", "sentiment_analyst", "analysis"),
    ("fundamentals", "fundamentals_analyst", "analysis"),
    ("bull", "bull_researcher", "argument"),
    ("bear", "bear_researcher", "argument"),
    ("trader", "trader", "proposal"),
    ("risk", "risk_manager", "risk"),
    ("leader", "leader", "decision"),
]


async def test_llm_group_full_discussion_decides_with_causation_transcript_and_costs(
    llm_group: MakeSetup,
) -> None:
    setup = await llm_group()
    group = setup.start()
    signal = await setup.signal(0, correlation="corr-full")

    (decision,) = await eventually(lambda: decisions(setup), timeout=30, message=setup.output())
    assert decision["source"] == f"trading_group:{GROUP}"
    assert decision["trace"] == {"correlation_id": "corr-full", "causation_id": signal["id"]}
    p = decision["payload"]
    assert (p["symbol"], p["action"], p["confidence"]) == ("ETH/BTC", "BUY", 0.65)
    assert (p["strategy"], p["candle_time"], p["timeframe"]) == (
        "llm",
        "2018-01-10T06:00:00Z",
        "5m",
    )
    assert (Decimal(p["stop_loss"]), Decimal(p["take_profit"])) == (
        Decimal("0.097"),
        Decimal("0.105"),
    )
    assert Decimal(p["entry"]) > 0  # the signal candle's close
    assert p["reasoning"] == "The team agrees."

    # The discussion is stored, linked to the signal and the decision.
    discussion = await setup.finished(signal["id"])
    assert discussion.id == p["discussion_id"]
    assert (discussion.status, discussion.action) == ("decided", "BUY")
    assert (discussion.decision_id, discussion.correlation_id) == (decision["id"], "corr-full")
    assert discussion.symbol == "ETH/BTC"
    messages = await setup.store.messages(discussion.id)
    assert [(m.member, m.role, m.kind) for m in messages] == TEAM_ORDER
    assert [m.seq for m in messages] == list(range(1, 9))
    assert messages[-1].data["payload"]["discussion_id"] == discussion.id

    # Every call: one per member, the endpoint's tokens, the price table's cost.
    calls = await setup.calls(discussion.id)
    # The analysts' in the order they answered, then the rest in turn.
    assert sorted(c.member for c in calls[:3]) == ["fundamentals", "sentiment", "technical"]
    assert [c.member for c in calls[3:]] == ["bull", "bear", "trader", "risk", "leader"]
    assert {c.status for c in calls} == {"ok"}
    requests = {request_hash(r): r for r in setup.llm.requests}
    assert len(requests) == len(calls) == 8
    for call in calls:
        request = requests[call.prompt_hash]  # what was sent hashes as recorded
        assert call.prompt == [
            {"role": m["role"], "content": m["content"]} for m in request.messages
        ]
        assert (call.tokens_in, call.tokens_out) == fake_usage(request, call.answer or "")
        price = Price.model_validate(PRICES[call.model])
        assert call.cost == cost_of(price, call.tokens_in, call.tokens_out)
        assert call.correlation_id == "corr-full" and call.latency_ms > 0
        assert request.model == (STRONG if call.member in ("risk", "leader") else CHEAP)
    assert discussion.tokens_in == sum(c.tokens_in for c in calls)
    assert discussion.tokens_out == sum(c.tokens_out for c in calls)
    assert discussion.cost == sum((c.cost for c in calls), Decimal(0)) > 0

    # The members saw the signal, the candles up to it, and each other.
    (trader,) = [r for r in setup.llm.requests if Team.role_of(r) == "trader"]
    prompt = trader.contents("user")[0]
    assert "RSI(14) crossed above 30." in prompt
    assert "2018-01-10 06:00, 0.09" in prompt and "2018-01-10 06:05" not in prompt
    assert "rsi_14" in prompt and "The bull case" in prompt and "The bear case" in prompt

    # Streamed as it ran: one log frame per message, in order, with the discussion id.
    logs = [
        log for log in await setup.logs("TRADING_GROUP_DISCUSSION_LOG")
        if log["data"].get("discussion_id") == discussion.id
    ]  # fmt: skip
    assert [
        (log["data"]["member"], log["data"]["role"], log["data"]["kind"]) for log in logs
    ] == TEAM_ORDER
    assert all(log["trace"]["causation_id"] == signal["id"] for log in logs)
    assert logs[0]["message"].startswith("technical (technical_analyst): bullish (0.70)")
    group.terminate()
    assert await asyncio.wait_for(asyncio.to_thread(group.wait), 30 * TIMEOUT_FACTOR) == 0


async def test_llm_group_budget_stops_calls_at_the_limit_exactly(llm_group: MakeSetup) -> None:
    setup = await llm_group(budgets={"daily_tokens": 50_000, "daily_cost": None})
    # Earlier today the group used all but one token: the next call may start (it is
    # under the limit) and crosses it; the two other analysts, asking in parallel,
    # must not start.
    await setup.seed_usage(49_999)
    setup.start()
    first = await setup.signal(0)
    discussion = await setup.finished(first["id"])
    assert len(setup.llm.requests) == 1
    calls = await setup.calls(discussion.id)
    assert len(calls) == 1 and calls[0].status == "ok"
    assert (discussion.status, discussion.action) == ("failed", "HOLD")
    assert discussion.reason is not None
    assert discussion.reason.startswith("no decision: daily token budget reached: ")
    assert discussion.tokens_in == calls[0].tokens_in
    (warning,) = await setup.logs("LLM_BUDGET_EXCEEDED")
    assert warning["level"] == "warning"
    assert warning["data"]["discussion_id"] == discussion.id
    assert warning["data"]["daily_tokens"] == 50_000
    assert warning["data"]["tokens_used"] == 49_999 + calls[0].tokens_in + calls[0].tokens_out
    transcript = await setup.store.messages(discussion.id)
    assert transcript[-1].kind == "decision" and transcript[-1].content.startswith(
        "HOLD — no decision"
    )

    # Spent for the day: the next signal makes no call at all.
    second = await setup.signal(1)
    held = await setup.finished(second["id"])
    assert len(setup.llm.requests) == 1
    assert await setup.calls(held.id) == []
    assert held.status == "failed" and "daily token budget reached" in (held.reason or "")
    assert len(await setup.logs("LLM_BUDGET_EXCEEDED")) == 2
    assert decisions(setup) == []

    # A config the group cannot use is refused, the budget in force kept; a higher
    # budget applies at once, without a restart.
    base = {"feeds": {"ETH/BTC": "csv:data/ETH-BTC_5m.csv"}, "prices": PRICES}
    async with setup.gateway.api() as api:
        bad = {"config": {**base, "budgets": {"daily_tokens": "plenty"}}}
        assert (await api.patch(f"/api/v1/trading-groups/{GROUP}", json=bad)).status_code == 200
        (refused,) = await eventually(lambda: setup.logs("CONFIG_REJECTED"), timeout=30)
        assert "budgets.daily_tokens" in refused["message"]
        more = {"config": {**base, "budgets": {"daily_tokens": 10_000_000}}}
        assert (await api.patch(f"/api/v1/trading-groups/{GROUP}", json=more)).status_code == 200
        await eventually(lambda: setup.logs("CONFIG_APPLIED"), timeout=30)
    third = await setup.signal(2)
    assert (await setup.finished(third["id"])).status == "decided"
    assert len(decisions(setup)) == 1


async def test_llm_group_malformed_answer_is_retried_once_with_the_error_then_holds(
    llm_group: MakeSetup,
) -> None:
    setup = await llm_group()
    setup.team.script(
        "trader",
        reply("I would buy here, the trend is up."),
        json_reply({"action": "BUY", "reasoning": "trend"}),  # no confidence
    )
    setup.start()
    signal = await setup.signal(0)
    discussion = await setup.finished(signal["id"])

    first, second = [r for r in setup.llm.requests if Team.role_of(r) == "trader"]
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[:2] == first.messages
    assert second.messages[2]["content"] == "I would buy here, the trend is up."
    correction = second.messages[3]["content"]
    assert correction.startswith("That reply could not be used: ")
    assert "Invalid json output" in correction
    calls = [c for c in await setup.calls(discussion.id) if c.member == "trader"]
    assert [c.status for c in calls] == ["invalid", "invalid"]
    assert "confidence" in (calls[1].error or "")
    assert (discussion.status, discussion.action) == ("failed", "HOLD")
    assert discussion.reason is not None
    assert discussion.reason.startswith("no decision: trader gave no answer (invalid output twice")
    transcript = await setup.store.messages(discussion.id)
    assert [(m.member, m.kind) for m in transcript][-2:] == [
        ("trader", "error"),
        ("leader", "decision"),
    ]
    assert not any(Team.role_of(r) in ("risk_manager", "leader") for r in setup.llm.requests)
    assert decisions(setup) == []


async def test_llm_group_timeout_and_429_are_retried_by_the_client_and_recorded(
    llm_group: MakeSetup,
) -> None:
    setup = await llm_group(defaults={"timeout": 1.5, "max_retries": 2}, debate_rounds=0)
    setup.team.script("technical_analyst", rate_limited(retry_after=0.05))
    setup.team.script("sentiment_analyst", slow(reply("too late"), 10))
    setup.start()
    signal = await setup.signal(0)
    (decision,) = await eventually(lambda: decisions(setup), timeout=30, message=setup.output())
    discussion = await setup.finished(signal["id"])
    assert decision["payload"]["discussion_id"] == discussion.id
    calls = await setup.calls(discussion.id)
    technical = [(c.status, c.error) for c in calls if c.member == "technical"]
    assert technical == [
        ("error", "HTTP 429 Too Many Requests; retried by the client"),
        ("ok", None),
    ]
    sentiment = [c for c in calls if c.member == "sentiment"]
    assert [(c.status, c.error) for c in sentiment] == [
        ("error", "timed out (ReadTimeout); retried by the client"),
        ("ok", None),
    ]
    assert sentiment[0].latency_ms >= 1500 and sentiment[0].tokens_in == 0
    assert sentiment[1].latency_ms >= 1500  # the answer came after the retry
    assert len(setup.llm.requests) == len(calls) == 2 + 2 + 1 + 1 + 1 + 1


async def test_llm_group_reflects_on_a_closed_trade_and_recalls_it_in_the_next_prompt(
    llm_group: MakeSetup,
) -> None:
    setup = await llm_group(budgets={"daily_tokens": 1_000_000, "daily_cost": None})
    setup.start()
    await setup.signal(0)
    (buy,) = await eventually(lambda: decisions(setup), timeout=30, message=setup.output())
    trace = {"correlation_id": buy["trace"]["correlation_id"], "causation_id": buy["id"]}
    # Execution fills the entry, then a stop closes it at a loss.
    await setup.order(
        {"status": "filled", "side": "buy", "quantity": "0.5", "price": "0.0995"}, trace
    )
    await setup.order(
        {"status": "filled", "side": "sell", "quantity": "0.5", "price": "0.097",
         "realized_pnl": "-0.00125", "reason": "stop loss hit"},
        trace,
    )  # fmt: skip
    (reflection,) = await eventually(
        lambda: setup.store.reflections(GROUP, symbol="ETH/BTC", limit=5),
        timeout=30,
        message=setup.output(),
    )
    assert (reflection.decision_id, reflection.pnl) == (buy["id"], Decimal("-0.00125"))
    assert reflection.content.startswith("Closed ETH/BTC with realized PnL -0.00125 (a loss)")
    assert "Entry: The team agrees." in reflection.content
    assert reflection.content.endswith("Lesson: LESSON-ETH-1: momentum entries need rising volume.")
    (asked,) = [r for r in setup.llm.requests if Team.role_of(r) == "reflection"]
    assert "stop loss hit" in asked.contents("user")[0]
    (logged,) = await setup.logs("LLM_REFLECTION")
    assert logged["data"]["decision_id"] == buy["id"]

    # The next discussion is shown the lesson, and what came of the earlier decision.
    await setup.signal(3)
    await eventually(
        lambda: any("LESSON-ETH-1" in r.text and Team.role_of(r) == "trader"
                    for r in setup.llm.requests),
        timeout=30,
        message=setup.output(),
    )  # fmt: skip
    (trader,) = [
        r for r in setup.llm.requests if Team.role_of(r) == "trader" and "LESSON" in r.text
    ]
    assert "realized PnL -0.00125" in trader.contents("user")[0]

    # Over budget, the reflection is written from the facts, without a call.
    await eventually(lambda: len(decisions(setup)) == 2, timeout=30, message=setup.output())
    await setup.seed_usage(2_000_000)
    asked_before = len(setup.llm.requests)
    second = decisions(setup)[1]
    await setup.order(
        {"status": "filled", "side": "sell", "quantity": "0.5", "price": "0.1",
         "realized_pnl": "0.001"},
        {"correlation_id": "corr-3", "causation_id": second["id"]},
    )  # fmt: skip

    async def template() -> str | None:
        rows = await setup.store.reflections(GROUP, symbol="ETH/BTC", limit=5)
        return next((r.content for r in rows if r.decision_id == second["id"]), None)

    content = await eventually(template, timeout=30, message=setup.output())
    assert "(a win)" in content and "(No lesson drawn: daily token budget reached" in content
    assert len(setup.llm.requests) == asked_before


async def test_llm_group_without_an_endpoint_does_not_start_and_says_why(
    llm_group: MakeSetup,
) -> None:
    setup = await llm_group()
    proc = setup.start(ATS_LLM_BASE_URL="")
    assert await asyncio.wait_for(asyncio.to_thread(proc.wait), 60 * TIMEOUT_FACTOR) == 2
    output = setup.output()
    assert "no LLM endpoint configured, so the LLM group stays offline" in output
    assert "ATS_LLM_BASE_URL" in output
    assert setup.llm.requests == []
    assert f"trading_group:{GROUP}" not in setup.gateway.state.hub.sessions


async def test_llm_group_restarted_mid_discussion_discusses_the_signal_again_once(
    llm_group: MakeSetup,
) -> None:
    setup = await llm_group()
    setup.team.script("leader", slow(reply("never seen"), 30))
    first = setup.start()
    signal = await setup.signal(0)
    await eventually(
        lambda: any(Team.role_of(r) == "leader" for r in setup.llm.requests),
        timeout=30,
        message=setup.output(),
    )
    first.send_signal(signals.SIGKILL)  # a crash: the signal was never acknowledged
    await asyncio.wait_for(asyncio.to_thread(first.wait), 30 * TIMEOUT_FACTOR)
    setup.start()
    (decision,) = await eventually(lambda: decisions(setup), timeout=30, message=setup.output())
    discussion = await setup.finished(signal["id"])
    assert decision["payload"]["discussion_id"] == discussion.id
    assert discussion.status == "decided"
    async with setup.store.sessions() as s:
        rows = list(
            await s.scalars(select(DiscussionRow).where(DiscussionRow.signal_id == signal["id"]))
        )
    cut_short = [(r.status, r.reason) for r in rows if r.id != discussion.id]
    assert cut_short == [("failed", "interrupted: the group stopped during the discussion")]
    assert len(decisions(setup)) == 1
