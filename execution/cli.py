"""`ats execution` (also `python -m execution`): run the execution service."""

from __future__ import annotations

import asyncio
import signal as signals
from typing import Annotated

import typer
from pydantic import ValidationError

from shared.logging import configure_logging, get_logger

log = get_logger("execution")


def main(
    gateway_url: Annotated[str | None, typer.Option(help="Gateway URL [ATS_GATEWAY_URL].")] = None,
) -> None:
    """Serve the trade accounts bound to this execution service; its token comes from
    ATS_EXECUTION_TOKEN. Live accounts trade only with ATS_ENABLE_LIVE_TRADING set to
    the confirmation value (see docs/EXECUTION.md)."""
    from execution.settings import ExecutionSettings

    try:
        settings = ExecutionSettings()
    except ValidationError as e:
        typer.echo(f"error: {e.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from e
    configure_logging(level=settings.log_level, json=settings.log_json, service="execution")
    if settings.execution_token is None:
        typer.echo(
            "error: set ATS_EXECUTION_TOKEN to the token the gateway issued for this service",
            err=True,
        )
        raise typer.Exit(2)
    asyncio.run(_run(settings, gateway_url or settings.gateway_url))


async def _run(settings: object, url: str) -> None:
    from execution.service import ExecutionService
    from execution.settings import ExecutionSettings
    from execution.store import ExecutionStore
    from shared.db.engine import create_engine
    from shared.sdk import GatewayClient

    assert isinstance(settings, ExecutionSettings)
    assert settings.execution_token is not None
    engine = create_engine(settings.resolved_database_url, schema=settings.database_schema)
    client = GatewayClient(url, token=settings.execution_token.get_secret_value())
    service = ExecutionService(client, ExecutionStore(engine), settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signals.SIGTERM, signals.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with client:
            await service.start()
            log.info(
                "execution_running",
                client_id=client.client_id,
                accounts=sorted(service.accounts),
                live_trading_enabled=settings.live_trading_enabled,
            )
            await stop.wait()
    finally:
        await service.close()
        await engine.dispose()
    log.info("execution_stopped")


app = typer.Typer(add_completion=False)
app.command()(main)
