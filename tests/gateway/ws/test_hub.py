"""The hub against real WebSocket clients: auth, routing, errors, idempotency, replay."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.db.models import PositionRow
from shared.events import Ack
from tests.conftest import Gateway, eventually
from tests.gateway.ws.wsclient import RawClient, close_reason, decision, open_raw, order, signal

# --------------------------------------------------------------------------- auth


async def test_auth_valid_tokens_connect_with_their_config(gateway: Gateway) -> None:
    t = await gateway.add_trigger("rsi-btc")
    g = await gateway.add_group("momentum", ["rsi-btc"])
    await gateway.add_account("paper-1", ["momentum"])
    e = await gateway.add_execution("exec-1", ["paper-1"])

    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    grp = await RawClient.connect(gateway.ws_url, bearer=g)
    exe = await RawClient.connect(gateway.ws_url, param="execution_token", token=e)

    assert trig.hello["role"] == "trigger"
    assert trig.hello["client_id"].startswith("trigger:rsi-btc:")
    assert grp.hello["subscriptions"] == ["rsi-btc"]
    assert grp.hello["config"]["trade_accounts"] == ["paper-1"]
    assert grp.hello["protocol"] == 1 and grp.hello["cursor"] == 0
    assert grp.hello["limits"]["max_frame_bytes"] == gateway.settings.ws_max_frame_bytes
    assert exe.hello["config"]["trade_accounts"][0]["name"] == "paper-1"
    assert exe.hello["subscriptions"] == ["momentum"]
    for c in (trig, grp, exe):
        await c.close()


async def test_auth_group_connect_ack_carries_its_open_positions(gateway: Gateway) -> None:
    """A restarted group learns what it holds from the ack: execution's stored book."""
    t = await gateway.add_trigger("rsi-btc")
    g = await gateway.add_group("momentum", ["rsi-btc"])
    opened = datetime(2024, 3, 1, 12, 5, tzinfo=UTC)
    rows = [
        ("paper-1", "ETH/BTC", "momentum", "0.123456789012345678", "0.05", opened),
        ("paper-2", "ETH/BTC", "momentum", "2", None, None),
        ("paper-1", "LTC/BTC", "momentum", "0", "0.001", opened),  # closed: not held
        ("paper-1", "XRP/BTC", "other", "5", "0.00001", opened),  # another group's
    ]
    async with gateway.state.sessionmaker() as db:
        for account, symbol, group, quantity, price, at in rows:
            db.add(
                PositionRow(
                    account=account,
                    symbol=symbol,
                    trading_group=group,
                    quantity=Decimal(quantity),
                    average_price=None if price is None else Decimal(price),
                    unrealized_pnl=Decimal(0),
                    realized_pnl=Decimal(0),
                    opened_at=at,
                )
            )
        await db.commit()

    grp = await RawClient.connect(gateway.ws_url, bearer=g)
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)

    assert grp.hello["positions"] == [
        {
            "trade_account": "paper-1",
            "symbol": "ETH/BTC",
            "quantity": "0.123456789012345678",
            "average_price": "0.05",
            "opened_at": "2024-03-01T12:05:00Z",
        },
        {
            "trade_account": "paper-2",
            "symbol": "ETH/BTC",
            "quantity": "2",
            "average_price": None,
            "opened_at": None,
        },
    ]
    ack = Ack.model_validate(grp.hello)  # what the SDK reads
    assert ack.positions is not None and ack.positions[0].quantity == Decimal(
        "0.123456789012345678"
    )
    assert "positions" not in trig.hello
    for c in (grp, trig):
        await c.close()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({}, "missing token"),
        ({"param": "trigger_token", "token": "ats_trg_nope"}, "invalid token"),
        ({"bearer": "ats_trg_nope"}, "invalid token"),
    ],
)
async def test_auth_bad_token_closes_1008(
    gateway: Gateway, kwargs: dict[str, Any], reason: str
) -> None:
    assert await close_reason(gateway.ws_url, **kwargs) == (1008, reason)


