"""An execution service on a real gateway: accounts provisioned, a group to decide."""

from __future__ import annotations

import csv
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from execution.service import ExecutionService
from execution.settings import ExecutionSettings
from execution.store import ExecutionStore
from gateway.db import crud
from shared.db.engine import create_engine
from shared.events import OrderEvent
from shared.sdk import GatewayClient
from tests.conftest import ROOT, Database, Gateway, eventually

ETH_BTC = ROOT / "data" / "ETH-BTC_5m.csv"


def read_rows(path: Path = ETH_BTC) -> list[dict[str, Any]]:
    """The shipped candles read independently of the code under test."""
    with path.open() as fh:
        return [
            {
                "time": datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")),
                **{k: Decimal(r[k]) for k in ("open", "high", "low", "close")},
            }
            for r in csv.DictReader(fh)
        ]


def paper_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "currency": "BTC",
        "balances": {"BTC": "1"},
        "feeds": {"ETH/BTC": f"csv:{ETH_BTC}"},
        "markets": {"ETH/BTC": {"amount_step": "0.001", "min_notional": "0.0001"}},
        "fill_model": {"slippage_bps": "0", "taker_fee": "0.001"},
        "risk": {"sizing": {"method": "fixed_notional", "notional": "0.01"}},
    }
    config.update(overrides)
    return config


@dataclass
class Desk:
    """A gateway, one group client that decides and hears back, one execution service."""

    gateway: Gateway
    group: GatewayClient
    service: ExecutionService
    store: ExecutionStore
    exe: GatewayClient
    exe_token: str
    settings: ExecutionSettings
    orders: list[OrderEvent] = field(default_factory=list)

    async def restart(self, while_down: Callable[[], None] | None = None) -> None:
        """Stop the execution service and start a new one on the same data (as a
        process restart would: nothing carried over but the database and state files);
        `while_down` runs in between."""
        await self.service.close()
        await self.exe.close()
        if while_down is not None:
            while_down()
        self.exe = GatewayClient(self.gateway.ws_url, token=self.exe_token)
        self.service = ExecutionService(self.exe, self.store, self.settings)
        await self.exe.__aenter__()
        await self.service.start()

    async def decide(
        self,
        action: str,
        candle: datetime,
        *,
        entry: Decimal | None = None,
        id: uuid.UUID | None = None,
        **extra: Any,
    ) -> uuid.UUID:
        event_id = id or uuid.uuid4()
        payload: dict[str, Any] = {
            "symbol": "ETH/BTC",
            "action": action,
            "confidence": 0.8,
            "timeframe": "5m",
            "candle_time": candle.isoformat().replace("+00:00", "Z"),
            **extra,
        }
        if entry is not None:
            payload["entry"] = str(entry)
        await self.group.publish("decision", payload, id=event_id, ts=datetime.now(UTC))
        return event_id

    async def order_events(self, count: int) -> list[OrderEvent]:
        await eventually(lambda: len(self.orders) >= count, message=f"{count} order events")
        return self.orders


async def open_desk(
    gateway: Gateway,
    database: Database,
    data_dir: Path,
    *,
    account_config: dict[str, Any],
    group_config: dict[str, Any] | None = None,
    exchange: str = "paper",
    mode: str = "paper",
    settings: dict[str, Any] | None = None,
    credentials: dict[str, str] | None = None,
) -> tuple[Desk, Any]:
    async with gateway.state.sessionmaker() as s:
        _, group_token = await crud.create_trading_group(
            session=s, name="desk", triggers=[], config=group_config or {}
        )
        await crud.create_trade_account(
            session=s,
            name="acct",
            exchange=exchange,
            mode=mode,
            trading_groups=["desk"],
            config=account_config,
            credentials_encrypted=(
                gateway.state.credentials.seal(credentials) if credentials else None
            ),
        )
        _, exe_token = await crud.create_execution_service(
            session=s, name="exe", trade_accounts=["acct"]
        )
        await s.commit()
    await gateway.state.hub.reload_routing(notify=False)
    engine = create_engine(database.url, schema=database.schema)
    store = ExecutionStore(engine)
    exe_settings = ExecutionSettings(
        data_dir=data_dir,
        # The gateway's key opens the credentials it sealed.
        secret_key=SecretStr(gateway.state.settings.resolve_secret_key()),
        sync_interval=0.05,
        order_timeout=2.0,
        **(settings or {}),
    )
    exe = GatewayClient(gateway.ws_url, token=exe_token)
    service = ExecutionService(exe, store, exe_settings)
    group = GatewayClient(gateway.ws_url, token=group_token)
    desk = Desk(gateway, group, service, store, exe, exe_token, exe_settings)
    group.add_handler("order", lambda e: _collect(desk, e))
    await exe.__aenter__()
    await service.start()
    await group.__aenter__()
    return desk, engine


async def _collect(desk: Desk, event: OrderEvent) -> None:
    desk.orders.append(event)


async def close_desk(desk: Desk, engine: Any) -> None:
    await desk.group.close()
    await desk.service.close()
    await desk.exe.close()
    await engine.dispose()


@asynccontextmanager
async def opened_desk(
    gateway: Gateway, database: Database, data_dir: Path, **options: Any
) -> AsyncIterator[Desk]:
    """`open_desk(...)` for the block, closed after it whatever happens."""
    d, handles = await open_desk(gateway, database, data_dir, **options)
    try:
        yield d
    finally:
        await close_desk(d, handles)


@pytest.fixture
async def desk(gateway: Gateway, database: Database, tmp_path: Path) -> AsyncIterator[Desk]:
    async with opened_desk(gateway, database, tmp_path / "exe", account_config=paper_config()) as d:
        yield d


STEP = timedelta(minutes=5)
