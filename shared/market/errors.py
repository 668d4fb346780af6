"""What can go wrong reading market data, as one exception hierarchy.

Callers branch on the type: a `TemporaryFeedError` may succeed if retried later (the
ccxt feed already retried it with backoff before raising), a `PermanentFeedError`
will not until someone changes the configuration or the data.
"""

from __future__ import annotations


class FeedError(Exception):
    """Base of every error a candle feed raises."""


class TemporaryFeedError(FeedError):
    """The source failed in a way that may pass: network, timeout, 5xx, maintenance."""


class RateLimited(TemporaryFeedError):
    """The source refused the request for exceeding its rate limit (HTTP 418/429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFeedError(FeedError):
    """The source refused the request and will refuse it again unchanged."""


class MalformedData(PermanentFeedError):
    """The source answered with data that is not a valid candle series.

    Attributes:
        source: the file or exchange that answered.
        detail: what was wrong, e.g. `close is not a number: 'abc'`.
        line: the 1-based line of a file, when the source is a file.
    """

    def __init__(self, source: str, detail: str, *, line: int | None = None) -> None:
        self.source = source
        self.detail = detail
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"malformed candle data in {where}: {detail}")


class UnknownSymbol(PermanentFeedError):
    """The source does not list the requested market."""

    def __init__(self, source: str, symbol: str, detail: str = "") -> None:
        self.source = source
        self.symbol = symbol
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{source} does not list the market {symbol!r}{extra}: check the symbol's "
            "spelling in the exchange's unified form, e.g. ETH/BTC"
        )
