"""The operator dashboard end to end: the built page in headless Chromium against a
real gateway, real trigger and group processes replaying the shipped data, and real
backtests. Every page is saved as a screenshot (ATS_TEST_ARTIFACTS, default
test-artifacts/; the path is printed).

The browser is Debian's `chromium`, driven by Playwright (`make test` installs or
finds it; ATS_CHROMIUM points elsewhere). Without it the tests skip, except in CI,
where a missing browser must not pass for green.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from gateway.dashboard import CONTENT_SECURITY_POLICY, STATIC
from tests.conftest import API_KEY, ROOT, TIMEOUT_FACTOR, Gateway, Spawn, eventually
from tests.gateway.api.test_execution_resources import (
    fills,
    incidents,
    intents,
    orders,
    positions,
    store,
)
from tests.gateway.api.test_llm_resources import (
    DISCUSSION_IDS,
    T0,
    call,
    discussion,
    message,
)
from tests.gateway.ws.wsclient import RawClient, decision, signal

CHROMIUM = os.environ.get("ATS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ATS_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
WAIT = 15_000 * TIMEOUT_FACTOR  # ms: what the page may take to show something

# The browser tests need only one database: the API they drive runs on both elsewhere.
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"no Chromium at {CHROMIUM}: `make test` installs it, or set ATS_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Browser, gateway: Gateway) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=gateway.http_url, viewport={"width": 1400, "height": 900}
    )
    pg = await context.new_page()
    pg.set_default_timeout(WAIT)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # Anything the page tried to load from elsewhere (a CDN, a font) breaks its policy.
    pg.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield pg
    finally:
        await context.close()
    assert not errors, f"the page threw: {errors}"


async def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")  # noqa: T201 - tells where the test's artifacts are


async def sign_in(page: Page, key: str = API_KEY) -> None:
    await page.goto("/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def go(page: Page, hash_: str) -> None:
    await page.evaluate("h => { location.hash = h }", hash_)


# --------------------------------------------------------------------------- serving


async def test_dashboard_is_served_at_root_with_a_same_origin_policy(
    gateway: Gateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as client:
        index = await client.get("/")
        assert index.status_code == 200
        assert index.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assets = re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', index.text)
        assert {Path(a).suffix for a in assets} == {".js", ".css"}
        for asset in assets:
            r = await client.get(asset)
            assert r.status_code == 200 and len(r.content) > 1000
        # Nothing is loaded from elsewhere: no CDN, no font service.
        assert not re.search(r'(?:src|href)="(?:https?:)?//', index.text)
    assert (STATIC / "index.html").is_file()


# --------------------------------------------------------------------------- sign-in


@sqlite_only
async def test_dashboard_sign_in_refuses_a_wrong_key_and_keeps_the_right_one_in_the_tab(
    page: Page,
) -> None:
    await sign_in(page, "not-the-key")
    await expect(page.get_by_test_id("inline-error")).to_contain_text("invalid API key")
    await shot(page, "01-sign-in-refused")
    await page.get_by_label("API key").fill(API_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_test_id("page-overview")).to_be_visible()
    await expect(page.get_by_test_id("stat-events-per-minute")).to_be_visible()
    # sessionStorage, not the URL, not localStorage.
    assert await page.evaluate("sessionStorage.getItem('ats.apiKey')") == API_KEY
    assert await page.evaluate("localStorage.length") == 0
    assert API_KEY not in page.url
    await page.reload()
    await expect(page.get_by_test_id("components")).to_contain_text("Nothing configured yet")
    await shot(page, "02-overview-empty")


# --------------------------------------------------------------------------- live


def _token(value: str) -> str:
    assert value.startswith("ats_"), value
    return value


@sqlite_only
async def test_dashboard_creates_trigger_and_group_then_follows_a_live_chain(
    page: Page, gateway: Gateway, spawn: Spawn, tmp_path: Path
) -> None:
    """Create a trigger and a group in the UI, run them as real processes with the
    tokens the UI showed once, watch a signal, a discussion and a decision arrive
    live, and follow a decision's chain by its correlation id."""
    await sign_in(page)
    await go(page, "#/config/triggers")
    await page.get_by_test_id("new-triggers").click()
    editor = page.get_by_test_id("editor-triggers")
    await editor.get_by_label("name").fill("sma-eth")
    await editor.get_by_label("description").fill("SMA cross on ETH/BTC")
    await editor.get_by_role("button", name="Create").click()
    box = page.get_by_test_id("token-box")
    await expect(box).to_contain_text("shown this once")
    trigger_token = _token(await box.get_by_test_id("token-value").input_value())
    await box.get_by_role("button", name="Copy").click()
    await shot(page, "03-config-trigger-token")
    await box.get_by_role("button", name="I stored it").click()
    await expect(page.get_by_test_id("row-triggers-sma-eth")).to_contain_text("live")

    await page.get_by_test_id("tab-trading-groups").click()
    await page.get_by_test_id("new-trading-groups").click()
    editor = page.get_by_test_id("editor-trading-groups")
    await editor.locator("input[name=name]").fill("momentum")
    await editor.get_by_test_id("checklist-triggers").get_by_label("sma-eth").check()
    # The config as raw JSON, the escape hatch beside the form (test_dashboard_forms.py).
    await editor.get_by_label("raw JSON").check()
    config = editor.locator("textarea[name=config]")
    # Bad JSON is caught in place before anything is sent.
    await config.fill('{"strategy": ')
    await editor.get_by_role("button", name="Create").click()
    await expect(editor.get_by_test_id("field-error")).to_contain_text("not valid JSON")
    await config.fill(
        json.dumps(
            {
                "strategy": "sma_cross",
                "params": {"fast": 10, "slow": 30},
                "feeds": {"ETH/BTC": "csv:data/ETH-BTC_5m.csv"},
            }
        )
    )
    await editor.get_by_role("button", name="Create").click()
    box = page.get_by_test_id("token-box")
    group_token = _token(await box.get_by_test_id("token-value").input_value())
    await box.get_by_role("button", name="I stored it").click()
    await expect(page.get_by_test_id("row-trading-groups-momentum")).to_contain_text("sma-eth")
    await shot(page, "04-config-groups")

    # Watch first, then start the processes: what arrives comes over the live stream.
    await go(page, "#/stream")
    await expect(page.get_by_test_id("stream-status")).to_have_text("live")
    group = spawn(
        ["group", "algo", "--gateway-url", gateway.ws_url],
        {"ATS_TRADING_GROUP_TOKEN": group_token},
        tmp_path / "group.log",
    )
    await eventually(
        lambda: "trading_group:momentum" in gateway.state.hub.sessions,
        timeout=30,
        message=f"the group to connect (log: {tmp_path / 'group.log'})",
    )
    trigger = spawn(
        [
            "trigger", "ma_cross", "--gateway-url", gateway.ws_url,
            "--symbol", "ETH/BTC", "--feed", "csv:data/ETH-BTC_5m.csv",
            "--params", json.dumps({"fast": 10, "slow": 30}),
        ],
        {"ATS_TRIGGER_TOKEN": trigger_token},
        tmp_path / "trigger.log",
    )  # fmt: skip
    rows = page.get_by_test_id("stream-row")
    await expect(rows.and_(page.locator("[data-category=signal]")).first).to_be_visible(
        timeout=60_000 * TIMEOUT_FACTOR
    )
    decisions = rows.and_(page.locator("[data-category=decision]"))
    await expect(decisions.first).to_be_visible(timeout=60_000 * TIMEOUT_FACTOR)
    await expect(rows.and_(page.locator("[data-category=discussion]")).first).to_be_visible()
    await shot(page, "05-stream-live", full_page=False)

    correlation = await decisions.first.get_attribute("data-correlation")
    assert correlation
    # Rows keep arriving on top: pause the view, then click the one read.
    await page.get_by_role("button", name="Pause").click()
    await decisions.and_(page.locator(f'[data-correlation="{correlation}"]')).click()
    await expect(page.get_by_test_id("chain-id")).to_have_text(correlation)
    steps = page.get_by_test_id("chain-step")
    await expect(steps.and_(page.locator("[data-kind=signal]"))).to_have_count(1)
    await expect(steps.and_(page.locator("[data-kind=decision]"))).to_have_count(1)
    await expect(steps.and_(page.locator("[data-kind=discussion]")).first).to_be_visible()
    kinds = [await s.get_attribute("data-kind") for s in await steps.all()]
    assert kinds.index("signal") < kinds.index("discussion") < kinds.index("decision")
    await shot(page, "06-chain")

    # The overview shows both online, with the trigger's events counted.
    await go(page, "#/overview")
    await expect(page.get_by_test_id("component-trading_group:momentum")).to_contain_text("online")
    await expect(page.get_by_test_id("component-trigger:sma-eth")).to_contain_text("trigger")
    await shot(page, "07-overview-live")
    # The group's decisions on the candles of the feed it reads.
    await go(page, "#/trading")
    chart = page.get_by_test_id("group-chart")
    await chart.locator("select[name=chart-group]").select_option("momentum")
    await chart.locator("select[name=chart-symbol]").select_option("ETH/BTC")
    candles = chart.get_by_test_id("candle-chart")
    await expect(candles.locator("canvas").first).to_be_visible()
    assert int(await candles.get_attribute("data-markers") or 0) > 0
    await candles.scroll_into_view_if_needed()
    await shot(page, "08-trading-entries-exits")
    assert await asyncio.wait_for(asyncio.to_thread(trigger.wait), 90 * TIMEOUT_FACTOR) == 0
    group.terminate()
    await asyncio.wait_for(asyncio.to_thread(group.wait), 30)


