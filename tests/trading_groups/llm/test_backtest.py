"""Backtesting an LLM group: the team is asked over real HTTP, through LangChain, by a
local OpenAI-compatible server; answers are cached by prompt, so a second run asks
nothing and trades the same; a changed prompt asks again; a budget stops the calls at
its cap, and the run says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from shared.backtest.data import BacktestRequest
from shared.backtest.lookahead import lookahead_check
from shared.backtest.result import BacktestResult
from shared.config import LLMSettings
from shared.kernel.strategy import Context, Decision, Strategy, create_strategy
from shared.llm.cache import AnswerCache, answer_key
from shared.llm.client import ChatMessage, ModelAnswer, ModelSpec
from shared.market.candles import Candle
from tests.fakes.openai import ChatRequest, FakeOpenAI, Reply, json_reply
from tests.trading_groups.llm.conftest import CHEAP, DEFAULTS, LLM_KEY, PRICES, STRONG, Team
from trading_groups.llm.backtest import (
    LLMBacktest,
    LLMRunReport,
    RunBudget,
    build_run,
    llm_lookahead,
    read_group,
    run_llm_backtest,
    run_llm_lookahead,
)
from trading_groups.llm.config import LLMGroupConfig, parse_config
from trading_groups.llm.schemas import Argument

DATA = Path("data/ETH-BTC_5m.csv")
BARS = 300
TRIGGER = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}}
#: A small team, one call at a time: technical, trader, risk manager, leader.
CONFIG: dict[str, Any] = {
    "team": [
        {"name": "technical", "role": "technical_analyst"},
        {"name": "trader", "role": "trader"},
        {"name": "risk", "role": "risk_manager", "tier": "strong"},
        {"name": "leader", "role": "leader", "tier": "strong"},
    ],
    "debate_rounds": 0,
    "prices": PRICES,
    "context": {"candles": 10, "decisions": 5},
}


def follow_the_signal(request: ChatRequest) -> Reply:
    """The team trades the signal's way: BUY a long signal, SELL a short one."""
    role = Team.role_of(request)
    action = "BUY" if '"direction": "long"' in request.text else "SELL"
    if role == "trader":
        return json_reply(
            {"action": action, "confidence": 0.7, "reasoning": f"The signal says {action}."}
        )
    if role == "leader":
        return json_reply({"action": action, "confidence": 0.65, "reasoning": "Agreed."})
    return json_reply(DEFAULTS[role])


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=LLM_KEY, default=follow_the_signal) as server:
        yield server


def settings(llm: FakeOpenAI) -> LLMSettings:
    return LLMSettings(
        llm_base_url=llm.base_url,
        llm_model=CHEAP,
        llm_strong_model=STRONG,
        llm_api_key=SecretStr(LLM_KEY),
    )


def candles() -> tuple[BacktestRequest, dict[str, list[Candle]]]:
    request = BacktestRequest.parse({**TRIGGER, "data": [str(DATA)]})
    return request, {s: c[:BARS] for s, c in request.load().items()}


async def backtest(
    llm: FakeOpenAI,
    cache: Path | None,
    *,
    config: LLMGroupConfig | None = None,
    budget_cost: Decimal | None = None,
) -> tuple[BacktestResult, LLMRunReport]:
    """One run, on a thread: it owns its event loop, and the fake serves on this one."""
    request, history = candles()
    return await asyncio.to_thread(
        run_llm_backtest,
        request,
        config or parse_config(CONFIG),
        name="eth-team",
        settings=settings(llm),
        cache=AnswerCache(cache) if cache is not None else None,
        budget_cost=budget_cost,
        candles=history,
    )


