"""Stop-loss and take-profit held by OANDA: a filled entry's exits are the trade's own
STOP_LOSS and TAKE_PROFIT orders, so they protect the position while the service is
down, the leg that fills is booked like any fill, and OANDA cancels the other.

The exchange is the real OANDA adapter against the local v20 server
(`tests/fakes/oanda.py`), the service the real one on a real gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared.db.models import FillRow, IncidentRow, PositionRow
from shared.kernel.orders import OrderLeg, client_order_id
from tests.conftest import Database, Gateway, eventually
from tests.execution.conftest import Desk, opened_desk, read_rows
from tests.execution.test_native_exits import events, legs_reach, protected_buy, rows, statuses
from tests.fakes.oanda import FakeOanda, Order

SYMBOL, INSTRUMENT = "EUR/USD", "EUR_USD"
# 1000 USD at the entry price of 1.25: 800 units, bought at the ask 1.25010.
ENTRY, QUANTITY = Decimal("1.25000"), Decimal(800)
MID = Decimal("1.25000")
STOP, TARGET = Decimal("1.20000"), Decimal("1.30000")
ORDERS = "/orders"


def account_config(fake: FakeOanda) -> dict[str, Any]:
    return {
        "sandbox": True,
        "api_url": fake.url,
        "account_id": fake.account_id,
        "timeout_seconds": 2,
        "currency": "USD",
        "risk": {"sizing": {"method": "fixed_notional", "notional": "1000"}},
    }


@asynccontextmanager
async def oanda_desk(
    gateway: Gateway, database: Database, tmp_path: Path
) -> AsyncIterator[tuple[Desk, FakeOanda]]:
    async with FakeOanda() as fake:
        fake.set_price(INSTRUMENT, MID)
        async with opened_desk(
            gateway,
            database,
            tmp_path / "exe",
            exchange="oanda",
            account_config=account_config(fake),
            credentials={"api_token": fake.token},
        ) as desk:
            yield desk, fake


def leg_order(fake: FakeOanda, cid: str) -> Order:
    order = fake.order_by_client_id(cid)
    assert order is not None, f"OANDA has no order {cid}"
    return order


async def protected_entry(desk: Desk, fake: FakeOanda) -> tuple[uuid.UUID, str, str]:
    """A BUY with a stop-loss and a take-profit, filled, both legs resting on its trade."""
    decision, stop_id, target_id = await protected_buy(desk, ENTRY, STOP, TARGET, symbol=SYMBOL)
    await legs_reach(desk, stop_id, target_id, "accepted", "accepted")
    return decision, stop_id, target_id


async def test_a_filled_entry_gets_the_trades_own_stop_loss_and_take_profit(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with oanda_desk(gateway, database, tmp_path) as (desk, fake):
        _, stop_id, target_id = await protected_entry(desk, fake)
        (trade,) = fake.trades.values()
        assert trade.current_units == QUANTITY
        stop, target = leg_order(fake, stop_id), leg_order(fake, target_id)
        assert (stop.type, stop.trade_id, stop.price) == ("STOP_LOSS", trade.id, STOP)
        assert (target.type, target.trade_id, target.price) == ("TAKE_PROFIT", trade.id, TARGET)
        assert stop.state == target.state == "PENDING"
        assert fake.hits(ORDERS, "POST") == 3, "the entry and one request per leg"
        # Through the stop, but OANDA has not filled it yet: the service sends
        # nothing of its own, OANDA's stop is the protection.
        fake.set_price(INSTRUMENT, Decimal("1.19000"))
        await desk.service.sync_now()
        await desk.service.sync_now()
        assert fake.hits(ORDERS, "POST") == 3
        assert trade.current_units == QUANTITY

        # OANDA fills the stop (at the bid, gapped below it) and cancels the target.
        assert fake.fill_crossed() == 1
        await eventually(lambda: events(desk, "stop_loss", "filled"), message="the stop fill")
        (fill_event,) = events(desk, "stop_loss", "filled")
        assert fill_event.payload.side == "sell"
        assert (fill_event.payload.model_extra or {})["position"]["quantity"] == "0"

        async def target_ended() -> bool:
            return (await statuses(desk)).get(target_id) in {"canceled", "expired"}

        await eventually(target_ended, message="the target leg ended")
        await desk.service.sync_now()
        await desk.service.sync_now()
        found = await statuses(desk)
        assert found[stop_id] == "filled"
        fills = await rows(desk, FillRow)
        assert sorted(f.leg for f in fills) == ["entry", "stop_loss"], "booked once"
        (exit_fill,) = [f for f in fills if f.leg == "stop_loss"]
        assert exit_fill.quantity == QUANTITY
        assert exit_fill.price == Decimal("1.18990")  # the bid when OANDA filled it
        assert fake.hits(ORDERS, "POST") == 3, "no exit of the service's own"
        assert leg_order(fake, target_id).state == "CANCELLED"
        assert fake.trades == {}
        (position,) = await rows(desk, PositionRow)
        assert position.quantity == 0
        assert await rows(desk, IncidentRow) == []


async def test_the_take_profit_fills_at_its_price_and_the_stop_is_cancelled(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with oanda_desk(gateway, database, tmp_path) as (desk, fake):
        _, stop_id, target_id = await protected_entry(desk, fake)
        fake.set_price(INSTRUMENT, Decimal("1.31000"))
        assert fake.fill_crossed() == 1
        await eventually(lambda: events(desk, "take_profit", "filled"), message="the fill")

        async def stop_ended() -> bool:
            return (await statuses(desk)).get(stop_id) in {"canceled", "expired"}

        await eventually(stop_ended, message="the stop leg ended")
        fills = await rows(desk, FillRow)
        assert sorted(f.leg for f in fills) == ["entry", "take_profit"]
        (exit_fill,) = [f for f in fills if f.leg == "take_profit"]
        assert (exit_fill.quantity, exit_fill.price) == (QUANTITY, TARGET)
        # Bought at the ask 1.25010, sold at 1.30000.
        assert exit_fill.realized_pnl == (TARGET - Decimal("1.25010")) * QUANTITY
        assert fake.hits(ORDERS, "POST") == 3
        assert await rows(desk, IncidentRow) == []


async def test_a_sell_decision_cancels_both_legs_and_sells(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with oanda_desk(gateway, database, tmp_path) as (desk, fake):
        _, stop_id, target_id = await protected_entry(desk, fake)
        fake.set_price(INSTRUMENT, Decimal("1.26000"))
        sell = await desk.decide(
            "SELL", read_rows()[11]["time"], symbol=SYMBOL, entry=Decimal("1.26000")
        )
        await eventually(lambda: events(desk, "exit", "filled"), message="the exit fill")
        exit_id = client_order_id(sell, OrderLeg.EXIT)
        found = await statuses(desk)
        assert found[stop_id] == found[target_id] == "canceled"
        assert found[exit_id] == "filled"
        for cid in (stop_id, target_id):
            leg = leg_order(fake, cid)
            assert leg.state == "CANCELLED"
            reason = fake.transactions[leg.cancelling_transaction_id or ""]["reason"]
            assert reason == "CLIENT_REQUEST", "cancelled by the service before the sell"
        exit_order = leg_order(fake, exit_id)
        assert exit_order.state == "FILLED" and exit_order.units == -QUANTITY
        assert fake.trades == {}
        assert not [e for e in desk.orders if e.payload.status == "rejected"]
        assert await rows(desk, IncidentRow) == []


async def test_oanda_stops_out_while_the_service_is_down_and_it_is_booked_after(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with oanda_desk(gateway, database, tmp_path) as (desk, fake):
        _, stop_id, target_id = await protected_entry(desk, fake)

        def crash_while_down() -> None:
            fake.set_price(INSTRUMENT, Decimal("1.19500"))
            assert fake.fill_crossed() == 1

        await desk.restart(while_down=crash_while_down)
        await eventually(lambda: events(desk, "stop_loss", "filled"), message="the stop fill")

        async def settled() -> bool:
            found = await statuses(desk)
            return found[stop_id] == "filled" and found[target_id] in {"canceled", "expired"}

        await eventually(settled, message="the pair settled")
        fills = await rows(desk, FillRow)
        assert sorted(f.leg for f in fills) == ["entry", "stop_loss"]
        (stop_fill,) = [f for f in fills if f.leg == "stop_loss"]
        assert (stop_fill.quantity, stop_fill.price) == (QUANTITY, Decimal("1.19490"))
        assert fake.hits(ORDERS, "POST") == 3
        assert await rows(desk, IncidentRow) == []


async def test_a_refused_take_profit_is_watched_beside_the_stop_oanda_holds(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with oanda_desk(gateway, database, tmp_path) as (desk, fake):
        fake.refuse_next("TAKE_PROFIT", "TAKE_PROFIT_ON_FILL_LOSS")
        _, stop_id, target_id = await protected_buy(desk, ENTRY, STOP, TARGET, symbol=SYMBOL)
        await legs_reach(desk, stop_id, target_id, "accepted", "rejected")
        assert leg_order(fake, stop_id).state == "PENDING"

        # Through the target: no order of OANDA's rests there, so the service sells,
        # having cancelled the stop first (the position is sold once).
        fake.set_price(INSTRUMENT, Decimal("1.31000"))
        await desk.service.sync_now()
        await eventually(lambda: events(desk, "take_profit", "filled"), message="the exit")
        assert leg_order(fake, stop_id).state == "CANCELLED"
        assert (await statuses(desk))[stop_id] == "canceled"
        fills = await rows(desk, FillRow)
        assert sorted(f.leg for f in fills) == ["entry", "take_profit"]
        assert fake.trades == {}
        (position,) = await rows(desk, PositionRow)
        assert position.quantity == 0
        assert await rows(desk, IncidentRow) == []
