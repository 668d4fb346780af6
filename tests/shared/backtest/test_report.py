"""A backtest's files: result.json reads back as the same result, and report.html is
self-contained (plotly inlined, nothing loaded from elsewhere) with every text escaped."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.backtest.data import BacktestRequest
from shared.backtest.metrics import compute_metrics
from shared.backtest.report import (
    MAX_CHART_POINTS,
    _extremes,
    duration,
    metric_rows,
    write_report,
    write_result,
)
from shared.backtest.result import BacktestResult, TradeRecord
from tests.shared.backtest.test_engine import scripted_run

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    """sma_cross on the first 1,500 shipped ETH/BTC candles: a few dozen trades."""
    lines = (ROOT / "data" / "ETH-BTC_5m.csv").read_text().splitlines()[:1501]
    path = tmp_path_factory.mktemp("data") / "ETH-BTC_5m.csv"
    path.write_text("\n".join(lines) + "\n")
    request = BacktestRequest.parse(
        {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}, "data": [str(path)]}
    )
    return request.run()


def _no_nan(name: str) -> Any:
    raise AssertionError(f"result.json holds {name}: not JSON")


def test_write_result_round_trips_through_from_json(result: BacktestResult, tmp_path: Path) -> None:
    metrics = compute_metrics(result)

    path = write_result(result, metrics, tmp_path / "out")

    assert path == tmp_path / "out" / "result.json"
    data = json.loads(path.read_text(), parse_constant=_no_nan)
    assert BacktestResult.from_json(data) == result
    assert data["metrics"] == metrics.to_json()
    assert data["metrics"]["trades"] == len(result.trades) > 10
    first = data["trades"][0]
    trade = result.trades[0]
    assert first["entry_time"] == trade.entry_time.isoformat().replace("+00:00", "Z")
    assert Decimal(first["entry_price"]) == trade.entry_price
    assert Decimal(first["exit_price"]) == trade.exit_price
    assert first["exit_time"].endswith("Z")
    assert len(data["equity_curve"]["times"]) == len(data["equity_curve"]["equity"]) == 1500


def test_write_report_is_self_contained_html(result: BacktestResult, tmp_path: Path) -> None:
    metrics = compute_metrics(result)

    path = write_report(result, metrics, tmp_path / "report.html")

    html = path.read_text()
    assert html.startswith("<!doctype html>")
    assert "plotly.js v" in html  # the bundle's banner: inlined
    assert "Plotly.newPlot" in html
    assert len(html) > 3_000_000
    assert re.search(r"<script[^>]*\bsrc\s*=", html) is None
    assert re.search(r"<link[^>]*\bhref\s*=", html) is None
    for label, value in metric_rows(metrics, result.currency):
        assert f"<td>{label}</td><td>{value}</td>" in html
    for trade in result.trades:
        assert f"<td>{trade.entry_time:%Y-%m-%d %H:%M:%S}</td><td>{trade.entry_price}</td>" in html
        assert f"<td>{trade.exit_time:%Y-%m-%d %H:%M:%S}</td><td>{trade.exit_price}</td>" in html
    assert f"<h2>Trades ({len(result.trades)})</h2>" in html


def test_write_report_escapes_every_text(result: BacktestResult, tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>"
    trade = result.trades[0]
    hostile = BacktestResult(
        **{
            **{f: getattr(result, f) for f in result.__dataclass_fields__},
            "strategy": evil,
            "params": {"x": evil},
            "symbols": [f"A/{evil}"],
            "rejections": {evil: 1},
            "trades": [
                TradeRecord(
                    **{
                        **{f: getattr(trade, f) for f in trade.__dataclass_fields__},
                        "symbol": evil,
                        "exit_reason": evil,
                    }
                )
            ],
        }
    )

    html = write_report(hostile, compute_metrics(hostile), tmp_path / "r.html").read_text()

    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_write_report_no_trades_says_so(result: BacktestResult, tmp_path: Path) -> None:
    empty = BacktestResult(
        **{
            **{f: getattr(result, f) for f in result.__dataclass_fields__},
            "trades": [],
        }
    )

    html = write_report(empty, compute_metrics(empty), tmp_path / "r.html").read_text()

    assert "No closed trades." in html
    assert "<td>Win rate</td><td>n/a</td>" in html


def test_extremes_thins_a_long_curve_keeping_its_extremes_and_end() -> None:
    values = [float((i * 7919) % 1000) for i in range(100_000)]
    values[31_337] = -5.0
    values[77_777] = 5_000.0

    keep = _extremes(values)

    assert len(keep) <= MAX_CHART_POINTS + 1
    assert keep == sorted(set(keep))
    assert {31_337, 77_777, 99_999} <= set(keep)
    assert _extremes(values[:10]) == list(range(10))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0m"), (59, "0m"), (300, "5m"), (3 * 3600 + 5 * 60, "3h 05m"), (1712700, "19d 19h 45m")],
)
def test_duration_reads_as_days_hours_minutes(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_write_report_lists_positions_open_at_the_end_as_unrealized(tmp_path: Path) -> None:
    result, _ = scripted_run({"A/USDT": (10, 30), "B/USDT": (50, None)})
    out = tmp_path / "report.html"
    write_report(result, compute_metrics(result), out)
    html = out.read_text()
    assert "<h2>Open at the end (1, unrealized)</h2>" in html
    assert f"{result.open_trades[0].pnl:.8f}" in html
    assert "<h2>Trades (1)</h2>" in html
