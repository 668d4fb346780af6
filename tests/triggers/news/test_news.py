"""`ats trigger news` as a real process: feeds from a local web server and a file, the
model a local OpenAI-compatible server reached through the real LangChain client, the
signals through a real gateway to a subscribed group."""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.events import TRIGGER_HEARTBEAT
from tests.conftest import eventually
from tests.fakes.openai import FakeOpenAI, json_reply, rate_limited, reply, slow
from tests.triggers.news.conftest import ATS, LLM_KEY, MODEL, ROOT, NewsSetup, wait_exit
from tests.triggers.news.newsfeeds import (
    FeedServer,
    Item,
    atom,
    json_feed,
    json_list,
    rss,
    verdict,
)
from triggers.news.feeds import article_id
from triggers.news.runner import signal_id


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 1, 6, hour, minute, tzinfo=UTC)


ETF = Item(
    "wire-1001",
    "Spot bitcoin ETFs log record weekly inflows",
    "<p>US spot <b>bitcoin</b> ETFs took in $2.1bn last week, the most since launch.</p>",
    "http://news.test/wire/1001",
    at(9),
)
EXPLOIT = Item(
    "wire-1002",
    "Exchange halts ether withdrawals after hot-wallet exploit",
    "<p>Withdrawals of ETH are paused while the exchange investigates a $40m exploit.</p>",
    "http://news.test/wire/1002",
    at(9, 30),
)
RATES = Item(
    "urn:desk:2001",
    "Central bank hints at earlier rate cuts",
    "<p>Policy makers see inflation easing faster than they expected in December.</p>",
    "http://news.test/desk/2001",
    at(8),
)
OUTAGE = Item(
    "json-3001",
    "Solana validators restore block production after outage",
    "<p>The network was down for five hours before validators agreed on a restart.</p>",
    "http://news.test/json/3001",
    at(10, 15),
)
SETTLEMENT = Item(
    "file-4001",
    "Court approves settlement in XRP securities case",
    "<p>The settlement ends a four-year dispute over the token's status.</p>",
    "http://news.test/file/4001",
    at(11),
)
LISTING = Item(
    "wire-1003",
    "Major exchange lists first tokenized treasury fund",
    "<p>The fund settles on chain and is open to retail buyers.</p>",
    "http://news.test/wire/1003",
    at(12),
)

VERDICTS = {
    ETF.guid: verdict("BTC/USDT", sentiment=0.7, strength=0.8, urgency="medium"),
    EXPLOIT.guid: verdict(
        "ETH/USDT", direction="short", sentiment=-0.8, strength=0.9, urgency="high"
    ),
    RATES.guid: verdict("BTC/USDT", "ETH/USDT", sentiment=0.4, strength=0.5, urgency="low"),
    OUTAGE.guid: verdict("SOL/USDT", sentiment=0.3, strength=0.4),
    SETTLEMENT.guid: verdict("XRP/USDT", sentiment=0.9, strength=0.85, urgency="high"),
    LISTING.guid: verdict(direction="neutral", sentiment=0.1, strength=0.2, urgency="low"),
}
PRIORITY = {"low": 3, "medium": 5, "high": 8}


def answer(llm: FakeOpenAI, *items: Item) -> None:
    """Script the model's verdict for each article, found by its title."""
    for item in items:
        llm.when(item.title, json_reply(VERDICTS[item.guid]))


def titles(events: list[dict[str, object]]) -> list[object]:
    return [e["payload"]["title"] for e in events]  # type: ignore[index]


