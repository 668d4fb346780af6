"""The SDK client against a real gateway: publish and ack, handlers, errors, reconnects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from shared.db.models import ClientCursor, EventRow, LogRow, TokenRow, TradingGroupRow, TriggerRow
from shared.events import (
    Ack,
    Action,
    ConfigUpdateEvent,
    DecisionEvent,
    DeliveredEvent,
    Direction,
    Role,
    SignalEvent,
)
from shared.sdk import (
    AckTimeout,
    AuthenticationError,
    ClientClosed,
    ForbiddenEvent,
    GatewayClient,
    InvalidEvent,
    PublishRejected,
    PublishResult,
    TooLarge,
)
from tests.conftest import (
    TIMEOUT_FACTOR,
    Gateway,
    eventually,
    free_port,
    gateway_settings,
    start_gateway,
)


def make_client(url: str, token: str, **options: Any) -> GatewayClient:
    """A client with test-sized delays: reconnects within tens of milliseconds."""
    values: dict[str, Any] = {
        "min_reconnect_delay": 0.02,
        "max_reconnect_delay": 0.2,
        "ack_timeout": 10 * TIMEOUT_FACTOR,
        "connect_timeout": 10 * TIMEOUT_FACTOR,
        "ack_interval": 0.02,
    }
    values.update(options)
    return GatewayClient(url, token=token, **values)


@asynccontextmanager
async def running(client: GatewayClient) -> AsyncIterator[asyncio.Task[None]]:
    """Run a client in the background (without waiting for a connection); stop it after."""
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        await client.close()
        await asyncio.wait({task})


def signal(**payload: Any) -> dict[str, Any]:
    return {"symbol": "BTC/USDT", "direction": "long", "strength": 0.8, **payload}


async def acked(gateway: Gateway, key: str) -> int:
    """The client's cursor on the gateway: flushed to the database or still pending."""
    async with gateway.state.sessionmaker() as s:
        stored = await s.scalar(select(ClientCursor.seq).where(ClientCursor.principal == key))
    return max(stored or 0, gateway.state.hub.persister.pending_cursor(key))


# --------------------------------------------------------------------------- publish


