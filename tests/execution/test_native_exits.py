"""Stop-loss and take-profit held at the exchange: on a Binance-protocol venue a filled
entry's exits are one OCO order list, so they protect the position while the service
is down, and the leg that fills is booked like any fill.

The exchange is ccxt's real `binance` client against the local signed Binance server
(`tests/fakes/binance.py`), the service the real one on a real gateway."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import select

from execution.store import ExecutionStore
from gateway.db import crud
from shared.db.engine import create_engine
from shared.db.models import FillRow, IncidentRow, OrderRow, PositionRow
from shared.kernel.orders import OrderLeg, client_order_id
from shared.sdk import GatewayClient
from tests.conftest import Database, Gateway, Spawn, eventually
from tests.execution.conftest import Desk, opened_desk, read_rows
from tests.fakes.binance import FakeBinance

API_KEY = "ats-oco-binance-key-7Hq2mVx9LpR4"
SECRET = "ats-oco-binance-secret-Nc8wK3zT6yB1"
OCO = "/api/v3/orderList/oco"
STOP, TARGET = Decimal("0.045"), Decimal("0.06")
QUANTITY = Decimal("0.2")  # 0.01 BTC of ETH at 0.05


def account_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "sandbox": True,
        "api_url": url,
        "rate_limit": False,
        "currency": "BTC",
        "risk": {"sizing": {"method": "fixed_notional", "notional": "0.01"}},
        **extra,
    }


@asynccontextmanager
async def binance_desk(
    gateway: Gateway,
    database: Database,
    tmp_path: Path,
    commission: Literal["quote", "received"] = "quote",
    **config: Any,
) -> AsyncIterator[tuple[Desk, FakeBinance]]:
    async with (
        FakeBinance(
            api_key=API_KEY, secret=SECRET, balances={"BTC": Decimal(1)}, commission=commission
        ) as binance,
        opened_desk(
            gateway,
            database,
            tmp_path / "exe",
            exchange="binance",
            account_config=account_config(binance.url, **config),
            credentials={"api_key": API_KEY, "secret": SECRET},
        ) as desk,
    ):
        yield desk, binance


def events(desk: Desk, leg: str, status: str) -> list[Any]:
    return [
        e
        for e in desk.orders
        if e.payload.status == status and (e.payload.model_extra or {}).get("leg") == leg
    ]


async def rows(desk: Desk, model: Any) -> list[Any]:
    async with desk.store.sessions() as s:
        return list((await s.scalars(select(model))).all())


async def statuses(desk: Desk) -> dict[str, str]:
    return {o.client_order_id: o.status for o in await rows(desk, OrderRow)}


async def protected_buy(
    desk: Desk, entry: Decimal, stop: Decimal, target: Decimal, **extra: Any
) -> tuple[uuid.UUID, str, str]:
    """A BUY decision with a stop-loss and a take-profit; its id and its legs' ids."""
    decision = await desk.decide(
        "BUY",
        read_rows()[10]["time"],
        entry=entry,
        stop_loss=str(stop),
        take_profit=str(target),
        **extra,
    )
    return (
        decision,
        client_order_id(decision, OrderLeg.STOP_LOSS),
        client_order_id(decision, OrderLeg.TAKE_PROFIT),
    )


async def legs_reach(desk: Desk, stop_id: str, target_id: str, stop: str, target: str) -> None:
    """Wait until the stop-loss and the take-profit legs have these statuses."""

    async def there() -> bool:
        found = await statuses(desk)
        return (found.get(stop_id), found.get(target_id)) == (stop, target)

    await eventually(there, message=f"the stop {stop} and the target {target}")


async def protected_entry(desk: Desk, binance: FakeBinance) -> tuple[uuid.UUID, str, str]:
    """A BUY with a stop-loss and a take-profit, filled, its OCO resting."""
    decision, stop_id, target_id = await protected_buy(desk, Decimal("0.05"), STOP, TARGET)
    await legs_reach(desk, stop_id, target_id, "accepted", "accepted")
    return decision, stop_id, target_id


