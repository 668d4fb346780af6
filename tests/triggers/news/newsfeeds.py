"""News for the news trigger's tests: articles, rendered as RSS 2.0, Atom 1.0, JSON Feed
1.1 and a plain JSON list, and a local web server that serves them.

The server answers like a real feed host: `ETag` on every feed and `304 Not Modified`
to a matching `If-None-Match`; statuses queued in `faults[path]` are served to the
next requests of that path instead (a 503 from the edge, say). `requests` records
(path, If-None-Match) per request.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.server import LocalServer


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    html: str  # the summary, as HTML
    link: str
    published: datetime


def rss(items: list[Item], *, title: str = "Test Wire") -> str:
    entries = "".join(
        f"""
    <item>
      <title>{escape(i.title)}</title>
      <link>{escape(i.link)}</link>
      <guid isPermaLink="false">{escape(i.guid)}</guid>
      <pubDate>{format_datetime(i.published, usegmt=True)}</pubDate>
      <description>{escape(i.html)}</description>
    </item>"""
        for i in items
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>{escape(title)}</title>
    <link>http://news.test/</link>
    <description>Markets news for tests</description>{entries}
  </channel>
</rss>
"""


def atom(items: list[Item], *, title: str = "Test Atom Desk") -> str:
    updated = max((i.published for i in items), default=None)
    entries = "".join(
        f"""
  <entry>
    <id>{escape(i.guid)}</id>
    <title>{escape(i.title)}</title>
    <link rel="alternate" href="{escape(i.link)}"/>
    <updated>{i.published.isoformat()}</updated>
    <summary type="html">{escape(i.html)}</summary>
  </entry>"""
        for i in items
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>{escape(title)}</title>
  <id>urn:test:atom-desk</id>
  <updated>{updated.isoformat() if updated else "2025-01-01T00:00:00+00:00"}</updated>{entries}
</feed>
"""


def json_feed(items: list[Item], *, title: str = "Test JSON Desk") -> str:
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": title,
            "items": [
                {
                    "id": i.guid,
                    "url": i.link,
                    "title": i.title,
                    "content_html": i.html,
                    "date_published": i.published.isoformat(),
                }
                for i in items
            ],
        }
    )


def json_list(items: list[Item]) -> str:
    """A plain list, the way simple news APIs answer."""
    return json.dumps(
        [
            {
                "guid": i.guid,
                "title": i.title,
                "description": i.html,
                "link": i.link,
                "pubDate": format_datetime(i.published, usegmt=True),
            }
            for i in items
        ]
    )


_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}


class FeedServer:
    """Serves `documents[path]` (text, media type); `set()` changes one."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[str, str]] = {}
        self.faults: defaultdict[str, deque[int]] = defaultdict(deque)
        self.requests: list[tuple[str, str | None]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._serve, methods=["GET"])])
        self._server = LocalServer(self.app, name="feed server")

    def set(self, path: str, text: str, kind: str) -> str:
        """Serve `text` at `path` as `kind` (rss, atom, json); returns its URL."""
        self.documents[path.lstrip("/")] = (text, _TYPES[kind])
        return self.url(path)

    def url(self, path: str) -> str:
        return f"{self._server.url}/{path.lstrip('/')}"

    def requested(self, path: str) -> list[str | None]:
        """The If-None-Match of each request of `path`, in order."""
        return [etag for p, etag in self.requests if p == path.lstrip("/")]

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    async def _serve(self, request: Request) -> Response:
        path = request.path_params["path"]
        self.requests.append((path, request.headers.get("if-none-match")))
        if self.faults[path]:
            status = self.faults[path].popleft()
            return PlainTextResponse(f"{status} from the test's edge", status_code=status)
        if path not in self.documents:
            return PlainTextResponse("not found", status_code=404)
        text, media_type = self.documents[path]
        etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:16] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(text, media_type=media_type, headers={"ETag": etag})


def verdict(
    *symbols: str,
    direction: str = "long",
    sentiment: float = 0.6,
    strength: float = 0.7,
    urgency: str = "medium",
    analysis: str = "Inflows of this size have preceded rallies; the effect should be modest.",
) -> dict[str, Any]:
    """A verdict as the model answers it."""
    return {
        "sentiment": sentiment,
        "affected_symbols": list(symbols),
        "urgency": urgency,
        "direction": direction,
        "strength": strength,
        "analysis": analysis,
    }
