"""Triggers over REST: CRUD, validation, conflicts, and the token's life cycle on
/ws/events."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import Gateway, eventually
from tests.gateway.api.conftest import config_updates, create, error_locs
from tests.gateway.ws.wsclient import RawClient, close_reason


async def test_triggers_crud_happy_path(api: httpx.AsyncClient) -> None:
    created = await create(
        api, "triggers", name="rsi-btc", description="RSI on BTC", config={"period": 14}
    )
    assert created["name"] == "rsi-btc" and created["token"].startswith("ats_trg_")
    assert created["config"] == {"period": 14} and created["enabled"] is True
    assert created["has_token"] is True
    await create(api, "triggers", name="atr-eth")

    listed = (await api.get("/api/v1/triggers")).json()
    assert [t["name"] for t in listed] == ["atr-eth", "rsi-btc"]
    got = (await api.get("/api/v1/triggers/rsi-btc")).json()
    assert got["description"] == "RSI on BTC"

    r = await api.patch(
        "/api/v1/triggers/rsi-btc", json={"config": {"period": 7}, "enabled": False}
    )
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["config"] == {"period": 7} and patched["enabled"] is False
    assert patched["description"] == "RSI on BTC"  # omitted fields keep their value
    assert patched["updated_at"] >= got["updated_at"]

    assert (await api.delete("/api/v1/triggers/rsi-btc")).status_code == 204
    assert (await api.get("/api/v1/triggers/rsi-btc")).status_code == 404
    assert [t["name"] for t in (await api.get("/api/v1/triggers")).json()] == ["atr-eth"]


async def test_triggers_token_shown_once_and_connects(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    token = (await create(api, "triggers", name="t1"))["token"]
    listed, one = await api.get("/api/v1/triggers"), await api.get("/api/v1/triggers/t1")
    assert token not in listed.text and token not in one.text
    assert "token" not in listed.json()[0] and "token" not in one.json()
    client = await RawClient.connect(gateway.ws_url, param="trigger_token", token=token)
    assert client.hello["client_id"].startswith("trigger:t1:")
    await client.close()


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "bad name!"}, ["body", "name"]),
        ({"name": "x" * 65}, ["body", "name"]),
        ({}, ["body", "name"]),
        ({"name": "t1", "config": [1, 2]}, ["body", "config"]),
        ({"name": "t1", "colour": "red"}, ["body", "colour"]),
    ],
)
async def test_triggers_create_bad_input_returns_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, object], loc: list[str]
) -> None:
    r = await api.post("/api/v1/triggers", json=body)
    assert error_locs(r) == [loc]
    assert loc[1] in r.json()["message"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": None}, ["body", "name"]),
        ({"enabled": "maybe"}, ["body", "enabled"]),
        ({"config": None}, ["body", "config"]),
        ({"token": "ats_trg_mine"}, ["body", "token"]),
    ],
)
async def test_triggers_patch_bad_input_returns_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, object], loc: list[str]
) -> None:
    await create(api, "triggers", name="t1")
    r = await api.patch("/api/v1/triggers/t1", json=body)
    assert error_locs(r) == [loc]


async def test_triggers_duplicate_name_returns_409(api: httpx.AsyncClient) -> None:
    await create(api, "triggers", name="t1")
    await create(api, "triggers", name="t2")
    r = await api.post("/api/v1/triggers", json={"name": "t1"})
    assert r.status_code == 409 and "'t1' already exists" in r.json()["detail"]
    r = await api.patch("/api/v1/triggers/t2", json={"name": "t1"})
    assert r.status_code == 409, r.text
    assert (await api.get("/api/v1/triggers/t2")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/triggers/nope"),
        ("PATCH", "/api/v1/triggers/nope"),
        ("DELETE", "/api/v1/triggers/nope"),
        ("POST", "/api/v1/triggers/nope/token"),
        ("DELETE", "/api/v1/triggers/nope/token"),
    ],
)
async def test_triggers_unknown_name_returns_404(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    r = await api.request(method, path, json={} if method == "PATCH" else None)
    assert r.status_code == 404 and "trigger 'nope' not found" in r.json()["detail"]


async def test_triggers_rotate_invalidates_old_token_and_closes_session(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    old = (await create(api, "triggers", name="t1"))["token"]
    client = await RawClient.connect(gateway.ws_url, param="trigger_token", token=old)
    r = await api.post("/api/v1/triggers/t1/token")
    assert r.status_code == 201, r.text
    new = r.json()["token"]
    assert r.json()["name"] == "t1" and new != old
    assert await asyncio.wait_for(client.closed, 10) == (1008, "token rotated")
    assert await close_reason(gateway.ws_url, param="trigger_token", token=old) == (
        1008,
        "token revoked",
    )
    await eventually(lambda: "trigger:t1" not in gateway.state.hub.sessions)
    again = await RawClient.connect(gateway.ws_url, param="trigger_token", token=new)
    assert again.hello["client_id"].startswith("trigger:t1:")
    await again.close()


async def test_triggers_revoke_closes_session_and_leaves_no_token(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    token = (await create(api, "triggers", name="t1"))["token"]
    client = await RawClient.connect(gateway.ws_url, bearer=token)
    assert (await api.delete("/api/v1/triggers/t1/token")).status_code == 204
    assert await asyncio.wait_for(client.closed, 10) == (1008, "token revoked")
    assert (await api.get("/api/v1/triggers/t1")).json()["has_token"] is False
    # Revoking again is harmless.
    assert (await api.delete("/api/v1/triggers/t1/token")).status_code == 204


async def test_triggers_delete_closes_session_and_refuses_its_token(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    token = (await create(api, "triggers", name="t1"))["token"]
    client = await RawClient.connect(gateway.ws_url, param="trigger_token", token=token)
    assert (await api.delete("/api/v1/triggers/t1")).status_code == 204
    assert await asyncio.wait_for(client.closed, 10) == (1008, "deleted")
    assert (await close_reason(gateway.ws_url, param="trigger_token", token=token))[0] == 1008
    # A new trigger with the same name gets a new token; the old one stays dead.
    fresh = (await create(api, "triggers", name="t1"))["token"]
    assert (await close_reason(gateway.ws_url, param="trigger_token", token=token))[0] == 1008
    ok = await RawClient.connect(gateway.ws_url, param="trigger_token", token=fresh)
    await ok.close()


async def test_triggers_patch_config_sends_config_update(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    token = (await create(api, "triggers", name="t1", config={"period": 14}))["token"]
    client = await RawClient.connect(gateway.ws_url, param="trigger_token", token=token)
    assert client.hello["config"]["config"] == {"period": 14}
    r = await api.patch("/api/v1/triggers/t1", json={"config": {"period": 21}})
    assert r.status_code == 200, r.text
    (update,) = await eventually(lambda: config_updates(client))
    assert update["source"] == "gateway"
    assert update["payload"]["config"]["config"] == {"period": 21}
    await client.close()


async def test_triggers_rename_closes_session_and_token_reconnects_under_new_name(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    token = (await create(api, "triggers", name="old"))["token"]
    client = await RawClient.connect(gateway.ws_url, param="trigger_token", token=token)
    r = await api.patch("/api/v1/triggers/old", json={"name": "new"})
    assert r.status_code == 200 and r.json()["name"] == "new"
    code, reason = await asyncio.wait_for(client.closed, 10)
    assert code == 1012 and "new" in reason
    assert (await api.get("/api/v1/triggers/old")).status_code == 404
    await eventually(lambda: "trigger:old" not in gateway.state.hub.sessions)
    again = await RawClient.connect(gateway.ws_url, param="trigger_token", token=token)
    assert again.hello["client_id"].startswith("trigger:new:")
    await again.close()
