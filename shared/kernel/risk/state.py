"""The risk engine's view of an account, read from the kernel's books.

The execution service and the backtester both keep a `Portfolio`; this turns it
into the `AccountState` the risk engine checks, the same way for both, so a limit
means the same in a backtest as in a paper or live run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from shared.kernel.portfolio import Portfolio
from shared.kernel.risk.model import (
    AccountState,
    ClosedTrade,
    Mode,
    OpenPosition,
    trading_day_start,
)

#: How far back closed trades are handed to the risk engine: longer than any
#: sensible stop-loss guard or low-profit look-back.
DEFAULT_LOOKBACK = timedelta(days=14)


def account_state(
    portfolio: Portfolio,
    *,
    mode: Mode,
    now: datetime,
    day_start_equity: Decimal | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> AccountState:
    """`portfolio` as the risk engine sees it at `now` (marks as last set)."""
    day = trading_day_start(now)
    # List comprehensions, inlined by the compiler (a generator is a frame per call):
    # this runs on every decision.
    positions = tuple(
        [
            OpenPosition(symbol, h.quantity, h.average_entry_price, h.opened_at)
            for symbol, h in portfolio.positions.items()
        ]
    )
    closed = tuple(
        [
            ClosedTrade(t.symbol, t.pnl, t.closed_at, t.stopped_out)
            for t in portfolio.closed_trades_since(now - lookback)
        ]
    )
    exposure = portfolio.positions_value()
    return AccountState(
        account=portfolio.account,
        mode=mode,
        currency=portfolio.currency,
        equity=portfolio.cash + exposure,  # Portfolio.equity(), the sum taken once
        cash=portfolio.cash,
        positions=positions,
        peak_equity=portfolio.peak_equity,
        day_start_equity=day_start_equity,
        realized_pnl_today=portfolio.realized_pnl_since(day),
        trades_today=portfolio.trades_opened_since(day),
        last_trade_at=portfolio.last_trade_times.copy(),
        last_loss_at=portfolio.last_loss_at(),
        closed_trades=closed,
        open_exposure=exposure,
    )
