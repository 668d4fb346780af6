"""Fixtures for the LLM group: a fake OpenAI-compatible model that answers as each
member of the team (found by its system prompt), a real gateway with a trigger, the
group (kind `llm`) and an execution service, and the group as a real `ats group llm`
process."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.db.engine import create_engine
from shared.db.models import DiscussionRow, LlmCallRow
from shared.llm.client import ChatMessage, prompt_hash
from shared.llm.store import FINISHED, LlmStore
from tests.conftest import TIMEOUT_FACTOR, Gateway, Spawn, eventually
from tests.fakes.openai import Answer, ChatRequest, ErrorReply, FakeOpenAI, Reply, json_reply
from tests.gateway.ws.wsclient import RawClient
from trading_groups.llm.config import Role
from trading_groups.llm.prompts import REFLECTION_PROMPT, ROLE_PROMPTS

LLM_KEY = "sk-test-llm-group-0123456789"
CHEAP, STRONG = "fake-cheap", "fake-strong"
PRICES = {CHEAP: {"input": "1.5", "output": "2"}, STRONG: {"input": "10", "output": "30"}}
GROUP = "llm-team"
SYMBOL = "ETH/BTC"
FEED = "csv:data/ETH-BTC_5m.csv"
#: A candle of the shipped ETH/BTC data with 13 before it; `candle(k)` is k candles on.
FIRST = datetime(2018, 1, 10, 6, tzinfo=UTC)

#: How each member's request is recognised: the start of its role's system prompt.
MARKERS = {role.value: text.split(" of {group}")[0] for role, text in ROLE_PROMPTS.items()}
MARKERS["reflection"] = REFLECTION_PROMPT.split(" of {group}")[0]


def candle(k: int = 0) -> datetime:
    return FIRST + timedelta(minutes=5 * k)


def analysis(role: str) -> dict[str, Any]:
    return {
        "stance": "bullish",
        "confidence": 0.7,
        "summary": f"The {role} view is constructive for ETH/BTC.",
        "key_points": ["momentum turning up", "volume rising"],
    }


def argument(side: str) -> dict[str, Any]:
    return {"argument": f"The {side} case: the evidence says so.", "confidence": 0.6}


DEFAULTS: dict[str, dict[str, Any]] = {
    Role.TECHNICAL.value: analysis("technical"),
    Role.SENTIMENT.value: analysis("sentiment"),
    Role.FUNDAMENTALS.value: analysis("fundamentals"),
    Role.BULL.value: argument("bull"),
    Role.BEAR.value: argument("bear"),
    Role.TRADER.value: {
        "action": "BUY",
        "confidence": 0.7,
        "reasoning": "Momentum and sentiment agree; a tight stop limits the risk.",
        "stop_loss": 0.097,
        "take_profit": 0.105,
    },
    Role.AGGRESSIVE.value: argument("aggressive"),
    Role.CONSERVATIVE.value: argument("conservative"),
    Role.NEUTRAL.value: argument("neutral"),
    Role.RISK_MANAGER.value: {"verdict": "approve", "reasoning": "Stop below entry; size usual."},
    Role.LEADER.value: {"action": "BUY", "confidence": 0.65, "reasoning": "The team agrees."},
    "reflection": {"lesson": "LESSON-ETH-1: momentum entries need rising volume."},
}


class Team:
    """The fake model's answers, by the member asking: scripted ones first (per role),
    then each role's default answer."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Answer]] = {role: deque() for role in MARKERS}

    def script(self, role: str, *answers: Answer) -> None:
        self.queues[role].extend(answers)

    @staticmethod
    def role_of(request: ChatRequest) -> str:
        system = next(iter(request.contents("system")), "")
        for role, marker in MARKERS.items():
            if system.startswith(marker):
                return role
        raise AssertionError(f"no member asks with this system prompt: {system[:80]!r}")

    def __call__(self, request: ChatRequest) -> Reply | ErrorReply:
        role = self.role_of(request)
        queue = self.queues[role]
        answer = queue.popleft() if queue else json_reply(DEFAULTS[role])
        return answer(request) if callable(answer) else answer


def fake_usage(request: ChatRequest, answer: str) -> tuple[int, int]:
    """The usage the fake reports: words plus 3 per message in, words out."""
    prompt = sum(len(t.split()) for t in request.contents()) + 3 * len(request.messages)
    return prompt, len(answer.split())


def request_hash(request: ChatRequest) -> str:
    messages = [ChatMessage(m["role"], m["content"]) for m in request.messages]
    return prompt_hash(request.model or "", messages)


