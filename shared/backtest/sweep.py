"""A parameter sweep: one backtest per point of a grid, across processes, ranked.

`sweep(template, {"fast": [5, 10], "slow": [30, 50]})` runs the template request
once per combination of the grid's values (the cartesian product, merged over the
template's params) in a pool of worker processes, and ranks the runs by a metric.

Each worker reads the template's candle files once, when it starts, and replays
them for every run it is given: a sweep is thousands of short runs, and parsing the
files again for each would cost more than many of the runs. Workers are forked from
a `forkserver` (a clean process that imported the backtester once), so starting
one costs a fork, not an interpreter start, and no thread of the caller is copied.

A run that fails (params its strategy refuses, such as `fast` >= `slow`, or any
error while it runs) becomes a row with its `error`, ranked last; the other runs go
on. A grid key the strategy does not have is refused before anything runs.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from typing import Any

from pydantic import ValidationError

from shared.backtest.data import BacktestInputError, BacktestRequest, describe
from shared.backtest.metrics import Metrics, compute_metrics
from shared.market.candles import Candle

#: More runs than this is refused unless `max_runs` says otherwise: a typo in a
#: grid (`range(1000)` twice) should not start hours of work.
MAX_RUNS = 10_000

#: Metrics where less is better; every other metric ranks highest first.
LOWER_IS_BETTER = frozenset(
    {"volatility_pct", "max_drawdown_pct", "max_drawdown_duration_seconds", "fees_paid"}
)
METRICS = tuple(f.name for f in fields(Metrics))

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One run of a sweep.

    Attributes:
        params: the strategy's params of this run (the template's, with this
            combination of the grid over them).
        metrics: its metrics; None when it failed.
        error: why it failed (`ExceptionType: message`); None when it ran.
        pid: the process that ran it.
    """

    params: dict[str, Any]
    metrics: Metrics | None
    error: str | None = None
    pid: int | None = None

    def metric(self, name: str) -> float | int | None:
        """The named metric, or None (failed run, or a metric undefined for it)."""
        value: float | int | None = getattr(self.metrics, name) if self.metrics else None
        return value


def expand_grid(
    grid: Mapping[str, Sequence[Any]],
    base: Mapping[str, Any] | None = None,
    *,
    max_runs: int = MAX_RUNS,
) -> list[dict[str, Any]]:
    """Every combination of the grid's values, each over `base`, in grid order (the
    last key varies fastest).

    Raises:
        ValueError: an empty grid, a key without values or whose values are not a
            list, or more combinations than `max_runs`.
    """
    if not grid:
        raise ValueError("the grid is empty: give at least one param with a list of values")
    for key, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence):
            raise ValueError(
                f"grid[{key!r}] must be a list of values, got {type(values).__name__}: "
                f"write {key}: [{values!r}]"
            )
        if not values:
            raise ValueError(f"grid[{key!r}] has no values: give at least one")
    runs = math.prod(len(values) for values in grid.values())
    if runs > max_runs:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
        raise ValueError(
            f"the grid has {runs:,} combinations ({sizes}), over the limit of {max_runs:,}: "
            "narrow it, or raise max_runs if you mean it"
        )
    keys = list(grid)
    return [
        {**(base or {}), **dict(zip(keys, combo, strict=True))}
        for combo in itertools.product(*grid.values())
    ]


def rank(rows: Sequence[SweepRow], by: str = "sharpe") -> list[SweepRow]:
    """The rows best first by metric `by` (see `LOWER_IS_BETTER`); rows where it is
    None (failed, or undefined for that run) last; ties keep their grid order."""
    _check_metric(by)
    lower = by in LOWER_IS_BETTER

    def key(row: SweepRow) -> tuple[bool, float]:
        value = row.metric(by)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return True, 0.0
        return False, value if lower else -value

    return sorted(rows, key=key)


def sweep(
    request_template: BacktestRequest,
    grid: Mapping[str, Sequence[Any]],
    *,
    processes: int | None = None,
    rank_by: str = "sharpe",
    progress: Progress | None = None,
    max_runs: int = MAX_RUNS,
) -> list[SweepRow]:
    """Run `request_template` once per combination of `grid` and rank the runs.

    Args:
        request_template: the backtest to vary; its `params` are the defaults the
            grid's values replace.
        grid: param name -> the values to try.
        processes: worker processes; default one per CPU (never more than runs).
            1 runs everything in this process.
        rank_by: the metric to rank by (a field of `Metrics`).
        progress: called `(done, total)` after each run, in this process.
        max_runs: refuse grids with more combinations than this.

    Returns:
        A row per combination, best first.

    Raises:
        ValueError: a bad grid (see `expand_grid`), a grid key the strategy has no
            param for, an unknown `rank_by`, `processes` < 1.
        BacktestInputError: a data file that does not exist.
    """
    _check_metric(rank_by)
    if processes is not None and processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    _check_keys(request_template, grid)
    combos = expand_grid(grid, request_template.params, max_runs=max_runs)
    for _, _, path in request_template.sources():
        if not path.is_file():
            raise BacktestInputError(f"data {path}: no such file")
    workers = min(processes or os.cpu_count() or 1, len(combos))
    if workers == 1:
        rows = _run_here(request_template, combos, progress)
    else:
        rows = _run_pool(request_template, combos, workers, progress)
    return rank(rows, rank_by)


