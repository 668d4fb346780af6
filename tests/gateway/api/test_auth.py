"""Every /api/v1 endpoint needs the operator key; the operations endpoints do not."""

from __future__ import annotations

import httpx
import pytest

from gateway.api.schemas import Problem
from tests.conftest import Gateway

ENDPOINTS = [
    ("GET", "/api/v1/triggers"),
    ("POST", "/api/v1/triggers"),
    ("PATCH", "/api/v1/triggers/t1"),
    ("DELETE", "/api/v1/triggers/t1/token"),
    ("GET", "/api/v1/trading-groups"),
    ("POST", "/api/v1/trade-accounts"),
    ("GET", "/api/v1/execution-services/e1"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/logs"),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Basic dGVzdDp0ZXN0"},
    ],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_api_key_missing_or_wrong_returns_401(
    gateway: Gateway, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url, headers=headers) as client:
        for method, path in ENDPOINTS:
            r = await client.request(method, path, json={"name": "t1"})
            assert r.status_code == 401, (method, path, r.text)
            Problem.model_validate(r.json())
            assert r.headers["www-authenticate"] == "Bearer"
        # Nothing was created by the refused requests.
        assert (await client.get("/health")).status_code == 200
    async with gateway.api() as api:
        assert (await api.get("/api/v1/triggers")).json() == []


async def test_api_key_valid_is_accepted(gateway: Gateway) -> None:
    async with gateway.api() as api:
        r = await api.get("/api/v1/triggers")
    assert r.status_code == 200 and r.json() == []


async def test_openapi_lists_every_resource_under_its_tag(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as client:
        spec = (await client.get("/openapi.json")).json()
    tags = {op["tags"][0] for path in spec["paths"].values() for op in path.values()}
    assert {
        "triggers",
        "trading groups",
        "trade accounts",
        "execution services",
        "events",
        "logs",
    } <= tags
    created = spec["paths"]["/api/v1/triggers"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("TriggerCreated")
    invalid = spec["paths"]["/api/v1/events"]["get"]["responses"]["422"]
    assert invalid["content"]["application/json"]["schema"]["$ref"].endswith("ValidationProblem")
    account = spec["components"]["schemas"]["TradeAccountPublic"]["properties"]
    assert "credentials" not in account and "has_credentials" in account
