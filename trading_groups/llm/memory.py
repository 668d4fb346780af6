"""The group's memory: a reflection after each closed trade, the relevant ones recalled.

When an `order` event reports a filled sell with a realized PnL, the group writes a
short reflection: what it decided at entry and exit, what came of it, and (one
cheap-model call, budgeted like any other) the lesson. Over budget, or when the call
fails, the reflection is the same facts without the lesson, written by
`template_reflection`. Later prompts recall them with `recall`: those on the same
symbol first, then the others, newest first, within a total size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trading_groups.llm.prompts import clip


@dataclass(frozen=True, slots=True)
class Remembered:
    """A stored reflection, as recall sees it."""

    symbol: str
    content: str
    created_at: datetime


def recall(
    reflections: Sequence[Remembered], *, symbol: str, max_items: int, max_chars: int
) -> list[str]:
    """The reflections to show, most relevant first, within the bounds.

    Relevance: same symbol before other symbols, then newer before older. Each one is
    taken whole while it fits in what is left of `max_chars`; one that does not fit
    is skipped (a shorter, less relevant one may still fit), except that the most
    relevant one is cut to fit rather than leave the prompt without any.
    """
    if max_items <= 0 or max_chars <= 0:
        return []
    ranked = sorted(reflections, key=lambda r: (r.symbol != symbol, -r.created_at.timestamp()))
    chosen: list[str] = []
    left = max_chars
    for r in ranked:
        if len(chosen) == max_items:
            break
        line = f"{r.created_at.strftime('%Y-%m-%d')} {r.symbol}: {r.content}"
        if len(line) <= left:
            chosen.append(line)
            left -= len(line)
        elif not chosen:
            chosen.append(clip(line, max_chars))
            break
    return chosen


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """What an order event and the group's discussions tell of a closed trade."""

    symbol: str
    pnl: Decimal
    exit_price: Decimal | None
    quantity: Decimal | None
    entry_reason: str | None = None
    exit_reason: str | None = None

    def facts(self) -> str:
        outcome = "a win" if self.pnl > 0 else "a loss" if self.pnl < 0 else "break-even"
        parts = [f"Closed {self.symbol} with realized PnL {self.pnl} ({outcome})"]
        if self.exit_price is not None:
            sold = f" {self.quantity}" if self.quantity is not None else ""
            parts[0] += f", sold{sold} at {self.exit_price}"
        parts[0] += "."
        if self.entry_reason:
            parts.append(f"Entry: {clip(self.entry_reason, 300)}")
        if self.exit_reason:
            parts.append(f"Exit: {clip(self.exit_reason, 300)}")
        return " ".join(parts)


def template_reflection(trade: ClosedTrade, *, why: str, max_chars: int) -> str:
    """The reflection without the model: the facts, and why there is no lesson."""
    return clip(f"{trade.facts()} (No lesson drawn: {why}.)", max_chars)


def model_reflection(trade: ClosedTrade, lesson: str, *, max_chars: int) -> str:
    return clip(f"{trade.facts()} Lesson: {lesson}", max_chars)
