"""`ats trigger news`: the LLM news analyzer as its own process.

Only typer and the settings are imported here: `triggers/cli.py` imports this module
to register the command, and `ats trigger --help` must not load LangChain, httpx or
feedparser. The command imports them when it runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn
from urllib.parse import urlsplit

import typer
from pydantic import SecretStr

from shared.config import ClientSettings


class NewsSettings(ClientSettings):
    """The trigger's settings plus the model endpoint: `ATS_LLM_BASE_URL`,
    `ATS_LLM_MODEL`, `ATS_LLM_API_KEY`."""

    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None


def news(
    feed: Annotated[
        list[str],
        typer.Option(
            help="A news feed: an http(s) URL or a file (RSS, Atom, JSON Feed or a JSON "
            "list of items). Repeat for several."
        ),
    ],
    interval: Annotated[
        float, typer.Option(min=0.01, help="Seconds between polls of the feeds.")
    ] = 300.0,
    once: Annotated[
        bool, typer.Option("--once", help="Poll once, handle what is new, and exit.")
    ] = False,
    state: Annotated[
        Path | None,
        typer.Option(
            help="File of the ids of handled articles "
            "(default: ATS_DATA_DIR/news/TRIGGER_NAME.seen)."
        ),
    ] = None,
    state_size: Annotated[
        int, typer.Option(min=1, help="How many article ids the state file keeps.")
    ] = 10_000,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible API base URL [ATS_LLM_BASE_URL]."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name [ATS_LLM_MODEL].")] = None,
    llm_timeout: Annotated[
        float, typer.Option(min=0.01, help="Seconds to wait for one model answer.")
    ] = 60.0,
    llm_retries: Annotated[
        int,
        typer.Option(min=0, help="Retries of a timed-out, rate-limited or failed model call."),
    ] = 2,
    parse_retries: Annotated[
        int,
        typer.Option(min=0, help="How many more times to ask after a malformed answer."),
    ] = 2,
    symbols: Annotated[
        str,
        typer.Option(
            help="Comma-separated symbols the model should name assets by, e.g. BTC/USDT,ETH/USDT."
        ),
    ] = "",
    feed_timeout: Annotated[
        float, typer.Option(min=0.01, help="Seconds to wait for a feed.")
    ] = 20.0,
    heartbeat: Annotated[float, typer.Option(min=0.01, help="Seconds between heartbeats.")] = 30.0,
    gateway_url: Annotated[str | None, typer.Option(help="Gateway URL [ATS_GATEWAY_URL].")] = None,
) -> None:
    """Analyse news articles with an LLM and publish its verdicts as signals.

    Model: any OpenAI-compatible API (ATS_LLM_BASE_URL, ATS_LLM_MODEL, ATS_LLM_API_KEY).

    Token: ATS_TRIGGER_TOKEN.
    """
    from triggers.cli import client_settings, log

    _, token = client_settings("trigger:news")
    settings = NewsSettings()
    endpoint = base_url or settings.llm_base_url
    if not endpoint:
        _fail(
            "no LLM endpoint configured: set ATS_LLM_BASE_URL (or pass --base-url) to an "
            "OpenAI-compatible API, e.g. https://api.openai.com/v1 or "
            "http://127.0.0.1:11434/v1 for Ollama"
        )
    if urlsplit(endpoint).scheme not in ("http", "https"):
        _fail(f"the LLM endpoint {endpoint!r} is not an http(s) URL: fix ATS_LLM_BASE_URL")
    model_name = model or settings.llm_model
    if not model_name:
        _fail("no LLM model configured: set ATS_LLM_MODEL (or pass --model), e.g. gpt-4o-mini")

    from shared.sdk import AuthenticationError
    from triggers.news.analyst import Analyst, build_chat_model
    from triggers.news.feeds import FeedReader, parse_feed_spec
    from triggers.news.runner import NewsRunner, install_signal_handlers
    from triggers.news.state import StateError

    try:
        sources = [parse_feed_spec(spec) for spec in feed]
    except ValueError as e:
        _fail(str(e))
    watchlist = [s.strip() for s in symbols.split(",") if s.strip()]

    async def main() -> None:
        from shared.sdk import GatewayClient

        chat = build_chat_model(
            base_url=endpoint,
            model=model_name,
            api_key=settings.llm_api_key,
            timeout=llm_timeout,
            max_retries=llm_retries,
        )
        runner = NewsRunner(
            GatewayClient(gateway_url or settings.gateway_url, token=token),
            Analyst(chat, parse_retries=parse_retries, symbols=watchlist),
            FeedReader(timeout=feed_timeout),
            sources,
            interval=interval,
            once=once,
            state_path=state,
            data_dir=settings.data_dir,
            state_limit=state_size,
            heartbeat_interval=heartbeat,
            model_name=model_name,
        )
        install_signal_handlers(runner)
        stats = await runner.run()
        log.info(
            "trigger_done",
            polls=stats.polls,
            signals=stats.signals,
            duplicates=stats.duplicates,
            dropped=stats.dropped,
            llm_failures=stats.llm_failures,
            feed_failures=stats.feed_failures,
        )

    try:
        asyncio.run(main())
    except StateError as e:  # the operator's to fix
        _fail(str(e))
    except AuthenticationError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from e


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
