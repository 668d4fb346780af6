"""The paper adapter's venue: candles the test pushes, on a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from execution.adapters.base import AccountSpec, Credentials, ExchangeAdapter
from execution.adapters.paper import PaperAdapter
from shared.market.candles import Candle
from shared.market.feeds import CandleFeed
from tests.conftest import eventually

STEP = timedelta(minutes=5)


class PushFeed(CandleFeed):
    """A live feed whose candles the test hands over one by one."""

    def __init__(self, symbol: str) -> None:
        super().__init__(symbol, "5m")
        self.inbox: asyncio.Queue[Candle] = asyncio.Queue()

    async def stream(self) -> AsyncGenerator[Candle, None]:
        while True:
            candle = await self.inbox.get()
            if await self._admit(candle):
                yield candle


class PaperHarness:
    name = "paper"
    symbol = "ETH/BTC"
    quantity = Decimal("0.5")
    # Paper trades in-process: no request can be rate limited, lost or mis-signed.
    networked = False

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)
        self.price = Decimal("0.05")
        self._next_price: Decimal | None = None
        self.feed = PushFeed(self.symbol)
        self.adapter: PaperAdapter = PaperAdapter(
            AccountSpec(
                name="paper-test",
                exchange="paper",
                config={"currency": "BTC", "balances": {"BTC": "10"}},
            ),
            clock=lambda: self.now,
            feeds={self.symbol: self.feed},
        )

    async def push(self) -> None:
        """One candle from the current time at the current price, then its close."""
        old, new = self.price, self._next_price or self.price
        self.price, self._next_price = new, None
        candle = Candle(
            self.symbol,
            "5m",
            self.now,
            float(new),
            float(max(old, new)),
            float(min(old, new)),
            float(new),
            1.0,
        )
        await self.feed.inbox.put(candle)
        await eventually(lambda: self.feed.last_open_time == candle.open_time)
        for _ in range(3):
            await asyncio.sleep(0)
        self.now += STEP
        await self.adapter.poll()

    async def settle(self) -> None:
        await self.push()

    async def move_price(self, price: Decimal) -> None:
        self._next_price = price

    async def rate_limit_next(self, count: int) -> None:
        raise NotImplementedError

    async def hang_next_order(self) -> None:
        raise NotImplementedError

    async def close_position_by_hand(self, symbol: str) -> None:
        self.adapter.set_balance(symbol.split("/")[0], Decimal(0))

    async def adapter_with(self, credentials: Credentials) -> ExchangeAdapter:
        raise NotImplementedError

    def secrets(self) -> Sequence[str]:
        return ()


@asynccontextmanager
async def open_harness() -> AsyncIterator[PaperHarness]:
    harness = PaperHarness()
    await harness.adapter.start()
    await harness.push()  # a first candle, so the market has a price
    try:
        yield harness
    finally:
        await harness.adapter.close()
