"""The analyst through the real LangChain client against the fake OpenAI server: how
answers are read and how each kind of endpoint failure is classified."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import SecretStr

from tests.fakes.openai import (
    ErrorReply,
    FakeOpenAI,
    bad_request,
    json_reply,
    server_error,
)
from tests.triggers.news.conftest import LLM_KEY, MODEL
from tests.triggers.news.newsfeeds import verdict
from triggers.news.analyst import (
    AnalysisFailed,
    Analyst,
    LLMUnavailable,
    Urgency,
    Verdict,
    build_chat_model,
)
from triggers.news.feeds import Article

ARTICLE = Article(
    id="a" * 32,
    title="Spot bitcoin ETFs log record weekly inflows",
    link="http://news.test/1",
    published=datetime(2025, 1, 6, 9, tzinfo=UTC),
    text="word " * 5_000,
    feed="Test Wire",
)


def analyst(llm: FakeOpenAI, *, key: str = LLM_KEY, retries: int = 0) -> Analyst:
    chat = build_chat_model(
        base_url=llm.base_url,
        model=MODEL,
        api_key=SecretStr(key),
        timeout=5,
        max_retries=retries,
    )
    return Analyst(chat, parse_retries=1, max_chars=1_000)


async def failure(
    llm: FakeOpenAI, answer: ErrorReply | None, *, key: str = LLM_KEY
) -> LLMUnavailable:
    if answer is not None:
        llm.script(answer)
    try:
        await analyst(llm, key=key).analyze(ARTICLE)
    except LLMUnavailable as e:
        return e
    raise AssertionError("expected LLMUnavailable")


async def test_analyst_normalizes_case_and_repeated_symbols(llm: FakeOpenAI) -> None:
    answer = verdict(" btc/usdt", "BTC/USDT", "eth/usdt", urgency="HIGH", direction="Short")
    llm.script(json_reply({**answer, "confidence": 0.9}))  # an extra field is ignored
    result = await analyst(llm).analyze(ARTICLE)
    assert isinstance(result, Verdict)
    assert result.affected_symbols == ["BTC/USDT", "ETH/USDT"]
    assert result.urgency is Urgency.HIGH and result.direction.value == "short"


async def test_analyst_cuts_long_articles_in_the_prompt(llm: FakeOpenAI) -> None:
    llm.script(json_reply(verdict("BTC/USDT")))
    await analyst(llm).analyze(ARTICLE)
    [request] = llm.requests
    user = request.contents("user")[0]
    assert ARTICLE.title in user and user.endswith("[...]")
    assert len(user) < 1_500


async def test_analyst_context_overflow_drops_the_article(llm: FakeOpenAI) -> None:
    llm.script(
        bad_request(
            "This model's maximum context length is 8192 tokens.",
            code="context_length_exceeded",
            param="messages",
        )
    )
    result = await analyst(llm).analyze(ARTICLE)
    assert isinstance(result, AnalysisFailed)


async def test_analyst_endpoint_failures_are_classified(llm: FakeOpenAI) -> None:
    wrong_key = await failure(llm, None, key="sk-wrong")
    assert not wrong_key.retryable and not wrong_key.article_specific
    assert "ATS_LLM_API_KEY" in wrong_key.reason and "sk-wrong" not in wrong_key.reason

    refused = await failure(llm, bad_request("Invalid 'messages[1].content'."))
    assert refused.article_specific and not refused.retryable

    unknown = await failure(
        llm, ErrorReply(404, "The model `fake` does not exist", code="model_not_found")
    )
    assert not unknown.retryable and "ATS_LLM_MODEL" in unknown.reason

    down = await failure(llm, server_error(503))
    assert down.retryable and not down.article_specific
