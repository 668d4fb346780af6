"""The prompts: each role's system prompt, and what every member is shown.

A call's messages are a system prompt (the role's, or the member's own template,
always followed by the answer's JSON format) and one user message: the `Brief` (the
signal, the market, the positions, the group's recent decisions and lessons), then
what the discussion has produced so far, then the member's task. Everything is
bounded, so a long discussion cannot outgrow a small model's context.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.kernel.strategy import Position
from shared.llm.client import ChatMessage, format_instructions
from shared.market.candles import Candle
from shared.market.indicators import IndicatorSpec, parse_indicator_spec
from trading_groups.llm.config import Member, Role

MAX_SIGNAL_CHARS = 4_000

#: What the technical view is computed from, on every market the group reads (live
#: and in a backtest).
INDICATORS: Sequence[IndicatorSpec] = [
    parse_indicator_spec(spec)
    for spec in (
        {"kind": "rsi", "length": 14},
        {"kind": "sma", "length": 20},
        {"kind": "sma", "length": 50},
        {"kind": "ema", "length": 20},
        {"kind": "macd"},
        {"kind": "bbands", "length": 20},
        {"kind": "atr", "length": 14},
    )
]

ROLE_PROMPTS: Mapping[Role, str] = {
    Role.TECHNICAL: (
        "You are the technical analyst of {group}, an automated trading team deciding "
        "on {symbol} ({timeframe} candles). Judge the price action and the indicators: "
        "trend, momentum, volatility, support and resistance. Base your view on the data "
        "given, and say how clear it is."
    ),
    Role.SENTIMENT: (
        "You are the sentiment analyst of {group}, an automated trading team deciding "
        "on {symbol}. Judge the market's mood: the signal's own analysis and sentiment "
        "(news, social), which way the trigger that fired points, and how the price "
        "reacted. When there is little to go on, say so and lower your confidence."
    ),
    Role.FUNDAMENTALS: (
        "You are the fundamentals and tokenomics analyst of {group}, an automated "
        "trading team deciding on {symbol}. Judge what is known of the asset's "
        "fundamentals: for a crypto asset its tokenomics (supply, issuance, unlocks), "
        "network activity and adoption, and the quote asset; for others the business or "
        "macro fundamentals. Say when your knowledge may be out of date and lower your "
        "confidence accordingly."
    ),
    Role.BULL: (
        "You are the bull researcher of {group}. Build the strongest evidence-based "
        "case for going long {symbol} from the analysts' reports, and answer the bear "
        "researcher's latest points directly. Do not invent data."
    ),
    Role.BEAR: (
        "You are the bear researcher of {group}. Build the strongest evidence-based "
        "case against going long {symbol} (or for exiting it) from the analysts' "
        "reports, and answer the bull researcher's latest points directly. Do not "
        "invent data."
    ),
    Role.TRADER: (
        "You are the trader of {group}. From the analysts' reports and the researchers' "
        "debate, propose one action on {symbol}: BUY to open a long position, SELL or "
        "CLOSE to exit the position the group holds, HOLD otherwise. The group trades "
        "long only: it can sell only what it holds. When you trade, give a stop loss and "
        "a take profit that fit the volatility."
    ),
    Role.AGGRESSIVE: (
        "You are the aggressive risk analyst of {group}. Argue for the upside of the "
        "trader's proposal on {symbol} and against excessive caution, answering the "
        "other risk analysts."
    ),
    Role.CONSERVATIVE: (
        "You are the conservative risk analyst of {group}. Protect the capital: point "
        "at what can go wrong with the trader's proposal on {symbol}, and argue for a "
        "tighter stop, a smaller size or no trade, answering the other risk analysts."
    ),
    Role.NEUTRAL: (
        "You are the neutral risk analyst of {group}. Weigh the aggressive and the "
        "conservative views of the trader's proposal on {symbol} and argue for a "
        "balanced risk and reward."
    ),
    Role.RISK_MANAGER: (
        "You are the risk manager of {group}. Approve the trader's proposal on {symbol} "
        "as it is, adjust it (confidence, size, stop loss, take profit) or reject it. "
        "Check the stop geometry (for a BUY the stop is below the entry and the target "
        "above it), the size against the open positions, the lessons of past trades, "
        "and whether the evidence supports the trade."
    ),
    Role.LEADER: (
        "You are the leader of {group}. Make the group's final decision on {symbol}: "
        "the action the risk manager approved, or HOLD if the discussion does not "
        "convince you. Explain it in a few sentences for the operator."
    ),
}

ANSWER_FORMAT = (
    "\n\nReply with one JSON object and nothing else: no prose, no code fence.\n{instructions}"
)

CORRECTION = (
    "That reply could not be used: {error}\n"
    "Reply again with only the JSON object, matching the schema."
)

REFLECTION_PROMPT = (
    "You review a closed trade of {group}, an automated trading team, and write the "
    "lesson its members should remember the next time they decide on a similar "
    "signal: what the decision got right or wrong, and what to repeat or avoid. Be "
    "concrete and brief."
)


def fill(template: str, values: Mapping[str, str]) -> str:
    """Fill `{name}` placeholders; other braces (JSON examples in a template) stay."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def system_prompt(
    member: Member,
    schema: type[BaseModel],
    *,
    group: str,
    symbol: str,
    timeframe: str,
    template: str | None = None,
) -> str:
    """The member's system prompt: `template`, else its own, else its role's; then the
    answer's format."""
    template = template or member.prompt or ROLE_PROMPTS[member.role]
    text = fill(
        template,
        {
            "group": group,
            "symbol": symbol,
            "timeframe": timeframe,
            "member": member.name,
            "role": member.role.value,
        },
    )
    return text + ANSWER_FORMAT.replace("{instructions}", format_instructions(schema))