@dataclass
class LLMSetup:
    """A gateway with a trigger `sig`, the LLM group `llm-team` subscribed to it and
    bound to a paper account, an execution service watching its decisions, and the
    fake model."""

    gateway: Gateway
    llm: FakeOpenAI
    team: Team
    token: str
    trigger: RawClient
    execution: RawClient
    store: LlmStore
    spawn: Spawn
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """`ats group llm` against the gateway, the fake model and the gateway's database."""
        proc = self.spawn(
            ["group", "llm", "--gateway-url", self.gateway.ws_url],
            {
                "ATS_TRADING_GROUP_TOKEN": self.token,
                "ATS_LLM_BASE_URL": self.llm.base_url,
                "ATS_LLM_MODEL": CHEAP,
                "ATS_LLM_STRONG_MODEL": STRONG,
                "ATS_LLM_API_KEY": LLM_KEY,
                **self.gateway.database.env(),
                **env,
            },
            self.log,
        )
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    async def signal(self, k: int = 0, *, correlation: str | None = None) -> dict[str, Any]:
        """Publish a signal on candle `k` as the trigger; return the stored event."""
        ack = await self.trigger.request(
            {
                "kind": "event",
                "category": "signal",
                "title": "RSI crossed up from oversold",
                "trace": {"correlation_id": correlation or f"corr-{k}"},
                "payload": {
                    "symbol": SYMBOL,
                    "timeframe": "5m",
                    "candle_time": candle(k).isoformat().replace("+00:00", "Z"),
                    "direction": "long",
                    "strength": 0.7,
                    "rsi": 28.4,
                    "analysis": "RSI(14) crossed above 30.",
                },
            }
        )
        assert ack["ok"], ack
        async with self.gateway.api() as api:
            r = await api.get("/api/v1/events", params={"category": "signal", "limit": 1000})
        events: list[dict[str, Any]] = r.json()["items"]
        (event,) = [e for e in events if e["id"] == ack["id"]]
        return event

    async def order(self, payload: dict[str, Any], trace: dict[str, str]) -> None:
        """Publish an `order` event about the group's trade, as execution would."""
        ack = await self.execution.request(
            {
                "kind": "event",
                "category": "order",
                "trace": trace,
                "payload": {"trading_group": GROUP, "symbol": SYMBOL, **payload},
            }
        )
        assert ack["ok"], ack

    async def finished(self, signal_id: str, timeout: float = 30) -> DiscussionRow:
        """The group's discussion of the signal, once it is over."""

        async def done() -> DiscussionRow | None:
            row = await self.store.discussion_of_signal(GROUP, signal_id)
            return row if row is not None and row.status in FINISHED else None

        row: DiscussionRow = await eventually(
            done, timeout=timeout, message=f"the discussion of {signal_id} ({self.log})"
        )
        return row

    async def logs(self, code: str) -> list[dict[str, Any]]:
        async with self.gateway.api() as api:
            r = await api.get(
                "/api/v1/logs",
                params={"code": code, "source": f"trading_group:{GROUP}", "limit": 1000},
            )
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    async def calls(self, discussion_id: str) -> list[LlmCallRow]:
        return await self.store.calls(discussion_id=discussion_id)

    async def seed_usage(self, tokens: int, cost: str = "0") -> None:
        """A call of the group earlier today that used `tokens` and cost `cost`."""
        await self.store.record_call(
            group=GROUP, member="earlier", model=CHEAP, prompt_hash="0" * 64, messages=[],
            answer="{}", status="ok", error=None, tokens_in=tokens, tokens_out=0,
            cost=Decimal(cost), latency_ms=1.0, created_at=datetime.now(UTC),
        )  # fmt: skip

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                await asyncio.wait_for(asyncio.to_thread(proc.wait), 30 * TIMEOUT_FACTOR)


MakeSetup = Callable[..., Awaitable[LLMSetup]]


@pytest.fixture
async def llm_group(gateway: Gateway, tmp_path: Path, spawn: Spawn) -> AsyncIterator[MakeSetup]:
    """`await llm_group(**config)`: provision with the group's config over the test's
    defaults (the shipped ETH/BTC feed, the fake models' prices)."""
    made: list[LLMSetup] = []
    engine = create_engine(gateway.database.url)
    clients: list[RawClient] = []

    async def make(**config: Any) -> LLMSetup:
        team = Team()
        llm = FakeOpenAI(api_key=LLM_KEY, default=team)
        await llm.start()
        trigger_token = await gateway.add_trigger("sig")
        async with gateway.api() as api:
            r = await api.post(
                "/api/v1/trading-groups",
                json={
                    "name": GROUP,
                    "kind": "llm",
                    "triggers": ["sig"],
                    "config": {"feeds": {SYMBOL: FEED}, "prices": PRICES, **config},
                },
            )
            assert r.status_code == 201, r.text
            token = r.json()["token"]
        await gateway.add_account("paper-1", [GROUP])
        exec_token = await gateway.add_execution("exec-1", ["paper-1"])
        trigger = await RawClient.connect(
            gateway.ws_url, param="trigger_token", token=trigger_token
        )
        execution = await RawClient.connect(
            gateway.ws_url, param="execution_token", token=exec_token
        )
        clients.extend([trigger, execution])
        setup = LLMSetup(
            gateway=gateway, llm=llm, team=team, token=token, trigger=trigger,
            execution=execution, store=LlmStore(engine), spawn=spawn, log=tmp_path / "group.log",
        )  # fmt: skip
        made.append(setup)
        return setup

    try:
        yield make
    finally:
        for setup in made:
            await setup.stop()
            await setup.llm.stop()
        for client in clients:
            await client.close()
        await engine.dispose()


def decisions(setup: LLMSetup) -> list[dict[str, Any]]:
    return [e for e in setup.execution.events if e["category"] == "decision"]


def answer_text(role: str) -> str:
    return json.dumps(DEFAULTS[role])
