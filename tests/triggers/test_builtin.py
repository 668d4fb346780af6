"""Each built-in trigger as a real process against a real gateway, on shipped data.

The signals a subscribed group receives are compared with the crossings computed
independently (tests/triggers/expected.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import TIMEOUT_FACTOR, Gateway, eventually, gateway_settings, start_gateway
from tests.gateway.ws.wsclient import RawClient
from tests.triggers import expected

ATS = str(Path(sys.executable).with_name("ats"))
ROOT = Path(__file__).resolve().parents[2]


_started: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _kill_leftover_triggers() -> Iterator[None]:
    """A failed test must not leave its trigger process running."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_trigger(
    gateway_url: str, token: str, kind: str, *args: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ATS_TRIGGER_TOKEN": token, "ATS_LOG_JSON": "true"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [ATS, "trigger", kind, "--gateway-url", gateway_url, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    _started.append(proc)
    return proc


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    return await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout * TIMEOUT_FACTOR)


def received(group: RawClient) -> set[tuple[str, str]]:
    return {(e["payload"]["candle_time"], e["payload"]["rule"]) for e in group.events}


CASES: list[tuple[str, dict[str, Any], Callable[[pd.DataFrame], set[tuple[str, str]]]]] = [
    ("rsi", {}, expected.rsi_threshold),
    ("ma_cross", {"fast": 10, "slow": 30}, expected.ma_cross),
    (
        "ma_cross",
        {"fast": 12, "slow": 26, "ma": "ema"},
        lambda df: expected.ma_cross(df, 12, 26, "ema"),
    ),
    ("macd_cross", {}, expected.macd_cross),
    ("breakout", {"length": 20}, expected.breakout),
    ("price_level", {"level": 0.09}, lambda df: expected.price_level(df, 0.09)),
]


@pytest.mark.parametrize(
    ("kind", "params", "compute"), CASES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(CASES)]
)
async def test_builtin_trigger_publishes_exactly_the_expected_signals(
    gateway: Gateway,
    tmp_path: Path,
    kind: str,
    params: dict[str, Any],
    compute: Callable[[pd.DataFrame], set[tuple[str, str]]],
) -> None:
    token = await gateway.add_trigger("t1")
    group_token = await gateway.add_group("g1", ["t1"])
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group_token)
    proc = start_trigger(
        gateway.ws_url,
        token,
        kind,
        "--symbol", "ETH/BTC",
        "--feed", "csv:data/ETH-BTC_5m.csv",
        "--params", json.dumps(params),
        log=tmp_path / "trigger.log",
    )  # fmt: skip
    assert await wait_exit(proc) == 0, (tmp_path / "trigger.log").read_text()[-3000:]
    want = compute(expected.load("ETH-BTC_5m.csv"))
    assert want, "the case must produce signals on this data"
    await eventually(lambda: len(group.events) >= len(want), timeout=20)
    assert received(group) == want
    first = group.events[0]
    assert first["source"] == "trigger:t1"
    assert first["payload"]["symbol"] == "ETH/BTC"
    assert first["payload"]["trigger"] == kind
    assert first["trace"]["correlation_id"] == first["id"]


async def test_trigger_rerun_over_the_same_data_publishes_nothing_twice(
    gateway: Gateway, tmp_path: Path
) -> None:
    token = await gateway.add_trigger("t1")
    group_token = await gateway.add_group("g1", ["t1"])
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group_token)
    args = ("--symbol", "ETH/BTC", "--feed", "csv:data/ETH-BTC_5m.csv")
    first = start_trigger(gateway.ws_url, token, "rsi", *args, log=tmp_path / "t.log")
    assert await wait_exit(first) == 0
    want = expected.rsi_threshold(expected.load("ETH-BTC_5m.csv"))
    await eventually(lambda: len(group.events) >= len(want))
    again = start_trigger(gateway.ws_url, token, "rsi", *args, log=tmp_path / "t.log")
    assert await wait_exit(again) == 0
    # Same candles, same ids: the gateway answers "duplicate" and routes nothing.
    marker = await RawClient.connect(gateway.ws_url, param="trigger_token", token=token)
    ack = await marker.request(
        {"kind": "event", "category": "signal", "payload": {"symbol": "ETH/BTC"}}
    )
    await eventually(lambda: group.events[-1]["id"] == ack["id"])
    assert len(group.events) == len(want) + 1


async def test_trigger_reports_feed_gaps_as_logs(gateway: Gateway, tmp_path: Path) -> None:
    token = await gateway.add_trigger("t1")
    proc = start_trigger(
        gateway.ws_url,
        token,
        "breakout",
        "--symbol", "ADA/BTC",
        "--feed", "csv:data/ADA-BTC_5m.csv",
        log=tmp_path / "t.log",
    )  # fmt: skip
    assert await wait_exit(proc) == 0
    df = expected.load("ADA-BTC_5m.csv")
    steps = df.index.to_series().diff().dropna()
    gaps = steps[steps > pd.Timedelta(minutes=5)]
    async with gateway.api() as api:
        r = await api.get("/api/v1/logs", params={"code": "FEED_GAP", "limit": 1000})
    items = r.json()["items"]
    assert len(items) == len(gaps) > 0
    assert sum(i["data"]["missing"] for i in items) == int(
        sum(g / pd.Timedelta(minutes=5) - 1 for g in gaps)
    )
    async with gateway.api() as api:
        beats = await api.get("/api/v1/logs", params={"code": "TRIGGER_HEARTBEAT"})
    assert any(b["data"]["final"] for b in beats.json()["items"])


async def test_trigger_survives_a_gateway_restart_and_loses_no_signal(
    gateway: Gateway, tmp_path: Path
) -> None:
    token = await gateway.add_trigger("t1")
    group_token = await gateway.add_group("g1", ["t1"])
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group_token)
    # ~1 ms per 5m candle: long enough to restart the gateway in the middle.
    proc = start_trigger(
        gateway.ws_url,
        token,
        "ma_cross",
        "--symbol", "ETH/BTC",
        "--feed", "csv:data/ETH-BTC_5m.csv",
        "--speed", "300000",
        log=tmp_path / "t.log",
    )  # fmt: skip
    want = expected.ma_cross(expected.load("ETH-BTC_5m.csv"))
    await eventually(lambda: len(group.events) >= 20, timeout=30)
    port = gateway.port
    await gateway.stop()
    assert proc.poll() is None, "the trigger must still be running when the gateway stops"
    restarted = await start_gateway(
        gateway_settings(gateway.database, tmp_path / "data2", port=port), gateway.database
    )
    try:
        again = await RawClient.connect(
            restarted.ws_url, param="trading_group_token", token=group_token
        )
        assert await wait_exit(proc) == 0, (tmp_path / "t.log").read_text()[-3000:]
        # What the first session received before the stop, plus what the second got.
        both = lambda: group.events + again.events  # noqa: E731
        await eventually(lambda: len({e["id"] for e in both()}) >= len(want))
        got = {(e["payload"]["candle_time"], e["payload"]["rule"]) for e in both()}
        assert got == want
    finally:
        await restarted.stop()
