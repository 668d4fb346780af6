"""Portfolio accounting checked by hand arithmetic: cash, positions, fees, realized
and unrealized PnL, equity, drawdown, and the record the risk engine reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.kernel.fills import FillModelConfig, simulate, simulate_oco
from shared.kernel.orders import (
    Fill,
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
from shared.kernel.portfolio import InsufficientCash, Oversold, Portfolio
from shared.kernel.strategy import Outcome, Position
from shared.market.candles import Candle

DAY1 = datetime(2024, 3, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
BTC, ETH = "BTC/USDT", "ETH/USDT"
D = Decimal
_seq = iter(range(1_000_000))


def fill(
    side: OrderSide,
    symbol: str,
    quantity: str,
    price: str,
    fee: str,
    at: datetime,
    *,
    leg: OrderLeg | None = None,
    order: str | None = None,
    withheld: str = "0",
) -> Fill:
    n = next(_seq)
    return Fill(
        fill_id=f"f{n}",
        client_order_id=order or f"o{n}",
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        price=D(price),
        fee=D(fee),
        at=at,
        leg=leg,
        withheld=D(withheld),
    )


def buy(*a: object, **kw: object) -> Fill:
    return fill(OrderSide.BUY, *a, **kw)  # type: ignore[arg-type]


def sell(*a: object, **kw: object) -> Fill:
    return fill(OrderSide.SELL, *a, **kw)  # type: ignore[arg-type]


def test_portfolio_multi_trade_scenario_matches_hand_arithmetic() -> None:
    p = Portfolio("paper-1", D(10000), currency="USDT")
    t = DAY1 + timedelta(hours=9)

    # Buy 0.2 BTC at 20000, fee 4: costs 4004.
    p.apply(buy(BTC, "0.2", "20000", "4", t))
    # Add 0.1 BTC at 23000, fee 2.3: costs 2302.3.
    booked = p.apply(buy(BTC, "0.1", "23000", "2.3", t + timedelta(hours=1)))
    # Buy 2 ETH at 1500, fee 3: costs 3003.
    p.apply(buy(ETH, "2", "1500", "3", t + timedelta(hours=2)))

    assert p.cash == D("690.7")  # 10000 - 4004 - 2302.3 - 3003
    btc = p.position(BTC)
    assert btc is not None and booked.position == btc
    assert btc.quantity == D("0.3")
    assert btc.average_entry_price == D(21000)  # (4000 + 2300) / 0.3
    assert (btc.cost_basis, btc.entry_fees, btc.opened_at) == (D("6306.3"), D("6.3"), t)
    assert p.open_positions == 2

    # Marked: BTC 22000, ETH 1400 -> 6600 + 2800 = 9400; equity 690.7 + 9400.
    p.mark_all({BTC: D(22000), ETH: D(1400)})
    assert p.positions_value() == D(9400)
    assert p.equity() == D("10090.7")
    assert p.unrealized_pnl(BTC) == D("293.7")  # 6600 - 6306.3
    assert p.unrealized_pnl(ETH) == D(-203)  # 2800 - 3003
    first = p.snapshot(t + timedelta(hours=3))
    assert (first.equity, first.peak_equity, first.drawdown) == (D("10090.7"), D("10090.7"), D(0))

    # A drop: BTC 20000, ETH 1300 -> 6000 + 2600; equity 9290.7, 800 under the peak.
    p.mark_all({BTC: D(20000), ETH: D(1300)})
    dip = p.snapshot(t + timedelta(hours=4))
    assert dip.equity == D("9290.7")
    assert dip.drawdown == D(800) / D("10090.7")
    assert p.max_drawdown == dip.drawdown
    assert p.peak_equity == D("10090.7")

    # Take profit on a third of the BTC: 0.1 at 25000, fee 2.5.
    # Proceeds 2500 - 2.5 = 2497.5; cost 6306.3 / 3 = 2102.1; PnL 395.4.
    tp = p.apply(sell(BTC, "0.1", "25000", "2.5", t + timedelta(hours=5), leg=OrderLeg.TAKE_PROFIT))
    trade = tp.closed_trade
    assert trade is not None
    assert (trade.proceeds, trade.cost, trade.pnl) == (D("2497.5"), D("2102.1"), D("395.4"))
    assert trade.fees == D("4.6")  # 6.3 / 3 of the entry fees + 2.5
    assert (trade.entry_price, trade.exit_price, trade.opened_at) == (D(21000), D(25000), t)
    assert trade.return_pct == pytest.approx(395.4 / 2102.1 * 100)
    assert tp.position is not None
    assert (tp.position.quantity, tp.position.cost_basis, tp.position.entry_fees) == (
        D("0.2"),
        D("4204.2"),
        D("4.2"),
    )
    assert p.cash == D("3188.2")  # 690.7 + 2497.5

    # Stopped out of ETH: 2 at 1350, fee 2.7 -> proceeds 2697.3, cost 3003, PnL -305.7.
    stop_at = t + timedelta(hours=6)
    so = p.apply(sell(ETH, "2", "1350", "2.7", stop_at, leg=OrderLeg.STOP_LOSS))
    assert so.closed_trade is not None and so.closed_trade.pnl == D("-305.7")
    assert so.position is None and p.position(ETH) is None
    assert p.cash == D("5885.5")  # 3188.2 + 2697.3
    assert p.realized_pnl == D("89.7")  # 395.4 - 305.7
    assert p.fees_paid == D("14.5")  # 4 + 2.3 + 3 + 2.5 + 2.7

    # BTC at 24000: 0.2 * 24000 = 4800; equity 10685.5 = 10000 + 89.7 + (4800 - 4204.2).
    p.mark(BTC, D(24000))
    assert p.unrealized_pnl() == D("595.8")
    assert p.equity() == D("10685.5") == p.initial_cash + p.realized_pnl + p.unrealized_pnl()
    assert p.snapshot(t + timedelta(hours=7)).drawdown == 0

    # Next day, exit the rest: 0.2 at 21000, fee 4.2 -> 4195.8 - 4204.2 = -8.4.
    exit_at = DAY2 + timedelta(hours=10)
    p.apply(sell(BTC, "0.2", "21000", "4.2", exit_at, leg=OrderLeg.EXIT))
    assert p.cash == D("10081.3") == p.equity()
    assert p.realized_pnl == D("81.3") == sum(tr.pnl for tr in p.closed_trades)
    assert p.unrealized_pnl() == 0 and p.open_positions == 0
    assert p.fees_paid == D("18.7")

    # The record the risk engine reads.
    assert p.realized_pnl_since(DAY1) == D("81.3")
    assert p.realized_pnl_since(DAY2) == D("-8.4")
    assert p.realized_pnl_since(DAY1, ETH) == D("-305.7")
    assert p.trades_opened_since(DAY1) == 3
    assert p.trades_opened_since(DAY1, BTC) == 2
    assert p.trades_opened_since(DAY2) == 0
    assert [tr.symbol for tr in p.stop_outs_since(DAY1)] == [ETH]
    assert p.stop_outs_since(DAY2) == []
    assert p.last_loss_at() == exit_at
    assert p.last_loss_at(ETH) == stop_at
    assert p.last_trade_at(BTC) == exit_at
    assert p.last_trade_at() == exit_at
    assert dict(p.last_trade_times) == {BTC: exit_at, ETH: stop_at}
    assert [tr.won for tr in p.closed_trades] == [True, False, False]
    assert [len(p.closed_trades_since(d)) for d in (DAY1, DAY2)] == [3, 1]


def test_portfolio_same_fill_twice_is_booked_once() -> None:
    p = Portfolio("a", D(1000))
    f = buy(BTC, "0.01", "20000", "0.2", DAY1)
    assert not p.apply(f).duplicate
    again = p.apply(f)
    assert again.duplicate and again.position == p.position(BTC)
    assert p.cash == D("799.8")  # 1000 - 200 - 0.2, once
    assert p.fees_paid == D("0.2")


def test_portfolio_partial_fills_of_one_order_count_as_one_trade() -> None:
    p = Portfolio("a", D(1000))
    p.apply(buy(BTC, "0.01", "20000", "0.2", DAY1, order="entry-1"))
    p.apply(buy(BTC, "0.01", "20100", "0.201", DAY1 + timedelta(minutes=1), order="entry-1"))
    assert p.trades_opened_since(DAY1) == 1
    held = p.position(BTC)
    assert held is not None and held.average_entry_price == D(20050)


def test_portfolio_sell_more_than_held_raises_oversold_and_changes_nothing() -> None:
    p = Portfolio("a", D(1000))
    p.apply(buy(BTC, "0.01", "20000", "0", DAY1))
    too_much = sell(BTC, "0.02", "20000", "0", DAY1)
    error = p.can_apply(too_much)
    assert isinstance(error, Oversold) and error.code == "oversold"
    with pytest.raises(Oversold, match="long-only"):
        p.apply(too_much)
    with pytest.raises(Oversold):
        p.apply(sell(ETH, "1", "1500", "0", DAY1))
    assert (p.cash, p.closed_trades) == (D(800), ())
    held = p.position(BTC)
    assert held is not None and held.quantity == D("0.01")


def test_portfolio_buy_beyond_cash_raises_insufficient_cash() -> None:
    p = Portfolio("a", D(1000))
    # 0.05 * 20000 = 1000 exactly, but the fee of 1 makes it 1001.
    f = buy(BTC, "0.05", "20000", "1", DAY1)
    error = p.can_apply(f)
    assert isinstance(error, InsufficientCash) and error.code == "insufficient_cash"
    with pytest.raises(InsufficientCash, match="1001"):
        p.apply(f)
    assert p.cash == D(1000) and p.open_positions == 0
    assert p.can_apply(buy(BTC, "0.05", "20000", "0", DAY1)) is None  # exactly all the cash


def test_portfolio_trades_closed_out_of_order_are_kept_by_time() -> None:
    p = Portfolio("a", D(10000))
    p.apply(buy(BTC, "0.2", "20000", "0", DAY1))
    late = DAY1 + timedelta(hours=5)
    early = DAY1 + timedelta(hours=2)
    p.apply(sell(BTC, "0.1", "21000", "0", late))
    p.apply(sell(BTC, "0.1", "19000", "0", early))  # reported late by the sync
    assert [t.closed_at for t in p.closed_trades] == [early, late]
    assert p.realized_pnl_since(DAY1 + timedelta(hours=3)) == D(100)
    assert p.last_loss_at(BTC) == early


def test_portfolio_views_for_strategies() -> None:
    p = Portfolio("a", D(10000))
    p.apply(buy(BTC, "0.2", "20000", "4", DAY1))
    assert p.strategy_positions() == [Position(BTC, D("0.2"), D(20000), DAY1)]
    closed = p.apply(sell(BTC, "0.2", "21000", "4.2", DAY2)).closed_trade
    assert closed is not None
    # 4200 - 4.2 - 4004 = 191.8
    assert closed.as_outcome("sma_cross") == Outcome(
        BTC, D("191.8"), closed.return_pct, DAY2, "sma_cross"
    )


def test_portfolio_unmarked_symbol_is_valued_at_its_latest_fill_price() -> None:
    p = Portfolio("a", D(1000))
    p.apply(buy(BTC, "0.01", "20000", "0.2", DAY1 + timedelta(minutes=1)))
    p.apply(buy(BTC, "0.01", "21000", "0.21", DAY1 + timedelta(minutes=2)))
    p.apply(buy(BTC, "0.01", "19000", "0.19", DAY1))  # older, reported late
    assert p.price(BTC) == D(21000)
    # cash 1000 - 200.2 - 210.21 - 190.19 = 399.4, plus 0.03 * 21000
    assert p.equity() == D("1029.4")
    p.mark(BTC, D(22000))
    assert p.equity() == D("1059.4")
    with pytest.raises(ValueError, match="> 0"):
        p.mark(BTC, D(0))


def test_portfolio_resumed_peak_sets_the_drawdown() -> None:
    p = Portfolio("a", D(900), peak_equity=D(1000))
    assert p.drawdown() == D("0.1")
    assert p.snapshot(DAY1).drawdown == D("0.1")


def test_kernel_decision_to_stop_out_round_trip_by_hand() -> None:
    """Orders, the fill model and the books together, as a backtest runs them."""
    config = FillModelConfig(slippage_bps=D(10), taker_fee=D("0.001"), maker_fee=D("0.0005"))
    p = Portfolio("paper", D(1))
    decided = DAY1 + timedelta(minutes=5)

    def bar(minute: int, o: float, h: float, lo: float, c: float) -> Candle:
        return Candle("ETH/BTC", "5m", DAY1 + timedelta(minutes=minute), o, h, lo, c, 10.0)

    entry = Order(
        client_order_id=client_order_id("d1"),
        account="paper",
        symbol="ETH/BTC",
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        quantity=D(10),
        created_at=decided,
        decision_id="d1",
    )
    entry = transition(entry, OrderStatus.SUBMITTED, at=decided)
    entry = transition(entry, OrderStatus.ACCEPTED, at=decided)
    f1 = simulate(entry, bar(5, 0.05, 0.0502, 0.0499, 0.0501), config)
    assert f1 is not None
    entry = apply_fill(entry, f1)
    p.apply(f1)
    # 0.05 * 1.001 = 0.05005; 10 * 0.05005 = 0.5005; fee 0.0005005; cash 1 - 0.5010005
    assert (f1.price, f1.fee, p.cash) == (D("0.05005"), D("0.0005005"), D("0.4989995"))

    exits = [
        transition(transition(x, OrderStatus.SUBMITTED, at=f1.at), OrderStatus.ACCEPTED, at=f1.at)
        for x in exit_orders(
            entry, stop_loss=D("0.049"), take_profit=D("0.052"), at=f1.at, not_before=f1.at
        )
    ]
    assert simulate_oco(exits, bar(10, 0.0501, 0.0515, 0.0495, 0.0500), config) is None
    f2 = simulate_oco(exits, bar(15, 0.0500, 0.0530, 0.0480, 0.0490), config)
    assert f2 is not None and f2.leg is OrderLeg.STOP_LOSS  # both crossed: the stop
    booked = p.apply(f2)
    # 0.049 * 0.999 = 0.048951; 10 * 0.048951 = 0.48951; fee 0.00048951
    assert (f2.price, f2.fee) == (D("0.048951"), D("0.00048951"))
    assert booked.closed_trade is not None
    # proceeds 0.48951 - 0.00048951 = 0.48902049; cost 0.5010005; PnL -0.01198001
    assert booked.closed_trade.pnl == D("-0.01198001")
    assert p.cash == D("0.98801999") == D(1) + booked.closed_trade.pnl
    assert booked.closed_trade.stopped_out
    assert p.stop_outs_since(DAY1) == [booked.closed_trade]


# Quantities and prices with few digits keep every product exact in Decimal.
quantities = st.decimals(min_value=D("0.001"), max_value=D(5), places=3)
marks = st.decimals(min_value=D("0.01"), max_value=D(1000), places=2)
fee_rates = st.sampled_from([D(0), D("0.001"), D("0.00075")])
actions = st.lists(
    st.tuples(st.sampled_from([BTC, ETH]), st.booleans(), quantities, marks, fee_rates),
    max_size=30,
)


@given(actions)
def test_portfolio_books_stay_consistent_whatever_the_fills(
    steps: list[tuple[str, bool, Decimal, Decimal, Decimal]],
) -> None:
    p = Portfolio("a", D(100000))
    cash, fees = D(100000), D(0)
    at = DAY1
    for symbol, buying, quantity, price, rate in steps:
        at += timedelta(minutes=1)
        held = p.position(symbol)
        if buying:
            f = buy(symbol, str(quantity), str(price), str(quantity * price * rate), at)
            if p.can_apply(f) is not None:
                continue
            cash -= quantity * price + f.fee
        else:
            if held is None:
                continue
            q = min(quantity, held.quantity)
            f = sell(symbol, str(q), str(price), str(q * price * rate), at)
            cash += q * price - f.fee
        fees += f.fee
        p.apply(f)
        p.mark(symbol, price)
        assert p.cash == cash
        assert p.fees_paid == fees
        assert p.equity() == p.cash + sum(
            h.quantity * (p.price(s) or 0) for s, h in p.positions.items()
        )
        # Exact up to the context's 28 digits: a partial sell divides the cost basis.
        drift = p.equity() - (p.initial_cash + p.realized_pnl + p.unrealized_pnl())
        assert abs(drift) <= D("1e-18")
        assert p.realized_pnl == sum((t.pnl for t in p.closed_trades), D(0))
        assert p.snapshot(at).drawdown >= 0


# Fill times in minutes from DAY1, some of them earlier than the fill before (a late
# report from the sync), and the "since" times asked after each.
late_steps = st.lists(
    st.tuples(st.booleans(), st.integers(0, 3000), st.sampled_from([BTC, ETH]), marks),
    min_size=1,
    max_size=40,
)


@given(late_steps, st.lists(st.integers(-60, 3000), min_size=1, max_size=4))
def test_portfolio_since_sums_carried_forward_equal_a_fresh_sum(
    steps: list[tuple[bool, int, str, Decimal]], since_minutes: list[int]
) -> None:
    """`realized_pnl_since` and `trades_opened_since` carry their last answer forward
    as trades append; asked after every fill, in and out of order, they must equal
    the sum over `closed_trades` and the count over the entries, digit for digit."""
    p = Portfolio("a", D(10**9))
    opened: list[tuple[datetime, str]] = []
    for buying, minute, symbol, price in steps:
        at = DAY1 + timedelta(minutes=minute)
        held = p.position(symbol)
        if buying:
            f = buy(symbol, "1", str(price), "0.0123", at)
            opened.append((at, f.client_order_id))
        elif held is not None:
            f = sell(symbol, str(held.quantity / 3), str(price), "0.0077", at)
        else:
            continue
        p.apply(f)
        for minutes in since_minutes:
            since = DAY1 + timedelta(minutes=minutes)
            want = sum((t.pnl for t in p.closed_trades if t.closed_at >= since), D(0))
            got = p.realized_pnl_since(since)
            assert got == want and str(got) == str(want)
            assert p.trades_opened_since(since) == sum(1 for t, _ in opened if t >= since)
    losses = [t.closed_at for t in p.closed_trades if t.pnl < 0]
    assert p.last_loss_at() == max(losses, default=None)


# --------------------------------------------------------------------------- coin withheld


def test_a_buy_with_coin_withheld_holds_the_rest_and_pays_the_whole_price() -> None:
    # Binance without BNB: 0.2 ETH bought at 0.05 BTC, 0.1 % (0.0002 ETH) taken from the
    # ETH received, the rest rounded to the 0.0001 grid: 0.1997 held, 0.0001 dust.
    # The adapter reports the fee at the fill price and the service adds the dust.
    p = Portfolio("acct", D("1"), currency="BTC")
    fee = (D("0.0002") + D("0.0001")) * D("0.05")
    booked = p.apply(buy("ETH/BTC", "0.2", "0.05", str(fee), DAY1, withheld="0.0003"))

    assert booked.position is not None and booked.position.quantity == D("0.1997")
    assert p.cash == D("1") - D("0.2") * D("0.05")  # the whole price, no quote fee
    assert p.fees_paid == D("0.000015")
    assert booked.position.average_entry_price == D("0.05")

    closed = p.apply(sell("ETH/BTC", "0.1997", "0.06", "0.000011982", DAY2)).closed_trade
    assert p.position("ETH/BTC") is None  # sold all the books held: nothing left open
    assert closed is not None
    # Paid 0.01 BTC for what sold for 0.1997 x 0.06 = 0.011982, less 0.000011982 fee.
    assert closed.pnl == D("0.011982") - D("0.000011982") - D("0.01")
    assert p.cash == D("1") + closed.pnl


def test_withheld_coin_is_refused_on_a_sell_and_beyond_the_quantity() -> None:
    with pytest.raises(ValueError, match="only a buy"):
        sell("ETH/BTC", "0.2", "0.05", "0", DAY1, withheld="0.0002")
    with pytest.raises(ValueError, match="between 0 and"):
        buy("ETH/BTC", "0.2", "0.05", "0", DAY1, withheld="0.2")
    with pytest.raises(ValueError, match="between 0 and"):
        buy("ETH/BTC", "0.2", "0.05", "0", DAY1, withheld="-0.1")


def test_nothing_withheld_books_the_quantity_as_given() -> None:
    # `quantity - 0` would turn 2E+1 into 20: the books keep the fill's own digits.
    p = Portfolio("acct", D("10000"))
    booked = p.apply(buy(BTC, "2E+1", "1", "0", DAY1))

    assert booked.position is not None and str(booked.position.quantity) == "2E+1"


def test_exit_orders_take_the_held_quantity_when_given() -> None:
    entry = transition(
        Order(
            client_order_id=client_order_id("d-withheld"),
            account="acct",
            symbol="ETH/BTC",
            side=OrderSide.BUY,
            type=OrderType.MARKET,
            quantity=D("0.2"),
            created_at=DAY1,
            decision_id="d-withheld",
        ),
        OrderStatus.SUBMITTED,
        at=DAY1,
    )
    entry = apply_fill(
        entry,
        buy(
            "ETH/BTC",
            "0.2",
            "0.05",
            "0",
            DAY1,
            order=entry.client_order_id,
            withheld="0.0003",
        ),
    )

    stop, target = exit_orders(
        entry, stop_loss=D("0.045"), take_profit=D("0.06"), at=DAY1, quantity=D("0.1997")
    )
    default = exit_orders(entry, stop_loss=D("0.045"), take_profit=None, at=DAY1)

    assert stop.quantity == target.quantity == D("0.1997")
    assert default[0].quantity == D("0.2")  # the entry's filled quantity, as before