async def test_news_articles_of_every_feed_format_become_signals_with_their_verdicts(
    news: NewsSetup, feeds: FeedServer, tmp_path: Path
) -> None:
    local = tmp_path / "local-news.json"
    local.write_text(json_list([SETTLEMENT]))
    args = [
        "--feed", feeds.set("wire.rss", rss([ETF, EXPLOIT]), "rss"),
        "--feed", feeds.set("desk.atom", atom([RATES]), "atom"),
        "--feed", feeds.set("feed.json", json_feed([OUTAGE]), "json"),
        "--feed", str(local),
        "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT,XRP/USDT",
    ]  # fmt: skip
    items = [RATES, ETF, EXPLOIT, OUTAGE, SETTLEMENT]  # oldest first
    answer(news.llm, *items)

    await news.run(*args)

    await news.marker()
    got = news.signals()
    assert titles(got) == [i.title for i in items]
    for event, item in zip(got, items, strict=True):
        want = VERDICTS[item.guid]
        payload = event["payload"]
        assert payload["affected_symbols"] == want["affected_symbols"]
        assert payload["symbol"] == want["affected_symbols"][0]
        for key in ("direction", "sentiment", "strength", "urgency", "analysis"):
            assert payload[key] == want[key], key
        assert payload["link"] == item.link
        assert datetime.fromisoformat(payload["published"]) == item.published
        assert payload["article_id"] == article_id(item.guid)
        assert payload["model"] == MODEL
        assert event["source"] == "trigger:news1"
        assert event["priority"] == PRIORITY[want["urgency"]]
        assert datetime.fromisoformat(event["ts"]) == item.published
        assert event["trace"]["causation_id"] == article_id(item.guid)
        assert event["trace"]["correlation_id"] == event["id"]
        assert event["id"] == str(signal_id("news1", article_id(item.guid)))

    # One request per article, through LangChain's JSON mode, with the key from the env.
    assert len(news.llm.requests) == len(items)
    for item in items:
        [request] = news.llm.requests_containing(item.title)
        assert request.model == MODEL
        assert request.api_key == LLM_KEY
        assert request.response_format == {"type": "json_object"}
        system, user = request.messages
        assert (system["role"], user["role"]) == ("system", "user")
        assert "SOL/USDT" in system["content"]
        assert '"affected_symbols"' in system["content"]  # the schema is in the prompt
        assert item.link in user["content"]
        text = item.html.removeprefix("<p>").removesuffix("</p>").replace("<b>", "")
        assert text.replace("</b>", "") in user["content"]

    # The model's key appears nowhere: not in the process's output, not in the logs it sent.
    assert LLM_KEY not in news.output()
    async with news.gateway.api() as api:
        logs = (await api.get("/api/v1/logs", params={"limit": 1000})).json()["items"]
    assert logs and LLM_KEY not in json.dumps(logs)
    beats = await news.logs(TRIGGER_HEARTBEAT)
    final = [b["data"] for b in beats if b["data"]["final"]]
    assert final and final[-1]["signals"] == len(items) and final[-1]["trigger"] == "news"


async def test_news_rerun_with_the_same_state_analyses_and_publishes_only_new_articles(
    news: NewsSetup, feeds: FeedServer
) -> None:
    url = feeds.set("wire.rss", rss([ETF, EXPLOIT]), "rss")
    answer(news.llm, ETF, EXPLOIT)
    await news.run("--feed", url)
    await news.marker()
    assert titles(news.signals()) == [ETF.title, EXPLOIT.title]
    asked = len(news.llm.requests)

    await news.run("--feed", url)  # the default state file, in ATS_DATA_DIR

    assert len(news.llm.requests) == asked, "nothing is asked about twice"
    await news.marker()
    assert titles(news.signals()) == [ETF.title, EXPLOIT.title]
    assert (news.data_dir / "news" / "news1.seen").is_file()

    feeds.set("wire.rss", rss([ETF, EXPLOIT, LISTING]), "rss")
    answer(news.llm, LISTING)
    await news.run("--feed", url)

    [asked_now] = news.llm.requests[asked:]
    assert LISTING.title in asked_now.text
    await news.marker()
    assert titles(news.signals()) == [ETF.title, EXPLOIT.title, LISTING.title]
    assert news.signals()[-1]["payload"]["symbol"] is None  # the model named no asset


async def test_news_published_again_after_losing_its_state_is_a_duplicate(
    news: NewsSetup, feeds: FeedServer, tmp_path: Path
) -> None:
    # What a crash between the gateway's ack and saving the state leaves behind.
    state = tmp_path / "news.seen"
    url = feeds.set("wire.rss", rss([ETF, EXPLOIT]), "rss")
    answer(news.llm, ETF, EXPLOIT)
    await news.run("--feed", url, "--state", str(state))
    state.unlink()
    answer(news.llm, ETF, EXPLOIT)

    await news.run("--feed", url, "--state", str(state))

    await news.marker()
    assert titles(news.signals()) == [ETF.title, EXPLOIT.title]
    final = [b["data"] for b in await news.logs(TRIGGER_HEARTBEAT) if b["data"]["final"]]
    assert (final[-1]["signals"], final[-1]["duplicates"]) == (0, 2)


