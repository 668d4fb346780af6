"""Market data: candles, feeds, the candle store and indicators.

Import from the modules, so a process that needs only `Candle` does not pay for
pandas and ccxt (about two seconds of imports):

- `shared.market.candles`: `Candle`, `Gap`, `timeframe_seconds`
- `shared.market.clock`: `Clock`, `SystemClock`, `VirtualClock`
- `shared.market.errors`: `FeedError` and its subclasses
- `shared.market.feeds`: `CandleFeed`, `CsvReplayFeed`, `CcxtPollingFeed`, `parse_feed_spec`
- `shared.market.store`: `CandleStore`
- `shared.market.indicators`: indicator specs, `compute`, `IndicatorWindow`

Example::

    from contextlib import aclosing

    from shared.market.feeds import parse_feed_spec
    from shared.market.indicators import IndicatorWindow, parse_indicator_spec

    feed = parse_feed_spec("csv:data/ETH-BTC_5m.csv", symbol="ETH/BTC", timeframe="5m")
    window = IndicatorWindow([parse_indicator_spec({"kind": "rsi", "length": 14})])
    async with aclosing(feed.stream()) as candles:
        async for candle in candles:
            values = window.update(candle)  # {"rsi_14": 48.2} once warmed up
"""
