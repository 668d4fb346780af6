"""CSV replay feeds over the shipped real data, and feed specs.

Expected values (candles, gaps) are computed here from the CSV files with the csv
module, independently of the code under test.
"""

from __future__ import annotations

from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.market.candles import Candle, Gap
from shared.market.clock import VirtualClock
from shared.market.errors import MalformedData, PermanentFeedError
from shared.market.feeds import CcxtPollingFeed, CsvReplayFeed, parse_feed_spec
from tests.shared.market.data import ADA, ETH, STEP, collect, csv_rows, expected_gaps


async def test_csv_replay_eth_btc_yields_every_candle_in_order() -> None:
    clock = VirtualClock()
    feed = CsvReplayFeed(ETH, "ETH/BTC", "5m", clock=clock)

    candles = await collect(feed)

    expected = csv_rows(ETH)
    assert len(candles) == len(expected) == 5760
    assert [(c.open_time, (c.open, c.high, c.low, c.close, c.volume)) for c in candles] == expected
    assert all(
        b.open_time - a.open_time == STEP for a, b in zip(candles, candles[1:], strict=False)
    )
    assert {(c.symbol, c.timeframe) for c in candles} == {("ETH/BTC", "5m")}
    assert candles[0].open_time == datetime(2018, 1, 10, 4, 55, tzinfo=UTC)
    assert clock.sleeps == []  # as fast as possible: never waits


async def test_csv_replay_streams_again_from_the_start() -> None:
    feed = CsvReplayFeed(ETH, "ETH/BTC", "5m")
    first = await collect(feed, limit=10)
    assert await collect(feed, limit=10) == first


async def test_csv_replay_ada_btc_reports_each_gap_and_invents_no_candle() -> None:
    gaps: list[Gap] = []
    seen_when_reported: list[int] = []
    candles: list[Candle] = []

    async def on_gap(gap: Gap) -> None:
        gaps.append(gap)
        seen_when_reported.append(len(candles))

    feed = CsvReplayFeed(ADA, "ADA/BTC", "5m", clock=VirtualClock(), on_gap=on_gap)
    async with aclosing(feed.stream()) as stream:
        async for candle in stream:
            candles.append(candle)

    expected = expected_gaps(ADA)
    assert len(expected) == 5 and sum(m for _, _, m in expected) == 40
    assert [(g.start, g.end, g.missing) for g in gaps] == expected
    assert {(g.symbol, g.timeframe) for g in gaps} == {("ADA/BTC", "5m")}
    # Exactly the file's candles: none invented to fill the 40 missing bars.
    assert [c.open_time for c in candles] == [t for t, _ in csv_rows(ADA)]
    assert len(candles) == 5720
    # Each gap is reported before the first candle after it is yielded.
    times = [c.open_time for c in candles]
    assert [times[n - 1] for n in seen_when_reported] == [g.start for g in gaps]


async def test_csv_replay_gap_hook_may_be_synchronous() -> None:
    gaps: list[Gap] = []
    feed = CsvReplayFeed(ADA, "ADA/BTC", "5m", clock=VirtualClock(), on_gap=gaps.append)
    await collect(feed)
    assert len(gaps) == 5


@pytest.mark.parametrize("speed", [1.0, 10.0, 300.0])
async def test_csv_replay_speed_paces_on_the_injected_clock(speed: float) -> None:
    clock = VirtualClock(datetime(2030, 1, 1, tzinfo=UTC))
    feed = CsvReplayFeed(ETH, "ETH/BTC", "5m", speed=speed, clock=clock)

    emitted_at: list[datetime] = []
    async with aclosing(feed.stream()) as stream:
        async for _ in stream:
            emitted_at.append(clock.now())
            if len(emitted_at) == 6:
                break

    # Real time is one 5m candle per 300 s; N x speed divides every wait by N.
    assert clock.sleeps == pytest.approx([300.0 / speed] * 5)
    assert emitted_at[-1] - emitted_at[0] == timedelta(seconds=5 * 300 / speed)


async def test_csv_replay_real_time_waits_through_a_gap() -> None:
    first_gap_start, first_gap_end, missing = expected_gaps(ADA)[0]
    clock = VirtualClock()
    feed = CsvReplayFeed(ADA, "ADA/BTC", "5m", speed=2.0, clock=clock, on_gap=lambda g: None)

    candles = []
    async with aclosing(feed.stream()) as stream:
        async for candle in stream:
            candles.append(candle)
            if candle.open_time == first_gap_end:
                break

    # The replay keeps the market's own timeline: the bar after the gap comes
    # (missing + 1) bars after the one before it, at twice real speed.
    assert candles[-2].open_time == first_gap_start
    assert clock.sleeps[-1] == pytest.approx((missing + 1) * 300 / 2.0)
    assert clock.sleeps[:-1] == pytest.approx([150.0] * (len(candles) - 2))


async def test_csv_replay_consumer_time_does_not_accumulate_as_drift() -> None:
    clock = VirtualClock()
    feed = CsvReplayFeed(ETH, "ETH/BTC", "5m", speed=1.0, clock=clock)
    async with aclosing(feed.stream()) as stream:
        n = 0
        async for _ in stream:
            clock.advance(100)  # the consumer spends 100 s on each candle
            n += 1
            if n == 4:
                break
    assert clock.sleeps == pytest.approx([200.0] * 3)


GOOD = [
    "timestamp,open,high,low,close,volume",
    "2018-01-10T04:55:00Z,0.0984,0.0994766,0.09828605,0.0994766,1820.544474",
    "2018-01-10T05:00:00Z,0.09946999,0.0997238,0.099,0.09969,2527.921003",
    "2018-01-10T05:05:00Z,0.09969,0.10072981,0.09900001,0.09999,3653.02613",
]


