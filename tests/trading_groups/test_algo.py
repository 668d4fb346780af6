"""An algorithmic group as a real process, fed by a real trigger process through a real
gateway on the shipped data: the decisions it must take are taken, with their cause."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pandas_ta as ta

from shared.db.models import PositionRow
from tests.conftest import TIMEOUT_FACTOR, Gateway, Spawn, eventually
from tests.gateway.ws.wsclient import RawClient
from tests.shared.kernel.test_strategy import expected_sma_trades
from tests.triggers.expected import load

ROOT = Path(__file__).resolve().parents[2]


async def test_algo_group_takes_the_sma_cross_decisions_with_causation(
    gateway: Gateway, tmp_path: Path, spawn: Spawn
) -> None:
    trig_token = await gateway.add_trigger("sma-eth")
    group_token = await gateway.add_group("momentum", ["sma-eth"])
    await gateway.add_account("paper-1", ["momentum"])
    exec_token = await gateway.add_execution("exec-1", ["paper-1"])
    execution = await RawClient.connect(gateway.ws_url, param="execution_token", token=exec_token)
    watcher = await RawClient.connect(
        gateway.ws_url, param="trading_group_token", token=group_token
    )
    await watcher.close()  # only to prove the token works; the group process uses it now

    group = _spawn_sma_group(spawn, gateway, group_token, tmp_path / "group.log")
    trigger = spawn(
        [
            "trigger", "ma_cross", "--gateway-url", gateway.ws_url,
            "--symbol", "ETH/BTC", "--feed", "csv:data/ETH-BTC_5m.csv",
            "--params", json.dumps({"fast": 10, "slow": 30}),
        ],
        {"ATS_TRIGGER_TOKEN": trig_token},
        tmp_path / "trigger.log",
    )  # fmt: skip
    assert await asyncio.wait_for(asyncio.to_thread(trigger.wait), 60 * TIMEOUT_FACTOR) == 0
    want = expected_sma_trades(10, 30)
    await eventually(
        lambda: len(execution.events) >= len(want),
        timeout=60,
        message=f"{len(want)} decisions (log: {tmp_path / 'group.log'})",
    )
    got = [
        (
            e["payload"]["candle_time"].replace("Z", "+00:00"),
            e["payload"]["action"],
        )  # as pandas prints
        for e in execution.events
    ]
    assert got == want
    # Every decision names the signal it answers, and that signal is the trigger's.
    async with gateway.api() as api:
        signals = {
            e["id"]: e
            for e in (
                await api.get("/api/v1/events", params={"category": "signal", "limit": 1000})
            ).json()["items"]
        }
        logs = (
            await api.get(
                "/api/v1/logs",
                params={
                    "code": "TRADING_GROUP_DISCUSSION_LOG",
                    "source": "trading_group:momentum",
                    "limit": 1000,
                },
            )
        ).json()["items"]
    for d in execution.events:
        cause = signals[d["trace"]["causation_id"]]
        assert cause["payload"]["candle_time"] == d["payload"]["candle_time"]
        assert d["trace"]["correlation_id"] == cause["trace"]["correlation_id"]
        assert d["source"] == "trading_group:momentum"
    # The reasoning of every signal, HOLDs included, is in the persisted discussion.
    assert len(logs) >= len(signals)
    assert any("crossed above" in item["message"] for item in logs)
    group.terminate()
    assert await asyncio.wait_for(asyncio.to_thread(group.wait), 30) == 0


async def test_algo_group_applies_new_params_from_a_config_update_without_restart(
    gateway: Gateway, tmp_path: Path, spawn: Spawn
) -> None:
    trig_token = await gateway.add_trigger("sma-eth")
    async with gateway.api() as api:
        r = await api.post(
            "/api/v1/trading-groups",
            json={
                "name": "momentum",
                "triggers": ["sma-eth"],
                "config": {
                    "strategy": "sma_cross",
                    "params": {"fast": 10, "slow": 30},
                    "feeds": {"ETH/BTC": "csv:data/ETH-BTC_5m.csv"},
                },
            },
        )
        assert r.status_code == 201, r.text
        group_token = r.json()["token"]
    await gateway.add_account("paper-1", ["momentum"])
    exec_token = await gateway.add_execution("exec-1", ["paper-1"])
    execution = await RawClient.connect(gateway.ws_url, param="execution_token", token=exec_token)
    # No flags: strategy, params and feeds all come from the group's REST config.
    group = spawn(
        ["group", "algo", "--gateway-url", gateway.ws_url],
        {"ATS_TRADING_GROUP_TOKEN": group_token},
        tmp_path / "group.log",
    )
    await eventually(lambda: "trading_group:momentum" in gateway.state.hub.sessions, timeout=30)
    async with gateway.api() as api:
        r = await api.patch(
            "/api/v1/trading-groups/momentum",
            json={
                "config": {
                    "strategy": "sma_cross",
                    "params": {"fast": 5, "slow": 20},
                    "feeds": {"ETH/BTC": "csv:data/ETH-BTC_5m.csv"},
                }
            },
        )
        assert r.status_code == 200, r.text

        async def applied() -> bool:
            logs = await api.get(
                "/api/v1/logs",
                params={"code": "CONFIG_APPLIED", "source": "trading_group:momentum"},
            )
            return bool(logs.json()["items"])

        await eventually(applied, timeout=30, message="the group applying the new params")
    trigger = spawn(
        [
            "trigger", "ma_cross", "--gateway-url", gateway.ws_url,
            "--symbol", "ETH/BTC", "--feed", "csv:data/ETH-BTC_5m.csv",
            "--params", json.dumps({"fast": 5, "slow": 20}),
        ],
        {"ATS_TRIGGER_TOKEN": trig_token},
        tmp_path / "trigger.log",
    )  # fmt: skip
    assert await asyncio.wait_for(asyncio.to_thread(trigger.wait), 60 * TIMEOUT_FACTOR) == 0
    want = expected_sma_trades(5, 20)
    await eventually(lambda: len(execution.events) >= len(want), timeout=60)
    got = [
        (e["payload"]["candle_time"].replace("Z", "+00:00"), e["payload"]["action"])
        for e in execution.events
    ]
    assert got == want
    assert {e["payload"]["params"]["fast"] for e in execution.events} == {5}
    assert group.poll() is None  # the same process throughout


async def test_algo_group_given_only_a_strategy_takes_stored_params_of_that_strategy_only(
    gateway: Gateway, tmp_path: Path, spawn: Spawn
) -> None:
    trig_token = await gateway.add_trigger("sma-eth")
    async with gateway.api() as api:
        r = await api.post(
            "/api/v1/trading-groups",
            json={
                "name": "momentum",
                "triggers": ["sma-eth"],
                "config": {"strategy": "sma_cross", "params": {"fast": 5, "slow": 20}},
            },
        )
        assert r.status_code == 201, r.text
        group_token = r.json()["token"]
    await gateway.add_account("paper-1", ["momentum"])
    exec_token = await gateway.add_execution("exec-1", ["paper-1"])
    execution = await RawClient.connect(gateway.ws_url, param="execution_token", token=exec_token)
    # --strategy without --params: the stored params are for this same strategy, so
    # they apply from the first signal.
    group = spawn(
        [
            "group", "algo", "--gateway-url", gateway.ws_url, "--strategy", "sma_cross",
            "--feed", "ETH/BTC=csv:data/ETH-BTC_5m.csv",
        ],
        {"ATS_TRADING_GROUP_TOKEN": group_token},
        tmp_path / "group.log",
    )  # fmt: skip
    feed = Path("data/ETH-BTC_5m.csv")
    await _run_trigger(spawn, gateway, trig_token, feed, 5, 20, tmp_path / "trigger.log")
    want = expected_sma_trades(5, 20)
    await eventually(lambda: len(execution.events) >= len(want), timeout=60)
    got = [
        (e["payload"]["candle_time"].replace("Z", "+00:00"), e["payload"]["action"])
        for e in execution.events
    ]
    assert got == want
    assert {
        (e["payload"]["strategy"], json.dumps(e["payload"]["params"])) for e in execution.events
    } == {("sma_cross", json.dumps({"fast": 5, "slow": 20}))}
    # The operator stores another strategy: the command line's strategy stays, and
    # without params stored for it, it runs on its defaults (as it would after a
    # restart), saying why; the other strategy's params are never fed to it.
    async with gateway.api() as api:
        r = await api.patch(
            "/api/v1/trading-groups/momentum",
            json={"config": {"strategy": "rsi_reversal", "params": {"length": 7}}},
        )
        assert r.status_code == 200, r.text
        ignored = await eventually(
            lambda: _logs(api, "CONFIG_IGNORED"), timeout=30, message="CONFIG_IGNORED"
        )
        assert "rsi_reversal" in ignored[0]["message"]
        assert "defaults" in ignored[0]["message"]
        applied = await eventually(
            lambda: _logs(api, "CONFIG_APPLIED"), timeout=30, message="CONFIG_APPLIED"
        )
        assert applied[0]["data"]["params"] == {}
        assert "sma_cross" in applied[0]["message"]
        assert await _logs(api, "CONFIG_REJECTED") == []
    assert group.poll() is None


async def test_algo_group_started_while_holding_sells_what_execution_holds(
    gateway: Gateway, tmp_path: Path, spawn: Spawn
) -> None:
    """A group restarted with a position open: the connect ack's positions seed its
    book, so its first act is to sell on the next cross down, not to buy again."""
    trig_token = await gateway.add_trigger("sma-eth")
    group_token = await gateway.add_group("momentum", ["sma-eth"])
    await gateway.add_account("paper-1", ["momentum"])
    exec_token = await gateway.add_execution("exec-1", ["paper-1"])
    async with gateway.state.sessionmaker() as db:
        # As execution stored it before the group's restart.
        db.add(
            PositionRow(
                account="paper-1",
                symbol="ETH/BTC",
                trading_group="momentum",
                quantity=Decimal("3"),
                average_price=Decimal("0.05"),
                unrealized_pnl=Decimal(0),
                realized_pnl=Decimal(0),
                opened_at=datetime(2020, 1, 1, tzinfo=UTC),
            )
        )
        await db.commit()
    execution = await RawClient.connect(gateway.ws_url, param="execution_token", token=exec_token)
    group = _spawn_sma_group(spawn, gateway, group_token, tmp_path / "group.log")
    feed = Path("data/ETH-BTC_5m.csv")
    await _run_trigger(spawn, gateway, trig_token, feed, 10, 30, tmp_path / "trigger.log")
    want, _ = _long_only(_crossings(10, 30), holding=True)
    assert want[0][1] == "SELL"  # what a flat group would never do first
    await eventually(lambda: len(execution.events) >= len(want), timeout=60)
    assert [_decided(e) for e in execution.events] == want
    assert group.poll() is None


async def _logs(api: httpx.AsyncClient, code: str) -> list[dict[str, Any]]:
    got = await api.get("/api/v1/logs", params={"code": code, "source": "trading_group:momentum"})
    items: list[dict[str, Any]] = got.json()["items"]
    return items


def _sma_rules(fast: int, slow: int) -> list[dict[str, object]]:
    a, b = {"kind": "sma", "length": fast}, {"kind": "sma", "length": slow}
    return [
        {
            "name": "enter",
            "when": {"indicator": a, "op": "crosses_above", "indicator_b": b},
            "then": "BUY",
        },
        {
            "name": "exit",
            "when": {"indicator": a, "op": "crosses_below", "indicator_b": b},
            "then": "SELL",
        },
    ]


def _spawn_sma_group(
    spawn: Spawn, gateway: Gateway, token: str, log: Path
) -> subprocess.Popen[bytes]:
    """`ats group algo` trading the SMA(10)/SMA(30) cross on the shipped ETH/BTC feed."""
    return spawn(
        [
            "group", "algo", "--gateway-url", gateway.ws_url,
            "--strategy", "sma_cross", "--params", json.dumps({"fast": 10, "slow": 30}),
            "--feed", "ETH/BTC=csv:data/ETH-BTC_5m.csv",
        ],
        {"ATS_TRADING_GROUP_TOKEN": token},
        log,
    )  # fmt: skip


async def _run_trigger(
    spawn: Spawn, gateway: Gateway, token: str, feed: Path, fast: int, slow: int, log: Path
) -> None:
    trigger = spawn(
        [
            "trigger", "ma_cross", "--gateway-url", gateway.ws_url,
            "--symbol", "ETH/BTC", "--feed", f"csv:{feed}",
            "--params", json.dumps({"fast": fast, "slow": slow}),
        ],
        {"ATS_TRIGGER_TOKEN": token},
        log,
    )  # fmt: skip
    assert await asyncio.wait_for(asyncio.to_thread(trigger.wait), 60 * TIMEOUT_FACTOR) == 0


def _crossings(fast: int, slow: int) -> list[tuple[str, str]]:
    """(time, "up" | "down") of every SMA cross on ETH-BTC, computed with pandas-ta."""
    df = load("ETH-BTC_5m.csv")
    f, s = ta.sma(df["close"], length=fast), ta.sma(df["close"], length=slow)
    up = (f.shift(1) <= s.shift(1)) & (f > s)
    down = (f.shift(1) >= s.shift(1)) & (f < s)
    return [(t.isoformat(), "up" if up[t] else "down") for t in df.index if up[t] or down[t]]


def _long_only(crosses: list[tuple[str, str]], holding: bool) -> tuple[list[tuple[str, str]], bool]:
    out = []
    for t, way in crosses:
        if way == "up" and not holding:
            out.append((t, "BUY"))
            holding = True
        elif way == "down" and holding:
            out.append((t, "SELL"))
            holding = False
    return out, holding


async def test_algo_group_runs_a_stored_json_rule_and_follows_its_new_version(
    gateway: Gateway, tmp_path: Path, spawn: Spawn
) -> None:
    # The shipped data in two halves: version 1 decides on the first, version 2 on the second.
    lines = (ROOT / "data" / "ETH-BTC_5m.csv").read_text().splitlines()
    split = 2880
    (tmp_path / "first.csv").write_text("\n".join(lines[: split + 1]) + "\n")
    (tmp_path / "second.csv").write_text("\n".join([lines[0], *lines[split + 1 :]]) + "\n")
    split_time = lines[split + 1].split(",")[0].replace("Z", "+00:00")

    trig_token = await gateway.add_trigger("sma-eth")
    async with gateway.api() as api:
        r = await api.post(
            "/api/v1/strategies",
            json={"name": "sma-rule", "symbol": "ETH/BTC", "rules": _sma_rules(10, 30)},
        )
        assert r.status_code == 201, r.text
        r = await api.post(
            "/api/v1/trading-groups",
            json={
                "name": "rules",
                "triggers": ["sma-eth"],
                "config": {
                    "strategy_ref": "sma-rule",
                    "feeds": {"ETH/BTC": "csv:data/ETH-BTC_5m.csv"},
                },
            },
        )
        assert r.status_code == 201, r.text
        group_token = r.json()["token"]
    await gateway.add_account("paper-1", ["rules"])
    exec_token = await gateway.add_execution("exec-1", ["paper-1"])
    execution = await RawClient.connect(gateway.ws_url, param="execution_token", token=exec_token)
    spawn(
        ["group", "algo", "--gateway-url", gateway.ws_url],
        {"ATS_TRADING_GROUP_TOKEN": group_token},
        tmp_path / "group.log",
    )
    await _run_trigger(
        spawn, gateway, trig_token, tmp_path / "first.csv", 10, 30, tmp_path / "t1.log"
    )
    first, holding = _long_only([c for c in _crossings(10, 30) if c[0] < split_time], False)
    await eventually(lambda: len(execution.events) >= len(first), timeout=60)
    v1 = list(execution.events)
    assert [_decided(e) for e in v1] == first
    assert {(e["payload"]["strategy"], e["payload"]["version"]) for e in v1} == {("sma-rule", 1)}

    # A new version: the running group is told, and decides with it from then on.
    async with gateway.api() as api:
        r = await api.put("/api/v1/strategies/sma-rule", json={"rules": _sma_rules(5, 20)})
        assert r.status_code in (200, 201), r.text

        async def applied() -> bool:
            logs = await api.get(
                "/api/v1/logs", params={"code": "CONFIG_APPLIED", "source": "trading_group:rules"}
            )
            return any("sma-rule v2" in i["message"] for i in logs.json()["items"])

        await eventually(applied, timeout=30, message="version 2 applied")
    await _run_trigger(
        spawn, gateway, trig_token, tmp_path / "second.csv", 5, 20, tmp_path / "t2.log"
    )
    # The trigger's SMA(20) over the second file alone needs 20 candles to warm up.
    warm = lines[split + 1 + 20].split(",")[0].replace("Z", "+00:00")
    second, _ = _long_only([c for c in _crossings(5, 20) if c[0] >= warm], holding)
    await eventually(lambda: len(execution.events) >= len(first) + len(second), timeout=60)
    v2 = execution.events[len(first) :]
    assert [_decided(e) for e in v2] == second
    assert {(e["payload"]["strategy"], e["payload"]["version"]) for e in v2} == {("sma-rule", 2)}


def _decided(event: dict[str, Any]) -> tuple[str, str]:
    return event["payload"]["candle_time"].replace("Z", "+00:00"), event["payload"]["action"]
