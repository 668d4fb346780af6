"""Backtesting: history through the live code path (`engine`), its result and metrics."""

from shared.backtest.engine import Backtest, BacktestConfig, run_backtest
from shared.backtest.result import BacktestResult, TradeRecord

__all__ = ["Backtest", "BacktestConfig", "BacktestResult", "TradeRecord", "run_backtest"]
