"""The candle store: closed candles in the `candles` table, shared by every service.

A feed upserts what it fetched, so a restart, a backtest or a second service reads
the store instead of asking the exchange again. Rows are keyed by (symbol,
timeframe, open time); writing the same candle twice is harmless (last write wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.models import CandleRow
from shared.market.candles import Candle

_PRICE_FIELDS = ("open", "high", "low", "close", "volume")
# Rows per executemany: bounds each round trip when a backfill writes many pages.
_BATCH = 1000


def _decimal(value: float) -> Decimal:
    # repr() is the shortest string that round-trips the float, so NUMERIC stores
    # 0.0984 and not the float's 55-digit binary expansion.
    return Decimal(repr(float(value)))


def _row(candle: Candle) -> dict[str, Any]:
    return {
        "symbol": candle.symbol,
        "timeframe": candle.timeframe,
        "open_time": candle.open_time,
        **{name: _decimal(getattr(candle, name)) for name in _PRICE_FIELDS},
    }


_COLUMNS = (
    CandleRow.symbol,
    CandleRow.timeframe,
    CandleRow.open_time,
    CandleRow.open,
    CandleRow.high,
    CandleRow.low,
    CandleRow.close,
    CandleRow.volume,
)


def _candle(row: Row[str, str, datetime, float, float, float, float, float]) -> Candle:
    symbol, timeframe, open_time, open_, high, low, close, volume = row
    # SQLite hands NUMERIC values that are whole numbers back as int.
    return Candle(
        symbol=symbol,
        timeframe=timeframe,
        open_time=open_time,
        open=float(open_),
        high=float(high),
        low=float(low),
        close=float(close),
        volume=float(volume),
    )


class CandleStore:
    """Read and write closed candles through an `AsyncEngine` (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def upsert(self, candles: Iterable[Candle]) -> int:
        """Insert candles, replacing stored ones with the same key.

        Returns:
            How many distinct candles were written (duplicates within `candles` count
            once; the last one wins).
        """
        by_key: dict[tuple[str, str, datetime], Candle] = {}
        for candle in candles:
            by_key[(candle.symbol, candle.timeframe, candle.open_time)] = candle
        if not by_key:
            return 0
        rows = [_row(candle) for candle in by_key.values()]
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(CandleRow)
        stmt = stmt.on_conflict_do_update(
            index_elements=["symbol", "timeframe", "open_time"],
            set_={name: stmt.excluded[name] for name in _PRICE_FIELDS},
        )
        async with self._engine.begin() as conn:
            for i in range(0, len(rows), _BATCH):
                await conn.execute(stmt, rows[i : i + _BATCH])
        return len(rows)

    async def latest(self, symbol: str, timeframe: str) -> Candle | None:
        """The stored candle with the latest open time, None when there is none."""
        stmt = (
            select(*_COLUMNS)
            .where(CandleRow.symbol == symbol, CandleRow.timeframe == timeframe)
            .order_by(CandleRow.open_time.desc())
            .limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return None if row is None else _candle(row)

    async def load(
        self,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
        *,
        newest: bool = False,
    ) -> list[Candle]:
        """Stored candles with `start <= open_time < end`, oldest first.

        Args:
            limit: at most this many: the oldest ones in the range, or the newest
                ones with `newest=True` (e.g. the last 200 candles to warm up
                indicators). They are returned oldest first either way.
        """
        for name, value in (("start", start), ("end", end)):
            if value is not None and value.utcoffset() is None:
                raise ValueError(
                    f"{name} {value.isoformat()} is naive: pass a timezone-aware UTC datetime"
                )
        stmt = select(*_COLUMNS).where(CandleRow.symbol == symbol, CandleRow.timeframe == timeframe)
        if start is not None:
            stmt = stmt.where(CandleRow.open_time >= start)
        if end is not None:
            stmt = stmt.where(CandleRow.open_time < end)
        order = CandleRow.open_time.desc() if newest else CandleRow.open_time.asc()
        stmt = stmt.order_by(order)
        if limit is not None:
            stmt = stmt.limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        candles = [_candle(row) for row in rows]
        if newest:
            candles.reverse()
        return candles
