"""Backtests over REST: queued, run in a worker process, persisted, read back.

A real gateway (with its real process pool) runs each backtest; the expected result
is the same request run directly in this process, so the REST path adds nothing and
loses nothing. Bad requests are refused before anything is stored, files outside the
readable directories included; a run that fails ends `failed` with its error; what a
killed gateway left unfinished is marked failed when the next one starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.api.schemas import BacktestPublic, Problem
from gateway.backtests import RESTARTED, STOPPED
from shared.backtest.data import BacktestRequest
from shared.backtest.engine import run_backtest
from shared.backtest.metrics import compute_metrics
from shared.db.models import BacktestRow
from tests.conftest import ROOT, Database, Gateway, eventually, gateway_settings, start_gateway
from tests.gateway.api.conftest import error_locs

SHIPPED = "data/ETH-BTC_5m.csv"
SMA: dict[str, Any] = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}}
T0 = datetime(2026, 3, 1, tzinfo=UTC)
HEADER = "timestamp,open,high,low,close,volume\n"


def write_candles(path: Path, bars: int, *, bad_line: int | None = None) -> Path:
    """A 5m candle file: a slow zigzag (so SMAs cross), a bad row at `bad_line`."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines = [HEADER]
    for i in range(bars):
        price = 100 + (i % 200 if (i // 200) % 2 == 0 else 200 - i % 200) * 0.1
        at = (start + timedelta(minutes=5 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        close = "not-a-price" if bad_line is not None and i + 2 == bad_line else f"{price:.4f}"
        lines.append(f"{at},{price:.4f},{price + 0.05:.4f},{price - 0.05:.4f},{close},10\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    return path


async def wait_finished(api: httpx.AsyncClient, url: str, timeout: float = 30) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.get(url)).json()
        return body if body["status"] in ("done", "failed") else None

    result: dict[str, Any] = await eventually(
        finished, timeout=timeout, interval=0.1, message=f"{url} to finish"
    )
    return result


async def submit(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    r = await api.post("/api/v1/backtests", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    location: str = r.headers["location"]
    assert location == f"/api/v1/backtests/{r.json()['id']}"
    return location


@pytest.fixture
async def confined(database: Database, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway that may also read tmp_path/allowed (ATS_BACKTEST_DATA_DIRS)."""
    (tmp_path / "allowed").mkdir()
    gw = await start_gateway(
        gateway_settings(database, tmp_path / "data", backtest_data_dirs=[tmp_path / "allowed"]),
        database,
    )
    try:
        yield gw
    finally:
        if not gw.task.done():
            await gw.stop()


async def test_backtest_on_shipped_data_is_done_with_the_direct_runs_result(
    gateway: Gateway,
) -> None:
    async with gateway.api() as api:
        url = await submit(api, {**SMA, "data": [SHIPPED], "commission": "0.001"})
        body = await wait_finished(api, url)
        listed = (await api.get("/api/v1/backtests")).json()

    assert body["status"] == "done", body["error"]
    BacktestPublic.model_validate(body)
    expected_request = BacktestRequest.model_validate(
        {**SMA, "data": [str(ROOT / SHIPPED)], "commission": "0.001"}
    )
    # Stored as validated: defaults filled, the path made absolute (the file it read).
    assert body["request"] == expected_request.model_dump(mode="json")
    direct = run_backtest(
        expected_request.build_strategy,
        expected_request.load(),
        expected_request.to_config(),
        strategy_name="sma_cross",
        params=SMA["params"],
    )
    result = dict(body["result"])
    metrics = result.pop("metrics")
    assert result == direct.to_json()
    assert metrics == body["metrics"] == compute_metrics(direct).to_json()
    assert body["metrics"]["trades"] == len(direct.trades) > 0
    assert body["progress"] == 1.0 and body["error"] is None
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]
    # The list shows it with its metrics, without the whole result.
    assert [(i["id"], i["status"]) for i in listed["items"]] == [(body["id"], "done")]
    assert listed["items"][0]["metrics"] == body["metrics"]
    assert "result" not in listed["items"][0] and listed["next_after"] is None


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"strategy": "nope", "data": [SHIPPED]}, ["body"], "unknown strategy 'nope'"),
        (
            {"strategy": "sma_cross", "params": {"fast": 30, "slow": 10}, "data": [SHIPPED]},
            ["body", "params"],
            "fast (30) must be shorter than slow (10)",
        ),
        (
            {"strategy": "sma_cross", "params": {"fats": 3}, "data": [SHIPPED]},
            ["body", "params", "fats"],
            "Extra inputs are not permitted",
        ),
        ({**SMA, "data": ["data/DOGE-BTC_5m.csv"]}, ["body", "data", "0", "path"], "no such file"),
        (
            {**SMA, "data": ["data/../tests/ETH-BTC_5m.csv"]},
            ["body", "data", "0", "path"],
            "outside the directories backtests may read",
        ),
        (
            {**SMA, "data": ["/etc/ETH-BTC_5m.csv"]},
            ["body", "data", "0", "path"],
            "outside the directories backtests may read",
        ),
        ({**SMA, "data": ["data/README.md"]}, ["body"], "cannot tell the market"),
        ({**SMA, "data": [], "capital": "100"}, ["body", "data"], "at least 1 item"),
        ({**SMA, "data": [SHIPPED], "capital": "-1"}, ["body", "capital"], "greater than 0"),
        ({**SMA, "data": [SHIPPED], "leverage": 3}, ["body", "leverage"], "Extra inputs"),
    ],
    ids=[
        "unknown-strategy",
        "bad-params",
        "unknown-param",
        "missing-file",
        "dotdot-outside",
        "absolute-outside",
        "unnamed-market",
        "no-data",
        "negative-capital",
        "unknown-field",
    ],
)
async def test_backtest_bad_request_is_422_and_stores_nothing(
    gateway: Gateway, body: dict[str, Any], loc: list[str], message: str
) -> None:
    async with gateway.api() as api:
        r = await api.post("/api/v1/backtests", json=body)
        assert loc in error_locs(r)
        assert message in r.text, r.text
        assert (await api.get("/api/v1/backtests")).json()["items"] == []


async def test_backtest_bad_params_are_refused_where_a_trading_groups_are(
    gateway: Gateway,
) -> None:
    """The params are checked as a group's are (its strategy's model), with the same
    errors, each at its param under `params` rather than on the whole body."""
    bad = {"fast": 0, "slow": 6000, "stop_loss": {"kind": "pct"}}
    async with gateway.api() as api:
        r = await api.post(
            "/api/v1/backtests", json={"strategy": "sma_cross", "params": bad, "data": [SHIPPED]}
        )
        group = await api.post(
            "/api/v1/trading-groups",
            json={"name": "g", "kind": "algo", "config": {"strategy": "sma_cross", "params": bad}},
        )
        listed = (await api.get("/api/v1/backtests")).json()["items"]
    assert sorted(error_locs(r)) == [
        ["body", "params", "fast"],
        ["body", "params", "slow"],
        ["body", "params", "stop_loss", "pct", "value"],  # a tagged union's tag is in it
    ]
    # The group's errors, `config` left out of their loc: the same, said the same way.
    as_group = [
        {**e, "loc": [p for p in e["loc"] if p != "config"]} for e in group.json()["detail"]
    ]
    assert sorted(r.json()["detail"], key=str) == sorted(as_group, key=str)
    assert listed == []


async def test_backtest_reads_an_allowed_dir_and_not_a_symlink_out_of_it(
    confined: Gateway, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    good = write_candles(allowed / "ETH-USDT_5m.csv", 400)
    secret = write_candles(tmp_path / "secret" / "BTC-USDT_5m.csv", 400)
    (allowed / "BTC-USDT_5m.csv").symlink_to(secret)
    async with confined.api() as api:
        r = await api.post("/api/v1/backtests", json={**SMA, "data": [str(secret)]})
        assert ["body", "data", "0", "path"] in error_locs(r)
        r = await api.post(
            "/api/v1/backtests", json={**SMA, "data": [str(allowed / "BTC-USDT_5m.csv")]}
        )
        assert ["body", "data", "0", "path"] in error_locs(r)
        assert "outside the directories" in r.text
        body = await wait_finished(api, await submit(api, {**SMA, "data": [str(good)]}))
    assert body["status"] == "done", body["error"]
    assert body["result"]["symbols"] == ["ETH/USDT"] and body["result"]["bars"] == 400


async def test_backtest_failing_run_ends_failed_with_its_error(
    confined: Gateway, tmp_path: Path
) -> None:
    bad = write_candles(tmp_path / "allowed" / "ETH-USDT_5m.csv", 300, bad_line=250)
    async with confined.api() as api:
        url = await submit(api, {**SMA, "data": [str(bad)]})
        body = await wait_finished(api, url)
        # The pool lives on: the next backtest runs.
        good = write_candles(tmp_path / "allowed" / "LTC-USDT_5m.csv", 300)
        after = await wait_finished(api, await submit(api, {**SMA, "data": [str(good)]}))
    assert body["status"] == "failed"
    assert body["error"].startswith("BacktestInputError: ")
    assert "line 250" in body["error"] and "close is not a number" in body["error"]
    assert body["result"] is None and body["metrics"] is None
    assert body["finished_at"] is not None
    assert after["status"] == "done", after["error"]


async def test_backtest_unfinished_rows_are_failed_by_the_next_gateway(
    gateway: Gateway, tmp_path: Path
) -> None:
    rows = {
        "00000000-0000-0000-0000-000000000001": "queued",
        "00000000-0000-0000-0000-000000000002": "running",
        "00000000-0000-0000-0000-000000000003": "done",
    }
    async with gateway.state.sessionmaker() as session:
        for n, (backtest_id, status) in enumerate(rows.items()):
            session.add(
                BacktestRow(
                    id=backtest_id,
                    status=status,
                    request={**SMA, "data": [SHIPPED]},
                    progress=0.5 if status == "running" else 0.0,
                    created_at=T0 + timedelta(seconds=n),
                    started_at=T0 if status == "running" else None,
                )
            )
        await session.commit()
    # As if the process had been killed: the rows stay as they were.
    await gateway.stop()

    restarted = await start_gateway(gateway.settings, gateway.database)
    try:
        async with restarted.api() as api:
            items = (await api.get("/api/v1/backtests", params={"order": "asc"})).json()["items"]
    finally:
        await restarted.stop()
    assert [(i["id"][-1], i["status"]) for i in items] == [
        ("1", "failed"),
        ("2", "failed"),
        ("3", "done"),
    ]
    assert [i["error"] for i in items] == [RESTARTED, RESTARTED, None]
    assert items[0]["finished_at"] is not None and items[2]["finished_at"] is None


async def test_backtest_running_at_shutdown_is_stopped_and_marked_failed(
    confined: Gateway, tmp_path: Path
) -> None:
    # Long enough to be running when the gateway stops: several seconds of bars for
    # an ensemble of three (an SMA cross alone now replays them in about one).
    long = write_candles(tmp_path / "allowed" / "ETH-USDT_5m.csv", 100_000)
    slow = {
        "strategy": "ensemble",
        "params": {
            "members": [
                {"strategy": "sma_cross"},
                {"strategy": "rsi_reversal"},
                {"strategy": "breakout"},
            ]
        },
    }
    async with confined.api() as api:
        url = await submit(api, {**slow, "data": [str(long)]})

        async def progressed() -> bool:
            body = (await api.get(url)).json()
            return bool(body["status"] == "running" and body["progress"] > 0)

        await eventually(progressed, timeout=30, message="progress written while running")
    await confined.stop()
    async with confined.state.sessionmaker() as session:
        row = await session.scalar(select(BacktestRow))
    assert row is not None
    assert (row.status, row.error) == ("failed", STOPPED)
    assert 0 < row.progress < 1


async def test_backtests_page_newest_first_and_filter_by_status(gateway: Gateway) -> None:
    async with gateway.state.sessionmaker() as session:
        for n in range(5):
            session.add(
                BacktestRow(
                    id=f"00000000-0000-0000-0000-00000000000{n}",
                    status="done" if n % 2 == 0 else "failed",
                    request={},
                    progress=1.0,
                    metrics={"sharpe": n},
                    result={"big": "curve"},
                    error=None if n % 2 == 0 else "boom",
                    created_at=T0 + timedelta(minutes=n),
                )
            )
        await session.commit()
    async with gateway.api() as api:
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = (await api.get("/api/v1/backtests", params=params)).json()
            seen += [i["id"][-1] for i in page["items"]]
            if page["next_after"] is None:
                break
            params["after"] = page["next_after"]
        failed = (await api.get("/api/v1/backtests", params={"status": "failed"})).json()
        bad = await api.get("/api/v1/backtests", params={"after": "garbage!"})
        missing = await api.get("/api/v1/backtests/00000000-0000-0000-0000-00000000000f")
    assert seen == ["4", "3", "2", "1", "0"]
    assert [i["id"][-1] for i in failed["items"]] == ["3", "1"]
    assert failed["items"][0]["error"] == "boom"
    assert ["query", "after"] in error_locs(bad)
    assert missing.status_code == 404
    Problem.model_validate(missing.json())


async def test_backtests_need_the_api_key(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as client:
        for method, path in [
            ("POST", "/api/v1/backtests"),
            ("GET", "/api/v1/backtests"),
            ("GET", "/api/v1/backtests/00000000-0000-0000-0000-000000000001"),
        ]:
            r = await client.request(method, path, json={**SMA, "data": [SHIPPED]})
            assert r.status_code == 401, (method, path)
    async with gateway.api() as api:
        assert (await api.get("/api/v1/backtests")).json()["items"] == []