async def test_publish_signal_returns_seq_and_subscriber_gets_typed_event(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("rsi-btc")
    g = await gateway.add_group("momentum", ["rsi-btc"])
    received: list[SignalEvent] = []
    group = make_client(gateway.ws_url, g)

    @group.on("signal")
    async def on_signal(event: SignalEvent) -> None:
        received.append(event)

    async with group, make_client(gateway.ws_url, t) as trigger:
        assert group.client_id is not None and group.client_id.startswith("trading_group:momentum:")
        assert group.role is Role.TRADING_GROUP and trigger.role is Role.TRIGGER
        assert group.subscriptions == ["rsi-btc"]
        assert group.config["name"] == "momentum"

        result = await trigger.publish(
            "signal", signal(rsi=28.4), title="RSI(14) < 30", tags=["rsi"], priority=7
        )
        assert result.seq >= 1 and result.dispatched_clients == 1
        assert result.duplicate is False

        await eventually(lambda: received)
        event = received[0]
        assert isinstance(event, SignalEvent)
        assert (event.id, event.seq) == (result.id, result.seq)
        assert event.source == "trigger:rsi-btc"
        assert event.payload.direction is Direction.LONG
        assert event.payload.model_extra == {"rsi": 28.4}
        assert (event.title, event.tags, event.priority) == ("RSI(14) < 30", ["rsi"], 7)

        # Handled, so acknowledged: the gateway's cursor for the group moves to it.
        async def acked_it() -> bool:
            return await acked(gateway, "trading_group:momentum") == result.seq

        await eventually(acked_it, message="the group's ack")


async def test_publish_same_id_twice_is_a_duplicate_with_the_original_seq(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    async with make_client(gateway.ws_url, t) as trigger:
        event_id = uuid.uuid4()
        first = await trigger.publish("signal", signal(), id=event_id)
        again = await trigger.publish("signal", signal(), id=str(event_id))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.seq == first.seq and again.id == first.id == event_id


async def test_publish_rejected_raises_typed_error_and_client_keeps_working(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    async with make_client(gateway.ws_url, t) as trigger:
        with pytest.raises(ForbiddenEvent) as forbidden:
            await trigger.publish(
                "decision", {"symbol": "BTC/USDT", "action": "BUY", "confidence": 0.5}
            )
        assert forbidden.value.reason == "forbidden_event"
        assert "signal" in forbidden.value.detail

        with pytest.raises(PublishRejected) as config:
            await trigger.publish("config_update", {"config": {}})
        assert config.value.reason == "forbidden_event"

        # Still the same session, still publishing.
        client_id = trigger.client_id
        result = await trigger.publish("signal", signal())
        assert result.seq >= 1 and trigger.client_id == client_id
        assert trigger.stats.connects == 1


async def test_publish_on_a_client_that_is_not_running_times_out() -> None:
    client = GatewayClient("ws://127.0.0.1:9/ws/events", token="ats_trg_unused")
    with pytest.raises(AckTimeout, match="not running"):
        await client.publish("signal", signal(), timeout=0.05)


async def test_publish_invalid_frame_raises_before_sending() -> None:
    # No gateway: a bad frame must fail locally, without a connection.
    client = GatewayClient("ws://127.0.0.1:9/ws/events", token="ats_trg_unused")
    with pytest.raises(InvalidEvent) as bad:
        await client.publish("signal", signal(strength=3))
    assert bad.value.reason == "validation_error"
    assert bad.value.detail[0]["loc"] == ["payload", "strength"]

    with pytest.raises(InvalidEvent):
        await client.publish("signal", signal(), targets=["not a name!"])
    with pytest.raises(InvalidEvent):
        await client.publish("signal", signal(), id="not-a-uuid")
    with pytest.raises(InvalidEvent, match="unknown category"):
        await client.publish("news", {})
    with pytest.raises(TooLarge) as large:
        await client.publish("signal", signal(analysis="x" * 19_000, notes=["y" * 1000] * 60))
    assert large.value.reason == "too_large"
    with pytest.raises(ValueError, match="unknown category"):
        client.add_handler("news", lambda e: None)


@pytest.mark.gateway(ws_rate_limit=50, ws_rate_burst=5)
async def test_publish_rate_limited_is_retried_until_accepted(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    async with make_client(gateway.ws_url, t) as trigger:
        results = await asyncio.gather(*(trigger.publish("signal", signal()) for _ in range(25)))
    assert len({r.seq for r in results}) == 25
    rejected = gateway.state.metrics.registry.get_sample_value(
        "ats_frames_rejected_total", {"reason": "rate_limited"}
    )
    assert rejected is not None and rejected > 0


async def test_log_is_stored_and_acknowledged(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    async with make_client(gateway.ws_url, t) as trigger:
        log_id = await trigger.log("warming up", level="warning", code="BOOT", data={"n": 3})
    async with gateway.state.sessionmaker() as s:
        row = await s.scalar(select(LogRow).where(LogRow.id == str(log_id)))
    assert row is not None
    assert (row.source, row.level, row.code, row.data) == (
        "trigger:t1",
        "warning",
        "BOOT",
        {"n": 3},
    )


# --------------------------------------------------------------------------- auth


async def test_auth_invalid_token_raises_without_retrying(gateway: Gateway) -> None:
    client = make_client(gateway.ws_url, "ats_trg_" + "x" * 32)
    with pytest.raises(AuthenticationError) as refused:
        await asyncio.wait_for(client.run(), 10 * TIMEOUT_FACTOR)
    assert refused.value.reason == "invalid token"
    assert client.stats.connect_attempts == 1
    with pytest.raises(AuthenticationError):
        await client.publish("signal", signal())

    with pytest.raises(AuthenticationError):
        async with make_client(gateway.ws_url, "ats_trg_" + "y" * 32):
            pass


@pytest.mark.parametrize("reason", ["token revoked", "token rotated", "deleted"])
async def test_auth_token_refused_mid_session_stops_the_client(
    gateway: Gateway, reason: str
) -> None:
    t = await gateway.add_trigger("t1")
    client = make_client(gateway.ws_url, t)
    task = asyncio.create_task(client.run())
    await client.wait_connected(10 * TIMEOUT_FACTOR)
    async with gateway.state.sessionmaker() as s:
        trig = await s.scalar(select(TriggerRow).where(TriggerRow.name == "t1"))
        assert trig is not None
        for token in await s.scalars(select(TokenRow).where(TokenRow.principal_id == trig.id)):
            token.revoked = True
        await s.commit()
    gateway.state.hub.disconnect("trigger:t1", 1008, reason)
    with pytest.raises(AuthenticationError) as stopped:
        await asyncio.wait_for(task, 10 * TIMEOUT_FACTOR)
    with pytest.raises(AuthenticationError):
        await client.publish("signal", signal())
    assert stopped.value.reason == reason
    assert client.stats.connect_attempts == 1


async def test_auth_token_already_connected_is_retried_until_the_first_closes(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    first = make_client(gateway.ws_url, t)
    second = make_client(gateway.ws_url, t)
    async with first, running(second) as task:
        await eventually(lambda: second.stats.connect_attempts >= 3, message="retries")
        assert not second.connected and not task.done()
        await first.close()
        await second.wait_connected(10 * TIMEOUT_FACTOR)
        assert (await second.publish("signal", signal())).seq >= 1


async def test_wait_connected_times_out_when_nothing_listens() -> None:
    client = make_client(f"ws://127.0.0.1:{free_port()}/ws/events", "ats_trg_unused")
    async with running(client):
        with pytest.raises(TimeoutError):
            await client.wait_connected(0.3)
        assert client.stats.connect_attempts >= 1
    with pytest.raises(ClientClosed):
        await client.publish("signal", signal())


# --------------------------------------------------------------------------- reconnect


async def test_publish_while_gateway_down_waits_and_succeeds_after_restart(
    gateway: Gateway, tmp_path: Path
) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    received: list[DeliveredEvent] = []
    hellos: list[Ack] = []
    group = make_client(gateway.ws_url, g, on_connect=hellos.append)
    group.add_handler("signal", received.append)
    restarted: Gateway | None = None
    try:
        async with group, make_client(gateway.ws_url, t) as trigger:
            port = gateway.port
            await gateway.stop()
            await eventually(lambda: not trigger.connected and not group.connected)

            pending = asyncio.create_task(trigger.publish("signal", signal()))
            attempts = trigger.stats.connect_attempts
            await eventually(lambda: trigger.stats.connect_attempts >= attempts + 2)
            assert not pending.done()

            restarted = await start_gateway(
                gateway_settings(gateway.database, tmp_path / "data", port=port),
                gateway.database,
            )
            result = await pending
            await eventually(lambda: received)
            assert [e.id for e in received] == [result.id]
            assert len(hellos) == 2 and hellos[-1].client_id == group.client_id
    finally:
        if restarted is not None:
            await restarted.stop()


async def test_subscriber_killed_mid_stream_receives_every_event_exactly_once(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    seen: list[tuple[uuid.UUID, int]] = []
    group = make_client(gateway.ws_url, g, ack_batch=20, ack_interval=0.05)

    @group.on("signal")
    async def on_signal(event: SignalEvent) -> None:
        seen.append((event.id, event.seq))
        if len(seen) in (40, 170):
            abort(group)  # from inside the stream, with events still queued

    def abort(client: GatewayClient) -> None:
        if client.connection is not None:
            client.connection.transport.abort()

    async with group, make_client(gateway.ws_url, t) as trigger:
        published = []
        for batch in range(3):
            published += await asyncio.gather(
                *(trigger.publish("signal", signal(n=batch * 100 + i)) for i in range(100))
            )
            abort(group)  # and from outside, between bursts
        await eventually(lambda: len(seen) >= 300, message="all 300 events")
    expected = [(r.id, r.seq) for r in sorted(published, key=lambda r: r.seq)]
    assert seen == expected
    # Aborts that land while it is already reconnecting are no-ops: at least one happened.
    assert group.stats.connects >= 2


@pytest.mark.gateway(persist_batch_max=1)  # one commit per event: acks trickle in
async def test_publisher_killed_mid_stream_resends_and_each_event_counts_once(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    seen: list[uuid.UUID] = []
    group = make_client(gateway.ws_url, g)
    group.add_handler("signal", lambda e: seen.append(e.id))
    acked = 0

    async with group, make_client(gateway.ws_url, t) as trigger:

        async def publish(n: int) -> PublishResult:
            nonlocal acked
            result = await trigger.publish("signal", signal(n=n))
            acked += 1
            return result

        tasks = [asyncio.create_task(publish(n)) for n in range(200)]
        await eventually(lambda: acked >= 5, interval=0.001)
        assert trigger.connection is not None
        trigger.connection.transport.abort()
        results = await asyncio.gather(*tasks)
        await eventually(lambda: len(seen) >= 200, message="all 200 events")
    assert trigger.stats.connects == 2
    # Frames the gateway had read before the abort were stored then; their re-sends
    # come back as duplicates with the original seq, and count once.
    assert any(r.duplicate for r in results)
    assert len({r.seq for r in results}) == 200
    assert seen == [r.id for r in sorted(results, key=lambda r: r.seq)]
    async with gateway.state.sessionmaker() as s:
        stored = await s.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.source == "trigger:t1")
        )
    assert stored == 200


async def test_slow_subscriber_resyncs_by_replay_without_loss(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    release = asyncio.Event()
    seen: list[int] = []
    group = make_client(gateway.ws_url, g, max_queued_events=10)

    @group.on("signal")
    async def on_signal(event: SignalEvent) -> None:
        await release.wait()
        seen.append(event.seq)

    async with group, make_client(gateway.ws_url, t) as trigger:
        published = await asyncio.gather(
            *(trigger.publish("signal", signal(n=i)) for i in range(60))
        )
        await eventually(lambda: group.stats.resyncs >= 1, message="queue overflow")
        release.set()
        await eventually(lambda: len(seen) >= 60, message="all 60 events")
    assert seen == sorted(r.seq for r in published)
    assert group.stats.connects >= 2


# --------------------------------------------------------------------------- handlers


async def test_handler_that_publishes_a_decision_reaches_execution(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    await gateway.add_account("paper-1", ["g1"])
    e = await gateway.add_execution("exec-1", ["paper-1"])
    group = make_client(gateway.ws_url, g)
    execution = make_client(gateway.ws_url, e)
    decided: list[int] = []
    decisions: list[DecisionEvent] = []
    execution.add_handler("decision", decisions.append)

    @group.on("signal")
    async def decide(event: SignalEvent) -> None:
        result = await group.publish(
            "decision",
            {"symbol": event.payload.symbol, "action": "BUY", "confidence": 0.7, "entry": "1.5"},
            trace={"correlation_id": str(event.id), "causation_id": str(event.id)},
        )
        decided.append(result.seq)

    async with group, execution, make_client(gateway.ws_url, t) as trigger:
        sig = await trigger.publish("signal", signal())
        await eventually(lambda: decisions, message="the decision")
    decision = decisions[0]
    assert decision.seq == decided[0]
    assert decision.source == "trading_group:g1"
    assert decision.payload.action is Action.BUY and str(decision.payload.entry) == "1.5"
    assert decision.trace.causation_id == str(sig.id)


async def test_handler_error_is_logged_and_the_event_still_acknowledged(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    handled: list[int] = []
    group = make_client(gateway.ws_url, g)

    @group.on("signal")
    async def fragile(event: SignalEvent) -> None:
        if event.payload.model_extra and event.payload.model_extra.get("poison"):
            raise RuntimeError("cannot handle this one")
        handled.append(event.seq)

    async with group, make_client(gateway.ws_url, t) as trigger:
        poison = await trigger.publish("signal", signal(poison=True))
        fine = await trigger.publish("signal", signal())
        await eventually(lambda: handled == [fine.seq])
        await eventually(lambda: group.stats.acks_sent >= 1)
    assert group.stats.handler_errors == 1
    assert poison.seq < fine.seq
    # A new session starts after both: the poison event is not replayed forever.
    async with make_client(gateway.ws_url, g) as again:
        assert again.cursor == fine.seq


async def test_close_flushes_acks_so_nothing_is_replayed(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    group = make_client(gateway.ws_url, g, ack_batch=1000, ack_interval=60)
    seen: list[int] = []
    group.add_handler("signal", lambda e: seen.append(e.seq))
    async with group, make_client(gateway.ws_url, t) as trigger:
        results = [await trigger.publish("signal", signal()) for _ in range(5)]
        await eventually(lambda: len(seen) == 5)
        assert group.stats.acks_sent == 0
    assert group.stats.acks_sent == 1
    replayed: list[int] = []
    again = make_client(gateway.ws_url, g)
    again.add_handler("*", lambda e: replayed.append(e.seq))
    async with again:
        assert again.cursor == results[-1].seq
    assert replayed == []


async def test_config_update_updates_config_before_the_handler_runs(gateway: Gateway) -> None:
    await gateway.add_trigger("t1")
    await gateway.add_trigger("t2")
    g = await gateway.add_group("g1", ["t1"])
    group = make_client(gateway.ws_url, g)
    seen: list[tuple[ConfigUpdateEvent, dict[str, Any], list[str]]] = []

    @group.on("config_update")
    async def on_config(event: ConfigUpdateEvent) -> None:
        seen.append((event, dict(group.config), group.subscriptions))

    async with group:
        assert group.subscriptions == ["t1"] and group.config["config"] == {}
        async with gateway.state.sessionmaker() as s:
            row = await s.scalar(select(TradingGroupRow).where(TradingGroupRow.name == "g1"))
            t2 = await s.scalar(select(TriggerRow).where(TriggerRow.name == "t2"))
            assert row is not None and t2 is not None
            row.triggers.append(t2)
            row.config = {"max_risk": 0.01}
            await s.commit()
        await gateway.state.hub.reload_routing()
        await eventually(lambda: seen, message="config_update")
    event, config, subscriptions = seen[0]
    assert config == event.payload.config and config["config"] == {"max_risk": 0.01}
    assert subscriptions == ["t1", "t2"] == group.subscriptions
    assert group.config["config"] == {"max_risk": 0.01}


async def test_close_from_a_handler_acknowledges_that_event_and_stops(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    group = make_client(gateway.ws_url, g)
    handled: list[int] = []

    @group.on("signal")
    async def once(event: SignalEvent) -> None:
        handled.append(event.seq)
        await group.close()

    async with make_client(gateway.ws_url, t) as trigger, running(group) as task:
        await group.wait_connected(10 * TIMEOUT_FACTOR)
        first = await trigger.publish("signal", signal())
        await trigger.publish("signal", signal())
        await asyncio.wait_for(task, 10 * TIMEOUT_FACTOR)
    assert handled == [first.seq] and group.closed
    async with make_client(gateway.ws_url, g) as again:
        assert again.cursor == first.seq