async def test_a_filled_entry_gets_one_oco_at_the_exchange_and_is_not_watched(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with binance_desk(gateway, database, tmp_path) as (desk, binance):
        decision, stop_id, target_id = await protected_entry(desk, binance)
        (oco,) = [h for h in binance.requests if h.path == OCO]
        entry_id = client_order_id(decision)
        assert oco.method == "POST"
        assert oco.params["side"] == "SELL" and oco.params["quantity"] == str(QUANTITY)
        assert oco.params["listClientOrderId"] == f"{entry_id}-oco"
        assert oco.params["belowClientOrderId"] == stop_id
        assert oco.params["aboveClientOrderId"] == target_id
        assert oco.params["belowType"] == "STOP_LOSS_LIMIT"
        assert oco.params["belowStopPrice"] == "0.045"
        # The default allowance: the stop sells down to 1 % below its stop price.
        assert oco.params["belowPrice"] == "0.04455"
        assert oco.params["aboveType"] == "LIMIT_MAKER" and oco.params["abovePrice"] == "0.06"
        order_list = binance.order_list(f"{entry_id}-oco")
        assert [leg.client_order_id for leg in order_list.legs] == [stop_id, target_id]
        assert binance.balance("ETH").locked == QUANTITY
        # The price goes through the stop but the exchange has not traded there yet:
        # the service sends nothing of its own, the exchange's stop is the protection.
        binance.set_price(Decimal("0.044"))
        await desk.service.sync_now()
        await desk.service.sync_now()
        assert binance.hits("POST", "/api/v3/order") == 1, "only the entry"
        assert len([h for h in binance.requests if h.path == OCO]) == 1


async def exit_by_the_exchange(
    gateway: Gateway, database: Database, tmp_path: Path, *, price: Decimal, leg: str
) -> None:
    async with binance_desk(gateway, database, tmp_path) as (desk, binance):
        _, stop_id, target_id = await protected_entry(desk, binance)
        filled_id, other_id = (stop_id, target_id) if leg == "stop_loss" else (target_id, stop_id)
        binance.set_price(price)
        (executed,) = binance.fill_crossed()
        assert executed.client_order_id == filled_id
        await eventually(lambda: events(desk, leg, "filled"), message=f"the {leg} fill")
        (fill_event,) = events(desk, leg, "filled")
        extra = fill_event.payload.model_extra or {}
        assert fill_event.payload.side == "sell"
        assert Decimal(str(extra["filled_quantity"])) == QUANTITY
        assert extra["position"]["quantity"] == "0"

        async def other_gone() -> bool:
            return (await statuses(desk)).get(other_id) == "expired"

        await eventually(other_gone, message="the other leg expired")
        await desk.service.sync_now()
        await desk.service.sync_now()
        fills = await rows(desk, FillRow)
        assert sorted(f.leg for f in fills) == ["entry", leg], "booked once"
        (exit_fill,) = [f for f in fills if f.leg == leg]
        assert exit_fill.quantity == QUANTITY
        assert exit_fill.price == binance.order(filled_id).trades[0].price
        assert exit_fill.fill_id == f"ETH/BTC:{binance.order(filled_id).trades[0].id}"
        assert binance.hits("POST", "/api/v3/order") == 1, "no exit of the service's own"
        assert binance.balance("ETH").free == binance.balance("ETH").locked == 0
        assert await rows(desk, IncidentRow) == []


async def test_the_exchange_fills_the_stop_leg_and_it_is_booked_once(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    await exit_by_the_exchange(
        gateway, database, tmp_path, price=Decimal("0.0449"), leg="stop_loss"
    )


async def test_the_exchange_fills_the_take_profit_leg_and_it_is_booked_once(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    await exit_by_the_exchange(
        gateway, database, tmp_path, price=Decimal("0.061"), leg="take_profit"
    )


async def test_a_sell_decision_cancels_the_oco_and_sells_everything(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with binance_desk(gateway, database, tmp_path) as (desk, binance):
        _, stop_id, target_id = await protected_entry(desk, binance)
        binance.set_price(Decimal("0.052"))
        sell = await desk.decide("SELL", read_rows()[11]["time"], entry=Decimal("0.052"))
        await eventually(lambda: events(desk, "exit", "filled"), message="the exit fill")
        exit_id = client_order_id(sell, OrderLeg.EXIT)
        found = await statuses(desk)
        assert found[stop_id] == found[target_id] == "canceled"
        assert found[exit_id] == "filled"
        assert [o.status for o in binance.order_lists[0].legs] == ["CANCELED", "CANCELED"]
        assert binance.order(exit_id).executed == QUANTITY
        assert not [e for e in desk.orders if e.payload.status == "rejected"]
        assert binance.balance("ETH").free == binance.balance("ETH").locked == 0


async def test_the_exchange_stops_out_while_the_service_is_down_and_it_is_booked_after(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with binance_desk(gateway, database, tmp_path) as (desk, binance):
        _, stop_id, target_id = await protected_entry(desk, binance)

        def crash_while_down() -> None:
            # Nobody watches: the exchange's own stop sells, in a gap through it
            # that the stop-limit's allowance (down to 0.04455) still takes.
            binance.set_price(Decimal("0.0447"))
            binance.fill_crossed()

        await desk.restart(while_down=crash_while_down)
        assert binance.order(stop_id).status == "FILLED"
        await eventually(lambda: events(desk, "stop_loss", "filled"), message="the stop fill")
        found = await statuses(desk)
        assert found[stop_id] == "filled" and found[target_id] == "expired"
        fills = await rows(desk, FillRow)
        assert sorted(f.leg for f in fills) == ["entry", "stop_loss"]
        assert await rows(desk, IncidentRow) == []
        (stop_fill,) = [f for f in fills if f.leg == "stop_loss"]
        assert stop_fill.price == Decimal("0.0447") and stop_fill.quantity == QUANTITY
        assert binance.hits("POST", "/api/v3/order") == 1


async def test_an_oco_refused_by_the_exchange_leaves_the_position_watched(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    """The price moved past the stop before the pair was placed: Binance refuses the
    price relation; the service watches the position and exits at market."""
    async with binance_desk(gateway, database, tmp_path) as (desk, binance):
        binance.set_price(Decimal("0.0449"))
        decision = await desk.decide(
            "BUY",
            read_rows()[10]["time"],
            entry=Decimal("0.05"),
            stop_loss=str(STOP),
            take_profit=str(TARGET),
        )
        await eventually(lambda: events(desk, "stop_loss", "filled"), message="a watched exit")
        found = await statuses(desk)
        stop_id = client_order_id(decision, OrderLeg.STOP_LOSS)
        target_id = client_order_id(decision, OrderLeg.TAKE_PROFIT)
        assert found[stop_id] == found[target_id] == "rejected"
        oco = [h for h in binance.requests if h.path == OCO]
        assert len(oco) == 1 and binance.order_lists == []
        (watched,) = [o for o in binance.orders if o.side == "SELL"]
        assert watched.type == "MARKET" and watched.executed == QUANTITY
        assert binance.balance("ETH").free == 0


@pytest.mark.parametrize(
    "lost",
    [
        pytest.param(True, id="killed-after-storing-the-legs"),
        pytest.param(False, id="killed-after-sending-the-oco"),
    ],
)
async def test_killed_around_the_oco_one_list_after_restart(
    gateway: Gateway, database: Database, tmp_path: Path, spawn: Spawn, lost: bool
) -> None:
    """`ats execution` SIGKILLed with the OCO request in flight: either it never
    reached the exchange (`lost`: stalled, never carried out) or the exchange placed
    it and the answer never came. Restarted, the service finds the legs by their
    client order ids or sends the pair: exactly one list, no incident."""
    async with FakeBinance(api_key=API_KEY, secret=SECRET, balances={"BTC": Decimal(1)}) as binance:
        async with gateway.state.sessionmaker() as s:
            _, group_token = await crud.create_trading_group(session=s, name="desk", triggers=[])
            await crud.create_trade_account(
                session=s,
                name="bin",
                exchange="binance",
                trading_groups=["desk"],
                config=account_config(binance.url),
                credentials_encrypted=gateway.state.credentials.seal(
                    {"api_key": API_KEY, "secret": SECRET}
                ),
            )
            _, exe_token = await crud.create_execution_service(
                session=s, name="exe", trade_accounts=["bin"]
            )
            await s.commit()
        await gateway.state.hub.reload_routing(notify=False)
        env = {
            **database.env(),
            "ATS_DATA_DIR": str(gateway.settings.data_dir),
            "ATS_EXECUTION_TOKEN": exe_token,
            "ATS_ORDER_TIMEOUT": "120",
            "ATS_SYNC_INTERVAL": "0.2",
        }
        log = tmp_path / "execution.log"
        execution = spawn(["execution", "--gateway-url", gateway.ws_url], env, log)
        engine = create_engine(database.url, schema=database.schema)
        store = ExecutionStore(engine)
        try:
            await eventually(lambda: store.first_cash("bin"), timeout=30, message=f"start ({log})")
            if lost:
                binance.stall_next("POST", OCO)
            else:
                binance.hang_next("POST", OCO)
            decision = uuid.uuid4()
            group = GatewayClient(gateway.ws_url, token=group_token)
            async with group:
                await group.publish(
                    "decision",
                    {
                        "symbol": "ETH/BTC",
                        "action": "BUY",
                        "confidence": 0.9,
                        "entry": "0.05",
                        "stop_loss": str(STOP),
                        "take_profit": str(TARGET),
                    },
                    id=decision,
                    ts=datetime.now(UTC),
                )
            legs = [client_order_id(decision, leg) for leg in PROTECTIVE_LEGS]

            async def stored(status: str) -> bool:
                found = [await _status(store, cid) for cid in legs]
                return found == [status, status]

            await eventually(lambda: stored("submitted"), message="both legs stored")
            await eventually(
                lambda: any(h.path == OCO for h in binance.requests), message="the OCO sent"
            )
            assert len(binance.order_lists) == (0 if lost else 1)
            execution.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(asyncio.to_thread(execution.wait), 30) != 0

            execution = spawn(["execution", "--gateway-url", gateway.ws_url], env, log)
            await eventually(lambda: stored("accepted"), timeout=30, message=f"found ({log})")
            (order_list,) = binance.order_lists
            assert [o.client_order_id for o in order_list.legs] == legs
            assert order_list.is_open
            sent = len([h for h in binance.requests if h.path == OCO])
            assert sent == (2 if lost else 1), "sent again only when it never arrived"
            assert binance.balance("ETH").locked == QUANTITY
            async with store.sessions() as s:
                incidents = (await s.scalars(select(IncidentRow))).all()
            assert incidents == []
        finally:
            await engine.dispose()
        execution.terminate()
        assert await asyncio.wait_for(asyncio.to_thread(execution.wait), 30) == 0


PROTECTIVE_LEGS = (OrderLeg.STOP_LOSS, OrderLeg.TAKE_PROFIT)


async def _status(store: ExecutionStore, cid: str) -> Any:
    async with store.sessions() as s:
        return await s.scalar(select(OrderRow.status).where(OrderRow.client_order_id == cid))


# ---------------------------------------------------------------------- fees in the coin
# Binance without BNB takes a buy's commission from the coin bought: the account holds
# 0.1 % less than the order filled. The books hold what the account has (rounded down
# to the amount grid), so the OCO and the exit sell what is there.


async def test_fees_taken_in_the_coin_leave_an_oco_for_what_the_account_holds(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    async with binance_desk(gateway, database, tmp_path, commission="received") as (
        desk,
        binance,
    ):
        _, stop_id, target_id = await protected_entry(desk, binance)
        held = QUANTITY - QUANTITY * Decimal("0.001")  # 0.1998 ETH
        assert binance.balance("ETH").free + binance.balance("ETH").locked == held
        (oco,) = [h for h in binance.requests if h.path == OCO]
        assert oco.params["quantity"] == str(held)
        (entry,) = [f for f in await rows(desk, FillRow) if f.leg == "entry"]
        assert (entry.quantity, entry.withheld) == (QUANTITY, QUANTITY - held)

        binance.set_price(Decimal("0.061"))
        (executed,) = binance.fill_crossed()
        assert executed.client_order_id == target_id
        await eventually(lambda: events(desk, "take_profit", "filled"), message="the target fill")
        (fill_event,) = events(desk, "take_profit", "filled")
        assert (fill_event.payload.model_extra or {})["position"]["quantity"] == "0"
        assert binance.balance("ETH").free == binance.balance("ETH").locked == 0
        assert await rows(desk, IncidentRow) == []


async def test_coin_below_the_grid_stays_as_dust_and_the_exit_sells_the_rest(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    price = Decimal("0.0513")  # 0.01 BTC buys 0.1949 ETH; the fee leaves 0.1947051
    async with binance_desk(gateway, database, tmp_path, commission="received") as (
        desk,
        binance,
    ):
        binance.set_price(price)
        await desk.decide("BUY", read_rows()[10]["time"], entry=price)
        await eventually(lambda: events(desk, "entry", "filled"), message="the entry fill")
        (entry,) = await rows(desk, FillRow)
        assert (entry.quantity, entry.withheld) == (Decimal("0.1949"), Decimal("0.0002"))
        # The fee (0.0001949 ETH) and the dust (0.0000051 ETH), valued at the fill price.
        assert entry.fee == Decimal("0.0002") * price
        spent = Decimal(1) - binance.balance("BTC").free

        # A restart rebuilds the books from the stored fills: the same 0.1947 held,
        # and the exchange holding more (the dust) is no mismatch.
        await desk.restart()
        (position,) = await rows(desk, PositionRow)
        assert position.quantity == Decimal("0.1947")
        assert await rows(desk, IncidentRow) == []

        sell = await desk.decide("SELL", read_rows()[11]["time"], entry=price)
        await eventually(lambda: events(desk, "exit", "filled"), message="the exit fill")
        exit_id = client_order_id(sell, OrderLeg.EXIT)
        assert binance.order(exit_id).executed == Decimal("0.1947")
        assert not [e for e in desk.orders if e.payload.status == "rejected"]
        assert binance.balance("ETH").free == Decimal("0.0000051")  # the dust
        (_, exit_fill) = sorted(await rows(desk, FillRow), key=lambda f: f.id)
        # The books' PnL is what the BTC balance gained: every fee is in it.
        gained = binance.balance("BTC").free - (Decimal(1) - spent)
        assert exit_fill.realized_pnl == gained - spent
        (position,) = await rows(desk, PositionRow)
        assert position.quantity == 0
        assert await rows(desk, IncidentRow) == []
