"""`ats group algo|llm ...` (also `python -m trading_groups ...`): run a trading group."""

from __future__ import annotations

import asyncio
import json
import signal as signals
from typing import Annotated, NoReturn
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from shared.config import ClientSettings, LLMSettings
from shared.logging import configure_logging, get_logger

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run a trading group.")
log = get_logger("trading_groups")


@app.callback()
def _group() -> None:
    """Run a trading group: `algo` (a strategy) or `llm` (a team of LLM agents)."""


def _feeds(values: list[str]) -> dict[str, str] | None:
    if not values:
        return None
    feeds: dict[str, str] = {}
    for value in values:
        symbol, sep, spec = value.partition("=")
        if not sep or not symbol or not spec:
            raise typer.BadParameter(
                f"{value!r} is not SYMBOL=FEED (e.g. ETH/BTC=csv:data/ETH-BTC_5m.csv)"
            )
        feeds[symbol] = spec
    return feeds


@app.command()
def algo(
    strategy: Annotated[
        str | None,
        typer.Option(help="Strategy name (sma_cross, ...); default: the group's config."),
    ] = None,
    params: Annotated[
        str | None, typer.Option(help="Strategy parameters as JSON; default: the group's config.")
    ] = None,
    feed: Annotated[
        list[str],
        typer.Option(help="SYMBOL=FEED, repeatable (csv:PATH or ccxt:EXCHANGE); default: config."),
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    timeframe: Annotated[str, typer.Option(help="Timeframe when a signal names none.")] = "5m",
    gateway_url: Annotated[str | None, typer.Option(help="Gateway URL [ATS_GATEWAY_URL].")] = None,
) -> None:
    """Run an algorithmic group; its token comes from ATS_TRADING_GROUP_TOKEN."""
    settings = ClientSettings()
    configure_logging(level=settings.log_level, json=settings.log_json, service="group:algo")
    if settings.trading_group_token is None:
        typer.echo(
            "error: set ATS_TRADING_GROUP_TOKEN to the token the gateway issued for this group",
            err=True,
        )
        raise typer.Exit(2)
    try:
        parsed = json.loads(params) if params is not None else None
    except json.JSONDecodeError as e:
        typer.echo(f"error: --params is not JSON: {e}", err=True)
        raise typer.Exit(2) from e
    try:
        asyncio.run(
            _run(
                url=gateway_url or settings.gateway_url,
                token=settings.trading_group_token.get_secret_value(),
                strategy=strategy,
                params=parsed,
                feeds=_feeds(feed),
                timeframe=timeframe,
            )
        )
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


async def _run(
    *,
    url: str,
    token: str,
    strategy: str | None,
    params: dict[str, object] | None,
    feeds: dict[str, str] | None,
    timeframe: str,
) -> None:
    from shared.sdk import GatewayClient
    from trading_groups.algo import AlgoGroup

    client = GatewayClient(url, token=token)
    group = AlgoGroup(client, strategy=strategy, params=params, feeds=feeds, timeframe=timeframe)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signals.SIGTERM, signals.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with client:
        log.info("group_running", client_id=client.client_id)
        await stop.wait()
    await group.close()
    log.info("group_stopped", **group.stats.__dict__)


@app.command()
def llm(
    gateway_url: Annotated[str | None, typer.Option(help="Gateway URL [ATS_GATEWAY_URL].")] = None,
) -> None:
    """Run an LLM group: a team of model-backed agents discusses each signal.

    Model: any OpenAI-compatible API (ATS_LLM_BASE_URL, ATS_LLM_MODEL for the cheap
    tier, ATS_LLM_STRONG_MODEL for the strong one, ATS_LLM_API_KEY); without
    ATS_LLM_BASE_URL it does not start. The team, budgets, prices and feeds come from
    the group's REST config. Token: ATS_TRADING_GROUP_TOKEN. Calls, discussions and
    reflections are stored in the database (ATS_DATABASE_URL, or SQLite in ATS_DATA_DIR).
    """
    try:
        settings = LLMSettings()
    except ValidationError as e:
        _fail(str(e.errors()[0]["msg"]))
    configure_logging(level=settings.log_level, json=settings.log_json, service="group:llm")
    if not settings.llm_base_url:
        _fail(
            "no LLM endpoint configured, so the LLM group stays offline: set "
            "ATS_LLM_BASE_URL to an OpenAI-compatible API (e.g. https://api.openai.com/v1, "
            "or http://127.0.0.1:11434/v1 for Ollama) and ATS_LLM_MODEL to a model there"
        )
    if urlsplit(settings.llm_base_url).scheme not in ("http", "https"):
        _fail(f"ATS_LLM_BASE_URL {settings.llm_base_url!r} is not an http(s) URL")
    if not settings.llm_model:
        _fail("no LLM model configured: set ATS_LLM_MODEL (e.g. gpt-4o-mini)")
    if settings.trading_group_token is None:
        _fail("set ATS_TRADING_GROUP_TOKEN to the token the gateway issued for this group")
    try:
        asyncio.run(_run_llm(settings, gateway_url or settings.gateway_url))
    except _NotMigrated as e:
        _fail(str(e))


class _NotMigrated(Exception):
    pass


async def _run_llm(settings: LLMSettings, url: str) -> None:
    from sqlalchemy import inspect

    from shared.db.engine import create_engine
    from shared.llm.client import make_http_client
    from shared.llm.store import LlmStore
    from shared.logging import redact_text
    from shared.sdk import GatewayClient
    from trading_groups.llm.group import LLMGroup

    assert settings.trading_group_token is not None
    database = settings.resolved_database_url
    engine = create_engine(database, schema=settings.database_schema)
    http = make_http_client()
    try:
        async with engine.connect() as conn:
            ready = await conn.run_sync(lambda c: inspect(c).has_table("reflections"))
        if not ready:
            raise _NotMigrated(
                f"the database {redact_text(database)} has no LLM tables: start the gateway "
                "on it first (it migrates), or run `ats db upgrade`"
            )
        client = GatewayClient(url, token=settings.trading_group_token.get_secret_value())
        group = LLMGroup(client, LlmStore(engine), settings, http_client=http)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signals.SIGTERM, signals.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with client:
                log.info("group_running", client_id=client.client_id, kind="llm")
                await stop.wait()
        finally:
            await group.close()
        log.info("group_stopped", **group.stats.__dict__)
    finally:
        await http.aclose()
        await engine.dispose()


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
