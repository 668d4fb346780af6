"""The execution service's tables over REST: intents, orders, fills, positions,
incidents and equity.

The execution service is not under test here, so rows go straight into the shared
tables through SQLAlchemy, on each database, as that service would write them; the
gateway is the real one, over HTTP. Money is exact end to end: written as Decimals,
read back as fixed-point JSON strings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from shared.db.models import (
    EquitySnapshotRow,
    FillRow,
    IncidentRow,
    OrderIntentRow,
    OrderRow,
    PositionRow,
)
from shared.kernel.risk.model import trading_day_start
from tests.conftest import Gateway
from tests.gateway.api.conftest import create, error_locs

D = Decimal
T0 = datetime(2026, 3, 1, tzinfo=UTC)
POINT_THREE = D("0.1") + D("0.2")  # exact in Decimal; 0.30000000000000004 as floats
WIDE = D("1234567890.123456789012345678")  # 28 digits, 18 after the point
TINY = D("0.000000000000000001")  # 1E-18, the smallest Money step


def intent(n: int, **fields: Any) -> OrderIntentRow:
    values: dict[str, Any] = {
        "id": str(UUID(int=n)),
        "account": "acct-a",
        "trading_group": "g1",
        "decision_id": str(UUID(int=1000 + n)),
        "correlation_id": None,
        "symbol": "BTC/USDT",
        "action": "BUY",
        "confidence": 0.75,
        "status": "accepted",
        "reason": None,
        "message": "",
        "checks": [{"check": "sizing", "status": "passed", "quantity": "0.3"}],
        "decision": {"symbol": "BTC/USDT", "action": "BUY"},
        "created_at": T0,
    }
    values.update(fields)
    return OrderIntentRow(**values)


def order(client_order_id: str, status: str, **fields: Any) -> OrderRow:
    values: dict[str, Any] = {
        "account": "acct-a",
        "client_order_id": client_order_id,
        "trading_group": "g1",
        "symbol": "BTC/USDT",
        "side": "buy",
        "type": "market",
        "leg": "entry",
        "status": status,
        "quantity": D("1"),
        "filled_quantity": D("0"),
        "fees": D("0"),
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return OrderRow(**values)


def fill(fill_id: str, client_order_id: str, at: datetime, **fields: Any) -> FillRow:
    values: dict[str, Any] = {
        "account": "acct-a",
        "fill_id": fill_id,
        "client_order_id": client_order_id,
        "trading_group": "g1",
        "symbol": "BTC/USDT",
        "side": "buy",
        "quantity": D("0.5"),
        "price": D("100"),
        "fee": D("0.01"),
        "at": at,
    }
    values.update(fields)
    return FillRow(**values)


def position(account: str, symbol: str, quantity: Decimal, **fields: Any) -> PositionRow:
    values: dict[str, Any] = {
        "account": account,
        "symbol": symbol,
        "trading_group": "g1",
        "quantity": quantity,
        "unrealized_pnl": D("0"),
        "realized_pnl": D("0"),
        "updated_at": T0,
    }
    values.update(fields)
    return PositionRow(**values)


def snapshot(at: datetime, equity: str, realized: str, drawdown: Decimal) -> EquitySnapshotRow:
    return EquitySnapshotRow(
        account="acct-a",
        at=at,
        currency="USDT",
        equity=D(equity),
        cash=D(equity),
        positions_value=D("0"),
        realized_pnl=D(realized),
        unrealized_pnl=D("0"),
        fees=D("0"),
        drawdown=drawdown,
    )


# Rows are made anew for each test: an ORM object belongs to the database it went into.


def intents() -> list[OrderIntentRow]:
    """In (created_at, id) order: the order every page walks. Three share one
    created_at, so only the id breaks the tie; they are stored out of order."""
    return [
    intent(1, correlation_id="c-1"),
    intent(2, created_at=T0 + timedelta(seconds=1), correlation_id="c-1", status="rejected",
           reason="max_positions", quantity=None),
    intent(3, created_at=T0 + timedelta(seconds=2), account="acct-b", trading_group="g2",
           symbol="ETH/USDT"),
    intent(4, created_at=T0 + timedelta(seconds=2), account="acct-b", trading_group="g2",
           symbol="ETH/USDT", status="rejected", reason="daily_loss"),
    intent(5, created_at=T0 + timedelta(seconds=2), account="acct-b", trading_group="g2",
           symbol="ETH/USDT"),
    intent(6, created_at=T0 + timedelta(seconds=3), account="acct-b", symbol="ETH/USDT",
           status="rejected", reason="daily_loss"),
    intent(7, created_at=T0 + timedelta(seconds=4), trading_group="g2", quantity=POINT_THREE,
           price=WIDE, notional=TINY),
    ]  # fmt: skip


INTENT_IDS = [str(UUID(int=n)) for n in range(1, 8)]


def orders() -> list[OrderRow]:
    """Stored in this order, so their ids are 1..8. o8 has o1's client order id in
    another account: the key of an order is the pair."""
    return [
    order("atsE01", "filled", correlation_id="c-1", quantity=POINT_THREE,
          filled_quantity=POINT_THREE, average_price=WIDE, fees=TINY, exchange_order_id="x-1",
          intent_id=INTENT_IDS[0]),
    order("atsE02", "submitted"),
    order("atsE03", "partially_filled", trading_group="g2", symbol="ETH/USDT",
          limit_price=D("1E+2")),
    order("atsE04", "ambiguous", account="acct-b", trading_group="g2", symbol="ETH/USDT"),
    order("atsE05", "canceled", account="acct-b"),
    order("atsE06", "accepted", account="acct-b", trading_group=None, correlation_id="c-2"),
    order("atsE07", "denied", reason="max_positions"),
    order("atsE01", "rejected", account="acct-b", reason="insufficient funds"),
    ]  # fmt: skip


def fills() -> list[FillRow]:
    """Booked in this order (ids 1..5); f-2 happened before f-1."""
    return [
    fill("f-1", "atsE01", T0 + timedelta(seconds=20), quantity=D("0.1"), price=WIDE, fee=TINY,
         correlation_id="c-1", realized_pnl=D("-0.5"), liquidity="taker"),
    fill("f-2", "atsE01", T0 + timedelta(seconds=10), quantity=D("0.2"), correlation_id="c-1",
         withheld=D("0.0002")),
    fill("f-3", "atsE03", T0 + timedelta(seconds=30), symbol="ETH/USDT", trading_group="g2"),
    fill("f-4", "atsE01", T0 + timedelta(seconds=40), account="acct-b"),
    fill("f-5", "atsE06", T0 + timedelta(seconds=50), account="acct-b", side="sell"),
    ]  # fmt: skip


def positions() -> list[PositionRow]:
    return [
    position("acct-a", "BTC/USDT", POINT_THREE, average_price=WIDE, mark_price=D("101.5"),
             unrealized_pnl=D("0.45"), realized_pnl=D("-0.5"), opened_at=T0),
    position("acct-a", "ETH/USDT", D("0.0"), realized_pnl=D("12.5")),  # closed
    position("acct-b", "BTC/USDT", TINY, mark_price=D("100")),
    position("acct-b", "LTC/USDT", D("0E-18")),  # closed, zero with an exponent
    ]  # fmt: skip


def incidents() -> list[IncidentRow]:
    return [
    IncidentRow(account="acct-a", kind="reconciliation_mismatch", status="open",
                message="position differs", details={"expected": "0.3", "found": "0.2"},
                created_at=T0),
    IncidentRow(account="acct-a", kind="unknown_order", status="open",
                message="order not placed by us", created_at=T0 + timedelta(seconds=1)),
    IncidentRow(account="acct-b", kind="reconciliation_mismatch", status="resolved",
                message="balance differs", created_at=T0 + timedelta(seconds=2),
                closed_at=T0 + timedelta(hours=1), closed_note="exchange fixed it"),
    ]  # fmt: skip


async def store(gateway: Gateway, rows: list[Any]) -> None:
    """Insert rows one flush at a time, so autoincrement ids follow the list."""
    async with gateway.state.sessionmaker() as session:
        for row in rows:
            session.add(row)
            await session.flush()
        await session.commit()


@pytest.fixture
async def stored(gateway: Gateway, api: httpx.AsyncClient) -> None:
    """Two trade accounts and every table filled as the execution service would."""
    await create(api, "trade-accounts", name="acct-a", exchange="paper")
    await create(api, "trade-accounts", name="acct-b", exchange="paper")
    made = intents()
    await store(gateway, [made[i] for i in (6, 4, 0, 3, 5, 2, 1)])
    await store(gateway, [*orders(), *fills(), *positions(), *incidents()])


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await api.get(f"/api/v1/{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def all_pages(
    api: httpx.AsyncClient, path: str, **params: Any
) -> tuple[list[dict[str, Any]], list[int]]:
    """Walk every page; return the items and the size of each page."""
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    after: Any = None
    while True:
        page = await get(api, path, **params, **({"after": after} if after is not None else {}))
        items += page["items"]
        sizes.append(len(page["items"]))
        after = page["next_after"]
        if after is None:
            return items, sizes


# --------------------------------------------------------------------------- intents


async def test_intents_pages_walk_every_intent_once_in_created_order(
    api: httpx.AsyncClient, stored: None
) -> None:
    items, sizes = await all_pages(api, "intents", limit=2)
    assert sizes == [2, 2, 2, 1]
    assert [i["id"] for i in items] == INTENT_IDS
    # Newest first, paged the same way, ties on created_at broken the other way too.
    items, sizes = await all_pages(api, "intents", limit=3, order="desc")
    assert sizes == [3, 3, 1]
    assert [i["id"] for i in items] == INTENT_IDS[::-1]
    # A last page that is exactly full says so.
    page = await get(api, "intents", limit=7)
    assert len(page["items"]) == 7 and page["next_after"] is None


async def test_intents_filters_select_matching_intents(
    api: httpx.AsyncClient, stored: None
) -> None:
    cases: list[tuple[dict[str, str], list[int]]] = [
        ({"account": "acct-b"}, [3, 4, 5, 6]),
        ({"trading_group": "g2"}, [3, 4, 5, 7]),
        ({"symbol": "BTC/USDT"}, [1, 2, 7]),
        ({"status": "rejected"}, [2, 4, 6]),
        ({"status": "accepted", "account": "acct-b"}, [3, 5]),
        ({"reason": "daily_loss"}, [4, 6]),
        ({"correlation_id": "c-1"}, [1, 2]),
        ({"since": "2026-03-01T00:00:02Z", "until": "2026-03-01T00:00:04Z"}, [3, 4, 5, 6]),
        ({"since": "2026-03-01T01:00:03+01:00"}, [6, 7]),
        ({"account": "nobody"}, []),
    ]
    for params, expected in cases:
        items, _ = await all_pages(api, "intents", limit=2, **params)
        assert [i["id"] for i in items] == [INTENT_IDS[n - 1] for n in expected], params


async def test_intent_by_id_is_returned_whole_and_unknown_is_404(
    api: httpx.AsyncClient, stored: None
) -> None:
    body = await get(api, f"intents/{INTENT_IDS[6]}")
    assert body == {
        "id": INTENT_IDS[6],
        "account": "acct-a",
        "trading_group": "g2",
        "decision_id": str(UUID(int=1007)),
        "correlation_id": None,
        "symbol": "BTC/USDT",
        "action": "BUY",
        "confidence": 0.75,
        "status": "accepted",
        "reason": None,
        "message": "",
        "quantity": "0.3",
        "price": "1234567890.123456789012345678",
        "notional": "0.000000000000000001",
        "checks": [{"check": "sizing", "status": "passed", "quantity": "0.3"}],
        "decision": {"symbol": "BTC/USDT", "action": "BUY"},
        "created_at": "2026-03-01T00:00:04Z",
    }
    rejected = await get(api, f"intents/{INTENT_IDS[1]}")
    assert rejected["reason"] == "max_positions" and rejected["quantity"] is None
    r = await api.get(f"/api/v1/intents/{UUID(int=99)}")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"intent '{UUID(int=99)}' not found: list them at /api/v1/intents"
    )


async def test_intents_bad_query_is_422_naming_the_field(
    api: httpx.AsyncClient, stored: None
) -> None:
    for params, loc in [
        ({"after": "not-a-cursor"}, ["query", "after"]),
        ({"after": "bm8gYmFy"}, ["query", "after"]),  # base64 of "no bar"
        ({"status": "pending"}, ["query", "status"]),
        ({"since": "2026-03-01T00:00:00"}, ["query", "since"]),  # no offset
        ({"limit": "0"}, ["query", "limit"]),
        ({"acount": "acct-a"}, ["query", "acount"]),  # a typo is not silently ignored
    ]:
        r = await api.get("/api/v1/intents", params=params)
        assert error_locs(r) == [loc], params
    r = await api.get("/api/v1/intents", params={"after": "x"})
    assert "pass the previous page's `next_after` unchanged" in r.json()["detail"][0]["msg"]


# --------------------------------------------------------------------------- orders


async def test_orders_filter_by_status_list_and_open(api: httpx.AsyncClient, stored: None) -> None:
    cases: list[tuple[Any, list[str]]] = [
        ({}, ["atsE01", "atsE02", "atsE03", "atsE04", "atsE05", "atsE06", "atsE07", "atsE01"]),
        ({"open": "true"}, ["atsE02", "atsE03", "atsE04", "atsE06"]),
        ({"open": "false"}, ["atsE01", "atsE05", "atsE07", "atsE01"]),
        ({"status": "filled,canceled"}, ["atsE01", "atsE05"]),
        ([("status", "filled"), ("status", "denied")], ["atsE01", "atsE07"]),
        ([("status", "filled, rejected"), ("status", "denied")], ["atsE01", "atsE07", "atsE01"]),
        ({"status": "filled", "open": "true"}, []),
        ({"status": "accepted,filled", "open": "true"}, ["atsE06"]),
        ({"account": "acct-b", "open": "true"}, ["atsE04", "atsE06"]),
        ({"trading_group": "g2"}, ["atsE03", "atsE04"]),
        ({"symbol": "ETH/USDT"}, ["atsE03", "atsE04"]),
        ({"correlation_id": "c-2"}, ["atsE06"]),
        ({"client_order_id": "atsE01"}, ["atsE01", "atsE01"]),
        ({"client_order_id": "atsE01", "account": "acct-b"}, ["atsE01"]),
    ]
    for params, expected in cases:
        r = await api.get("/api/v1/orders", params=params)
        assert r.status_code == 200, r.text
        assert [o["client_order_id"] for o in r.json()["items"]] == expected, params
    only_open = (await get(api, "orders", open="true"))["items"]
    assert {o["status"] for o in only_open} == {
        "submitted", "partially_filled", "ambiguous", "accepted"
    }  # fmt: skip


async def test_orders_pages_walk_every_order_once(api: httpx.AsyncClient, stored: None) -> None:
    items, sizes = await all_pages(api, "orders", limit=3)
    assert sizes == [3, 3, 2]
    assert [o["id"] for o in items] == list(range(1, 9))
    items, sizes = await all_pages(api, "orders", limit=3, order="desc")
    assert [o["id"] for o in items] == list(range(8, 0, -1)) and sizes == [3, 3, 2]
    items, _ = await all_pages(api, "orders", limit=1, open="true")
    assert [o["id"] for o in items] == [2, 3, 4, 6]


async def test_orders_unknown_status_is_422_listing_the_valid_ones(
    api: httpx.AsyncClient, stored: None
) -> None:
    r = await api.get("/api/v1/orders", params={"status": "filled,open"})
    assert error_locs(r) == [["query", "status", "1"]]
    assert "'partially_filled'" in r.json()["detail"][0]["msg"]
    assert error_locs(await api.get("/api/v1/orders", params={"open": "maybe"})) == [
        ["query", "open"]
    ]


async def test_order_detail_has_its_own_fills_oldest_first(
    api: httpx.AsyncClient, stored: None
) -> None:
    body = await get(api, "orders/acct-a/atsE01")
    assert body["id"] == 1 and body["status"] == "filled"
    assert (body["quantity"], body["filled_quantity"]) == ("0.3", "0.3")
    assert body["average_price"] == "1234567890.123456789012345678"
    assert body["fees"] == "0.000000000000000001"
    assert body["intent_id"] == INTENT_IDS[0] and body["limit_price"] is None
    # f-4 shares the client order id but belongs to acct-b's order.
    assert [f["fill_id"] for f in body["fills"]] == ["f-2", "f-1"]
    assert body["fills"][1] == {
        "id": 1,
        "account": "acct-a",
        "fill_id": "f-1",
        "client_order_id": "atsE01",
        "trading_group": "g1",
        "correlation_id": "c-1",
        "symbol": "BTC/USDT",
        "side": "buy",
        "leg": None,
        "quantity": "0.1",
        "price": "1234567890.123456789012345678",
        "fee": "0.000000000000000001",
        "liquidity": "taker",
        "realized_pnl": "-0.5",
        "at": "2026-03-01T00:00:20Z",
        "withheld": None,
    }
    # Binance took its fee in the coin bought: the part the books do not hold.
    assert body["fills"][0]["withheld"] == "0.0002"
    other = await get(api, "orders/acct-b/atsE01")
    assert other["status"] == "rejected" and [f["fill_id"] for f in other["fills"]] == ["f-4"]
    assert (await get(api, "orders/acct-a/atsE03"))["limit_price"] == "100"
    assert (await get(api, "orders/acct-a/atsE02"))["fills"] == []
    r = await api.get("/api/v1/orders/acct-a/atsE04")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "order 'atsE04' of account 'acct-a' not found: list them at /api/v1/orders?account=acct-a"
    )


# --------------------------------------------------------------------------- fills


async def test_fills_filter_and_page(api: httpx.AsyncClient, stored: None) -> None:
    items, sizes = await all_pages(api, "fills", limit=2)
    assert [f["fill_id"] for f in items] == ["f-1", "f-2", "f-3", "f-4", "f-5"]
    assert sizes == [2, 2, 1]
    items, _ = await all_pages(api, "fills", limit=2, order="desc")
    assert [f["fill_id"] for f in items] == ["f-5", "f-4", "f-3", "f-2", "f-1"]
    cases: list[tuple[dict[str, str], list[str]]] = [
        ({"account": "acct-b"}, ["f-4", "f-5"]),
        ({"symbol": "ETH/USDT"}, ["f-3"]),
        ({"correlation_id": "c-1"}, ["f-1", "f-2"]),
        ({"client_order_id": "atsE01"}, ["f-1", "f-2", "f-4"]),
        ({"client_order_id": "atsE01", "account": "acct-a"}, ["f-1", "f-2"]),
        ({"trading_group": "g2"}, ["f-3"]),
        ({"since": "2026-03-01T00:00:20Z", "until": "2026-03-01T00:00:50Z"}, ["f-1", "f-3", "f-4"]),
    ]
    for params, expected in cases:
        items, _ = await all_pages(api, "fills", limit=2, **params)
        assert [f["fill_id"] for f in items] == expected, params


# --------------------------------------------------------------------------- positions


async def test_positions_open_by_default_with_pnl_and_marks(
    api: httpx.AsyncClient, stored: None
) -> None:
    held = await get(api, "positions")
    assert [(p["account"], p["symbol"]) for p in held] == [
        ("acct-a", "BTC/USDT"),
        ("acct-b", "BTC/USDT"),
    ]
    assert held[0] == {
        "account": "acct-a",
        "symbol": "BTC/USDT",
        "trading_group": "g1",
        "quantity": "0.3",
        "average_price": "1234567890.123456789012345678",
        "mark_price": "101.5",
        "unrealized_pnl": "0.45",
        "realized_pnl": "-0.5",
        "stop_loss": None,
        "take_profit": None,
        "opened_at": "2026-03-01T00:00:00Z",
        "updated_at": "2026-03-01T00:00:00Z",
    }
    assert held[1]["quantity"] == "0.000000000000000001"
    every = await get(api, "positions", open="false")
    assert [(p["account"], p["symbol"], p["quantity"]) for p in every] == [
        ("acct-a", "BTC/USDT", "0.3"),
        ("acct-a", "ETH/USDT", "0"),
        ("acct-b", "BTC/USDT", "0.000000000000000001"),
        ("acct-b", "LTC/USDT", "0"),
    ]
    assert [p["symbol"] for p in await get(api, "positions", account="acct-b")] == ["BTC/USDT"]
    closed = await get(api, "positions", account="acct-a", symbol="ETH/USDT", open="false")
    assert [(p["quantity"], p["realized_pnl"]) for p in closed] == [("0", "12.5")]
    assert await get(api, "positions", symbol="ETH/USDT") == []


# --------------------------------------------------------------------------- incidents


async def incident_row(gateway: Gateway, incident_id: int) -> IncidentRow:
    """The incident as the execution service reads it."""
    async with gateway.state.sessionmaker() as session:
        row = await session.scalar(select(IncidentRow).where(IncidentRow.id == incident_id))
        assert row is not None
        return row


async def test_incidents_filter_and_page(api: httpx.AsyncClient, stored: None) -> None:
    items, sizes = await all_pages(api, "incidents", limit=2)
    assert [i["id"] for i in items] == [1, 2, 3] and sizes == [2, 1]
    items, _ = await all_pages(api, "incidents", limit=2, order="desc")
    assert [i["id"] for i in items] == [3, 2, 1]
    assert [i["id"] for i in (await get(api, "incidents", status="open"))["items"]] == [1, 2]
    resolved = (await get(api, "incidents", account="acct-b"))["items"]
    assert resolved == [
        {
            "id": 3,
            "account": "acct-b",
            "kind": "reconciliation_mismatch",
            "status": "resolved",
            "message": "balance differs",
            "details": {},
            "created_at": "2026-03-01T00:00:02Z",
            "closed_at": "2026-03-01T01:00:00Z",
            "closed_note": "exchange fixed it",
        }
    ]
    assert (await get(api, "incidents/1"))["details"] == {"expected": "0.3", "found": "0.2"}
    r = await api.get("/api/v1/incidents", params={"status": "closed"})
    assert error_locs(r) == [["query", "status"]]


async def test_incident_acknowledge_and_resolve_close_it_once(
    gateway: Gateway, api: httpx.AsyncClient, stored: None
) -> None:
    before = datetime.now(UTC)
    r = await api.post("/api/v1/incidents/1/acknowledge", json={"note": "  balances checked  "})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["closed_note"]) == ("acknowledged", "balances checked")
    assert before <= datetime.fromisoformat(body["closed_at"]) <= datetime.now(UTC)
    row = await incident_row(gateway, 1)
    closed_at = datetime.fromisoformat(body["closed_at"])
    assert (row.status, row.closed_note, row.closed_at) == (
        "acknowledged",
        "balances checked",
        closed_at,
    )
    # Closed once and for good: neither action applies again, and the note is kept.
    for action in ("acknowledge", "resolve"):
        r = await api.post(f"/api/v1/incidents/1/{action}", json={"note": "again"})
        assert r.status_code == 409, r.text
        assert r.json()["detail"] == (
            f"incident 1 is already acknowledged (at {closed_at.isoformat()}): only an "
            "open incident can be acknowledged or resolved"
        )
    assert (await incident_row(gateway, 1)).closed_note == "balances checked"
    r = await api.post("/api/v1/incidents/2/resolve", json={"note": "order was manual"})
    assert r.status_code == 200 and r.json()["status"] == "resolved"
    # What the execution service polls: acct-a has no open incident left.
    assert (await get(api, "incidents", account="acct-a", status="open"))["items"] == []
    r = await api.post("/api/v1/incidents/3/resolve", json={"note": "x"})
    assert r.status_code == 409 and "already resolved" in r.json()["detail"]


async def test_incident_concurrent_acknowledgements_one_wins(
    gateway: Gateway, api: httpx.AsyncClient, stored: None
) -> None:
    responses = await asyncio.gather(
        *(
            api.post(f"/api/v1/incidents/1/{action}", json={"note": f"by {action}"})
            for action in ("acknowledge", "resolve", "acknowledge", "resolve")
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409, 409], [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    row = await incident_row(gateway, 1)
    assert (row.status, row.closed_note) == (winner["status"], winner["closed_note"])


async def test_incident_unknown_is_404_and_bad_note_is_422(
    api: httpx.AsyncClient, stored: None
) -> None:
    for method, path in [
        ("GET", "/api/v1/incidents/99"),
        ("POST", "/api/v1/incidents/99/acknowledge"),
        ("POST", "/api/v1/incidents/99/resolve"),
    ]:
        r = await api.request(method, path, json={"note": "n"})
        assert r.status_code == 404, (method, path)
        assert r.json()["detail"] == "incident 99 not found: list them at /api/v1/incidents"
    for body, loc in [
        ({}, ["body", "note"]),
        ({"note": ""}, ["body", "note"]),
        ({"note": "   "}, ["body", "note"]),
        ({"note": "x" * 2_001}, ["body", "note"]),
        ({"note": "ok", "status": "resolved"}, ["body", "status"]),
    ]:
        r = await api.post("/api/v1/incidents/1/acknowledge", json=body)
        assert error_locs(r) == [loc], body
    r = await api.post("/api/v1/incidents/one/resolve", json={"note": "n"})
    assert error_locs(r) == [["path", "incident_id"]]
    assert (await get(api, "incidents/1"))["status"] == "open"


# --------------------------------------------------------------------------- equity


@dataclass
class Day:
    midnight: datetime
    snapshots: list[EquitySnapshotRow]


@pytest.fixture
async def equity_day(gateway: Gateway, stored: None) -> Day:
    """Snapshots of acct-a around today's midnight UTC; the last two are today's."""
    midnight = trading_day_start(datetime.now(UTC))
    snapshots = [
        snapshot(midnight - timedelta(days=2), "1000", "0", D("0")),
        snapshot(midnight - timedelta(hours=1), "1100", "10.5", D("5E-2")),
        snapshot(midnight, "990", "12.25", D("0.1")),
        # The same instant as the one before: the one stored later is the latest.
        snapshot(midnight, "1000.3", "13.000000000000000001", D("0.09")),
    ]
    await store(gateway, snapshots)
    return Day(midnight, snapshots)


async def test_equity_summary_is_latest_today_pnl_and_max_drawdown(
    api: httpx.AsyncClient, equity_day: Day
) -> None:
    body = await get(api, "accounts/acct-a/equity")
    if trading_day_start(datetime.now(UTC)) != equity_day.midnight:
        pytest.skip("the UTC day changed during the test")
    assert body["account"] == "acct-a" and body["next_after"] is None
    assert [s["id"] for s in body["items"]] == [1, 2, 3, 4]
    assert body["items"][1]["drawdown"] == "0.05"
    assert body["items"][3] == {
        "id": 4,
        "at": equity_day.midnight.isoformat().replace("+00:00", "Z"),
        "currency": "USDT",
        "equity": "1000.3",
        "cash": "1000.3",
        "positions_value": "0",
        "realized_pnl": "13.000000000000000001",
        "unrealized_pnl": "0",
        "fees": "0",
        "drawdown": "0.09",
    }
    # Today's realized PnL: 13.000000000000000001 - 10.5, exactly. The deepest drawdown
    # is 0.1: stored as text on SQLite, "5E-2" would sort above it as a string.
    assert body["summary"] == {
        "at": equity_day.midnight.isoformat().replace("+00:00", "Z"),
        "currency": "USDT",
        "equity": "1000.3",
        "realized_pnl_today": "2.500000000000000001",
        "max_drawdown": "0.1",
    }


async def test_equity_window_and_pages_leave_the_summary_whole(
    api: httpx.AsyncClient, equity_day: Day
) -> None:
    items, sizes = await all_pages(api, "accounts/acct-a/equity", limit=3)
    assert [s["id"] for s in items] == [1, 2, 3, 4] and sizes == [3, 1]
    items, _ = await all_pages(api, "accounts/acct-a/equity", limit=3, order="desc")
    assert [s["id"] for s in items] == [4, 3, 2, 1]
    window = await get(
        api,
        "accounts/acct-a/equity",
        since=(equity_day.midnight - timedelta(days=1)).isoformat(),
        until=equity_day.midnight.isoformat(),
    )
    assert [s["id"] for s in window["items"]] == [2]
    assert window["summary"]["equity"] == "1000.3"
    page = await get(api, "accounts/acct-a/equity", limit=1, summary="false")
    assert page["summary"] is None and page["next_after"] == 1


async def test_equity_of_account_without_snapshots_has_empty_summary(
    api: httpx.AsyncClient, equity_day: Day
) -> None:
    assert await get(api, "accounts/acct-b/equity") == {
        "account": "acct-b",
        "items": [],
        "next_after": None,
        "summary": {
            "at": None,
            "currency": None,
            "equity": None,
            "realized_pnl_today": None,
            "max_drawdown": None,
        },
    }
    r = await api.get("/api/v1/accounts/nope/equity")
    assert r.status_code == 404
    assert r.json()["detail"] == "trade account 'nope' not found: list them to see the names"


# --------------------------------------------------------------------------- all of them

ENDPOINTS = [
    ("GET", "/api/v1/intents"),
    ("GET", f"/api/v1/intents/{UUID(int=1)}"),
    ("GET", "/api/v1/orders"),
    ("GET", "/api/v1/orders/acct-a/atsE01"),
    ("GET", "/api/v1/fills"),
    ("GET", "/api/v1/positions"),
    ("GET", "/api/v1/incidents"),
    ("GET", "/api/v1/incidents/1"),
    ("POST", "/api/v1/incidents/1/acknowledge"),
    ("POST", "/api/v1/incidents/1/resolve"),
    ("GET", "/api/v1/accounts/acct-a/equity"),
]


async def test_execution_resources_need_the_api_key(gateway: Gateway, stored: None) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key"}):
        async with httpx.AsyncClient(base_url=gateway.http_url, headers=headers) as client:
            for method, path in ENDPOINTS:
                r = await client.request(method, path, json={"note": "n"})
                assert r.status_code == 401, (method, path, r.text)
    async with gateway.api() as api:
        assert (await get(api, "incidents/1"))["status"] == "open"


async def test_openapi_documents_money_as_strings(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as client:
        spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    quantity = schemas["OrderPublic"]["properties"]["quantity"]
    assert quantity["type"] == "string" and "exact decimal" in quantity["description"]
    price = schemas["IntentPublic"]["properties"]["price"]
    assert [branch["type"] for branch in price["anyOf"]] == ["string", "null"]
    paths = spec["paths"]
    assert "409" in paths["/api/v1/incidents/{incident_id}/resolve"]["post"]["responses"]
    assert "404" in paths["/api/v1/accounts/{name}/equity"]["get"]["responses"]


async def test_money_of_38_digits_round_trips(gateway: Gateway, api: httpx.AsyncClient) -> None:
    widest = D("99999999999999999999.999999999999999999")  # NUMERIC(38, 18) at its limit
    await store(gateway, [order("atsE09", "filled", average_price=widest)])
    body = await get(api, "orders/acct-a/atsE09")
    assert body["average_price"] == "99999999999999999999.999999999999999999"
