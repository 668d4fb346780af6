"""Candle feeds: one interface, two sources (CSV replay and ccxt polling).

Every feed yields closed candles of one market, oldest first, with strictly
increasing open times. Missing bars are reported as a `Gap` to the feed's `on_gap`
hook (logged as a warning when there is no hook) before the next real candle is
yielded: a feed never invents candles to fill a gap.

    feed = parse_feed_spec("csv:data/ETH-BTC_5m.csv", symbol="ETH/BTC", timeframe="5m")
    async with aclosing(feed.stream()) as candles:
        async for candle in candles:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import decimal
import inspect
import math
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

from shared.logging import get_logger
from shared.market.candles import Candle, Gap, timeframe_delta, timeframe_seconds
from shared.market.clock import Clock, SystemClock
from shared.market.errors import (
    FeedError,
    MalformedData,
    PermanentFeedError,
    RateLimited,
    TemporaryFeedError,
    UnknownSymbol,
)
from shared.market.store import CandleStore

OnGap = Callable[[Gap], Awaitable[None] | None]
T = TypeVar("T")

_log = get_logger("shared.market.feeds")

CSV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_PRICES = ("open", "high", "low", "close", "volume")


class CandleFeed(ABC):
    """A source of closed candles of one market (`symbol` on `timeframe`).

    Implementations yield from `stream()` only closed candles with strictly
    increasing open times, pass every candle through `_admit` (which reports gaps),
    and raise only `shared.market.errors.FeedError`s. Close the stream when you stop
    early (`contextlib.aclosing`), so the feed releases its connections at once.
    """

    def __init__(self, symbol: str, timeframe: str, *, on_gap: OnGap | None = None) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.on_gap = on_gap
        self._step = timeframe_delta(timeframe)
        self._last_open: datetime | None = None

    @abstractmethod
    def stream(self) -> AsyncGenerator[Candle, None]:
        """Yield closed candles, oldest first, until the source ends (if ever).

        An async generator (an `AsyncIterator` that can also be closed early with
        `aclose()`, e.g. through `contextlib.aclosing`).
        """

    @property
    def last_open_time(self) -> datetime | None:
        """Open time of the last candle this feed yielded (or resumed after)."""
        return self._last_open

    async def _admit(self, candle: Candle) -> bool:
        """Track order and report a gap; False for a candle at or before the last one."""
        last = self._last_open
        if last is not None:
            if candle.open_time <= last:
                return False
            if candle.open_time - last > self._step:
                missing = (candle.open_time - last) // self._step - 1
                gap = Gap(self.symbol, self.timeframe, last, candle.open_time, missing)
                await self._report_gap(gap)
        self._last_open = candle.open_time
        return True

    async def _report_gap(self, gap: Gap) -> None:
        if self.on_gap is None:
            _log.warning(
                "candle_gap",
                symbol=gap.symbol,
                timeframe=gap.timeframe,
                start=gap.start.isoformat(),
                end=gap.end.isoformat(),
                missing=gap.missing,
            )
            return
        result = self.on_gap(gap)
        if inspect.isawaitable(result):
            await result


# --------------------------------------------------------------------------- CSV


def _parse_time(text: str) -> datetime:
    text = text.strip()
    if text.isdigit():
        # Epoch milliseconds, as ccxt and freqtrade write them.
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    when = datetime.fromisoformat(text)
    if when.utcoffset() is None:
        raise ValueError(
            f"timestamp {text!r} has no timezone; write UTC as e.g. 2018-01-10T04:55:00Z"
        )
    return when.astimezone(UTC)


def _check_values(values: Mapping[str, float]) -> str | None:
    """What is wrong with one bar's numbers, or None."""
    for name, value in values.items():
        if not math.isfinite(value):
            return f"{name} is not a finite number: {value!r}"
    # Prices may be negative (WTI crude in April 2020); volumes may not.
    if values["volume"] < 0:
        return f"volume is negative: {values['volume']!r}"
    if values["high"] < values["low"]:
        return f"high {values['high']!r} is below low {values['low']!r}"
    return None


