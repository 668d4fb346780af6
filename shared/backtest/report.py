"""A backtest's files: `result.json` (everything, for programs) and `report.html`
(for people: the metrics, the equity and drawdown charts, the trades).

The report is one self-contained file: plotly.js is inlined (about 4.7 MB), so it
opens offline and loads nothing from a CDN. Every text in it is HTML-escaped; the
charts carry only numbers, times and fixed labels. Curves longer than
`MAX_CHART_POINTS` are drawn from the lowest and highest point of each stretch, so a
million-bar run stays a few megabytes and keeps its extremes; `result.json` keeps
every point.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path

# plotly ships no type hints (no py.typed); the two calls used here are checked by tests.
import plotly.graph_objects as go  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from shared.backtest.metrics import Metrics, drawdowns, equity_curve
from shared.backtest.result import BacktestResult, TradeRecord

MAX_CHART_POINTS = 20_000
MAX_TRADE_ROWS = 10_000

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.trades { font-size: 12px; } .muted { color: #666; }
"""


def write_result(result: BacktestResult, metrics: Metrics, directory: Path) -> Path:
    """Write `directory/result.json`: `result.to_json()` plus `metrics`; return its path.

    Strict JSON (no NaN or Infinity); `BacktestResult.from_json` reads it back.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "result.json"
    data = {**result.to_json(), "metrics": metrics.to_json()}
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_report(result: BacktestResult, metrics: Metrics, path: Path) -> Path:
    """Write the self-contained HTML report to `path` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(result, metrics), encoding="utf-8")
    return path


