"""`ats execution` killed between sending an order and hearing back: restarted, it
finds the order at the exchange by its client order id and sends nothing twice.

The exchange is ccxt's real `binance` client against the local signed Binance
server; the service is a real process, SIGKILLed while its order hangs."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from execution.store import ExecutionStore
from gateway.db import crud
from shared.db.engine import create_engine
from shared.db.models import FillRow, IncidentRow, OrderRow
from shared.events import OrderEvent
from shared.kernel.orders import client_order_id
from shared.sdk import GatewayClient
from tests.conftest import Database, Gateway, Spawn, eventually
from tests.fakes.binance import FakeBinance

API_KEY = "ats-crash-binance-key-7Hq2mVx9LpR4"
SECRET = "ats-crash-binance-secret-Nc8wK3zT6yB1"


async def test_killed_between_order_and_answer_no_duplicate_after_restart(
    gateway: Gateway, database: Database, tmp_path: Path, spawn: Spawn
) -> None:
    async with FakeBinance(api_key=API_KEY, secret=SECRET, balances={"BTC": Decimal(1)}) as binance:
        config = {
            "sandbox": True,
            "api_url": binance.url,
            "rate_limit": False,
            "currency": "BTC",
            "risk": {"sizing": {"method": "fixed_notional", "notional": "0.01"}},
        }
        async with gateway.state.sessionmaker() as s:
            _, group_token = await crud.create_trading_group(session=s, name="desk", triggers=[])
            await crud.create_trade_account(
                session=s,
                name="bin",
                exchange="binance",
                trading_groups=["desk"],
                config=config,
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
            # The gateway's data dir: the service opens credentials with its key.
            "ATS_DATA_DIR": str(gateway.settings.data_dir),
            "ATS_EXECUTION_TOKEN": exe_token,
            "ATS_ORDER_TIMEOUT": "120",
            "ATS_SYNC_INTERVAL": "0.2",
        }
        log = tmp_path / "execution.log"
        execution = spawn(["execution", "--gateway-url", gateway.ws_url], env, log)

        events: list[OrderEvent] = []

        async def heard(event: OrderEvent) -> None:
            events.append(event)

        group = GatewayClient(gateway.ws_url, token=group_token)
        group.add_handler("order", heard)
        async with group:
            # Wait for the service's first snapshot: its account is up.
            engine = create_engine(database.url, schema=database.schema)
            store = ExecutionStore(engine)
            try:
                await eventually(
                    lambda: store.first_cash("bin"), timeout=30, message=f"start ({log})"
                )
                binance.hang_next_order()
                decision = uuid.uuid4()
                await group.publish(
                    "decision",
                    {"symbol": "ETH/BTC", "action": "BUY", "confidence": 0.9, "entry": "0.05"},
                    id=decision,
                    ts=datetime.now(UTC),
                )
                cid = client_order_id(decision)
                # The exchange has carried the order out; its answer never comes.
                await eventually(lambda: _placed(binance, cid), message="the order at the exchange")
                await eventually(
                    lambda: _status(store, cid), message="the order stored as submitted"
                )
                assert await _status(store, cid) == "submitted"
                execution.send_signal(signal.SIGKILL)
                assert await asyncio.wait_for(asyncio.to_thread(execution.wait), 30) != 0

                execution = spawn(["execution", "--gateway-url", gateway.ws_url], env, log)

                async def filled() -> bool:
                    return bool(await _status(store, cid) == "filled")

                await eventually(filled, timeout=30, message=f"the sync to find it ({log})")
                assert binance.hits("POST", "/api/v3/order") == 1
                assert [o.client_order_id for o in binance.orders] == [cid]
                async with store.sessions() as s:
                    orders = (await s.scalars(select(OrderRow))).all()
                    fills = (await s.scalars(select(FillRow))).all()
                    incidents = (await s.scalars(select(IncidentRow))).all()
                assert [o.client_order_id for o in orders] == [cid]
                exchange_order = binance.order(cid)
                assert len(fills) == 1
                assert fills[0].quantity == exchange_order.executed == Decimal("0.2")
                assert incidents == []
                await eventually(
                    lambda: any(e.payload.status == "filled" for e in events),
                    message="the fill heard by the group",
                )
            finally:
                await engine.dispose()
        execution.terminate()
        assert await asyncio.wait_for(asyncio.to_thread(execution.wait), 30) == 0
    # The service opened the credentials and signed with them: never logged them.
    text = log.read_text()
    assert "account_started" in text
    assert API_KEY not in text and SECRET not in text


def _placed(binance: FakeBinance, cid: str) -> bool:
    try:
        binance.order(cid)
    except KeyError:
        return False
    return True


async def _status(store: ExecutionStore, cid: str) -> Any:
    async with store.sessions() as s:
        return await s.scalar(select(OrderRow.status).where(OrderRow.client_order_id == cid))
