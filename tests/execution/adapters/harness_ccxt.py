"""The conformance suite's ccxt venue: ccxt's real `binance` class against `FakeBinance`.

The adapter is built the way the service builds it (`create_adapter` from an
`AccountSpec`): a paper-mode account on `binance` with `sandbox: true` (so the ccxt
adapter, not the paper one) and `api_url` pointing every endpoint at the local
server. The account starts with 1 BTC and no ETH; ETH/BTC trades at 0.05.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from execution.adapters.base import AccountSpec, Credentials, ExchangeAdapter, create_adapter
from execution.adapters.ccxt_exchange import CcxtAdapter
from execution.adapters.retry import RetryPolicy
from shared.kernel.risk import Mode
from tests.execution.adapters.harness import Harness
from tests.fakes.binance import FakeBinance

API_KEY = "ats-test-binance-key-7Hq2mVx9LpR4"
SECRET = "ats-test-binance-secret-Nc8wK3zT6yB1"
PRICE = Decimal("0.05")
QUANTITY = Decimal("0.01")
START_BTC = Decimal(1)
# Retries as in production, minus the waiting: the suite checks what is retried.
FAST_RETRY = RetryPolicy(attempts=5, base_delay=0.01, max_delay=0.2)


def build_adapter(url: str, credentials: Credentials, **config: Any) -> ExchangeAdapter:
    """A ccxt adapter on the fake's account, built through the factory."""
    spec = AccountSpec(
        name="t",
        exchange="binance",
        mode=Mode.PAPER,
        config={
            "sandbox": True,
            "api_url": url,
            "timeout_seconds": 1,
            # The fake sets no request weights; ccxt's throttle would only slow the suite.
            "rate_limit": False,
            **config,
        },
        credentials=credentials,
    )
    adapter = create_adapter(spec, clock=lambda: datetime.now(UTC))
    assert isinstance(adapter, CcxtAdapter), f"binance built {type(adapter).__name__}"
    adapter.retry_policy = FAST_RETRY
    return adapter


def credentials() -> Credentials:
    return Credentials({"api_key": API_KEY, "secret": SECRET})


@dataclass
class CcxtHarness:
    """`tests.execution.adapters.harness.Harness` for the ccxt adapter."""

    binance: FakeBinance
    adapter: ExchangeAdapter
    name: str = "ccxt"
    symbol: str = "ETH/BTC"
    quantity: Decimal = QUANTITY
    _others: list[ExchangeAdapter] = field(default_factory=list)

    @property
    def price(self) -> Decimal:
        return self.binance.prices[self._market_id(self.symbol)]

    @price.setter
    def price(self, price: Decimal) -> None:
        self.binance.set_price(price, self._market_id(self.symbol))

    @staticmethod
    def _market_id(symbol: str) -> str:
        return symbol.replace("/", "")

    async def settle(self) -> None:
        # Market orders filled when placed; resting ones fill once the price crossed them.
        self.binance.fill_crossed()

    async def move_price(self, price: Decimal) -> None:
        self.price = price

    async def rate_limit_next(self, count: int) -> None:
        self.binance.rate_limit_next(count, retry_after=0)

    async def hang_next_order(self) -> None:
        self.binance.hang_next_order()

    async def close_position_by_hand(self, symbol: str) -> None:
        self.binance.sell_base_by_hand(self._market_id(symbol))

    async def adapter_with(self, credentials: Credentials) -> ExchangeAdapter:
        adapter = build_adapter(self.binance.url, credentials)
        self._others.append(adapter)
        await adapter.start()
        return adapter

    def secrets(self) -> Sequence[str]:
        return (API_KEY, SECRET)

    async def aclose(self) -> None:
        for adapter in (self.adapter, *self._others):
            await adapter.close()


@asynccontextmanager
async def open_harness(**fake: Any) -> AsyncIterator[CcxtHarness]:
    """The venue and a started adapter on it; `fake` goes to `FakeBinance`."""
    fake.setdefault("balances", {"BTC": START_BTC})
    fake.setdefault("prices", {"ETHBTC": PRICE})
    async with FakeBinance(api_key=API_KEY, secret=SECRET, **fake) as binance:
        harness = CcxtHarness(binance, build_adapter(binance.url, credentials()))
        try:
            await harness.adapter.start()
            yield harness
        finally:
            await harness.aclose()


def _conforms(harness: CcxtHarness) -> Harness:
    return harness  # mypy checks CcxtHarness against the protocol here
