"""The risk engine: the ordered checks every trade intent passes before an order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.kernel.risk.limits import LowProfitLock, RiskLimits, StoplossGuard
from shared.kernel.risk.model import (
    ZERO,
    AccountState,
    MarketRules,
    Mode,
    TradeIntent,
    require_aware,
    trading_day_start,
)
from shared.kernel.risk.sizing import Sized, size
from shared.kernel.risk.verdict import (
    CheckResult,
    CheckStatus,
    RiskCheck,
    RiskReason,
    RiskVerdict,
)
from shared.market.candles import timeframe_delta

_HUNDRED = Decimal(100)


@dataclass(slots=True)
class _Run:
    intent: TradeIntent
    account: AccountState
    market: MarketRules
    limits: RiskLimits
    now: datetime
    live_trading_enabled: bool
    sized: Sized | None = None


def _passed(check: RiskCheck, **details: Any) -> CheckResult:
    return CheckResult(check, CheckStatus.PASSED, details)


def _off(check: RiskCheck) -> CheckResult:
    return _OFF[check]


# A check whose limit is not set says the same every time: built once (most of the
# trail of a typical intent; its details are read-only like every check's).
_OFF = {c: CheckResult(c, CheckStatus.SKIPPED, {"why": "limit not set"}) for c in RiskCheck}


def _rejected(check: RiskCheck, reason: RiskReason, message: str, **details: Any) -> CheckResult:
    return CheckResult(check, CheckStatus.REJECTED, details, reason, message)


def _pct(value: Decimal) -> str:
    return f"{value:.2f} %"


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.1f} min"


# --------------------------------------------------------------------------- every intent


def _kill_switch(run: _Run) -> CheckResult:
    check = RiskCheck.KILL_SWITCH
    if run.limits.kill_switch:
        return _rejected(
            check,
            RiskReason.KILL_SWITCH,
            f"trading on {run.account.account} is halted by the kill switch: turn "
            "kill_switch off in the account's or the group's risk limits to trade again",
        )
    return _KILL_SWITCH_OFF


_KILL_SWITCH_OFF = CheckResult(RiskCheck.KILL_SWITCH, CheckStatus.PASSED, {})


def _live_mode(run: _Run) -> CheckResult:
    check = RiskCheck.LIVE_MODE
    mode = run.account.mode
    passed = _LIVE_MODE_PASSED.get((mode, run.live_trading_enabled))
    if passed is not None:
        return passed
    if mode is Mode.LIVE and not run.live_trading_enabled:
        return _rejected(
            check,
            RiskReason.LIVE_TRADING_NOT_CONFIRMED,
            f"account {run.account.account} is in live mode but live trading is not "
            "confirmed: set ATS_ENABLE_LIVE_TRADING to the confirmation value for the "
            "execution service, or switch the account to paper",
            mode=mode,
            live_trading_enabled=False,
        )
    return _passed(check, mode=mode, live_trading_enabled=run.live_trading_enabled)


def _sizing(run: _Run) -> CheckResult:
    result = size(run.intent, run.account, run.market, run.limits)
    if isinstance(result, CheckResult):
        return result
    run.sized = result
    return CheckResult(RiskCheck.SIZING, CheckStatus.PASSED, dict(result.details))


# What `_live_mode` passes with, per (mode, live_trading_enabled): built once.
_LIVE_MODE_PASSED = {
    (mode, enabled): CheckResult(
        RiskCheck.LIVE_MODE,
        CheckStatus.PASSED,
        {"mode": mode, "live_trading_enabled": enabled},
    )
    for mode, enabled in ((Mode.PAPER, False), (Mode.PAPER, True), (Mode.LIVE, True))
}


# --------------------------------------------------------------------------- entries only


def _confidence(run: _Run) -> CheckResult:
    check, minimum = RiskCheck.CONFIDENCE, run.limits.min_confidence
    if minimum is None:
        return _off(check)
    confidence = run.intent.confidence
    if confidence < minimum:
        return _rejected(
            check,
            RiskReason.CONFIDENCE_TOO_LOW,
            f"confidence {confidence:.2f} is below the minimum {minimum:.2f} "
            "(min_confidence): only stronger decisions are traded",
            confidence=confidence,
            min_confidence=minimum,
        )
    return _passed(check, confidence=confidence, min_confidence=minimum)


def _decision_age(run: _Run) -> CheckResult:
    check, limit = RiskCheck.DECISION_AGE, run.limits.max_decision_age_seconds
    if limit is None:
        return _off(check)
    age = (run.now - run.intent.decided_at).total_seconds()
    numbers = {"decided_at": run.intent.decided_at, "age_seconds": age, "max_seconds": limit}
    if age > limit:
        return _rejected(
            check,
            RiskReason.STALE_DECISION,
            f"the decision is {age:.0f} s old, older than {limit:g} s "
            "(max_decision_age_seconds): the market has moved on since; look for lag "
            "between the group and execution",
            **numbers,
        )
    return _passed(check, **numbers)


def _candle_age(run: _Run) -> CheckResult:
    check, limit = RiskCheck.CANDLE_AGE, run.limits.max_candle_age_candles
    if limit is None:
        return _off(check)
    close = run.intent.candle_close
    if close is None or run.intent.timeframe is None:
        return CheckResult(check, CheckStatus.SKIPPED, {"why": "the decision names no candle"})
    candles = (run.now - close) / timeframe_delta(run.intent.timeframe)
    numbers = {"candle_close": close, "age_candles": candles, "max_candles": limit}
    if candles > limit:
        return _rejected(
            check,
            RiskReason.STALE_CANDLE,
            f"the {run.intent.timeframe} candle the decision was made on closed "
            f"{candles:.1f} candles ago, more than {limit:g} (max_candle_age_candles): "
            "the feed or the group is lagging",
            **numbers,
        )
    return _passed(check, **numbers)


def _stop_geometry(run: _Run) -> CheckResult:
    check, intent, limits = RiskCheck.STOP_GEOMETRY, run.intent, run.limits
    entry, stop, target = intent.entry, intent.stop_loss, intent.take_profit
    numbers: dict[str, Any] = {"entry": entry, "stop_loss": stop, "take_profit": target}
    if stop is None and limits.needs_stop_loss:
        why = "require_stop_loss is set" if limits.require_stop_loss else "risk_per_trade sizing"
        return _rejected(
            check,
            RiskReason.STOP_LOSS_REQUIRED,
            f"the entry has no stop loss, and {why} needs one: have the strategy set stop_loss",
            **numbers,
        )
    if stop is not None and stop >= entry:
        return _rejected(
            check,
            RiskReason.STOP_LOSS_WRONG_SIDE,
            f"stop loss {stop} is not below the entry {entry}: a long's stop must be "
            "below its entry",
            **numbers,
        )
    if target is not None and target <= entry:
        return _rejected(
            check,
            RiskReason.TAKE_PROFIT_WRONG_SIDE,
            f"take profit {target} is not above the entry {entry}: a long's target must "
            "be above its entry",
            **numbers,
        )
    if stop is not None:
        distance = (entry - stop) / entry * _HUNDRED
        numbers.update(stop_distance_pct=distance, max_stop_loss_pct=limits.max_stop_loss_pct)
        if limits.max_stop_loss_pct is not None and distance > limits.max_stop_loss_pct:
            return _rejected(
                check,
                RiskReason.STOP_LOSS_TOO_FAR,
                f"stop loss {stop} is {_pct(distance)} below the entry {entry}, farther "
                f"than {_pct(limits.max_stop_loss_pct)} (max_stop_loss_pct): tighten the stop",
                **numbers,
            )
    return CheckResult(check, CheckStatus.PASSED, numbers)


def _open_positions(run: _Run) -> CheckResult:
    check, limit = RiskCheck.OPEN_POSITIONS, run.limits.max_open_positions
    if limit is None:
        return _off(check)
    held = run.account.open_symbols
    numbers = {"open_positions": len(held), "max_open_positions": limit}
    if run.intent.symbol in held:
        return _passed(check, adds_to_open_position=True, **numbers)
    if len(held) >= limit:
        return _rejected(
            check,
            RiskReason.MAX_OPEN_POSITIONS,
            f"{len(held)} positions are open, the most allowed is {limit} "
            "(max_open_positions): a new symbol waits until one closes",
            **numbers,
        )
    return _passed(check, **numbers)


def _positions_per_symbol(run: _Run) -> CheckResult:
    check, limit = RiskCheck.POSITIONS_PER_SYMBOL, run.limits.max_positions_per_symbol
    if limit is None:
        return _off(check)
    symbol = run.intent.symbol
    count = sum(1 for p in run.account.positions if p.symbol == symbol and p.quantity > 0)
    numbers = {"positions": count, "max_positions_per_symbol": limit}
    if count >= limit:
        return _rejected(
            check,
            RiskReason.MAX_POSITIONS_PER_SYMBOL,
            f"{count} {symbol} positions are open, the most allowed is {limit} "
            "(max_positions_per_symbol): close one before adding",
            **numbers,
        )
    return _passed(check, **numbers)


def _trades_per_day(run: _Run) -> CheckResult:
    check, limit = RiskCheck.TRADES_PER_DAY, run.limits.max_trades_per_day
    if limit is None:
        return _off(check)
    trades = run.account.trades_today
    resumes = trading_day_start(run.now) + timedelta(days=1)
    numbers = {"trades_today": trades, "max_trades_per_day": limit}
    if trades >= limit:
        return _rejected(
            check,
            RiskReason.MAX_TRADES_PER_DAY,
            f"{trades} entries were opened today, the most allowed is {limit} "
            f"(max_trades_per_day): entries resume at {resumes.isoformat()}",
            resumes_at=resumes,
            **numbers,
        )
    return _passed(check, **numbers)


def _cooldown(
    run: _Run,
    check: RiskCheck,
    reason: RiskReason,
    minutes: float | None,
    last: datetime | None,
    what: str,
) -> CheckResult:
    if minutes is None:
        return _off(check)
    if last is None:
        return _passed(check, last=None, cooldown_minutes=minutes)
    cooldown = timedelta(minutes=minutes)
    until = last + cooldown
    numbers = {"last": last, "cooldown_minutes": minutes, "until": until}
    if run.now < until:
        return _rejected(
            check,
            reason,
            f"{what} {_minutes(run.now - last)} ago, the cooldown is {_minutes(cooldown)}: "
            f"entries resume at {until.isoformat()}",
            **numbers,
        )
    return _passed(check, **numbers)


def _trade_cooldown(run: _Run) -> CheckResult:
    symbol = run.intent.symbol
    return _cooldown(
        run,
        RiskCheck.TRADE_COOLDOWN,
        RiskReason.COOLDOWN_AFTER_TRADE,
        run.limits.cooldown_after_trade_minutes,
        run.account.last_trade_at.get(symbol),
        f"{symbol} was last traded",
    )


def _loss_cooldown(run: _Run) -> CheckResult:
    return _cooldown(
        run,
        RiskCheck.LOSS_COOLDOWN,
        RiskReason.COOLDOWN_AFTER_LOSS,
        run.limits.cooldown_after_loss_minutes,
        run.account.last_loss,
        "the last losing trade closed",
    )


def _daily_loss(run: _Run) -> CheckResult:
    check, limit = RiskCheck.DAILY_LOSS, run.limits.max_daily_loss
    if limit is None:
        return _off(check)
    account = run.account
    loss = -account.realized_pnl_today
    numbers = {"realized_pnl_today": account.realized_pnl_today, "max_daily_loss": limit}
    if loss >= limit:
        return _rejected(
            check,
            RiskReason.DAILY_LOSS_LIMIT,
            f"today's realized loss {loss} {account.currency} reached the limit of "
            f"{limit} {account.currency} (max_daily_loss): entries resume tomorrow (UTC)",
            currency=account.currency,
            **numbers,
        )
    return _passed(check, currency=account.currency, **numbers)


def _daily_loss_pct(run: _Run) -> CheckResult:
    check, limit = RiskCheck.DAILY_LOSS_PCT, run.limits.max_daily_loss_pct
    if limit is None:
        return _off(check)
    account = run.account
    base = account.day_start_equity if account.day_start_equity is not None else account.equity
    loss = -account.realized_pnl_today
    numbers: dict[str, Any] = {
        "realized_pnl_today": account.realized_pnl_today,
        "base_equity": base,
        "max_daily_loss_pct": limit,
    }
    if base <= 0:
        return _rejected(
            check,
            RiskReason.DAILY_LOSS_LIMIT_PCT,
            f"the account's equity {base} {account.currency} is not positive: add funds",
            **numbers,
        )
    # A percentage is compared with a percentage, never with the amount.
    loss_pct = loss / base * _HUNDRED
    numbers["loss_pct"] = loss_pct
    if loss_pct >= limit:
        return _rejected(
            check,
            RiskReason.DAILY_LOSS_LIMIT_PCT,
            f"today's realized loss {loss} {account.currency} is {_pct(loss_pct)} of "
            f"{base} {account.currency}, at or above {_pct(limit)} (max_daily_loss_pct): "
            "entries resume tomorrow (UTC)",
            **numbers,
        )
    return _passed(check, **numbers)


def _drawdown(run: _Run) -> CheckResult:
    check, limit = RiskCheck.DRAWDOWN, run.limits.max_drawdown_pct
    if limit is None:
        return _off(check)
    account = run.account
    peak = account.peak_equity
    if peak is None or peak <= 0:
        return _passed(check, peak_equity=peak, why="no peak equity recorded yet")
    drawdown = max((peak - account.equity) / peak * _HUNDRED, ZERO)
    numbers = {
        "equity": account.equity,
        "peak_equity": peak,
        "drawdown_pct": drawdown,
        "max_drawdown_pct": limit,
    }
    if drawdown >= limit:
        return _rejected(
            check,
            RiskReason.MAX_DRAWDOWN,
            f"equity {account.equity} is {_pct(drawdown)} below its peak {peak}, at or "
            f"beyond {_pct(limit)} (max_drawdown_pct): entries are halted until an "
            "operator raises the limit or resets the peak",
            **numbers,
        )
    return _passed(check, **numbers)


def _locked_until(
    events: Iterable[tuple[datetime, Decimal]],
    now: datetime,
    lookback: timedelta,
    duration: timedelta,
    trips: Callable[[list[Decimal]], bool],
) -> tuple[datetime, int] | None:
    """When a protection's lock ends, recomputed from history: each event `t` still
    within `duration` of `now` locks if the events in (t - lookback, t] trip it."""
    # An event stamped after `now` (another clock, a replay) counts as happening now.
    clamped = sorted((min(at, now), value) for at, value in events)
    lock: tuple[datetime, int] | None = None
    for at, _ in clamped:
        if now >= at + duration:
            continue
        window = [value for t, value in clamped if at - lookback < t <= at]
        if trips(window) and (lock is None or at + duration > lock[0]):
            lock = (at + duration, len(window))
    return lock


def _stoploss_guard(run: _Run) -> CheckResult:
    check, guard = RiskCheck.STOPLOSS_GUARD, run.limits.stoploss_guard
    if guard is None:
        return _off(check)
    symbol = run.intent.symbol
    stop_outs = [
        (t.closed_at, t.pnl)
        for t in run.account.closed_trades
        if t.stopped_out and (not guard.only_per_symbol or t.symbol == symbol)
    ]
    lock = _locked_until(stop_outs, run.now, guard.lookback, guard.stop_duration, _enough(guard))
    numbers = {**guard.model_dump(), "stop_outs": len(stop_outs)}
    if lock is not None:
        until, count = lock
        scope = f"on {symbol}" if guard.only_per_symbol else "on the account"
        return _rejected(
            check,
            RiskReason.STOPLOSS_GUARD,
            f"{count} stop-outs {scope} within {guard.lookback_minutes:g} min reached the "
            f"stop-loss guard's limit of {guard.trade_limit}: entries are paused until "
            f"{until.isoformat()}",
            locked_until=until,
            **numbers,
        )
    return _passed(check, **numbers)


def _enough(guard: StoplossGuard) -> Callable[[list[Decimal]], bool]:
    return lambda window: len(window) >= guard.trade_limit


def _low_profit(run: _Run) -> CheckResult:
    check, rule = RiskCheck.LOW_PROFIT, run.limits.low_profit_lock
    if rule is None:
        return _off(check)
    symbol = run.intent.symbol
    trades = [(t.closed_at, t.pnl) for t in run.account.closed_trades if t.symbol == symbol]
    lock = _locked_until(trades, run.now, rule.lookback, rule.stop_duration, _unprofitable(rule))
    numbers = {**rule.model_dump(), "trades": len(trades)}
    if lock is not None:
        until, count = lock
        return _rejected(
            check,
            RiskReason.LOW_PROFIT_SYMBOL,
            f"{symbol}'s last {count} trades within {rule.lookback_minutes:g} min earned "
            f"less than {rule.required_profit} {run.account.currency} (low_profit_lock): "
            f"{symbol} is locked until {until.isoformat()}",
            locked_until=until,
            **numbers,
        )
    return _passed(check, **numbers)


def _unprofitable(rule: LowProfitLock) -> Callable[[list[Decimal]], bool]:
    return lambda pnls: len(pnls) >= rule.trade_limit and sum(pnls, ZERO) < rule.required_profit


def _exposure(run: _Run) -> CheckResult:
    check, limit = RiskCheck.EXPOSURE, run.limits.max_exposure_pct
    if limit is None:
        return _off(check)
    account = run.account
    adding = run.sized.notional if run.sized is not None else ZERO
    after = account.exposure + adding
    numbers: dict[str, Any] = {
        "open_exposure": account.exposure,
        "adding": adding,
        "equity": account.equity,
        "max_exposure_pct": limit,
    }
    if account.equity <= 0:
        return _rejected(
            check,
            RiskReason.MAX_EXPOSURE,
            f"the account's equity {account.equity} {account.currency} is not positive: add funds",
            **numbers,
        )
    exposure = after / account.equity * _HUNDRED
    numbers["exposure_pct"] = exposure
    if exposure > limit:
        return _rejected(
            check,
            RiskReason.MAX_EXPOSURE,
            f"open positions worth {account.exposure} plus this {adding} "
            f"{account.currency} would be {_pct(exposure)} of equity {account.equity}, "
            f"above {_pct(limit)} (max_exposure_pct): size smaller or close positions",
            **numbers,
        )
    return _passed(check, **numbers)


_CHECKS: tuple[tuple[RiskCheck, Callable[[_Run], CheckResult], bool], ...] = (
    # (check, function, applies to exits)
    (RiskCheck.KILL_SWITCH, _kill_switch, True),
    (RiskCheck.LIVE_MODE, _live_mode, True),
    (RiskCheck.CONFIDENCE, _confidence, False),
    (RiskCheck.DECISION_AGE, _decision_age, False),
    (RiskCheck.CANDLE_AGE, _candle_age, False),
    (RiskCheck.STOP_GEOMETRY, _stop_geometry, False),
    (RiskCheck.SIZING, _sizing, True),
    (RiskCheck.OPEN_POSITIONS, _open_positions, False),
    (RiskCheck.POSITIONS_PER_SYMBOL, _positions_per_symbol, False),
    (RiskCheck.TRADES_PER_DAY, _trades_per_day, False),
    (RiskCheck.TRADE_COOLDOWN, _trade_cooldown, False),
    (RiskCheck.LOSS_COOLDOWN, _loss_cooldown, False),
    (RiskCheck.DAILY_LOSS, _daily_loss, False),
    (RiskCheck.DAILY_LOSS_PCT, _daily_loss_pct, False),
    (RiskCheck.DRAWDOWN, _drawdown, False),
    (RiskCheck.STOPLOSS_GUARD, _stoploss_guard, False),
    (RiskCheck.LOW_PROFIT, _low_profit, False),
    (RiskCheck.EXPOSURE, _exposure, False),
)

_EXIT_SKIP = {"why": "exits reduce risk: entry-only check"}
_EXIT_SKIPPED = {c: CheckResult(c, CheckStatus.SKIPPED, _EXIT_SKIP) for c in RiskCheck}

# The limit whose None turns a check off (it then returns `_OFF[check]`, always):
# with it unset the check need not run at all (tests/shared/kernel/risk pins this).
OFF_WHEN_UNSET: dict[RiskCheck, str] = {
    RiskCheck.CONFIDENCE: "min_confidence",
    RiskCheck.DECISION_AGE: "max_decision_age_seconds",
    RiskCheck.CANDLE_AGE: "max_candle_age_candles",
    RiskCheck.OPEN_POSITIONS: "max_open_positions",
    RiskCheck.POSITIONS_PER_SYMBOL: "max_positions_per_symbol",
    RiskCheck.TRADES_PER_DAY: "max_trades_per_day",
    RiskCheck.TRADE_COOLDOWN: "cooldown_after_trade_minutes",
    RiskCheck.LOSS_COOLDOWN: "cooldown_after_loss_minutes",
    RiskCheck.DAILY_LOSS: "max_daily_loss",
    RiskCheck.DAILY_LOSS_PCT: "max_daily_loss_pct",
    RiskCheck.DRAWDOWN: "max_drawdown_pct",
    RiskCheck.STOPLOSS_GUARD: "stoploss_guard",
    RiskCheck.LOW_PROFIT: "low_profit_lock",
    RiskCheck.EXPOSURE: "max_exposure_pct",
}

# Per check, the function to run, or None and the result it would give for sure.
_Plan = tuple[tuple[Callable[[_Run], CheckResult] | None, CheckResult | None], ...]


def _plans(limits: RiskLimits) -> tuple[_Plan, _Plan]:
    """What an entry and what an exit run under `limits`: `_CHECKS` with the checks
    whose limit is unset, and on exits the entry-only ones, replaced by their result."""
    entry: list[tuple[Callable[[_Run], CheckResult] | None, CheckResult | None]] = []
    exit_: list[tuple[Callable[[_Run], CheckResult] | None, CheckResult | None]] = []
    for check, function, on_exits in _CHECKS:
        limit = OFF_WHEN_UNSET.get(check)
        off = limit is not None and getattr(limits, limit) is None
        entry.append((None, _OFF[check]) if off else (function, None))
        exit_.append(entry[-1] if on_exits else (None, _EXIT_SKIPPED[check]))
    return tuple(entry), tuple(exit_)


class RiskEngine:
    """Runs the checks, in the order of `RiskCheck`, and stops at the first refusal.

    Pure: no I/O and no clock; `now` is passed to `evaluate`. One engine serves every
    account of a process: only `live_trading_enabled`, the shell's reading of
    `ATS_ENABLE_LIVE_TRADING`, is fixed at construction.
    """

    def __init__(self, *, live_trading_enabled: bool = False) -> None:
        self.live_trading_enabled = live_trading_enabled
        # The plans of the limits last seen: an account's limits object is reused
        # from one intent to the next (a backtest's, always).
        self._plans: tuple[RiskLimits, _Plan, _Plan] | None = None

    def evaluate(
        self,
        intent: TradeIntent,
        account: AccountState,
        market: MarketRules,
        limits: RiskLimits,
        *,
        now: datetime,
    ) -> RiskVerdict:
        """Check `intent` against the account, the market's rules and the (merged)
        limits at time `now`, and size it.

        Raises:
            ValueError: `now` is naive, or the intent, account and market do not
                belong together (a caller's mistake, not a risk decision).
        """
        require_aware("now", now)
        if intent.symbol != market.symbol:
            raise ValueError(f"market rules of {market.symbol} given for a {intent.symbol} intent")
        if intent.account != account.account:
            raise ValueError(f"state of account {account.account} given for {intent.account}")
        run = _Run(intent, account, market, limits, now, self.live_trading_enabled)
        plans = self._plans
        if plans is None or plans[0] is not limits:
            plans = self._plans = (limits, *_plans(limits))
        trail: list[CheckResult] = []
        rejected = CheckStatus.REJECTED
        for function, known in plans[1] if intent.is_entry else plans[2]:
            if function is None:
                trail.append(known)  # type: ignore[arg-type]  # set whenever function is None
                continue
            result = function(run)
            trail.append(result)
            if result.status is rejected:
                return _verdict(run, trail, result)
        return _verdict(run, trail, None)


def _verdict(run: _Run, trail: list[CheckResult], refusal: CheckResult | None) -> RiskVerdict:
    intent, sized = run.intent, run.sized
    quantity = sized.quantity if sized is not None else None
    price = sized.price if sized is not None else None
    notional = sized.notional if sized is not None else None
    if refusal is not None:
        return RiskVerdict(
            False,
            intent.symbol,
            intent.side,
            quantity,
            price,
            notional,
            refusal.reason,
            refusal.message,
            refusal.details,
            tuple(trail),
        )
    assert sized is not None  # noqa: S101 - the sizing check always runs and passed
    message = (
        f"accepted: {intent.side.value} {sized.quantity} {intent.symbol} at {sized.price} "
        f"(notional {sized.notional:.2f} {run.account.currency})"
    )
    return RiskVerdict(
        True,
        intent.symbol,
        intent.side,
        quantity,
        price,
        notional,
        None,
        message,
        sized.details,
        tuple(trail),
    )
