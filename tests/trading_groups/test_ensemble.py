"""The ensemble as a real group process (`ats group algo --strategy ensemble`), fed by a
real trigger through a real gateway on the shipped data: the decisions its members
and gates must take are taken, each explaining every member's vote and weight."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pandas_ta as ta
import pytest

from tests.conftest import TIMEOUT_FACTOR, Gateway, Spawn, eventually
from tests.gateway.ws.wsclient import RawClient
from tests.triggers.expected import load

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ["sma_cross", "rsi_reversal", "breakout"]
PARAMS = {
    "members": [
        {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}},
        {"strategy": "rsi_reversal"},
        {"strategy": "breakout", "params": {"length": 20, "exit_length": 10}},
    ],
    "min_confidence": 0.55,
    "cooldown_minutes": 60,
    "max_atr_pct": 0.6,
    "atr_length": 14,
    "max_trades_per_day": 3,
}


def expected_ensemble_trades() -> tuple[list[tuple[str, str, list[str]]], dict[str, int]]:
    """On each candle the ma_cross(10, 30) trigger signals, with no trade record yet
    (every weight 1.0): the action, the members voting for it, and how often each
    gate held an entry back. Every vote here is >= 0.6 and members never oppose one
    another (long-only), so the confidence gate at 0.55 never blocks."""
    df = load("ETH-BTC_5m.csv")
    close = df["close"]
    fast, slow = ta.sma(close, length=10), ta.sma(close, length=30)
    rsi = ta.rsi(close, length=14)
    atr_pct = ta.atr(df["high"], df["low"], close, length=14) / close * 100
    high20 = df["high"].rolling(20).max().shift(1)
    low10 = df["low"].rolling(10).min().shift(1)
    up = (fast.shift(1) <= slow.shift(1)) & (fast > slow)
    down = (fast.shift(1) >= slow.shift(1)) & (fast < slow)
    out: list[tuple[str, str, list[str]]] = []
    blocked = {"cooldown": 0, "volatility": 0, "max_trades_per_day": 0}
    holding, last = False, None
    opened: dict[date, int] = {}
    for t in df.index[(up | down).fillna(False)]:
        now = t + timedelta(minutes=5)  # the candle's close: the group's clock
        if holding:
            side = "SELL"
            votes = {
                "sma_cross": bool(down[t]),
                "rsi_reversal": bool(rsi.shift(1)[t] <= 70 < rsi[t]),
                "breakout": bool(close[t] < low10[t]),
            }
        else:
            side = "BUY"
            votes = {
                "sma_cross": bool(up[t]),
                "rsi_reversal": bool(rsi.shift(1)[t] <= 30 < rsi[t]),
                "breakout": bool(close[t] > high20[t]),
            }
        if not any(votes.values()):
            continue
        if side == "BUY":
            if last is not None and now - last < timedelta(minutes=60):
                blocked["cooldown"] += 1
                continue
            if atr_pct[t] > 0.6:
                blocked["volatility"] += 1
                continue
            if opened.get(now.date(), 0) >= 3:
                blocked["max_trades_per_day"] += 1
                continue
            opened[now.date()] = opened.get(now.date(), 0) + 1
        out.append((t.isoformat(), side, [m for m in MEMBERS if votes[m]]))
        holding, last = side == "BUY", now
    return out, blocked


async def test_ensemble_group_takes_the_gated_member_votes_with_reasoning(
    gateway: Gateway, tmp_path: Path, spawn: Spawn
) -> None:
    want, blocked = expected_ensemble_trades()
    # The data exercises every entry gate, and members agreeing on a candle.
    assert all(n > 0 for n in blocked.values()), blocked
    assert any(len(members) > 1 for _, _, members in want)

    trig_token = await gateway.add_trigger("sma-eth")
    group_token = await gateway.add_group("mother", ["sma-eth"])
    await gateway.add_account("paper-1", ["mother"])
    exec_token = await gateway.add_execution("exec-1", ["paper-1"])
    execution = await RawClient.connect(gateway.ws_url, param="execution_token", token=exec_token)
    group = spawn(
        [
            "group", "algo", "--gateway-url", gateway.ws_url,
            "--strategy", "ensemble", "--params", json.dumps(PARAMS),
            "--feed", "ETH/BTC=csv:data/ETH-BTC_5m.csv",
        ],
        {"ATS_TRADING_GROUP_TOKEN": group_token},
        tmp_path / "group.log",
    )  # fmt: skip
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
    await eventually(
        lambda: group.poll() is not None or len(execution.events) >= len(want),
        timeout=60,
        message=f"{len(want)} decisions (log: {tmp_path / 'group.log'})",
    )
    assert group.poll() is None, (tmp_path / "group.log").read_text()[-2000:]
    got = []
    for e in execution.events:
        p = e["payload"]
        assert p["strategy"] == "ensemble"
        assert [v["member"] for v in p["votes"]] == MEMBERS
        assert all(v["weight"] == 1.0 for v in p["votes"])  # no trade record yet
        # The reasoning lists each member's vote and weight, then the verdict.
        verdict = f" -> {p['action']} {p['confidence']:.2f}"
        listed = "; ".join(
            f"{v['member']} HOLD x w=1.00"
            if v["action"] == "HOLD"
            else f"{v['member']} {v['action']} {v['confidence']:.2f} x w=1.00"
            for v in p["votes"]
        )
        assert p["reasoning"].startswith(listed + verdict), p["reasoning"]
        voters = [v["member"] for v in p["votes"] if v["action"] == p["action"]]
        assert p["members"] == voters
        assert p["confidence"] == pytest.approx(
            sum(v["confidence"] for v in p["votes"] if v["member"] in voters) / len(voters),
            rel=1e-12,
        )
        when = datetime.fromisoformat(p["candle_time"].replace("Z", "+00:00"))
        got.append((pd.Timestamp(when).isoformat(), p["action"], voters))
    assert got == want
    # Each decision answers the trigger's signal on its candle.
    async with gateway.api() as api:
        signals = {
            e["id"]: e
            for e in (
                await api.get("/api/v1/events", params={"category": "signal", "limit": 1000})
            ).json()["items"]
        }
    for d in execution.events:
        cause = signals[d["trace"]["causation_id"]]
        assert cause["payload"]["candle_time"] == d["payload"]["candle_time"]
        assert d["source"] == "trading_group:mother"
    group.terminate()
    assert await asyncio.wait_for(asyncio.to_thread(group.wait), 30) == 0