async def test_llm_backtest_second_run_asks_nothing_and_trades_the_same(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    first, report = await backtest(llm, tmp_path / "cache")
    asked = len(llm.requests)

    assert asked > 0
    assert report.calls_made == asked and report.calls_cached == 0
    assert report.cost > 0 and report.tokens_in > 0
    assert report.signals > 0 and report.decided > 0 and report.reflections > 0
    assert first.trades, "the team's decisions must trade"
    assert all(r.status == 200 for r in llm.requests)
    # The brief of a late signal: earlier decisions with what the books say came of
    # them, and the lessons of the closed trades.
    brief = [r for r in llm.requests if Team.role_of(r) == "technical_analyst"][-1].text
    assert "what came of it: filled buy" in brief
    assert "what came of it: filled sell, realized PnL" in brief
    assert "Lesson: LESSON-ETH-1" in brief
    assert '"direction": "long"' in brief or '"direction": "short"' in brief

    # A team that follows every signal trades as the strategy alone does: the
    # adapter hands its decisions to the engine unchanged.
    request, history = candles()
    alone = request.run(candles=history)
    assert first.trades == alone.trades and first.equity == alone.equity
    assert first.final_equity == alone.final_equity

    second, cached = await backtest(llm, tmp_path / "cache")

    assert len(llm.requests) == asked, "a cached run must make no request"
    assert cached.calls_made == 0 and cached.calls_cached == asked
    assert cached.cost == 0 and cached.tokens_in == 0
    assert cached.saved_cost == report.cost
    assert second.to_json() == first.to_json()
    assert [c.prompt_hash for c in cached.calls] == [c.prompt_hash for c in report.calls]

    def outcome(r: LLMRunReport) -> list[tuple[str, str, str, str]]:
        return [(d.id, d.action, d.status, d.reason) for d in r.discussions]

    assert outcome(cached) == outcome(report)
    assert all(d.calls == 0 and d.cached > 0 for d in cached.discussions)


async def test_llm_backtest_changed_member_prompt_misses_only_its_calls(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    _, report = await backtest(llm, tmp_path / "cache")
    asked = len(llm.requests)
    team = [dict(m) for m in CONFIG["team"]]
    team[1]["prompt"] = "You are the trader of {group} on {symbol}. Follow the signal."
    changed = parse_config({**CONFIG, "team": team})

    _, again = await backtest(llm, tmp_path / "cache", config=changed)

    traders = sum(1 for c in report.calls if c.member == "trader")
    assert traders > 0
    assert again.calls_made == traders == len(llm.requests) - asked
    assert {c.member for c in again.calls if not c.cached} == {"trader"}
    assert again.calls_cached == len(again.calls) - traders


async def test_llm_backtest_other_candle_window_misses_the_cache(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    _, report = await backtest(llm, tmp_path / "cache")
    asked = len(llm.requests)

    wider = parse_config({**CONFIG, "context": {"candles": 12, "decisions": 5}})
    _, again = await backtest(llm, tmp_path / "cache", config=wider)

    # Every member's brief holds the candles; a reflection's prompt does not.
    discussed = sum(1 for c in again.calls if c.discussion is not None)
    assert discussed > 0
    assert all(not c.cached for c in again.calls if c.discussion is not None)
    assert len(llm.requests) - asked == again.calls_made >= discussed
    assert report.calls_made == asked


async def test_llm_backtest_budget_stops_the_calls_at_its_cap_and_says_so(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    everything, unlimited = await backtest(llm, None)
    costs = [c.cost for c in unlimited.calls]
    k = len(costs) // 2
    cap = sum(costs[:k], Decimal(0))
    # The call that reaches the cap is the last one made.
    asked = len(llm.requests)

    result, report = await backtest(llm, tmp_path / "cache", budget_cost=cap)

    assert len(llm.requests) - asked == k == report.calls_made
    assert report.cost == cap
    assert report.budget_reached
    assert report.budget_reason is not None and "cost budget is reached" in report.budget_reason
    refused = next(c for c in unlimited.calls[k:] if c.discussion is not None)
    assert refused.discussion is not None
    number = [d.id for d in unlimited.discussions].index(refused.discussion) + 1
    assert report.budget_reached_at_signal == number
    held = report.discussions[number - 1]
    assert held.action == "HOLD" and "budget" in held.reason
    assert all(d.action == "HOLD" for d in report.discussions[number - 1 :])
    assert report.signals > number, "the signals after it are still discussed, and held"
    assert len(result.trades) < len(everything.trades)
    payload = report.to_json()["budget"]
    assert payload == {
        "tokens": None,
        "cost": str(cap),
        "reached": True,
        "reason": report.budget_reason,
        "reached_at_signal": number,
    }


def test_answer_cache_keeps_answers_but_not_failures(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    spec = ModelSpec(base_url="http://a", model="m")
    prompt = [ChatMessage("system", "s"), ChatMessage("user", "u")]
    key = answer_key(spec, prompt, Argument)
    ok = ModelAnswer(
        "ok", Argument(argument="x", confidence=0.5), '{"argument":"x"}', None, 3, 2, 9
    )
    failed = ModelAnswer("error", None, None, "HTTP 500", 0, 0, 9)

    assert not cache.put(key, model="m", messages=prompt, answer=failed)
    assert cache.get(key, Argument) is None
    assert cache.put(key, model="m", messages=prompt, answer=ok)
    got = cache.get(key, Argument)
    assert got is not None and got.parsed == ok.parsed and (got.tokens_in, got.tokens_out) == (3, 2)
    # What changes the answer changes the key; where the model is served does not.
    hotter = ModelSpec(base_url="http://a", model="m", temperature=0.9)
    assert answer_key(hotter, prompt, Argument) != key
    assert answer_key(ModelSpec(base_url="http://b", model="m"), prompt, Argument) == key
    assert answer_key(spec, [*prompt, ChatMessage("user", "more")], Argument) != key
    with pytest.raises(ValueError, match="not a cache key"):
        cache.get("../etc/passwd", Argument)


def test_read_group_takes_the_rest_body_or_the_config_alone(tmp_path: Path) -> None:
    body = tmp_path / "team.json"
    body.write_text(json.dumps({"name": "eth-team", "kind": "llm", "config": CONFIG}))
    alone = tmp_path / "alone.json"
    alone.write_text(json.dumps(CONFIG))

    assert read_group(body) == ("eth-team", parse_config(CONFIG))
    assert read_group(alone) == ("alone", parse_config(CONFIG))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"debate_rounds": 9}))
    with pytest.raises(ValueError, match="debate_rounds"):
        read_group(bad)
    algo = tmp_path / "algo.json"
    algo.write_text(json.dumps({"name": "x", "kind": "algo", "config": {}}))
    with pytest.raises(ValueError, match="kind 'algo'"):
        read_group(algo)


async def test_llm_backtest_default_team_on_two_markets_replays_from_the_cache(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    """Three analysts in parallel, the bull/bear and the risk debates, two markets on one
    account: the second run asks nothing and trades the same."""
    config = parse_config({"prices": PRICES, "risk_mode": "debate"})
    request = BacktestRequest.parse(
        {**TRIGGER, "data": [str(DATA), "data/LTC-BTC_5m.csv"], "risk": {"max_open_positions": 2}}
    )
    history = {s: c[:200] for s, c in request.load().items()}

    async def run() -> tuple[BacktestResult, LLMRunReport]:
        return await asyncio.to_thread(
            run_llm_backtest,
            request,
            config,
            name="two-markets",
            settings=settings(llm),
            cache=AnswerCache(tmp_path / "cache"),
            candles=history,
        )

    first, report = await run()
    asked = len(llm.requests)
    second, cached = await run()

    assert {d.symbol for d in report.discussions} == {"ETH/BTC", "LTC/BTC"}
    members = {c.member for c in report.calls}
    assert {"sentiment", "fundamentals", "bull", "bear", "aggressive", "neutral"} <= members
    assert asked == report.calls_made > 0
    assert len(llm.requests) == asked and cached.calls_made == 0
    assert sorted(c.key for c in cached.calls) == sorted(c.key for c in report.calls)
    assert second.to_json() == first.to_json()
    assert {t.symbol for t in first.trades} == {"ETH/BTC", "LTC/BTC"}


async def test_llm_backtest_zero_budget_asks_nothing_and_replays_only_the_cache(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    cold, nothing = await backtest(llm, tmp_path / "cold", budget_cost=Decimal(0))

    assert llm.requests == []
    assert nothing.calls_made == 0 and nothing.budget_reached_at_signal == 1
    assert nothing.signals > 0 and nothing.decided == 0 and not cold.trades

    first, _ = await backtest(llm, tmp_path / "warm")
    asked = len(llm.requests)
    replayed, report = await backtest(llm, tmp_path / "warm", budget_cost=Decimal(0))

    assert len(llm.requests) == asked
    assert report.calls_made == 0 and not report.budget_reached
    assert replayed.to_json() == first.to_json()


async def test_llm_backtest_token_budget_stops_the_calls_at_its_cap(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    _, unlimited = await backtest(llm, None)
    used = [c.tokens_in + c.tokens_out for c in unlimited.calls]
    k = len(used) // 3
    cap = sum(used[:k]) - 1  # reached by the k-th call, which still completes
    asked = len(llm.requests)
    request, history = candles()

    _, report = await asyncio.to_thread(
        run_llm_backtest,
        request,
        parse_config(CONFIG),
        name="eth-team",
        settings=settings(llm),
        cache=AnswerCache(tmp_path / "cache"),
        budget_tokens=cap,
        candles=history,
    )

    assert len(llm.requests) - asked == k == report.calls_made
    assert report.tokens_in + report.tokens_out == sum(used[:k])
    assert report.budget_reason is not None
    assert report.budget_reason.startswith("the run's token budget is reached")
    assert report.to_json()["budget"]["tokens"] == cap
    assert report.to_json()["budget"]["cost"] is None


async def test_llm_backtest_applies_the_groups_own_risk_limits(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    # The same `risk` key execution merges with the account's limits live: here a
    # kill switch, so the team's every BUY is refused by the risk engine.
    config = parse_config({**CONFIG, "risk": {"kill_switch": True}})
    assert config.risk is not None and config.risk.kill_switch

    result, report = await backtest(llm, tmp_path / "cache", config=config)

    assert report.decided > 0, "the team decided; the group's limits refused the orders"
    assert result.trades == []
    assert result.rejections.get("kill_switch", 0) > 0


# --------------------------------------------------------------------------- look-ahead


async def test_llm_lookahead_replays_every_cut_from_the_whole_runs_answers(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    request, history = candles()
    ((_, market),) = history.items()

    checked = await asyncio.to_thread(
        run_llm_lookahead,
        request,
        parse_config(CONFIG),
        name="eth-team",
        settings=settings(llm),
        cache=AnswerCache(tmp_path / "cache"),
        cuts=3,
        candles=market,
    )

    assert checked.clean and checked.misses == ()
    assert len(checked.report.cuts) == 3
    assert all(c.clean and c.compared > 0 for c in checked.report.cuts)
    assert checked.report.signals > 0
    # Only the whole run asked: the truncated ones found every prompt in the cache.
    assert checked.calls.calls_made == len(llm.requests) > 0


class PeekingCross(Strategy):
    """sma_cross whose signals say how high the price goes next: the same actions,
    an analysis written from candles after the one decided on."""

    name = "peeking_cross"
    future: Sequence[Candle] = ()

    def __init__(self) -> None:
        super().__init__()
        self.inner = create_strategy("sma_cross", {"fast": 10, "slow": 30})

    def indicators(self) -> Any:
        return self.inner.indicators()

    def history(self) -> int:
        return self.inner.history()

    def decide(self, ctx: Context) -> Decision:
        decision = self.inner.decide(ctx)
        times = [c.open_time for c in self.future]
        ahead = self.future[times.index(ctx.candle.open_time) + 1 :]
        high = max((c.high for c in ahead), default=None)
        return replace(decision, reasoning=f"{decision.reasoning}; the high ahead is {high}")


async def test_llm_lookahead_finds_a_brief_written_from_the_future(
    llm: FakeOpenAI, tmp_path: Path
) -> None:
    request, history = candles()
    ((_, market),) = history.items()
    config = parse_config(CONFIG)

    def remember(candles: Sequence[Candle]) -> None:
        PeekingCross.future = candles  # what a strategy "prepares" from the data it gets

    def build(budget: RunBudget | None, store: AnswerCache) -> LLMBacktest:
        return build_run(
            config,
            name="eth-team",
            settings=settings(llm),
            trigger=PeekingCross,
            trigger_name="peeking_cross",
            budget_cost=None if budget is None else budget.daily_cost,
            budget_tokens=None if budget is None else budget.daily_tokens,
            cache=store,
        )

    # Its decisions alone do not change when the future is cut off: the strategy
    # check cannot see the peek.
    alone = lookahead_check(PeekingCross, market, cuts=3, prepare=remember)
    assert alone.clean

    checked = await asyncio.to_thread(
        llm_lookahead,
        build,
        market,
        request.to_config(),
        cache=AnswerCache(tmp_path / "cache"),
        cuts=3,
        prepare=remember,
    )
    whole = len(llm.requests)

    assert not checked.clean and checked.misses
    assert checked.calls.calls_made == whole, "the truncated runs asked no model"
    cut_times = {c.cut: c.cut_time for c in checked.report.cuts}
    for miss in checked.misses:
        # The changed brief is on a candle both runs saw.
        assert miss.time is not None and miss.time <= cut_times[miss.cut] + timedelta(minutes=5)
    assert any(not c.clean for c in checked.report.cuts)