_CUT = " [...]"


def clip(text: str, limit: int) -> str:
    """`text` in at most `limit` characters: cut at a word and marked when too long."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(_CUT), 0)].rsplit(" ", 1)[0] + _CUT


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.8g}"


@dataclass(frozen=True)
class Brief:
    """What every member is shown, whatever its role."""

    group: str
    symbol: str
    timeframe: str
    signal: Mapping[str, Any]
    candles: Sequence[Candle] = ()
    indicators: Mapping[str, float | None] = field(default_factory=dict)
    positions: Sequence[Position] = ()
    decisions: Sequence[str] = ()
    reflections: Sequence[str] = ()
    market_note: str = ""

    def render(self) -> str:
        parts = [f"# {self.symbol} ({self.timeframe})", "## The signal", self._signal()]
        parts += ["## Market data", self._market()]
        parts += ["## Open positions of the group", self._positions()]
        parts += ["## The group's recent decisions", self._lines(self.decisions, "none yet")]
        parts += [
            "## Lessons from the group's closed trades",
            self._lines(self.reflections, "none yet"),
        ]
        return "\n\n".join(parts)

    def _signal(self) -> str:
        text = json.dumps(self.signal, sort_keys=True, default=str, ensure_ascii=False)
        return clip(text, MAX_SIGNAL_CHARS)

    def _market(self) -> str:
        lines: list[str] = []
        if self.market_note:
            lines.append(self.market_note)
        if self.candles:
            lines.append("open time (UTC), open, high, low, close, volume; newest last:")
            lines += [
                f"{c.open_time.strftime('%Y-%m-%d %H:%M')}, {_number(c.open)}, "
                f"{_number(c.high)}, {_number(c.low)}, {_number(c.close)}, {_number(c.volume)}"
                for c in self.candles
            ]
        if self.indicators:
            lines.append(
                "indicators on the last candle: "
                + ", ".join(f"{k} {_number(v)}" for k, v in self.indicators.items())
            )
        return "\n".join(lines) or "no market data for this symbol"

    def _positions(self) -> str:
        return self._lines(
            [
                f"{p.symbol}: {p.side} {p.quantity} at {p.entry_price}, since "
                f"{p.opened_at.strftime('%Y-%m-%d %H:%M')}"
                for p in self.positions
            ],
            "none (the group is flat)",
        )

    @staticmethod
    def _lines(items: Sequence[str], empty: str) -> str:
        return "\n".join(f"- {item}" for item in items) if items else empty


def decision_line(
    started_at: datetime,
    symbol: str | None,
    action: str | None,
    status: str,
    reason: str | None,
    outcome: str | None = None,
) -> str:
    """One of the group's recent decisions, as the brief lists them; `outcome` is what
    came of a published one."""
    line = f"{started_at.strftime('%Y-%m-%d %H:%M')} {symbol}: {action or 'HOLD'}"
    line += f" ({status}) — {clip(reason or '', 200)}"
    if outcome is not None:
        line += f"; what came of it: {outcome}"
    return line


def messages(system: str, user: str) -> list[ChatMessage]:
    return [ChatMessage("system", system), ChatMessage("user", user)]


def corrected(previous: Sequence[ChatMessage], answer: str | None, error: str) -> list[ChatMessage]:
    """`previous`, the model's unusable answer, and the error: asking once more."""
    return [
        *previous,
        ChatMessage("assistant", answer or "(empty reply)"),
        ChatMessage("user", CORRECTION.format(error=error)),
    ]
