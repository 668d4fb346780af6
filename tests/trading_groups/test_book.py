"""The book both kinds of group keep: seeded once from execution, corrected by orders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from shared.events import Action, HeldPosition, OrderEvent
from trading_groups.book import PositionBook

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2024, 3, 1, 13, 0, tzinfo=UTC)


def held(
    account: str, symbol: str, quantity: str, price: str | None, at: datetime | None
) -> HeldPosition:
    return HeldPosition(
        trade_account=account,
        symbol=symbol,
        quantity=Decimal(quantity),
        average_price=None if price is None else Decimal(price),
        opened_at=at,
    )


def order(
    status: str, side: str, quantity: str | None = "1", price: str | None = "2"
) -> OrderEvent:
    return OrderEvent.model_validate(
        {
            "id": str(uuid.uuid4()),
            "seq": 1,
            "ts": T1.isoformat(),
            "source": "execution:e",
            "category": "order",
            "trace": {"correlation_id": str(uuid.uuid4())},
            "payload": {
                "trading_group": "g",
                "status": status,
                "side": side,
                "symbol": "ETH/BTC",
                "quantity": quantity,
                "price": price,
            },
        }
    )


def test_seed_sums_a_symbol_over_accounts_at_the_weighted_price_and_skips_flat_rows() -> None:
    book = PositionBook()
    book.seed(
        [
            held("a", "ETH/BTC", "1", "0.05", T1),
            held("b", "ETH/BTC", "3", "0.07", T0),
            held("a", "LTC/BTC", "0", "0.001", T0),
        ]
    )

    (p,) = book.held()
    assert (p.symbol, p.quantity, p.entry_price, p.opened_at) == (
        "ETH/BTC",
        Decimal(4),
        Decimal("0.065"),
        T0,
    )
    # Only the first connect seeds: later acks come with a book already kept live.
    book.decided("ETH/BTC", Action.SELL, None, None, T1)
    book.seed([held("a", "ETH/BTC", "9", "1", T1)])
    assert book.held() == []


def test_orders_correct_what_was_decided() -> None:
    book = PositionBook()
    book.decided("ETH/BTC", Action.BUY, Decimal("0.5"), Decimal("0.06"), T0)
    assert "ETH/BTC" in book
    book.apply(order("filled", "buy", "0.4", "0.061"))
    (p,) = book.held()
    assert (p.quantity, p.entry_price) == (Decimal("0.4"), Decimal("0.061"))
    book.decided("ETH/BTC", Action.SELL, None, None, T1)
    assert "ETH/BTC" not in book
    # The sell was rejected: the position is back, as the event reports it.
    book.apply(order("rejected", "sell", "0.4", "0.061"))
    assert "ETH/BTC" in book
    book.apply(order("cancelled", "buy"))
    assert book.held() == []
