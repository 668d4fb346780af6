"""The paper fill model on crafted candles: every order type, gaps, the same-candle
stop/target rule, and slippage and fees to the last decimal."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.kernel.fills import FillModelConfig, decimal_price, simulate, simulate_oco, slipped
from shared.kernel.orders import (
    Liquidity,
    Order,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    apply_fill,
    client_order_id,
    exit_orders,
    transition,
)
from shared.market.candles import Candle

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)  # the decision candle opens here
DECIDED = T0 + timedelta(minutes=5)  # ... and closes here: the decision is made now
NEXT = DECIDED  # the next candle opens when the decision candle closes
CONFIG = FillModelConfig(
    slippage_bps=Decimal(10), taker_fee=Decimal("0.001"), maker_fee=Decimal("0.0005")
)
B, SELL = OrderSide.BUY, OrderSide.SELL


def candle(o: float, h: float, lo: float, c: float, at: datetime = NEXT) -> Candle:
    return Candle("ETH/BTC", "5m", at, o, h, lo, c, 100.0)


def order(
    side: OrderSide = B,
    kind: OrderType = OrderType.MARKET,
    *,
    quantity: str = "2",
    limit: str | None = None,
    stop: str | None = None,
    leg: OrderLeg = OrderLeg.ENTRY,
    **kw: object,
) -> Order:
    fields: dict[str, object] = {
        "client_order_id": client_order_id("d1", leg),
        "account": "paper",
        "symbol": "ETH/BTC",
        "side": side,
        "type": kind,
        "quantity": Decimal(quantity),
        "created_at": DECIDED,
        "limit_price": Decimal(limit) if limit else None,
        "stop_price": Decimal(stop) if stop else None,
        "status": OrderStatus.ACCEPTED,
        "leg": leg,
        "decision_id": "d1",
    }
    fields.update(kw)
    return Order(**fields)  # type: ignore[arg-type]


def test_simulate_market_buy_fills_at_next_open_slipped_with_taker_fee() -> None:
    decision_candle = candle(0.0500, 0.0510, 0.0495, 0.0505, at=T0)
    o = order(B)
    assert simulate(o, decision_candle, CONFIG) is None  # never on the candle decided on
    f = simulate(o, candle(0.0506, 0.0520, 0.0500, 0.0510), CONFIG)
    assert f is not None
    # 0.0506 * (1 + 10/10000) = 0.0506 * 1.001 = 0.0506506
    assert f.price == Decimal("0.0506506")
    # 0.0506506 * 2 * 0.001 = 0.0001013012
    assert f.fee == Decimal("0.0001013012")
    assert (f.quantity, f.side, f.liquidity, f.at) == (Decimal(2), B, Liquidity.TAKER, NEXT)
    assert (f.client_order_id, f.leg) == (o.client_order_id, OrderLeg.ENTRY)


def test_simulate_market_sell_slips_down() -> None:
    f = simulate(order(SELL), candle(0.0506, 0.0520, 0.0500, 0.0510), CONFIG)
    assert f is not None
    # 0.0506 * 0.999 = 0.0505494; fee 0.0505494 * 2 * 0.001 = 0.0001010988
    assert (f.price, f.fee) == (Decimal("0.0505494"), Decimal("0.0001010988"))


def test_simulate_without_slippage_or_fees_fills_at_the_open_exactly() -> None:
    free = FillModelConfig(slippage_bps=Decimal(0), taker_fee=Decimal(0), maker_fee=Decimal(0))
    f = simulate(order(B), candle(0.05123, 0.052, 0.05, 0.051), free)
    assert f is not None
    assert (f.price, f.fee) == (Decimal("0.05123"), Decimal(0))


def test_simulate_live_order_with_not_before_fills_on_the_same_candle_as_a_backtest() -> None:
    # The service got the decision 1.3 s after the candle closed; it fills on the
    # candle that opened at the close, like the backtest, not one candle later.
    late = order(B, created_at=DECIDED + timedelta(seconds=1.3), not_before=DECIDED)
    assert simulate(late, candle(0.0506, 0.052, 0.05, 0.051), CONFIG) is not None
    no_hint = order(B, created_at=DECIDED + timedelta(seconds=1.3))
    assert simulate(no_hint, candle(0.0506, 0.052, 0.05, 0.051), CONFIG) is None


def test_simulate_limit_buy_not_reached_does_not_fill() -> None:
    assert (
        simulate(
            order(B, OrderType.LIMIT, limit="0.0490"), candle(0.05, 0.051, 0.0495, 0.05), CONFIG
        )
        is None
    )


def test_simulate_limit_buy_crossed_inside_the_candle_fills_at_limit_as_maker() -> None:
    f = simulate(
        order(B, OrderType.LIMIT, limit="0.0490"), candle(0.05, 0.051, 0.0485, 0.0495), CONFIG
    )
    assert f is not None
    # 0.0490 * 2 * 0.0005 = 0.000049
    assert (f.price, f.fee, f.liquidity) == (
        Decimal("0.0490"),
        Decimal("0.000049"),
        Liquidity.MAKER,
    )
    assert f.at == NEXT + timedelta(minutes=5)  # known only when the candle closes


def test_simulate_limit_buy_touched_exactly_fills() -> None:
    f = simulate(
        order(B, OrderType.LIMIT, limit="0.0490"), candle(0.05, 0.051, 0.049, 0.0495), CONFIG
    )
    assert f is not None and f.price == Decimal("0.0490")


def test_simulate_limit_buy_gap_below_fills_at_open_slipped_never_above_limit() -> None:
    f = simulate(
        order(B, OrderType.LIMIT, limit="0.0490"), candle(0.0480, 0.0485, 0.0470, 0.048), CONFIG
    )
    assert f is not None
    # 0.0480 * 1.001 = 0.048048, under the limit; taker: 0.048048 * 2 * 0.001 = 0.000096096
    assert (f.price, f.fee, f.liquidity, f.at) == (
        Decimal("0.048048"),
        Decimal("0.000096096"),
        Liquidity.TAKER,
        NEXT,
    )
    # An open just under the limit: slippage would cross it, the limit caps the price.
    capped = simulate(
        order(B, OrderType.LIMIT, limit="0.0490"), candle(0.04899, 0.0491, 0.0488, 0.049), CONFIG
    )
    assert capped is not None and capped.price == Decimal("0.0490")


def test_simulate_limit_sell_crossed_and_gapped() -> None:
    inside = simulate(
        order(SELL, OrderType.LIMIT, limit="0.0520"), candle(0.05, 0.0525, 0.0498, 0.051), CONFIG
    )
    assert inside is not None
    assert (inside.price, inside.liquidity) == (Decimal("0.0520"), Liquidity.MAKER)
    gap = simulate(
        order(SELL, OrderType.LIMIT, limit="0.0520"), candle(0.0530, 0.054, 0.0525, 0.053), CONFIG
    )
    assert gap is not None
    # 0.0530 * 0.999 = 0.0529470, above the limit
    assert (gap.price, gap.liquidity) == (Decimal("0.052947"), Liquidity.TAKER)
    missed = simulate(
        order(SELL, OrderType.LIMIT, limit="0.0520"), candle(0.05, 0.0519, 0.049, 0.05), CONFIG
    )
    assert missed is None


def test_simulate_stop_loss_crossed_inside_the_candle_fills_at_stop_slipped() -> None:
    stop = order(SELL, OrderType.STOP, stop="0.0480", leg=OrderLeg.STOP_LOSS)
    f = simulate(stop, candle(0.0500, 0.0505, 0.0470, 0.0490), CONFIG)
    assert f is not None
    # 0.0480 * 0.999 = 0.047952; fee 0.047952 * 2 * 0.001 = 0.000095904
    assert (f.price, f.fee, f.liquidity) == (
        Decimal("0.047952"),
        Decimal("0.000095904"),
        Liquidity.TAKER,
    )
    assert (f.at, f.leg) == (NEXT + timedelta(minutes=5), OrderLeg.STOP_LOSS)
    assert simulate(stop, candle(0.0500, 0.0505, 0.0481, 0.0490), CONFIG) is None


def test_simulate_stop_loss_gapped_through_fills_at_the_open() -> None:
    stop = order(SELL, OrderType.STOP, stop="0.0480", leg=OrderLeg.STOP_LOSS)
    f = simulate(stop, candle(0.0450, 0.0460, 0.0440, 0.0455), CONFIG)
    assert f is not None
    # worse than the stop: 0.0450 * 0.999 = 0.044955
    assert (f.price, f.at) == (Decimal("0.044955"), NEXT)


def test_simulate_buy_stop_triggers_on_the_high_and_on_a_gap_up() -> None:
    breakout = order(B, OrderType.STOP, stop="0.0520")
    inside = simulate(breakout, candle(0.0510, 0.0525, 0.0505, 0.052), CONFIG)
    assert inside is not None and inside.price == Decimal("0.0520520")  # 0.0520 * 1.001
    gap = simulate(breakout, candle(0.0530, 0.0535, 0.0528, 0.053), CONFIG)
    assert gap is not None and gap.price == Decimal("0.0530530")  # 0.0530 * 1.001
    assert simulate(breakout, candle(0.0510, 0.0519, 0.05, 0.051), CONFIG) is None


def test_simulate_take_profit_fills_at_target_as_maker_or_at_a_better_open() -> None:
    target = order(SELL, OrderType.TAKE_PROFIT, stop="0.0550", leg=OrderLeg.TAKE_PROFIT)
    inside = simulate(target, candle(0.0540, 0.0556, 0.0538, 0.0545), CONFIG)
    assert inside is not None
    # 0.0550 * 2 * 0.0005 = 0.000055
    assert (inside.price, inside.fee, inside.liquidity) == (
        Decimal("0.0550"),
        Decimal("0.000055"),
        Liquidity.MAKER,
    )
    gap = simulate(target, candle(0.0560, 0.0565, 0.0552, 0.056), CONFIG)
    assert gap is not None
    # 0.0560 * 0.999 = 0.055944, above the target
    assert (gap.price, gap.at, gap.liquidity) == (Decimal("0.055944"), NEXT, Liquidity.TAKER)


def bracket() -> tuple[Order, Order]:
    stop = order(SELL, OrderType.STOP, stop="0.0480", leg=OrderLeg.STOP_LOSS)
    target = order(SELL, OrderType.TAKE_PROFIT, stop="0.0550", leg=OrderLeg.TAKE_PROFIT)
    return stop, target


def test_simulate_oco_both_crossed_in_one_candle_assumes_the_stop_first() -> None:
    stop, target = bracket()
    wide = candle(0.0500, 0.0560, 0.0470, 0.0510)
    for group in ([stop, target], [target, stop]):
        f = simulate_oco(group, wide, CONFIG)
        assert f is not None
        assert (f.leg, f.price) == (OrderLeg.STOP_LOSS, Decimal("0.047952"))


def test_simulate_oco_gap_through_the_target_takes_the_target_at_the_open() -> None:
    stop, target = bracket()
    # Opens above the target, then falls through the stop: the open came first.
    f = simulate_oco([stop, target], candle(0.0560, 0.0565, 0.0470, 0.0475), CONFIG)
    assert f is not None
    assert (f.leg, f.price, f.at) == (OrderLeg.TAKE_PROFIT, Decimal("0.055944"), NEXT)


def test_simulate_oco_only_one_crossed_fills_that_one_or_none() -> None:
    stop, target = bracket()
    up = simulate_oco([stop, target], candle(0.0500, 0.0556, 0.0490, 0.0550), CONFIG)
    assert up is not None and up.leg is OrderLeg.TAKE_PROFIT
    assert simulate_oco([stop, target], candle(0.05, 0.051, 0.049, 0.05), CONFIG) is None


def test_simulate_exits_see_the_rest_of_a_market_entrys_candle() -> None:
    entry_candle = candle(0.0500, 0.0502, 0.0470, 0.0490)
    entry = order(B)
    entry_fill = simulate(entry, entry_candle, CONFIG)
    assert entry_fill is not None and entry_fill.at == NEXT
    entry = apply_fill(entry, entry_fill)
    exits = [
        transition(transition(x, OrderStatus.SUBMITTED, at=NEXT), OrderStatus.ACCEPTED, at=NEXT)
        for x in exit_orders(
            entry,
            stop_loss=Decimal("0.0480"),
            take_profit=Decimal("0.0550"),
            at=entry_fill.at,
            not_before=entry_fill.at,
        )
    ]
    # Filled at the open, then the candle fell through the stop: stopped out in it.
    f = simulate_oco(exits, entry_candle, CONFIG)
    assert f is not None and f.leg is OrderLeg.STOP_LOSS


def test_simulate_exits_of_a_limit_entry_wait_for_the_next_candle() -> None:
    entry_candle = candle(0.0500, 0.0502, 0.0470, 0.0490)
    entry = order(B, OrderType.LIMIT, limit="0.0490")
    entry_fill = simulate(entry, entry_candle, CONFIG)
    assert entry_fill is not None
    filled = apply_fill(entry, entry_fill)
    (stop,) = exit_orders(filled, stop_loss=Decimal("0.0480"), take_profit=None, at=entry_fill.at)
    stop = replace(stop, status=OrderStatus.ACCEPTED)
    # The limit filled somewhere inside the candle: whether the low came after it is
    # unknown, so the stop is judged from the next candle on.
    assert simulate(stop, entry_candle, CONFIG) is None
    later = candle(0.0485, 0.0490, 0.0475, 0.048, at=NEXT + timedelta(minutes=5))
    assert simulate(stop, later, CONFIG) is not None


def test_simulate_partially_filled_order_fills_its_remainder() -> None:
    o = order(B, quantity="3", status=OrderStatus.PARTIALLY_FILLED, filled_quantity=Decimal("1"))
    f = simulate(o, candle(0.05, 0.051, 0.049, 0.05), CONFIG)
    assert f is not None and f.quantity == 2


def test_simulate_expired_order_does_not_fill() -> None:
    o = order(B, OrderType.LIMIT, limit="0.0490", expires_at=NEXT)
    assert simulate(o, candle(0.05, 0.051, 0.0485, 0.05), CONFIG) is None


def test_simulate_fill_id_is_stable_per_order_and_candle() -> None:
    o, c = order(B), candle(0.05, 0.051, 0.049, 0.05)
    a, b = simulate(o, c, CONFIG), simulate(o, c, CONFIG)
    assert a is not None and b is not None and a.fill_id == b.fill_id
    later = simulate(o, replace(c, open_time=NEXT + timedelta(minutes=5)), CONFIG)
    assert later is not None and later.fill_id != a.fill_id


def test_simulate_wrong_symbol_or_closed_order_raises() -> None:
    other = Candle("BTC/USDT", "5m", NEXT, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="candle of BTC/USDT"):
        simulate(order(B), other, CONFIG)
    with pytest.raises(ValueError, match="is new"):
        simulate(order(B, status=OrderStatus.NEW), candle(0.05, 0.051, 0.049, 0.05), CONFIG)


def test_fill_model_config_refuses_bad_rates_and_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        FillModelConfig(slippage_bps=Decimal(-1))
    with pytest.raises(ValidationError):
        FillModelConfig(taker_fee=Decimal("0.5"))
    with pytest.raises(ValidationError):
        FillModelConfig.model_validate({"slipage_bps": 3})
    assert FillModelConfig(maker_fee=Decimal("-0.0001")).maker_fee < 0  # a rebate


def test_decimal_price_reads_floats_as_written() -> None:
    assert decimal_price(0.05123) == Decimal("0.05123")
    assert decimal_price(1e-05) == Decimal("0.00001")


prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100000), places=4)


@given(prices, st.sampled_from([B, SELL]), st.integers(min_value=0, max_value=1000))
def test_slipped_price_is_never_in_the_traders_favour(
    reference: Decimal, side: OrderSide, bps: int
) -> None:
    moved = slipped(reference, side, FillModelConfig(slippage_bps=Decimal(bps)))
    assert moved >= reference if side is B else moved <= reference


@given(
    st.lists(st.floats(min_value=0.01, max_value=100, allow_nan=False), min_size=4, max_size=4),
    st.sampled_from(list(OrderType)),
    st.sampled_from([B, SELL]),
    st.floats(min_value=0.01, max_value=100),
)
def test_simulate_fill_price_stays_within_the_candle_and_its_slippage(
    ohlc: list[float], kind: OrderType, side: OrderSide, level: float
) -> None:
    o_, c_ = ohlc[0], ohlc[3]
    c = candle(o_, max(ohlc), min(ohlc), c_)
    lvl = str(decimal_price(level))
    o = order(
        side,
        kind,
        limit=lvl if kind is OrderType.LIMIT else None,
        stop=lvl if kind in (OrderType.STOP, OrderType.TAKE_PROFIT) else None,
    )
    f = simulate(o, c, CONFIG)
    if kind is OrderType.MARKET:
        assert f is not None
    if f is None:
        return
    low, high = decimal_price(c.low), decimal_price(c.high)
    assert low * Decimal("0.999") <= f.price <= high * Decimal("1.001")
    if kind is OrderType.LIMIT:
        assert f.price <= Decimal(lvl) if side is B else f.price >= Decimal(lvl)
    assert f.fee == f.price * f.quantity * (
        CONFIG.maker_fee if f.liquidity is Liquidity.MAKER else CONFIG.taker_fee
    )


@given(
    st.lists(st.floats(min_value=0.01, max_value=100, allow_nan=False), min_size=4, max_size=4),
    st.sampled_from([OrderType.LIMIT, OrderType.STOP, OrderType.TAKE_PROFIT]),
    st.sampled_from([B, SELL]),
    st.integers(min_value=0, max_value=3),
    st.sampled_from([-1, 0, 1]),
)
def test_simulate_fills_exactly_when_the_candle_reaches_the_level(
    ohlc: list[float], kind: OrderType, side: OrderSide, pick: int, nudge: int
) -> None:
    c = candle(ohlc[0], max(ohlc), min(ohlc), ohlc[3])
    # Levels on and a hair either side of the candle's own prices: the boundaries.
    base = decimal_price(ohlc[pick])
    level = base + nudge * Decimal("1e-12")
    if level <= 0:
        return
    o = order(
        side,
        kind,
        limit=str(level) if kind is OrderType.LIMIT else None,
        stop=str(level) if kind is not OrderType.LIMIT else None,
    )
    rising = (side is B) if kind is OrderType.STOP else (side is SELL)
    reached = decimal_price(c.high) >= level if rising else decimal_price(c.low) <= level
    assert (simulate(o, c, CONFIG) is not None) == reached
