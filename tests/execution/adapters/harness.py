"""What the conformance suite needs from each venue it runs an adapter against.

Every adapter is tested the same way (`test_conformance.py`): against a real venue
stand-in on 127.0.0.1 that speaks the exchange's real protocol (a Binance REST
server for ccxt, an OANDA v20 server), or, for paper, against candles the test
feeds it. A harness module `harness_<name>.py` in this folder exports
`open_harness()`, an async context manager yielding an object with this shape;
`conftest.py` finds the modules by name, so adding a venue adds no other edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from execution.adapters.base import Credentials, ExchangeAdapter


class Harness(Protocol):
    #: Venue name, used as the test id.
    name: str
    #: A market the venue lists, in the adapter's symbol format (`ETH/BTC`, `EUR/USD`).
    symbol: str
    #: A quantity the account can afford to buy at `price` several times over, and
    #: that satisfies the market's minimums.
    quantity: Decimal
    #: The venue's current price of `symbol`.
    price: Decimal
    #: The started adapter under test, with valid credentials.
    adapter: ExchangeAdapter

    async def settle(self) -> None:
        """Let the venue execute what it would by now: fill market orders, fill
        resting orders the price crossed (paper: one more candle, then `poll`)."""

    async def move_price(self, price: Decimal) -> None:
        """Set the market price; resting orders it crosses fill on the next `settle`."""

    async def rate_limit_next(self, count: int) -> None:
        """Answer the next `count` requests with the venue's rate-limit error (HTTP
        429 with its error body and a Retry-After of 0 s)."""

    async def hang_next_order(self) -> None:
        """Carry out the next order placement at the venue but never answer it (the
        connection stays open), so the client's request times out."""

    async def close_position_by_hand(self, symbol: str) -> None:
        """Close the account's position in `symbol` at the venue, outside the
        adapter (a user on the exchange's website)."""

    async def adapter_with(self, credentials: Credentials) -> ExchangeAdapter:
        """Another started adapter on the same venue account with these credentials."""

    def secrets(self) -> Sequence[str]:
        """The credential values of `adapter`, so tests can check no error shows them."""