# --------------------------------------------------------------------------- errors


@sqlite_only
async def test_dashboard_shows_api_errors_in_place_and_in_the_banner(
    page: Page, gateway: Gateway
) -> None:
    await gateway.add_trigger("taken")
    await sign_in(page)
    await go(page, "#/config/triggers")
    await page.get_by_test_id("new-triggers").click()
    editor = page.get_by_test_id("editor-triggers")
    # A name the API refuses (422): the field says why.
    await editor.get_by_label("name").fill("bad name!")
    await editor.get_by_role("button", name="Create").click()
    await expect(editor.get_by_test_id("field-error")).to_contain_text("pattern")
    # A taken name (409): the API's own words, in the banner and the form.
    await editor.get_by_label("name").fill("taken")
    await editor.get_by_role("button", name="Create").click()
    banner = page.get_by_test_id("error-banner")
    await expect(banner).to_contain_text("409")
    await expect(banner).to_contain_text("taken")
    await shot(page, "09-api-error")
    # A key that stops working signs the operator out, saying why.
    await page.evaluate("sessionStorage.setItem('ats.apiKey', 'revoked-key')")
    await page.reload()
    await expect(page.get_by_test_id("signin")).to_contain_text("invalid API key")


# --------------------------------------------------------------------------- trading


@sqlite_only
async def test_dashboard_trading_page_lists_positions_orders_rejections_and_acknowledges(
    page: Page, gateway: Gateway
) -> None:
    async with gateway.api() as api:
        for name in ("acct-a", "acct-b"):
            r = await api.post("/api/v1/trade-accounts", json={"name": name, "exchange": "paper"})
            assert r.status_code == 201, r.text
    await store(gateway, [*intents(), *orders(), *fills(), *positions(), *incidents()])
    await sign_in(page)
    await go(page, "#/trading")
    await expect(page.get_by_test_id("positions")).to_contain_text("BTC/USDT")
    await expect(page.get_by_test_id("orders").locator("tbody tr").first).to_be_visible()
    await expect(page.get_by_test_id("rejected-intents")).to_contain_text("acct-")
    incident = page.get_by_test_id("incident-1")
    await expect(incident).to_contain_text("open")
    # An empty note is refused by the API (422): shown, not swallowed.
    await incident.get_by_role("button", name="Acknowledge").click()
    await expect(incident.get_by_test_id("inline-error")).to_contain_text("note")
    await incident.get_by_label("note").fill("checked with the exchange")
    await incident.get_by_role("button", name="Acknowledge").click()
    await expect(incident).to_contain_text("checked with the exchange")
    await expect(incident).to_contain_text("acknowledged")
    await shot(page, "10-trading")
    async with gateway.api() as api:
        body = (await api.get("/api/v1/incidents/1")).json()
    assert body["status"] == "acknowledged" and body["closed_note"] == "checked with the exchange"


