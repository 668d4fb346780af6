"""The news poll loop: feeds in, one LLM verdict per new article, signals out.

Every `interval` seconds the runner reads each feed, keeps the articles it has not
handled yet (oldest first), asks the analyst about each, and publishes the verdict
as a `signal`. An article is recorded as handled only once the gateway has acked its
signal, or once it was dropped on purpose (the model's answers stayed malformed), so
a crash at any point loses nothing; the signal's id is derived from the article, so
an article published just before a crash is answered "duplicate" when it is
published again. A feed or model that fails is reported with a `log` frame and tried
again at the next poll. Heartbeats and SIGTERM work as in the candle runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal as signals
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.events import TRIGGER_HEARTBEAT, Category, LogLevel, Trace
from shared.logging import get_logger
from shared.sdk import (
    AckTimeout,
    GatewayClient,
    GatewayError,
    PublishRejected,
    RateLimited,
    Unavailable,
)
from triggers.news.analyst import AnalysisFailed, Analyst, LLMUnavailable, Urgency, Verdict
from triggers.news.feeds import Article, FeedError, FeedReader, FeedSource
from triggers.news.state import SeenArticles

log = get_logger(__name__)

KIND = "news"

#: Signal ids are uuid5 in this namespace over (trigger name, article id).
SIGNAL_NAMESPACE = uuid.UUID("5d0c6a8e-2b7f-4e51-9a39-7c1f0e4d8b62")

NEWS_ANALYSIS_FAILED = "NEWS_ANALYSIS_FAILED"
NEWS_LLM_FAILED = "NEWS_LLM_FAILED"
NEWS_FEED_FAILED = "NEWS_FEED_FAILED"
NEWS_PUBLISH_REJECTED = "NEWS_PUBLISH_REJECTED"

PRIORITY = {Urgency.LOW: 3, Urgency.MEDIUM: 5, Urgency.HIGH: 8}

_MAX_TITLE = 500
_MAX_LINK = 2_000


def signal_id(trigger_name: str, article_id: str) -> uuid.UUID:
    return uuid.uuid5(SIGNAL_NAMESPACE, f"{trigger_name}|{article_id}")


@dataclass
class NewsStats:
    polls: int = 0
    signals: int = 0
    duplicates: int = 0
    dropped: int = 0
    llm_failures: int = 0
    feed_failures: int = 0
    last_poll: datetime | None = None


class _PollAborted(Exception):
    """The model is unavailable: leave the rest of this poll's articles for the next."""