def format_table(rows: Sequence[SweepRow], *, limit: int | None = None) -> str:
    """The rows as a plain-text table: rank, the params that vary, key metrics (or
    the error), in the order given."""
    shown = list(rows[:limit] if limit is not None else rows)
    if not shown:
        return "(no runs)"
    keys = list(dict.fromkeys(k for row in rows for k in row.params))
    varying = [k for k in keys if len({_cell(row.params.get(k)) for row in rows}) > 1] or keys
    metrics = [
        ("return %", "total_return_pct"),
        ("sharpe", "sharpe"),
        ("sortino", "sortino"),
        ("max dd %", "max_drawdown_pct"),
        ("trades", "trades"),
        ("win %", "win_rate_pct"),
        ("profit f.", "profit_factor"),
        ("final equity", "final_equity"),
    ]
    header = ["#", *varying, *(title for title, _ in metrics)]
    body: list[list[str]] = []
    for n, row in enumerate(shown, 1):
        cells = [str(n), *(_cell(row.params.get(k)) for k in varying)]
        if row.metrics is None:
            cells.append(f"error: {row.error}")
        else:
            cells += [_cell(row.metric(name)) for _, name in metrics]
        body.append(cells)
    table = [header, *(cells for cells in body if len(cells) == len(header))]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    for cells in body:
        width = [*widths[: len(cells) - 1], 0]  # an error message runs on unpadded
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, width, strict=True)).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:,.2f}"
    return str(value)


# --------------------------------------------------------------------------- running


def _check_metric(name: str) -> None:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r} to rank by; one of {', '.join(METRICS)}")


def _check_keys(request: BacktestRequest, grid: Mapping[str, Sequence[Any]]) -> None:
    """Refuse grid keys the strategy has no param for: every run would fail."""
    params_model = type(request.build_strategy()).Params
    if params_model.model_config.get("extra") != "forbid":
        return  # the strategy takes any param: nothing to check against
    unknown = sorted(set(grid) - set(params_model.model_fields))
    if unknown:
        raise ValueError(
            f"strategy {request.strategy!r} has no param {', '.join(map(repr, unknown))}; "
            f"its params: {', '.join(sorted(params_model.model_fields))}"
        )


def _error(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        return describe(error)  # names the field; pydantic's own text is a page long
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _run_one(
    template: dict[str, Any],
    candles: Mapping[str, Sequence[Candle]],
    params: dict[str, Any],
) -> SweepRow:
    """One run of the template's fields with `params`; any failure is the row's
    error, never an exception. The request is validated whole again: its params
    may be ones the strategy refuses."""
    try:
        request = BacktestRequest.model_validate({**template, "params": params})
        metrics = compute_metrics(request.run(candles=candles))
    except Exception as e:  # one run's failure must not end the sweep
        return SweepRow(params, None, _error(e), os.getpid())
    return SweepRow(params, metrics, None, os.getpid())


def _run_here(
    template: BacktestRequest, combos: list[dict[str, Any]], progress: Progress | None
) -> list[SweepRow]:
    candles, fields = template.load(), template.model_dump()
    rows = []
    for done, params in enumerate(combos, 1):
        rows.append(_run_one(fields, candles, params))
        if progress is not None:
            progress(done, len(combos))
    return rows


# Per worker process: the template and its candles, read once by `_init_worker`.
# A worker runs one sweep's runs only, so this is never stale.
_worker_state: tuple[dict[str, Any], dict[str, list[Candle]] | None, str | None] | None = None


def _init_worker(template: BacktestRequest) -> None:
    global _worker_state  # noqa: PLW0603 - the per-process candle cache
    try:
        _worker_state = (template.model_dump(), template.load(), None)
    except Exception as e:  # reported by every run rather than breaking the pool
        _worker_state = (template.model_dump(), None, _error(e))


def _run_in_worker(params: dict[str, Any]) -> SweepRow:
    assert _worker_state is not None, "the sweep worker was not initialized"
    template, candles, error = _worker_state
    if candles is None:
        return SweepRow(params, None, error, os.getpid())
    return _run_one(template, candles, params)


def _run_pool(
    template: BacktestRequest,
    combos: list[dict[str, Any]],
    workers: int,
    progress: Progress | None,
) -> list[SweepRow]:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    rows: list[SweepRow | None] = [None] * len(combos)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(template,)
    ) as pool:
        futures: dict[Future[SweepRow], int] = {}
        try:
            for index, params in enumerate(combos):
                futures[pool.submit(_run_in_worker, params)] = index
            for done, future in enumerate(as_completed(futures), 1):
                index = futures[future]
                try:
                    rows[index] = future.result()
                except BrokenProcessPool as e:
                    # A worker died (killed, out of memory): the runs it held are lost.
                    rows[index] = SweepRow(
                        combos[index], None, f"the worker process died: {_error(e)}"
                    )
                if progress is not None:
                    progress(done, len(combos))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [row for row in rows if row is not None]
