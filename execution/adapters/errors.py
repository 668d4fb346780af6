"""Typed exchange errors: what every adapter raises, whatever its exchange said.

Each adapter translates its exchange's errors into these in one place, so the
execution service branches on meaning, never on an exchange's error text:

============================  =========  ============================================
error                         retried    meaning
============================  =========  ============================================
`RateLimited`                 yes        the exchange refused the request for now
                                         (HTTP 418/429); it did not act on it
`ExchangeUnavailable`         yes        5xx, maintenance: it did not act on it
`OutcomeUnknown`              reads      the request may have reached the exchange
                                         (timeout, connection dropped); a read is
                                         retried, an order placement is not: the
                                         order becomes `ambiguous` and the sync loop
                                         looks for it by its client order id
`AuthenticationError`         no         bad or missing API key / signature
`PermissionDenied`            no         the key may not trade, or not this market
`InsufficientFunds`           no         not enough balance for the order
`InvalidOrder`                no         below the minimum, bad precision, bad price
`DuplicateOrder`              no         the client order id is already in use
`OrderNotFound`               no         no order with that id at the exchange
`UnknownSymbol`               no         the exchange does not list the market
`ExchangeRejected`            no         any other refusal
============================  =========  ============================================

`code` is stable (it is persisted as the reason of a rejected order); the message
carries the exchange's own words for the operator. Messages never contain
credentials: adapters build them from the exchange's answer, not from the request.
"""

from __future__ import annotations

from typing import ClassVar


class ExchangeError(Exception):
    """Base of every adapter error."""

    code: ClassVar[str] = "exchange_error"
    #: Whether sending the same request again is safe and may succeed.
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, exchange: str = "") -> None:
        self.exchange = exchange
        super().__init__(f"{exchange}: {message}" if exchange else message)


class TemporaryError(ExchangeError):
    """The exchange did not act on the request; the same request may succeed later."""

    code = "temporary"
    retryable = True


class RateLimited(TemporaryError):
    code = "rate_limited"

    def __init__(
        self, message: str, *, exchange: str = "", retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, exchange=exchange)


class ExchangeUnavailable(TemporaryError):
    code = "exchange_unavailable"


class OutcomeUnknown(ExchangeError):
    """The request may or may not have been carried out (timeout, dropped connection).

    Reads are retried; a placement is not (it could place a second order): the order
    is marked ambiguous and resolved by the sync loop.
    """

    code = "outcome_unknown"
    retryable = False


class AuthenticationError(ExchangeError):
    code = "authentication_failed"


class PermissionDenied(ExchangeError):
    code = "permission_denied"


class InsufficientFunds(ExchangeError):
    code = "insufficient_funds"


class InvalidOrder(ExchangeError):
    code = "invalid_order"


class DuplicateOrder(ExchangeError):
    code = "duplicate_order"


class OrderNotFound(ExchangeError):
    code = "order_not_found"


class UnknownSymbol(ExchangeError):
    code = "unknown_symbol"


class ExchangeRejected(ExchangeError):
    code = "exchange_rejected"


class AdapterConfigError(ValueError):
    """A trade account's adapter settings are wrong (unknown exchange, missing key)."""
