"""The ccxt polling feed through the real ccxt library against a local fake Binance.

The server (`binance_server.py`) speaks Binance's public spot REST API and serves
the shipped candles, including the one still forming at the test's virtual "now".
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import aiohttp
import ccxt
import pytest

from shared.market.candles import Gap
from shared.market.clock import VirtualClock
from shared.market.errors import (
    FeedError,
    MalformedData,
    PermanentFeedError,
    RateLimited,
    TemporaryFeedError,
    UnknownSymbol,
)
from shared.market.feeds import CcxtPollingFeed, RetryPolicy, translate_ccxt_error
from shared.market.store import CandleStore
from tests.shared.market.binance_server import RETRY_AFTER, BinanceServer
from tests.shared.market.data import (
    ADA,
    ETH,
    STEP,
    as_rows,
    collect,
    csv_rows,
    csv_times,
    expected_gaps,
    ms,
)

ETH_ROWS = csv_rows(ETH)
ETH_TIMES = [t for t, _ in ETH_ROWS]
T0 = ETH_TIMES[0]


def eth_feed(exchange: Any, clock: VirtualClock, **options: Any) -> CcxtPollingFeed:
    options.setdefault("since", T0)
    return CcxtPollingFeed("binance", "ETH/BTC", "5m", exchange=exchange, clock=clock, **options)


async def test_ccxt_feed_fetches_every_closed_candle_page_by_page(
    binance: BinanceServer, exchange: Any, clock: VirtualClock, store: CandleStore
) -> None:
    clock.set(ETH_TIMES[-1] + STEP + timedelta(minutes=1))

    candles = await collect(eth_feed(exchange, clock, store=store, limit=1000), limit=5760)

    assert as_rows(candles) == ETH_ROWS
    assert [r["startTime"] for r in binance.klines_requests()] == [
        str(ms(ETH_TIMES[i])) for i in range(0, 5760, 1000)
    ]
    assert clock.sleeps == []  # while behind it fetches page after page
    assert await store.load("ETH/BTC", "5m") == candles


async def test_ccxt_feed_emits_only_closed_candles(
    binance: BinanceServer, exchange: Any, clock: VirtualClock
) -> None:
    # Ten candles have closed; the eleventh is forming and Binance serves it too.
    clock.set(T0 + 10 * STEP + timedelta(minutes=2))
    emitted: list[tuple[Any, Any]] = []

    feed = eth_feed(exchange, clock, poll_interval=2.0)
    for candle in await collect(feed, limit=13):
        emitted.append((candle.open_time, candle.close_time))

    assert [t for t, _ in emitted] == ETH_TIMES[:13]
    first_answer = binance.klines_requests()[0]
    assert first_answer["startTime"] == str(ms(T0))
    # The forming candle was served but held back until it closed: the feed slept
    # until each next close plus the poll interval, then fetched it.
    assert clock.sleeps == pytest.approx([180 + 2.0, 300.0, 300.0])
    assert [r["startTime"] for r in binance.klines_requests()] == [
        str(ms(ETH_TIMES[i])) for i in (0, 10, 11, 12)
    ]


async def test_ccxt_feed_closed_only_check_uses_the_clock(
    binance: BinanceServer, exchange: Any, clock: VirtualClock
) -> None:
    clock.set(T0 + 3 * STEP + timedelta(seconds=1))
    seen: list[bool] = []
    for candle in await collect(eth_feed(exchange, clock), limit=6):
        seen.append(candle.close_time <= clock.now())
    assert seen == [True] * 6


async def test_ccxt_feed_rate_limit_and_5xx_are_retried_then_succeed(
    binance: BinanceServer, exchange: Any, clock: VirtualClock
) -> None:
    clock.set(T0 + 20 * STEP)
    binance.faults.extend(["429", "503"])

    candles = await collect(eth_feed(exchange, clock, rng=random.Random(7)), limit=20)

    assert as_rows(candles) == ETH_ROWS[:20]
    # The same request three times: refused (429), failed (503), answered.
    assert [r["startTime"] for r in binance.klines_requests()] == [str(ms(T0))] * 3
    # The 429 carried Retry-After, which the feed honoured; the 503 got the second
    # step of the exponential backoff (1 s base, doubled, half of it jitter).
    assert clock.sleeps[0] == RETRY_AFTER
    assert 1.0 <= clock.sleeps[1] <= 2.0
    assert len(clock.sleeps) == 2


async def test_ccxt_feed_temporary_errors_give_up_after_bounded_retries(
    binance: BinanceServer, exchange: Any, clock: VirtualClock
) -> None:
    clock.set(T0 + 20 * STEP)
    binance.faults.extend(["503"] * 4)
    feed = eth_feed(exchange, clock, retry=RetryPolicy(attempts=3, base_delay=1.0, max_delay=1.5))

    with pytest.raises(TemporaryFeedError, match="503") as info:
        await collect(feed)

    assert not isinstance(info.value, PermanentFeedError)
    assert isinstance(info.value.__cause__, ccxt.ExchangeNotAvailable)
    assert len(binance.klines_requests()) == 3
    assert 0.5 <= clock.sleeps[0] <= 1.0
    assert 0.75 <= clock.sleeps[1] <= 1.5  # capped at max_delay


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ("short_row", "(row 1): close is missing or not a number"),
        ("non_numeric", "(row 1): close is missing or not a number"),
        ("high_below_low", "(row 1): high 0.099 is below low 0.0997238"),
    ],
)
async def test_ccxt_feed_malformed_klines_raise_malformed_data(
    binance: BinanceServer, exchange: Any, clock: VirtualClock, fault: str, detail: str
) -> None:
    clock.set(T0 + 20 * STEP)
    binance.faults.append(fault)

    with pytest.raises(MalformedData) as info:
        await collect(eth_feed(exchange, clock))

    assert detail in info.value.detail
    assert info.value.source == "binance ETH/BTC 5m"
    assert ETH_TIMES[1].isoformat() in info.value.detail
    assert len(binance.klines_requests()) == 1  # permanent: not retried


async def test_ccxt_feed_resumes_from_store_without_refetching(
    binance: BinanceServer, exchange: Any, clock: VirtualClock, store: CandleStore
) -> None:
    clock.set(T0 + 600 * STEP)
    first = await collect(eth_feed(exchange, clock, store=store), limit=600)
    assert [c.open_time for c in first] == ETH_TIMES[:600]
    fetched_before = len(binance.klines_requests())

    # A restart later: a new feed, same store, same `since`. The store wins.
    clock.set(T0 + 1000 * STEP)
    gaps: list[Gap] = []
    second = await collect(eth_feed(exchange, clock, store=store, on_gap=gaps.append), limit=400)

    assert as_rows(second) == ETH_ROWS[600:1000]
    requests = binance.klines_requests()[fetched_before:]
    assert [r["startTime"] for r in requests] == [str(ms(ETH_TIMES[600]))]
    assert gaps == []
    assert await store.load("ETH/BTC", "5m") == first + second


async def test_ccxt_feed_since_later_than_store_starts_at_since(
    binance: BinanceServer, exchange: Any, clock: VirtualClock, store: CandleStore
) -> None:
    clock.set(T0 + 10 * STEP)
    await collect(eth_feed(exchange, clock, store=store), limit=10)
    clock.set(T0 + 60 * STEP)
    fetched_before = len(binance.klines_requests())
    gaps: list[Gap] = []

    feed = eth_feed(exchange, clock, store=store, since=ETH_TIMES[50], on_gap=gaps.append)
    candles = await collect(feed, limit=10)

    assert [c.open_time for c in candles] == ETH_TIMES[50:60]
    assert binance.klines_requests()[fetched_before]["startTime"] == str(ms(ETH_TIMES[50]))
    assert gaps == []  # skipping ahead on purpose is not a gap in the data


async def test_ccxt_feed_reports_gap_across_restart(
    binance: BinanceServer, exchange: Any, clock: VirtualClock, store: CandleStore
) -> None:
    clock.set(T0 + 10 * STEP)
    await collect(eth_feed(exchange, clock, store=store), limit=10)
    # Bars 10..14 are deleted from the exchange's history, as after an outage.
    market = binance.markets["ETHBTC"]
    market.rows = market.rows[:10] + market.rows[15:]
    clock.set(T0 + 20 * STEP)

    gaps: list[Gap] = []
    candles = await collect(eth_feed(exchange, clock, store=store, on_gap=gaps.append), limit=5)

    assert [(g.start, g.end, g.missing) for g in gaps] == [(ETH_TIMES[9], ETH_TIMES[15], 5)]
    assert [c.open_time for c in candles] == ETH_TIMES[15:20]


async def test_ccxt_feed_ada_btc_reports_the_files_gaps(exchange: Any, clock: VirtualClock) -> None:
    times = csv_times(ADA)
    clock.set(times[-1] + STEP)
    gaps: list[Gap] = []
    feed = CcxtPollingFeed(
        "binance",
        "ADA/BTC",
        "5m",
        exchange=exchange,
        since=times[0],
        clock=clock,
        limit=1000,
        on_gap=gaps.append,
    )

    candles = await collect(feed, limit=len(times))

    assert [c.open_time for c in candles] == times
    assert [(g.start, g.end, g.missing) for g in gaps] == expected_gaps(ADA)


async def test_ccxt_feed_without_since_starts_with_latest_candles(
    binance: BinanceServer, exchange: Any, clock: VirtualClock
) -> None:
    clock.set(T0 + 100 * STEP + timedelta(seconds=30))
    candles = await collect(eth_feed(exchange, clock, since=None, limit=50), limit=49)
    # The latest 50 bars include the forming one, which is held back.
    assert [c.open_time for c in candles] == ETH_TIMES[51:100]
    assert "startTime" not in binance.klines_requests()[0]


async def test_ccxt_feed_unknown_symbol_raises(
    binance: BinanceServer, exchange: Any, clock: VirtualClock
) -> None:
    feed = CcxtPollingFeed("binance", "DOGE/BTC", "5m", exchange=exchange, clock=clock)
    with pytest.raises(UnknownSymbol, match="DOGE/BTC"):
        await collect(feed)
    assert binance.klines_requests() == []


async def test_ccxt_feed_unsupported_timeframe_raises(exchange: Any, clock: VirtualClock) -> None:
    feed = CcxtPollingFeed("binance", "ETH/BTC", "2m", exchange=exchange, clock=clock)
    with pytest.raises(PermanentFeedError, match="binance has no 2m candles"):
        await collect(feed)


async def test_ccxt_feed_turns_on_the_exchange_rate_limiter(
    binance: BinanceServer, clock: VirtualClock
) -> None:
    exchange = binance.exchange()
    exchange.enableRateLimit = False
    try:
        clock.set(T0 + 3 * STEP)
        await collect(eth_feed(exchange, clock), limit=3)
        assert exchange.enableRateLimit is True
    finally:
        await exchange.close()


async def test_ccxt_feed_builds_its_own_exchange_from_config(
    binance: BinanceServer, clock: VirtualClock
) -> None:
    template = binance.exchange()
    await template.close()
    clock.set(T0 + 5 * STEP)
    feed = CcxtPollingFeed(
        "binance",
        "ETH/BTC",
        "5m",
        since=T0,
        clock=clock,
        exchange_config={
            "urls": {"api": template.urls["api"]},
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
        },
    )
    assert [c.open_time for c in await collect(feed, limit=5)] == ETH_TIMES[:5]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ccxt.RateLimitExceeded("429"), RateLimited),
        (ccxt.DDoSProtection("418"), RateLimited),
        (ccxt.RequestTimeout("timeout"), TemporaryFeedError),
        (ccxt.ExchangeNotAvailable("502"), TemporaryFeedError),
        (ccxt.OnMaintenance("maintenance"), TemporaryFeedError),
        (ccxt.NetworkError("reset"), TemporaryFeedError),
        (ccxt.BadSymbol("Invalid symbol."), UnknownSymbol),
        (ccxt.BadResponse("not json"), MalformedData),
        (ccxt.NullResponse("empty"), MalformedData),
        (ccxt.AuthenticationError("key"), PermanentFeedError),
        (ccxt.BadRequest("bad"), PermanentFeedError),
        (ccxt.NotSupported("no"), PermanentFeedError),
        (ccxt.ExchangeError("other"), PermanentFeedError),
        (TypeError("'NoneType' object is not subscriptable"), MalformedData),
    ],
)
def test_translate_ccxt_error_maps_to_our_hierarchy(
    error: Exception, expected: type[FeedError]
) -> None:
    translated = translate_ccxt_error(error, source="binance ETH/BTC 5m", symbol="ETH/BTC")
    assert type(translated) is expected
    temporary = isinstance(translated, TemporaryFeedError)
    assert temporary != isinstance(translated, PermanentFeedError)


def test_translate_ccxt_error_network_blip_wrapped_as_exchange_error_is_temporary() -> None:
    # ccxt wraps aiohttp errors other than connection errors in a plain ExchangeError.
    try:
        try:
            raise aiohttp.ClientPayloadError("Response payload is not completed")
        except aiohttp.ClientError as e:
            raise ccxt.ExchangeError("binance GET https://api.binance.com/api/v3/klines") from e
    except ccxt.ExchangeError as error:
        translated = translate_ccxt_error(error, source="binance", symbol="ETH/BTC")
    assert type(translated) is TemporaryFeedError


def test_retry_policy_delays_grow_exponentially_within_bounds() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=8.0)
    rng = random.Random(3)
    for retry, cap in enumerate([1, 2, 4, 8, 8, 8]):
        for _ in range(50):
            assert cap / 2 <= policy.delay(retry, rng) <= cap


@pytest.mark.parametrize(
    "options", [{"attempts": 0}, {"base_delay": -1.0}, {"base_delay": 5.0, "max_delay": 1.0}]
)
def test_retry_policy_bad_bounds_raise(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy needs"):
        RetryPolicy(**options)