async def test_auth_token_for_another_role_closes_1008(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    code = await close_reason(gateway.ws_url, param="trading_group_token", token=t)
    assert code == (1008, "invalid token")


async def test_auth_two_tokens_closes_1008(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    code = await close_reason(f"{gateway.ws_url}?trigger_token={t}", bearer=t)
    assert code == (1008, "more than one token: send exactly one")


async def test_auth_revoked_token_closes_1008_and_live_session_is_closed(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    client = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    async with gateway.api() as api:
        r = await api.delete("/api/v1/triggers/t1/token")
    assert r.status_code in (200, 204), r.text
    assert await asyncio.wait_for(client.closed, 10) == (1008, "token revoked")
    assert await close_reason(gateway.ws_url, param="trigger_token", token=t) == (
        1008,
        "token revoked",
    )


async def test_auth_second_session_with_same_token_closes_1008(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    first = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    assert await close_reason(gateway.ws_url, param="trigger_token", token=t) == (
        1008,
        "token already connected",
    )
    # The first session is untouched.
    ack = await first.request(signal())
    assert ack["ok"] is True
    await first.close()


# --------------------------------------------------------------------------- routing


async def _chain(gateway: Gateway) -> dict[str, RawClient]:
    t = await gateway.add_trigger("rsi-btc")
    other = await gateway.add_trigger("rsi-eth")
    g1 = await gateway.add_group("g1", ["rsi-btc"])
    g2 = await gateway.add_group("g2", ["rsi-btc", "rsi-eth"])
    g3 = await gateway.add_group("g3", ["rsi-eth"])
    await gateway.add_account("acct-1", ["g1"])
    e = await gateway.add_execution("exec-1", ["acct-1"])
    url = gateway.ws_url
    return {
        "trigger": await RawClient.connect(url, param="trigger_token", token=t),
        "other": await RawClient.connect(url, param="trigger_token", token=other),
        "g1": await RawClient.connect(url, param="trading_group_token", token=g1),
        "g2": await RawClient.connect(url, param="trading_group_token", token=g2),
        "g3": await RawClient.connect(url, param="trading_group_token", token=g3),
        "exec": await RawClient.connect(url, param="execution_token", token=e),
    }


async def test_route_signal_fans_out_to_subscribed_groups_only(gateway: Gateway) -> None:
    c = await _chain(gateway)
    ack = await c["trigger"].request(signal(rsi=28.4))
    assert ack["ok"] is True and ack["message"] == "accepted"
    assert ack["dispatched_clients"] == 2
    await eventually(lambda: len(c["g1"].events) == 1 and len(c["g2"].events) == 1)
    ev = c["g1"].events[0]
    assert ev["id"] == ack["id"] and ev["seq"] == ack["seq"]
    assert ev["source"] == "trigger:rsi-btc"
    assert ev["payload"]["rsi"] == 28.4
    assert ev["ts"].endswith("Z")
    # Routing is by subscription: nothing reaches g3, the execution service or the sender.
    await c["other"].request(signal())  # a later event, to be sure nothing else is in flight
    await eventually(lambda: len(c["g3"].events) == 1)
    assert [e["source"] for e in c["g3"].events] == ["trigger:rsi-eth"]
    assert c["exec"].events == [] and c["trigger"].events == []


async def test_route_signal_targets_narrow_the_fan_out(gateway: Gateway) -> None:
    c = await _chain(gateway)
    ack = await c["trigger"].request({**signal(), "targets": ["g2"]})
    assert ack["dispatched_clients"] == 1
    await eventually(lambda: len(c["g2"].events) == 1)
    assert c["g1"].events == []


async def test_route_decision_to_execution_and_order_back_to_group(gateway: Gateway) -> None:
    c = await _chain(gateway)
    sig = await c["trigger"].request(signal())
    d = decision()
    d["trace"] = {"correlation_id": sig["id"], "causation_id": sig["id"]}
    dack = await c["g1"].request(d)
    assert dack["ok"] is True and dack["dispatched_clients"] == 1
    await eventually(lambda: len(c["exec"].events) == 1)
    got = c["exec"].events[0]
    assert got["source"] == "trading_group:g1"
    assert got["trace"] == {"correlation_id": sig["id"], "causation_id": sig["id"]}
    oack = await c["exec"].request(order("g1"))
    assert oack["ok"] is True and oack["dispatched_clients"] == 1
    await eventually(lambda: any(e["category"] == "order" for e in c["g1"].events))
    # g2 made no decision and has no account: a decision from it reaches nobody.
    none = await c["g2"].request(decision())
    assert none["ok"] is True and none["dispatched_clients"] == 0


# --------------------------------------------------------------------------- errors


async def test_errors_each_rejection_is_typed_and_the_connection_survives(
    gateway: Gateway,
) -> None:
    c = await _chain(gateway)
    trig = c["trigger"]

    async def reply_to(raw: str | bytes) -> dict[str, Any]:
        waiter = await trig.next_reply()
        await trig.send_raw(raw)
        result: dict[str, Any] = await waiter
        return result

    bad = await reply_to("{not json")
    assert (bad["ok"], bad["message"]) == (False, "bad_json")

    invalid = await reply_to(json.dumps({"kind": "event", "category": "signal"}))
    assert invalid["message"] == "validation_error"
    assert invalid["detail"][0]["loc"] == ["payload"]

    out_of_range = await reply_to(json.dumps(signal(strength=3)))
    assert out_of_range["message"] == "validation_error"
    assert out_of_range["detail"][0]["loc"] == ["payload", "strength"]

    sourced = await trig.request({**signal(), "source": "trigger:someone-else"})
    assert sourced["message"] == "validation_error"
    assert "set by the gateway" in sourced["detail"][0]["msg"]

    forbidden = await trig.request(decision())
    assert (forbidden["ok"], forbidden["message"]) == (False, "forbidden_event")

    config = await trig.request(
        {"kind": "event", "category": "config_update", "payload": {"config": {}}}
    )
    assert config["message"] == "forbidden_event"

    unbound = await c["exec"].request(order("g3"))
    assert unbound["message"] == "forbidden_event"
    assert "g3" in unbound["detail"]

    large = await reply_to(json.dumps(signal(analysis="x" * 70_000)))
    assert large["message"] == "too_large"

    # After all of that, the same connection still publishes.
    ok = await trig.request(signal())
    assert ok["ok"] is True
    await eventually(lambda: len(c["g1"].events) == 1)


@pytest.mark.gateway(ws_rate_limit=5, ws_rate_burst=5)
async def test_errors_rate_limit_rejects_excess_frames_and_keeps_the_connection(
    gateway: Gateway,
) -> None:
    await gateway.add_trigger("t1")
    t = await gateway.add_trigger("t2")
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    ids = [str(uuid.uuid4()) for _ in range(20)]
    for i in ids:
        await trig.send_raw(json.dumps({**signal(), "id": i}))
    await eventually(lambda: len(trig.acks) == 20)
    outcomes = [trig.acks[i]["message"] for i in ids]
    assert outcomes[:5] == ["accepted"] * 5
    assert "rate_limited" in outcomes[5:]
    await asyncio.sleep(0.5)  # the bucket refills at 5/s
    assert (await trig.request(signal()))["ok"] is True


@pytest.mark.gateway(ws_bad_frame_limit=5)
async def test_errors_flood_of_bad_frames_closes_1008(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    for _ in range(10):
        await trig.send_raw("nope")
    assert await asyncio.wait_for(trig.closed, 10) == (1008, "too many rejected frames")


# --------------------------------------------------------------------------- idempotency


async def test_idempotent_republish_returns_original_seq_and_routes_once(
    gateway: Gateway,
) -> None:
    c = await _chain(gateway)
    frame = {**signal(), "id": str(uuid.uuid4())}
    first = await c["trigger"].request(frame)
    again = await c["trigger"].request(frame)
    assert (first["message"], again["message"]) == ("accepted", "duplicate")
    assert again["seq"] == first["seq"] and again["dispatched_clients"] == 0
    # A marker event after it proves the duplicate was not delivered late.
    marker = await c["trigger"].request(signal("ETH/BTC"))
    await eventually(lambda: any(e["id"] == marker["id"] for e in c["g1"].events))
    assert [e["id"] for e in c["g1"].events] == [first["id"], marker["id"]]


# --------------------------------------------------------------------------- replay


async def test_replay_offline_subscriber_gets_missed_events_in_order(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    sent = [await trig.request(signal(n=i)) for i in range(30)]
    assert all(a["dispatched_clients"] == 0 for a in sent)
    grp = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    await eventually(lambda: len(grp.events) == 30)
    assert [e["seq"] for e in grp.events] == [a["seq"] for a in sent]
    await grp.close()
    # Acknowledged: a reconnect replays nothing more.
    await eventually(
        lambda: (
            gateway.state.hub.persister.pending_cursor("trading_group:g1") == 0
            and "trading_group:g1" not in gateway.state.hub.sessions
        )
    )
    again = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    assert again.hello["cursor"] == sent[-1]["seq"]
    late = await trig.request(signal())
    await eventually(lambda: len(again.events) == 1)
    assert again.events[0]["id"] == late["id"]


# --------------------------------------------------------------------------- back-pressure


@pytest.mark.gateway(ws_send_queue=20, ws_rate_limit=100_000, ws_rate_burst=100_000)
async def test_slow_consumer_is_disconnected_and_catches_up_by_replay(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    slow_token = await gateway.add_group("slow", ["t1"])
    fast_token = await gateway.add_group("fast", ["t1"])
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    fast = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=fast_token)
    # A client that never reads: its socket buffers fill, then its outbox.
    slow = await open_raw(
        gateway.ws_url, param="trading_group_token", token=slow_token, rcvbuf=4096
    )

    n = 150
    # Large and incompressible (permessage-deflate is on), so kernel socket buffers,
    # autotuned to MBs on loopback, fill after a few dozen events.
    big = base64.b64encode(os.urandom(36_000)).decode()
    acks = []
    for i in range(n):
        acks.append(await trig.request(signal(n=i, blob=big)))
    assert all(a["ok"] for a in acks)
    # The fast subscriber got everything, undelayed by the slow one.
    await eventually(lambda: len(fast.events) == n, timeout=30)
    await eventually(lambda: "trading_group:slow" not in gateway.state.hub.sessions, timeout=30)
    assert gateway.state.hub.metrics.disconnects.labels("overflow")._value.get() == 1
    slow.transport.abort()  # a stuck client: no closing handshake to wait for

    again = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=slow_token)
    await eventually(lambda: len(again.events) == n, timeout=30)
    assert [e["id"] for e in again.events] == [a["id"] for a in acks]


# --------------------------------------------------------------------------- logs


async def test_log_frames_are_persisted_and_acked(gateway: Gateway) -> None:
    g = await gateway.add_group("g1", [])
    grp = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    ack = await grp.request(
        {
            "kind": "log",
            "code": "TRADING_GROUP_DISCUSSION_LOG",
            "message": "analyst: RSI is oversold",
            "data": {"member": "technical"},
            "trace": {"correlation_id": "c-1"},
        }
    )
    assert ack["ok"] is True and ack["message"] == "accepted"
    from sqlalchemy import func, select

    from shared.db.models import LogRow

    async with gateway.state.sessionmaker() as s:
        row = await s.scalar(select(LogRow).where(LogRow.id == ack["id"]))
    assert row is not None
    assert (row.source, row.code, row.correlation_id) == (
        "trading_group:g1",
        "TRADING_GROUP_DISCUSSION_LOG",
        "c-1",
    )
    assert row.data == {"member": "technical"}
    # A re-sent log (same id, e.g. after a reconnect) is accepted and stored once.
    again = await grp.request({"kind": "log", "id": ack["id"], "message": "again"})
    assert again["ok"] is True
    async with gateway.state.sessionmaker() as s:
        count = await s.scalar(select(func.count()).where(LogRow.id == ack["id"]))
    assert count == 1


async def test_errors_store_unavailable_is_reported_and_resend_succeeds(gateway: Gateway) -> None:
    from sqlalchemy import text

    c = await _chain(gateway)
    frame = {**signal(), "id": str(uuid.uuid4())}
    async with gateway.state.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE events RENAME TO events_away"))
    try:
        down = await c["trigger"].request(frame)
    finally:
        async with gateway.state.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE events_away RENAME TO events"))
    assert (down["ok"], down["message"]) == (False, "unavailable")
    assert c["g1"].events == []  # nothing unstored was delivered
    # The same connection re-sends the same id once the store is back.
    up = await c["trigger"].request(frame)
    assert (up["ok"], up["message"]) == (True, "accepted")
    await eventually(lambda: [e["id"] for e in c["g1"].events] == [frame["id"]])


# --------------------------------------------------------------------------- lifecycle


async def test_lifecycle_disabled_client_is_closed_and_refused(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    async with gateway.api() as api:
        r = await api.patch("/api/v1/triggers/t1", json={"enabled": False})
        assert r.status_code == 200, r.text
        assert await asyncio.wait_for(trig.closed, 10) == (1008, "disabled")
        assert await close_reason(gateway.ws_url, param="trigger_token", token=t) == (
            1008,
            "disabled",
        )
        r = await api.patch("/api/v1/triggers/t1", json={"enabled": True})
        assert r.status_code == 200, r.text
    again = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    assert (await again.request(signal()))["ok"] is True


async def test_lifecycle_new_client_with_a_deleted_ones_name_gets_no_old_events(
    gateway: Gateway,
) -> None:
    t = await gateway.add_trigger("t1")
    await gateway.add_group("g1", ["t1"])
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    for _ in range(3):
        assert (await trig.request(signal()))["ok"] is True  # g1 is offline: kept for it
    async with gateway.api() as api:
        assert (await api.delete("/api/v1/trading-groups/g1")).status_code == 204
        r = await api.post("/api/v1/trading-groups", json={"name": "g1", "triggers": ["t1"]})
        assert r.status_code == 201, r.text
    grp = await RawClient.connect(
        gateway.ws_url, param="trading_group_token", token=r.json()["token"]
    )
    new = await trig.request(signal())
    await eventually(lambda: len(grp.events) >= 1)
    assert [e["id"] for e in grp.events] == [new["id"]]
