"""`StructuredModel` through the real LangChain client against the fake OpenAI server:
answers, usage, invalid output, and the attempts the client retried."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import BaseModel, Field, SecretStr

from shared.llm.client import (
    ChatMessage,
    ModelSpec,
    StructuredModel,
    format_instructions,
    make_http_client,
    prompt_hash,
)
from tests.fakes.openai import FakeOpenAI, json_reply, rate_limited, reply, server_error, slow

KEY = "sk-test-client-0123456789"


class Vote(BaseModel):
    side: str = Field(pattern="^(up|down)$")
    confidence: float = Field(ge=0, le=1)


PROMPT = [ChatMessage("system", "Answer as JSON. " + format_instructions(Vote)),
          ChatMessage("user", "BTC next hour?")]  # fmt: skip


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client()
    try:
        yield client
    finally:
        await client.aclose()


def model(
    llm: FakeOpenAI,
    http: httpx.AsyncClient,
    *,
    key: str = KEY,
    timeout: float = 5,
    retries: int = 2,
) -> StructuredModel:
    spec = ModelSpec(
        base_url=llm.base_url,
        model="fake-cheap",
        api_key=SecretStr(key),
        timeout=timeout,
        max_retries=retries,
        max_tokens=300,
    )
    return StructuredModel(spec, http_client=http)


def fake_usage(messages: list[ChatMessage], answer: str) -> tuple[int, int]:
    """The fake's usage: words plus 3 per message in, words out."""
    return sum(len(m.content.split()) for m in messages) + 3 * len(messages), len(answer.split())


async def test_structured_model_answer_parsed_with_the_endpoints_usage(
    llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    answer = json.dumps({"side": "up", "confidence": 0.7})
    llm.script(reply(answer))
    got = await model(llm, http).ask(PROMPT, Vote)
    assert got.status == "ok" and got.parsed == Vote(side="up", confidence=0.7)
    assert got.text == answer
    assert (got.tokens_in, got.tokens_out) == fake_usage(PROMPT, answer)
    assert got.retried == ()
    (request,) = llm.requests
    assert request.model == "fake-cheap"
    assert request.response_format == {"type": "json_object"}
    assert request.body.get("max_completion_tokens") == 300
    assert [{"role": m["role"], "content": m["content"]} for m in request.messages] == [
        m.to_json() for m in PROMPT
    ]


async def test_structured_model_invalid_answer_says_why_and_counts_tokens(
    llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    llm.script(json_reply({"side": "sideways", "confidence": 2}), reply("no idea, sorry"))
    first = await model(llm, http).ask(PROMPT, Vote)
    assert first.status == "invalid" and first.parsed is None
    assert "side" in (first.error or "") and "confidence" in (first.error or "")
    assert first.tokens_out > 0
    second = await model(llm, http).ask(PROMPT, Vote)
    assert second.status == "invalid"
    assert second.text == "no idea, sorry"


async def test_structured_model_429_and_timeout_are_retried_and_reported(
    llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    ok = json_reply({"side": "down", "confidence": 0.4})
    llm.script(rate_limited(retry_after=0.01), ok, slow(ok, 10), ok)
    after_429 = await model(llm, http).ask(PROMPT, Vote)
    assert after_429.status == "ok"
    assert [a.error for a in after_429.retried] == ["HTTP 429 Too Many Requests"]
    after_timeout = await model(llm, http, timeout=0.3).ask(PROMPT, Vote)
    assert after_timeout.status == "ok"
    (timed_out,) = after_timeout.retried
    assert timed_out.error == "timed out (ReadTimeout)" and timed_out.latency_ms >= 300
    assert after_timeout.latency_ms >= 300
    assert len(llm.requests) == 4


async def test_structured_model_failures_are_answers_not_exceptions(
    llm: FakeOpenAI, http: httpx.AsyncClient
) -> None:
    llm.script(server_error(503), server_error(503))
    failed = await model(llm, http, retries=1).ask(PROMPT, Vote)
    assert failed.status == "error" and failed.retryable
    assert "503" in (failed.error or "")
    assert [a.error for a in failed.retried] == ["HTTP 503 Service Unavailable"]
    refused = await model(llm, http, key="sk-wrong-key-0000000000").ask(PROMPT, Vote)
    assert refused.status == "error" and not refused.retryable
    assert "refused the API key" in (refused.error or "")
    assert "sk-wrong" not in (refused.error or "")


def test_prompt_hash_is_sha256_of_the_canonical_model_and_messages() -> None:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Prix de l'éther ?")]
    canonical = (
        '{"messages":[{"content":"Be brief.","role":"system"},'
        '{"content":"Prix de l\'éther ?","role":"user"}],"model":"m"}'
    )
    assert prompt_hash("m", messages) == hashlib.sha256(canonical.encode()).hexdigest()
    assert prompt_hash("m", messages) != prompt_hash("n", messages)
    assert prompt_hash("m", messages[:1]) != prompt_hash("m", messages)
