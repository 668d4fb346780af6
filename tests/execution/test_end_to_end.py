"""The whole chain as real processes on the shipped data: a trigger, a gateway, an
algorithmic group, the execution service on the paper exchange, and the `order`
events back to the group. Positions and PnL are checked by hand arithmetic."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from execution.store import ExecutionStore
from gateway.db import crud
from shared.backtest import BacktestConfig, run_backtest
from shared.db.engine import create_engine
from shared.db.models import EquitySnapshotRow, PositionRow
from shared.kernel.fills import FillModelConfig
from shared.kernel.risk import MarketRules, RiskLimits
from shared.market.feeds import read_candles_csv
from shared.ml import build_strategy
from tests.conftest import TIMEOUT_FACTOR, Database, Gateway, Spawn, eventually
from tests.execution.conftest import ETH_BTC, paper_config, read_rows
from tests.shared.kernel.test_strategy import expected_sma_trades

FEE = Decimal("0.001")
SLIP = Decimal("0.0005")  # 5 bps
NOTIONAL = Decimal("0.01")
STEP = Decimal("0.001")
CANDLES = 2500


async def test_signals_to_fills_with_hand_arithmetic(
    gateway: Gateway, database: Database, tmp_path: Path, spawn: Spawn
) -> None:
    # The first 2,500 candles (about 100 trades) keep the test short; moving averages
    # are causal, so the expected trades are the full file's up to the cut.
    data = tmp_path / "ETH-BTC_5m.csv"
    data.write_text("".join(ETH_BTC.read_text().splitlines(keepends=True)[: CANDLES + 1]))
    config = paper_config(
        feeds={"ETH/BTC": f"csv:{data}"},
        fill_model={"slippage_bps": "5", "taker_fee": "0.001"},
        risk={
            "sizing": {"method": "fixed_notional", "notional": str(NOTIONAL)},
            "max_positions_per_symbol": 1,
        },
    )
    async with gateway.state.sessionmaker() as s:
        _, trig_token = await crud.create_trigger(session=s, name="sma-eth")
        _, group_token = await crud.create_trading_group(
            session=s, name="momentum", triggers=["sma-eth"]
        )
        await crud.create_trade_account(
            session=s, name="paper-1", exchange="paper", trading_groups=["momentum"], config=config
        )
        _, exe_token = await crud.create_execution_service(
            session=s, name="exec-1", trade_accounts=["paper-1"]
        )
        await s.commit()
    await gateway.state.hub.reload_routing(notify=False)
    env = {**database.env(), "ATS_DATA_DIR": str(tmp_path / "data")}
    execution = spawn(
        ["execution", "--gateway-url", gateway.ws_url],
        {**env, "ATS_EXECUTION_TOKEN": exe_token, "ATS_SYNC_INTERVAL": "0.2"},
        tmp_path / "execution.log",
    )
    group = spawn(
        [
            "group", "algo", "--gateway-url", gateway.ws_url,
            "--strategy", "sma_cross", "--params", json.dumps({"fast": 10, "slow": 30}),
            "--feed", f"ETH/BTC=csv:{data}",
        ],
        {"ATS_TRADING_GROUP_TOKEN": group_token},
        tmp_path / "group.log",
    )  # fmt: skip
    trigger = spawn(
        [
            "trigger", "ma_cross", "--gateway-url", gateway.ws_url,
            "--symbol", "ETH/BTC", "--feed", f"csv:{data}",
            "--params", json.dumps({"fast": 10, "slow": 30}),
        ],
        {"ATS_TRIGGER_TOKEN": trig_token},
        tmp_path / "trigger.log",
    )  # fmt: skip
    assert await asyncio.wait_for(asyncio.to_thread(trigger.wait), 60 * TIMEOUT_FACTOR) == 0
    rows = read_rows(data)
    trades = [t for t in expected_sma_trades(10, 30) if t[0] <= rows[-1]["time"].isoformat()]
    # The last decision fills only if a candle follows it.
    times = [r["time"] for r in rows]
    filled_trades = [t for t in trades if _next_index(times, t[0]) is not None]

    async def orders() -> list[dict[str, Any]]:
        async with gateway.api() as api:
            items: list[dict[str, Any]] = []
            after: Any = None
            while True:
                params: dict[str, Any] = {"category": "order", "limit": 1000}
                if after is not None:
                    params["after"] = after
                page = (await api.get("/api/v1/events", params=params)).json()
                items += page["items"]
                after = page["next_after"]
                if after is None:
                    return items

    async def all_filled() -> list[dict[str, Any]] | None:
        fills = [e for e in await orders() if e["payload"]["status"] == "filled"]
        return fills if len(fills) >= len(filled_trades) else None

    fills = await eventually(
        all_filled, timeout=120, interval=0.5, message=f"{len(filled_trades)} fills"
    )
    assert len(fills) == len(filled_trades)

    # By hand: each decision fills at the open of the next candle, slipped 5 bps
    # against us, with a 0.1 % fee; an entry buys 0.01 BTC of ETH at the decision's
    # price, floored to the 0.001 ETH step; an exit sells all of it.
    cash = Decimal(1)
    realized_total = Decimal(0)
    held = Decimal(0)
    cost = Decimal(0)
    decisions = {
        e["payload"]["candle_time"].replace("Z", "+00:00"): e
        for e in await _events(gateway, "decision")
    }
    for (when, action), fill in zip(filled_trades, fills, strict=True):
        payload = fill["payload"]
        decision = decisions[when]
        assert fill["trace"]["causation_id"] == decision["id"]
        assert payload["trading_group"] == "momentum"
        nxt = rows[_next_index(times, when)]  # type: ignore[index]
        if action == "BUY":
            entry = Decimal(decision["payload"]["entry"])
            quantity = (NOTIONAL / entry).quantize(STEP, rounding=ROUND_DOWN)
            price = nxt["open"] * (1 + SLIP)
            assert (payload["side"], Decimal(payload["price"])) == ("buy", price)
            assert Decimal(payload["quantity"]) == quantity
            held, cost = quantity, quantity * price * (1 + FEE)
            cash -= cost
        else:
            price = nxt["open"] * (1 - SLIP)
            assert (payload["side"], Decimal(payload["price"])) == ("sell", price)
            assert Decimal(payload["quantity"]) == held
            proceeds = held * price * (1 - FEE)
            realized = proceeds - cost
            assert Decimal(payload["realized_pnl"]) == realized
            cash += proceeds
            realized_total += realized
            held = cost = Decimal(0)
        assert Decimal(payload["position"]["quantity"]) == held

    engine = create_engine(database.url, schema=database.schema)
    try:
        async with ExecutionStore(engine).sessions() as s:
            position = await s.get(PositionRow, ("paper-1", "ETH/BTC"))
            assert position is not None
            assert position.quantity == held
            assert position.realized_pnl == realized_total
            snapshots = (
                await s.scalars(
                    select(EquitySnapshotRow)
                    .where(EquitySnapshotRow.account == "paper-1")
                    .order_by(EquitySnapshotRow.id)
                )
            ).all()
            # One after every fill at least, the last with every trade's PnL in it.
            assert len(snapshots) >= len(fills)
            assert max(s.realized_pnl for s in snapshots) >= realized_total
            assert snapshots[-1].realized_pnl == realized_total
    finally:
        await engine.dispose()
    last_equity = Decimal(fills[-1]["payload"]["equity"])
    mark = Decimal(fills[-1]["payload"]["price"])
    assert last_equity == cash + held * mark

    # Parity: the backtester, on the same candles with the same settings, makes
    # exactly these trades and ends with the same equity.
    result = run_backtest(
        lambda: build_strategy("sma_cross", {"fast": 10, "slow": 30}),
        {"ETH/BTC": read_candles_csv(data, "ETH/BTC", "5m")},
        BacktestConfig(
            capital=Decimal(1),
            currency="BTC",
            fill_model=FillModelConfig.model_validate(config["fill_model"]),
            risk=RiskLimits.model_validate(config["risk"]),
            markets={
                "ETH/BTC": MarketRules.from_config(
                    "ETH/BTC", config["markets"]["ETH/BTC"], taker_fee=FEE
                )
            },
        ),
    )
    live = [
        (Decimal(b["payload"]["price"]), Decimal(s["payload"]["price"]))
        for b, s in zip(fills[::2], fills[1::2], strict=False)
    ]
    assert [(t.entry_price, t.exit_price) for t in result.trades] == live
    assert sum(t.pnl for t in result.trades) == realized_total
    assert result.final_equity == cash + held * rows[-1]["close"]

    # The group heard every order event back (it counts them).
    group.terminate()
    assert await asyncio.wait_for(asyncio.to_thread(group.wait), 30) == 0
    stopped = [
        json.loads(line)
        for line in (tmp_path / "group.log").read_text().splitlines()
        if '"group_stopped"' in line
    ]
    assert stopped and stopped[-1]["orders"] == len(await orders())
    execution.terminate()
    assert await asyncio.wait_for(asyncio.to_thread(execution.wait), 30) == 0


def _next_index(times: list[Any], when: str) -> int | None:
    t = datetime.fromisoformat(when)
    i = times.index(t)
    return i + 1 if i + 1 < len(times) else None


async def _events(gateway: Gateway, category: str) -> list[dict[str, Any]]:
    async with gateway.api() as api:
        return list(
            (await api.get("/api/v1/events", params={"category": category, "limit": 1000})).json()[
                "items"
            ]
        )
