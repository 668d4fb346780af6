"""Fixtures for market data tests: a virtual clock, a candle store, a fake Binance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.db.engine import create_engine
from shared.market.clock import VirtualClock
from shared.market.store import CandleStore
from tests.conftest import Database
from tests.shared.market.binance_server import BinanceServer, load_market


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2018, 1, 1, tzinfo=UTC))


@pytest.fixture
async def store(database: Database) -> AsyncIterator[CandleStore]:
    engine = create_engine(database.url, schema=database.schema)
    try:
        yield CandleStore(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def binance(clock: VirtualClock) -> AsyncIterator[BinanceServer]:
    server = BinanceServer([load_market("ETH-BTC"), load_market("ADA-BTC")], now=clock.now)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def exchange(binance: BinanceServer) -> AsyncIterator[Any]:
    """ccxt's binance pointed at the fake server; closed after the test."""
    exchange = binance.exchange()
    try:
        yield exchange
    finally:
        await exchange.close()
