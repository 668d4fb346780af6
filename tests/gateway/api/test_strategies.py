"""Strategies over REST: JSON rules per symbol, versioned, validated to the bad node,
deleted softly for audit."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.db import crud
from shared.kernel.rules import dump_rules, parse_rules
from tests.conftest import Gateway
from tests.gateway.api.conftest import create, error_locs

RSI = {"kind": "rsi", "length": 14}
SELL_OVERBOUGHT: dict[str, Any] = {
    "when": {"all": [{"indicator": RSI, "op": ">", "value": 70}]},
    "then": "SELL",
}
BUY_CROSS: dict[str, Any] = {
    "when": {
        "indicator": {"kind": "sma", "length": 10},
        "op": "crosses_above",
        "indicator_b": {"kind": "sma", "length": 30},
    },
    "then": "BUY",
    "confidence": 0.7,
}


def canonical(*rules: dict[str, Any]) -> list[dict[str, Any]]:
    return dump_rules(parse_rules(list(rules)))


async def test_strategies_crud_and_versions_happy_path(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    created = await create(
        api, "strategies", name="rsi-eth", symbol="ETH/BTC", rules=[SELL_OVERBOUGHT]
    )
    assert created["version"] == 1 and created["symbol"] == "ETH/BTC"
    assert created["rules"] == canonical(SELL_OVERBOUGHT)
    assert created["rules"][0]["confidence"] == 0.6  # defaults are stored, not implied
    assert created["deleted_at"] is None and created["description"] == ""
    await create(api, "strategies", name="cross-ltc", symbol="LTC/BTC", rules=[BUY_CROSS])

    r = await api.put(
        "/api/v1/strategies/rsi-eth",
        json={"rules": [BUY_CROSS, SELL_OVERBOUGHT], "description": "cross in, RSI out"},
    )
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["version"] == 2 and v2["symbol"] == "ETH/BTC"  # omitted: kept
    assert v2["rules"] == canonical(BUY_CROSS, SELL_OVERBOUGHT)

    assert (await api.get("/api/v1/strategies/rsi-eth")).json() == v2
    versions = (await api.get("/api/v1/strategies/rsi-eth/versions")).json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0] == created  # an old version never changes
    assert (await api.get("/api/v1/strategies/rsi-eth/versions/1")).json() == created

    listed = (await api.get("/api/v1/strategies")).json()
    assert [(s["name"], s["version"]) for s in listed] == [("cross-ltc", 1), ("rsi-eth", 2)]
    eth = (await api.get("/api/v1/strategies", params={"symbol": "ETH/BTC"})).json()
    assert [s["name"] for s in eth] == ["rsi-eth"]

    r = await api.put("/api/v1/strategies/rsi-eth", json={"rules": [BUY_CROSS], "symbol": "X/Y"})
    assert r.json()["version"] == 3 and r.json()["description"] == "cross in, RSI out"
    assert (await api.get("/api/v1/strategies", params={"symbol": "ETH/BTC"})).json() == []

    async with gateway.state.sessionmaker() as session:
        version, rules = await crud.latest_strategy(session=session, name="rsi-eth")
    assert (version, rules) == (3, canonical(BUY_CROSS))


@pytest.mark.parametrize(
    ("rules", "loc", "msg"),
    [
        (
            [
                {
                    "when": {
                        "all": [{"indicator": {"kind": "rsi", "length": 0}, "op": ">", "value": 70}]
                    },
                    "then": "SELL",
                }
            ],
            ["body", "rules", "0", "when", "all", "0", "indicator", "length"],
            "Input should be greater than or equal to 1",
        ),
        (
            [SELL_OVERBOUGHT, {**BUY_CROSS, "when": {**BUY_CROSS["when"], "op": "crosses"}}],
            ["body", "rules", "1", "when", "op"],
            "'crosses_above' or 'crosses_below'",
        ),
        (
            [{"when": {"any": [{"price": "close", "op": ">"}]}, "then": "BUY"}],
            ["body", "rules", "0", "when", "any", "0"],
            "exactly one right operand",
        ),
        (
            [{**SELL_OVERBOUGHT, "stop_loss": {"kind": "pct", "value": 0.02}}],
            ["body", "rules", "0", "stop_loss"],
            "BUY rules only",
        ),
        ([{"then": "BUY"}], ["body", "rules", "0", "when"], "Field required"),
    ],
)
async def test_strategies_invalid_rule_returns_422_naming_the_node(
    api: httpx.AsyncClient, rules: list[Any], loc: list[str], msg: str
) -> None:
    r = await api.post(
        "/api/v1/strategies", json={"name": "s1", "symbol": "ETH/BTC", "rules": rules}
    )
    assert error_locs(r) == [loc]
    assert msg in r.json()["detail"][0]["msg"]
    assert ".".join(loc[1:]) in r.json()["message"]
    assert (await api.get("/api/v1/strategies/s1")).status_code == 404

    await create(api, "strategies", name="s2", symbol="ETH/BTC", rules=[SELL_OVERBOUGHT])
    r = await api.put("/api/v1/strategies/s2", json={"rules": rules})
    assert error_locs(r) == [loc]
    versions = (await api.get("/api/v1/strategies/s2/versions")).json()
    assert [v["version"] for v in versions] == [1]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"symbol": "ETH/BTC", "rules": [SELL_OVERBOUGHT]}, ["body", "name"]),
        ({"name": "bad name!", "symbol": "ETH/BTC", "rules": [SELL_OVERBOUGHT]}, ["body", "name"]),
        ({"name": "s1", "rules": [SELL_OVERBOUGHT]}, ["body", "symbol"]),
        ({"name": "s1", "symbol": "ETH/BTC", "rules": []}, ["body", "rules"]),
        ({"name": "s1", "symbol": "ETH/BTC", "rules": SELL_OVERBOUGHT}, ["body", "rules"]),
        ({"name": "s1", "symbol": "ETH/BTC", "rules": [7]}, ["body", "rules", "0"]),
        (
            {"name": "s1", "symbol": "ETH/BTC", "rules": [SELL_OVERBOUGHT], "version": 4},
            ["body", "version"],
        ),
    ],
)
async def test_strategies_create_bad_body_returns_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], loc: list[str]
) -> None:
    assert error_locs(await api.post("/api/v1/strategies", json=body)) == [loc]


async def test_strategies_duplicate_name_returns_409(api: httpx.AsyncClient) -> None:
    await create(api, "strategies", name="s1", symbol="ETH/BTC", rules=[SELL_OVERBOUGHT])
    r = await api.post(
        "/api/v1/strategies", json={"name": "s1", "symbol": "LTC/BTC", "rules": [BUY_CROSS]}
    )
    assert r.status_code == 409 and "'s1' already exists" in r.json()["detail"]
    assert (await api.get("/api/v1/strategies/s1")).json()["symbol"] == "ETH/BTC"


async def test_strategies_delete_keeps_versions_for_audit_and_retires_the_name(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    await create(api, "strategies", name="s1", symbol="ETH/BTC", rules=[SELL_OVERBOUGHT])
    assert (await api.put("/api/v1/strategies/s1", json={"rules": [BUY_CROSS]})).status_code == 200
    assert (await api.delete("/api/v1/strategies/s1")).status_code == 204

    r = await api.get("/api/v1/strategies/s1")
    assert r.status_code == 404 and "was deleted" in r.json()["detail"]
    versions = (await api.get("/api/v1/strategies/s1/versions")).json()
    assert [v["version"] for v in versions] == [1, 2]
    assert all(v["deleted_at"] is not None for v in versions)
    one = (await api.get("/api/v1/strategies/s1/versions/1")).json()
    assert one["rules"] == canonical(SELL_OVERBOUGHT)

    assert (await api.get("/api/v1/strategies")).json() == []
    deleted = (await api.get("/api/v1/strategies", params={"deleted": True})).json()
    assert [(s["name"], s["version"]) for s in deleted] == [("s1", 2)]

    r = await api.put("/api/v1/strategies/s1", json={"rules": [BUY_CROSS]})
    assert r.status_code == 404 and "was deleted" in r.json()["detail"]
    assert (await api.delete("/api/v1/strategies/s1")).status_code == 404
    r = await api.post(
        "/api/v1/strategies", json={"name": "s1", "symbol": "ETH/BTC", "rules": [BUY_CROSS]}
    )
    assert r.status_code == 409 and "was deleted" in r.json()["detail"]

    async with gateway.state.sessionmaker() as session:
        with pytest.raises(crud.StrategyDeleted):
            await crud.latest_strategy(session=session, name="s1")
        with pytest.raises(crud.NotFound):
            await crud.latest_strategy(session=session, name="never")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/strategies/nope"),
        ("GET", "/api/v1/strategies/nope/versions"),
        ("GET", "/api/v1/strategies/nope/versions/1"),
        ("PUT", "/api/v1/strategies/nope"),
        ("DELETE", "/api/v1/strategies/nope"),
    ],
)
async def test_strategies_unknown_name_returns_404(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"rules": [SELL_OVERBOUGHT]} if method == "PUT" else None
    r = await api.request(method, path, json=body)
    assert r.status_code == 404 and "strategy 'nope' not found" in r.json()["detail"]


async def test_strategies_unknown_version_returns_404(api: httpx.AsyncClient) -> None:
    await create(api, "strategies", name="s1", symbol="ETH/BTC", rules=[SELL_OVERBOUGHT])
    r = await api.get("/api/v1/strategies/s1/versions/2")
    assert r.status_code == 404 and "has no version 2" in r.json()["detail"]
    assert error_locs(await api.get("/api/v1/strategies/s1/versions/0")) == [["path", "version"]]


async def test_strategies_concurrent_edits_get_distinct_versions(api: httpx.AsyncClient) -> None:
    await create(api, "strategies", name="s1", symbol="ETH/BTC", rules=[SELL_OVERBOUGHT])
    edits = [
        api.put("/api/v1/strategies/s1", json={"rules": [BUY_CROSS], "description": str(i)})
        for i in range(6)
    ]
    answers = await asyncio.gather(*edits)
    # A lost race is a 409 asking to retry, never a duplicate or a lost version.
    assert {r.status_code for r in answers} <= {200, 409}
    won = sorted(r.json()["version"] for r in answers if r.status_code == 200)
    assert won == list(range(2, 2 + len(won))) and won
    versions = (await api.get("/api/v1/strategies/s1/versions")).json()
    assert [v["version"] for v in versions] == [1, *won]
