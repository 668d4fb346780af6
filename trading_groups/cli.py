"""`ats group algo ...` (also `python -m trading_groups algo ...`): run a trading group."""

from __future__ import annotations

import asyncio
import json
import signal as signals
from typing import Annotated

import typer

from shared.config import ClientSettings
from shared.logging import configure_logging, get_logger

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run a trading group.")
log = get_logger("trading_groups")


@app.callback()
def _group() -> None:
    """Run a trading group (`algo`; the LLM team comes later)."""


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