class NewsRunner:
    """Poll `feeds`, analyse new articles and publish signals through `client`, until
    `stop()` (or after one poll with `once`).

    Args:
        state_path: the file of handled article ids; default
            `data_dir/news/<trigger name>.seen`, known once connected.
        state_limit: how many article ids the state file keeps.
        model_name: recorded in each signal, to tell verdicts of different models apart.
    """

    def __init__(
        self,
        client: GatewayClient,
        analyst: Analyst,
        reader: FeedReader,
        feeds: Sequence[FeedSource],
        *,
        interval: float = 300.0,
        once: bool = False,
        state_path: Path | None = None,
        data_dir: Path = Path(".ats"),
        state_limit: int = 10_000,
        heartbeat_interval: float = 30.0,
        model_name: str = "",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the poll interval must be positive, got {interval}")
        self.client = client
        self.analyst = analyst
        self.reader = reader
        self.feeds = list(feeds)
        self.interval = interval
        self.once = once
        self.state_path = state_path
        self.data_dir = data_dir
        self.state_limit = state_limit
        self.heartbeat_interval = heartbeat_interval
        self.model_name = model_name
        self.stats = NewsStats()
        self.seen: SeenArticles | None = None
        self._now = now
        self._stopping = asyncio.Event()
        self._name = ""

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> NewsStats:
        """Connect, poll until stopped (or once), and return what was done.

        Raises:
            StateError: the state file cannot be read or written.
        """
        try:
            async with self.client:
                self._name = trigger_name(self.client)
                path = self.state_path or self.data_dir / "news" / f"{self._name}.seen"
                self.seen = SeenArticles.load(path, limit=self.state_limit)
                log.info("news_state", path=str(path), seen=len(self.seen))
                await self._run_tasks()
                await self._heartbeat(final=True)
        finally:
            await self.reader.aclose()
        return self.stats

    async def _run_tasks(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeats(), name="heartbeat")
        work = asyncio.create_task(self._work(), name="poll")
        stopper = asyncio.create_task(self._stopping.wait(), name="stopper")
        try:
            done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if work in done:
                work.result()
        finally:
            for task in (heartbeat, work, stopper):
                task.cancel()
            await asyncio.gather(heartbeat, work, stopper, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            await self.poll()
            if self.once:
                return
            await asyncio.sleep(self.interval)

    async def poll(self) -> None:
        """Read every feed once and handle the articles not handled yet."""
        assert self.seen is not None, "poll() runs inside run()"
        self.stats.polls += 1
        self.stats.last_poll = self._now()
        fresh: dict[str, Article] = {}
        for feed in self.feeds:
            try:
                articles = await self.reader.read(feed)
            except FeedError as e:
                self.stats.feed_failures += 1
                await self._report(LogLevel.WARNING, NEWS_FEED_FAILED, str(e), {"feed": feed.label})
                continue
            for article in articles:
                if article.id not in self.seen:
                    fresh.setdefault(article.id, article)
        # Oldest first, so signals follow the order the news happened in; undated
        # articles last, in feed order (the sort is stable).
        pending = sorted(
            fresh.values(),
            key=lambda a: (a.published is None, a.published or datetime.min.replace(tzinfo=UTC)),
        )
        log.info("news_poll", feeds=len(self.feeds), new=len(pending))
        try:
            for article in pending:
                await self._handle(article)
        except _PollAborted:
            pass

    async def _handle(self, article: Article) -> None:
        assert self.seen is not None
        try:
            outcome = await self.analyst.analyze(article)
        except LLMUnavailable as e:
            self.stats.llm_failures += 1
            await self._report(
                LogLevel.WARNING if e.retryable or e.article_specific else LogLevel.ERROR,
                NEWS_LLM_FAILED,
                f"could not analyse {article.title!r}: {e.reason}",
                {**_article_data(article), "error": e.reason, "retryable": e.retryable},
                article=article,
            )
            if e.article_specific:
                return
            raise _PollAborted from e
        if isinstance(outcome, AnalysisFailed):
            self.stats.dropped += 1
            await self._report(
                LogLevel.WARNING,
                NEWS_ANALYSIS_FAILED,
                f"dropped {article.title!r}: {outcome.reason}",
                {**_article_data(article), "reason": outcome.reason, "attempts": outcome.attempts},
                article=article,
            )
        else:
            await self._publish(article, outcome)
        self.seen.add(article.id)

    async def _publish(self, article: Article, verdict: Verdict) -> None:
        event_id = signal_id(self._name, article.id)
        title = article.title[:_MAX_TITLE]
        payload: dict[str, Any] = {
            "signal_type": "immediate",
            "symbol": verdict.affected_symbols[0] if verdict.affected_symbols else None,
            "affected_symbols": verdict.affected_symbols,
            "direction": verdict.direction.value,
            "sentiment": verdict.sentiment,
            "strength": verdict.strength,
            "urgency": verdict.urgency.value,
            "analysis": verdict.analysis,
            "trigger": KIND,
            "article_id": article.id,
            "title": title,
            "link": article.link[:_MAX_LINK] if article.link else None,
            "published": article.published.isoformat() if article.published else None,
            "feed": article.feed[:_MAX_TITLE],
            "model": self.model_name,
        }
        now = self._now()
        when = min(article.published, now) if article.published else now
        while True:
            try:
                result = await self.client.publish(
                    Category.SIGNAL,
                    payload,
                    id=event_id,
                    title=f"News: {title}"[:_MAX_TITLE],
                    tags=[KIND, f"urgency:{verdict.urgency.value}"],
                    priority=PRIORITY[verdict.urgency],
                    trace=Trace(correlation_id=str(event_id), causation_id=article.id),
                    ts=when,
                )
                break
            except (AckTimeout, Unavailable, RateLimited) as e:
                # Keep this signal (same id, so it counts once) until the gateway takes it.
                log.warning("publish_retry", signal=str(event_id), error=repr(e))
            except PublishRejected as e:
                # Publishing it again cannot succeed: tell the operators and move on.
                self.stats.dropped += 1
                await self._report(
                    LogLevel.ERROR,
                    NEWS_PUBLISH_REJECTED,
                    f"the gateway refused the signal for {title!r}: {e}",
                    {**_article_data(article), "reason": e.message, "detail": str(e.detail)},
                    article=article,
                )
                return
        if result.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.signals += 1
        log.info(
            "news_signal",
            article_id=article.id,
            signal=str(event_id),
            symbols=verdict.affected_symbols,
            direction=verdict.direction.value,
            duplicate=result.duplicate,
        )

    async def _report(
        self,
        level: LogLevel,
        code: str,
        message: str,
        data: Mapping[str, Any],
        *,
        article: Article | None = None,
    ) -> None:
        """Tell the operators, through the gateway; best effort, never fatal."""
        log.log(_LEVELS[level], code.lower(), message=message, **data)
        trace = Trace(causation_id=article.id) if article is not None else None
        with contextlib.suppress(GatewayError):
            await self.client.log(
                message, level=level, code=code, data=data, trace=trace, timeout=10.0
            )

    async def _heartbeats(self) -> None:
        while True:
            await self._heartbeat()
            await asyncio.sleep(self.heartbeat_interval)

    async def _heartbeat(self, *, final: bool = False) -> None:
        s = self.stats
        with contextlib.suppress(Exception):  # a heartbeat is best effort, never fatal
            await self.client.log(
                "trigger stopped" if final else "trigger alive",
                code=TRIGGER_HEARTBEAT,
                data={
                    "trigger": KIND,
                    "feeds": len(self.feeds),
                    "polls": s.polls,
                    "signals": s.signals,
                    "duplicates": s.duplicates,
                    "dropped": s.dropped,
                    "llm_failures": s.llm_failures,
                    "feed_failures": s.feed_failures,
                    "seen": len(self.seen) if self.seen is not None else 0,
                    "last_poll": s.last_poll.isoformat() if s.last_poll else None,
                    "final": final,
                },
                timeout=5.0,
            )


_LEVELS = {LogLevel.DEBUG: 10, LogLevel.INFO: 20, LogLevel.WARNING: 30, LogLevel.ERROR: 40}


def trigger_name(client: GatewayClient) -> str:
    """This trigger's name, from the connect ack."""
    name = client.config.get("name")
    if isinstance(name, str) and name:
        return name
    # client_id is "trigger:<name>:<session>"
    parts = (client.client_id or "").split(":")
    return parts[1] if len(parts) >= 2 and parts[1] else "news"


def _article_data(article: Article) -> dict[str, Any]:
    return {
        "article_id": article.id,
        "title": article.title[:_MAX_TITLE],
        "link": article.link[:_MAX_LINK] if article.link else None,
        "feed": article.feed[:_MAX_TITLE],
    }


def install_signal_handlers(runner: NewsRunner) -> None:
    """SIGTERM and SIGINT stop the runner cleanly (close the session, exit 0)."""
    loop = asyncio.get_running_loop()
    for sig in (signals.SIGTERM, signals.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
