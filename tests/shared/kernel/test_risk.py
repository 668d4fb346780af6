"""The risk engine: every rule's pass and reject side, at an injected `now`."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import Action
from shared.kernel.risk import (
    DEFAULT_SIZING,
    AccountState,
    CheckStatus,
    ClosedTrade,
    FixedNotional,
    LowProfitLock,
    MarketRules,
    Mode,
    OpenPosition,
    PercentOfEquity,
    RiskCheck,
    RiskEngine,
    RiskLimits,
    RiskPerTrade,
    RiskReason,
    RiskVerdict,
    StoplossGuard,
    TradeIntent,
    floor_to_step,
    merge_limits,
    round_amount,
    round_price,
    trading_day_start,
)
from shared.kernel.risk.limits import _MERGE

D = Decimal
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
BTC = "BTC/USDT"
MARKET = MarketRules(
    BTC, amount_step=D("0.0001"), price_tick=D("0.01"), min_amount=D("0.0001"), min_notional=D(10)
)


def intent(**overrides: Any) -> TradeIntent:
    fields: dict[str, Any] = {
        "account": "paper-1",
        "group": "btc-momentum",
        "symbol": BTC,
        "side": Action.BUY,
        "confidence": 0.8,
        "entry": D(50000),
        "decided_at": NOW,
        "stop_loss": D(49000),
        "take_profit": D(52000),
        "candle_time": NOW - 10 * MIN,
        "timeframe": "5m",
    }
    fields.update(overrides)
    return TradeIntent(**fields)


def account(**overrides: Any) -> AccountState:
    fields: dict[str, Any] = {
        "account": "paper-1",
        "mode": Mode.PAPER,
        "currency": "USDT",
        "equity": D(10000),
        "cash": D(10000),
    }
    fields.update(overrides)
    return AccountState(**fields)


def evaluate(
    limits: RiskLimits | None = None,
    *,
    trade: TradeIntent | None = None,
    state: AccountState | None = None,
    market: MarketRules = MARKET,
    now: datetime = NOW,
    live: bool = False,
) -> RiskVerdict:
    return RiskEngine(live_trading_enabled=live).evaluate(
        trade or intent(),
        state or account(),
        market,
        limits or RiskLimits(),
        now=now,
    )


def rejected(verdict: RiskVerdict, reason: RiskReason) -> RiskVerdict:
    assert not verdict.accepted, verdict.message
    assert verdict.reason is reason, (verdict.reason, verdict.message)
    last = verdict.trail[-1]
    assert (last.status, last.reason) == (CheckStatus.REJECTED, reason)
    assert verdict.message == last.message and verdict.message
    return verdict


def accepted(verdict: RiskVerdict) -> RiskVerdict:
    assert verdict.accepted, (verdict.reason, verdict.message)
    assert verdict.reason is None
    assert [r.check for r in verdict.trail] == list(RiskCheck)
    return verdict


def passed(verdict: RiskVerdict, check: RiskCheck) -> bool:
    return check in accepted(verdict).checks_passed


# --------------------------------------------------------------------------- the whole run


def test_engine_default_limits_accept_a_buy_at_ten_pct_of_equity() -> None:
    v = accepted(evaluate())
    assert PercentOfEquity(pct=D(10)) == DEFAULT_SIZING
    assert (v.quantity, v.price, v.notional) == (D("0.02"), D(50000), D(1000))
    assert v.side is Action.BUY and v.symbol == BTC
    assert v.details["bound_by"] == "percent_equity"
    assert v.checks_passed == (
        RiskCheck.KILL_SWITCH,
        RiskCheck.LIVE_MODE,
        RiskCheck.STOP_GEOMETRY,
        RiskCheck.SIZING,
    )
    skipped = [r for r in v.trail if r.status is CheckStatus.SKIPPED]
    assert all(r.details == {"why": "limit not set"} for r in skipped)


def test_engine_several_failing_checks_report_the_first_in_order() -> None:
    limits = RiskLimits(min_confidence=0.9, max_daily_loss=D(100), kill_switch=False)
    v = rejected(
        evaluate(limits, state=account(realized_pnl_today=D(-500))), RiskReason.CONFIDENCE_TOO_LOW
    )
    assert [r.check for r in v.trail] == [
        RiskCheck.KILL_SWITCH,
        RiskCheck.LIVE_MODE,
        RiskCheck.CONFIDENCE,
    ]
    assert v.quantity is None and v.notional is None


def test_engine_rejection_after_sizing_carries_the_sized_quantity() -> None:
    v = rejected(evaluate(RiskLimits(max_exposure_pct=D(5))), RiskReason.MAX_EXPOSURE)
    assert (v.quantity, v.notional) == (D("0.02"), D(1000))
    assert RiskCheck.SIZING in v.checks_passed


def test_engine_verdict_to_json_is_json_with_decimals_as_strings() -> None:
    v = evaluate(RiskLimits(max_daily_loss=D(100)), state=account(realized_pnl_today=D("-100.50")))
    data = json.loads(json.dumps(v.to_json()))
    assert data["accepted"] is False
    assert data["reason"] == "daily_loss_limit"
    assert data["details"]["realized_pnl_today"] == "-100.5"
    assert data["trail"][-1]["check"] == "daily_loss"
    assert data["trail"][-1]["reason"] == "daily_loss_limit"
    assert "sizing" in data["checks_passed"]
    ok = json.loads(json.dumps(evaluate().to_json()))
    assert (ok["quantity"], ok["notional"], ok["reason"]) == ("0.02", "1000", None)


def test_engine_naive_now_or_mismatched_inputs_raise() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="market rules of ETH/USDT"):
        evaluate(market=MarketRules("ETH/USDT"))
    with pytest.raises(ValueError, match="account other"):
        evaluate(state=account(account="other"))


def test_verdict_rejected_builds_a_shell_rejection() -> None:
    v = RiskVerdict.rejected(
        symbol=BTC, side=Action.BUY, reason=RiskReason.INVALID_INTENT, message="no entry price"
    )
    assert (v.accepted, v.reason, v.trail, v.checks_passed) == (
        False,
        RiskReason.INVALID_INTENT,
        (),
        (),
    )
    assert v.to_json()["reason"] == "invalid_intent"


def test_intent_invalid_values_raise_with_the_reason() -> None:
    with pytest.raises(ValueError, match="HOLD is not a trade"):
        intent(side=Action.HOLD)
    with pytest.raises(ValueError, match="confidence 1.5"):
        intent(confidence=1.5)
    with pytest.raises(ValueError, match="entry 0 must be a positive price"):
        intent(entry=D(0))
    with pytest.raises(ValueError, match="stop_loss -1"):
        intent(stop_loss=D(-1))
    with pytest.raises(ValueError, match="size_hint"):
        intent(size_hint=D(-1))
    with pytest.raises(ValueError, match="decided_at .* timezone-aware"):
        intent(decided_at=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="candle_time needs the timeframe"):
        intent(timeframe=None)
    with pytest.raises(ValueError, match="unknown timeframe"):
        intent(timeframe="5 minutes")


def test_market_rules_invalid_values_raise() -> None:
    with pytest.raises(ValueError, match="amount_step 0 must be positive"):
        MarketRules(BTC, amount_step=D(0))
    with pytest.raises(ValueError, match="taker_fee 1.5 is a rate"):
        MarketRules(BTC, taker_fee=D("1.5"))
    with pytest.raises(ValueError, match="amount_precision 40"):
        MarketRules(BTC, amount_precision=40)


def test_trading_day_start_is_utc_midnight() -> None:
    assert trading_day_start(NOW) == datetime(2024, 3, 1, tzinfo=UTC)
    new_york_evening = datetime(2024, 3, 1, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert trading_day_start(new_york_evening) == datetime(2024, 3, 2, tzinfo=UTC)


# --------------------------------------------------------------------------- kill switch, live


def test_kill_switch_off_passes_and_on_rejects_entries_and_exits() -> None:
    assert passed(evaluate(RiskLimits(kill_switch=False)), RiskCheck.KILL_SWITCH)
    halted = merge_limits(RiskLimits(), RiskLimits(kill_switch=True))
    v = rejected(evaluate(halted), RiskReason.KILL_SWITCH)
    assert len(v.trail) == 1
    holding = account(positions=(OpenPosition(BTC, D("0.1"), D(40000)),))
    rejected(
        evaluate(halted, trade=intent(side=Action.CLOSE), state=holding), RiskReason.KILL_SWITCH
    )


def test_live_mode_without_confirmation_rejects_entries_and_exits() -> None:
    live = account(mode=Mode.LIVE, positions=(OpenPosition(BTC, D("0.1"), D(40000)),))
    v = rejected(evaluate(state=live, live=False), RiskReason.LIVE_TRADING_NOT_CONFIRMED)
    assert "ATS_ENABLE_LIVE_TRADING" in v.message
    rejected(
        evaluate(trade=intent(side=Action.SELL), state=live, live=False),
        RiskReason.LIVE_TRADING_NOT_CONFIRMED,
    )


def test_live_mode_with_confirmation_passes_and_paper_needs_none() -> None:
    live = account(mode=Mode.LIVE)
    assert passed(evaluate(state=live, live=True), RiskCheck.LIVE_MODE)
    assert passed(evaluate(state=account(mode=Mode.PAPER), live=False), RiskCheck.LIVE_MODE)


# --------------------------------------------------------------------------- confidence, age


def test_confidence_below_minimum_rejects() -> None:
    v = rejected(
        evaluate(RiskLimits(min_confidence=0.6), trade=intent(confidence=0.55)),
        RiskReason.CONFIDENCE_TOO_LOW,
    )
    assert v.details == {"confidence": 0.55, "min_confidence": 0.6}


def test_confidence_at_minimum_passes() -> None:
    assert passed(
        evaluate(RiskLimits(min_confidence=0.6), trade=intent(confidence=0.6)),
        RiskCheck.CONFIDENCE,
    )


def test_decision_age_older_than_max_rejects_as_stale() -> None:
    v = rejected(
        evaluate(RiskLimits(max_decision_age_seconds=300), now=NOW + timedelta(seconds=301)),
        RiskReason.STALE_DECISION,
    )
    assert v.details["age_seconds"] == 301


def test_decision_age_at_max_or_from_a_clock_ahead_passes() -> None:
    limits = RiskLimits(max_decision_age_seconds=300)
    assert passed(evaluate(limits, now=NOW + timedelta(seconds=300)), RiskCheck.DECISION_AGE)
    ahead = intent(decided_at=NOW + timedelta(seconds=2))
    assert passed(evaluate(limits, trade=ahead), RiskCheck.DECISION_AGE)


def test_candle_age_beyond_max_candles_rejects_as_stale() -> None:
    # A 5m candle opened 16 min ago closed 11 min ago: 2.2 candles.
    v = rejected(
        evaluate(RiskLimits(max_candle_age_candles=2), trade=intent(candle_time=NOW - 16 * MIN)),
        RiskReason.STALE_CANDLE,
    )
    assert v.details["age_candles"] == pytest.approx(2.2)
    assert v.details["candle_close"] == NOW - 11 * MIN


def test_candle_age_within_max_candles_passes() -> None:
    limits = RiskLimits(max_candle_age_candles=2)
    fresh = intent(candle_time=NOW - 15 * MIN)  # closed exactly 2 candles ago
    assert passed(evaluate(limits, trade=fresh), RiskCheck.CANDLE_AGE)
    hourly = intent(candle_time=NOW - 3 * timedelta(hours=1), timeframe="1h")  # 2 candles
    assert passed(evaluate(limits, trade=hourly), RiskCheck.CANDLE_AGE)


def test_candle_age_without_a_candle_is_skipped() -> None:
    v = accepted(evaluate(RiskLimits(max_candle_age_candles=2), trade=intent(candle_time=None)))
    result = next(r for r in v.trail if r.check is RiskCheck.CANDLE_AGE)
    assert result.status is CheckStatus.SKIPPED


# --------------------------------------------------------------------------- stop geometry


def test_stop_geometry_stop_above_entry_rejects() -> None:
    rejected(evaluate(trade=intent(stop_loss=D(50001))), RiskReason.STOP_LOSS_WRONG_SIDE)
    rejected(evaluate(trade=intent(stop_loss=D(50000))), RiskReason.STOP_LOSS_WRONG_SIDE)


def test_stop_geometry_take_profit_below_entry_rejects() -> None:
    rejected(evaluate(trade=intent(take_profit=D(49999))), RiskReason.TAKE_PROFIT_WRONG_SIDE)


def test_stop_geometry_stop_farther_than_max_pct_rejects() -> None:
    v = rejected(
        evaluate(RiskLimits(max_stop_loss_pct=D(5)), trade=intent(stop_loss=D(47000))),
        RiskReason.STOP_LOSS_TOO_FAR,
    )
    assert v.details["stop_distance_pct"] == D(6)


def test_stop_geometry_long_within_max_pct_passes() -> None:
    limits = RiskLimits(max_stop_loss_pct=D(5))
    assert passed(evaluate(limits, trade=intent(stop_loss=D(47500))), RiskCheck.STOP_GEOMETRY)
    bare = intent(stop_loss=None, take_profit=None)
    assert passed(evaluate(limits, trade=bare), RiskCheck.STOP_GEOMETRY)


def test_stop_geometry_missing_stop_rejects_when_required_or_sized_from_it() -> None:
    bare = intent(stop_loss=None)
    v = rejected(
        evaluate(RiskLimits(require_stop_loss=True), trade=bare), RiskReason.STOP_LOSS_REQUIRED
    )
    assert "require_stop_loss" in v.message
    by_risk = RiskLimits(sizing=(RiskPerTrade(risk_pct=D(1)),))
    v = rejected(evaluate(by_risk, trade=bare), RiskReason.STOP_LOSS_REQUIRED)
    assert "risk_per_trade" in v.message


# --------------------------------------------------------------------------- sizing


def sized(limits: RiskLimits, **kwargs: Any) -> RiskVerdict:
    return accepted(evaluate(limits, **kwargs))


def test_sizing_fixed_notional_buys_that_value() -> None:
    v = sized(RiskLimits(sizing=(FixedNotional(notional=D(1500)),)))
    assert (v.quantity, v.notional) == (D("0.03"), D(1500))


def test_sizing_percent_of_equity_buys_that_share() -> None:
    v = sized(RiskLimits(sizing=(PercentOfEquity(pct=D(25)),)), state=account(equity=D(8000)))
    assert (v.quantity, v.notional) == (D("0.04"), D(2000))


def test_sizing_risk_per_trade_divides_risk_by_stop_distance() -> None:
    # 1 % of 10000 = 100 USDT at risk; 1000 USDT per BTC between entry and stop.
    v = sized(RiskLimits(sizing=(RiskPerTrade(risk_pct=D(1)),)))
    assert (v.quantity, v.notional) == (D("0.1"), D(5000))
    assert v.quantity is not None and v.quantity * (D(50000) - D(49000)) == D(100)


def test_sizing_of_merged_levels_takes_the_smallest_quantity() -> None:
    limits = merge_limits(
        RiskLimits(sizing=(RiskPerTrade(risk_pct=D(1)),)),
        RiskLimits(sizing=(PercentOfEquity(pct=D(5)),)),
    )
    v = sized(limits)
    assert (v.quantity, v.details["bound_by"]) == (D("0.01"), "percent_equity")
    assert [a["quantity"] for a in v.details["asked"]] == [D("0.1"), D("0.01")]


def test_sizing_size_hint_and_max_amount_cap_the_quantity() -> None:
    v = sized(RiskLimits(), trade=intent(size_hint=D("0.005")))
    assert (v.quantity, v.details["bound_by"]) == (D("0.005"), "size_hint")
    capped = replace(MARKET, max_amount=D("0.003"))
    v = sized(RiskLimits(), market=capped)
    assert (v.quantity, v.details["bound_by"]) == (D("0.003"), "max_amount")


def test_sizing_cash_caps_the_quantity_leaving_room_for_the_fee() -> None:
    market = replace(MARKET, taker_fee=D("0.001"))
    v = sized(RiskLimits(), state=account(cash=D(600)), market=market)
    # 600 / (50000 x 1.001) = 0.011988..., rounded down to the 0.0001 step.
    assert (v.quantity, v.details["bound_by"]) == (D("0.0119"), "cash")
    assert v.quantity is not None and v.quantity * D(50000) * D("1.001") <= D(600)


def test_sizing_rounds_down_to_the_step_and_the_precision() -> None:
    limits = RiskLimits(sizing=(FixedNotional(notional=D(1000)),))
    v = sized(limits, trade=intent(entry=D(30000), stop_loss=None, take_profit=None))
    assert v.quantity == D("0.0333")  # 0.03333... down to the 0.0001 step
    assert v.notional == D("999.0000")
    coarse = MarketRules(BTC, amount_precision=3)
    v = sized(limits, trade=intent(entry=D(30000), stop_loss=None, take_profit=None), market=coarse)
    assert v.quantity == D("0.033")


def test_sizing_rounds_the_price_to_the_tick() -> None:
    v = sized(RiskLimits(), trade=intent(entry=D("50000.006")))
    assert v.price == D("50000.01")
    assert round_price(D("1.23456"), MarketRules(BTC, price_precision=2)) == D("1.23")
    assert round_price(D("0.001"), MarketRules(BTC, price_tick=D("0.5"))) == D("0.5")


def test_sizing_below_min_amount_rejects() -> None:
    market = replace(MARKET, min_amount=D("0.01"))
    limits = RiskLimits(sizing=(FixedNotional(notional=D(100)),))  # 0.002 BTC
    v = rejected(evaluate(limits, market=market), RiskReason.BELOW_MIN_AMOUNT)
    assert (v.details["quantity"], v.details["min_amount"]) == (D("0.002"), D("0.01"))


def test_sizing_at_min_amount_passes() -> None:
    market = replace(MARKET, min_amount=D("0.01"))
    v = sized(RiskLimits(sizing=(FixedNotional(notional=D(500)),)), market=market)
    assert v.quantity == D("0.01")


def test_sizing_rounding_to_zero_rejects_even_without_a_minimum() -> None:
    market = MarketRules(BTC, amount_step=D("0.001"))
    limits = RiskLimits(sizing=(FixedNotional(notional=D(1)),))
    v = rejected(evaluate(limits, market=market), RiskReason.BELOW_MIN_AMOUNT)
    assert v.details["quantity"] == 0


def test_sizing_below_min_notional_after_rounding_rejects() -> None:
    # 9.99 USDT asks 0.0001998 BTC, rounded down to 0.0001: worth 5 USDT.
    limits = RiskLimits(sizing=(FixedNotional(notional=D("9.99")),))
    v = rejected(evaluate(limits), RiskReason.BELOW_MIN_NOTIONAL)
    assert (v.details["quote_notional"], v.details["min_notional"]) == (D(5), D(10))


def test_sizing_at_min_notional_passes() -> None:
    v = sized(RiskLimits(sizing=(FixedNotional(notional=D(10)),)))
    assert (v.quantity, v.notional) == (D("0.0002"), D(10))


def test_sizing_without_cash_rejects_as_insufficient_cash() -> None:
    rejected(evaluate(state=account(cash=D(0))), RiskReason.INSUFFICIENT_CASH)
    # 5 USDT buys 0.0001 BTC, below the 10 USDT minimum: the cash is what is short.
    v = rejected(evaluate(state=account(cash=D(5))), RiskReason.INSUFFICIENT_CASH)
    assert v.details["bound_by"] == "cash"


def test_sizing_converts_a_quote_currency_that_is_not_the_accounts() -> None:
    # ETH/BTC on a USDT account: 1 BTC = 60000 USDT; 1000 USDT buys 0.333 ETH at 0.05 BTC.
    market = MarketRules(
        "ETH/BTC", amount_step=D("0.001"), price_tick=D("0.00001"), min_notional=D("0.0001")
    )
    trade = intent(
        symbol="ETH/BTC", entry=D("0.05"), stop_loss=None, take_profit=None, quote_rate=D(60000)
    )
    v = sized(RiskLimits(sizing=(FixedNotional(notional=D(1000)),)), trade=trade, market=market)
    assert (v.quantity, v.price, v.notional) == (D("0.333"), D("0.05"), D(999))


# --------------------------------------------------------------------------- positions, trades

ETH = OpenPosition("ETH/USDT", D(1), D(3000))
SOL = OpenPosition("SOL/USDT", D(10), D(100))
HELD_BTC = OpenPosition(BTC, D("0.01"), D(48000))


def test_open_positions_at_max_rejects_a_new_symbol() -> None:
    v = rejected(
        evaluate(RiskLimits(max_open_positions=2), state=account(positions=(ETH, SOL))),
        RiskReason.MAX_OPEN_POSITIONS,
    )
    assert v.details == {"open_positions": 2, "max_open_positions": 2}


def test_open_positions_below_max_or_adding_to_a_held_symbol_passes() -> None:
    assert passed(
        evaluate(RiskLimits(max_open_positions=3), state=account(positions=(ETH, SOL))),
        RiskCheck.OPEN_POSITIONS,
    )
    assert passed(
        evaluate(RiskLimits(max_open_positions=2), state=account(positions=(ETH, HELD_BTC))),
        RiskCheck.OPEN_POSITIONS,
    )


def test_positions_per_symbol_at_max_rejects() -> None:
    rejected(
        evaluate(RiskLimits(max_positions_per_symbol=1), state=account(positions=(HELD_BTC,))),
        RiskReason.MAX_POSITIONS_PER_SYMBOL,
    )


def test_positions_per_symbol_below_max_passes() -> None:
    state = account(positions=(HELD_BTC, ETH))
    assert passed(
        evaluate(RiskLimits(max_positions_per_symbol=2), state=state),
        RiskCheck.POSITIONS_PER_SYMBOL,
    )
    assert passed(
        evaluate(RiskLimits(max_positions_per_symbol=1), state=account(positions=(ETH,))),
        RiskCheck.POSITIONS_PER_SYMBOL,
    )


def test_trades_per_day_at_max_rejects_until_midnight() -> None:
    v = rejected(
        evaluate(RiskLimits(max_trades_per_day=5), state=account(trades_today=5)),
        RiskReason.MAX_TRADES_PER_DAY,
    )
    assert v.details["resumes_at"] == datetime(2024, 3, 2, tzinfo=UTC)


def test_trades_per_day_below_max_passes() -> None:
    assert passed(
        evaluate(RiskLimits(max_trades_per_day=5), state=account(trades_today=4)),
        RiskCheck.TRADES_PER_DAY,
    )


# --------------------------------------------------------------------------- cooldowns


def test_trade_cooldown_within_the_window_rejects() -> None:
    state = account(last_trade_at={BTC: NOW - 30 * MIN})
    v = rejected(
        evaluate(RiskLimits(cooldown_after_trade_minutes=60), state=state),
        RiskReason.COOLDOWN_AFTER_TRADE,
    )
    assert v.details["until"] == NOW + 30 * MIN


def test_trade_cooldown_elapsed_or_on_another_symbol_passes() -> None:
    limits = RiskLimits(cooldown_after_trade_minutes=60)
    elapsed = account(last_trade_at={BTC: NOW - 60 * MIN})
    assert passed(evaluate(limits, state=elapsed), RiskCheck.TRADE_COOLDOWN)
    other = account(last_trade_at={"ETH/USDT": NOW - MIN})
    assert passed(evaluate(limits, state=other), RiskCheck.TRADE_COOLDOWN)
    assert passed(evaluate(limits), RiskCheck.TRADE_COOLDOWN)


def test_loss_cooldown_within_the_window_rejects() -> None:
    limits = RiskLimits(cooldown_after_loss_minutes=30)
    rejected(
        evaluate(limits, state=account(last_loss_at=NOW - 10 * MIN)),
        RiskReason.COOLDOWN_AFTER_LOSS,
    )
    # Without last_loss_at, the latest losing closed trade (any symbol) starts it.
    trades = (
        ClosedTrade("ETH/USDT", D(-5), NOW - 20 * MIN),
        ClosedTrade(BTC, D(8), NOW - 5 * MIN),
    )
    v = rejected(
        evaluate(limits, state=account(closed_trades=trades)), RiskReason.COOLDOWN_AFTER_LOSS
    )
    assert v.details["until"] == NOW + 10 * MIN


def test_loss_cooldown_elapsed_passes() -> None:
    limits = RiskLimits(cooldown_after_loss_minutes=30)
    state = account(last_loss_at=NOW - 31 * MIN)
    assert passed(evaluate(limits, state=state), RiskCheck.LOSS_COOLDOWN)
    winners = account(closed_trades=(ClosedTrade(BTC, D(8), NOW - MIN),))
    assert passed(evaluate(limits, state=winners), RiskCheck.LOSS_COOLDOWN)


# --------------------------------------------------------------------------- daily loss


def test_daily_loss_amount_reached_rejects() -> None:
    v = rejected(
        evaluate(RiskLimits(max_daily_loss=D(500)), state=account(realized_pnl_today=D(-500))),
        RiskReason.DAILY_LOSS_LIMIT,
    )
    assert (v.details["max_daily_loss"], v.details["currency"]) == (D(500), "USDT")


def test_daily_loss_amount_not_reached_passes() -> None:
    state = account(realized_pnl_today=D("-499.99"))
    assert passed(evaluate(RiskLimits(max_daily_loss=D(500)), state=state), RiskCheck.DAILY_LOSS)


def test_daily_loss_pct_reached_rejects() -> None:
    v = rejected(
        evaluate(RiskLimits(max_daily_loss_pct=D(3)), state=account(realized_pnl_today=D(-300))),
        RiskReason.DAILY_LOSS_LIMIT_PCT,
    )
    assert v.details["loss_pct"] == D(3)


def test_daily_loss_pct_not_reached_passes() -> None:
    state = account(realized_pnl_today=D(-299))
    assert passed(
        evaluate(RiskLimits(max_daily_loss_pct=D(3)), state=state), RiskCheck.DAILY_LOSS_PCT
    )


def test_daily_loss_pct_is_measured_against_the_days_start_equity() -> None:
    # Equity fell to 9700 after losing 300; 300 of the 10000 it started with is 3 %.
    state = account(equity=D(9700), day_start_equity=D(10000), realized_pnl_today=D(-300))
    v = rejected(
        evaluate(RiskLimits(max_daily_loss_pct=D(3)), state=state), RiskReason.DAILY_LOSS_LIMIT_PCT
    )
    assert v.details["base_equity"] == D(10000)


def test_daily_loss_pct_compares_a_percentage_not_the_amount() -> None:
    # The seed's bug compared 5 (%) with a 6 USDT loss and halted; 6 of 10000 is 0.06 %.
    state = account(realized_pnl_today=D(-6))
    assert passed(
        evaluate(RiskLimits(max_daily_loss_pct=D(5)), state=state), RiskCheck.DAILY_LOSS_PCT
    )
    rejected(evaluate(RiskLimits(max_daily_loss=D(5)), state=state), RiskReason.DAILY_LOSS_LIMIT)


def test_daily_loss_both_units_each_trip_on_their_own() -> None:
    both = RiskLimits(max_daily_loss=D(300), max_daily_loss_pct=D(5))
    # 400 USDT is past the amount but only 4 % of equity.
    v = rejected(
        evaluate(both, state=account(realized_pnl_today=D(-400))), RiskReason.DAILY_LOSS_LIMIT
    )
    assert v.trail[-1].check is RiskCheck.DAILY_LOSS
    # On a 5000 USDT account, 290 USDT is below the amount but 5.8 %.
    small = account(equity=D(5000), cash=D(5000), realized_pnl_today=D(-290))
    v = rejected(evaluate(both, state=small), RiskReason.DAILY_LOSS_LIMIT_PCT)
    assert RiskCheck.DAILY_LOSS in v.checks_passed
    v = accepted(evaluate(both, state=account(realized_pnl_today=D(-100))))
    assert {RiskCheck.DAILY_LOSS, RiskCheck.DAILY_LOSS_PCT} <= set(v.checks_passed)
    profit = accepted(evaluate(both, state=account(realized_pnl_today=D(700))))
    assert RiskCheck.DAILY_LOSS_PCT in profit.checks_passed


# --------------------------------------------------------------------------- drawdown


def test_drawdown_at_or_beyond_max_halts_entries() -> None:
    state = account(peak_equity=D(12000))  # 10000 is 16.67 % below the peak
    v = rejected(evaluate(RiskLimits(max_drawdown_pct=D(15)), state=state), RiskReason.MAX_DRAWDOWN)
    assert v.details["drawdown_pct"] > D(16)
    at_limit = account(equity=D(9000), cash=D(9000), peak_equity=D(10000))
    rejected(evaluate(RiskLimits(max_drawdown_pct=D(10)), state=at_limit), RiskReason.MAX_DRAWDOWN)


def test_drawdown_below_max_or_without_a_peak_passes() -> None:
    limits = RiskLimits(max_drawdown_pct=D(20))
    assert passed(evaluate(limits, state=account(peak_equity=D(12000))), RiskCheck.DRAWDOWN)
    assert passed(evaluate(limits, state=account(peak_equity=None)), RiskCheck.DRAWDOWN)
    new_high = account(peak_equity=D(9000))  # equity above a stale peak
    assert passed(evaluate(limits, state=new_high), RiskCheck.DRAWDOWN)


# --------------------------------------------------------------------------- stop-loss guard

GUARD = RiskLimits(
    stoploss_guard=StoplossGuard(trade_limit=3, lookback_minutes=60, stop_duration_minutes=30)
)


def stop_outs(*minutes_ago: int, symbol: str = BTC) -> tuple[ClosedTrade, ...]:
    return tuple(ClosedTrade(symbol, D(-10), NOW - m * MIN, stopped_out=True) for m in minutes_ago)


def test_stoploss_guard_n_stop_outs_within_the_window_pause_entries() -> None:
    v = rejected(
        evaluate(GUARD, state=account(closed_trades=stop_outs(50, 40, 20))),
        RiskReason.STOPLOSS_GUARD,
    )
    # The third stop-out, 20 min ago, locked for 30 min.
    assert v.details["locked_until"] == NOW + 10 * MIN
    # Stop-outs on another symbol count for the account-wide guard.
    rejected(
        evaluate(GUARD, state=account(closed_trades=stop_outs(50, 40, 20, symbol="ETH/USDT"))),
        RiskReason.STOPLOSS_GUARD,
    )


def test_stoploss_guard_lock_ends_after_the_stop_duration() -> None:
    state = account(closed_trades=stop_outs(50, 40, 20))
    rejected(evaluate(GUARD, state=state, now=NOW + 9 * MIN), RiskReason.STOPLOSS_GUARD)
    assert passed(evaluate(GUARD, state=state, now=NOW + 10 * MIN), RiskCheck.STOPLOSS_GUARD)


def test_stoploss_guard_stop_outs_spread_beyond_the_lookback_pass() -> None:
    # Windows end at each stop-out: (-80, -20] holds only -40 and -20.
    spread = account(closed_trades=stop_outs(80, 40, 20))
    assert passed(evaluate(GUARD, state=spread), RiskCheck.STOPLOSS_GUARD)
    assert passed(
        evaluate(GUARD, state=account(closed_trades=stop_outs(40, 20))), RiskCheck.STOPLOSS_GUARD
    )
    losses_not_stopped = tuple(replace(t, stopped_out=False) for t in stop_outs(50, 40, 20))
    assert passed(
        evaluate(GUARD, state=account(closed_trades=losses_not_stopped)), RiskCheck.STOPLOSS_GUARD
    )


def test_stoploss_guard_per_symbol_locks_only_that_symbol() -> None:
    per_symbol = RiskLimits(
        stoploss_guard=StoplossGuard(
            trade_limit=3, lookback_minutes=60, stop_duration_minutes=30, only_per_symbol=True
        )
    )
    eth_stops = account(closed_trades=stop_outs(50, 40, 20, symbol="ETH/USDT"))
    assert passed(evaluate(per_symbol, state=eth_stops), RiskCheck.STOPLOSS_GUARD)
    rejected(
        evaluate(per_symbol, state=account(closed_trades=stop_outs(50, 40, 20))),
        RiskReason.STOPLOSS_GUARD,
    )


# --------------------------------------------------------------------------- low-profit lock

LOW_PROFIT = RiskLimits(
    low_profit_lock=LowProfitLock(
        trade_limit=2, lookback_minutes=6 * 60, stop_duration_minutes=60, required_profit=D(0)
    )
)


def closed(pnl: str, minutes_ago: int, symbol: str = BTC) -> ClosedTrade:
    return ClosedTrade(symbol, D(pnl), NOW - minutes_ago * MIN)


def test_low_profit_lock_losing_symbol_is_locked() -> None:
    state = account(closed_trades=(closed("-10", 180), closed("5", 30)))
    v = rejected(evaluate(LOW_PROFIT, state=state), RiskReason.LOW_PROFIT_SYMBOL)
    assert v.details["locked_until"] == NOW + 30 * MIN
    # The lock holds until 60 min after the trade that tripped it, then lifts.
    rejected(evaluate(LOW_PROFIT, state=state, now=NOW + 29 * MIN), RiskReason.LOW_PROFIT_SYMBOL)
    assert passed(evaluate(LOW_PROFIT, state=state, now=NOW + 30 * MIN), RiskCheck.LOW_PROFIT)


def test_low_profit_lock_profitable_or_few_or_old_trades_pass() -> None:
    profitable = account(closed_trades=(closed("-10", 180), closed("15", 30)))
    assert passed(evaluate(LOW_PROFIT, state=profitable), RiskCheck.LOW_PROFIT)
    one_trade = account(closed_trades=(closed("-10", 30),))
    assert passed(evaluate(LOW_PROFIT, state=one_trade), RiskCheck.LOW_PROFIT)
    # 7 h before the last trade: outside its 6 h look-back.
    old = account(closed_trades=(closed("-10", 7 * 60 + 30), closed("5", 30)))
    assert passed(evaluate(LOW_PROFIT, state=old), RiskCheck.LOW_PROFIT)
    other_symbol = account(
        closed_trades=(closed("-10", 180, "ETH/USDT"), closed("-5", 30, "ETH/USDT"))
    )
    assert passed(evaluate(LOW_PROFIT, state=other_symbol), RiskCheck.LOW_PROFIT)


def test_low_profit_lock_required_profit_above_zero_locks_a_thin_winner() -> None:
    thin = account(closed_trades=(closed("2", 180), closed("3", 30)))
    strict = RiskLimits(
        low_profit_lock=LowProfitLock(
            trade_limit=2, lookback_minutes=360, stop_duration_minutes=60, required_profit=D(10)
        )
    )
    rejected(evaluate(strict, state=thin), RiskReason.LOW_PROFIT_SYMBOL)
    assert passed(evaluate(LOW_PROFIT, state=thin), RiskCheck.LOW_PROFIT)


# --------------------------------------------------------------------------- exposure


def test_exposure_above_max_rejects() -> None:
    state = account(open_exposure=D(4500))  # plus 1000 is 55 % of 10000
    v = rejected(evaluate(RiskLimits(max_exposure_pct=D(50)), state=state), RiskReason.MAX_EXPOSURE)
    assert (v.details["adding"], v.details["exposure_pct"]) == (D(1000), D(55))


def test_exposure_at_max_passes_and_is_derived_from_positions() -> None:
    state = account(open_exposure=D(4500))
    assert passed(evaluate(RiskLimits(max_exposure_pct=D(55)), state=state), RiskCheck.EXPOSURE)
    # 1 ETH at 3000 plus 10 SOL at 100 = 4000, plus 1000 = 50 %.
    held = account(positions=(ETH, SOL))
    assert passed(evaluate(RiskLimits(max_exposure_pct=D(50)), state=held), RiskCheck.EXPOSURE)
    rejected(evaluate(RiskLimits(max_exposure_pct=D(49)), state=held), RiskReason.MAX_EXPOSURE)


# --------------------------------------------------------------------------- exits

EVERYTHING_BLOCKS = RiskLimits(
    min_confidence=0.99,
    max_decision_age_seconds=1,
    max_candle_age_candles=1,
    require_stop_loss=True,
    max_open_positions=0,
    max_positions_per_symbol=0,
    max_trades_per_day=0,
    cooldown_after_trade_minutes=600,
    cooldown_after_loss_minutes=600,
    max_daily_loss=D(1),
    max_daily_loss_pct=D(1),
    max_drawdown_pct=D(1),
    stoploss_guard=StoplossGuard(trade_limit=1, lookback_minutes=600, stop_duration_minutes=600),
    low_profit_lock=LowProfitLock(trade_limit=1, lookback_minutes=600, stop_duration_minutes=600),
    max_exposure_pct=D("0.01"),
)
DISTRESSED = account(
    equity=D(5000),
    cash=D(4520),
    peak_equity=D(10000),
    positions=(OpenPosition(BTC, D("0.0123"), D(40000)),),
    realized_pnl_today=D(-800),
    trades_today=9,
    last_trade_at={BTC: NOW - MIN},
    last_loss_at=NOW - MIN,
    closed_trades=stop_outs(5),
)


def test_exit_of_a_held_long_passes_every_entry_only_check() -> None:
    stale = NOW + timedelta(hours=1)
    for side in (Action.CLOSE, Action.SELL):
        trade = intent(side=side, confidence=0.1, stop_loss=None, take_profit=None)
        v = accepted(evaluate(EVERYTHING_BLOCKS, trade=trade, state=DISTRESSED, now=stale))
        assert (v.quantity, v.notional) == (D("0.0123"), D(615))
        assert v.checks_passed == (RiskCheck.KILL_SWITCH, RiskCheck.LIVE_MODE, RiskCheck.SIZING)
        skipped = [r for r in v.trail if r.status is CheckStatus.SKIPPED]
        assert len(skipped) == len(RiskCheck) - 3
        assert all("exit" in r.details["why"] for r in skipped)


def test_exit_sell_with_a_size_hint_sells_part_of_the_position() -> None:
    trade = intent(side=Action.SELL, size_hint=D("0.005"))
    v = accepted(evaluate(trade=trade, state=DISTRESSED))
    assert (v.quantity, v.details["bound_by"]) == (D("0.005"), "size_hint")
    close = intent(side=Action.CLOSE, size_hint=D("0.005"))  # CLOSE closes all of it
    assert accepted(evaluate(trade=close, state=DISTRESSED)).quantity == D("0.0123")


def test_exit_without_a_position_rejects_nothing_to_close() -> None:
    for side in (Action.SELL, Action.CLOSE):
        state = account(positions=(ETH,))
        rejected(evaluate(trade=intent(side=side), state=state), RiskReason.NOTHING_TO_CLOSE)


def test_exit_below_the_markets_minimums_rejects() -> None:
    dust = account(positions=(OpenPosition(BTC, D("0.00015"), D(40000)),))
    v = rejected(
        evaluate(trade=intent(side=Action.CLOSE), state=dust), RiskReason.BELOW_MIN_NOTIONAL
    )
    assert v.details["quantity"] == D("0.0001")
    tiny = account(positions=(OpenPosition(BTC, D("0.00005"), D(40000)),))
    rejected(evaluate(trade=intent(side=Action.CLOSE), state=tiny), RiskReason.BELOW_MIN_AMOUNT)


# --------------------------------------------------------------------------- limits, merge


def test_limits_parse_from_config_json_with_one_or_many_sizings() -> None:
    limits = RiskLimits.model_validate_json(
        '{"sizing": {"method": "risk_per_trade", "risk_pct": 1}, "min_confidence": 0.6,'
        ' "max_daily_loss": "250.5", "stoploss_guard": {"trade_limit": 3,'
        ' "lookback_minutes": 240, "stop_duration_minutes": 120}}'
    )
    assert limits.sizing == (RiskPerTrade(risk_pct=D(1)),)
    assert limits.max_daily_loss == D("250.5")
    assert limits.stoploss_guard is not None and limits.stoploss_guard.lookback == 4 * 60 * MIN
    many = RiskLimits.model_validate(
        {
            "sizing": [
                {"method": "fixed_notional", "notional": 100},
                {"method": "percent_equity", "pct": 5},
            ]
        }
    )
    assert many.sizings == (FixedNotional(notional=D(100)), PercentOfEquity(pct=D(5)))
    assert RiskLimits().sizings == (DEFAULT_SIZING,)


def test_limits_round_trip_through_stored_json() -> None:
    limits = RiskLimits(
        sizing=(RiskPerTrade(risk_pct=D("0.5")), FixedNotional(notional=D("99.5"))),
        max_daily_loss=D("12.5"),
        cooldown_after_loss_minutes=15,
        low_profit_lock=LowProfitLock(
            trade_limit=2, lookback_minutes=30, stop_duration_minutes=10, required_profit=D(1)
        ),
    )
    assert RiskLimits.model_validate_json(limits.model_dump_json()) == limits
    assert RiskLimits.model_validate(limits.model_dump(mode="json")) == limits
    assert "max_exposure_pct" in RiskLimits.model_json_schema()["properties"]


@pytest.mark.parametrize(
    "config",
    [
        {"max_open_position": 3},
        {"min_confidence": 1.5},
        {"max_daily_loss_pct": 150},
        {"max_daily_loss": -5},
        {"sizing": {"method": "kelly"}},
        {"stoploss_guard": {"trade_limit": 0, "lookback_minutes": 1, "stop_duration_minutes": 1}},
    ],
)
def test_limits_bad_config_is_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RiskLimits.model_validate(config)


def test_merge_has_a_rule_for_every_field() -> None:
    assert set(_MERGE) == set(RiskLimits.model_fields)


def test_merge_the_stricter_value_wins_field_by_field() -> None:
    account_level = RiskLimits(
        min_confidence=0.5,
        max_open_positions=5,
        max_daily_loss=D(300),
        cooldown_after_trade_minutes=10,
        max_exposure_pct=D(80),
        stoploss_guard=StoplossGuard(trade_limit=4, lookback_minutes=60, stop_duration_minutes=120),
    )
    group_level = RiskLimits(
        min_confidence=0.7,
        max_open_positions=8,
        max_daily_loss_pct=D(2),
        cooldown_after_trade_minutes=30,
        require_stop_loss=True,
        stoploss_guard=StoplossGuard(
            trade_limit=2, lookback_minutes=240, stop_duration_minutes=30, only_per_symbol=True
        ),
        low_profit_lock=LowProfitLock(trade_limit=3, lookback_minutes=60, stop_duration_minutes=60),
    )
    merged = merge_limits(account_level, group_level)
    assert merged == merge_limits(group_level, None, account_level)
    assert merged.min_confidence == 0.7
    assert merged.max_open_positions == 5
    assert (merged.max_daily_loss, merged.max_daily_loss_pct) == (D(300), D(2))
    assert merged.cooldown_after_trade_minutes == 30
    assert merged.max_exposure_pct == D(80)
    assert merged.require_stop_loss is True and merged.kill_switch is False
    assert merged.stoploss_guard == StoplossGuard(
        trade_limit=2, lookback_minutes=240, stop_duration_minutes=120, only_per_symbol=False
    )
    assert merged.low_profit_lock == group_level.low_profit_lock
    assert merge_limits() == RiskLimits()
    assert merge_limits(account_level) == account_level


def test_merge_of_both_levels_rejects_what_either_level_rejects() -> None:
    account_level = RiskLimits(max_trades_per_day=10, min_confidence=0.4)
    group_level = RiskLimits(max_trades_per_day=3, min_confidence=0.9)
    busy = account(trades_today=5)
    assert passed(evaluate(account_level, state=busy), RiskCheck.TRADES_PER_DAY)
    merged = merge_limits(account_level, group_level.model_copy(update={"min_confidence": 0.1}))
    rejected(evaluate(merged, state=busy), RiskReason.MAX_TRADES_PER_DAY)
    rejected(evaluate(merge_limits(account_level, group_level)), RiskReason.CONFIDENCE_TOO_LOW)


# --------------------------------------------------------------------------- properties

prices = st.decimals(min_value=D("0.0001"), max_value=D(100000), places=4)
steps = st.sampled_from([D(1), D("0.1"), D("0.01"), D("0.001"), D("0.00001"), D("0.5"), D("0.25")])
money = st.decimals(min_value=D(0), max_value=D(1_000_000), places=2)


@given(value=st.decimals(min_value=D(0), max_value=D(10**9), places=8), step=steps)
def test_floor_to_step_is_the_largest_multiple_not_above(value: Decimal, step: Decimal) -> None:
    floored = floor_to_step(value, step)
    assert floored <= value < floored + step
    assert floored % step == 0


@settings(max_examples=300, deadline=None)
@given(
    price=prices,
    step=steps,
    precision=st.none() | st.integers(min_value=0, max_value=8),
    equity=money,
    cash=money,
    fee=st.sampled_from([D(0), D("0.001"), D("0.0075")]),
    pct=st.decimals(min_value=D("0.01"), max_value=D(100), places=2),
    hint=st.none() | st.decimals(min_value=D(0), max_value=D(1000), places=6),
    min_amount=st.none() | st.decimals(min_value=D(0), max_value=D(10), places=4),
    min_notional=st.none() | st.decimals(min_value=D(0), max_value=D(100), places=2),
)
def test_sizing_accepted_quantity_fits_the_market_and_the_cash(
    price: Decimal,
    step: Decimal,
    precision: int | None,
    equity: Decimal,
    cash: Decimal,
    fee: Decimal,
    pct: Decimal,
    hint: Decimal | None,
    min_amount: Decimal | None,
    min_notional: Decimal | None,
) -> None:
    market = MarketRules(
        BTC,
        amount_step=step,
        amount_precision=precision,
        min_amount=min_amount,
        min_notional=min_notional,
        taker_fee=fee,
    )
    trade = intent(entry=price, stop_loss=None, take_profit=None, size_hint=hint)
    state = account(equity=equity, cash=cash)
    v = evaluate(
        RiskLimits(sizing=(PercentOfEquity(pct=pct),)), trade=trade, state=state, market=market
    )
    if not v.accepted:
        assert v.reason in {
            RiskReason.INSUFFICIENT_CASH,
            RiskReason.BELOW_MIN_AMOUNT,
            RiskReason.BELOW_MIN_NOTIONAL,
        }
        return
    q = v.quantity
    assert q is not None and v.notional is not None
    assert q > 0
    assert q % step == 0
    assert precision is None or q == round(q, precision)
    assert q * price * (1 + fee) <= cash
    assert q * price <= equity * pct / 100
    assert hint is None or q <= hint
    assert min_amount is None or q >= min_amount
    assert min_notional is None or q * price >= min_notional
    assert v.notional == q * price


@settings(max_examples=100, deadline=None)
@given(value=st.decimals(min_value=D(0), max_value=D(10**6), places=10), step=steps)
def test_round_amount_never_rounds_up(value: Decimal, step: Decimal) -> None:
    rounded = round_amount(value, MarketRules(BTC, amount_step=step, amount_precision=6))
    assert rounded <= value
    assert value - rounded < step + D("0.000001")


limit_values = st.none() | st.integers(min_value=0, max_value=20)


@given(a=limit_values, b=limit_values, c=limit_values, d=limit_values)
def test_merge_is_never_looser_than_either_level(
    a: int | None, b: int | None, c: int | None, d: int | None
) -> None:
    one = RiskLimits(max_open_positions=a, cooldown_after_loss_minutes=c or None)
    two = RiskLimits(max_open_positions=b, cooldown_after_loss_minutes=d or None)
    merged = merge_limits(one, two)
    assert merged == merge_limits(two, one)
    given_max = [x for x in (a, b) if x is not None]
    assert merged.max_open_positions == (min(given_max) if given_max else None)
    given_cooldowns = [x for x in (c, d) if x]
    assert merged.cooldown_after_loss_minutes == (max(given_cooldowns) if given_cooldowns else None)


def test_engine_skips_only_checks_that_would_say_off() -> None:
    """The engine does not run a check whose limit is unset (`OFF_WHEN_UNSET`): each
    such check, run anyway on a state that would trip it if it were on, must give
    exactly the result the engine puts in the trail instead."""
    from shared.kernel.risk.engine import _CHECKS, _OFF, OFF_WHEN_UNSET, _Run

    tripping = account(
        positions=(OpenPosition("ETH/USDT", D(1), D(100)), OpenPosition(BTC, D(1), D(100))),
        peak_equity=D(10**6),
        realized_pnl_today=D(-5000),
        trades_today=99,
        last_trade_at={BTC: NOW},
        last_loss_at=NOW,
        closed_trades=(ClosedTrade(BTC, D(-1), NOW, True),) * 5,
    )
    run = _Run(intent(confidence=0.0), tripping, MARKET, RiskLimits(), NOW, False)
    functions = {check: function for check, function, _ in _CHECKS}
    for check, limit in OFF_WHEN_UNSET.items():
        assert getattr(RiskLimits(), limit) is None
        assert functions[check](run) is _OFF[check]
    # And with its limit set, each check runs and says something else.
    strict = RiskLimits.model_validate(
        {
            "min_confidence": 0.5,
            "max_open_positions": 1,
            "max_positions_per_symbol": 1,
            "max_trades_per_day": 1,
            "cooldown_after_trade_minutes": 5,
            "cooldown_after_loss_minutes": 5,
            "max_daily_loss": 1,
            "max_daily_loss_pct": 1,
            "max_drawdown_pct": 1,
            "stoploss_guard": {
                "lookback_minutes": 60,
                "trade_limit": 1,
                "stop_duration_minutes": 60,
            },
            "low_profit_lock": {
                "lookback_minutes": 60,
                "trade_limit": 1,
                "stop_duration_minutes": 60,
            },
            "max_exposure_pct": 1,
        }
    )
    run = _Run(intent(confidence=0.0), tripping, MARKET, strict, NOW, False)
    for check in set(OFF_WHEN_UNSET) - {RiskCheck.DECISION_AGE, RiskCheck.CANDLE_AGE}:
        assert functions[check](run).status is not CheckStatus.SKIPPED, check


@pytest.mark.parametrize("side", [Action.BUY, Action.SELL])
def test_engine_trail_lists_every_check_in_order_with_a_reused_engine(side: Action) -> None:
    """One engine, limits changing between calls: each verdict's trail has every check
    in `RiskCheck` order and equals a fresh engine's."""
    shared = RiskEngine()
    state = account(positions=(OpenPosition(BTC, D("0.1"), D(50000)),))
    for limits in (RiskLimits(), RiskLimits(max_open_positions=3), RiskLimits()):
        trade = intent(side=side, stop_loss=None, take_profit=None)
        got = shared.evaluate(trade, state, MARKET, limits, now=NOW)
        want = RiskEngine().evaluate(trade, state, MARKET, limits, now=NOW)
        assert [r.check for r in got.trail] == list(RiskCheck)
        assert got == want
