"""Stop-loss and take-profit on a venue that does not hold them (a ccxt market that
takes no order lists): the service watches the last price and sends a market exit,
once, when it crosses."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shared.db.models import OrderRow
from tests.conftest import Database, Gateway, eventually
from tests.execution.conftest import Desk, close_desk, open_desk, read_rows
from tests.fakes.binance import ETHBTC, FakeBinance

API_KEY = "ats-watch-binance-key-7Hq2mVx9LpR4"
SECRET = "ats-watch-binance-secret-Nc8wK3zT6yB1"


def fills(desk: Desk, leg: str) -> list[Any]:
    return [
        e
        for e in desk.orders
        if e.payload.status == "filled" and (e.payload.model_extra or {}).get("leg") == leg
    ]


async def watched_exit(
    gateway: Gateway, database: Database, tmp_path: Path, *, move_to: Decimal, leg: str
) -> None:
    # ocoAllowed false: the adapter cannot hold the exits there.
    no_lists = replace(ETHBTC, oco_allowed=False)
    async with FakeBinance(
        api_key=API_KEY, secret=SECRET, balances={"BTC": Decimal(1)}, markets=(no_lists,)
    ) as binance:
        desk, engine = await open_desk(
            gateway,
            database,
            tmp_path / "exe",
            exchange="binance",
            account_config={
                "sandbox": True,
                "api_url": binance.url,
                "rate_limit": False,
                "currency": "BTC",
                "risk": {"sizing": {"method": "fixed_notional", "notional": "0.01"}},
            },
            credentials={"api_key": API_KEY, "secret": SECRET},
        )
        try:
            rows = read_rows()
            await desk.decide(
                "BUY",
                rows[10]["time"],
                entry=Decimal("0.05"),
                stop_loss="0.045",
                take_profit="0.06",
            )
            await eventually(lambda: fills(desk, "entry"), message="the entry fill")
            binance.set_price(move_to)
            await eventually(lambda: fills(desk, leg), message=f"the {leg} exit")
            (exit_fill,) = fills(desk, leg)
            assert exit_fill.payload.side == "sell"
            assert exit_fill.payload.price == move_to
            assert (exit_fill.payload.model_extra or {})["position"]["quantity"] == "0"
            await desk.service.sync_now()
            await desk.service.sync_now()
            async with desk.store.sessions() as s:
                legs = sorted((await s.scalars(select(OrderRow.leg))).all())
            assert legs == sorted(["entry", leg]), "one exit, never a second"
            assert len(binance.orders) == 2
        finally:
            await close_desk(desk, engine)


async def test_the_stop_loss_is_watched_and_sells_once(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    await watched_exit(gateway, database, tmp_path, move_to=Decimal("0.044"), leg="stop_loss")


async def test_the_take_profit_is_watched_and_sells_once(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    await watched_exit(gateway, database, tmp_path, move_to=Decimal("0.061"), leg="take_profit")
