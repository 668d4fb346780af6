"""What the risk engine reads: the trade intent, the account snapshot, the market's rules.

Money is in the account's currency unless a field says otherwise; prices are in the
symbol's quote currency. All times are timezone-aware; the engine reads no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from shared.events import Action
from shared.kernel.frozen import fast_init
from shared.market.candles import timeframe_delta

ZERO = Decimal(0)
ONE = Decimal(1)


class Mode(StrEnum):
    """How a trade account trades: on paper (the default) or with real money."""

    PAPER = "paper"
    LIVE = "live"


def require_aware(name: str, value: datetime) -> None:
    """Raise ValueError unless `value` carries a timezone (naive times are ambiguous)."""
    # UTC, the usual case, is told by identity: no call to utcoffset().
    if value.tzinfo is not UTC and value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} must be timezone-aware (use UTC)")


def trading_day_start(now: datetime) -> datetime:
    """Start of the trading day that contains `now`: midnight UTC.

    Daily counters (`AccountState.trades_today`, `realized_pnl_today`) count from here,
    in the live services and in the backtester alike.
    """
    require_aware("now", now)
    if now.tzinfo is not UTC:
        now = now.astimezone(UTC)
    return _midnight(now.date())


@lru_cache(maxsize=64)
def _midnight(day: date) -> datetime:
    # The risk engine asks on every decision, mostly for the same few days.
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@fast_init
@dataclass(frozen=True, slots=True)
class TradeIntent:
    """A decision that asks to trade, as the risk engine sees it.

    Attributes:
        account: The trade account that would place the order.
        group: The trading group that decided.
        symbol: Market symbol, e.g. `BTC/USDT`.
        side: BUY opens or adds to a long; SELL and CLOSE reduce or close it (spot
            accounts are long-only). HOLD is not a trade and is refused here.
        confidence: The decision's confidence, 0..1.
        entry: The price the order is expected to fill at, in the quote currency: the
            decision's entry, or the last market price when the decision named none.
            Sizing and the stop-loss geometry use it.
        decided_at: When the group decided (the decision event's `ts`).
        stop_loss: Stop-loss price, or None.
        take_profit: Take-profit price, or None.
        candle_time: Open time of the candle the decision was made on, or None
            (decisions not made on a candle, e.g. from news, skip the candle-age check).
        timeframe: The candle's timeframe (`5m`); required with `candle_time`.
        size_hint: The decision's quantity hint in base units; caps the sized
            quantity of an entry and sets the quantity of a partial SELL.
        quote_rate: Value of one unit of the quote currency in the account's
            currency (1 when they are the same, e.g. a USDT account trading BTC/USDT).
    """

    account: str
    group: str
    symbol: str
    side: Action
    confidence: float
    entry: Decimal
    decided_at: datetime
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    candle_time: datetime | None = None
    timeframe: str | None = None
    size_hint: Decimal | None = None
    quote_rate: Decimal = ONE

    def __post_init__(self) -> None:
        if self.side is Action.HOLD:
            raise ValueError(
                "a HOLD is not a trade: only BUY, SELL and CLOSE reach the risk engine"
            )
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} is outside 0..1")
        # Written out, not a loop over getattr: an intent is built per decision.
        for name, value in (
            ("entry", self.entry),
            ("stop_loss", self.stop_loss),
            ("take_profit", self.take_profit),
            ("quote_rate", self.quote_rate),
        ):
            if value is not None and not (value.is_finite() and value > 0):
                raise ValueError(f"{name} {value} must be a positive price")
        if self.size_hint is not None and not (self.size_hint.is_finite() and self.size_hint >= 0):
            raise ValueError(f"size_hint {self.size_hint} must be a quantity >= 0")
        require_aware("decided_at", self.decided_at)
        if self.candle_time is not None:
            require_aware("candle_time", self.candle_time)
            if self.timeframe is None:
                raise ValueError("candle_time needs the timeframe it belongs to (e.g. '5m')")
        if self.timeframe is not None:
            timeframe_delta(self.timeframe)  # raises ValueError naming the bad timeframe

    @property
    def is_entry(self) -> bool:
        """True for a BUY: it adds risk, so every check applies."""
        return self.side is Action.BUY

    @property
    def candle_close(self) -> datetime | None:
        """When the decision's candle closed, or None."""
        if self.candle_time is None or self.timeframe is None:
            return None
        return self.candle_time + timeframe_delta(self.timeframe)


@fast_init
@dataclass(frozen=True, slots=True)
class OpenPosition:
    """An open long (or one lot of it) the account holds."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal
    opened_at: datetime | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A recently closed trade: what it earned, in the account's currency, and whether
    its stop loss closed it (a stop-out, counted by the stop-loss guard)."""

    symbol: str
    pnl: Decimal
    closed_at: datetime
    stopped_out: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class AccountState:
    """A snapshot of the trade account when the intent is checked.

    Attributes:
        account: The trade account's name.
        mode: PAPER or LIVE, as configured on the account.
        currency: The account's currency (`USDT`): equity, cash and PnL are in it.
        equity: Cash plus the value of open positions.
        cash: Cash free to buy with.
        positions: Open longs; a symbol may appear once (aggregated) or once per lot.
        peak_equity: Highest equity recorded, for the drawdown halt; None skips it.
        day_start_equity: Equity at the start of the trading day (UTC), the base of
            the daily loss limit in percent; None uses `equity`.
        realized_pnl_today: Realized PnL since the start of the trading day.
        trades_today: Entries opened since the start of the trading day.
        last_trade_at: Per symbol, when the account last traded it (either side).
        last_loss_at: When the last losing trade closed; None uses the latest losing
            trade in `closed_trades`.
        closed_trades: Recent closed trades, at least as far back as the longest
            look-back of the stop-loss guard and the low-profit lock.
        open_exposure: Value of the open positions; None uses quantity x entry price
            of `positions` (right when their quote currency is the account's).
    """

    account: str
    mode: Mode
    currency: str
    equity: Decimal
    cash: Decimal
    positions: tuple[OpenPosition, ...] = ()
    peak_equity: Decimal | None = None
    day_start_equity: Decimal | None = None
    realized_pnl_today: Decimal = ZERO
    trades_today: int = 0
    last_trade_at: Mapping[str, datetime] = field(default_factory=dict)
    last_loss_at: datetime | None = None
    closed_trades: tuple[ClosedTrade, ...] = ()
    open_exposure: Decimal | None = None

    def __post_init__(self) -> None:
        # The names are formatted only for a time that fails: this runs per decision.
        for symbol, at in self.last_trade_at.items():
            if at.utcoffset() is None:
                require_aware(f"last_trade_at[{symbol!r}]", at)
        if self.last_loss_at is not None:
            require_aware("last_loss_at", self.last_loss_at)
        for trade in self.closed_trades:
            if trade.closed_at.utcoffset() is None:
                require_aware(f"closed_at of the {trade.symbol} trade", trade.closed_at)

    def held(self, symbol: str) -> Decimal:
        """Quantity of `symbol` held across its open positions."""
        return sum((p.quantity for p in self.positions if p.symbol == symbol), ZERO)

    @property
    def open_symbols(self) -> frozenset[str]:
        return frozenset(p.symbol for p in self.positions if p.quantity > 0)

    @property
    def exposure(self) -> Decimal:
        if self.open_exposure is not None:
            return self.open_exposure
        return sum((p.quantity * p.entry_price for p in self.positions), ZERO)

    @property
    def last_loss(self) -> datetime | None:
        if self.last_loss_at is not None:
            return self.last_loss_at
        losses = [t.closed_at for t in self.closed_trades if t.pnl < 0]
        return max(losses, default=None)


@dataclass(frozen=True, slots=True)
class MarketRules:
    """The exchange's rules for one symbol (ccxt `market['precision']`/`['limits']`).

    Attributes:
        symbol: Market symbol.
        amount_step: Quantities are multiples of it (ccxt TICK_SIZE precision).
        amount_precision: Quantities have at most this many decimals (ccxt
            DECIMAL_PLACES precision). With `amount_step`, both apply.
        price_tick: Prices are multiples of it.
        price_precision: Prices have at most this many decimals.
        min_amount: Smallest quantity the exchange accepts.
        min_notional: Smallest quantity x price (quote currency) it accepts.
        max_amount: Largest quantity it accepts; an entry is capped to it.
        taker_fee: Fee rate of a market order (0.001 is 0.1 %); the cash cap keeps
            room for it.
    """

    symbol: str
    amount_step: Decimal | None = None
    amount_precision: int | None = None
    price_tick: Decimal | None = None
    price_precision: int | None = None
    min_amount: Decimal | None = None
    min_notional: Decimal | None = None
    max_amount: Decimal | None = None
    taker_fee: Decimal = ZERO

    @classmethod
    def from_config(
        cls, symbol: str, config: Mapping[str, Any] | None, *, taker_fee: Decimal = ZERO
    ) -> MarketRules:
        """Rules from a config object (a paper account's or a backtest's `markets`
        entry: `amount_step`, `price_tick`, `min_amount`, ...); 8 decimals by default,
        so the paper exchange and the backtester size orders alike."""
        values = dict(config or {})

        def dec(name: str) -> Decimal | None:
            value = values.get(name)
            return Decimal(str(value)) if value is not None else None

        return cls(
            symbol=symbol,
            amount_step=dec("amount_step"),
            amount_precision=values.get("amount_precision", 8),
            price_tick=dec("price_tick"),
            price_precision=values.get("price_precision", 8),
            min_amount=dec("min_amount"),
            min_notional=dec("min_notional"),
            max_amount=dec("max_amount"),
            taker_fee=taker_fee,
        )

    def __post_init__(self) -> None:
        for name in ("amount_step", "price_tick", "max_amount"):
            value = getattr(self, name)
            if value is not None and not (value.is_finite() and value > 0):
                raise ValueError(f"{self.symbol}: {name} {value} must be positive")
        for name in ("amount_precision", "price_precision"):
            digits = getattr(self, name)
            if digits is not None and not 0 <= digits <= 18:
                raise ValueError(f"{self.symbol}: {name} {digits} must be 0..18 decimals")
        for name in ("min_amount", "min_notional", "taker_fee"):
            value = getattr(self, name)
            if value is not None and not (value.is_finite() and value >= 0):
                raise ValueError(f"{self.symbol}: {name} {value} must be >= 0")
        if self.taker_fee >= 1:
            raise ValueError(
                f"{self.symbol}: taker_fee {self.taker_fee} is a rate: use 0.001 for 0.1 %"
            )
