"""What a backtest is asked to run, checked once: `BacktestRequest`.

The CLI, the sweep and the REST API all describe a backtest with a `BacktestRequest`
(strategy, params, candle files, money, fees, risk limits, market rules) and run it
with `request.run()`, so they validate and build it one way. Everything that can be
checked without reading the candles is checked when the request is built (a
pydantic `ValidationError`, or `BacktestInputError` from `parse`); reading the files
raises `BacktestInputError` naming the file and what is wrong.

Candle files are named by path, with the market and timeframe read from a name in
the shipped `data/` form (`ETH-BTC_5m.csv` is ETH/BTC on 5m), or given as
`SYMBOL=PATH` (`ETH/BTC=prices.csv`, then the timeframe comes from the name's
`_5m` part or from `timeframe`). Several files share one account, which holds one
quote currency: every market must be priced in the account's currency, since the
books convert nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.backtest.engine import BacktestConfig, Progress, run_backtest
from shared.backtest.result import BacktestResult
from shared.kernel.fills import FillModelConfig
from shared.kernel.risk import MarketRules, RiskLimits
from shared.kernel.strategy import Strategy
from shared.market.candles import Candle, timeframe_seconds
from shared.market.errors import PermanentFeedError
from shared.market.feeds import read_candles_csv
from shared.ml import build_strategy

# `ETH-BTC_5m.csv`: base, quote, timeframe (the shipped data's names).
_SHIPPED_NAME = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)-(?P<quote>[A-Za-z0-9]+)_(?P<timeframe>[1-9][0-9]*[smhdw])\.csv$"
)
# `anything_5m.csv`: only the timeframe.
_TIMEFRAME_SUFFIX = re.compile(r"_(?P<timeframe>[1-9][0-9]*[smhdw])\.csv$")


class BacktestInputError(ValueError):
    """A backtest's input is wrong: the message says what and how to fix it."""


class DataSource(BaseModel):
    """One candle file and, unless its name says, the market it holds.

    Built from `PATH` or `SYMBOL=PATH` by `parse`, or from JSON
    `{"path": "...", "symbol": "ETH/BTC"}`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    symbol: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^\S+$")

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        """`PATH` or `SYMBOL=PATH` (split at the first `=`)."""
        symbol, sep, path = spec.partition("=")
        if not sep:
            return cls(path=Path(spec))
        if not symbol or not path:
            raise BacktestInputError(
                f"{spec!r}: give PATH or SYMBOL=PATH, e.g. ETH/BTC=data/ETH-BTC_5m.csv"
            )
        return cls(symbol=symbol, path=Path(path))

    def market(self, timeframe: str | None = None) -> tuple[str, str]:
        """The (symbol, timeframe) of this file: given, or read from its name.

        Raises:
            BacktestInputError: the name does not say what is missing.
        """
        name = self.path.name
        shipped = _SHIPPED_NAME.match(name)
        symbol = self.symbol or (f"{shipped['base']}/{shipped['quote']}" if shipped else None)
        if symbol is None:
            raise BacktestInputError(
                f"cannot tell the market of {self.path}: name the file BASE-QUOTE_TIMEFRAME.csv "
                f"(like ETH-BTC_5m.csv) or give it as SYMBOL=PATH (ETH/BTC={self.path})"
            )
        suffix = _TIMEFRAME_SUFFIX.search(name)
        frame = timeframe or (suffix["timeframe"] if suffix else None)
        if frame is None:
            raise BacktestInputError(
                f"cannot tell the timeframe of {self.path}: end its name with _TIMEFRAME.csv "
                "(like _5m.csv) or give the timeframe (--timeframe 5m)"
            )
        return symbol, frame


def quote_currency(symbol: str) -> str | None:
    """`ETH/BTC` -> `BTC`, `BTC/USDT:USDT` -> `USDT`; None for a symbol without a quote."""
    _, sep, quote = symbol.partition("/")
    quote = quote.partition(":")[0]
    return quote if sep and quote else None


class MarketSpec(BaseModel):
    """One market's exchange rules in a backtest (`MarketRules.from_config` reads
    them): quantities and prices on these grids, orders above these minimums.
    Unset precisions are 8 decimals, as on a paper account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount_step: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    amount_precision: int | None = Field(default=None, ge=0, le=18)
    price_tick: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    price_precision: int | None = Field(default=None, ge=0, le=18)
    min_amount: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    min_notional: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_amount: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)


_Fee = Annotated[Decimal, Field(ge=0, le=Decimal("0.1"), allow_inf_nan=False)]


