"""The performance tracker: each member's record of closed trades, and its weight.

Fed with `Outcome`s (symbol, the member that decided in `strategy`, realized PnL,
return in percent, `closed_at`), it reports per member the trades, win rate, total
and average PnL, and the weight the ensemble gives the member's votes. It reads no
clock: a time window is measured back from the `now` the caller passes.

The weight
----------
With `n` trades in the window, `k` of them won, returns `r_i` in percent, a prior of
`m = prior_trades` imaginary trades at win rate `p0 = prior_win_rate` and zero return::

    win_rate_smoothed = (k + m * p0) / (n + m)           # Beta-Binomial posterior mean
    win_factor        = win_rate_smoothed / p0           # 1.0 for a neutral record
    return_smoothed   = sum(r_i) / (n + m)               # the prior's trades earned 0 %
    pnl_factor        = 1 + pnl_span * tanh(return_smoothed / return_scale_pct)
    weight            = clamp(win_factor * pnl_factor, min_weight, max_weight)

So a new member starts at exactly 1.0 (neutral), a few lucky or unlucky trades move
it little, a long record moves it a lot, and no member is ever silenced
(`min_weight` > 0) or all-powerful (`max_weight`). The PnL factor uses returns, not
amounts: they compare across markets quoted in different currencies, and `tanh`
bounds what one outlier can do.

Decay: only the last `window_trades` trades of a member count, and, when
`window_days` is set and the caller passes `now`, only trades closed in the last
`window_days` days. The day window is what lets a member recover: once its old
losses age out, its weight returns toward neutral even if it has not traded since.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import Field

from shared.kernel.strategy import Outcome, StrategyParams

NEUTRAL_WEIGHT = 1.0


class TrackerParams(StrategyParams):
    """How the tracker weighs a member's record (see the module docstring)."""

    prior_trades: float = Field(
        default=4.0, gt=0, le=1000, description="Imaginary neutral trades every record starts with."
    )
    prior_win_rate: float = Field(default=0.5, gt=0, lt=1)
    pnl_span: float = Field(default=0.5, ge=0, lt=1)
    return_scale_pct: float = Field(default=1.0, gt=0, le=100)
    min_weight: float = Field(default=0.2, gt=0, le=1)
    max_weight: float = Field(default=2.0, ge=1, le=100)
    window_trades: int = Field(default=50, ge=1, le=100_000)
    window_days: float | None = Field(default=30.0, gt=0, le=3650)


@dataclass(frozen=True, slots=True)
class MemberStats:
    """A member's record in the tracker's window, and the weight derived from it."""

    member: str
    trades: int
    wins: int
    win_rate: float | None
    total_pnl: Decimal
    avg_pnl: Decimal | None
    avg_return_pct: float | None
    weight: float


class PerformanceTracker:
    """Per-member records of closed trades, and the weights derived from them."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params if params is not None else TrackerParams()
        self._trades: dict[str, deque[Outcome]] = {}

    def record(self, outcome: Outcome, member: str | None = None) -> None:
        """Add one closed trade, credited to `member` (default: `outcome.strategy`)."""
        name = member if member is not None else outcome.strategy
        if not name:
            raise ValueError(
                f"outcome of {outcome.symbol} at {outcome.closed_at.isoformat()} names no "
                "member: set Outcome.strategy or pass member="
            )
        trades = self._trades.get(name)
        if trades is None:
            trades = self._trades[name] = deque(maxlen=self.params.window_trades)
        trades.append(outcome)

    def record_all(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            self.record(outcome)

    def members(self) -> list[str]:
        return sorted(self._trades)

    def stats(self, member: str, *, now: datetime | None = None) -> MemberStats:
        """The member's record in the window ending at `now` (no day window if None)."""
        trades = self._window(member, now)
        n = len(trades)
        wins = sum(1 for t in trades if t.won)
        total = sum((t.pnl for t in trades), Decimal(0))
        returns = math.fsum(t.return_pct for t in trades)
        return MemberStats(
            member=member,
            trades=n,
            wins=wins,
            win_rate=wins / n if n else None,
            total_pnl=total,
            avg_pnl=total / n if n else None,
            avg_return_pct=returns / n if n else None,
            weight=self._weight(n, wins, returns),
        )

    def weight(self, member: str, *, now: datetime | None = None) -> float:
        return self.stats(member, now=now).weight

    def weights(self, members: Iterable[str], *, now: datetime | None = None) -> dict[str, float]:
        return {m: self.weight(m, now=now) for m in members}

    def snapshot(self, *, now: datetime | None = None) -> Mapping[str, MemberStats]:
        return {m: self.stats(m, now=now) for m in self.members()}

    def _window(self, member: str, now: datetime | None) -> list[Outcome]:
        trades = list(self._trades.get(member, ()))
        days = self.params.window_days
        if days is not None and now is not None:
            since = now - timedelta(days=days)
            trades = [t for t in trades if since < t.closed_at <= now]
        return trades

    def _weight(self, n: int, wins: int, returns: float) -> float:
        p = self.params
        m, p0 = p.prior_trades, p.prior_win_rate
        win_factor = ((wins + m * p0) / (n + m)) / p0
        pnl_factor = 1.0 + p.pnl_span * math.tanh(returns / (n + m) / p.return_scale_pct)
        return min(p.max_weight, max(p.min_weight, win_factor * pnl_factor))
