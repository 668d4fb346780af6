"""Technical indicators: specs you can write in config, computed with pandas-ta.

Specs are small frozen models, one per kind, parsed from config through one
discriminated union on `kind`::

    {"kind": "rsi", "length": 14}          -> rsi_14
    {"kind": "sma", "length": 50}          -> sma_50
    {"kind": "ema", "length": 20}          -> ema_20
    {"kind": "macd"}                       -> macd_12_26_9, macds_12_26_9, macdh_12_26_9
    {"kind": "bbands", "length": 20}       -> bbl_20_2.0, bbm_20_2.0, bbu_20_2.0
    {"kind": "atr", "length": 14}          -> atr_14

`compute(spec, frame)` runs pandas-ta over a whole frame (backtests, research, and
the reference for everything else). pandas-ta is called with `talib=False`, so the
numbers do not change when TA-Lib happens to be installed.

`IndicatorWindow` serves live triggers: `update(candle)` on each new candle returns
the latest value of every column, `None` until the indicator is warmed up (exactly
when pandas-ta over the same candles first gives a number). Its cost does not grow
with history.

How the window is built, and how accurate it is
-----------------------------------------------
The choice is incremental state, not recomputing pandas-ta over a bounded window:

* SMA and Bollinger Bands keep the last `length` closes in a deque and sum them
  exactly (`math.fsum`, two-pass variance with ddof=1, as pandas-ta). Cost O(length).
* EMA, RSI, ATR and MACD are recursive (exponential smoothing). The window carries
  their state and advances it with the very recursion pandas uses for
  `ewm(adjust=False).mean()`, seeded as pandas-ta seeds it (EMA, ATR and the MACD
  signal line start from the SMA of their first `length` values; RSI's Wilder
  averages start from the first change). Cost O(1).

A window over the last N candles, recomputed with pandas-ta, would only converge to
the full-history value: the seed's weight decays as (1 - alpha)^N, about 3e-5 for
RSI(14) over 140 candles. The incremental state has no such error: it *is* the
full-history computation, one step at a time, and costs microseconds instead of a
pandas-ta call per indicator per candle.

Measured on the four shipped files in data/ (ETH-BTC, LTC-BTC, ADA-BTC, XRP-USDT,
5m), the window's value after every candle against pandas-ta over the whole
history; tests/shared/market/test_indicators.py asserts the bounds in brackets:

    EMA, RSI, MACD (all three lines), ATR   identical, bit for bit   [1e-12 relative]
    SMA                                      <= 6e-16 relative        [1e-12 relative]
    Bollinger Bands                          <= 2.4e-12 relative      [1e-10 relative]

The SMA/BBANDS residue is pandas' own rounding (a convolution for the mean, an
online rolling variance), which the window's exact sums do not share. Two known,
documented differences: pandas-ta adds 2.2e-16 to every high-low range of a series
in which any bar has high == low (a whole-series decision a live window cannot
make; ADA-BTC has two such bars, which moves its ATR by 3e-9 relative); and an RSI
over a perfectly flat stretch is 0/0, NaN in pandas-ta and None in the window.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Annotated, Any, Literal, Protocol

import numpy as np
import pandas as pd
import pandas_ta as ta
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator

from shared.market.candles import Candle

MAX_LENGTH = 5000

Length = Annotated[int, Field(ge=1, le=MAX_LENGTH)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the columns this indicator produces."""
        raise NotImplementedError

    @property
    def warmup(self) -> int:
        """Candles needed before the first value (pandas-ta's minimum input length)."""
        raise NotImplementedError

    @property
    def history(self) -> int:
        """Closes an `IndicatorWindow` must keep for it (1 for recursive indicators)."""
        return 1


class RsiSpec(_Spec):
    """Relative Strength Index with Wilder's smoothing."""

    kind: Literal["rsi"] = "rsi"
    length: Length = 14

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"rsi_{self.length}",)

    @property
    def warmup(self) -> int:
        return self.length + 1