@pytest.mark.parametrize(
    ("bad_line", "line", "detail"),
    [
        (
            "2018-01-10T05:10:00Z,0.09999,0.1003,0.0988,abc,1627.5",
            5,
            "close is not a number: 'abc'",
        ),
        ("2018-01-10T05:10:00Z,0.09999,0.1003,0.0988,0.099", 5, "expected 6 fields, found 5"),
        ("2018-01-10T05:10:00Z,0.09999,0.1003,0.0988,,1627.5", 5, "close is not a number: ''"),
        ("2018-01-10 05:10:00,0.09999,0.1003,0.0988,0.099,1627.5", 5, "has no timezone"),
        ("yesterday,0.09999,0.1003,0.0988,0.099,1627.5", 5, "bad timestamp 'yesterday'"),
        ("2018-01-10T05:05:00Z,0.09999,0.1003,0.0988,0.099,1627.5", 5, "not after the previous"),
        ("2018-01-10T05:00:00Z,0.09999,0.1003,0.0988,0.099,1627.5", 5, "not after the previous"),
        ("2018-01-10T05:12:00Z,0.09999,0.1003,0.0988,0.099,1627.5", 5, "not a whole number of 5m"),
        ("2018-01-10T05:10:00Z,0.09999,0.0988,0.1003,0.099,1627.5", 5, "high 0.0988 is below low"),
        ("2018-01-10T05:10:00Z,0.09999,0.1003,0.0988,0.099,-1", 5, "volume is negative: -1.0"),
        ("2018-01-10T05:10:00Z,0.09999,0.1003,0.0988,nan,1627.5", 5, "close is not a finite"),
    ],
)
async def test_csv_replay_malformed_row_raises_with_line(
    tmp_path: Path, bad_line: str, line: int, detail: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([*GOOD, bad_line, GOOD[-1]]) + "\n")
    feed = CsvReplayFeed(path, "ETH/BTC", "5m", clock=VirtualClock())

    emitted: list[Candle] = []

    async def replay() -> None:
        async with aclosing(feed.stream()) as stream:
            async for candle in stream:
                emitted.append(candle)

    with pytest.raises(MalformedData) as info:
        await replay()

    assert info.value.line == line
    assert detail in info.value.detail
    assert f"line {line}" in str(info.value) and str(path) in str(info.value)
    assert emitted == []  # a malformed file is rejected whole, not half replayed


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("", "the file is empty"),
        ("time,open,high,low,close,volume\n", "the header lacks timestamp"),
        ("timestamp,open,high,low,close\n", "the header lacks volume"),
    ],
)
async def test_csv_replay_bad_header_raises_on_line_one(
    tmp_path: Path, content: str, detail: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(MalformedData) as info:
        await collect(CsvReplayFeed(path, "ETH/BTC", "5m"))
    assert info.value.line == 1
    assert detail in info.value.detail


async def test_csv_replay_accepts_epoch_milliseconds_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "ms.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "1515560100000,0.0984,0.0994766,0.09828605,0.0994766,1820.544474\n"
        "\n"
        "1515560400000,0.09946999,0.0997238,0.099,0.09969,2527.921003\n"
    )
    candles = await collect(CsvReplayFeed(path, "ETH/BTC", "5m"))
    assert [c.open_time for c in candles] == [t for t, _ in csv_rows(ETH)[:2]]


async def test_csv_replay_missing_file_raises_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentFeedError, match="cannot read candle file"):
        await collect(CsvReplayFeed(tmp_path / "nope.csv", "ETH/BTC", "5m"))


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_csv_replay_bad_speed_raises(speed: float) -> None:
    with pytest.raises(ValueError, match="replay speed"):
        CsvReplayFeed(ETH, "ETH/BTC", "5m", speed=speed)


async def test_parse_feed_spec_csv_builds_replay_feed() -> None:
    clock = VirtualClock()
    feed = parse_feed_spec(f"csv:{ETH}", symbol="ETH/BTC", timeframe="5m", speed=5.0, clock=clock)
    assert isinstance(feed, CsvReplayFeed)
    assert (feed.path, feed.symbol, feed.timeframe, feed.speed) == (ETH, "ETH/BTC", "5m", 5.0)
    assert len(await collect(feed, limit=3)) == 3
    assert clock.sleeps == [60.0, 60.0]


def test_parse_feed_spec_ccxt_builds_polling_feed() -> None:
    feed = parse_feed_spec("ccxt:binance", symbol="ETH/BTC", timeframe="1h")
    assert isinstance(feed, CcxtPollingFeed)
    assert (feed.exchange_id, feed.symbol, feed.timeframe) == ("binance", "ETH/BTC", "1h")


@pytest.mark.parametrize(
    ("spec", "speed", "message"),
    [
        ("data/ETH-BTC_5m.csv", None, "is not csv:PATH or ccxt:EXCHANGE_ID"),
        ("csv:", None, "is not csv:PATH or ccxt:EXCHANGE_ID"),
        ("kafka:candles", None, "unknown kind 'kafka'"),
        ("ccxt:nosuchexchange", None, "unknown ccxt exchange id 'nosuchexchange'"),
        ("ccxt:binance", 2.0, "speed applies to csv replay only"),
    ],
)
def test_parse_feed_spec_bad_spec_raises(spec: str, speed: float | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_feed_spec(spec, symbol="ETH/BTC", timeframe="5m", speed=speed)


def test_parse_feed_spec_unknown_timeframe_raises() -> None:
    with pytest.raises(ValueError, match="unknown timeframe '7x'"):
        parse_feed_spec(f"csv:{ETH}", symbol="ETH/BTC", timeframe="7x")
