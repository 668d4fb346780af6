"""Retrying adapter calls: temporary errors only, with backoff, jitter and Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from execution.adapters.errors import ExchangeError, OutcomeUnknown, RateLimited

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in tries and in any one wait.

    Attributes:
        attempts: tries per call, the first included.
        base_delay: seconds before the first retry (before jitter).
        max_delay: cap on any one wait, Retry-After included.
    """

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("RetryPolicy needs attempts >= 1 and 0 <= base_delay <= max_delay")

    def delay(self, retry: int, rng: random.Random, error: ExchangeError) -> float:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(self.max_delay, error.retry_after)
        cap = min(self.max_delay, self.base_delay * 2.0**retry)
        return cap / 2 + rng.uniform(0, cap / 2)


async def call_with_retry[T](
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    idempotent: bool,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, ExchangeError, float], None] | None = None,
) -> T:
    """Run `call`, retrying what is safe to retry.

    Temporary errors (the exchange did not act) are always retried. `OutcomeUnknown`
    is retried only when `idempotent` (reads, or a placement the exchange dedupes):
    an order placement whose outcome is unknown must not be sent again.
    """
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    for attempt in range(policy.attempts):
        try:
            return await call()
        except ExchangeError as e:
            retry = e.retryable or (idempotent and isinstance(e, OutcomeUnknown))
            if not retry or attempt + 1 >= policy.attempts:
                raise
            wait = policy.delay(attempt, rng, e)
            if on_retry is not None:
                on_retry(attempt + 1, e, wait)
            await sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
