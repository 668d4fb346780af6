"""The execution service against a real gateway, with the paper exchange on shipped data."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from shared.db.models import FillRow, OrderIntentRow, OrderRow, PositionRow
from shared.events import DecisionEvent
from tests.conftest import eventually
from tests.execution.conftest import STEP, Desk, read_rows

FEE = Decimal("0.001")


async def count(desk: Desk, model: type) -> int:
    async with desk.store.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_buy_then_sell_books_the_trade_by_hand_arithmetic(desk: Desk) -> None:
    rows = read_rows()
    # Decide on candles 10 and 20; each fills at the open of the next candle.
    buy_on, sell_on = rows[10], rows[20]
    await desk.decide("BUY", buy_on["time"], entry=buy_on["close"])
    events = await desk.order_events(2)
    assert [e.payload.status for e in events] == ["submitted", "filled"]
    # 0.01 BTC of ETH at the decision's price, floored to the 0.001 ETH step.
    quantity = (Decimal("0.01") / buy_on["close"]).quantize(Decimal("0.001"), rounding="ROUND_DOWN")
    buy_price = rows[11]["open"]
    filled = events[1].payload
    assert filled.quantity == quantity and filled.price == buy_price
    assert filled.trading_group == "desk" and filled.trade_account == "acct"
    assert events[1].trace.correlation_id is not None

    await desk.decide("SELL", sell_on["time"])
    events = await desk.order_events(4)
    sold = events[3].payload
    assert sold.status == "filled" and sold.side == "sell"
    sell_price = rows[21]["open"]
    assert sold.price == sell_price and sold.quantity == quantity
    buy_cost = quantity * buy_price * (1 + FEE)
    proceeds = quantity * sell_price * (1 - FEE)
    extra = sold.model_extra or {}
    assert Decimal(extra["realized_pnl"]) == proceeds - buy_cost
    assert Decimal(extra["equity"]) == Decimal(1) - buy_cost + proceeds

    async with desk.store.sessions() as s:
        position = await s.get(PositionRow, ("acct", "ETH/BTC"))
        assert position is not None and position.quantity == 0
        assert position.realized_pnl == proceeds - buy_cost
        fills = (await s.scalars(select(FillRow).order_by(FillRow.id))).all()
        assert [(f.side, f.quantity, f.price) for f in fills] == [
            ("buy", quantity, buy_price),
            ("sell", quantity, sell_price),
        ]
        assert fills[0].fee == quantity * buy_price * FEE
    assert await count(desk, OrderIntentRow) == 2
    assert await count(desk, OrderRow) == 2


async def test_a_decision_delivered_twice_makes_one_order(desk: Desk) -> None:
    rows = read_rows()
    decision = await desk.decide("BUY", rows[10]["time"], entry=rows[10]["close"])
    events = await desk.order_events(2)
    # The gateway delivers at least once: hand the same delivery over again.
    async with desk.gateway.api() as api:
        stored = (await api.get("/api/v1/events", params={"category": "decision"})).json()
    (item,) = [i for i in stored["items"] if i["id"] == str(decision)]
    await desk.service.on_decision(DecisionEvent.model_validate(item))
    await desk.service.sync_now()
    assert await count(desk, OrderIntentRow) == 1
    assert await count(desk, OrderRow) == 1
    assert await count(desk, FillRow) == 1
    assert len(desk.orders) == len(events) == 2
    assert await desk.service.accounts["acct"].adapter.open_orders() == []


async def test_a_risk_rejection_is_persisted_and_published(desk: Desk) -> None:
    rows = read_rows()
    # Nothing is held: a SELL has nothing to close.
    await desk.decide("SELL", rows[10]["time"])
    (event,) = await desk.order_events(1)
    assert event.payload.status == "denied"
    assert event.payload.reason == "nothing_to_close"
    async with desk.store.sessions() as s:
        intent = (await s.scalars(select(OrderIntentRow))).one()
    assert intent.status == "rejected" and intent.reason == "nothing_to_close"
    assert intent.checks, "the risk engine's trail is stored"
    assert await count(desk, OrderRow) == 0


async def test_stop_loss_fills_on_the_candle_that_crosses_it(desk: Desk) -> None:
    rows = read_rows()
    i = 10
    entry_open = rows[i + 1]["open"]
    # A stop just under the entry's fill: the first later candle whose low reaches it.
    stop = (entry_open * Decimal("0.995")).quantize(Decimal("0.00000001"))
    hit = next(j for j in range(i + 1, len(rows)) if rows[j]["low"] <= stop)
    await desk.decide("BUY", rows[i]["time"], entry=rows[i]["close"], stop_loss=str(stop))
    await desk.order_events(2)
    # Time moves with decisions on a replay: a HOLD-free decision far later moves it.
    await desk.decide("BUY", rows[hit + 2]["time"], entry=rows[hit + 2]["close"])

    def stopped() -> bool:
        return any(
            e.payload.status == "filled" and (e.payload.model_extra or {}).get("leg") == "stop_loss"
            for e in desk.orders
        )

    await eventually(stopped, message="the stop-loss fill")
    (stop_fill,) = [
        e
        for e in desk.orders
        if e.payload.status == "filled" and (e.payload.model_extra or {}).get("leg") == "stop_loss"
    ]
    open_ = rows[hit]["open"]
    assert stop_fill.payload.price == (open_ if open_ <= stop else stop)
    assert STEP  # the 5-minute step the CSV is on