class BacktestRequest(BaseModel):
    """A backtest to run: what decides, on which candles, with what money and rules.

    Attributes:
        strategy, params: a registered strategy (`sma_cross`, ..., `ml` with its
            model from ATS_DATA_DIR/models) and its parameters.
        data: the candle files (see `DataSource`); one account trades them all.
        capital: the account's starting cash.
        currency: the account's currency; default the markets' quote currency,
            which it must equal.
        commission: the fee rate of every fill (0.001 = 0.1 %); `maker_fee`, when
            set, replaces it for take-profits resting in the book.
        slippage_bps: market orders and triggered stops fill this many basis
            points worse than the price.
        risk: the account's risk limits (`RiskLimits`); with no `sizing`, an entry
            buys 10 % of equity (`DEFAULT_SIZING`).
        markets: per symbol, the exchange's rules (`MarketSpec`).
        timeframe: the candles' timeframe, instead of reading it from file names.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    data: list[DataSource] = Field(min_length=1)
    capital: Decimal = Field(default=Decimal(10_000), gt=0, allow_inf_nan=False)
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{1,20}$")
    commission: _Fee = Decimal("0.001")
    maker_fee: _Fee | None = None
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0, le=1000, allow_inf_nan=False)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    markets: dict[str, MarketSpec] = Field(default_factory=dict)
    timeframe: str | None = None

    @field_validator("data", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [DataSource.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str | None) -> str | None:
        if value is not None:
            timeframe_seconds(value)  # raises ValueError naming the valid forms
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BacktestRequest:
        markets = self.sources()  # raises when a file's market cannot be told
        symbols = [symbol for symbol, _, _ in markets]
        repeated = sorted({s for s in symbols if symbols.count(s) > 1})
        if repeated:
            raise ValueError(f"data: {', '.join(repeated)} given more than once")
        frames = sorted({frame for _, frame, _ in markets})
        if len(frames) > 1:
            raise ValueError(
                f"data: one backtest replays one timeframe, these files have {', '.join(frames)}"
            )
        unknown = sorted(set(self.markets) - set(symbols))
        if unknown:
            raise ValueError(
                f"markets: {', '.join(unknown)} not in the data (it has {', '.join(symbols)})"
            )
        self.account_currency()
        self.build_strategy()
        self.to_config()
        return self

    def sources(self) -> list[tuple[str, str, Path]]:
        """(symbol, timeframe, path) of every file, in the order given."""
        return [(*source.market(self.timeframe), source.path) for source in self.data]

    def account_currency(self) -> str:
        """`currency`, or the quote currency every market shares.

        Raises:
            BacktestInputError: markets of different quotes, or one not in `currency`.
        """
        quotes = {symbol: quote_currency(symbol) for symbol, _, _ in self.sources()}
        if self.currency is not None:
            other = {s: q for s, q in quotes.items() if q is not None and q != self.currency}
            if other:
                priced = ", ".join(f"{s} in {q}" for s, q in other.items())
                raise BacktestInputError(
                    f"currency {self.currency} is not the quote currency of every market "
                    f"({priced}): the account books fills in one currency and converts "
                    "nothing; leave currency out or backtest those markets apart"
                )
            return self.currency
        known = {q for q in quotes.values() if q is not None}
        if len(known) > 1:
            raise BacktestInputError(
                f"the markets are priced in {', '.join(sorted(known))}: one account holds one "
                "currency, so backtest them apart"
            )
        if not known:
            raise BacktestInputError(
                f"cannot tell the currency of {', '.join(quotes)}: give currency (--currency)"
            )
        return known.pop()

    def build_strategy(self) -> Strategy:
        """A fresh strategy (one per symbol in a run).

        Raises:
            ValueError: unknown strategy, bad params, or an `ml` model that is refused.
        """
        return build_strategy(self.strategy, self.params)

    def to_config(self) -> BacktestConfig:
        """The engine's configuration for this request."""
        fill_model = FillModelConfig(
            slippage_bps=self.slippage_bps,
            taker_fee=self.commission,
            maker_fee=self.commission if self.maker_fee is None else self.maker_fee,
        )
        rules = {
            symbol: MarketRules.from_config(
                symbol,
                spec.model_dump(exclude_none=True) if (spec := self.markets.get(symbol)) else None,
                taker_fee=self.commission,
            )
            for symbol, _, _ in self.sources()
        }
        return BacktestConfig(
            capital=self.capital,
            currency=self.account_currency(),
            fill_model=fill_model,
            risk=self.risk,
            markets=rules,
        )

    def load(self, *, root: Path | None = None) -> dict[str, list[Candle]]:
        """Read every file's candles, by symbol.

        Args:
            root: when given, every path must lie inside it (a server that takes
                paths from a request reads only its data directory).

        Raises:
            BacktestInputError: a file outside `root`, unreadable, malformed, or empty.
        """
        candles: dict[str, list[Candle]] = {}
        for symbol, frame, path in self.sources():
            if root is not None and not path.resolve().is_relative_to(root.resolve()):
                raise BacktestInputError(f"data {path} is outside {root}: use a file inside it")
            if not path.is_file():
                raise BacktestInputError(f"data {path}: no such file")
            try:
                rows = read_candles_csv(path, symbol, frame)
            except PermanentFeedError as e:
                raise BacktestInputError(str(e)) from e
            if not rows:
                raise BacktestInputError(f"data {path} holds no candles")
            candles[symbol] = rows
        return candles

    def run(
        self,
        progress: Progress | None = None,
        *,
        candles: Mapping[str, Sequence[Candle]] | None = None,
    ) -> BacktestResult:
        """Run the backtest: `candles` if given (a sweep reads its files once),
        else `load()`; `progress(done, total)` is called about every 1 % of bars."""
        return run_backtest(
            self.build_strategy,
            candles if candles is not None else self.load(),
            self.to_config(),
            strategy_name=self.strategy,
            params=self.params,
            progress=progress,
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> BacktestRequest:
        """`model_validate`, with every problem in one readable `BacktestInputError`.

        Raises:
            BacktestInputError: `field: problem` per problem, joined by `; `.
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            raise BacktestInputError(describe(e)) from e


def describe(error: ValidationError) -> str:
    """A `ValidationError` as `field: problem; ...`, without pydantic's decoration."""
    problems = []
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