class SmaSpec(_Spec):
    """Simple moving average of the close."""

    kind: Literal["sma"] = "sma"
    length: Length

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"sma_{self.length}",)

    @property
    def warmup(self) -> int:
        return self.length

    @property
    def history(self) -> int:
        return self.length


class EmaSpec(_Spec):
    """Exponential moving average of the close, seeded with the SMA (as TA-Lib)."""

    kind: Literal["ema"] = "ema"
    length: Length

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"ema_{self.length}",)

    @property
    def warmup(self) -> int:
        return self.length


class MacdSpec(_Spec):
    """MACD line (fast EMA - slow EMA), its signal EMA, and the histogram."""

    kind: Literal["macd"] = "macd"
    fast: Length = 12
    slow: Length = 26
    signal: Length = 9

    @field_validator("slow")
    @classmethod
    def _slow_after_fast(cls, slow: int, info: ValidationInfo) -> int:
        fast = info.data.get("fast")
        if fast is not None and slow <= fast:
            raise ValueError(f"slow ({slow}) must be longer than fast ({fast})")
        return slow

    @property
    def _suffix(self) -> str:
        return f"{self.fast}_{self.slow}_{self.signal}"

    @property
    def columns(self) -> tuple[str, ...]:
        s = self._suffix
        return (f"macd_{s}", f"macds_{s}", f"macdh_{s}")

    @property
    def warmup(self) -> int:
        return self.slow + self.signal - 1


class BbandsSpec(_Spec):
    """Bollinger Bands: SMA(length) -/+ `std` sample standard deviations."""

    kind: Literal["bbands"] = "bbands"
    length: Annotated[int, Field(ge=2, le=MAX_LENGTH)] = 20
    std: Annotated[float, Field(gt=0, le=100)] = 2.0

    @property
    def _suffix(self) -> str:
        return f"{self.length}_{self.std}"

    @property
    def columns(self) -> tuple[str, ...]:
        s = self._suffix
        return (f"bbl_{s}", f"bbm_{s}", f"bbu_{s}")

    @property
    def warmup(self) -> int:
        return self.length

    @property
    def history(self) -> int:
        return self.length


class AtrSpec(_Spec):
    """Average True Range with Wilder's smoothing, seeded with the SMA."""

    kind: Literal["atr"] = "atr"
    length: Length = 14

    @property
    def columns(self) -> tuple[str, ...]:
        return (f"atr_{self.length}",)

    @property
    def warmup(self) -> int:
        return self.length + 1


IndicatorSpec = Annotated[
    RsiSpec | SmaSpec | EmaSpec | MacdSpec | BbandsSpec | AtrSpec, Field(discriminator="kind")
]
INDICATOR_SPEC: TypeAdapter[IndicatorSpec] = TypeAdapter(IndicatorSpec)
INDICATOR_SPECS: TypeAdapter[list[IndicatorSpec]] = TypeAdapter(list[IndicatorSpec])


def parse_indicator_spec(data: Any) -> IndicatorSpec:
    """Parse one spec from config (a dict such as `{"kind": "rsi", "length": 14}`).

    Raises:
        pydantic.ValidationError: naming the kind and field that is wrong.
    """
    return INDICATOR_SPEC.validate_python(data)


# --------------------------------------------------------------------------- frames

FRAME_COLUMNS = ("open", "high", "low", "close", "volume")


def candles_to_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """A frame of `open high low close volume` (float64) indexed by UTC open time."""
    rows = list(candles)
    index = pd.DatetimeIndex([c.open_time for c in rows], name="open_time")
    if index.tz is None:
        index = index.tz_localize("UTC")
    data = {
        name: np.fromiter((getattr(c, name) for c in rows), float, len(rows))
        for name in FRAME_COLUMNS
    }
    return pd.DataFrame(data, index=index)


def _series(result: Any, index: pd.Index, prefix: str | None = None) -> pd.Series:
    """One pandas-ta output (None when the input is shorter than it needs) as a Series."""
    if result is None:
        return pd.Series(np.nan, index=index, dtype=float)
    if prefix is not None:
        matches = [c for c in result.columns if str(c).startswith(prefix)]
        if len(matches) != 1:
            raise RuntimeError(
                f"pandas-ta returned columns {list(result.columns)}; expected one {prefix}*"
            )
        result = result[matches[0]]
    return result.astype(float)


