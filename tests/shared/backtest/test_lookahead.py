"""The look-ahead guard: every built-in strategy keeps its past decisions when the
future is cut off; strategies that peek (a module-level cache read ahead, a centred
window and a next-bar series computed over the data they are given) are caught on
the candle where they first used the future."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

from shared.backtest import BacktestConfig
from shared.backtest.lookahead import (
    LookaheadReport,
    format_report,
    lookahead_check,
    main_lookahead,
)
from shared.events import Action
from shared.kernel.fills import FillModelConfig
from shared.kernel.strategy import Context, Decision, Strategy, register_strategy
from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv
from shared.ml import build_strategy

DATA = Path(__file__).resolve().parents[3] / "data"
ETH_FILE = DATA / "ETH-BTC_5m.csv"
BARS = 1500


@pytest.fixture(scope="module")
def eth() -> list[Candle]:
    return read_candles_csv(ETH_FILE, "ETH/BTC", "5m")[:BARS]


@pytest.fixture(scope="module")
def short(eth: list[Candle]) -> list[Candle]:
    """Enough for the cheats, which trade far more often than the built-ins."""
    return eth[:600]


# --------------------------------------------------------------------------- cheats
# Module-level state, as careless strategy code keeps it; the fixture empties it.

_SEEN: dict[tuple[str, datetime], Candle] = {}
_CENTRED: dict[datetime, float] = {}
_NEXT_CLOSE: dict[datetime, float] = {}


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    for state in (_SEEN, _CENTRED, _NEXT_CLOSE):
        state.clear()
    yield
    for state in (_SEEN, _CENTRED, _NEXT_CLOSE):
        state.clear()


def _price(x: float) -> Decimal:
    return Decimal(repr(x))


@register_strategy("test_lookahead_memo_peek")
class MemoPeek(Strategy):
    """Caches every candle it sees in a module-level dict (shared by every instance, as
    a careless feature cache is) and reads the next candle from it: BUY (when flat)
    if the next close is higher. The first run cannot peek; every later run can."""

    def decide(self, ctx: Context) -> Decision:
        c = ctx.candle
        _SEEN[(c.symbol, c.open_time)] = c
        following = _SEEN.get((c.symbol, c.close_time))
        if following is not None and following.close > c.close and ctx.position() is None:
            return Decision(
                Action.BUY, 0.9, "the next close is higher", take_profit=_price(following.close)
            )
        return Decision.hold("the next candle is not known")


def centred_prepare(history: Sequence[Candle]) -> None:
    """Pre-computes a centred SMA(5) of the closes over the run's data (pandas
    `rolling(center=True)`: each value reads 2 candles ahead)."""
    mean = pd.Series([c.close for c in history]).rolling(5, center=True).mean()
    _CENTRED.clear()
    _CENTRED.update(
        {c.open_time: float(m) for c, m in zip(history, mean, strict=True) if not math.isnan(m)}
    )


@register_strategy("test_lookahead_centred")
class CentredMean(Strategy):
    """BUY below the pre-computed centred mean, SELL above it."""

    def decide(self, ctx: Context) -> Decision:
        mean = _CENTRED.get(ctx.candle.open_time)
        close = ctx.candle.close
        if mean is None:
            return Decision.hold("no centred mean")
        confidence = min(1.0, abs(mean / close - 1) * 100)
        if close < mean:
            return Decision(Action.BUY, confidence, "below its centred mean")
        if close > mean:
            return Decision(Action.SELL, confidence, "above its centred mean")
        return Decision.hold("on its centred mean")


def next_close_prepare(history: Sequence[Candle]) -> None:
    """Pre-computes each candle's next close over the run's data (a `shift(-1)`)."""
    _NEXT_CLOSE.clear()
    _NEXT_CLOSE.update({a.open_time: b.close for a, b in zip(history, history[1:], strict=False)})


@register_strategy("test_lookahead_next_close")
class NextClose(Strategy):
    """BUY (when flat) if the pre-computed next close is higher, with it as the
    take-profit."""

    def decide(self, ctx: Context) -> Decision:
        following = _NEXT_CLOSE.get(ctx.candle.open_time)
        if following is not None and following > ctx.candle.close and ctx.position() is None:
            return Decision(
                Action.BUY, 0.8, "the next close is higher", take_profit=_price(following)
            )
        return Decision.hold("no higher close ahead")


# --------------------------------------------------------------------------- built-ins

JSON_RULE = {
    "name": "eth-trend",
    "rules": [
        {
            "name": "trend up",
            "when": {
                "all": [
                    {
                        "indicator": {"kind": "sma", "length": 10},
                        "op": "crosses_above",
                        "indicator_b": {"kind": "sma", "length": 30},
                    },
                    {"indicator": {"kind": "rsi", "length": 14}, "op": "<", "value": 70},
                ]
            },
            "then": "BUY",
            "confidence": 0.7,
            "stop_loss": {"kind": "atr", "multiple": 2, "length": 14},
        },
        {
            "name": "trend down",
            "when": {
                "indicator": {"kind": "sma", "length": 10},
                "op": "crosses_below",
                "indicator_b": {"kind": "sma", "length": 30},
            },
            "then": "SELL",
        },
    ],
}
ENSEMBLE = {
    "members": [
        {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}},
        {"strategy": "rsi_reversal"},
        {"strategy": "breakout"},
    ],
    "min_confidence": 0.3,
    "cooldown_minutes": 30,
}
BUILT_INS: list[tuple[str, dict[str, Any]]] = [
    ("sma_cross", {"fast": 10, "slow": 30}),
    (
        "sma_cross",
        {
            "fast": 5,
            "slow": 20,
            "stop_loss": {"kind": "atr", "multiple": 1.5, "length": 14},
            "take_profit": {"kind": "pct", "value": 0.01},
        },
    ),
    ("rsi_reversal", {}),
    ("breakout", {"length": 20, "exit_length": 10}),
    ("json_rule", JSON_RULE),
    ("ensemble", ENSEMBLE),
]


@pytest.mark.parametrize(
    ("name", "params"),
    BUILT_INS,
    ids=["sma_cross", "sma_cross-stops", "rsi_reversal", "breakout", "json_rule", "ensemble"],
)
def test_lookahead_check_builtin_strategy_clean(
    eth: list[Candle], name: str, params: dict[str, Any]
) -> None:
    report = lookahead_check(lambda: build_strategy(name, params), eth, cuts=4)

    assert report.clean, format_report(report)
    assert report.strategy == name
    assert report.bars == BARS
    assert report.signals > 0  # the check compared real trade decisions
    assert len(report.cuts) == 4
    assert all(c.compared == c.cut + 1 and c.differing == 0 for c in report.cuts)
    assert "clean:" in format_report(report)


# --------------------------------------------------------------------------- cheats caught


def test_lookahead_check_memo_peek_caught_on_first_peeked_candle(short: list[Candle]) -> None:
    report = lookahead_check(MemoPeek, short, cuts=3)

    # The whole run went first and could never peek: no trade decisions, so the cuts
    # are evenly spaced. Every later run reads the cache ahead from its first candle
    # whose next close is higher.
    assert report.signals == 0
    peeked = next(i for i in range(len(short) - 1) if short[i + 1].close > short[i].close)
    assert not report.clean
    assert len(report.cuts) == 3
    for cut in report.cuts:
        assert cut.first is not None
        assert cut.first.index == peeked
        assert cut.first.open_time == short[peeked].open_time
        assert cut.first.full.key.action is Action.HOLD
        assert cut.first.truncated.key.action is Action.BUY
        assert cut.first.truncated.key.take_profit == _price(short[peeked + 1].close)
        assert cut.first.fields == ("action", "confidence", "take_profit")
    assert report.first is not None and report.first.index == peeked


def test_lookahead_check_centred_window_caught_two_candles_before_the_end(
    short: list[Candle],
) -> None:
    cuts = [150, 300, 450]
    report = lookahead_check(CentredMean, short, cuts=cuts, prepare=centred_prepare)

    # A centred window of 5 reads 2 candles ahead: cut after c, the means of c - 1
    # and c are gone, so the decision on c - 1 is the first to change.
    assert [c.cut for c in report.cuts] == cuts
    for cut in report.cuts:
        assert cut.first is not None, format_report(report)
        assert cut.first.index == cut.cut - 1
        assert cut.first.full.key.action in (Action.BUY, Action.SELL)
        assert cut.first.truncated.key.action is Action.HOLD
        assert cut.differing == 2
    text = format_report(report)
    assert f"first on #{cuts[0] - 1} ({short[cuts[0] - 1].open_time:%Y-%m-%d %H:%M})" in text
    assert "LOOK-AHEAD: decisions changed at 3 of 3 cuts" in text
    assert "below its centred mean" in text or "above its centred mean" in text


def test_lookahead_check_default_cuts_at_signals_catch_next_bar_peek(short: list[Candle]) -> None:
    report = lookahead_check(NextClose, short, cuts=6, prepare=next_close_prepare)

    # The default cuts fall on the whole run's trade decisions, right where a peek
    # one bar ahead changes: every cut's own candle differs, none before it.
    assert report.signals > 6
    assert len(report.cuts) == 6
    for cut in report.cuts:
        assert short[cut.cut + 1].close > short[cut.cut].close  # a BUY candle of the full run
        assert cut.first is not None
        assert cut.first.index == cut.cut
        assert cut.differing == 1
        assert cut.first.full.key.action is Action.BUY
        assert cut.first.truncated.key.action is Action.HOLD


def test_lookahead_check_without_prepare_the_pre_computed_series_is_not_refreshed(
    short: list[Candle],
) -> None:
    # The check can only catch a peek into data it controls: a series computed once
    # over the whole history and never recomputed is invisible to it (documented).
    next_close_prepare(short)
    report = lookahead_check(NextClose, short, cuts=3)
    assert report.clean


# --------------------------------------------------------------------------- the API


def test_lookahead_check_explicit_cuts_negative_and_duplicates(eth: list[Candle]) -> None:
    progress: list[tuple[int, int]] = []
    report = lookahead_check(
        lambda: build_strategy("sma_cross", {}),
        eth,
        cuts=[-2, 400, 400, 100],
        config=BacktestConfig(capital=Decimal(1), currency="BTC", fill_model=FillModelConfig()),
        progress=lambda done, total: progress.append((done, total)),
    )
    assert [c.cut for c in report.cuts] == [100, 400, BARS - 2]
    assert [c.cut_time for c in report.cuts] == [
        eth[100].open_time,
        eth[400].open_time,
        eth[BARS - 2].open_time,
    ]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert report.clean


@pytest.mark.parametrize(
    ("cuts", "message"),
    [
        ([BARS - 1], "outside 0..1498"),
        ([BARS + 5], "outside 0..1498"),
        ([-BARS - 1], "outside 0..1498"),
        ([], "no cuts given"),
        (0, "cuts must be at least 1"),
    ],
)
def test_lookahead_check_bad_cuts_raise(eth: list[Candle], cuts: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lookahead_check(lambda: build_strategy("sma_cross", {}), eth, cuts=cuts)


def test_lookahead_check_needs_one_market_and_three_candles(eth: list[Candle]) -> None:
    factory = lambda: build_strategy("sma_cross", {})  # noqa: E731
    with pytest.raises(ValueError, match="at least 3 candles"):
        lookahead_check(factory, eth[:2])
    ltc = read_candles_csv(DATA / "LTC-BTC_5m.csv", "LTC/BTC", "5m")[:10]
    with pytest.raises(ValueError, match="one market"):
        lookahead_check(factory, [*eth[:10], *ltc])


def _csv(tmp_path: Path, rows: int) -> Path:
    lines = ETH_FILE.read_text().splitlines()[: rows + 1]
    path = tmp_path / "ETH-BTC_5m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _main(path: Path, strategy: str, params: dict[str, Any] | None) -> tuple[int, str]:
    out = io.StringIO()
    code = main_lookahead(
        strategy, params, path, "ETH/BTC", "5m", 3, console=Console(file=out, width=200)
    )
    return code, out.getvalue()


def test_main_lookahead_clean_strategy_exits_0(tmp_path: Path) -> None:
    code, text = _main(_csv(tmp_path, 800), "sma_cross", {"fast": 10, "slow": 30})
    assert code == 0
    assert "look-ahead check of sma_cross on ETH/BTC 5m: 800 candles" in text
    assert "clean: no decision at or before a cut changed" in text


def test_main_lookahead_peeking_strategy_exits_1_and_names_the_candle(tmp_path: Path) -> None:
    path = _csv(tmp_path, 800)
    candles = read_candles_csv(path, "ETH/BTC", "5m")
    peeked = next(i for i in range(len(candles) - 1) if candles[i + 1].close > candles[i].close)

    code, text = _main(path, "test_lookahead_memo_peek", None)

    assert code == 1
    assert f"candle #{peeked} opened {candles[peeked].open_time:%Y-%m-%d %H:%M} UTC" in text
    assert "LOOK-AHEAD: decisions changed at 3 of 3 cuts" in text


@pytest.mark.parametrize(
    ("strategy", "params", "file", "message"),
    [
        ("no_such", None, "ok", "unknown strategy 'no_such'"),
        ("sma_cross", {"fast": 30, "slow": 10}, "ok", "bad params for strategy 'sma_cross'"),
        ("sma_cross", None, "missing", "cannot read candle file"),
    ],
)
def test_main_lookahead_bad_input_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    strategy: str,
    params: dict[str, Any] | None,
    file: str,
    message: str,
) -> None:
    path = _csv(tmp_path, 100) if file == "ok" else tmp_path / "missing.csv"
    code, text = _main(path, strategy, params)
    assert code == 2
    assert text == ""
    assert message in capsys.readouterr().err


def test_format_report_lists_every_cut(eth: list[Candle]) -> None:
    report: LookaheadReport = lookahead_check(
        lambda: build_strategy("sma_cross", {}), eth, cuts=[200, 900]
    )
    lines = format_report(report).splitlines()
    assert lines[0].startswith("look-ahead check of sma_cross on ETH/BTC 5m: 1,500 candles")
    assert lines[2] == (
        f"cut after #200 ({eth[200].open_time:%Y-%m-%d %H:%M}), 201 decisions compared: identical"
    )
    assert lines[3].startswith("cut after #900 (")
