"""Feed parsing and fetching: every format yields the same articles with the same ids."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.triggers.news.newsfeeds import FeedServer, Item, atom, json_feed, json_list, rss
from triggers.news.feeds import (
    FeedError,
    FeedReader,
    article_id,
    html_to_text,
    parse_feed,
    parse_feed_spec,
    parse_time,
)

ITEMS = [
    Item(
        "wire-1001",
        "Spot bitcoin ETFs log record weekly inflows",
        "<p>US spot <b>bitcoin</b> ETFs took in $2.1bn &amp; more.</p><script>x()</script>",
        "http://news.test/wire/1001",
        datetime(2025, 1, 6, 9, tzinfo=UTC),
    ),
    Item(
        "wire-1002",
        "Exchange halts ether withdrawals",
        "Withdrawals of ETH are paused.",
        "http://news.test/wire/1002",
        datetime(2025, 1, 6, 9, 30, tzinfo=UTC),
    ),
]


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("render", [rss, atom, json_feed, json_list])
def test_parse_feed_every_format_yields_the_same_articles(render: Callable[..., str]) -> None:
    articles = parse_feed(render(ITEMS).encode(), source="test")
    assert [a.id for a in articles] == [article_id(i.guid) for i in ITEMS]
    assert [a.title for a in articles] == [i.title for i in ITEMS]
    assert [a.link for a in articles] == [i.link for i in ITEMS]
    assert [a.published for a in articles] == [i.published for i in ITEMS]
    assert articles[0].text == "US spot bitcoin ETFs took in $2.1bn & more."
    assert articles[1].text == "Withdrawals of ETH are paused."


def test_parse_feed_news_api_shape_uses_the_link_as_id_and_the_source_name() -> None:
    doc = {
        "status": "ok",
        "articles": [
            {
                "source": {"id": None, "name": "Reuters"},
                "title": "Oil jumps",
                "description": "Brent rose 3%.",
                "url": "https://example.test/oil",
                "publishedAt": "2025-01-06T10:00:00Z",
            }
        ],
    }
    [article] = parse_feed(json.dumps(doc).encode(), source="api")
    assert article.id == article_id("https://example.test/oil")
    assert article.feed == "Reuters"
    assert article.published == datetime(2025, 1, 6, 10, tzinfo=UTC)


def test_parse_feed_item_without_guid_or_link_is_identified_by_title_and_time() -> None:
    doc = [{"title": "Gold hits a high", "date": "2025-01-06T10:00:00"}, {"body": "no title"}]
    [first] = parse_feed(json.dumps(doc).encode(), source="t")
    [again] = parse_feed(json.dumps(doc).encode(), source="t")
    assert first.id == again.id
    assert first.published == datetime(2025, 1, 6, 10, tzinfo=UTC)  # no zone: UTC


@pytest.mark.parametrize(
    "document",
    [
        b"<html><body><h1>Welcome</h1></body></html>",
        b'{"status": "error", "message": "apiKey missing"}',
        b"[1, 2",
        b"",
    ],
)
def test_parse_feed_not_a_feed_raises_feed_error(document: bytes) -> None:
    with pytest.raises(FeedError):
        parse_feed(document, source="t")


def test_parse_feed_empty_rss_has_no_articles() -> None:
    assert parse_feed(rss([]).encode(), source="t") == []


def test_parse_time_reads_iso_and_rfc_2822() -> None:
    want = datetime(2025, 1, 6, 9, tzinfo=UTC)
    assert parse_time("2025-01-06T10:00:00+01:00") == want
    assert parse_time("Mon, 06 Jan 2025 09:00:00 GMT") == want
    assert parse_time("yesterday") is None


def test_html_to_text_keeps_paragraphs_and_drops_scripts() -> None:
    html = "<div><p>One &lt;two&gt;</p><style>p{}</style><p>Three<br>four</p></div>"
    assert html_to_text(html) == "One <two>\n\nThree\nfour"


def test_parse_feed_spec_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    local = tmp_path / "feed.xml"
    local.write_text(rss(ITEMS))
    assert parse_feed_spec("https://news.test/rss").url == "https://news.test/rss"
    assert parse_feed_spec(str(local)).path == local
    assert parse_feed_spec(local.as_uri()).path == local
    with pytest.raises(ValueError, match="no such file"):
        parse_feed_spec(str(tmp_path / "missing.xml"))
    with pytest.raises(ValueError, match="unsupported scheme"):
        parse_feed_spec("ftp://news.test/feed.xml")


async def test_feed_reader_http_errors_raise_and_not_modified_serves_the_last_answer(
    feeds: FeedServer,
) -> None:
    url = feeds.set("wire.rss", rss(ITEMS), "rss")
    source = parse_feed_spec(url)
    reader = FeedReader(timeout=5)
    try:
        first = await reader.read(source)
        again = await reader.read(source)
        feeds.faults["wire.rss"].append(503)
        with pytest.raises(FeedError, match="503"):
            await reader.read(source)
        with pytest.raises(FeedError, match="404"):
            await reader.read(parse_feed_spec(feeds.url("missing.rss")))
    finally:
        await reader.aclose()
    assert [a.id for a in again] == [a.id for a in first]
    assert feeds.requested("wire.rss")[0] is None
    assert feeds.requested("wire.rss")[1] is not None  # conditional: answered 304
