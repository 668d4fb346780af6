"""The dashboard's backtest form in headless Chromium against a real gateway: the
strategy picked from the catalog, its params drawn from its schema with their defaults
filled in, the gateway's 422s beside the param they name, and what runs (read back
over REST) is what was typed, numbers as numbers.

Browser, fixtures and screenshots as in test_dashboard.py; field helpers as in
test_dashboard_forms.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.async_api import Page, expect

from tests.conftest import TIMEOUT_FACTOR, Gateway
from tests.gateway import test_dashboard as dashboard
from tests.gateway.test_dashboard import go, shot, sign_in, sqlite_only
from tests.gateway.test_dashboard_forms import error_at, field

# The same browser and page as test_dashboard.py's (Debian's Chromium, errors checked).
browser = dashboard.browser
page = dashboard.page


async def backtests(gateway: Gateway) -> list[dict[str, Any]]:
    async with gateway.api() as api:
        r = await api.get("/api/v1/backtests")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


@sqlite_only
async def test_dashboard_backtest_form_draws_the_strategys_params_and_shows_their_errors_in_place(  # noqa: E501
    page: Page, gateway: Gateway
) -> None:
    async with gateway.api() as api:
        catalog = {s["name"]: s for s in (await api.get("/api/v1/catalog/strategies")).json()}
    await sign_in(page)
    await go(page, "#/backtests")
    form = page.get_by_test_id("backtest-form")
    # The strategies are the gateway's catalog; picking one draws its params, defaults in.
    await expect(field(form, "strategy").locator("option")).to_have_text(sorted(catalog))
    await field(form, "strategy").select_option("rsi_reversal")
    await expect(form.get_by_test_id("params-form")).to_contain_text("params of rsi_reversal")
    await expect(field(form, "params.length")).to_have_value("14")
    await expect(field(form, "params.fast")).to_have_count(0)
    await field(form, "strategy").select_option("sma_cross")
    await expect(form).to_contain_text(catalog["sma_cross"]["description"])
    await expect(field(form, "params.fast")).to_have_value("10")
    await expect(field(form, "params.slow")).to_have_value("30")

    # fast must be shorter than slow: the gateway's 422 on the params lands on them.
    await field(form, "params.fast").fill("40")
    await field(form, "params.slow").fill("20")
    await form.get_by_role("button", name="Run").click()
    await expect(error_at(form, "params")).to_contain_text(
        "fast (40) must be shorter than slow (20)"
    )
    await expect(page.get_by_test_id("error-banner")).to_contain_text("422")
    # One param out of its range: beside that param, and only there.
    await field(form, "params.slow").fill("6000")
    await form.get_by_role("button", name="Run").click()
    await expect(error_at(form, "params.slow")).to_contain_text("less than or equal to 5000")
    await expect(form.get_by_test_id("field-error")).to_have_count(1)
    await shot(page, "25-backtest-form-server-error")
    assert await backtests(gateway) == []

    # The raw JSON view holds the same params; back in the form, fix them and run.
    await field(form, "params.fast").fill("5")
    await field(form, "params.slow").fill("20")
    await form.get_by_label("raw JSON").check()
    assert json.loads(await field(form, "params").input_value()) == {"fast": 5, "slow": 20}
    await form.get_by_label("raw JSON").uncheck()
    await expect(field(form, "params.fast")).to_have_value("5")
    await form.get_by_role("button", name="Run").click()
    await expect(page).to_have_url(re.compile(r"#/backtests/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    detail = page.get_by_test_id("backtest-detail")
    await expect(detail.get_by_test_id("backtest-progress")).to_contain_text(
        "done", timeout=60_000 * TIMEOUT_FACTOR
    )
    await expect(detail.get_by_test_id("backtest-metrics")).to_be_visible()
    rows = page.get_by_test_id("backtest-runs").get_by_test_id("backtest-row")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text('sma_cross {"fast":5,"slow":20}')
    await expect(form.get_by_test_id("field-error")).to_have_count(0)

    [run] = await backtests(gateway)
    assert run["id"] == run_id and run["status"] == "done", run["error"]
    params = run["request"]["params"]
    assert params == {"fast": 5, "slow": 20}
    assert all(type(v) is int for v in params.values()), params
