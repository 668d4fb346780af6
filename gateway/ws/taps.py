"""Operator taps: a read-only view of what the hub routes, for the live stream.

The hub hands every committed event to each tap right after routing it, in `seq`
order (`Hub._route`); a tap only filters it and appends the already encoded frame
to a bounded deque, so an operator's browser can never slow the hub or its
clients. A tap that is full drops what does not fit and marks itself `missed`: its
reader (the `/api/v1/stream` response) then reads the gap back from the event
store by `seq`, the way a hub session catches up by replay, and says so to the
operator with a `lagged` frame.

Log frames get their `seq` from the log table only when inserted, which the hub
does not read back on its hot path; so for logs the hub only tells a tap that a log
it wants was committed, and the reader reads the new rows after its log cursor.
That costs a query per burst of wanted logs per open stream, and nothing for the
heartbeats of an operator who did not ask for them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TapFilter:
    """What an operator stream wants; None means "any" for events.

    `log_codes` None: no logs at all; an empty set: every log. `symbols` narrows
    events only (log rows have no symbol); `sources` narrows both.
    """

    categories: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    symbols: frozenset[str] | None = None
    log_codes: frozenset[str] | None = None

    def wants_event(self, category: str, source: str, symbol: str | None) -> bool:
        return (
            (self.categories is None or category in self.categories)
            and (self.sources is None or source in self.sources)
            and (self.symbols is None or symbol in self.symbols)
        )

    def wants_log(self, code: str, source: str) -> bool:
        if self.log_codes is None:
            return False
        return (not self.log_codes or code in self.log_codes) and (
            self.sources is None or source in self.sources
        )


class OperatorTap:
    """One open operator stream as the hub sees it: a filter and a bounded queue."""

    __slots__ = (
        "closing",
        "dropped",
        "filter",
        "limit",
        "logs_pending",
        "missed",
        "queue",
        "wakeup",
    )

    def __init__(self, tap_filter: TapFilter, *, limit: int) -> None:
        self.filter = tap_filter
        self.limit = limit
        self.queue: deque[tuple[int, str]] = deque()
        self.missed = False  # events were dropped: read the gap back from the store
        self.dropped = 0  # how many, in all, for the operator's `lagged` frame
        self.logs_pending = False
        self.closing: str | None = None
        self.wakeup = asyncio.Event()

    def push_event(
        self, seq: int, category: str, source: str, symbol: str | None, text: str
    ) -> None:
        """Queue a committed event's frame if wanted; never blocks, never raises."""
        if self.closing is not None or not self.filter.wants_event(category, source, symbol):
            return
        if len(self.queue) >= self.limit:
            self.missed = True
            self.dropped += 1
        else:
            self.queue.append((seq, text))
        self.wakeup.set()

    def log_committed(self, code: str, source: str) -> None:
        """Note that a wanted log was stored; the reader reads it from the log table."""
        if self.closing is None and self.filter.wants_log(code, source):
            self.logs_pending = True
            self.wakeup.set()

    def close(self, reason: str) -> None:
        """End the stream after what is queued (the gateway is shutting down)."""
        if self.closing is None:
            self.closing = reason
            self.wakeup.set()

    @property
    def has_work_besides_closing(self) -> bool:
        return bool(self.queue) or self.missed or self.logs_pending

    @property
    def has_work(self) -> bool:
        return self.has_work_besides_closing or self.closing is not None
