"""`ats trigger KIND ...` (also `python -m triggers KIND ...`): run one trigger."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from shared.config import ClientSettings
from shared.logging import configure_logging, get_logger

app = typer.Typer(add_completion=False, help="Run a trigger against the gateway.")
log = get_logger("triggers")


@app.command()
def run(
    kind: Annotated[
        str, typer.Argument(help="Trigger kind: rsi, ma_cross, macd_cross, breakout, price_level.")
    ],
    symbol: Annotated[str, typer.Option(help="Market, e.g. ETH/BTC.")],
    feed: Annotated[str, typer.Option(help="csv:PATH or ccxt:EXCHANGE_ID.")],
    timeframe: Annotated[str, typer.Option(help="Candle timeframe, e.g. 5m.")] = "5m",
    params: Annotated[str, typer.Option(help="Trigger parameters as JSON.")] = "{}",
    speed: Annotated[
        float | None,
        typer.Option(
            help="CSV replay speed: 1 = real time, 60 = 60x; default as fast as possible."
        ),
    ] = None,
    heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeats.")] = 30.0,
    gateway_url: Annotated[str | None, typer.Option(help="Gateway URL [ATS_GATEWAY_URL].")] = None,
) -> None:
    """Run a trigger; its token comes from ATS_TRIGGER_TOKEN."""
    settings = ClientSettings()
    configure_logging(level=settings.log_level, json=settings.log_json, service=f"trigger:{kind}")
    if settings.trigger_token is None:
        typer.echo(
            "error: set ATS_TRIGGER_TOKEN to the token the gateway issued for this trigger",
            err=True,
        )
        raise typer.Exit(2)
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as e:
        typer.echo(f"error: --params is not JSON: {e}", err=True)
        raise typer.Exit(2) from e
    from triggers.main import run_trigger

    try:
        stats = asyncio.run(
            run_trigger(
                kind=kind,
                symbol=symbol,
                timeframe=timeframe,
                feed_spec=feed,
                params=parsed,
                speed=speed,
                heartbeat=heartbeat,
                token=settings.trigger_token.get_secret_value(),
                url=gateway_url or settings.gateway_url,
            )
        )
    except ValueError as e:  # bad kind, params, feed spec: the operator's to fix
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    log.info(
        "trigger_done",
        candles=stats.candles,
        signals=stats.signals,
        duplicates=stats.duplicates,
        gaps=stats.gaps,
    )