# --------------------------------------------------------------------------- backtests


async def _run_backtest(page: Page, params: dict[str, Any]) -> str:
    form = page.get_by_test_id("backtest-form")
    # The form draws the strategy's params as fields (test_dashboard_backtest_form.py).
    for name, value in params.items():
        await form.locator(f'[name="params.{name}"]').fill(str(value))
    before = page.url
    await form.get_by_role("button", name="Run").click()
    # The page opens the new run: wait for the URL to name it (not the previous one).
    await page.wait_for_function("u => location.href !== u", arg=before)
    await expect(page).to_have_url(re.compile(r"#/backtests/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    detail = page.get_by_test_id("backtest-detail")
    await expect(detail.get_by_test_id("backtest-metrics")).to_be_visible(
        timeout=60_000 * TIMEOUT_FACTOR
    )
    return run_id


@sqlite_only
async def test_dashboard_runs_a_backtest_shows_its_charts_and_compares_runs(
    page: Page, gateway: Gateway
) -> None:
    await sign_in(page)
    await go(page, "#/backtests")
    form = page.get_by_test_id("backtest-form")
    await expect(form.locator("select[name=data] option", has_text="ETH-BTC")).to_have_count(1)
    # A refused request shows the API's reason beside the form.
    await form.locator('[name="params.fast"]').fill("30")
    await form.locator('[name="params.slow"]').fill("10")
    await form.get_by_role("button", name="Run").click()
    await expect(form.get_by_test_id("form-error")).to_contain_text("422")
    first = await _run_backtest(page, {"fast": 10, "slow": 30})
    detail = page.get_by_test_id("backtest-detail")
    await expect(detail.get_by_test_id("backtest-progress")).to_contain_text("done")
    candles = detail.get_by_test_id("backtest-candles")
    await expect(candles.locator("canvas").first).to_be_visible()
    assert int(await candles.get_attribute("data-markers") or 0) > 10
    await expect(detail.get_by_test_id("equity-chart").locator("canvas").first).to_be_visible()
    await expect(detail.get_by_test_id("drawdown-chart").locator("canvas").first).to_be_visible()
    async with gateway.api() as api:
        stored = (await api.get(f"/api/v1/backtests/{first}")).json()
    trades = stored["metrics"]["trades"]
    await expect(detail.get_by_test_id("backtest-metrics")).to_contain_text(str(trades))
    await shot(page, "11-backtest")

    second = await _run_backtest(page, {"fast": 5, "slow": 20})
    runs = page.get_by_test_id("backtest-runs")
    # Both listed as done before clicking: a new row on top would shift the others.
    await expect(runs.get_by_test_id("backtest-row")).to_have_count(2)
    await expect(runs.get_by_label(f"compare {second}")).to_be_enabled()
    await runs.get_by_label(f"compare {first}").check()
    await runs.get_by_label(f"compare {second}").check()
    await page.get_by_test_id("compare-button").click()
    table = page.get_by_test_id("compare-table")
    await expect(table.locator("thead th")).to_have_count(3)
    await expect(table).to_contain_text("Sharpe")
    await expect(page.get_by_test_id("compare-chart").locator("canvas").first).to_be_visible()
    await shot(page, "12-backtest-compare")


# --------------------------------------------------------------------------- discussions


@sqlite_only
async def test_dashboard_shows_a_discussion_transcript_with_its_decision_and_cost(
    page: Page, gateway: Gateway
) -> None:
    t1 = await gateway.add_trigger("t1")
    g1 = await gateway.add_group("g1", ["t1"])
    trigger = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t1)
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g1)
    trace = {"correlation_id": "c-1", "causation_id": None}
    sent = await trigger.request({**signal("BTC/USDT", rsi=27.5), "trace": trace})
    decided = await group.request(
        {**decision(), "trace": {"correlation_id": "c-1", "causation_id": sent["id"]}}
    )
    await trigger.close()
    await group.close()
    d1 = DISCUSSION_IDS[0]
    await store(
        gateway,
        [
            discussion(1, signal_id=sent["id"], decision_id=decided["id"], correlation_id="c-1",
                       action="BUY", reason="RSI oversold, bull case holds", tokens_in=1_100,
                       tokens_out=110, cost=Decimal("0.3"), finished_at=T0 + timedelta(minutes=1)),
            discussion(2, status="hold", action="HOLD", reason="daily cost budget reached"),
            call(discussion_id=d1, member="technical", cost=Decimal("0.1")),
            call(discussion_id=d1, member="trader", cost=Decimal("0.2"), tokens_in=1_000,
                 tokens_out=100),
            message(d1, 1, "technical", "analysis", content="RSI 27.5: oversold",
                    data={"rsi": 27.5}, llm_call_id=1),
            message(d1, 2, "bull", "argument", content="support held twice"),
            message(d1, 3, "trader", "proposal", content="buy 0.1", llm_call_id=2),
        ],
    )  # fmt: skip
    await sign_in(page)
    await go(page, "#/discussions")
    rows = page.get_by_test_id("discussion-row")
    await expect(rows).to_have_count(2)
    await shot(page, "13-discussions")
    await rows.filter(has_text="RSI oversold").click()
    messages = page.get_by_test_id("message")
    await expect(messages).to_have_count(3)
    await expect(messages.nth(0)).to_contain_text("RSI 27.5: oversold")
    await expect(messages.nth(2)).to_contain_text("trader")
    await expect(page.get_by_test_id("discussion-decision")).to_contain_text("BUY")
    cost = page.get_by_test_id("discussion-cost")
    await expect(cost).to_contain_text("0.3")
    await expect(cost).to_contain_text("1100 / 110")
    await shot(page, "14-discussion-transcript")
    # Its chain lists it, with a way back to the transcript.
    await page.get_by_role("link", name="its chain").click()
    steps = page.get_by_test_id("chain-step")
    await expect(steps.and_(page.locator("[data-kind=discussion]"))).to_have_count(1)
    await expect(steps.and_(page.locator("[data-kind=signal]"))).to_have_count(1)
    await expect(steps.and_(page.locator("[data-kind=decision]"))).to_have_count(1)


