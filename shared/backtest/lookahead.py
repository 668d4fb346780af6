"""The look-ahead guard: prove that a strategy's past decisions do not change when the
future is cut off (freqtrade's `lookahead-analysis`, on this platform's engine).

A decision on a candle may use that candle and the ones before it, nothing later. A
backtest cannot tell a strategy that honours this from one that peeks (a series
loaded ahead of time, a centred rolling window, a `shift(-1)`, state left over from
an earlier run): both replay fine, and the one that peeks looks brilliant. So the
check replays the history several times and compares:

1. The whole history, through the backtester (`shared.backtest.engine.Backtest`: the
   `StrategyEngine` a trading group uses, the risk engine, the paper fill model), so
   decisions see the positions and closed trades a backtest gives them; every
   decision is recorded: action, confidence, entry, stop-loss, take-profit, size hint.
2. For each cut `c`, only `candles[: c + 1]`, with a fresh strategy. Decisions on
   candles `0..c` must be identical to the whole run's: everything they may know is
   the same in both runs. The first candle whose decision differs is reported.

Where to cut: by default at the candles where the whole run decided to trade (BUY,
SELL or CLOSE), sampled evenly down to `cuts` of them (freqtrade cuts at every
signal): a decision that used the future changes most surely when the future is
removed right after it. Evenly spaced candles fill up when there are few signals.
Or give the candle indices to cut at.

`prepare`, if given, is called with each run's candles before that run: a strategy
that pre-computes something over the data it is given (vectorized signals, a
feature table) does it there, and the check proves the pre-computation keeps the
future out. The full run goes first, so state a strategy keeps across runs
(a module-level cache) reaches the truncated runs and shows up as a difference too.

What it cannot prove: it checks the cuts it tries, not every candle; it cannot see
a peek at data it does not control (a file the strategy reads itself, a model
trained on the test period); a strategy that draws random numbers without a seed
differs between any two runs and is reported as if it peeked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.backtest.engine import Backtest, BacktestConfig
from shared.events import Action
from shared.kernel.strategy import Context, Decision, Strategy, safe_decide
from shared.market.candles import Candle
from shared.market.errors import FeedError
from shared.market.indicators import IndicatorSpec

DEFAULT_CUTS = 10

Prepare = Callable[[Sequence[Candle]], object]
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class DecisionKey:
    """What is compared of a decision: everything that reaches execution."""

    action: Action
    confidence: float
    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    size_hint: Decimal | None

    @classmethod
    def of(cls, decision: Decision) -> DecisionKey:
        return cls(
            decision.action,
            decision.confidence,
            decision.entry,
            decision.stop_loss,
            decision.take_profit,
            decision.size_hint,
        )

    def describe(self) -> str:
        parts = [f"{self.action.value} {self.confidence:.4g}"]
        for name in ("entry", "stop_loss", "take_profit", "size_hint"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name} {value}")
        return " ".join(parts)


_FIELDS = tuple(f.name for f in fields(DecisionKey))


@dataclass(frozen=True, slots=True)
class Recorded:
    """One decision of a run: on the candle opened at `open_time`."""

    open_time: datetime
    key: DecisionKey
    reasoning: str


@dataclass(frozen=True, slots=True)
class Difference:
    """The first decision that changed when the future was cut off.

    Attributes:
        index, open_time: the candle it was made on.
        fields: which of the compared fields differ.
        full, truncated: the decision with the whole history and with the cut one.
    """

    index: int
    open_time: datetime
    fields: tuple[str, ...]
    full: Recorded
    truncated: Recorded


@dataclass(frozen=True, slots=True)
class CutResult:
    """One truncated run compared with the whole one.

    Attributes:
        cut: index of the last candle kept; `cut_time` its open time.
        compared: decisions compared (candles 0..cut).
        differing: how many of them differ.
        first: the earliest difference, or None when all are identical.
    """

    cut: int
    cut_time: datetime
    compared: int
    differing: int
    first: Difference | None

    @property
    def clean(self) -> bool:
        return self.first is None


@dataclass(frozen=True, slots=True)
class LookaheadReport:
    """The outcome of `lookahead_check`.

    Attributes:
        strategy, symbol, timeframe: what was checked.
        bars: candles of the whole history; `start`, `end` the open times of its
            first and last candle.
        signals: decisions to trade (BUY, SELL, CLOSE) in the whole run.
        cuts: one result per cut, in candle order.
    """

    strategy: str
    symbol: str
    timeframe: str
    bars: int
    start: datetime
    end: datetime
    signals: int
    cuts: tuple[CutResult, ...]

    @property
    def clean(self) -> bool:
        """True when no decision changed at any cut."""
        return all(c.clean for c in self.cuts)

    @property
    def first(self) -> Difference | None:
        """The earliest candle whose decision changed, over all cuts."""
        found = [c.first for c in self.cuts if c.first is not None]
        return min(found, key=lambda d: d.index) if found else None


class _Recorder(Strategy):
    """Wraps the strategy under test and records what it decides, candle by candle.

    It runs the strategy through `safe_decide` itself, so what it records is exactly
    what the engine acts on (a failure is the same HOLD); the engine's own
    `safe_decide` then passes the decision through unchanged.
    """

    name = "lookahead-recorder"

    def __init__(self, inner: Strategy, log: list[Recorded]) -> None:
        super().__init__(inner.params)
        self.inner = inner
        self.log = log

    def indicators(self) -> Sequence[IndicatorSpec]:
        return self.inner.indicators()

    def history(self) -> int:
        return self.inner.history()

    def decide(self, ctx: Context) -> Decision:
        decision = safe_decide(self.inner, ctx)
        self.log.append(
            Recorded(ctx.candle.open_time, DecisionKey.of(decision), decision.reasoning)
        )
        return decision


def _replay(
    factory: Callable[[], Strategy],
    history: Sequence[Candle],
    config: BacktestConfig,
    prepare: Prepare | None,
) -> tuple[str, list[Recorded]]:
    if prepare is not None:
        prepare(history)
    log: list[Recorded] = []
    names: list[str] = []

    def recorder() -> Strategy:
        inner = factory()
        names.append(inner.name)
        return _Recorder(inner, log)

    symbol = history[0].symbol
    backtest = Backtest(recorder, {symbol: history}, config, strategy_name="")
    # The outcomes the strategy sees carry its own name, as in a plain backtest.
    backtest.strategy_name = names[0]
    backtest.run()
    if len(log) != len(history) or any(
        r.open_time != c.open_time for r, c in zip(log, history, strict=True)
    ):
        raise RuntimeError(
            f"the engine asked for {len(log)} decisions on {len(history)} candles, not one "
            "per candle in order; the look-ahead check cannot pair them"
        )
    return names[0], log


def _choose_cuts(cuts: int | Sequence[int], bars: int, signals: Sequence[int]) -> list[int]:
    last = bars - 2  # a cut at the last candle keeps the whole history: nothing to compare
    if isinstance(cuts, int):
        if cuts < 1:
            raise ValueError(f"cuts must be at least 1, got {cuts}")
        usable = [i for i in signals if i <= last]
        if len(usable) > cuts:
            step = (len(usable) - 1) / max(cuts - 1, 1)
            chosen = {usable[round(j * step)] for j in range(cuts)}
        else:
            chosen = set(usable)
        spacing = (last + 1) / (cuts + 1)
        for j in range(1, cuts + 1):
            if len(chosen) >= cuts:
                break
            chosen.add(min(last, round(j * spacing)))
        return sorted(chosen)
    chosen = set()
    for cut in cuts:
        index = cut + bars if cut < 0 else cut
        if not 0 <= index <= last:
            raise ValueError(
                f"cut {cut} is outside 0..{last}: cuts are indices of the last candle "
                f"kept, and the history has {bars} candles (a cut at the last one would "
                "keep them all)"
            )
        chosen.add(index)
    if not chosen:
        raise ValueError("no cuts given: pass candle indices, or a number of cuts")
    return sorted(chosen)


def _compare(full: Sequence[Recorded], truncated: Sequence[Recorded], cut: int) -> CutResult:
    first: Difference | None = None
    differing = 0
    for index in range(cut + 1):
        a, b = full[index], truncated[index]
        if a.key == b.key:
            continue
        differing += 1
        if first is None:
            changed = tuple(n for n in _FIELDS if getattr(a.key, n) != getattr(b.key, n))
            first = Difference(index, a.open_time, changed, a, b)
    return CutResult(cut, full[cut].open_time, cut + 1, differing, first)


def lookahead_check(
    strategy_factory: Callable[[], Strategy],
    candles: Sequence[Candle],
    *,
    cuts: int | Sequence[int] = DEFAULT_CUTS,
    config: BacktestConfig | None = None,
    prepare: Prepare | None = None,
    progress: Progress | None = None,
) -> LookaheadReport:
    """Replay `candles` whole and cut at several points; report decisions that changed.

    Args:
        strategy_factory: a fresh strategy per call (one per run).
        candles: one market's candles, oldest first.
        cuts: a number of cuts (placed at the whole run's trade decisions, then
            evenly), or the indices of the last candle to keep (negative counts
            from the end).
        config: the backtest's account, fill model and risk limits (default
            `BacktestConfig()`): decisions see the positions it gives them.
        prepare: called with each run's candles before it (see the module doc).
        progress: called with (runs done, runs in all).

    Raises:
        ValueError: fewer than 3 candles, candles of several markets, or bad cuts.
    """
    if len(candles) < 3:
        raise ValueError(
            f"the look-ahead check needs at least 3 candles (one to cut after, one to "
            f"remove), got {len(candles)}"
        )
    symbols = {c.symbol for c in candles}
    if len(symbols) != 1:
        raise ValueError(f"give the candles of one market, got {sorted(symbols)}")
    config = config or BacktestConfig()
    name, full = _replay(strategy_factory, candles, config, prepare)
    signals = [i for i, r in enumerate(full) if r.key.action is not Action.HOLD]
    chosen = _choose_cuts(cuts, len(candles), signals)
    total = len(chosen) + 1
    if progress is not None:
        progress(1, total)
    results = []
    for done, cut in enumerate(chosen, start=2):
        _, truncated = _replay(strategy_factory, candles[: cut + 1], config, prepare)
        results.append(_compare(full, truncated, cut))
        if progress is not None:
            progress(done, total)
    return LookaheadReport(
        strategy=name,
        symbol=candles[0].symbol,
        timeframe=candles[0].timeframe,
        bars=len(candles),
        start=candles[0].open_time,
        end=candles[-1].open_time,
        signals=len(signals),
        cuts=tuple(results),
    )


# --------------------------------------------------------------------------- output


def _at(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _headline(report: LookaheadReport) -> str:
    return (
        f"look-ahead check of {report.strategy} on {report.symbol} {report.timeframe}: "
        f"{report.bars:,} candles ({_at(report.start)} .. {_at(report.end)} UTC), "
        f"{report.signals:,} trade decisions, {len(report.cuts)} cuts"
    )


def _cut_line(cut: CutResult) -> str:
    head = f"cut after #{cut.cut} ({_at(cut.cut_time)}), {cut.compared:,} decisions compared: "
    if cut.first is None:
        return head + "identical"
    return (
        head + f"{cut.differing:,} differ, first on #{cut.first.index} ({_at(cut.first.open_time)})"
    )


def _difference_lines(d: Difference) -> list[str]:
    return [
        f"candle #{d.index} opened {_at(d.open_time)} UTC: {', '.join(d.fields)} differ",
        f"  with the whole history: {d.full.key.describe()} - {_clip(d.full.reasoning)}",
        f"  cut off after it:       {d.truncated.key.describe()} - {_clip(d.truncated.reasoning)}",
    ]


def _verdict(report: LookaheadReport) -> str:
    first = report.first
    if first is None:
        return (
            "clean: no decision at or before a cut changed when the candles after the "
            "cut were removed"
        )
    bad = sum(1 for c in report.cuts if not c.clean)
    return (
        f"LOOK-AHEAD: decisions changed at {bad} of {len(report.cuts)} cuts; the earliest "
        f"is on candle #{first.index} ({_at(first.open_time)} UTC): the strategy used "
        "data from after the candle it decided on (or state kept from an earlier run)"
    )


def format_report(report: LookaheadReport) -> str:
    """The report as plain text: a headline, a line per cut, the first difference of
    each failing cut (both decisions and their reasoning), and the verdict."""
    lines = [_headline(report), ""]
    lines.extend(_cut_line(c) for c in report.cuts)
    failing = [(c.cut, c.first) for c in report.cuts if c.first is not None]
    if failing:
        lines.append("")
    for cut, first in failing:
        lines.append(f"cut after #{cut}:")
        lines.extend("  " + line for line in _difference_lines(first))
    lines.extend(["", _verdict(report)])
    return "\n".join(lines)


def print_report(report: LookaheadReport, console: Console) -> None:
    """Print the report with rich: a table of the cuts, the differences, the verdict."""
    console.print(Text(_headline(report)), soft_wrap=True)
    table = Table()
    table.add_column("cut after")
    table.add_column("candle (UTC)")
    table.add_column("compared", justify="right")
    table.add_column("differing", justify="right")
    table.add_column("first difference")
    for cut in report.cuts:
        first = cut.first
        table.add_row(
            f"#{cut.cut}",
            _at(cut.cut_time),
            f"{cut.compared:,}",
            Text(f"{cut.differing:,}", style="red" if cut.differing else "green"),
            "-" if first is None else f"#{first.index} ({_at(first.open_time)})",
        )
    console.print(table)
    for cut in report.cuts:
        if cut.first is not None:
            console.print(Text(f"cut after #{cut.cut}:", style="bold"))
            for line in _difference_lines(cut.first):
                console.print(Text("  " + line), soft_wrap=True)
    console.print(Text(_verdict(report), style="green" if report.clean else "bold red"))


def main_lookahead(
    strategy: str,
    params: Mapping[str, Any] | None,
    data_path: str | Path,
    symbol: str,
    timeframe: str,
    cuts: int | Sequence[int] = DEFAULT_CUTS,
    *,
    console: Console | None = None,
) -> int:
    """`ats backtest --lookahead`: check a registered strategy on a candle file and
    print the report. Returns the exit code: 0 clean, 1 look-ahead found, 2 bad input
    (unknown strategy, bad params, unreadable candles, bad cuts; said on stderr)."""
    # Imported here: the ML store pulls in scikit-learn, which only this entry needs.
    from shared.market.feeds import read_candles_csv
    from shared.ml import build_strategy

    out = console or Console(highlight=False)
    try:
        build_strategy(strategy, params)  # bad params fail here, before any replay
        candles = read_candles_csv(data_path, symbol, timeframe)
        _, _, quote = symbol.partition("/")
        report = lookahead_check(
            lambda: build_strategy(strategy, params),
            candles,
            cuts=cuts,
            config=BacktestConfig(currency=quote.split(":")[0] or "USDT"),
        )
    except (ValueError, FeedError) as e:
        Console(stderr=True, highlight=False).print(Text(f"error: {e}"), soft_wrap=True)
        return 2
    print_report(report, out)
    return 0 if report.clean else 1
