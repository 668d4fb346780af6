"""The risk engine: every trade intent passes it before an order is placed.

Pure kernel code (no I/O, no clock): the execution service and the backtester run it
unchanged. The shell builds a `TradeIntent` from a decision, an `AccountState`
snapshot, the symbol's `MarketRules` and the merged `RiskLimits` of the trade account
and the trading group (`merge_limits`), and calls `RiskEngine.evaluate(..., now=...)`.

The checks run in this order and the first refusal ends the run; each refusal has a
stable `RiskReason` code:

==================  =================================================  ===========
check               refuses with                                       exits
==================  =================================================  ===========
kill_switch         kill_switch                                        yes
live_mode           live_trading_not_confirmed                         yes
confidence          confidence_too_low                                 no
decision_age        stale_decision                                     no
candle_age          stale_candle                                       no
stop_geometry       stop_loss_required, stop_loss_wrong_side,          no
                    take_profit_wrong_side, stop_loss_too_far
sizing              insufficient_cash, below_min_amount,               yes
                    below_min_notional; exits: nothing_to_close
open_positions      max_open_positions                                 no
positions_per_sym.  max_positions_per_symbol                           no
trades_per_day      max_trades_per_day                                 no
trade_cooldown      cooldown_after_trade                               no
loss_cooldown       cooldown_after_loss                                no
daily_loss          daily_loss_limit (account currency)                no
daily_loss_pct      daily_loss_limit_pct (% of the day's start equity) no
drawdown            max_drawdown                                       no
stoploss_guard      stoploss_guard                                     no
low_profit          low_profit_symbol                                  no
exposure            max_exposure                                       no
==================  =================================================  ===========

Exits (SELL or CLOSE of a long the account holds) reduce risk, so only the kill
switch, the live-mode guard and sizing apply to them: sizing sells the position (or
the hinted part of it), refuses when there is nothing to close (accounts are
long-only) and when the market would refuse the quantity. Holding back an exit
because of a cooldown or a loss limit would keep risk on, not take it off. The
other checks appear in the verdict's trail as skipped.

Live trading needs both the account in live mode and the operator's confirmation
(`RiskEngine(live_trading_enabled=...)`, read by the shell from
ATS_ENABLE_LIVE_TRADING); paper accounts always pass that guard.
"""

from shared.kernel.risk.engine import RiskEngine
from shared.kernel.risk.limits import (
    DEFAULT_SIZING,
    FixedNotional,
    LowProfitLock,
    PercentOfEquity,
    RiskLimits,
    RiskPerTrade,
    Sizing,
    StoplossGuard,
    merge_limits,
)
from shared.kernel.risk.model import (
    AccountState,
    ClosedTrade,
    MarketRules,
    Mode,
    OpenPosition,
    TradeIntent,
    trading_day_start,
)
from shared.kernel.risk.sizing import floor_to_step, round_amount, round_price, sizing_quantity
from shared.kernel.risk.verdict import (
    CheckResult,
    CheckStatus,
    RiskCheck,
    RiskReason,
    RiskVerdict,
    jsonable,
)

__all__ = [
    "DEFAULT_SIZING",
    "AccountState",
    "CheckResult",
    "CheckStatus",
    "ClosedTrade",
    "FixedNotional",
    "LowProfitLock",
    "MarketRules",
    "Mode",
    "OpenPosition",
    "PercentOfEquity",
    "RiskCheck",
    "RiskEngine",
    "RiskLimits",
    "RiskPerTrade",
    "RiskReason",
    "RiskVerdict",
    "Sizing",
    "StoplossGuard",
    "TradeIntent",
    "floor_to_step",
    "jsonable",
    "merge_limits",
    "round_amount",
    "round_price",
    "sizing_quantity",
    "trading_day_start",
]
