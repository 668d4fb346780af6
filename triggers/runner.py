"""The I/O shell around a trigger: feed in, signals out through the gateway.

The runner owns the SDK connection, heartbeats (`log` frames with code
TRIGGER_HEARTBEAT), reports feed gaps, and stops cleanly on SIGTERM. Each signal's
id is derived from the trigger, market, candle and rule, so a restarted trigger that
replays candles it already published is answered "duplicate" and nothing is routed
twice. Publishing awaits the gateway's ack before the next candle, so a gateway
restart delays signals but never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal as signals
import uuid
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.events import TRIGGER_HEARTBEAT, Category, Trace
from shared.logging import get_logger
from shared.market.candles import Candle, Gap
from shared.market.feeds import CandleFeed
from shared.sdk import AckTimeout, GatewayClient, Unavailable
from triggers.base import SignalDraft, Trigger, TriggerEngine

log = get_logger(__name__)

# Signal ids are uuid5 in this namespace over (trigger, symbol, timeframe, candle, rule).
SIGNAL_NAMESPACE = uuid.UUID("8a0f5a36-3f7e-4c8e-9d55-2f4f2f3c7a10")


def signal_id(trigger_name: str, candle: Candle, rule: str, epoch: str = "") -> uuid.UUID:
    """The signal's id. `epoch` (the trigger's `id_epoch` config) starts a new id space:
    an operator replaying the same data again on purpose changes it."""
    key = f"{trigger_name}|{candle.symbol}|{candle.timeframe}|{candle.open_time.isoformat()}|{rule}"
    if epoch:
        key = f"{key}|{epoch}"
    return uuid.uuid5(SIGNAL_NAMESPACE, key)


@dataclass
class RunStats:
    candles: int = 0
    signals: int = 0
    duplicates: int = 0
    gaps: int = 0
    last_candle: datetime | None = None


class TriggerRunner:
    """Run `trigger` over `feed`, publishing through `client` until the feed ends or
    `stop()` is called."""

    def __init__(
        self,
        trigger: Trigger,
        client: GatewayClient,
        *,
        heartbeat_interval: float = 30.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.trigger = trigger
        self.engine = TriggerEngine(trigger)
        self.client = client
        self.heartbeat_interval = heartbeat_interval
        self.stats = RunStats()
        self._now = now
        self._stopping = asyncio.Event()
        self._name = ""

    async def report_gap(self, gap: Gap) -> None:
        """Feed hook: a hole in the data is told to operators, never papered over."""
        self.stats.gaps += 1
        await self.client.log(
            f"{gap.missing} missing {gap.timeframe} candle(s) of {gap.symbol} "
            f"between {gap.start.isoformat()} and {gap.end.isoformat()}",
            level="warning",
            code="FEED_GAP",
            data={
                "symbol": gap.symbol,
                "timeframe": gap.timeframe,
                "start": gap.start.isoformat(),
                "end": gap.end.isoformat(),
                "missing": gap.missing,
            },
        )

    def stop(self) -> None:
        self._stopping.set()

    async def run(self, feed: CandleFeed) -> RunStats:
        """Connect, process the feed, and return what was done."""
        async with self.client:
            self._name = str(self.client.config.get("name") or self.client.client_id or "")
            heartbeat = asyncio.create_task(self._heartbeats(), name="heartbeat")
            consume = asyncio.create_task(self._consume(feed), name="consume")
            stopper = asyncio.create_task(self._stopping.wait(), name="stopper")
            try:
                done, _ = await asyncio.wait(
                    {consume, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                if consume in done:
                    consume.result()  # a feed error ends the run with that error
            finally:
                for task in (heartbeat, consume, stopper):
                    task.cancel()
                await asyncio.gather(heartbeat, consume, stopper, return_exceptions=True)
            await self._heartbeat(final=True)
        return self.stats

    async def _consume(self, feed: CandleFeed) -> None:
        async with aclosing(feed.stream()) as candles:
            async for candle in candles:
                for draft in self.engine.on_candle(candle):
                    await self._publish(candle, draft)
                self.stats.candles += 1
                self.stats.last_candle = candle.open_time
        log.info("feed_ended", trigger=self.trigger.describe(), candles=self.stats.candles)

    async def _publish(self, candle: Candle, draft: SignalDraft) -> None:
        epoch = str((self.client.config.get("config") or {}).get("id_epoch") or "")
        event_id = signal_id(self._name, candle, draft.rule, epoch)
        payload: dict[str, Any] = {
            "signal_type": "immediate",
            "symbol": candle.symbol,
            "timeframe": candle.timeframe,
            "direction": draft.direction.value,
            "strength": round(draft.strength, 4),
            "candle_time": candle.open_time.isoformat(),
            "trigger": self.trigger.kind,
            "rule": draft.rule,
            **draft.values,
        }
        while True:
            try:
                result = await self.client.publish(
                    Category.SIGNAL,
                    payload,
                    id=event_id,
                    title=draft.title,
                    tags=[self.trigger.kind, draft.rule],
                    trace=Trace(correlation_id=str(event_id)),
                    ts=candle.close_time,
                )
                break
            except (AckTimeout, Unavailable) as e:
                # The gateway is down or its store is: keep this signal (same id, so
                # it counts once) and wait; moving on would lose it.
                log.warning("publish_retry", signal=str(event_id), error=repr(e))
        if result.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.signals += 1

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
                    "trigger": self.trigger.kind,
                    "symbol": self.trigger.symbol,
                    "timeframe": self.trigger.timeframe,
                    "candles": s.candles,
                    "signals": s.signals,
                    "duplicates": s.duplicates,
                    "gaps": s.gaps,
                    "last_candle": s.last_candle.isoformat() if s.last_candle else None,
                    "final": final,
                },
                timeout=5.0,
            )


def install_signal_handlers(runner: TriggerRunner) -> None:
    """SIGTERM and SIGINT stop the runner cleanly (close the session, exit 0)."""
    loop = asyncio.get_running_loop()
    for sig in (signals.SIGTERM, signals.SIGINT):
        loop.add_signal_handler(sig, runner.stop)