def read_candles_csv(path: str | Path, symbol: str, timeframe: str) -> list[Candle]:
    """Read and validate a whole candle file (`timestamp,open,high,low,close,volume`).

    Timestamps are ISO 8601 with a timezone (`2018-01-10T04:55:00Z`) or epoch
    milliseconds. Rows must be in strictly increasing time order on the timeframe's
    grid; missing bars are allowed (feeds report them as gaps).

    Raises:
        MalformedData: naming the first bad line and what is wrong with it.
        PermanentFeedError: the file cannot be read.
    """
    source = str(path)
    step = timeframe_delta(timeframe)
    try:
        handle = open(path, newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as e:
        raise PermanentFeedError(
            f"cannot read candle file {source}: {e.strerror}; check the path in the feed "
            "spec (csv:PATH, relative to the working directory)"
        ) from e
    candles: list[Candle] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise MalformedData(
                    source, f"the file is empty; expected a header {','.join(CSV_COLUMNS)}", line=1
                )
            names = [name.strip().lower() for name in header]
            absent = [name for name in CSV_COLUMNS if name not in names]
            if absent:
                raise MalformedData(
                    source,
                    f"the header lacks {', '.join(absent)}; expected {','.join(CSV_COLUMNS)}",
                    line=1,
                )
            index = {name: names.index(name) for name in CSV_COLUMNS}
            previous: datetime | None = None
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(names):
                    raise MalformedData(
                        source, f"expected {len(names)} fields, found {len(row)}", line=line
                    )
                candle = _csv_candle(source, line, row, index, symbol, timeframe)
                if previous is not None:
                    delta = candle.open_time - previous
                    if delta <= timedelta(0):
                        raise MalformedData(
                            source,
                            f"timestamp {candle.open_time.isoformat()} is not after the "
                            f"previous row's {previous.isoformat()}: rows must be in "
                            "increasing time order, without duplicates",
                            line=line,
                        )
                    if delta % step:
                        raise MalformedData(
                            source,
                            f"timestamp {candle.open_time.isoformat()} is not a whole number "
                            f"of {timeframe} bars after the previous row's "
                            f"{previous.isoformat()}: is the file's timeframe {timeframe}?",
                            line=line,
                        )
                previous = candle.open_time
                candles.append(candle)
        except csv.Error as e:
            raise MalformedData(source, f"not valid CSV: {e}", line=reader.line_num) from e
        except UnicodeDecodeError as e:
            raise MalformedData(source, f"not UTF-8 text: {e.reason}") from e
    return candles


def _csv_candle(
    source: str,
    line: int,
    row: Sequence[str],
    index: Mapping[str, int],
    symbol: str,
    timeframe: str,
) -> Candle:
    raw_time = row[index["timestamp"]]
    try:
        open_time = _parse_time(raw_time)
    except (ValueError, OverflowError) as e:
        raise MalformedData(source, f"bad timestamp {raw_time!r}: {e}", line=line) from e
    values: dict[str, float] = {}
    for name in _PRICES:
        raw = row[index[name]]
        try:
            values[name] = float(raw)
        except ValueError as e:
            raise MalformedData(source, f"{name} is not a number: {raw!r}", line=line) from e
    problem = _check_values(values)
    if problem is not None:
        raise MalformedData(source, problem, line=line)
    return Candle(symbol, timeframe, open_time, **values)


class CsvReplayFeed(CandleFeed):
    """Replay a candle file: as fast as possible, at real time, or N times real time.

    Args:
        speed: None replays as fast as possible; 1.0 keeps the file's own pace (one
            5m candle every five minutes, a gap's missing bars included); N is N
            times faster. Waiting is done on `clock`.
    """

    def __init__(
        self,
        path: str | Path,
        symbol: str,
        timeframe: str,
        *,
        speed: float | None = None,
        clock: Clock | None = None,
        on_gap: OnGap | None = None,
    ) -> None:
        super().__init__(symbol, timeframe, on_gap=on_gap)
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(
                f"replay speed {speed!r} must be a positive number of times real time "
                "(1.0 = real time), or None for as fast as possible"
            )
        self.path = Path(path)
        self.speed = speed
        self._clock = clock or SystemClock()

    async def stream(self) -> AsyncGenerator[Candle, None]:
        self._last_open = None
        candles = await asyncio.to_thread(read_candles_csv, self.path, self.symbol, self.timeframe)
        started: datetime | None = None
        for i, candle in enumerate(candles):
            if self.speed is not None:
                # Pace against the schedule, not the previous candle, so time spent
                # by the consumer does not accumulate as drift.
                if started is None:
                    started = self._clock.now()
                else:
                    offset = (candle.open_time - candles[0].open_time) / self.speed
                    delay = (started + offset - self._clock.now()).total_seconds()
                    if delay > 0:
                        await self._clock.sleep(delay)
            elif i % 256 == 255:
                # As fast as possible, but without starving the event loop.
                await asyncio.sleep(0)
            if await self._admit(candle):
                yield candle


# --------------------------------------------------------------------------- ccxt


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter for temporary errors, bounded in both ways.

    Attributes:
        attempts: tries per exchange call, the first included; then the error is
            raised to the caller.
        base_delay: seconds before the first retry (before jitter).
        max_delay: cap on any one wait.
    """

    attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("RetryPolicy needs attempts >= 1 and 0 <= base_delay <= max_delay")

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (0-based): half fixed, half random."""
        cap = min(self.max_delay, self.base_delay * 2.0**retry)
        return cap / 2 + rng.uniform(0, cap / 2)


def _retry_after(exchange: Any) -> float | None:
    headers = getattr(exchange, "last_response_headers", None) or {}
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            with contextlib.suppress(TypeError, ValueError):
                return max(float(value), 0.0)
    return None


def _aiohttp_failure(error: Exception) -> bool:
    # ccxt maps aiohttp errors other than connection errors (a truncated body, a
    # broken chunked encoding) to ExchangeError; they are network blips, not refusals.
    cause = error.__cause__
    return cause is not None and type(cause).__module__.split(".")[0] == "aiohttp"


def translate_ccxt_error(
    error: Exception, *, source: str, symbol: str, exchange: Any = None
) -> FeedError:
    """The one place where ccxt's exceptions become ours.

    Rate limits (418/429) -> `RateLimited`; network trouble, timeouts, 5xx and
    maintenance -> `TemporaryFeedError`; an unknown market -> `UnknownSymbol`; an
    answer ccxt could not parse -> `MalformedData`; anything else -> `PermanentFeedError`.
    """
    text = str(error) or type(error).__name__
    if isinstance(error, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RateLimited(
            f"{source} is rate limiting us: {text}",
            retry_after=_retry_after(exchange) if exchange is not None else None,
        )
    if isinstance(error, ccxt.BadSymbol):
        return UnknownSymbol(source, symbol, text)
    if isinstance(error, ccxt.BadResponse):
        return MalformedData(source, f"the exchange's answer could not be read: {text}")
    if isinstance(error, ccxt.OperationFailed) or _aiohttp_failure(error):
        return TemporaryFeedError(f"{source} is unavailable for now: {text}")
    if isinstance(error, ccxt.BaseError):
        return PermanentFeedError(f"{source} refused the request: {text}")
    # Not a ccxt error: ccxt choked on the answer while parsing it.
    return MalformedData(source, f"ccxt could not parse the answer: {error!r}")


# Exceptions ccxt's parsers raise when an answer does not have the expected shape.
_PARSE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError)


class CcxtPollingFeed(CandleFeed):
    """Poll any ccxt exchange's `fetch_ohlcv` for closed candles.

    Where it starts: after the latest stored candle of the market when `store` has
    one (a restart fetches nothing twice) unless `since` is later still; else at
    `since`; else with the exchange's most recent `limit` candles. While behind, it
    fetches page after page; once caught up it sleeps until the next candle closes
    plus `poll_interval` (grace for the exchange to publish it), and polls every
    `poll_interval` while it is late. Only candles whose close time has passed on
    `clock` are emitted and stored.

    Temporary errors are retried with `retry` (exponential backoff with jitter, on
    `clock`); ccxt's own rate limiter is always on (`enableRateLimit=True`).

    The store records what was fetched, not what a consumer processed: a consumer
    that must not miss a candle across restarts warms up from `store.load(...)`.

    Args:
        exchange: a ready ccxt async exchange (e.g. pointed at a test server); the
            caller closes it, and the feed switches its rate limiter on. When None
            the feed makes one from `exchange_id` and `exchange_config` (merged
            into ccxt's defaults) and closes it when the stream ends.
        limit: candles per request.
    """

    def __init__(
        self,
        exchange_id: str,
        symbol: str,
        timeframe: str,
        *,
        store: CandleStore | None = None,
        poll_interval: float = 2.0,
        exchange: Any = None,
        since: datetime | None = None,
        clock: Clock | None = None,
        on_gap: OnGap | None = None,
        limit: int = 500,
        retry: RetryPolicy | None = None,
        exchange_config: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(symbol, timeframe, on_gap=on_gap)
        if exchange is None and exchange_id not in ccxt_async.exchanges:
            raise ValueError(
                f"unknown ccxt exchange id {exchange_id!r}: use one of ccxt.exchanges, "
                "e.g. binance, kraken, coinbase"
            )
        if since is not None and since.utcoffset() != timedelta(0):
            raise ValueError("since must be a timezone-aware UTC datetime")
        if poll_interval <= 0 or limit < 1:
            raise ValueError("poll_interval must be positive and limit at least 1")
        self.exchange_id = exchange_id
        self.store = store
        self.poll_interval = poll_interval
        self.since = since
        self.limit = limit
        self.retry = retry or RetryPolicy()
        self._exchange = exchange
        self._exchange_config = dict(exchange_config or {})
        self._clock = clock or SystemClock()
        # Jitter spreads retries of many feeds apart; it needs no cryptographic quality.
        self._rng = rng or random.Random()  # noqa: S311
        self._source = f"{exchange_id} {symbol} {timeframe}"
        self._step_ms = timeframe_seconds(timeframe) * 1000

    def _make_exchange(self) -> Any:
        config = {**self._exchange_config, "enableRateLimit": True}
        return getattr(ccxt_async, self.exchange_id)(config)

    async def stream(self) -> AsyncGenerator[Candle, None]:
        owned = self._exchange is None
        exchange = self._make_exchange() if owned else self._exchange
        exchange.enableRateLimit = True
        try:
            await self._prepare(exchange)
            cursor = await self._resume_point()
            while True:
                fresh = await self._poll(exchange, cursor)
                for candle in fresh:
                    if await self._admit(candle):
                        yield candle
                if fresh:
                    cursor = fresh[-1].open_time + self._step
                    if cursor + self._step <= self._clock.now():
                        continue  # behind: the next candle is closed already
                elif cursor is not None and cursor + self._step * self.limit <= self._clock.now():
                    # Nothing in a whole page of closed bars: move past them (the gap is
                    # reported when the next real candle arrives) instead of asking
                    # for the same empty window forever.
                    cursor += self._step * self.limit
                    continue
                await self._clock.sleep(self._wait(cursor))
        finally:
            if owned:
                with contextlib.suppress(Exception):
                    await exchange.close()

    def _wait(self, cursor: datetime | None) -> float:
        if cursor is None:
            return self.poll_interval
        until_close = (cursor + self._step - self._clock.now()).total_seconds()
        return max(until_close, 0.0) + self.poll_interval

    async def _prepare(self, exchange: Any) -> None:
        await self._call(exchange, "load_markets", exchange.load_markets)
        if self.symbol not in (exchange.markets or {}):
            raise UnknownSymbol(self._source, self.symbol, "not in the exchange's markets")
        if not exchange.has.get("fetchOHLCV"):
            raise PermanentFeedError(
                f"{self.exchange_id} does not serve candles (no fetchOHLCV): pick another exchange"
            )
        timeframes = exchange.timeframes or {}
        if timeframes and self.timeframe not in timeframes:
            raise PermanentFeedError(
                f"{self.exchange_id} has no {self.timeframe} candles; it offers "
                f"{', '.join(timeframes)}"
            )

    async def _resume_point(self) -> datetime | None:
        self._last_open = None
        latest = (
            None if self.store is None else await self.store.latest(self.symbol, self.timeframe)
        )
        if latest is not None and (self.since is None or self.since <= latest.close_time):
            # Gap detection continues from the stored candle across the restart.
            self._last_open = latest.open_time
            return latest.close_time
        return self.since

    async def _poll(self, exchange: Any, cursor: datetime | None) -> list[Candle]:
        since_ms = None if cursor is None else int(cursor.timestamp() * 1000)

        async def fetch() -> Any:
            return await exchange.fetch_ohlcv(
                self.symbol, self.timeframe, since=since_ms, limit=self.limit
            )

        rows = await self._call(exchange, "fetch_ohlcv", fetch)
        candles = self._parse(rows)
        now = self._clock.now()
        closed = [
            c
            for c in candles
            if c.close_time <= now
            and (cursor is None or c.open_time >= cursor)
            and (self._last_open is None or c.open_time > self._last_open)
        ]
        if closed and self.store is not None:
            await self.store.upsert(closed)
        return closed

    def _parse(self, rows: Any) -> list[Candle]:
        if not isinstance(rows, list):
            raise MalformedData(
                self._source, f"fetch_ohlcv answered {type(rows).__name__}, not a list of rows"
            )
        candles: list[Candle] = []
        previous: int | None = None
        for i, row in enumerate(rows):
            if not isinstance(row, list | tuple) or len(row) < 6:
                raise MalformedData(
                    self._source,
                    f"row {i} is not [timestamp, open, high, low, close, volume]: {row!r}",
                )
            stamp = row[0]
            if not isinstance(stamp, int) or isinstance(stamp, bool):
                raise MalformedData(self._source, f"row {i} has no integer timestamp (ms): {row!r}")
            when = datetime.fromtimestamp(stamp / 1000, UTC)
            values: dict[str, float] = {}
            for name, value in zip(_PRICES, row[1:6], strict=True):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise MalformedData(
                        self._source,
                        f"candle {when.isoformat()} (row {i}): {name} is missing or not a "
                        f"number: {row!r}",
                    )
                values[name] = float(value)
            problem = _check_values(values)
            if problem is not None:
                raise MalformedData(self._source, f"candle {when.isoformat()} (row {i}): {problem}")
            if previous is not None and (stamp <= previous or (stamp - previous) % self._step_ms):
                raise MalformedData(
                    self._source,
                    f"candle {when.isoformat()} (row {i}) is not a whole number of "
                    f"{self.timeframe} bars after the previous one",
                )
            previous = stamp
            candles.append(Candle(self.symbol, self.timeframe, when, **values))
        return candles

    async def _call(self, exchange: Any, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run one exchange call, retrying temporary errors with backoff on the clock."""
        retry = 0
        while True:
            try:
                # ccxt may set the current decimal context's rounding for good (its
                # decimal_to_precision): in a copy, so this process's sums keep theirs.
                with decimal.localcontext():
                    return await call()
            except (ccxt.BaseError, *_PARSE_ERRORS) as e:
                error = translate_ccxt_error(
                    e, source=self._source, symbol=self.symbol, exchange=exchange
                )
                if not isinstance(error, TemporaryFeedError) or retry + 1 >= self.retry.attempts:
                    raise error from e
            delay = self.retry.delay(retry, self._rng)
            if isinstance(error, RateLimited) and error.retry_after is not None:
                delay = max(delay, error.retry_after)
            _log.warning(
                "feed_retry",
                source=self._source,
                call=what,
                error=str(error),
                retry=retry + 1,
                delay=round(delay, 3),
            )
            await self._clock.sleep(delay)
            retry += 1


# --------------------------------------------------------------------------- specs


def parse_feed_spec(
    spec: str,
    *,
    symbol: str,
    timeframe: str,
    speed: float | None = None,
    store: CandleStore | None = None,
    clock: Clock | None = None,
    on_gap: OnGap | None = None,
) -> CandleFeed:
    """Build a feed from its spec: `csv:PATH` or `ccxt:EXCHANGE_ID` (any ccxt id).

    Raises:
        ValueError: the spec names no known kind, or `speed` is given for a live feed.
    """
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ValueError(
            f"feed spec {spec!r} is not csv:PATH or ccxt:EXCHANGE_ID "
            "(e.g. csv:data/ETH-BTC_5m.csv, ccxt:binance)"
        )
    if kind == "csv":
        return CsvReplayFeed(target, symbol, timeframe, speed=speed, clock=clock, on_gap=on_gap)
    if kind == "ccxt":
        if speed is not None:
            raise ValueError(f"speed applies to csv replay only, not to the live feed {spec!r}")
        return CcxtPollingFeed(target, symbol, timeframe, store=store, clock=clock, on_gap=on_gap)
    raise ValueError(f"feed spec {spec!r}: unknown kind {kind!r}; use csv:PATH or ccxt:EXCHANGE_ID")