def render_report(result: BacktestResult, metrics: Metrics) -> str:
    """The report's HTML."""
    title = f"Backtest: {result.strategy} on {', '.join(result.symbols)} ({result.timeframe})"
    params = json.dumps(result.params, sort_keys=True)
    fill_model = result.settings.get("fill_model", {})
    summary = (
        f"{_time(result.start)} to {_time(result.end)} UTC, {result.bars:,} bars; "
        f"capital {result.capital} {result.currency}; params {params}; "
        f"fees: taker {fill_model.get('taker_fee', '?')}, maker {fill_model.get('maker_fee', '?')}"
        f", slippage {fill_model.get('slippage_bps', '?')} bps"
    )
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(result.rejections.items()))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(summary)}</p>",
        f"<p class='muted'>{escape(f'risk refusals: {rejected}')}</p>" if rejected else "",
        "<h2>Metrics</h2>",
        _table(("metric", "value"), metric_rows(metrics, result.currency)),
        "<h2>Equity and drawdown</h2>",
        _charts(result),
        f"<h2>Trades ({len(result.trades):,})</h2>",
        _trades(result),
        _open_trades(result),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def metric_rows(metrics: Metrics, currency: str) -> list[tuple[str, str]]:
    """The metrics as (label, formatted value) rows; the CLI prints the same rows."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} %"

    def ratio(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    def money(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.8g} {currency}"

    return [
        ("Total return", pct(metrics.total_return_pct)),
        ("CAGR", pct(metrics.cagr_pct)),
        ("Volatility (annualized)", pct(metrics.volatility_pct)),
        ("Sharpe ratio", ratio(metrics.sharpe)),
        ("Sortino ratio", ratio(metrics.sortino)),
        ("Max drawdown", pct(metrics.max_drawdown_pct)),
        ("Max drawdown duration", duration(metrics.max_drawdown_duration_seconds)),
        ("Trades", f"{metrics.trades:,}"),
        ("Win rate", pct(metrics.win_rate_pct)),
        ("Profit factor", ratio(metrics.profit_factor)),
        ("Expectancy (per trade)", money(metrics.expectancy)),
        ("Exposure time", pct(metrics.exposure_pct)),
        ("Fees paid", money(metrics.fees_paid)),
        ("Final equity", money(metrics.final_equity)),
    ]


def duration(seconds: float) -> str:
    """`1712700` -> `19d 19h 45m`; under a minute -> `0m`."""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def _charts(result: BacktestResult) -> str:
    times, equity = equity_curve(result)
    falls = [-100 * d for d in drawdowns(float(result.capital), equity)]
    labels = [_time(t) for t in times]
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04
    )
    keep = _extremes(equity)
    figure.add_trace(
        go.Scatter(
            x=[labels[i] for i in keep],
            y=[equity[i] for i in keep],
            mode="lines",
            name="equity",
            line={"width": 1.5},
        ),
        row=1,
        col=1,
    )
    keep = _extremes(falls)
    figure.add_trace(
        go.Scatter(
            x=[labels[i] for i in keep],
            y=[falls[i] for i in keep],
            mode="lines",
            name="drawdown %",
            fill="tozeroy",
            line={"width": 1, "color": "#c0392b"},
        ),
        row=2,
        col=1,
    )
    figure.update_yaxes(title_text="equity", row=1, col=1)
    figure.update_yaxes(title_text="drawdown %", row=2, col=1)
    figure.update_xaxes(title_text="time (UTC)", row=2, col=1)
    figure.update_layout(
        template="plotly_white", height=620, showlegend=False, margin={"t": 20, "b": 40}
    )
    html: str = figure.to_html(
        full_html=False,
        include_plotlyjs=True,
        div_id="equity-drawdown",
        config={"displaylogo": False, "responsive": True},
    )
    return html


def _extremes(values: Sequence[float], limit: int = MAX_CHART_POINTS) -> list[int]:
    """Indices to draw: all of them, or per stretch of the curve its lowest and highest
    point (in time order), at most `limit` in all."""
    n = len(values)
    if n <= limit:
        return list(range(n))
    size = math.ceil(n / (limit // 2))
    keep: list[int] = []
    for start in range(0, n, size):
        stretch = range(start, min(start + size, n))
        low = min(stretch, key=values.__getitem__)
        high = max(stretch, key=values.__getitem__)
        keep.extend(sorted({low, high}))
    if keep[-1] != n - 1:
        keep.append(n - 1)  # the curve ends where the run ended
    return keep


def _trades(result: BacktestResult) -> str:
    shown = result.trades[:MAX_TRADE_ROWS]
    rows = [(str(i), *_cells(t), t.exit_reason) for i, t in enumerate(shown, 1)]
    header = (
        "#",
        "symbol",
        "entry time",
        "entry price",
        "exit time",
        "exit price",
        "quantity",
        f"PnL ({result.currency})",
        "return %",
        "fees",
        "exit reason",
    )
    note = ""
    if len(result.trades) > len(shown):
        note = (
            f"<p class='muted'>The first {len(shown):,} of {len(result.trades):,} trades; "
            "result.json lists them all.</p>"
        )
    if not rows:
        return "<p class='muted'>No closed trades.</p>"
    return _table(header, rows, css="trades") + note


def _open_trades(result: BacktestResult) -> str:
    """Positions still open when the data ended, marked at their last close: flagged
    as unrealized, apart from the closed trades the metrics count."""
    if not result.open_trades:
        return ""
    rows = [_cells(t) for t in result.open_trades]
    header = (
        "symbol",
        "entry time",
        "entry price",
        "last close",
        "marked at",
        "quantity",
        f"unrealized PnL ({result.currency})",
        "return %",
        "entry fees",
    )
    return (
        f"<h2>Open at the end ({len(rows):,}, unrealized)</h2>"
        "<p class='muted'>Still open when the data ended: marked at the last close "
        "(exit reason <code>end</code>), with no exit fill or fee. The final equity "
        "counts them at these marks; the trade metrics do not.</p>"
        + _table(header, rows, css="trades")
    )


def _cells(t: TradeRecord) -> tuple[str, ...]:
    """A trade's row, closed or open (an open one's exit is its last close)."""
    return (
        t.symbol,
        _time(t.entry_time),
        str(t.entry_price),
        _time(t.exit_time),
        str(t.exit_price),
        str(t.quantity),
        f"{t.pnl:.8f}",
        f"{t.return_pct:.2f}",
        f"{t.fees:.8f}",
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")
