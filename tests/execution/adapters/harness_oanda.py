"""The conformance harness for the OANDA adapter, against the local v20 server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from execution.adapters.base import AccountSpec, Credentials, ExchangeAdapter, create_adapter
from execution.adapters.oanda import to_instrument
from shared.kernel.risk import Mode
from tests.fakes.oanda import FakeOanda


def _clock() -> datetime:
    return datetime.now(UTC)


def oanda_spec(venue: FakeOanda, credentials: Credentials, **config: object) -> AccountSpec:
    """A paper account on the practice environment, pointed at the local server."""
    return AccountSpec(
        name="t",
        exchange="oanda",
        mode=Mode.PAPER,
        # `sandbox` is what sends a paper account to OANDA's practice host rather than
        # to the paper adapter; `api_url` then replaces that host with the local one.
        config={
            "sandbox": True,
            "api_url": venue.url,
            "account_id": venue.account_id,
            "timeout_seconds": 1,
            **config,
        },
        credentials=credentials,
    )


@dataclass
class OandaHarness:
    venue: FakeOanda
    adapter: ExchangeAdapter
    name: str = "oanda"
    symbol: str = "EUR/USD"
    # 100 units: a million times it (the insufficient-funds check) is OANDA's
    # maximumOrderUnits, so the margin check, not the size limit, refuses it.
    quantity: Decimal = Decimal(100)
    price: Decimal = Decimal("1.10000")
    _others: list[ExchangeAdapter] = field(default_factory=list)

    async def settle(self) -> None:
        # Market orders fill as they are placed; resting limits fill when crossed.
        self.venue.fill_crossed()

    async def move_price(self, price: Decimal) -> None:
        self.venue.set_price(to_instrument(self.symbol), price)
        self.price = price

    async def rate_limit_next(self, count: int) -> None:
        self.venue.rate_limit_next(count)

    async def hang_next_order(self) -> None:
        self.venue.hang_next_order()

    async def close_position_by_hand(self, symbol: str) -> None:
        self.venue.close_position(to_instrument(symbol))

    async def adapter_with(self, credentials: Credentials) -> ExchangeAdapter:
        """Started, so a refused token raises `AuthenticationError` here: `start`
        reads the account, and OANDA checks the token on every request."""
        adapter = create_adapter(oanda_spec(self.venue, credentials), clock=_clock)
        self._others.append(adapter)  # closed with the harness even if start fails
        await adapter.start()
        return adapter

    def secrets(self) -> Sequence[str]:
        return [self.venue.token]

    async def aclose(self) -> None:
        for adapter in (self.adapter, *self._others):
            await adapter.close()


@contextlib.asynccontextmanager
async def open_harness() -> AsyncIterator[OandaHarness]:
    async with FakeOanda() as venue:
        adapter = create_adapter(
            oanda_spec(venue, Credentials({"api_token": venue.token})), clock=_clock
        )
        harness = OandaHarness(venue=venue, adapter=adapter, price=venue.instruments["EUR_USD"].mid)
        try:
            await adapter.start()
            yield harness
        finally:
            await harness.aclose()
