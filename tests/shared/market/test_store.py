"""The candle store on SQLite and PostgreSQL (migrated by the `database` fixture)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from shared.db.models import CandleRow
from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv
from shared.market.store import CandleStore
from tests.conftest import Database
from tests.shared.market.data import DATA

ETH = read_candles_csv(DATA / "ETH-BTC_5m.csv", "ETH/BTC", "5m")
T0 = ETH[0].open_time
STEP = timedelta(minutes=5)


async def count_rows(store: CandleStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(CandleRow))).scalar_one())


async def test_candle_store_upsert_twice_is_idempotent(store: CandleStore) -> None:
    assert await store.upsert(ETH) == 5760
    assert await store.upsert(ETH) == 5760

    assert await count_rows(store) == 5760
    assert await store.load("ETH/BTC", "5m") == ETH  # every value round-trips exactly


async def test_candle_store_upsert_replaces_values_of_same_key(store: CandleStore) -> None:
    await store.upsert(ETH[:3])
    revised = dataclasses.replace(ETH[1], close=0.1, volume=1.5)

    assert await store.upsert([revised, ETH[1], revised]) == 1  # the last duplicate wins

    assert await store.load("ETH/BTC", "5m") == [ETH[0], revised, ETH[2]]
    assert await count_rows(store) == 3


async def test_candle_store_upsert_nothing_returns_zero(store: CandleStore) -> None:
    assert await store.upsert([]) == 0


async def test_candle_store_latest_is_newest_of_its_market(store: CandleStore) -> None:
    assert await store.latest("ETH/BTC", "5m") is None

    await store.upsert(reversed(ETH[:100]))
    other = [dataclasses.replace(c, timeframe="1h") for c in ETH[200:210]]
    await store.upsert([dataclasses.replace(c, symbol="LTC/BTC") for c in ETH[:500]] + other)

    assert await store.latest("ETH/BTC", "5m") == ETH[99]
    assert await store.latest("ETH/BTC", "1h") == other[-1]
    assert await store.latest("LTC/BTC", "5m") == dataclasses.replace(ETH[499], symbol="LTC/BTC")
    assert await store.latest("ADA/BTC", "5m") is None


async def test_candle_store_load_range_is_half_open_and_limited(store: CandleStore) -> None:
    await store.upsert(ETH[:1000])
    start, end = ETH[100].open_time, ETH[200].open_time

    assert await store.load("ETH/BTC", "5m", start=start, end=end) == ETH[100:200]
    assert await store.load("ETH/BTC", "5m", start=start) == ETH[100:1000]
    assert await store.load("ETH/BTC", "5m", end=end) == ETH[:200]
    assert await store.load("ETH/BTC", "5m", start=start, limit=10) == ETH[100:110]
    assert await store.load("ETH/BTC", "5m", end=end, limit=10, newest=True) == ETH[190:200]
    assert await store.load("ETH/BTC", "5m", limit=5, newest=True) == ETH[995:1000]
    assert await store.load("ETH/BTC", "5m", start=end, end=start) == []
    assert await store.load("ETH/BTC", "1h") == []


async def test_candle_store_keeps_prices_exact(store: CandleStore, database: Database) -> None:
    when = datetime(2021, 1, 1, tzinfo=UTC)
    values = [
        (0.0984, 5.33e-05, 1.23456789012345e-09, 2.0, 431401.9787),
        (64123.45, 99999999.99999999, 1e-12, 0.1 + 0.2, 123456789012.125),
    ]
    candles = [
        Candle("X/Y", "1d", when + i * timedelta(days=1), o, h, lo, c, v)
        for i, (o, h, lo, c, v) in enumerate(values)
    ]
    await store.upsert(candles)

    assert await store.load("X/Y", "1d") == candles
    if database.kind == "postgres":
        # NUMERIC holds the shortest decimal of each float, not its binary expansion.
        async with store.engine.connect() as conn:
            stored = (
                await conn.execute(
                    text("SELECT open::text, low::text FROM candles ORDER BY open_time")
                )
            ).all()
        assert [tuple(r) for r in stored] == [
            ("0.0984", "0.00000000123456789012345"),
            ("64123.45", "0.000000000001"),
        ]


async def test_candle_store_naive_time_is_refused(store: CandleStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.load("ETH/BTC", "5m", start=datetime(2018, 1, 1))  # noqa: DTZ001


async def test_candle_store_open_time_comes_back_utc(store: CandleStore) -> None:
    await store.upsert(ETH[:2])
    latest = await store.latest("ETH/BTC", "5m")
    assert latest is not None
    assert latest.open_time == T0 + STEP and latest.open_time.tzinfo is not None
    assert latest.open_time.utcoffset() == timedelta(0)
