"""Candles from the files backtests may read, for the dashboard's charts.

Read-only and confined like a backtest's data (the repository's `data/` and
`ATS_BACKTEST_DATA_DIRS`): a path from the network is resolved (`..` and symlinks
followed) before it is checked, so it cannot step outside them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from gateway.api.deps import SettingsDep
from gateway.backtests import REPO, SHIPPED_DATA
from shared.backtest.data import BacktestInputError, DataSource
from shared.market.errors import PermanentFeedError
from shared.market.feeds import read_candles_csv

router = APIRouter(prefix="/candles", tags=["candles"])


class CandleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: str = Field(
        min_length=1,
        max_length=1_000,
        description="A candle file as a backtest names it: `PATH` or `SYMBOL=PATH` "
        "(`data/ETH-BTC_5m.csv`).",
    )
    timeframe: str | None = Field(
        default=None, max_length=8, description="When the file name does not say it."
    )
    since: AwareDatetime | None = Field(default=None, description="Candles opened at or after.")
    until: AwareDatetime | None = Field(default=None, description="Candles opened before.")
    limit: int = Field(default=20_000, ge=1, le=100_000, description="The last this many.")


class CandlePublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: datetime = Field(description="Open time (UTC).")
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandleSeries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str
    timeframe: str
    items: list[CandlePublic]


class CandleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="As a backtest's `data` takes it.")
    symbol: str
    timeframe: str


def _roots(allowed: list[Path]) -> list[Path]:
    return [SHIPPED_DATA.resolve(), *((REPO / d).resolve() for d in allowed)]


def _invalid(msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", "data"), "msg": msg, "type": "data_path"}])


@router.get("")
async def get_candles(
    query: Annotated[CandleQuery, Query()], settings: SettingsDep
) -> CandleSeries:
    """A candle file's bars, oldest first (the last `limit` of the window)."""
    try:
        source = DataSource.parse(query.data)
        symbol, timeframe = source.market(query.timeframe)
    except (BacktestInputError, ValueError) as e:
        raise _invalid(str(e)) from e
    path = (REPO / source.path).resolve()
    if not any(path.is_relative_to(root) for root in _roots(settings.backtest_data_dirs)):
        raise _invalid(
            f"{source.path} is outside the directories backtests may read (the repository's "
            "data/ and ATS_BACKTEST_DATA_DIRS)"
        )
    if not path.is_file():
        raise _invalid(f"{source.path}: no such file")
    try:
        candles = await asyncio.to_thread(read_candles_csv, path, symbol, timeframe)
    except PermanentFeedError as e:  # MalformedData too: both name the problem
        raise _invalid(str(e)) from e
    items = [
        CandlePublic(
            time=c.open_time, open=c.open, high=c.high, low=c.low, close=c.close, volume=c.volume
        )
        for c in candles
        if (query.since is None or c.open_time >= query.since)
        and (query.until is None or c.open_time < query.until)
    ]
    return CandleSeries(symbol=symbol, timeframe=timeframe, items=items[-query.limit :])


@router.get("/files")
async def list_candle_files(settings: SettingsDep) -> list[CandleFile]:
    """The candle files backtests may read whose names say their market."""
    files: list[CandleFile] = []
    for root in _roots(settings.backtest_data_dirs):
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*.csv")):
            try:
                symbol, timeframe = DataSource(path=path).market()
            except BacktestInputError:
                continue
            shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            files.append(CandleFile(path=str(shown), symbol=symbol, timeframe=timeframe))
    return files