async def test_news_malformed_answers_are_retried_then_the_article_is_dropped_with_a_log(
    news: NewsSetup, feeds: FeedServer, tmp_path: Path
) -> None:
    url = feeds.set("wire.rss", rss([ETF, EXPLOIT, LISTING]), "rss")
    state = tmp_path / "news.seen"
    news.llm.when(
        ETF.title,
        reply("The inflows look bullish for bitcoin."),  # prose, not JSON
        json_reply({**VERDICTS[ETF.guid], "sentiment": 5}),  # out of range
        json_reply({"sentiment": 0.5, "direction": "long"}),  # fields missing
    )
    news.llm.when(
        EXPLOIT.title,
        reply('{"sentiment": -0.8, "affected_symbols": ["ETH/US'),  # cut off
        json_reply(VERDICTS[EXPLOIT.guid]),
    )
    answer(news.llm, LISTING)

    await news.run("--feed", url, "--state", str(state))

    await news.marker()
    assert titles(news.signals()) == [EXPLOIT.title, LISTING.title]
    [dropped] = await news.logs("NEWS_ANALYSIS_FAILED")
    assert dropped["level"] == "warning"
    assert dropped["data"]["article_id"] == article_id(ETF.guid)
    assert dropped["data"]["attempts"] == 3
    assert dropped["trace"]["causation_id"] == article_id(ETF.guid)

    # Each retry shows the model its last reply and what was wrong with it.
    first, second, third = news.llm.requests_containing(ETF.title)
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "user"]
    assert second.messages[2]["content"] == "The inflows look bullish for bitcoin."
    assert [m["role"] for m in third.messages][-2:] == ["assistant", "user"]
    assert "sentiment" in third.messages[-1]["content"]
    assert len(news.llm.requests_containing(EXPLOIT.title)) == 2

    # A dropped article counts as handled: the next run does not ask about it again.
    asked = len(news.llm.requests)
    await news.run("--feed", url, "--state", str(state))
    assert len(news.llm.requests) == asked


async def test_news_rate_limited_model_call_is_retried_and_succeeds(
    news: NewsSetup, feeds: FeedServer
) -> None:
    url = feeds.set("wire.rss", rss([ETF]), "rss")
    news.llm.when(ETF.title, rate_limited(retry_after=0.05), json_reply(VERDICTS[ETF.guid]))

    await news.run("--feed", url)

    assert [r.status for r in news.llm.requests] == [429, 200]
    await news.marker()
    assert titles(news.signals()) == [ETF.title]
    assert await news.logs("NEWS_LLM_FAILED") == []


async def test_news_model_timeout_and_feed_error_are_logged_and_retried_at_the_next_poll(
    news: NewsSetup, feeds: FeedServer
) -> None:
    rss_url = feeds.set("wire.rss", rss([ETF]), "rss")
    json_url = feeds.set("feed.json", json_feed([OUTAGE]), "json")
    feeds.faults["feed.json"].append(503)
    news.llm.when(
        ETF.title, slow(json_reply(VERDICTS[ETF.guid]), 10), json_reply(VERDICTS[ETF.guid])
    )
    answer(news.llm, OUTAGE)
    proc = news.start(
        "--feed", rss_url,
        "--feed", json_url,
        "--interval", "0.3",
        "--llm-timeout", "0.5",
        "--llm-retries", "0",
        "--heartbeat", "0.5",
    )  # fmt: skip
    try:
        await eventually(lambda: len(news.signals()) == 2, timeout=30)
        assert titles(news.signals()) == [ETF.title, OUTAGE.title]
        [timeout] = await news.logs("NEWS_LLM_FAILED")
        assert timeout["level"] == "warning"
        assert timeout["data"]["article_id"] == article_id(ETF.guid)
        assert timeout["data"]["retryable"] is True
        [feed_error] = await news.logs("NEWS_FEED_FAILED")
        assert feed_error["data"]["feed"] == json_url
        # The feed had not changed (304): the article came back from the last answer.
        assert feeds.requested("wire.rss")[1] is not None
        assert len(news.llm.requests_containing(ETF.title)) == 2
    finally:
        proc.send_signal(signals.SIGTERM)
        assert await wait_exit(proc) == 0, news.output()
    final = [b["data"] for b in await news.logs(TRIGGER_HEARTBEAT) if b["data"]["final"]]
    assert final and final[-1]["llm_failures"] == 1 and final[-1]["feed_failures"] == 1


@pytest.mark.parametrize(
    ("missing", "env"),
    [
        ("ATS_LLM_BASE_URL", {}),
        ("ATS_LLM_MODEL", {"ATS_LLM_BASE_URL": "http://127.0.0.1:9/v1"}),
    ],
)
def test_news_without_a_model_endpoint_exits_2_saying_what_to_set(
    tmp_path: Path, missing: str, env: dict[str, str]
) -> None:
    local = tmp_path / "news.json"
    local.write_text(json_list([ETF]))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATS_LLM_")}
    result = subprocess.run(
        [ATS, "trigger", "news", "--feed", str(local), "--once"],
        env={**clean, "ATS_TRIGGER_TOKEN": "ats_trigger_unused", **env},
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert missing in result.stderr.decode()
