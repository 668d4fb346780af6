"""`ats`: one command for every service. Service imports happen inside each command so
`ats trigger` never loads the gateway, and the services stay independent."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="ATS trading platform.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


def _configure_logging(service: str) -> None:
    from shared.config import CommonSettings
    from shared.logging import configure_logging

    common = CommonSettings()
    configure_logging(level=common.log_level, json=common.log_json, service=service)


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Bind address [ATS_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port, 0 for any free one [ATS_PORT].")] = None,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations first.")] = True,
) -> None:
    """Run the gateway: the /ws/events hub and the operator REST API."""
    from gateway.server import run as run_gateway
    from gateway.settings import GatewaySettings

    _configure_logging("gateway")
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    run_gateway(GatewaySettings.model_validate(overrides), migrate=migrate)


@app.command()
def run(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    speed: Annotated[
        float, typer.Option(help="Replay speed of the shipped data (300 = a 5m candle a second).")
    ] = 3000.0,
) -> None:
    """Run the whole system on embedded defaults (SQLite in ATS_DATA_DIR)."""
    from ats.run import DEMO_TRIGGERS, Supervisor
    from gateway.settings import GatewaySettings
    from shared.db.engine import upgrade_sync

    _configure_logging("ats-run")
    settings = GatewaySettings(host=host, port=port)
    upgrade_sync(settings.resolved_database_url, settings.database_schema)
    api_key, created = settings.resolve_api_key()
    base = f"http://{host}:{port}"
    console.rule("[bold]ATS")
    console.print(f"database   {_safe_url(settings.resolved_database_url)}")
    console.print(f"REST API   {base}/api/v1   (docs: {base}/docs)")
    console.print(f"events     ws://{host}:{port}/ws/events")
    source = "generated now, saved in" if created else "from"
    where = "ATS_API_KEY" if settings.api_key else str(settings.data_dir / "api_key")
    console.print(f"API key    {api_key}   ({source} {where})", highlight=False)
    console.print(
        f'try        curl -s -H "Authorization: Bearer {api_key}" '
        f"'{base}/api/v1/events?category=signal&order=desc&limit=5'",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "demo       " + ", ".join(f"{t.name} ({t.kind} on {t.symbol})" for t in DEMO_TRIGGERS)
    )
    console.rule()
    supervisor = Supervisor(
        host=host,
        port=port,
        data_dir=settings.data_dir.resolve(),
        api_key=api_key,
        console=console,
        speed=speed,
    )
    try:
        asyncio.run(supervisor.run())
    except RuntimeError as e:
        console.print(f"[red]error: {e}")
        raise typer.Exit(1) from e


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def trigger(ctx: typer.Context) -> None:
    """Run a trigger: ats trigger KIND --symbol S --feed csv:PATH [--help]."""
    from triggers.cli import app as trigger_app

    trigger_app(ctx.args, prog_name="ats trigger")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def group(ctx: typer.Context) -> None:
    """Run a trading group: ats group algo [--strategy S --params JSON --feed SYM=FEED] [--help]."""
    from trading_groups.cli import app as group_app

    group_app(ctx.args, prog_name="ats group")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def execution(ctx: typer.Context) -> None:
    """Run the execution service (token in ATS_EXECUTION_TOKEN) [--help]."""
    from execution.cli import app as execution_app

    execution_app(ctx.args, prog_name="ats execution")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def ml(ctx: typer.Context) -> None:
    """Train models for the `ml` strategy: ats ml train --data FILE --horizon N [--help]."""
    from trading_groups.ml_cli import app as ml_app

    ml_app(ctx.args, prog_name="ats ml")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def backtest(ctx: typer.Context) -> None:
    """Backtest a strategy on candle files: ats backtest --strategy S --data FILE [--help]."""
    from ats.backtest_cli import app as backtest_app

    backtest_app(ctx.args, prog_name="ats backtest")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to ATS_DATABASE_URL (default: the embedded SQLite file)."""
    from shared.config import CommonSettings
    from shared.db.engine import upgrade_sync

    settings = CommonSettings()
    upgrade_sync(settings.resolved_database_url, settings.database_schema)
    console.print(f"migrated {_safe_url(settings.resolved_database_url)}")


@app.command()
def schema(
    check: Annotated[
        Path | None, typer.Option(help="Fail if this file differs from the generated schema.")
    ] = None,
) -> None:
    """Print the JSON Schema of the wire protocol (or check a committed copy)."""
    from shared.events import protocol_json_schema

    text = json.dumps(protocol_json_schema(), indent=2, sort_keys=True) + "\n"
    if check is None:
        sys.stdout.write(text)
        return
    if not check.exists() or check.read_text() != text:
        console.print(f"[red]{check} is stale: regenerate it with `make schema` and commit it")
        raise typer.Exit(1)
    console.print(f"{check} is current")


def _safe_url(url: str) -> str:
    from shared.logging import redact_text

    return redact_text(url)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