# --------------------------------------------------------------------------- secrets


@sqlite_only
async def test_dashboard_keeps_credentials_write_only_and_rotates_and_revokes_tokens(
    page: Page, gateway: Gateway
) -> None:
    secret = "s3cr3t-never-shown-again"
    await gateway.add_trigger("rsi")
    await gateway.add_group("momentum", ["rsi"])
    await sign_in(page)
    await go(page, "#/config/trade-accounts")
    await page.get_by_test_id("new-trade-accounts").click()
    editor = page.get_by_test_id("editor-trade-accounts")
    await editor.get_by_label("name").fill("paper-1")
    await editor.get_by_label("exchange").fill("paper")
    await editor.get_by_test_id("checklist-trading_groups").get_by_label("momentum").check()
    await editor.locator("textarea[name=credentials]").fill(
        json.dumps({"apiKey": "k", "secret": secret})
    )
    await editor.get_by_role("button", name="Create").click()
    row = page.get_by_test_id("row-trade-accounts-paper-1")
    await expect(row).to_contain_text("stored")
    await expect(row).to_contain_text("momentum")
    # Editing shows that credentials exist, never what they are.
    await row.get_by_role("button", name="Edit").click()
    editor = page.get_by_test_id("editor-trade-accounts")
    assert await editor.locator("textarea[name=credentials]").input_value() == ""
    assert secret not in await page.content()
    await shot(page, "15-config-accounts")
    await editor.get_by_role("button", name="Cancel").click()

    # Rotate shows a new token once; revoke marks it revoked and disconnects.
    await go(page, "#/config/triggers")
    row = page.get_by_test_id("row-triggers-rsi")
    await row.get_by_role("button", name="Rotate token").click()
    token = await page.get_by_test_id("token-value").input_value()
    assert token.startswith("ats_trg_")
    await page.get_by_role("button", name="I stored it").click()
    await expect(page.get_by_test_id("token-box")).to_have_count(0)
    await row.get_by_role("button", name="Revoke token").click()
    await expect(row).to_contain_text("revoked")
    await row.get_by_role("button", name="Delete").click()
    await row.get_by_role("button", name="Confirm delete").click()
    await expect(row).to_have_count(0)
    async with gateway.api() as api:
        accounts = (await api.get("/api/v1/trade-accounts")).json()
        triggers = (await api.get("/api/v1/triggers")).json()
    assert accounts[0]["has_credentials"] is True and secret not in json.dumps(accounts)
    assert triggers == []