def compute(spec: IndicatorSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The indicator over the whole frame, with pandas-ta; columns named by `spec.columns`.

    The frame needs `close` (and `high`, `low` for ATR), e.g. from `candles_to_frame`.
    Rows before the indicator is warmed up are NaN; a frame shorter than
    `spec.warmup` gives all NaN.
    """
    needed = ("high", "low", "close") if isinstance(spec, AtrSpec) else ("close",)
    absent = [name for name in needed if name not in frame.columns]
    if absent:
        raise ValueError(f"the frame lacks column(s) {', '.join(absent)} needed by {spec.kind}")
    close = frame["close"].astype(float)
    index = frame.index
    outputs: list[pd.Series]
    match spec:
        case RsiSpec():
            outputs = [_series(ta.rsi(close, length=spec.length, talib=False), index)]
        case SmaSpec():
            outputs = [_series(ta.sma(close, length=spec.length, talib=False), index)]
        case EmaSpec():
            outputs = [_series(ta.ema(close, length=spec.length, talib=False), index)]
        case MacdSpec():
            result = ta.macd(close, fast=spec.fast, slow=spec.slow, signal=spec.signal, talib=False)
            outputs = [_series(result, index, p) for p in ("MACD_", "MACDs_", "MACDh_")]
        case BbandsSpec():
            result = ta.bbands(
                close, length=spec.length, lower_std=spec.std, upper_std=spec.std, talib=False
            )
            outputs = [_series(result, index, p) for p in ("BBL_", "BBM_", "BBU_")]
        case AtrSpec():
            high = frame["high"].astype(float)
            low = frame["low"].astype(float)
            outputs = [_series(ta.atr(high, low, close, length=spec.length, talib=False), index)]
    return pd.DataFrame(dict(zip(spec.columns, outputs, strict=True)), index=index)


def compute_all(specs: Iterable[IndicatorSpec], frame: pd.DataFrame) -> pd.DataFrame:
    """`compute` for several specs, side by side."""
    parts = [compute(spec, frame) for spec in dict.fromkeys(specs)]
    if not parts:
        return pd.DataFrame(index=frame.index)
    return pd.concat(parts, axis=1)


# --------------------------------------------------------------------------- window


class _Ewm:
    """pandas' `ewm(adjust=False).mean()`, one observation at a time.

    The weights and the update are computed exactly as pandas computes them
    (`pandas/_libs/window/aggregations.pyx`, `ewm`), so the values match to the bit.
    """

    __slots__ = ("_new", "_old", "value")

    def __init__(self, *, span: float | None = None, alpha: float | None = None) -> None:
        # pandas turns span or alpha into a centre of mass, then back into alpha.
        if span is not None:
            com = (span - 1) / 2
        elif alpha is not None:
            com = (1 - alpha) / alpha
        else:
            raise ValueError("give span or alpha")
        new = 1.0 / (1.0 + com)
        self._new = new
        self._old = 1.0 - new
        self.value: float | None = None

    def update(self, x: float) -> float:
        weighted = self.value
        if weighted is None:
            weighted = x
        elif weighted != x:
            weighted = (self._old * weighted + self._new * x) / (self._old + self._new)
        self.value = weighted
        return weighted


def _mean(values: Sequence[float]) -> float:
    # pandas' Series.mean: numpy's (pairwise) sum divided by the count.
    return float(np.asarray(values, dtype=float).sum() / len(values))


class _SeededEma:
    """pandas-ta's seeded EMA: the mean of the first `length` values, then `ewm`."""

    __slots__ = ("_ewm", "_length", "_seed")

    def __init__(self, length: int, ewm: _Ewm) -> None:
        self._length = length
        self._seed: list[float] | None = []
        self._ewm = ewm

    def update(self, x: float) -> float | None:
        if self._seed is not None:
            self._seed.append(x)
            if len(self._seed) < self._length:
                return None
            x = _mean(self._seed)
            self._seed = None
        return self._ewm.update(x)


class _Calc(Protocol):
    def update(self, candle: Candle) -> tuple[float | None, ...]: ...


class _SmaCalc:
    def __init__(self, spec: SmaSpec) -> None:
        self._length = spec.length
        self._closes: deque[float] = deque(maxlen=spec.length)

    def update(self, candle: Candle) -> tuple[float | None, ...]:
        self._closes.append(candle.close)
        if len(self._closes) < (self._closes.maxlen or 0):
            return (None,)
        return (math.fsum(self._closes) / len(self._closes),)

    def column(self, closes: Sequence[float]) -> list[float | None]:
        """`update` over `closes` from a fresh state, first value of each result.

        The same exact sum of the same closes (fsum is correctly rounded, so it does
        not matter that they come from a slice here and from a deque there), taken as
        a rolling integer sum when the closes allow (`_exact_means`).
        """
        n, fsum = self._length, math.fsum
        out: list[float | None] = [None] * min(n - 1, len(closes))
        exact = _exact_means(closes, n) if len(closes) >= n else None
        if exact is not None:
            return out + exact
        out += [fsum(closes[i - n : i]) / n for i in range(n, len(closes) + 1)]
        return out


def _exact_means(closes: Sequence[float], n: int) -> list[float] | None:
    """`math.fsum(window) / n` for every full window of `closes`, from exact integer
    window sums; None when a close is not finite or zero (fsum's overflow, nan and
    signed-zero rules: the caller sums each window with fsum).

    Every float is `m * 2**e` with an integer `m` of 53 bits; scaled by the finest
    `2**-e` among the closes a block of windows reads, each is an integer, and so is
    each window's sum: exact. Turning it into a float rounds once, to nearest even,
    as fsum's correctly rounded sum does; scaling back by a power of two is exact in
    the normal range. The running sum wraps in unsigned 64-bit arithmetic, which
    leaves every window's difference exact; a block whose sums could pass 2**63 (its
    closes span too many binary orders) or leave the normal range is summed by fsum.
    """
    x = np.asarray(closes, dtype=np.float64)
    if not np.isfinite(x).all() or not x.all():
        return None
    fraction, exponent = np.frexp(x)
    mantissa = (fraction * 2.0**53).astype(np.int64)  # exact: 53 bits
    low = exponent.astype(np.int64) - 53  # x = mantissa * 2**low
    count, room = len(x) - n + 1, 63 - 53 - n.bit_length()
    means = np.empty(count, dtype=np.float64)
    for first in range(0, count, _BLOCK):  # windows first..last-1 read x[first:last+n-1]
        last = min(first + _BLOCK, count)
        lows = low[first : last + n - 1]
        scale = -int(lows.min())
        shift = lows + scale
        sums = None
        if int(shift.max()) <= room:
            scaled = np.left_shift(mantissa[first : last + n - 1], shift).view(np.uint64)
            running = np.zeros(len(scaled) + 1, dtype=np.uint64)
            np.cumsum(scaled, out=running[1:])
            exact = (running[n:] - running[:-n]).view(np.int64)
            sums = np.ldexp(exact.astype(np.float64), -scale)
            magnitude = np.abs(sums)
            if not np.isfinite(sums).all() or (magnitude[magnitude > 0] < 2.0**-1021).any():
                sums = None
        if sums is None:
            fsum = math.fsum
            sums = np.array([fsum(closes[i : i + n]) for i in range(first, last)])
        means[first:last] = sums / n
    result: list[float] = means.tolist()
    return result


_BLOCK = 4096  # windows per scale: prices seldom span many binary orders in one block


class _BbandsCalc:
    def __init__(self, spec: BbandsSpec) -> None:
        self._closes: deque[float] = deque(maxlen=spec.length)
        self._k = spec.std

    def update(self, candle: Candle) -> tuple[float | None, ...]:
        closes = self._closes
        closes.append(candle.close)
        n = len(closes)
        if n < (closes.maxlen or 0):
            return (None, None, None)
        mid = math.fsum(closes) / n
        std = math.sqrt(math.fsum((x - mid) ** 2 for x in closes) / (n - 1))
        return (mid - self._k * std, mid, mid + self._k * std)


class _EmaCalc:
    def __init__(self, spec: EmaSpec) -> None:
        self._ema = _SeededEma(spec.length, _Ewm(span=spec.length))

    def update(self, candle: Candle) -> tuple[float | None, ...]:
        return (self._ema.update(candle.close),)


class _RsiCalc:
    def __init__(self, spec: RsiSpec) -> None:
        self._warmup = spec.warmup
        self._count = 0
        self._prev: float | None = None
        self._up = _Ewm(alpha=1.0 / spec.length)
        self._down = _Ewm(alpha=1.0 / spec.length)

    def update(self, candle: Candle) -> tuple[float | None, ...]:
        self._count += 1
        prev, self._prev = self._prev, candle.close
        if prev is None:
            return (None,)
        change = candle.close - prev
        up = self._up.update(change if change > 0 else 0.0)
        down = self._down.update(change if change < 0 else 0.0)
        if self._count < self._warmup:
            return (None,)
        total = up + abs(down)
        return (100 * up / total if total else None,)


class _AtrCalc:
    def __init__(self, spec: AtrSpec) -> None:
        self._warmup = spec.warmup
        self._count = 0
        self._prev_close: float | None = None
        self._atr = _SeededEma(spec.length, _Ewm(alpha=1.0 / spec.length))

    def update(self, candle: Candle) -> tuple[float | None, ...]:
        self._count += 1
        high, low, pc = candle.high, candle.low, self._prev_close
        if pc is None:
            true_range = abs(high - low)
        else:
            true_range = max(abs(high - low), abs(high - pc), abs(pc - low))
        self._prev_close = candle.close
        atr = self._atr.update(true_range)
        return (atr if self._count >= self._warmup else None,)


class _MacdCalc:
    def __init__(self, spec: MacdSpec) -> None:
        self._warmup = spec.warmup
        self._count = 0
        self._fast = _SeededEma(spec.fast, _Ewm(span=spec.fast))
        self._slow = _SeededEma(spec.slow, _Ewm(span=spec.slow))
        self._signal = _SeededEma(spec.signal, _Ewm(span=spec.signal))

    def update(self, candle: Candle) -> tuple[float | None, ...]:
        self._count += 1
        fast = self._fast.update(candle.close)
        slow = self._slow.update(candle.close)
        if fast is None or slow is None:
            return (None, None, None)
        macd = fast - slow
        signal = self._signal.update(macd)
        if signal is None or self._count < self._warmup:
            return (None, None, None)
        return (macd, signal, macd - signal)


def _calculator(spec: IndicatorSpec) -> _Calc:
    match spec:
        case RsiSpec():
            return _RsiCalc(spec)
        case SmaSpec():
            return _SmaCalc(spec)
        case EmaSpec():
            return _EmaCalc(spec)
        case MacdSpec():
            return _MacdCalc(spec)
        case BbandsSpec():
            return _BbandsCalc(spec)
        case AtrSpec():
            return _AtrCalc(spec)


class IndicatorWindow:
    """Latest indicator values, updated candle by candle at a cost independent of history.

    Args:
        specs: the indicators to maintain (duplicates are computed once).
        max_history: how many recent candles to keep in `candles` for callers that
            look back (e.g. an N-bar breakout). Defaults to the longest warm-up of
            `specs`; it must be at least the longest SMA/BBANDS length.

    See the module docstring for how values are computed and how closely they match
    pandas-ta over the full history.
    """

    def __init__(self, specs: Iterable[IndicatorSpec], *, max_history: int | None = None) -> None:
        self.specs: tuple[IndicatorSpec, ...] = tuple(dict.fromkeys(specs))
        if not self.specs:
            raise ValueError("IndicatorWindow needs at least one indicator spec")
        needed = max(spec.history for spec in self.specs)
        if max_history is None:
            max_history = max(spec.warmup for spec in self.specs)
        if max_history < needed:
            raise ValueError(
                f"max_history {max_history} is shorter than the {needed} closes the "
                "longest SMA/BBANDS needs; raise it or leave it unset"
            )
        self.max_history = max_history
        self.columns: tuple[str, ...] = tuple(c for spec in self.specs for c in spec.columns)
        self._calcs = [(spec.columns, _calculator(spec)) for spec in self.specs]
        self._candles: deque[Candle] = deque(maxlen=max_history)
        self._values: dict[str, float | None] = dict.fromkeys(self.columns)
        self._count = 0

    @property
    def count(self) -> int:
        """Candles seen since the window was made."""
        return self._count

    @property
    def candles(self) -> tuple[Candle, ...]:
        """The most recent candles, at most `max_history`, oldest first."""
        return tuple(self._candles)

    @property
    def values(self) -> dict[str, float | None]:
        """The latest value of every column (None until warmed up)."""
        return dict(self._values)

    @property
    def ready(self) -> bool:
        """Whether every column has a value."""
        return all(value is not None for value in self._values.values())

    def update(self, candle: Candle) -> dict[str, float | None]:
        """Add the next closed candle and return the latest values.

        Raises:
            ValueError: the candle is not after the previous one, or belongs to
                another market or timeframe.
        """
        if self._candles:
            _check_next(self._candles[-1], candle)
        self._candles.append(candle)
        self._count += 1
        values = self._values
        for columns, calc in self._calcs:
            for name, value in zip(columns, calc.update(candle), strict=True):
                values[name] = value
        return dict(values)

    def extend(self, candles: Iterable[Candle]) -> dict[str, float | None]:
        """`update` with each candle in turn (e.g. to warm up from the store)."""
        for candle in candles:
            self.update(candle)
        return dict(self._values)


def _check_next(last: Candle, candle: Candle) -> None:
    """Raise ValueError unless `candle` may follow `last` in one window."""
    if (candle.symbol, candle.timeframe) != (last.symbol, last.timeframe):
        raise ValueError(
            f"candle of {candle.symbol} {candle.timeframe} given to a window of "
            f"{last.symbol} {last.timeframe}: use one window per market"
        )
    if candle.open_time <= last.open_time:
        raise ValueError(
            f"candle at {candle.open_time.isoformat()} is not after the previous "
            f"one at {last.open_time.isoformat()}: feed candles oldest first, once"
        )


def indicator_table(
    specs: Iterable[IndicatorSpec], candles: Sequence[Candle]
) -> list[dict[str, float | None]]:
    """What a fresh `IndicatorWindow(specs)` returns from `update` for each of
    `candles` in turn, computed column by column.

    A backtest knows the whole history ahead, so it need not advance a window candle
    by candle: each indicator's own calculator runs over all the candles in one
    loop (the SMA sums slices of the closes), which gives the same numbers, bit for
    bit, for a fraction of the cost. Each row is a new dict.

    Raises:
        ValueError: as `IndicatorWindow.update` would for the first candle out of
            order or of another market.
    """
    window = IndicatorWindow(specs)
    times = [c.open_time for c in candles]
    if (
        not all(map(operator.lt, times, islice(times, 1, None)))
        or len({c.symbol for c in candles}) > 1
        or len({c.timeframe for c in candles}) > 1
    ):
        for last, candle in zip(candles, candles[1:], strict=False):
            _check_next(last, candle)
    columns: list[Sequence[float | None]] = []
    closes: list[float] | None = None
    for names, calc in window._calcs:
        if isinstance(calc, _SmaCalc):
            if closes is None:
                closes = [c.close for c in candles]
            columns.append(calc.column(closes))
            continue
        rows = [calc.update(c) for c in candles]
        columns.extend([row[k] for row in rows] for k in range(len(names)))
    names = window.columns
    if len(names) == 1:
        (first,) = names
        return [{first: a} for a in columns[0]]
    if len(names) == 2 and names[0] != names[1]:
        first, second = names
        return [{first: a, second: b} for a, b in zip(columns[0], columns[1], strict=True)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
