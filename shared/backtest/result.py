"""What a backtest produces: its trades, its equity curve and what it was run with.

Plain values, so the CLI, the REST API, the sweep and the report read one shape;
`to_json` / `from_json` give the `result.json` form (Decimals as strings, times in
ISO 8601 UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One closed trade: an entry and the exit that closed it (or part of it).

    `pnl` is net of both fees; `return_pct` is `pnl` over the entry's cost (fees
    included); `exit_reason` is the leg that closed it: `exit` (a decision),
    `stop_loss`, `take_profit`, or `end` (still open when the data ended, marked
    at the last close: unrealized, listed in `BacktestResult.open_trades` only).
    """

    symbol: str
    quantity: Decimal
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    return_pct: float
    fees: Decimal
    exit_reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "quantity": str(self.quantity),
            "entry_time": _iso(self.entry_time),
            "exit_time": _iso(self.exit_time),
            "entry_price": str(self.entry_price),
            "exit_price": str(self.exit_price),
            "pnl": str(self.pnl),
            "return_pct": self.return_pct,
            "fees": str(self.fees),
            "exit_reason": self.exit_reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TradeRecord:
        return cls(
            symbol=data["symbol"],
            quantity=Decimal(data["quantity"]),
            entry_time=_time(data["entry_time"]),
            exit_time=_time(data["exit_time"]),
            entry_price=Decimal(data["entry_price"]),
            exit_price=Decimal(data["exit_price"]),
            pnl=Decimal(data["pnl"]),
            return_pct=float(data["return_pct"]),
            fees=Decimal(data["fees"]),
            exit_reason=data["exit_reason"],
        )


@dataclass(slots=True)
class BacktestResult:
    """A finished backtest.

    Attributes:
        strategy, params: what decided.
        symbols, timeframe: the markets replayed (one account shares them).
        start, end: open time of the first candle and close time of the last.
        bars: candles replayed, all symbols together.
        capital, currency: the account's starting cash.
        final_equity: cash plus open positions at the last closes.
        fees_paid: every fill's fee, in the account currency.
        trades: closed trades, by exit time.
        open_trades: positions still open when the data ended, as trades with
            `exit_reason` "end" marked at the symbol's last close: their PnL is
            unrealized (no exit fill, no exit fee) and no trade metric counts them;
            `final_equity` values them at the same marks.
        equity_times, equity: the equity after every bar (floats: a curve to
            compute ratios and draw, not to account with; `final_equity` is exact).
        exposure_bars: bar times (points of the equity curve: one per close time,
            however many symbols) that ended with a position open in any market.
        rejections: refused intents by risk reason code.
        fills: fills, all legs.
        settings: fill model, risk limits and market rules, as given.
    """

    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    start: datetime
    end: datetime
    bars: int
    capital: Decimal
    currency: str
    final_equity: Decimal
    fees_paid: Decimal
    trades: list[TradeRecord]
    equity_times: list[datetime]
    equity: list[float]
    exposure_bars: int
    rejections: dict[str, int] = field(default_factory=dict)
    fills: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    open_trades: list[TradeRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "params": self.params,
            "symbols": self.symbols,
            "timeframe": self.timeframe,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "bars": self.bars,
            "capital": str(self.capital),
            "currency": self.currency,
            "final_equity": str(self.final_equity),
            "fees_paid": str(self.fees_paid),
            "exposure_bars": self.exposure_bars,
            "rejections": self.rejections,
            "fills": self.fills,
            "settings": self.settings,
            "trades": [t.to_json() for t in self.trades],
            "open_trades": [{**t.to_json(), "unrealized": True} for t in self.open_trades],
            "equity_curve": {
                "times": [_iso(t) for t in self.equity_times],
                "equity": self.equity,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacktestResult:
        curve = data.get("equity_curve") or {"times": [], "equity": []}
        return cls(
            strategy=data["strategy"],
            params=data["params"],
            symbols=list(data["symbols"]),
            timeframe=data["timeframe"],
            start=_time(data["start"]),
            end=_time(data["end"]),
            bars=int(data["bars"]),
            capital=Decimal(data["capital"]),
            currency=data["currency"],
            final_equity=Decimal(data["final_equity"]),
            fees_paid=Decimal(data["fees_paid"]),
            trades=[TradeRecord.from_json(t) for t in data["trades"]],
            equity_times=[_time(t) for t in curve["times"]],
            equity=[float(v) for v in curve["equity"]],
            exposure_bars=int(data["exposure_bars"]),
            rejections=dict(data.get("rejections") or {}),
            fills=int(data.get("fills") or 0),
            settings=dict(data.get("settings") or {}),
            open_trades=[TradeRecord.from_json(t) for t in data.get("open_trades") or []],
        )


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
