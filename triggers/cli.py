"""`ats trigger KIND ...` (also `python -m triggers KIND ...`): run one trigger.

Each registered candle trigger is a subcommand with the same options; other kinds of
trigger (the news analyzer) add their own subcommand here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated

import typer

from shared.config import ClientSettings
from shared.logging import configure_logging, get_logger
from triggers.base import trigger_kinds

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Run a trigger against the gateway."
)
log = get_logger("triggers")


def client_settings(service: str) -> tuple[ClientSettings, str]:
    """Settings and the trigger token; exits 2 with the reason when there is none."""
    settings = ClientSettings()
    configure_logging(level=settings.log_level, json=settings.log_json, service=service)
    if settings.trigger_token is None:
        typer.echo(
            "error: set ATS_TRIGGER_TOKEN to the token the gateway issued for this trigger",
            err=True,
        )
        raise typer.Exit(2)
    return settings, settings.trigger_token.get_secret_value()


def _candle_command(kind: str) -> Callable[..., None]:
    def command(
        symbol: Annotated[str, typer.Option(help="Market, e.g. ETH/BTC.")],
        feed: Annotated[str, typer.Option(help="csv:PATH or ccxt:EXCHANGE_ID.")],
        timeframe: Annotated[str, typer.Option(help="Candle timeframe, e.g. 5m.")] = "5m",
        params: Annotated[str, typer.Option(help="Trigger parameters as JSON.")] = "{}",
        speed: Annotated[
            float | None,
            typer.Option(help="CSV replay speed: 1 = real time, 60 = 60x; default: flat out."),
        ] = None,
        heartbeat: Annotated[float, typer.Option(help="Seconds between heartbeats.")] = 30.0,
        gateway_url: Annotated[
            str | None, typer.Option(help="Gateway URL [ATS_GATEWAY_URL].")
        ] = None,
    ) -> None:
        settings, token = client_settings(f"trigger:{kind}")
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
                    token=token,
                    url=gateway_url or settings.gateway_url,
                )
            )
        except ValueError as e:  # bad params or feed spec: the operator's to fix
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        log.info(
            "trigger_done",
            candles=stats.candles,
            signals=stats.signals,
            duplicates=stats.duplicates,
            gaps=stats.gaps,
        )

    command.__doc__ = f"Run the {kind!r} trigger over a candle feed; token from ATS_TRIGGER_TOKEN."
    return command


for _kind in trigger_kinds():
    app.command(name=_kind)(_candle_command(_kind))


# The news analyzer is not a candle trigger: it has its own options. Its module
# imports only typer and settings; LangChain and friends load when it runs.
from triggers.news.cli import news  # noqa: E402

app.command(name="news")(news)
