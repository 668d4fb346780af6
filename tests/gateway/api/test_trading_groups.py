"""Trading groups over REST: CRUD, subscriptions, and routing that follows a change."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import Gateway, eventually
from tests.gateway.api.conftest import config_updates, create, error_locs
from tests.gateway.ws.wsclient import RawClient, close_reason, signal


async def test_trading_groups_crud_happy_path(api: httpx.AsyncClient) -> None:
    await create(api, "triggers", name="rsi-btc")
    await create(api, "triggers", name="sma-btc")
    created = await create(
        api,
        "trading-groups",
        name="momentum",
        triggers=["sma-btc", "rsi-btc"],
        kind="llm",
        description="LLM team",
        config={"model": "small"},
    )
    assert created["token"].startswith("ats_grp_") and created["has_token"] is True
    assert created["triggers"] == ["rsi-btc", "sma-btc"]
    assert (created["kind"], created["enabled"]) == ("llm", True)
    await create(api, "trading-groups", name="algo-1")

    assert [g["name"] for g in (await api.get("/api/v1/trading-groups")).json()] == [
        "algo-1",
        "momentum",
    ]
    got = (await api.get("/api/v1/trading-groups/algo-1")).json()
    assert (got["kind"], got["triggers"], got["config"]) == ("algo", [], {})
    assert "token" not in got

    r = await api.patch(
        "/api/v1/trading-groups/momentum",
        json={"triggers": ["sma-btc"], "kind": "algo", "enabled": False},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["triggers"], r.json()["kind"], r.json()["enabled"]) == (
        ["sma-btc"],
        "algo",
        False,
    )
    assert r.json()["config"] == {"model": "small"}

    assert (await api.delete("/api/v1/trading-groups/momentum")).status_code == 204
    assert (await api.get("/api/v1/trading-groups/momentum")).status_code == 404
    # The triggers it subscribed to are untouched.
    assert len((await api.get("/api/v1/triggers")).json()) == 2


async def test_trading_groups_unknown_trigger_returns_422_naming_field_and_names(
    api: httpx.AsyncClient,
) -> None:
    await create(api, "triggers", name="t1")
    r = await api.post("/api/v1/trading-groups", json={"name": "g1", "triggers": ["t1", "x", "y"]})
    assert error_locs(r) == [["body", "triggers"]]
    assert r.json()["detail"][0]["msg"] == "unknown trigger: x, y"
    assert "triggers" in r.json()["message"]
    assert (await api.get("/api/v1/trading-groups/g1")).status_code == 404

    await create(api, "trading-groups", name="g1", triggers=["t1"])
    r = await api.patch("/api/v1/trading-groups/g1", json={"triggers": ["x"]})
    assert error_locs(r) == [["body", "triggers"]]
    assert r.json()["detail"][0]["msg"] == "unknown trigger: x"
    assert (await api.get("/api/v1/trading-groups/g1")).json()["triggers"] == ["t1"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "g1", "kind": "quantum"}, ["body", "kind"]),
        ({"name": "g1", "triggers": "t1"}, ["body", "triggers"]),
        ({"name": "g1", "triggers": ["not a name"]}, ["body", "triggers", "0"]),
        ({"name": "-g1"}, ["body", "name"]),
    ],
)
async def test_trading_groups_bad_input_returns_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, object], loc: list[str]
) -> None:
    assert error_locs(await api.post("/api/v1/trading-groups", json=body)) == [loc]


async def test_trading_groups_duplicate_name_returns_409(api: httpx.AsyncClient) -> None:
    await create(api, "trading-groups", name="g1")
    r = await api.post("/api/v1/trading-groups", json={"name": "g1"})
    assert r.status_code == 409 and "trading group 'g1' already exists" in r.json()["detail"]


async def test_trading_groups_unknown_name_returns_404(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/v1/trading-groups/nope"),
        ("PATCH", "/api/v1/trading-groups/nope"),
        ("DELETE", "/api/v1/trading-groups/nope"),
        ("POST", "/api/v1/trading-groups/nope/token"),
        ("DELETE", "/api/v1/trading-groups/nope/token"),
    ]:
        r = await api.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)


async def test_trading_groups_patch_triggers_sends_config_update_and_reroutes(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    t1 = (await create(api, "triggers", name="t1"))["token"]
    t2 = (await create(api, "triggers", name="t2"))["token"]
    g = (await create(api, "trading-groups", name="g1", triggers=["t1"]))["token"]
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    trig1 = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t1)
    trig2 = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t2)
    assert group.hello["subscriptions"] == ["t1"]
    assert (await trig2.request(signal()))["dispatched_clients"] == 0

    r = await api.patch("/api/v1/trading-groups/g1", json={"triggers": ["t2"]})
    assert r.status_code == 200, r.text
    (update,) = await eventually(lambda: config_updates(group))
    assert update["payload"]["subscriptions"] == ["t2"]
    assert update["payload"]["config"]["name"] == "g1"

    # Routing follows at once: t2 now reaches the group, t1 no longer does.
    ack = await trig2.request(signal("ETH/USDT"))
    assert ack["dispatched_clients"] == 1
    assert (await trig1.request(signal()))["dispatched_clients"] == 0
    await eventually(lambda: any(e["id"] == ack["id"] for e in group.events))
    assert [e["source"] for e in group.events if e["category"] == "signal"] == ["trigger:t2"]
    for c in (group, trig1, trig2):
        await c.close()


async def test_trading_groups_token_connects_rotates_and_revokes(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    old = (await create(api, "trading-groups", name="g1"))["token"]
    client = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=old)
    assert client.hello["client_id"].startswith("trading_group:g1:")

    r = await api.post("/api/v1/trading-groups/g1/token")
    assert r.status_code == 201, r.text
    new = r.json()["token"]
    assert await asyncio.wait_for(client.closed, 10) == (1008, "token rotated")
    assert await close_reason(gateway.ws_url, param="trading_group_token", token=old) == (
        1008,
        "token revoked",
    )
    await eventually(lambda: "trading_group:g1" not in gateway.state.hub.sessions)
    client = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=new)

    assert (await api.delete("/api/v1/trading-groups/g1/token")).status_code == 204
    assert await asyncio.wait_for(client.closed, 10) == (1008, "token revoked")
    assert (await api.get("/api/v1/trading-groups/g1")).json()["has_token"] is False


async def test_trading_groups_deleted_trigger_leaves_subscriptions(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    await create(api, "triggers", name="t1")
    await create(api, "triggers", name="t2")
    g = (await create(api, "trading-groups", name="g1", triggers=["t1", "t2"]))["token"]
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    assert (await api.delete("/api/v1/triggers/t1")).status_code == 204
    (update,) = await eventually(lambda: config_updates(group))
    assert update["payload"]["subscriptions"] == ["t2"]
    assert (await api.get("/api/v1/trading-groups/g1")).json()["triggers"] == ["t2"]
    await group.close()
