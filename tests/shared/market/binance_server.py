"""A local stand-in for Binance's public spot REST API, serving the shipped candles.

It answers the two endpoints ccxt's `binance` needs to load spot markets and fetch
candles, the way Binance does (https://developers.binance.com/docs/binance-spot-api-docs/rest-api):

- `GET /api/v3/exchangeInfo`: the spot symbols, with the usual filters;
- `GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=`: rows
  `[openTime, "open", "high", "low", "close", "volume", closeTime, ...]`, the first
  `limit` (default 500, at most 1000) from `startTime`, or the latest `limit`
  without it. Like Binance it includes the candle still forming at "now" (which
  here is the test's clock), and nothing after it.

Faults queued in `faults` are served to the next klines requests, one each:
`"429"` (rate limit, with Retry-After), `"503"` (an HTML error page from the edge),
and malformed klines (`"short_row"`: a row cut after `low`; `"non_numeric"`: a
close of `"abc"`; `"high_below_low"`).
"""

from __future__ import annotations

import asyncio
import csv
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tests.conftest import eventually

DATA = Path(__file__).resolve().parents[3] / "data"
STEP_MS = 300_000
RETRY_AFTER = 7


@dataclass
class Market:
    symbol: str  # Binance id, e.g. ETHBTC
    base: str
    quote: str
    rows: list[tuple[int, list[str]]]  # (open ms, [open, high, low, close, volume])


def load_market(name: str) -> Market:
    """A market from data/<BASE>-<QUOTE>_5m.csv, prices as Binance prints them."""
    base, quote = name.split("-")
    rows: list[tuple[int, list[str]]] = []
    with (DATA / f"{name}_5m.csv").open(newline="") as f:
        for record in csv.DictReader(f):
            when = datetime.fromisoformat(record["timestamp"])
            values = [
                format(Decimal(record[k]), "f") for k in ("open", "high", "low", "close", "volume")
            ]
            rows.append((int(when.timestamp() * 1000), values))
    return Market(f"{base}{quote}", base, quote, rows)


def _symbol_info(market: Market) -> dict[str, Any]:
    return {
        "symbol": market.symbol,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000100",
                "maxPrice": "922327.00000000",
                "tickSize": "0.00000100",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00010000",
                "maxQty": "100000.00000000",
                "stepSize": "0.00010000",
            },
            {"filterType": "NOTIONAL", "minNotional": "0.00010000", "applyMinToMarket": True},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _error(status: int, code: int, msg: str) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


class BinanceServer:
    """The fake exchange: markets, a clock, a request log and a fault queue."""

    def __init__(self, markets: list[Market], now: Callable[[], datetime]) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.now = now
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.faults: deque[str] = deque()
        self.app = FastAPI()
        self.app.get("/api/v3/exchangeInfo")(self._exchange_info)
        self.app.get("/api/v3/klines")(self._klines)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def klines_requests(self) -> list[dict[str, str]]:
        return [params for path, params in self.requests if path.endswith("/klines")]

    async def _exchange_info(self, request: Request) -> Response:
        self.requests.append((request.url.path, dict(request.query_params)))
        return JSONResponse(
            {
                "timezone": "UTC",
                "serverTime": int(self.now().timestamp() * 1000),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    }
                ],
                "exchangeFilters": [],
                "symbols": [_symbol_info(m) for m in self.markets.values()],
            }
        )

    async def _klines(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append((request.url.path, params))
        market = self.markets.get(params.get("symbol", ""))
        if market is None:
            return _error(400, -1121, "Invalid symbol.")
        if params.get("interval") != "5m":
            return _error(400, -1120, "Invalid interval.")
        limit = int(params.get("limit", "500"))
        if not 1 <= limit <= 1000:
            return _error(400, -1130, "Data sent for parameter 'limit' is not valid.")
        if self.faults:
            return self._fault(self.faults.popleft(), market)
        now_ms = int(self.now().timestamp() * 1000)
        rows = [r for r in market.rows if r[0] <= now_ms]
        if "endTime" in params:
            rows = [r for r in rows if r[0] <= int(params["endTime"])]
        if "startTime" in params:
            rows = [r for r in rows if r[0] >= int(params["startTime"])][:limit]
        else:
            rows = rows[-limit:]
        return JSONResponse([self._kline(r) for r in rows])

    @staticmethod
    def _kline(row: tuple[int, list[str]]) -> list[Any]:
        open_ms, (o, h, lo, c, v) = row
        quote_volume = format(Decimal(v) * Decimal(c), "f")
        return [open_ms, o, h, lo, c, v, open_ms + STEP_MS - 1, quote_volume, 100, "0", "0", "0"]

    def _fault(self, fault: str, market: Market) -> Response:
        if fault == "429":
            return JSONResponse(
                {
                    "code": -1003,
                    "msg": "Too many requests; current limit of IP(127.0.0.1) is 6000 "
                    "requests per minute. Please use the websocket for live updates to "
                    "avoid polling the API.",
                },
                status_code=429,
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        if fault == "503":
            return HTMLResponse(
                "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
                status_code=503,
            )
        rows = [self._kline(r) for r in market.rows[:3]]
        if fault == "short_row":
            rows[1] = rows[1][:4]
            return JSONResponse(rows)
        if fault == "non_numeric":
            rows[1][4] = "abc"
            return JSONResponse(rows)
        if fault == "high_below_low":
            rows[1][2], rows[1][3] = rows[1][3], rows[1][2]
            return JSONResponse(rows)
        raise ValueError(f"unknown fault {fault!r}")

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        server, task = self._server, self._task
        await eventually(lambda: server.started or task.done(), message="fake binance start")
        if task.done():
            task.result()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)

    def exchange(self) -> Any:
        """ccxt's real `binance`, spot markets only, with every API URL on this server."""
        exchange = ccxt_async.binance(
            {
                "enableRateLimit": True,
                "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
            }
        )
        # ccxt waits this long on close() for TLS connections to wind down; there are
        # none here.
        exchange.timeout_on_exit = 0
        exchange.urls["api"] = {
            name: self.url + urlsplit(url).path for name, url in exchange.urls["api"].items()
        }
        return exchange
