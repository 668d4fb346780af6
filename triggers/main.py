"""Assemble a trigger process: trigger, feed, client, runner."""

from __future__ import annotations

from typing import Any

from shared.config import CommonSettings
from shared.db.engine import create_engine
from shared.market.feeds import parse_feed_spec
from shared.market.store import CandleStore
from shared.sdk import GatewayClient
from triggers.base import create_trigger
from triggers.runner import RunStats, TriggerRunner, install_signal_handlers


async def run_trigger(
    *,
    kind: str,
    symbol: str,
    timeframe: str,
    feed_spec: str,
    params: dict[str, Any],
    token: str,
    url: str,
    speed: float | None = None,
    heartbeat: float = 30.0,
) -> RunStats:
    trigger = create_trigger(kind, params, symbol=symbol, timeframe=timeframe)
    runner = TriggerRunner(trigger, GatewayClient(url, token=token), heartbeat_interval=heartbeat)
    store = None
    engine = None
    if feed_spec.startswith("ccxt:"):
        # A live feed keeps what it fetched in the candle store (ATS_DATABASE_URL, the
        # gateway's database, which the gateway migrates), so a restart resumes after
        # the last stored candle instead of fetching again.
        settings = CommonSettings()
        engine = create_engine(settings.resolved_database_url, schema=settings.database_schema)
        store = CandleStore(engine)
    try:
        feed = parse_feed_spec(
            feed_spec,
            symbol=symbol,
            timeframe=timeframe,
            speed=speed,
            store=store,
            on_gap=runner.report_gap,
        )
        install_signal_handlers(runner)
        return await runner.run(feed)
    finally:
        if engine is not None:
            await engine.dispose()
