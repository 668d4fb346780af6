"""The fake OpenAI server against the real `openai` client: what tests built on it rely on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.openai import (
    FakeOpenAI,
    json_reply,
    rate_limited,
    reply,
    server_error,
    slow,
    tool_reply,
)

KEY = "sk-fake-test"


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as server:
        yield server


def client(
    llm: FakeOpenAI, *, key: str = KEY, max_retries: int = 0, timeout: float = 5.0
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=llm.base_url, api_key=key, max_retries=max_retries, timeout=timeout
    )


USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What moved bitcoin today?"}]


async def test_fake_openai_completion_has_openai_shape(llm: FakeOpenAI) -> None:
    llm.script(reply("ETF inflows."))
    completion = await client(llm).chat.completions.create(model="m-1", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-") and completion.created > 0
    assert completion.model == "m-1"
    [choice] = completion.choices
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert (choice.message.role, choice.message.content) == ("assistant", "ETF inflows.")
    assert completion.usage is not None
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    [request] = llm.requests
    assert (request.model, request.api_key, request.status) == ("m-1", KEY, 200)
    assert request.contents("user") == ["What moved bitcoin today?"]


async def test_fake_openai_streams_chunks_and_usage(llm: FakeOpenAI) -> None:
    llm.script(reply("Bitcoin rose on ETF inflows."))
    stream = await client(llm).chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(parts) == "Bitcoin rose on ETF inflows."
    assert finish == "stop" and usage is not None and usage.completion_tokens == 5


async def test_fake_openai_tool_calls(llm: FakeOpenAI) -> None:
    llm.script(tool_reply("record_verdict", {"sentiment": 0.5}))
    completion = await client(llm).chat.completions.create(model="m", messages=USER)
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "record_verdict"  # type: ignore[union-attr]
    assert call.function.arguments == '{"sentiment": 0.5}'  # type: ignore[union-attr]


async def test_fake_openai_routes_by_content_then_queue_then_default(llm: FakeOpenAI) -> None:
    llm.script(reply("queued"))
    llm.when("ETH", reply("about eth"))
    llm.default = lambda request: reply(f"default for {len(request.messages)} message(s)")
    ask = client(llm).chat.completions.create
    eth = await ask(model="m", messages=[{"role": "user", "content": "and ETH?"}])
    first = await ask(model="m", messages=USER)
    later = await ask(model="m", messages=USER)
    assert [c.choices[0].message.content for c in (eth, first, later)] == [
        "about eth",
        "queued",
        "default for 1 message(s)",
    ]
    assert llm.pending == 0


async def test_fake_openai_errors_map_to_the_client_exceptions(llm: FakeOpenAI) -> None:
    ask = client(llm).chat.completions.create
    with pytest.raises(openai.BadRequestError, match="no scripted answer"):
        await ask(model="m", messages=USER)
    with pytest.raises(openai.BadRequestError):
        await ask(model="m", messages=[])
    with pytest.raises(openai.AuthenticationError):
        await client(llm, key="sk-wrong").chat.completions.create(model="m", messages=USER)
    llm.script(server_error(503))
    with pytest.raises(openai.InternalServerError):
        await ask(model="m", messages=USER)
    llm.script(rate_limited(retry_after=None))
    with pytest.raises(openai.RateLimitError):
        await ask(model="m", messages=USER)


async def test_fake_openai_429_is_retried_by_the_client_after_retry_after(
    llm: FakeOpenAI,
) -> None:
    llm.script(rate_limited(retry_after=0.05), json_reply({"ok": True}))
    completion = await client(llm, max_retries=1).chat.completions.create(
        model="m",
        messages=USER,
    )
    assert completion.choices[0].message.content == '{"ok": true}'
    assert [r.status for r in llm.requests] == [429, 200]


async def test_fake_openai_slow_answer_times_the_client_out(llm: FakeOpenAI) -> None:
    llm.script(slow(reply("late"), 5))
    with pytest.raises(openai.APITimeoutError):
        await client(llm, timeout=0.2).chat.completions.create(model="m", messages=USER)
    [request] = llm.requests
    assert request.status is None  # still held back when the client gave up
