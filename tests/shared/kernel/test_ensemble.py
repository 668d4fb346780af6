"""The ensemble: weighted votes, each gate on both sides, attribution of outcomes.

Members here are a scripted strategy that votes what the context's signal tells it
to, so each test states the votes it combines; time is the context's `now`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.events import Action
from shared.kernel.ensemble import Ensemble
from shared.kernel.strategy import (
    Context,
    Decision,
    Outcome,
    Position,
    Strategy,
    StrategyParams,
    create_strategy,
    register_strategy,
)
from shared.market.candles import Candle
from shared.market.indicators import AtrSpec, RsiSpec, SmaSpec
from tests.shared.kernel.test_strategy import candles, expected_sma_trades, run

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SYMBOL = "ETH/BTC"


class ScriptedParams(StrategyParams):
    key: str


@register_strategy("test_scripted_vote")
class ScriptedVote(Strategy):
    """Votes `ctx.signal["votes"][key]`: [action, confidence, stop_loss?] or "raise"."""

    Params = ScriptedParams
    params: ScriptedParams

    def decide(self, ctx: Context) -> Decision:
        vote = ((ctx.signal or {}).get("votes") or {}).get(self.params.key)
        if vote is None:
            return Decision.hold("nothing to say")
        if vote == "raise":
            raise RuntimeError("scripted failure")
        action, confidence, *rest = vote
        stop = Decimal(rest[0]) if rest else None
        return Decision(
            Action(action), confidence, f"{self.params.key} says {action}", stop_loss=stop
        )


def ensemble(members: Sequence[str] = ("a", "b"), **params: Any) -> Ensemble:
    gates: dict[str, Any] = {
        "min_confidence": 0.55,
        "cooldown_minutes": 0,
        "max_atr_pct": None,
        "max_trades_per_day": None,
    }
    strategy = create_strategy(
        "ensemble",
        {
            "members": [
                {"strategy": "test_scripted_vote", "name": m, "params": {"key": m}} for m in members
            ],
            **gates,
            **params,
        },
    )
    assert isinstance(strategy, Ensemble)
    return strategy


def ctx(
    now: datetime,
    votes: Mapping[str, Any],
    *,
    symbol: str = SYMBOL,
    close: float = 100.0,
    atr: float | None = 1.0,
    held: bool = False,
    outcomes: Sequence[Outcome] = (),
    cost: tuple[str, str] = ("1", "100"),
) -> Context:
    candle = Candle(symbol, "5m", now - timedelta(minutes=5), close, close, close, close, 1.0)
    positions = (
        [Position(symbol, Decimal(cost[0]), Decimal(cost[1]), now - timedelta(hours=1))]
        if held
        else []
    )
    return Context(
        symbol=symbol,
        timeframe="5m",
        now=now,
        candles=[candle],
        indicators={"atr_14": atr},
        previous={"atr_14": atr},
        signal={"votes": dict(votes)},
        positions=positions,
        outcomes=tuple(outcomes),
    )


def test_ensemble_reasoning_lists_each_member_vote_and_weight() -> None:
    d = ensemble().decide(ctx(T0, {"a": ["BUY", 0.72]}))
    assert d.action is Action.BUY
    assert d.confidence == pytest.approx(0.72)
    assert d.reasoning == "a BUY 0.72 x w=1.00; b HOLD x w=1.00 -> BUY 0.72 [a: a says BUY]"
    vote = {"member": "a", "action": "BUY", "confidence": 0.72, "weight": 1.0}
    abstain = {"member": "b", "action": "HOLD", "confidence": 0.0, "weight": 1.0}
    assert d.details["votes"] == [
        {**vote, "reasoning": "a says BUY"},
        {**abstain, "reasoning": "nothing to say"},
    ]
    assert d.details["members"] == ["a"]
    assert d.entry == Decimal("100.0")


def test_ensemble_weights_votes_by_track_record_hand_computed() -> None:
    # "a" has two winning trades of +1 %: win factor ((2 + 2) / 6) / 0.5 = 4/3,
    # PnL factor 1 + 0.5 * tanh(2 / 6): weight 1.5476...; "b" has no record: 1.0.
    record = [Outcome(SYMBOL, Decimal("0.01"), 1.0, T0 - timedelta(hours=h), "a") for h in (3, 2)]
    w_a = 4 / 3 * (1 + 0.5 * math.tanh(2 / 6))
    assert w_a == pytest.approx(1.547675, abs=1e-6)
    # Unweighted, b's BUY 0.9 would beat a's SELL 0.7; weighted, a wins the vote.
    d = ensemble(min_confidence=0.0).decide(
        ctx(T0, {"a": ["SELL", 0.7], "b": ["BUY", 0.9]}, held=True, outcomes=record)
    )
    assert d.action is Action.SELL
    assert d.confidence == pytest.approx((w_a * 0.7 - 1.0 * 0.9) / (w_a + 1.0), rel=1e-9)
    assert f"a SELL 0.70 x w={w_a:.2f}; b BUY 0.90 x w=1.00 -> SELL" in d.reasoning
    assert d.details["votes"][0]["weight"] == pytest.approx(w_a, abs=1e-6)


def test_ensemble_agreeing_votes_average_and_a_weak_lone_voter_is_discounted() -> None:
    d = ensemble().decide(ctx(T0, {"a": ["BUY", 0.8], "b": ["BUY", 0.6]}))
    assert d.action is Action.BUY
    assert d.confidence == pytest.approx(0.7)
    losses = [
        Outcome(SYMBOL, Decimal("-1"), -2.0, T0 - timedelta(minutes=m), "a") for m in range(1, 9)
    ]
    weak = ensemble(min_confidence=0.0).decide(ctx(T0, {"a": ["BUY", 0.8]}, outcomes=losses))
    w_a = weak.details["votes"][0]["weight"]
    assert w_a < 1.0
    assert weak.confidence == pytest.approx(w_a * 0.8, abs=1e-6)


def test_ensemble_opposite_equal_votes_cancel_out_to_hold() -> None:
    d = ensemble().decide(ctx(T0, {"a": ["BUY", 0.7], "b": ["SELL", 0.7]}, held=True))
    assert d.action is Action.HOLD
    assert "cancel out" in d.reasoning
    assert ensemble().decide(ctx(T0, {})).reasoning.endswith("-> HOLD: no member votes")


def test_ensemble_long_only_sell_without_position_and_buy_with_one_hold() -> None:
    sell = ensemble().decide(ctx(T0, {"a": ["SELL", 0.9]}))
    assert (sell.action, sell.details["gate"]) == (Action.HOLD, "long_only")
    buy = ensemble().decide(ctx(T0, {"a": ["BUY", 0.9]}, held=True))
    assert (buy.action, buy.details["gate"]) == (Action.HOLD, "long_only")
    close = ensemble().decide(ctx(T0, {"a": ["CLOSE", 0.9]}, held=True))
    assert close.action is Action.SELL


def test_ensemble_min_confidence_gate_passes_at_and_above_and_blocks_below() -> None:
    assert ensemble().decide(ctx(T0, {"a": ["BUY", 0.55]})).action is Action.BUY
    assert ensemble().decide(ctx(T0, {"a": ["SELL", 0.6]}, held=True)).action is Action.SELL
    low = ensemble().decide(ctx(T0, {"a": ["BUY", 0.54]}))
    assert (low.action, low.details["gate"]) == (Action.HOLD, "min_confidence")
    assert "held by min_confidence: 0.54 is below 0.55" in low.reasoning
    low_exit = ensemble().decide(ctx(T0, {"a": ["SELL", 0.5]}, held=True))
    assert (low_exit.action, low_exit.details["gate"]) == (Action.HOLD, "min_confidence")


def test_ensemble_cooldown_blocks_entries_after_its_last_trade_until_it_ends() -> None:
    e = ensemble(cooldown_minutes=60)
    assert e.decide(ctx(T0, {"a": ["BUY", 0.8]})).action is Action.BUY
    # Exits are not held back by the cooldown.
    t_sell = T0 + timedelta(minutes=5)
    assert e.decide(ctx(t_sell, {"a": ["SELL", 0.8]}, held=True)).action is Action.SELL
    early = e.decide(ctx(t_sell + timedelta(minutes=55), {"a": ["BUY", 0.8]}))
    assert (early.action, early.details["gate"]) == (Action.HOLD, "cooldown")
    assert "last ETH/BTC trade 55 min ago, cooldown 60 min" in early.reasoning
    # Per symbol: another market is not cooling down.
    other = e.decide(ctx(t_sell + timedelta(minutes=55), {"a": ["BUY", 0.8]}, symbol="LTC/BTC"))
    assert other.action is Action.BUY
    assert e.decide(ctx(t_sell + timedelta(minutes=60), {"a": ["BUY", 0.8]})).action is Action.BUY


def test_ensemble_cooldown_counts_from_the_close_of_an_outcome() -> None:
    closed = [Outcome(SYMBOL, Decimal("-0.1"), -1.0, T0, "ensemble")]
    e = ensemble(cooldown_minutes=30)
    blocked = e.decide(ctx(T0 + timedelta(minutes=29), {"a": ["BUY", 0.8]}, outcomes=closed))
    assert blocked.details["gate"] == "cooldown"
    passed = e.decide(ctx(T0 + timedelta(minutes=30), {"a": ["BUY", 0.8]}, outcomes=closed))
    assert passed.action is Action.BUY


def test_ensemble_volatility_filter_blocks_entries_above_max_atr_pct() -> None:
    e = ensemble(max_atr_pct=5.0)
    assert e.decide(ctx(T0, {"a": ["BUY", 0.8]}, atr=5.0)).action is Action.BUY
    wild = e.decide(ctx(T0, {"a": ["BUY", 0.8]}, symbol="LTC/BTC", atr=5.01))
    assert (wild.action, wild.details["gate"]) == (Action.HOLD, "volatility")
    assert "ATR(14) is 5.01% of the close, above 5%" in wild.reasoning
    cold = e.decide(ctx(T0, {"a": ["BUY", 0.8]}, symbol="LTC/BTC", atr=None))
    assert (cold.action, cold.details["gate"]) == (Action.HOLD, "volatility")
    # Exits are not held back by volatility.
    assert e.decide(ctx(T0, {"a": ["SELL", 0.8]}, held=True, atr=50.0)).action is Action.SELL


def test_ensemble_trade_cap_blocks_entries_beyond_max_per_utc_day() -> None:
    e = ensemble(max_trades_per_day=2)
    day = datetime(2024, 3, 1, 0, 5, tzinfo=UTC)
    assert e.decide(ctx(day, {"a": ["BUY", 0.8]}, symbol="A/B")).action is Action.BUY
    assert e.decide(ctx(day, {"a": ["BUY", 0.8]}, symbol="C/D")).action is Action.BUY
    capped = e.decide(ctx(day + timedelta(hours=23), {"a": ["BUY", 0.8]}, symbol="E/F"))
    assert (capped.action, capped.details["gate"]) == (Action.HOLD, "max_trades_per_day")
    assert "2 positions opened on 2024-03-01 (UTC), cap 2" in capped.reasoning
    # Exits do not count and are not capped.
    assert e.decide(ctx(day, {"a": ["SELL", 0.8]}, symbol="A/B", held=True)).action is Action.SELL
    midnight = datetime(2024, 3, 2, tzinfo=UTC)
    assert e.decide(ctx(midnight, {"a": ["BUY", 0.8]}, symbol="E/F")).action is Action.BUY


def test_ensemble_gates_apply_in_order_first_block_is_named() -> None:
    e = ensemble(cooldown_minutes=60, max_atr_pct=1.0, max_trades_per_day=1)
    assert e.decide(ctx(T0, {"a": ["BUY", 0.8]})).action is Action.BUY
    later = T0 + timedelta(minutes=10)
    # Below min confidence, cooling down, too volatile and over the cap: the first wins.
    assert e.decide(ctx(later, {"a": ["BUY", 0.5]}, atr=9.0)).details["gate"] == "min_confidence"
    assert e.decide(ctx(later, {"a": ["BUY", 0.9]}, atr=9.0)).details["gate"] == "cooldown"
    much_later = T0 + timedelta(hours=2)
    assert e.decide(ctx(much_later, {"a": ["BUY", 0.9]}, atr=9.0)).details["gate"] == "volatility"
    assert e.decide(ctx(much_later, {"a": ["BUY", 0.9]})).details["gate"] == "max_trades_per_day"


def test_ensemble_failing_member_abstains_with_its_reason() -> None:
    d = ensemble().decide(ctx(T0, {"a": "raise", "b": ["BUY", 0.7]}))
    assert d.action is Action.BUY
    assert d.details["votes"][0]["action"] == "HOLD"
    assert "scripted failure" in d.details["votes"][0]["reasoning"]


def test_ensemble_buy_takes_its_levels_from_the_strongest_voter() -> None:
    d = ensemble().decide(ctx(T0, {"a": ["BUY", 0.6, "95"], "b": ["BUY", 0.9, "97"]}))
    assert (d.action, d.stop_loss, d.entry) == (Action.BUY, Decimal("97"), Decimal("100.0"))


def test_ensemble_credits_an_outcome_to_the_members_that_voted_for_the_entry() -> None:
    e = ensemble(members=("a", "b", "c"))
    assert e.decide(ctx(T0, {"a": ["BUY", 0.8], "b": ["BUY", 0.6]})).action is Action.BUY
    # The fill: 2 units at 100 cost 200; the book shows it on the next decision.
    t1 = T0 + timedelta(minutes=5)
    e.decide(ctx(t1, {"c": ["SELL", 0.9]}, held=True, cost=("2", "100")))
    # The group reports the closed trade under its own name, without a return.
    won = Outcome(SYMBOL, Decimal("10"), 0.0, t1 + timedelta(minutes=1), "ensemble")
    later = t1 + timedelta(minutes=10)
    e.decide(ctx(later, {}, outcomes=[won]))
    a, b, c = (e.tracker.stats(m, now=later) for m in ("a", "b", "c"))
    assert (a.trades, b.trades, c.trades) == (1, 1, 0)
    assert a.avg_return_pct == pytest.approx(5.0)  # 10 / 200
    assert a.weight == b.weight > c.weight == 1.0
    # Seen again in the next context, it is not counted twice.
    e.decide(ctx(later + timedelta(minutes=5), {}, outcomes=[won]))
    assert e.tracker.stats("a", now=later).trades == 1


def test_ensemble_late_outcome_is_credited_to_the_entry_it_closes() -> None:
    e = ensemble(members=("a", "b"))
    assert e.decide(ctx(T0, {"a": ["BUY", 0.8]})).action is Action.BUY
    t1 = T0 + timedelta(minutes=5)
    assert e.decide(ctx(t1, {"a": ["SELL", 0.8]}, held=True)).action is Action.SELL
    t2 = T0 + timedelta(minutes=10)
    assert e.decide(ctx(t2, {"b": ["BUY", 0.8]})).action is Action.BUY
    # The first trade's outcome arrives only now: it is a's trade, not b's.
    first = Outcome(SYMBOL, Decimal("-1"), -1.0, t1, "ensemble")
    e.decide(ctx(t2 + timedelta(minutes=5), {}, held=True, outcomes=[first]))
    assert (e.tracker.stats("a").trades, e.tracker.stats("b").trades) == (1, 0)


def test_ensemble_outcome_from_a_later_clock_counts_at_ctx_now() -> None:
    # Replaying 2024 candles while execution stamps fills with a clock years ahead.
    e = ensemble(cooldown_minutes=60)
    assert e.decide(ctx(T0, {"a": ["BUY", 0.8]})).action is Action.BUY
    t1 = T0 + timedelta(minutes=5)
    assert e.decide(ctx(t1, {"a": ["SELL", 0.8]}, held=True)).action is Action.SELL
    t2 = t1 + timedelta(minutes=60)
    assert e.decide(ctx(t2, {"b": ["BUY", 0.8]})).action is Action.BUY
    stamped = Outcome(SYMBOL, Decimal("1"), 2.0, T0 + timedelta(days=900), "ensemble")
    t3 = t2 + timedelta(minutes=5)
    e.decide(ctx(t3, {}, held=True, outcomes=[stamped]))
    # Credited to the entry the ensemble sold (a's), at t3 on the strategy's clock.
    assert (e.tracker.stats("a", now=t3).trades, e.tracker.stats("b", now=t3).trades) == (1, 0)
    assert e.tracker.weight("a", now=t3) > 1.0
    # The cooldown runs from the ensemble's own trades, not from the stamp.
    t4 = t3 + timedelta(minutes=5)
    assert e.decide(ctx(t4, {"b": ["SELL", 0.8]}, held=True)).action is Action.SELL
    t5 = t4 + timedelta(minutes=60)
    assert e.decide(ctx(t5, {"a": ["BUY", 0.8]}, outcomes=[stamped])).action is Action.BUY


def test_ensemble_outcome_naming_a_member_is_credited_to_it_alone() -> None:
    e = ensemble()
    lost = Outcome(SYMBOL, Decimal("-1"), -1.0, T0, "b")
    e.decide(ctx(T0 + timedelta(minutes=1), {}, outcomes=[lost]))
    assert (e.tracker.stats("a").trades, e.tracker.stats("b").trades) == (0, 1)


def test_ensemble_declares_the_union_of_indicators_and_the_longest_history() -> None:
    e = create_strategy(
        "ensemble",
        {
            "members": [
                {"strategy": "sma_cross", "params": {"stop_loss": {"kind": "atr", "multiple": 2}}},
                {"strategy": "rsi_reversal"},
                {"strategy": "breakout", "params": {"length": 40}},
                {"strategy": "sma_cross", "name": "fast_sma", "params": {"fast": 5, "slow": 30}},
            ]
        },
    )
    assert list(e.indicators()) == [
        SmaSpec(length=10),
        SmaSpec(length=30),
        AtrSpec(length=14),
        RsiSpec(length=14),
        SmaSpec(length=5),
    ]
    assert e.history() == 41


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([], "members: List should have at least 1 item"),
        ([{"strategy": "nope"}], "members.0: Value error, unknown strategy 'nope'"),
        ([{"strategy": "sma_cross", "params": {"fast": 40}}], "fast (40) must be shorter"),
        ([{"strategy": "rsi_reversal"}] * 2, "both called 'rsi_reversal'; give each a distinct"),
    ],
)
def test_ensemble_bad_members_are_refused_with_the_path(
    members: list[dict[str, Any]], problem: str
) -> None:
    with pytest.raises(ValueError, match="bad params for strategy 'ensemble'") as e:
        create_strategy("ensemble", {"members": members})
    assert problem in str(e.value)


def test_ensemble_of_sma_cross_alone_takes_exactly_its_trades_on_real_data() -> None:
    strategy = create_strategy(
        "ensemble",
        {
            "members": [{"strategy": "sma_cross"}],
            "min_confidence": 0.0,
            "cooldown_minutes": 0,
            "max_atr_pct": None,
            "max_trades_per_day": None,
        },
    )
    got = [
        (c.open_time.isoformat(), d.action.value)
        for c, d in run(strategy, candles())
        if d.action is not Action.HOLD
    ]
    assert got == expected_sma_trades(10, 30)
