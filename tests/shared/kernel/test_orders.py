"""Orders: the state machine allows exactly its table, fills keep quantities and
status in step, and client order ids are a pure, exchange-safe function of the decision."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.kernel.orders import (
    CLIENT_ORDER_ID_LENGTH,
    TERMINAL,
    TRANSITIONS,
    Fill,
    InvalidFill,
    InvalidTransition,
    Order,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    apply_fill,
    can_transition,
    client_order_id,
    exit_orders,
    fill_from_totals,
    leg_of,
    transition,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
S = OrderStatus
FILL_STATUSES = {S.PARTIALLY_FILLED, S.FILLED}

ALLOWED = {
    S.NEW: {S.SUBMITTED, S.DENIED},
    S.SUBMITTED: {
        S.ACCEPTED,
        S.REJECTED,
        S.AMBIGUOUS,
        S.PARTIALLY_FILLED,
        S.FILLED,
        S.CANCELED,
        S.EXPIRED,
    },
    S.AMBIGUOUS: {S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED},
    S.ACCEPTED: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED},
    S.PARTIALLY_FILLED: {S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED},
    S.DENIED: set(),
    S.REJECTED: set(),
    S.FILLED: set(),
    S.CANCELED: set(),
    S.EXPIRED: set(),
}
PAIRS = [(a, b) for a in S for b in S]


def order(status: OrderStatus = S.NEW, **kw: Any) -> Order:
    fields: dict[str, object] = {
        "client_order_id": client_order_id("decision-1"),
        "account": "paper-1",
        "symbol": "ETH/BTC",
        "side": OrderSide.BUY,
        "type": OrderType.MARKET,
        "quantity": Decimal("2"),
        "created_at": T0,
        "decision_id": "decision-1",
    }
    fields.update(kw)
    # Tests start orders anywhere in the machine; services only get there by transitions.
    return replace(Order(**fields), status=status)  # type: ignore[arg-type]


def fill(o: Order, quantity: str, price: str, fee: str = "0", n: int = 1, **kw: object) -> Fill:
    return Fill(
        fill_id=f"{o.client_order_id}-{n}",
        client_order_id=o.client_order_id,
        symbol=o.symbol,
        side=o.side,
        quantity=Decimal(quantity),
        price=Decimal(price),
        fee=Decimal(fee),
        at=kw.pop("at", T0 + timedelta(minutes=n)),  # type: ignore[arg-type]
    )


def move(o: Order, to: OrderStatus) -> Order:
    """Reach `to` the way a service would: fills through apply_fill, the rest by transition."""
    if to is S.FILLED:
        return apply_fill(o, fill(o, str(o.remaining), "0.05", n=9))
    if to is S.PARTIALLY_FILLED:
        return apply_fill(o, fill(o, str(o.remaining / 4), "0.05", n=8))
    return transition(o, to, at=T0 + timedelta(minutes=1), reason="because")


def test_transition_table_is_exactly_the_documented_one() -> None:
    assert {k: set(v) for k, v in TRANSITIONS.items()} == ALLOWED
    assert {S.DENIED, S.REJECTED, S.FILLED, S.CANCELED, S.EXPIRED} == TERMINAL


@pytest.mark.parametrize(("start", "to"), [p for p in PAIRS if p[1] in ALLOWED[p[0]]])
def test_transition_allowed_move_succeeds(start: OrderStatus, to: OrderStatus) -> None:
    # A partially filled order has something filled already, as in life.
    o = order(start)
    if start is S.PARTIALLY_FILLED:
        o = apply_fill(replace(o, status=S.ACCEPTED), fill(o, "0.5", "0.05", n=1))
    moved = move(o, to)
    assert moved.status is to
    assert can_transition(start, to)
    assert o.status is start  # the old version is untouched: orders are values


@pytest.mark.parametrize(("start", "to"), [p for p in PAIRS if p[1] not in ALLOWED[p[0]]])
def test_transition_impossible_move_raises_invalid_transition(
    start: OrderStatus, to: OrderStatus
) -> None:
    o = order(start)
    with pytest.raises(InvalidTransition) as e:
        move(o, to)
    assert (e.value.from_status, e.value.to_status) == (start, to)
    assert e.value.client_order_id == o.client_order_id
    assert not can_transition(start, to)


def test_transition_to_a_fill_status_directs_to_apply_fill() -> None:
    with pytest.raises(InvalidTransition, match="apply_fill"):
        transition(order(S.ACCEPTED), S.FILLED, at=T0)


def test_transition_records_time_reason_and_exchange_id() -> None:
    o = transition(order(S.NEW), S.SUBMITTED, at=T0 + timedelta(seconds=1))
    o = transition(o, S.ACCEPTED, at=T0 + timedelta(seconds=2), exchange_order_id="X-77")
    o = transition(o, S.CANCELED, at=T0 + timedelta(seconds=3), reason="sibling filled")
    assert (o.status, o.exchange_order_id, o.reason) == (S.CANCELED, "X-77", "sibling filled")
    assert (o.created_at, o.updated_at) == (T0, T0 + timedelta(seconds=3))


def test_transition_ambiguous_resolves_to_any_state_the_sync_finds_and_never_resends() -> None:
    ambiguous = transition(order(S.SUBMITTED), S.AMBIGUOUS, at=T0, reason="ack timed out")
    for found in (S.ACCEPTED, S.REJECTED, S.CANCELED, S.EXPIRED):
        assert transition(ambiguous, found, at=T0).status is found
    assert apply_fill(ambiguous, fill(ambiguous, "2", "0.05")).status is S.FILLED
    for never in (S.SUBMITTED, S.NEW, S.DENIED):
        with pytest.raises(InvalidTransition):
            transition(ambiguous, never, at=T0)


def test_apply_fill_partial_then_full_averages_price_and_sums_fees() -> None:
    o = order(S.ACCEPTED, quantity=Decimal("3"))
    o = apply_fill(o, fill(o, "1", "0.050", "0.00005", n=1))
    assert (o.status, o.filled_quantity, o.remaining) == (
        S.PARTIALLY_FILLED,
        Decimal(1),
        Decimal(2),
    )
    o = apply_fill(o, fill(o, "2", "0.053", "0.000106", n=2))
    # (1 * 0.050 + 2 * 0.053) / 3 = 0.156 / 3 = 0.052
    assert (o.status, o.filled_quantity, o.average_fill_price) == (
        S.FILLED,
        Decimal(3),
        Decimal("0.052"),
    )
    assert o.fees == Decimal("0.000156")
    assert o.updated_at == T0 + timedelta(minutes=2)


def test_apply_fill_same_fill_twice_books_it_once() -> None:
    o = order(S.ACCEPTED)
    f = fill(o, "1", "0.05")
    once = apply_fill(o, f)
    assert apply_fill(once, f) == once
    assert once.filled_quantity == 1


def test_apply_fill_more_than_remaining_raises_invalid_fill() -> None:
    o = order(S.ACCEPTED)
    with pytest.raises(InvalidFill, match="exceeds"):
        apply_fill(o, fill(o, "2.5", "0.05"))


def test_apply_fill_of_another_order_raises_invalid_fill() -> None:
    o = order(S.ACCEPTED)
    other = order(S.ACCEPTED, client_order_id=client_order_id("decision-2"))
    with pytest.raises(InvalidFill, match="does not belong"):
        apply_fill(o, fill(other, "1", "0.05"))


def test_apply_fill_on_unsent_order_raises_invalid_transition() -> None:
    o = order(S.NEW)
    with pytest.raises(InvalidTransition):
        apply_fill(o, fill(o, "1", "0.05"))


def test_fill_from_totals_derives_the_increment_of_a_cumulative_report() -> None:
    o = order(S.ACCEPTED, quantity=Decimal("3"))
    o = apply_fill(o, fill(o, "1", "0.050", "0.00005"))
    f = fill_from_totals(
        o,
        filled_quantity=Decimal("3"),
        average_price=Decimal("0.052"),
        fees=Decimal("0.000156"),
        at=T0 + timedelta(minutes=5),
        fill_id="report-2",
    )
    assert f is not None
    # 3 * 0.052 - 1 * 0.050 = 0.106 over 2 more -> 0.053; fees 0.000156 - 0.00005
    assert (f.quantity, f.price, f.fee) == (Decimal(2), Decimal("0.053"), Decimal("0.000106"))
    assert apply_fill(o, f).status is S.FILLED
    same = fill_from_totals(
        o,
        filled_quantity=Decimal("1"),
        average_price=Decimal("0.05"),
        fees=Decimal("0.00005"),
        at=T0,
        fill_id="report-1",
    )
    assert same is None


def test_fill_from_totals_smaller_than_booked_raises() -> None:
    o = order(S.ACCEPTED)
    o = apply_fill(o, fill(o, "1", "0.05"))
    with pytest.raises(InvalidFill, match="reconcile"):
        fill_from_totals(
            o,
            filled_quantity=Decimal("0.5"),
            average_price=Decimal("0.05"),
            fees=Decimal(0),
            at=T0,
            fill_id="r",
        )


@pytest.mark.parametrize(
    ("kind", "prices", "problem"),
    [
        (OrderType.LIMIT, {}, "needs limit_price"),
        (OrderType.MARKET, {"limit_price": Decimal(1)}, "takes no limit_price"),
        (OrderType.STOP, {}, "needs stop_price"),
        (OrderType.TAKE_PROFIT, {"limit_price": Decimal(1)}, "limit_price"),
        (OrderType.STOP, {"stop_price": Decimal(-1)}, "must be > 0"),
    ],
)
def test_order_prices_that_do_not_fit_the_type_raise(
    kind: OrderType, prices: dict[str, Decimal], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        order(S.NEW, type=kind, **prices)


def test_order_zero_quantity_or_naive_time_raises() -> None:
    with pytest.raises(ValueError, match="quantity"):
        order(quantity=Decimal(0))
    with pytest.raises(ValueError, match="timezone-aware"):
        order(created_at=datetime(2024, 3, 1, 12, 0))  # noqa: DTZ001 - the point of the test


def test_client_order_id_same_decision_gives_same_id() -> None:
    a = client_order_id("0b7c4f7e-1f0e-4d7a-9c1e-6f1b2a3c4d5e")
    b = client_order_id(UUID("0b7c4f7e-1f0e-4d7a-9c1e-6f1b2a3c4d5e"), "entry")
    assert a == b
    assert len(a) == CLIENT_ORDER_ID_LENGTH == 28


def test_client_order_id_known_values_are_stable() -> None:
    # Pinned: changing the derivation would let a decision redelivered across an
    # upgrade make a second order.
    assert client_order_id("decision-1") == "atsEc80b1397408df7a1b1aa8c6e"
    assert client_order_id("decision-1", "stop_loss") == "atsS33a9ca8af1316d405bedccaf"


def test_client_order_id_differs_by_decision_and_by_leg() -> None:
    ids = {client_order_id(d, leg) for d in ("d1", "d2") for leg in OrderLeg}
    assert len(ids) == 2 * len(OrderLeg)


def test_client_order_id_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        client_order_id("")
    with pytest.raises(ValueError, match="unknown order leg 'hedge'"):
        client_order_id("d1", "hedge")


@given(st.text(min_size=1, max_size=200), st.sampled_from(list(OrderLeg)))
def test_client_order_id_is_exchange_safe_and_names_its_leg(decision: str, leg: OrderLeg) -> None:
    cid = client_order_id(decision, leg)
    assert re.fullmatch(r"[A-Za-z0-9]{28}", cid)
    assert leg_of(cid) is leg


def test_leg_of_foreign_ids_is_none() -> None:
    assert leg_of("web_8f7a6d5c4b3a") is None
    assert leg_of("atsE" + "z" * 24) is None
    assert leg_of("") is None


def test_exit_orders_are_opposite_children_of_the_filled_quantity() -> None:
    entry = order(S.ACCEPTED, correlation_id="corr-1")
    entry = apply_fill(entry, fill(entry, "1.5", "0.05", at=T0 + timedelta(minutes=5)))
    stop, target = exit_orders(
        entry, stop_loss=Decimal("0.048"), take_profit=Decimal("0.055"), at=T0
    )
    assert (stop.type, stop.stop_price, stop.leg) == (
        OrderType.STOP,
        Decimal("0.048"),
        OrderLeg.STOP_LOSS,
    )
    assert (target.type, target.stop_price, target.leg) == (
        OrderType.TAKE_PROFIT,
        Decimal("0.055"),
        OrderLeg.TAKE_PROFIT,
    )
    for child in (stop, target):
        assert child.side is OrderSide.SELL
        assert child.quantity == Decimal("1.5")
        assert child.status is S.NEW
        assert child.parent_id == entry.client_order_id
        assert (child.decision_id, child.correlation_id) == ("decision-1", "corr-1")
        assert child.fills_from == T0
    assert stop.client_order_id == client_order_id("decision-1", OrderLeg.STOP_LOSS)
    only_stop = exit_orders(entry, stop_loss=Decimal("0.048"), take_profit=None, at=T0)
    assert [c.leg for c in only_stop] == [OrderLeg.STOP_LOSS]


def test_exit_orders_before_any_fill_raises() -> None:
    with pytest.raises(ValueError, match="nothing filled"):
        exit_orders(order(S.ACCEPTED), stop_loss=Decimal(1), take_profit=None, at=T0)
