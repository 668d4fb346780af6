"""The performance tracker: records per member, and weights as documented."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.kernel.performance import PerformanceTracker, TrackerParams
from shared.kernel.strategy import Outcome

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def outcome(
    pnl: str, ret: float, *, member: str | None = "a", at: datetime = T0, symbol: str = "ETH/BTC"
) -> Outcome:
    return Outcome(symbol, Decimal(pnl), ret, at, member)


def test_tracker_new_member_starts_at_neutral_weight() -> None:
    s = PerformanceTracker().stats("new", now=T0)
    assert (s.trades, s.wins, s.win_rate, s.avg_pnl, s.avg_return_pct) == (0, 0, None, None, None)
    assert s.total_pnl == 0
    assert s.weight == 1.0


def test_tracker_weight_matches_hand_computed_example() -> None:
    tracker = PerformanceTracker()  # prior 4 trades at 50 %, span 0.5, scale 1 %
    tracker.record_all(
        [
            outcome("0.020", 2.0, at=T0),
            outcome("0.010", 1.0, at=T0 + timedelta(hours=1)),
            outcome("-0.015", -1.5, at=T0 + timedelta(hours=2)),
        ]
    )
    s = tracker.stats("a", now=T0 + timedelta(days=1))
    # 2 wins of 3: smoothed win rate (2 + 4 * 0.5) / (3 + 4) = 4/7, over 0.5 -> 8/7.
    # Returns sum to 1.5 %, shrunk over 7 trades: 0.2142857 %; tanh(0.2142857) = 0.2110...
    win_factor = 8 / 7
    pnl_factor = 1 + 0.5 * math.tanh(1.5 / 7)
    assert win_factor * pnl_factor == pytest.approx(1.26347, abs=1e-5)
    assert s.weight == pytest.approx(win_factor * pnl_factor, rel=1e-12)
    assert (s.trades, s.wins) == (3, 2)
    assert s.win_rate == pytest.approx(2 / 3)
    assert s.total_pnl == Decimal("0.015")
    assert s.avg_pnl == Decimal("0.005")
    assert s.avg_return_pct == pytest.approx(0.5)


def test_tracker_records_are_kept_per_member() -> None:
    tracker = PerformanceTracker()
    tracker.record(outcome("1", 1.0, member="a"))
    tracker.record(outcome("-1", -1.0, member="b"))
    tracker.record(outcome("-1", -1.0, member="ensemble"), member="c")
    assert tracker.members() == ["a", "b", "c"]
    assert tracker.weight("a", now=T0) > 1.0 > tracker.weight("b", now=T0)
    assert tracker.weight("c", now=T0) == tracker.weight("b", now=T0)


def test_tracker_weight_is_bounded_by_min_and_max_weight() -> None:
    tracker = PerformanceTracker(TrackerParams(min_weight=0.25, max_weight=1.75))
    for i in range(40):
        at = T0 + timedelta(minutes=i)
        tracker.record(outcome("-1", -3.0, member="loser", at=at))
        tracker.record(outcome("1", 3.0, member="winner", at=at))
    now = T0 + timedelta(hours=1)
    assert tracker.weight("loser", now=now) == 0.25
    assert tracker.weight("winner", now=now) == 1.75


def test_tracker_window_trades_keeps_only_the_last_trades() -> None:
    tracker = PerformanceTracker(TrackerParams(window_trades=2))
    tracker.record_all(
        [
            outcome("-1", -1.0, at=T0),
            outcome("1", 1.0, at=T0 + timedelta(minutes=1)),
            outcome("1", 1.0, at=T0 + timedelta(minutes=2)),
        ]
    )
    s = tracker.stats("a", now=T0 + timedelta(minutes=3))
    assert (s.trades, s.wins, s.total_pnl) == (2, 2, Decimal(2))


def test_tracker_window_days_lets_a_member_recover() -> None:
    tracker = PerformanceTracker(TrackerParams(window_days=7))
    for i in range(10):
        tracker.record(outcome("-1", -2.0, at=T0 + timedelta(minutes=i)))
    assert tracker.weight("a", now=T0 + timedelta(days=6)) < 0.5
    recovered = tracker.stats("a", now=T0 + timedelta(days=7, minutes=10))
    assert (recovered.trades, recovered.weight) == (0, 1.0)
    # Without a `now` there is no day window: the whole record counts.
    assert tracker.stats("a").trades == 10


def test_tracker_outcome_without_member_is_refused() -> None:
    with pytest.raises(ValueError, match="names no member"):
        PerformanceTracker().record(outcome("1", 1.0, member=None))


@given(
    st.lists(
        st.tuples(
            st.decimals(min_value=-1000, max_value=1000, places=4),
            st.floats(min_value=-100, max_value=100, allow_nan=False),
        ),
        max_size=60,
    )
)
def test_tracker_weight_any_record_stays_within_bounds(
    trades: list[tuple[Decimal, float]],
) -> None:
    params = TrackerParams()
    tracker = PerformanceTracker(params)
    for i, (pnl, ret) in enumerate(trades):
        tracker.record(Outcome("X/Y", pnl, ret, T0 + timedelta(minutes=i), "a"))
    w = tracker.weight("a", now=T0 + timedelta(days=1))
    assert params.min_weight <= w <= params.max_weight
