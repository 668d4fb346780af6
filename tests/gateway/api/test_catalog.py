"""The catalog (registered strategies and their params' JSON Schema, the risk limits'
schema) and the config checks built on the same models."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.kernel.risk import RiskLimits
from shared.kernel.strategy import strategy_class, strategy_names
from tests.gateway.api.conftest import create, error_locs

SMA = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}}


async def test_catalog_strategies_lists_every_registered_one_with_its_params_schema(
    api: httpx.AsyncClient,
) -> None:
    r = await api.get("/api/v1/catalog/strategies")
    assert r.status_code == 200, r.text
    listed = {s["name"]: s for s in r.json()}
    assert list(listed) == strategy_names()
    for name, item in listed.items():
        assert item["params_schema"] == strategy_class(name).Params.model_json_schema()
        assert "\n" not in item["description"]
    # The built-in ones say what they do (tests may register bare ones in this process).
    for name in ("breakout", "ensemble", "json_rule", "ml", "rsi_reversal", "sma_cross"):
        assert listed[name]["description"].startswith(("BUY", "Weighs", "Rules")), name
    sma = listed["sma_cross"]["params_schema"]
    assert sma["properties"]["slow"] == {
        "default": 30, "maximum": 5000, "minimum": 2, "title": "Slow", "type": "integer",
    }  # fmt: skip


async def test_catalog_risk_limits_is_the_models_schema(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/catalog/risk-limits")
    assert r.status_code == 200, r.text
    assert r.json() == RiskLimits.model_json_schema()
    assert "max_daily_loss_pct" in r.json()["properties"]


async def test_catalog_needs_the_operator_key(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/catalog/strategies", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        ({"strategy": "nope"}, ["body", "config", "strategy"], "unknown strategy 'nope'; known:"),
        (
            {"strategy": "sma_cross", "params": {"slow": 6000}},
            ["body", "config", "params", "slow"],
            "less than or equal to 5000",
        ),
        (
            {"strategy": "sma_cross", "params": {"fast": 30, "slow": 10}},
            ["body", "config", "params"],
            "fast (30) must be shorter than slow (10)",
        ),
        (
            {"strategy": "sma_cross", "params": {"fats": 3}},
            ["body", "config", "params", "fats"],
            "Extra inputs",
        ),
        (
            {"strategy": "sma_cross", "params": {"stop_loss": {"kind": "pct", "value": 2}}},
            ["body", "config", "params", "stop_loss", "pct", "value"],
            "less than 1",
        ),
        ({"strategy": "sma_cross", "params": [1]}, ["body", "config", "params"], "dictionary"),
        (
            {**SMA, "risk": {"min_confidence": 2}},
            ["body", "config", "risk", "min_confidence"],
            "less than or equal to 1",
        ),
        ({"risk": 1}, ["body", "config", "risk"], "dictionary"),
    ],
    ids=[
        "unknown-strategy",
        "param-out-of-range",
        "params-inconsistent",
        "unknown-param",
        "nested-param",
        "params-not-object",
        "risk-out-of-range",
        "risk-not-object",
    ],
)
async def test_trading_groups_bad_strategy_params_or_risk_return_422_at_the_field(
    api: httpx.AsyncClient, config: dict[str, Any], loc: list[str], message: str
) -> None:
    r = await api.post("/api/v1/trading-groups", json={"name": "g1", "config": config})
    assert error_locs(r) == [loc]
    assert message in r.json()["detail"][0]["msg"]
    assert (await api.get("/api/v1/trading-groups/g1")).status_code == 404
    # The same on an update, which keeps what was stored.
    await create(api, "trading-groups", name="g1", config=SMA)
    r = await api.patch("/api/v1/trading-groups/g1", json={"config": config})
    assert error_locs(r) == [loc]
    assert (await api.get("/api/v1/trading-groups/g1")).json()["config"] == SMA


async def test_trading_groups_config_checks_follow_the_kind(api: httpx.AsyncClient) -> None:
    # An LLM group's config is its own model's (checked by the group), not a strategy's.
    llm = {"strategy": "nope", "debate_rounds": 2}
    await create(api, "trading-groups", name="g1", kind="llm", config=llm)
    # Turning it algorithmic checks the stored config as an algorithmic one.
    r = await api.patch("/api/v1/trading-groups/g1", json={"kind": "algo"})
    assert error_locs(r) == [["body", "config", "strategy"]]
    r = await api.patch("/api/v1/trading-groups/g1", json={"kind": "algo", "config": SMA})
    assert r.status_code == 200, r.text
    # Valid configs are stored as sent, not as the model would rewrite them.
    sent = {**SMA, "risk": {"max_daily_loss_pct": "3", "sizing": {"method": "fixed_notional",
            "notional": "0.01"}}, "feeds": {"ETH/BTC": "csv:data/ETH-BTC_5m.csv"}}  # fmt: skip
    r = await api.patch("/api/v1/trading-groups/g1", json={"config": sent})
    assert r.status_code == 200 and r.json()["config"] == sent
    # A group without a strategy (set on its command line) is not refused.
    await create(api, "trading-groups", name="g2", config={"feeds": {}})


async def test_trade_accounts_bad_risk_limits_return_422_at_the_field(
    api: httpx.AsyncClient,
) -> None:
    bad = {"risk": {"max_daily_loss_pct": "150", "stoploss_guard": {"trade_limit": 0}}}
    r = await api.post("/api/v1/trade-accounts", json={"name": "a1", "exchange": "paper",
                       "config": bad})  # fmt: skip
    assert sorted(error_locs(r)) == [
        ["body", "config", "risk", "max_daily_loss_pct"],
        ["body", "config", "risk", "stoploss_guard", "lookback_minutes"],
        ["body", "config", "risk", "stoploss_guard", "stop_duration_minutes"],
        ["body", "config", "risk", "stoploss_guard", "trade_limit"],
    ]
    good = {"risk": {"max_daily_loss_pct": "5"}, "capital": "10000"}
    await create(api, "trade-accounts", name="a1", exchange="paper", config=good)
    r = await api.patch("/api/v1/trade-accounts/a1", json={"config": bad})
    assert error_locs(r)[0] == ["body", "config", "risk", "max_daily_loss_pct"]
    assert (await api.get("/api/v1/trade-accounts/a1")).json()["config"] == good
    # Other fields of the account may still change alone.
    r = await api.patch("/api/v1/trade-accounts/a1", json={"mode": "live"})
    assert r.status_code == 200, r.text
