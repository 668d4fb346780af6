"""Trade accounts over REST: CRUD, bindings, and credentials that are write-only."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from shared.db.models import TradeAccountRow
from tests.conftest import Gateway, eventually
from tests.gateway.api.conftest import config_updates, create, error_locs
from tests.gateway.ws.wsclient import RawClient, decision

SECRET = "sk-live-DO-NOT-LEAK-0123456789"
CREDENTIALS = {"api_key": "key-id-123", "secret": SECRET}


async def stored_credentials(gateway: Gateway, name: str) -> dict[str, str] | None:
    async with gateway.state.sessionmaker() as s:
        sealed = await s.scalar(
            select(TradeAccountRow.credentials_encrypted).where(TradeAccountRow.name == name)
        )
    if sealed is None:
        return None
    assert SECRET.encode() not in sealed  # encrypted at rest
    return gateway.state.credentials.open(sealed)


async def test_trade_accounts_crud_happy_path(api: httpx.AsyncClient) -> None:
    await create(api, "trading-groups", name="g1")
    await create(api, "trading-groups", name="g2")
    created = await create(
        api,
        "trade-accounts",
        name="paper-1",
        exchange="paper",
        trading_groups=["g2", "g1"],
        config={"balance": "10000"},
    )
    assert (created["exchange"], created["mode"]) == ("paper", "paper")
    assert created["trading_groups"] == ["g1", "g2"]
    assert created["has_credentials"] is False and created["execution_service"] is None
    assert "token" not in created
    await create(api, "trade-accounts", name="live-1", exchange="binance", mode="live")

    names = [a["name"] for a in (await api.get("/api/v1/trade-accounts")).json()]
    assert names == ["live-1", "paper-1"]
    assert (await api.get("/api/v1/trade-accounts/live-1")).json()["mode"] == "live"

    r = await api.patch(
        "/api/v1/trade-accounts/paper-1", json={"trading_groups": ["g2"], "name": "paper-2"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["trading_groups"]) == ("paper-2", ["g2"])
    assert r.json()["config"] == {"balance": "10000"}

    assert (await api.delete("/api/v1/trade-accounts/paper-2")).status_code == 204
    assert (await api.get("/api/v1/trade-accounts/paper-2")).status_code == 404
    assert (await api.delete("/api/v1/trade-accounts/paper-2")).status_code == 404
    assert len((await api.get("/api/v1/trading-groups")).json()) == 2


async def test_trade_accounts_credentials_are_sealed_and_never_returned(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    responses: list[httpx.Response] = []
    r = await api.post(
        "/api/v1/trade-accounts",
        json={"name": "a1", "exchange": "binance", "mode": "live", "credentials": CREDENTIALS},
    )
    assert r.status_code == 201, r.text
    assert r.json()["has_credentials"] is True
    responses.append(r)
    assert await stored_credentials(gateway, "a1") == CREDENTIALS

    responses.append(await api.get("/api/v1/trade-accounts"))
    responses.append(await api.get("/api/v1/trade-accounts/a1"))
    # A change of other fields keeps the credentials; new ones replace them.
    responses.append(await api.patch("/api/v1/trade-accounts/a1", json={"config": {"x": 1}}))
    assert await stored_credentials(gateway, "a1") == CREDENTIALS
    rotated = {"api_key": "key-id-456", "secret": SECRET + "-2"}
    responses.append(await api.patch("/api/v1/trade-accounts/a1", json={"credentials": rotated}))
    assert await stored_credentials(gateway, "a1") == rotated
    # A rejected request does not echo them either.
    bad = await api.post(
        "/api/v1/trade-accounts",
        json={"name": "a2", "exchange": "binance", "mode": "yolo", "credentials": CREDENTIALS},
    )
    assert error_locs(bad) == [["body", "mode"]]
    responses.append(bad)

    for resp in responses:
        assert SECRET not in resp.text and "key-id" not in resp.text, resp.text
        assert "credentials" not in resp.text.replace("has_credentials", "")

    r = await api.patch("/api/v1/trade-accounts/a1", json={"credentials": None})
    assert r.status_code == 200 and r.json()["has_credentials"] is False
    assert await stored_credentials(gateway, "a1") is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "a1"}, ["body", "exchange"]),
        ({"name": "a1", "exchange": "Not An Exchange"}, ["body", "exchange"]),
        ({"name": "a1", "exchange": "paper", "mode": "real"}, ["body", "mode"]),
        ({"name": "a1", "exchange": "paper", "credentials": "secret"}, ["body", "credentials"]),
        (
            {"name": "a1", "exchange": "paper", "credentials_encrypted": "x"},
            ["body", "credentials_encrypted"],
        ),
    ],
)
async def test_trade_accounts_bad_input_returns_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, object], loc: list[str]
) -> None:
    assert error_locs(await api.post("/api/v1/trade-accounts", json=body)) == [loc]


async def test_trade_accounts_unknown_trading_group_returns_422(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/v1/trade-accounts", json={"name": "a1", "exchange": "paper", "trading_groups": ["g"]}
    )
    assert error_locs(r) == [["body", "trading_groups"]]
    assert r.json()["detail"][0]["msg"] == "unknown trading group: g"


async def test_trade_accounts_duplicate_name_returns_409(api: httpx.AsyncClient) -> None:
    await create(api, "trade-accounts", name="a1", exchange="paper")
    r = await api.post("/api/v1/trade-accounts", json={"name": "a1", "exchange": "oanda"})
    assert r.status_code == 409 and "trade account 'a1' already exists" in r.json()["detail"]


async def test_trade_accounts_patch_groups_reroutes_decisions_and_updates_service(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    g1 = (await create(api, "trading-groups", name="g1"))["token"]
    await create(api, "trading-groups", name="g2")
    await create(api, "trade-accounts", name="a1", exchange="paper", trading_groups=["g2"])
    e = (await create(api, "execution-services", name="exec-1", trade_accounts=["a1"]))["token"]
    assert (await api.get("/api/v1/trade-accounts/a1")).json()["execution_service"] == "exec-1"
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g1)
    execution = await RawClient.connect(gateway.ws_url, param="execution_token", token=e)
    assert (await group.request(decision()))["dispatched_clients"] == 0

    r = await api.patch("/api/v1/trade-accounts/a1", json={"trading_groups": ["g1"]})
    assert r.status_code == 200, r.text
    (update,) = await eventually(lambda: config_updates(execution))
    assert update["payload"]["subscriptions"] == ["g1"]
    assert update["payload"]["config"]["trade_accounts"][0]["trading_groups"] == ["g1"]
    assert "credentials" not in str(update)

    ack = await group.request(decision())
    assert ack["dispatched_clients"] == 1
    await eventually(lambda: any(ev["id"] == ack["id"] for ev in execution.events))
    await group.close()
    await execution.close()
