"""Execution services over REST: CRUD, one service per account, tokens."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Gateway, eventually
from tests.gateway.api.conftest import config_updates, create, error_locs
from tests.gateway.ws.wsclient import RawClient, close_reason


async def accounts(api: httpx.AsyncClient, *names: str) -> None:
    for name in names:
        await create(api, "trade-accounts", name=name, exchange="paper")


async def test_execution_services_crud_happy_path(api: httpx.AsyncClient) -> None:
    await accounts(api, "a1", "a2", "a3")
    created = await create(
        api,
        "execution-services",
        name="exec-1",
        trade_accounts=["a2", "a1"],
        description="paper desk",
        config={"sync_interval": 5},
    )
    assert created["token"].startswith("ats_exe_") and created["has_token"] is True
    assert created["trade_accounts"] == ["a1", "a2"]
    await create(api, "execution-services", name="exec-0")

    listed = (await api.get("/api/v1/execution-services")).json()
    assert [s["name"] for s in listed] == ["exec-0", "exec-1"]
    assert all("token" not in s for s in listed)
    got = (await api.get("/api/v1/execution-services/exec-1")).json()
    assert got["config"] == {"sync_interval": 5} and got["description"] == "paper desk"

    r = await api.patch("/api/v1/execution-services/exec-1", json={"trade_accounts": ["a3"]})
    assert r.status_code == 200 and r.json()["trade_accounts"] == ["a3"]
    # a1 is free again, so another service may take it.
    r = await api.patch("/api/v1/execution-services/exec-0", json={"trade_accounts": ["a1"]})
    assert r.status_code == 200, r.text

    assert (await api.delete("/api/v1/execution-services/exec-1")).status_code == 204
    assert (await api.get("/api/v1/execution-services/exec-1")).status_code == 404
    assert (await api.get("/api/v1/trade-accounts/a3")).json()["execution_service"] is None


async def test_execution_services_account_served_twice_returns_409_naming_it(
    api: httpx.AsyncClient,
) -> None:
    await accounts(api, "a1", "a2")
    await create(api, "execution-services", name="exec-1", trade_accounts=["a1"])
    r = await api.post(
        "/api/v1/execution-services", json={"name": "exec-2", "trade_accounts": ["a2", "a1"]}
    )
    assert r.status_code == 409, r.text
    assert "'a1' by 'exec-1'" in r.json()["detail"] and "'a2'" not in r.json()["detail"]
    assert (await api.get("/api/v1/execution-services/exec-2")).status_code == 404

    await create(api, "execution-services", name="exec-2", trade_accounts=["a2"])
    r = await api.patch("/api/v1/execution-services/exec-2", json={"trade_accounts": ["a1"]})
    assert r.status_code == 409 and "'a1' by 'exec-1'" in r.json()["detail"]
    # Re-stating its own accounts is no conflict.
    r = await api.patch("/api/v1/execution-services/exec-1", json={"trade_accounts": ["a1"]})
    assert r.status_code == 200, r.text


async def test_execution_services_unknown_account_returns_422(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/v1/execution-services", json={"name": "exec-1", "trade_accounts": ["nope"]}
    )
    assert error_locs(r) == [["body", "trade_accounts"]]
    assert r.json()["detail"][0]["msg"] == "unknown trade account: nope"
    r = await api.post("/api/v1/execution-services", json={"name": "exec 1"})
    assert error_locs(r) == [["body", "name"]]


async def test_execution_services_duplicate_name_returns_409(api: httpx.AsyncClient) -> None:
    await create(api, "execution-services", name="exec-1")
    r = await api.post("/api/v1/execution-services", json={"name": "exec-1"})
    assert r.status_code == 409


async def test_execution_services_unknown_name_returns_404(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/api/v1/execution-services/nope"),
        ("PATCH", "/api/v1/execution-services/nope"),
        ("DELETE", "/api/v1/execution-services/nope"),
        ("POST", "/api/v1/execution-services/nope/token"),
        ("DELETE", "/api/v1/execution-services/nope/token"),
    ]:
        r = await api.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)


async def test_execution_services_token_lifecycle_and_config_update(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    await accounts(api, "a1", "a2")
    old = (await create(api, "execution-services", name="exec-1", trade_accounts=["a1"]))["token"]
    client = await RawClient.connect(gateway.ws_url, param="execution_token", token=old)
    assert [a["name"] for a in client.hello["config"]["trade_accounts"]] == ["a1"]

    r = await api.patch("/api/v1/execution-services/exec-1", json={"trade_accounts": ["a1", "a2"]})
    assert r.status_code == 200, r.text
    (update,) = await eventually(lambda: config_updates(client))
    assert [a["name"] for a in update["payload"]["config"]["trade_accounts"]] == ["a1", "a2"]

    r = await api.post("/api/v1/execution-services/exec-1/token")
    assert r.status_code == 201, r.text
    assert await asyncio.wait_for(client.closed, 10) == (1008, "token rotated")
    assert (await close_reason(gateway.ws_url, param="execution_token", token=old))[1] == (
        "token revoked"
    )
    await eventually(lambda: "execution:exec-1" not in gateway.state.hub.sessions)
    client = await RawClient.connect(gateway.ws_url, bearer=r.json()["token"])

    assert (await api.delete("/api/v1/execution-services/exec-1")).status_code == 204
    assert await asyncio.wait_for(client.closed, 10) == (1008, "deleted")
