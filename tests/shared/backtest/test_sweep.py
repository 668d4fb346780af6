"""The parameter sweep: the grid it expands, how it ranks, and that its runs across
worker processes give exactly what each backtest run alone gives.

Runs use the first candles of a shipped file, long enough for several SMA crosses
and short enough to keep a sweep under a second or two.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from shared.backtest.data import BacktestInputError, BacktestRequest
from shared.backtest.metrics import Metrics, compute_metrics
from shared.backtest.sweep import (
    MAX_RUNS,
    SweepRow,
    expand_grid,
    format_table,
    rank,
    sweep,
)

ROOT = Path(__file__).resolve().parents[3]
ETH = ROOT / "data" / "ETH-BTC_5m.csv"


def head(source: Path, target: Path, rows: int) -> Path:
    """The header and first `rows` candles of a shipped file, as `target`."""
    lines = source.read_text().splitlines()[: rows + 1]
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture
def template(tmp_path: Path) -> BacktestRequest:
    data = head(ETH, tmp_path / "ETH-BTC_5m.csv", 1200)
    return BacktestRequest.parse(
        {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}, "data": [str(data)]}
    )


def metrics(**values: Any) -> Metrics:
    base: dict[str, Any] = {
        "total_return_pct": 0.0,
        "cagr_pct": None,
        "volatility_pct": None,
        "sharpe": None,
        "sortino": None,
        "max_drawdown_pct": 0.0,
        "max_drawdown_duration_seconds": 0.0,
        "win_rate_pct": None,
        "profit_factor": None,
        "expectancy": None,
        "exposure_pct": 0.0,
        "trades": 0,
        "fees_paid": 0.0,
        "final_equity": 10_000.0,
    }
    return Metrics(**{**base, **values})


# --------------------------------------------------------------------------- the grid


def test_expand_grid_is_the_cartesian_product_over_the_base_params() -> None:
    combos = expand_grid({"fast": [5, 10], "slow": [20, 30, 40]}, {"slow": 99, "keep": "x"})
    assert combos == [{"fast": f, "slow": s, "keep": "x"} for f in (5, 10) for s in (20, 30, 40)]
    assert expand_grid({"fast": (7,)}) == [{"fast": 7}]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({}, "the grid is empty"),
        ({"fast": []}, "grid['fast'] has no values"),
        ({"fast": 5}, "grid['fast'] must be a list of values, got int"),
        ({"fast": "5,10"}, "grid['fast'] must be a list of values, got str"),
        (
            {"fast": list(range(200)), "slow": list(range(200))},
            "the grid has 40,000 combinations (200 fast x 200 slow), over the limit of 10,000",
        ),
    ],
    ids=["empty", "no-values", "scalar", "string", "huge"],
)
def test_expand_grid_refuses_bad_grids_saying_why(grid: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        expand_grid(grid)


def test_expand_grid_limit_can_be_raised() -> None:
    grid = {"a": list(range(MAX_RUNS)), "b": [1, 2]}
    assert len(expand_grid(grid, max_runs=2 * MAX_RUNS)) == 2 * MAX_RUNS


# --------------------------------------------------------------------------- ranking


def test_rank_orders_best_first_with_none_and_failures_last() -> None:
    rows = [
        SweepRow({"n": 1}, metrics(sharpe=0.5, max_drawdown_pct=9.0)),
        SweepRow({"n": 2}, None, "ValueError: boom"),
        SweepRow({"n": 3}, metrics(sharpe=None, max_drawdown_pct=1.0)),
        SweepRow({"n": 4}, metrics(sharpe=2.0, max_drawdown_pct=4.0)),
        SweepRow({"n": 5}, metrics(sharpe=-1.0, max_drawdown_pct=4.0)),
        SweepRow({"n": 6}, metrics(sharpe=float("nan"), max_drawdown_pct=2.0)),
    ]
    assert [r.params["n"] for r in rank(rows, "sharpe")] == [4, 1, 5, 2, 3, 6]
    # Less drawdown is better; ties keep grid order; the failed run stays last.
    assert [r.params["n"] for r in rank(rows, "max_drawdown_pct")] == [3, 6, 4, 5, 1, 2]
    with pytest.raises(ValueError, match="unknown metric 'sharp' to rank by"):
        rank(rows, "sharp")


# --------------------------------------------------------------------------- running


def test_sweep_rows_equal_single_runs_and_run_in_worker_processes(
    template: BacktestRequest,
) -> None:
    calls: list[tuple[int, int]] = []
    grid = {"fast": [5, 10], "slow": [20, 30]}
    rows = sweep(
        template,
        grid,
        processes=2,
        rank_by="total_return_pct",
        progress=lambda done, total: calls.append((done, total)),
    )

    assert calls == [(n, 4) for n in range(1, 5)]
    assert sorted((r.params["fast"], r.params["slow"]) for r in rows) == [
        (5, 20),
        (5, 30),
        (10, 20),
        (10, 30),
    ]
    for row in rows:
        alone = BacktestRequest.parse({**template.model_dump(), "params": row.params}).run()
        assert row.error is None
        assert row.metrics == compute_metrics(alone)
        assert row.metric("trades") == len(alone.trades) > 0
    returns = [r.metric("total_return_pct") for r in rows]
    assert returns == sorted(returns, key=lambda v: -float(v or 0))
    # In the pool's workers, not here. How the pool spreads four short runs over its
    # two workers is the scheduler's business (one may take all four under load).
    pids = {r.pid for r in rows}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids


def test_sweep_one_process_runs_here_with_the_same_rows(template: BacktestRequest) -> None:
    grid = {"fast": [5, 10], "slow": [20, 30]}
    here = sweep(template, grid, processes=1)
    pooled = sweep(template, grid, processes=2)
    assert {r.pid for r in here} == {os.getpid()}
    assert [(r.params, r.metrics) for r in here] == [(r.params, r.metrics) for r in pooled]


def test_sweep_failed_run_is_a_row_with_its_error_and_the_rest_run(
    template: BacktestRequest,
) -> None:
    # fast 40 is not shorter than slow 30: the strategy refuses it, in its worker.
    rows = sweep(template, {"fast": [5, 40, 10], "slow": [30]}, processes=2)
    assert [r.params["fast"] for r in rows][-1] == 40
    failed = rows[-1]
    assert failed.metrics is None and failed.pid is not None
    assert failed.error is not None and "fast (40) must be shorter than slow (30)" in failed.error
    assert all(r.metrics is not None and r.error is None for r in rows[:2])
    table = format_table(rows)
    assert "error: " in table.splitlines()[-1] and "fast (40)" in table


def test_sweep_reads_the_candles_once_per_worker(template: BacktestRequest, tmp_path: Path) -> None:
    data = tmp_path / "ETH-BTC_5m.csv"
    good = data.read_text()

    def spoil(done: int, total: int) -> None:
        # Once a run is done, the file turns bad: a worker that read it at its start
        # runs on unharmed; one that read it per run would fail its later runs.
        if done == 1:
            data.write_text(good.replace(",", ";"))

    rows = sweep(template, {"fast": [3, 4, 5, 6, 7, 8, 9, 10]}, processes=2, progress=spoil)
    by_pid: dict[int | None, set[bool]] = {}
    for row in rows:
        by_pid.setdefault(row.pid, set()).add(row.error is None)
    # Every worker's runs all succeeded or all failed (it started after the change).
    assert all(len(outcomes) == 1 for outcomes in by_pid.values()), rows
    # The worker that finished the first run had read the file before it changed.
    assert True in {next(iter(o)) for o in by_pid.values()}


def test_sweep_refuses_a_param_the_strategy_lacks_and_a_missing_file(
    template: BacktestRequest, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="strategy 'sma_cross' has no param 'fats'") as info:
        sweep(template, {"fats": [3, 5]})
    assert "its params: fast, slow, stop_loss, take_profit" in str(info.value)
    with pytest.raises(ValueError, match="processes must be at least 1"):
        sweep(template, {"fast": [3]}, processes=0)
    with pytest.raises(ValueError, match="unknown metric 'calmar'"):
        sweep(template, {"fast": [3]}, rank_by="calmar")
    (tmp_path / "ETH-BTC_5m.csv").unlink()
    with pytest.raises(BacktestInputError, match="no such file"):
        sweep(template, {"fast": [3]})


def test_format_table_shows_the_varying_params_and_key_metrics() -> None:
    rows = [
        SweepRow({"fast": 5, "slow": 30}, metrics(sharpe=1.23456, total_return_pct=4.5, trades=7)),
        SweepRow({"fast": 40, "slow": 30}, None, "fast (40) must be shorter than slow (30)"),
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == [
        "#",
        "fast",
        "return",
        "%",
        "sharpe",
        "sortino",
        "max",
        "dd",
        "%",
        "trades",
        "win",
        "%",
        "profit",
        "f.",
        "final",
        "equity",
    ]
    assert lines[1].split()[:4] == ["1", "5", "4.50", "1.23"]
    assert lines[2].split()[:3] == ["2", "40", "error:"]
    assert format_table(rows, limit=1).count("\n") == 1
    assert format_table([]) == "(no runs)"
