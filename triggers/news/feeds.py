"""News feeds: fetch them (over HTTP, or from a local file) and parse them into articles.

RSS and Atom are parsed by feedparser; JSON Feed (https://jsonfeed.org/version/1.1)
and plain JSON (a list of items, or an object holding one under `items`, `articles`
or `entries`) by a small parser here. Each article's id is a hash of its guid / id /
link, so the same article has the same id in every poll, every process and every
feed that carries it.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser  # type: ignore[import-untyped]
import httpx

from shared.logging import redact_text

#: Feeds larger than this are refused rather than read into memory.
MAX_FEED_BYTES = 10 * 1024 * 1024
USER_AGENT = "ats-news-trigger/0.1"


class FeedError(Exception):
    """A feed could not be fetched or parsed; the next poll tries again."""


@dataclass(frozen=True, slots=True)
class Article:
    """One news item, as read from a feed."""

    id: str  # stable: a hash of the item's guid / id / link
    title: str
    link: str | None
    published: datetime | None  # tz-aware UTC, when the feed says
    text: str  # the summary or content, as plain text
    feed: str  # the feed's title, or where it was read from


def article_id(identity: str) -> str:
    """The stable id of an article whose guid, id or link is `identity`."""
    return hashlib.sha256(identity.strip().encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- sources


@dataclass
class FeedSource:
    """Where a feed is read from: an http(s) URL or a local file."""

    spec: str
    url: str | None = None
    path: Path | None = None
    # The last good answer, served again when the server says 304 Not Modified: the
    # articles in it may not all have been handled yet.
    etag: str | None = field(default=None, repr=False)
    last_modified: str | None = field(default=None, repr=False)
    cached: list[Article] = field(default_factory=list, repr=False)

    @property
    def label(self) -> str:
        """The source for logs and payloads, with any credentials in the URL redacted."""
        return redact_text(self.url) if self.url else str(self.path)


def parse_feed_spec(spec: str) -> FeedSource:
    """`https://...`, `http://...`, `file:///abs/path`, or a path; ValueError when unusable."""
    spec = spec.strip()
    scheme = urlsplit(spec).scheme.lower()
    if scheme in ("http", "https"):
        return FeedSource(spec, url=spec)
    if scheme == "file":
        path = Path(urlsplit(spec).path)
    elif scheme and len(scheme) > 1:  # one letter: a Windows drive, i.e. a path
        raise ValueError(
            f"feed {spec!r}: unsupported scheme {scheme!r}; give an http(s) URL or a file path"
        )
    else:
        path = Path(spec)
    if not path.is_file():
        raise ValueError(f"feed {spec!r}: no such file; give an http(s) URL or an existing file")
    return FeedSource(spec, path=path)


class FeedReader:
    """Fetch and parse feeds; one HTTP client (connection pool) for all of them."""

    def __init__(
        self,
        *,
        timeout: float = 20.0,
        max_bytes: int = MAX_FEED_BYTES,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._http = http or httpx.AsyncClient(
            timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def read(self, source: FeedSource) -> list[Article]:
        """The feed's current articles, in feed order.

        Raises:
            FeedError: it could not be fetched (network, HTTP status) or parsed.
        """
        if source.path is not None:
            data = await asyncio.to_thread(_read_file, source.path, self.max_bytes)
            return parse_feed(data, source=source.label)
        assert source.url is not None
        body = await self._get(source)
        if body is None:
            return source.cached
        articles = parse_feed(body, source=source.label)
        source.cached = articles
        return articles

    async def _get(self, source: FeedSource) -> bytes | None:
        """The body, or None on 304 Not Modified."""
        assert source.url is not None
        headers = {}
        if source.cached and source.etag:
            headers["If-None-Match"] = source.etag
        if source.cached and source.last_modified:
            headers["If-Modified-Since"] = source.last_modified
        try:
            async with self._http.stream("GET", source.url, headers=headers) as response:
                if response.status_code == 304:
                    return None
                if response.status_code >= 400:
                    raise FeedError(
                        f"feed {source.label} answered HTTP {response.status_code}; "
                        "retrying at the next poll"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FeedError(
                            f"feed {source.label} is larger than {self.max_bytes} bytes; "
                            "is it really a news feed?"
                        )
                    chunks.append(chunk)
                source.etag = response.headers.get("ETag")
                source.last_modified = response.headers.get("Last-Modified")
                return b"".join(chunks)
        except httpx.HTTPError as e:
            raise FeedError(
                f"feed {source.label} could not be fetched ({type(e).__name__}: "
                f"{redact_text(str(e)) or 'no detail'}); retrying at the next poll"
            ) from e


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise FeedError(f"feed file {path} could not be read: {e.strerror or e}") from e
    if len(data) > max_bytes:
        raise FeedError(f"feed file {path} is larger than {max_bytes} bytes")
    return data


# --------------------------------------------------------------------------- parsing


def parse_feed(data: bytes, *, source: str) -> list[Article]:
    """Articles of an RSS, Atom, JSON Feed or plain JSON document, in document order.

    Raises:
        FeedError: the document is none of those.
    """
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"["):
        return _parse_json(data, source=source)
    return _parse_xml(data, source=source)


def _parse_xml(data: bytes, *, source: str) -> list[Article]:
    # Bytes, never a str: given a string, feedparser would fetch URLs and open files.
    parsed = feedparser.parse(data)
    entries = list(parsed.get("entries") or [])
    if not parsed.get("version") and not entries:
        why = parsed.get("bozo_exception")
        raise FeedError(
            f"feed {source} is not RSS, Atom or JSON"
            + (f" ({type(why).__name__}: {why})" if why else "")
        )
    title = _text(parsed.get("feed", {}).get("title")) or source
    articles = []
    for entry in entries:
        link = _text(entry.get("link")) or None
        identity = _text(entry.get("id")) or link or _fallback_identity(entry)
        if not identity:
            continue
        published = _struct_time(entry.get("published_parsed") or entry.get("updated_parsed"))
        body = entry.get("summary") or ""
        contents = entry.get("content") or []
        if contents and len(_text(contents[0].get("value"))) > len(_text(body)):
            body = contents[0].get("value")
        articles.append(
            Article(
                id=article_id(identity),
                title=html_to_text(_text(entry.get("title"))),
                link=link,
                published=published,
                text=html_to_text(_text(body)),
                feed=title,
            )
        )
    return articles


def _parse_json(data: bytes, *, source: str) -> list[Article]:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FeedError(f"feed {source} is not valid JSON: {e}") from e
    title = source
    if isinstance(doc, dict):
        title = _text(doc.get("title")) or source
        items = next(
            (doc[k] for k in ("items", "articles", "entries") if isinstance(doc.get(k), list)),
            None,
        )
    else:
        items = doc
    if not isinstance(items, list):
        raise FeedError(
            f"feed {source} is JSON but not a news feed: expected a JSON Feed, a list of "
            "items, or an object with an `items`, `articles` or `entries` list"
        )
    articles = []
    for item in items:
        if not isinstance(item, dict):
            continue
        link = _first(item, "url", "link", "external_url") or None
        identity = _first(item, "id", "guid") or link or _fallback_identity(item)
        if not identity:
            continue
        # JSON feeds carry RSS-style HTML in their summaries too.
        text = html_to_text(
            _first(item, "content_text", "summary", "description")
            or _first(item, "content_html", "content", "body")
        )
        articles.append(
            Article(
                id=article_id(identity),
                title=html_to_text(_first(item, "title", "headline")),
                link=link,
                published=parse_time(
                    _first(item, "date_published", "published", "publishedAt", "pubDate", "date")
                    or _first(item, "date_modified", "updated")
                ),
                text=text,
                feed=_text(item.get("source")) or title,
            )
        )
    return articles


def _first(item: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = _text(item.get(key))
        if value:
            return value
    return ""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Mapping):  # {"name": "Reuters"}, {"value": "..."}
        return _text(value.get("name") or value.get("value"))
    return ""


def _fallback_identity(item: Mapping[str, Any]) -> str:
    """No guid, id or link: the title and time identify it, if there is a title."""
    title = _text(item.get("title"))
    if not title:
        return ""
    when = _first(item, "published", "date_published", "publishedAt", "pubDate", "updated")
    return f"{title}|{when}"


def _struct_time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_time(value: str) -> datetime | None:
    """ISO 8601 or RFC 2822 (RSS) time, as tz-aware UTC; None when absent or unreadable.

    A time without a zone is taken as UTC.
    """
    value = value.strip()
    if not value:
        return None
    when: datetime | None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "template"})
    _BREAKS = frozenset({"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def html_to_text(value: str) -> str:
    """The readable text of an HTML fragment (plain text passes through)."""
    if "<" not in value and "&" not in value:
        return _SPACES.sub(" ", value).strip()
    extractor = _TextExtractor()
    extractor.feed(value)
    extractor.close()
    text = _SPACES.sub(" ", "".join(extractor.parts))
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()
