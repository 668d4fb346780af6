"""A trading group's book: what it holds per symbol, for its strategy's `positions`.

Both kinds of group keep it the same way. A decision is booked at once (a BUY opens
the symbol, a SELL or CLOSE flattens it), so the next signal is decided knowing it;
execution's order events then correct it: a filled buy sets the position to what was
bought, and a buy or sell that was rejected, denied, cancelled or expired is undone.

A restarted group starts from execution's book, not from nothing: the gateway sends a
trading group's open positions in its connect ack (`Ack.positions`), and the book is
seeded from the first one before any event is applied. Without it a group that held a
position when it stopped would think itself flat, buy again, and never sell what it
bought. Later reconnects keep the book: the events missed meanwhile are replayed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from shared.events import Action, HeldPosition, OrderEvent
from shared.kernel.strategy import Position

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Order statuses that mean the step the group booked did not happen.
UNDONE = frozenset({"rejected", "denied", "canceled", "cancelled", "expired"})


class PositionBook:
    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.seeded = False

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.positions

    def held(self) -> list[Position]:
        return list(self.positions.values())

    def seed(self, held: Iterable[HeldPosition]) -> None:
        """Start from execution's positions (once: the first connect ack). A symbol
        held in several of the group's accounts is one position: their quantities
        summed, at their quantity-weighted average price, opened at the earliest."""
        if self.seeded:
            return
        self.seeded = True
        for h in held:
            if h.quantity <= 0:
                continue  # long-only books: a short or flat row is not a holding
            price = h.average_price or Decimal(0)
            opened = h.opened_at or EPOCH
            have = self.positions.get(h.symbol)
            if have is None:
                self.positions[h.symbol] = Position(h.symbol, h.quantity, price, opened)
                continue
            quantity = have.quantity + h.quantity
            average = (have.quantity * have.entry_price + h.quantity * price) / quantity
            self.positions[h.symbol] = Position(
                h.symbol, quantity, average, min(have.opened_at, opened)
            )

    def decided(
        self,
        symbol: str,
        action: Action,
        size: Decimal | None,
        price: Decimal | None,
        when: datetime,
    ) -> None:
        if action is Action.BUY and symbol not in self.positions:
            self.positions[symbol] = Position(symbol, size or Decimal(1), price or Decimal(0), when)
        elif action in (Action.SELL, Action.CLOSE):
            self.positions.pop(symbol, None)

    def apply(self, event: OrderEvent) -> None:
        """Correct the book by what execution did."""
        p = event.payload
        symbol, status, side = p.symbol, p.status.lower(), (p.side or "").lower()
        if symbol is None:
            return
        if status in UNDONE:
            if side == "buy":
                self.positions.pop(symbol, None)
            elif side == "sell" and p.price is not None and p.quantity is not None:
                self.positions[symbol] = Position(symbol, p.quantity, p.price, event.ts)
        elif (
            status == "filled" and side == "buy" and p.quantity is not None and p.price is not None
        ):
            self.positions[symbol] = Position(symbol, p.quantity, p.price, event.ts)
