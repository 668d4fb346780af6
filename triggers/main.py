"""Assemble a trigger process: trigger, feed, client, runner."""

from __future__ import annotations

from typing import Any

from shared.market.feeds import parse_feed_spec
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
    feed = parse_feed_spec(
        feed_spec, symbol=symbol, timeframe=timeframe, speed=speed, on_gap=runner.report_gap
    )
    install_signal_handlers(runner)
    return await runner.run(feed)
