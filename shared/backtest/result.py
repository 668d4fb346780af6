"""What a backtest produces: its trades, its equity curve and what it was run with.

Plain values, so the CLI, the REST API, the sweep and the report read one shape;
`to_json` / `from_json` give the `result.json` form (Decimals as strings, times in
ISO 8601 UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, overload

import numpy.typing as npt


class Lazy[T](Sequence[T]):
    """A list built on first use, once: how the compiled mode hands over its trades
    and its equity curve, so a run whose result is only ranked (`compute_metrics`
    reads `array` and `column`) does not build a million floats or a `TradeRecord`
    with five `Decimal`s per trade. Equal to the list it builds, and to any list
    with the same items.

    `array`: the same values as a numpy array (the equity curve), or None.
    `column(name)`: one field of every item without building the items (the
    trades: `column("pnl")` parses only the PnLs), or None.
    """

    __slots__ = ("_build", "_items", "_length", "array", "column")

    def __init__(
        self,
        length: int,
        build: Callable[[], list[T]],
        *,
        array: npt.NDArray[Any] | None = None,
        column: Callable[[str], list[Any]] | None = None,
    ) -> None:
        self._length = length
        self._build: Callable[[], list[T]] | None = build
        self._items: list[T] | None = None
        self.array = array
        self.column = column

    @property
    def materialized(self) -> bool:
        """Whether the items have been built."""
        return self._items is not None

    @property
    def items(self) -> list[T]:
        """The items as a list, built on the first call (the same list after)."""
        if self._items is None:
            assert self._build is not None  # noqa: S101 - set until built
            self._items = self._build()
            self._build = None
        return self._items

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Lazy):
            return self.items == other.items
        if isinstance(other, list):
            return self.items == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list: unhashable like one

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (or deep-copied) as the built items: the columns' readers are closures.
        return (_built, (self.items, self.array))

    def __repr__(self) -> str:
        if self._items is None:
            return f"Lazy(<{self._length} items, not built>)"
        return f"Lazy({self._items!r})"


def _built[T](items: list[T], array: npt.NDArray[Any] | None) -> Lazy[T]:
    """A `Lazy` already built: what an unpickled one is."""
    lazy = Lazy(len(items), items.copy, array=array)
    lazy._items, lazy._build = items, None
    return lazy


def as_list[T](values: Sequence[T]) -> list[T]:
    """`values` as a list: a list itself, a `Lazy`'s items (built once), else a copy."""
    if isinstance(values, list):
        return values
    if isinstance(values, Lazy):
        return values.items
    return list(values)


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

    `trades`, `equity_times` and `equity` are lists from the event engine and
    `from_json`; the compiled mode gives `Lazy` sequences, built on first use and
    equal to the lists the engine gives (`as_list` turns either into a list).
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
    trades: Sequence[TradeRecord]
    equity_times: Sequence[datetime]
    equity: Sequence[float]
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
                "equity": as_list(self.equity),
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


def microseconds(at: datetime) -> int:
    """`at` in integer microseconds since the Unix epoch (a naive time read as UTC):
    the compiled mode's curve times (`Lazy.array` of `equity_times`)."""
    return ((at.replace(tzinfo=UTC) if at.tzinfo is None else at) - _EPOCH) // _MICROSECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
