"""The dashboard's configuration forms in headless Chromium against a real gateway: a
group's strategy picked from the catalog with a params form generated from its schema,
an LLM group's team, an account's risk limits. The gateway's 422s appear beside the
field their `loc` names, and what is stored (read back over REST) is what was typed.

Browser, fixtures and screenshots as in test_dashboard.py.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Locator, Page, expect

from tests.conftest import Gateway
from tests.gateway import test_dashboard as dashboard
from tests.gateway.test_dashboard import go, shot, sign_in, sqlite_only

# The same browser and page as test_dashboard.py's (Debian's Chromium, errors checked).
browser = dashboard.browser
page = dashboard.page


def field(form: Locator, path: str) -> Locator:
    """The input, select or textarea the form draws for `path` ("params.slow")."""
    return form.locator(f'[name="{path}"]')


def error_at(form: Locator, path: str) -> Locator:
    return form.locator(f'[data-testid=field-error][data-path="{path}"]')


async def stored(gateway: Gateway, resource: str, name: str) -> dict[str, Any]:
    async with gateway.api() as api:
        r = await api.get(f"/api/v1/{resource}/{name}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def count(gateway: Gateway, resource: str) -> int:
    async with gateway.api() as api:
        return len((await api.get(f"/api/v1/{resource}")).json())


@sqlite_only
async def test_dashboard_group_form_picks_a_strategy_shows_server_errors_in_place_and_stores_what_was_typed(  # noqa: E501
    page: Page, gateway: Gateway
) -> None:
    await gateway.add_trigger("sma-eth")
    await sign_in(page)
    await go(page, "#/config/trading-groups")
    await page.get_by_test_id("new-trading-groups").click()
    form = page.get_by_test_id("editor-trading-groups")
    await field(form, "name").fill("form-group")
    await form.get_by_test_id("checklist-triggers").get_by_label("sma-eth").check()
    # The strategies are the gateway's catalog; the params form is sma_cross's schema.
    await field(form, "config.strategy").select_option("sma_cross")
    params = form.get_by_test_id("params-form")
    await expect(params).to_contain_text("slow")
    await expect(params.locator('[data-path="params.slow"]')).to_contain_text("≤ 5000")
    await expect(field(form, "params.fast")).to_have_attribute("placeholder", "10")

    # A number that does not parse is caught here, and nothing is sent.
    await field(form, "params.fast").fill("1x")
    await expect(error_at(form, "params.fast")).to_have_text("not a whole number")
    await form.get_by_role("button", name="Create").click()
    await expect(form.get_by_test_id("local-errors")).to_contain_text("params.fast")
    assert await count(gateway, "trading-groups") == 0

    # A param out of range: the gateway's 422 lands beside that param.
    await field(form, "params.fast").fill("12")
    await field(form, "params.slow").fill("6000")
    await field(form, "params.stop_loss.kind").select_option("pct")
    await field(form, "params.stop_loss.value").fill("0.02")
    await form.get_by_test_id("add-feeds").click()
    await form.get_by_label("feeds key 1").fill("ETH/BTC")
    await form.get_by_label("feeds value 1").fill("csv:data/ETH-BTC_5m.csv")
    await field(form, "risk.min_confidence").fill("0.6")
    await form.get_by_role("button", name="Create").click()
    await expect(error_at(form, "params.slow")).to_contain_text("less than or equal to 5000")
    await expect(form.get_by_test_id("field-error")).to_have_count(1)
    await expect(page.get_by_test_id("error-banner")).to_contain_text("422")
    await shot(page, "20-group-form-server-error")
    # The model's own check (fast below slow) is shown on the params box.
    await field(form, "params.slow").fill("11")
    await form.get_by_role("button", name="Create").click()
    await expect(error_at(form, "params")).to_contain_text(
        "fast (12) must be shorter than slow (11)"
    )
    assert await count(gateway, "trading-groups") == 0

    await field(form, "params.slow").fill("40")
    await form.get_by_role("button", name="Create").click()
    box = page.get_by_test_id("token-box")
    await expect(box).to_contain_text("shown this once")
    await box.get_by_role("button", name="I stored it").click()
    group = await stored(gateway, "trading-groups", "form-group")
    assert group["kind"] == "algo" and group["triggers"] == ["sma-eth"]
    assert group["config"] == {
        "strategy": "sma_cross",
        "params": {"fast": 12, "slow": 40, "stop_loss": {"kind": "pct", "value": 0.02}},
        "feeds": {"ETH/BTC": "csv:data/ETH-BTC_5m.csv"},
        "risk": {"min_confidence": 0.6},
    }

    # Editing shows what is stored; a change replaces just that.
    await (
        page.get_by_test_id("row-trading-groups-form-group")
        .get_by_role("button", name="Edit")
        .click()
    )
    form = page.get_by_test_id("editor-trading-groups")
    await expect(field(form, "params.slow")).to_have_value("40")
    await expect(field(form, "params.stop_loss.value")).to_have_value("0.02")
    await field(form, "params.fast").fill("8")
    await shot(page, "21-group-form-edit")
    # The raw JSON view is the same config, and can be edited too.
    await form.get_by_label("raw JSON").check()
    await expect(field(form, "config")).to_have_value(re.compile(r'"fast": 8,'))
    await form.get_by_label("raw JSON").uncheck()
    await form.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("editor-trading-groups")).to_have_count(0)
    group = await stored(gateway, "trading-groups", "form-group")
    assert group["config"]["params"] == {
        "fast": 8,
        "slow": 40,
        "stop_loss": {"kind": "pct", "value": 0.02},
    }


@sqlite_only
async def test_dashboard_llm_group_form_edits_the_team(page: Page, gateway: Gateway) -> None:
    await sign_in(page)
    await go(page, "#/config/trading-groups")
    await page.get_by_test_id("new-trading-groups").click()
    form = page.get_by_test_id("editor-trading-groups")
    await field(form, "name").fill("llm-team")
    await field(form, "kind").select_option("llm")
    await field(form, "debate_rounds").fill("2")
    # Start from the default team, then drop, reorder, add and change members.
    await form.get_by_test_id("customize-team").click()
    members = form.get_by_test_id("item-team")
    await expect(members).to_have_count(8)
    await form.get_by_role("button", name="remove team 3").click()  # fundamentals
    await form.get_by_role("button", name="move team 2 up").click()  # sentiment first
    await form.get_by_test_id("add-team").click()
    await expect(members).to_have_count(8)
    await field(form, "team.7.name").fill("macro")
    await field(form, "team.7.role").select_option("fundamentals_analyst")
    await field(form, "team.7.model").fill("gpt-4o-mini")
    await field(form, "team.0.tier").select_option("strong")
    await shot(page, "22-llm-group-form")
    await form.get_by_role("button", name="Create").click()
    await expect(page.get_by_test_id("token-box")).to_be_visible()
    config = (await stored(gateway, "trading-groups", "llm-team"))["config"]
    assert config["debate_rounds"] == 2
    assert [(m["name"], m["role"], m.get("tier")) for m in config["team"]] == [
        ("sentiment", "sentiment_analyst", "strong"),
        ("technical", "technical_analyst", "cheap"),
        ("bull", "bull_researcher", "cheap"),
        ("bear", "bear_researcher", "cheap"),
        ("trader", "trader", "cheap"),
        ("risk", "risk_manager", "strong"),
        ("leader", "leader", "strong"),
        ("macro", "fundamentals_analyst", None),  # its tier left to the default
    ]
    assert config["team"][-1] == {
        "name": "macro",
        "role": "fundamentals_analyst",
        "model": "gpt-4o-mini",
    }


@sqlite_only
async def test_dashboard_account_form_shows_a_risk_limit_error_in_place_and_stores_the_limits(
    page: Page, gateway: Gateway
) -> None:
    await gateway.add_group("g1", [])
    await sign_in(page)
    await go(page, "#/config/trade-accounts")
    await page.get_by_test_id("new-trade-accounts").click()
    form = page.get_by_test_id("editor-trade-accounts")
    await field(form, "name").fill("form-acct")
    await field(form, "exchange").fill("paper")
    await field(form, "mode").select_option("paper")
    await form.get_by_test_id("checklist-trading_groups").get_by_label("g1").check()
    risk = form.get_by_test_id("risk-form")
    await field(risk, "risk.max_daily_loss_pct").fill("150")
    await form.get_by_test_id("add-risk.sizing").click()
    await field(risk, "risk.sizing.0.method").select_option("fixed_notional")
    await field(risk, "risk.sizing.0.notional").fill("0.01")
    await field(form, "config").fill('{"capital": "10000"}')
    await field(form, "credentials").fill('{"apiKey": "k-1", "secret": "s-DO-NOT-SHOW"}')
    await form.get_by_role("button", name="Create").click()
    await expect(error_at(form, "risk.max_daily_loss_pct")).to_contain_text(
        "less than or equal to 100"
    )
    await expect(form.get_by_test_id("field-error")).to_have_count(1)  # there, and only there
    assert await count(gateway, "trade-accounts") == 0
    await shot(page, "23-account-form-server-error")

    await field(risk, "risk.max_daily_loss_pct").fill("5")
    await form.get_by_role("button", name="Create").click()
    await expect(page.get_by_test_id("editor-trade-accounts")).to_have_count(0)
    account = await stored(gateway, "trade-accounts", "form-acct")
    assert (account["exchange"], account["mode"], account["trading_groups"]) == (
        "paper",
        "paper",
        ["g1"],
    )
    assert account["config"] == {
        "capital": "10000",
        "risk": {
            "max_daily_loss_pct": "5",
            "sizing": [{"method": "fixed_notional", "notional": "0.01"}],
        },
    }
    assert account["has_credentials"] is True

    # Editing: the limits are in their fields, the credentials are not shown at all.
    await (
        page.get_by_test_id("row-trade-accounts-form-acct")
        .get_by_role("button", name="Edit")
        .click()
    )
    form = page.get_by_test_id("editor-trade-accounts")
    await expect(field(form, "risk.max_daily_loss_pct")).to_have_value("5")
    await expect(field(form, "credentials")).to_have_value("")
    assert "s-DO-NOT-SHOW" not in await page.content()
    await field(form, "risk.max_open_positions").fill("3")
    await shot(page, "24-account-form-edit")
    await form.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("editor-trade-accounts")).to_have_count(0)
    risk_stored = (await stored(gateway, "trade-accounts", "form-acct"))["config"]["risk"]
    assert risk_stored["max_open_positions"] == 3 and risk_stored["max_daily_loss_pct"] == "5"
    assert (await stored(gateway, "trade-accounts", "form-acct"))["has_credentials"] is True
