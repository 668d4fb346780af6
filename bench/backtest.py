"""Backtest speed: our event-driven engine and compiled mode beside backtesting.py and
vectorbt, the same strategy on the same bars, in one run.

The strategy is the SMA(10)/SMA(30) cross, long only: buy 10 % of equity when the
fast average crosses above the slow one with no position open, close the position
when it crosses below; decided on a bar's close, filled at the next bar's open, a
0.1 % fee per fill, 10,000 of cash. Two datasets: `--bars` (1,000,000) synthetic
1-minute bars of a seeded random walk, and the shipped ETH-BTC 5-minute file.

  backtesting.py  `Backtest(frame, SmaCross).run()`, the strategy as its docs write
                  it (`self.I` SMAs, `crossover`, `buy(size=0.1)`, `position.close()`)
  vectorbt        `MA.run` x 2, `ma_crossed_above/below` shifted one bar,
                  `Portfolio.from_signals` at the next open with fees, then its
                  trade records, equity series and final value
  engine          `run_backtest`: every bar through the live code path (strategy
                  engine and `safe_decide`, risk engine, paper fill model,
                  portfolio, all in Decimal), from `Candle` objects
  compiled        `run_fast` over `FastData` (arrays of the same candles, loaded
                  once): compiled SMAs, crossings and books (exact decimals),
                  exactly the engine's trades; the SMAs recomputed on every run;
                  obtains what vectorbt's does: the trades as columns (text and
                  arrays), the equity curve as an array, the final value
  compiled + objects  the same, then the Python objects built from them: the
                  `TradeRecord`s (five `Decimal`s each), the curve and its times
                  as lists (what every run built before the result was lazy)
  compiled/sweep  as compiled, in a sweep: the SMAs already computed for the data

Every contender runs once untimed (imports, caches, compilation), then the
contenders take turns for `--rounds` rounds and each is reported at its fastest
round; bars/s and the ratio to backtesting.py measured in the same run. First-call
costs (imports, vectorbt's compilation, loading our compiled functions from numba's
cache) and per-run fixed costs on small data are reported apart. Timed tests these
are not: numbers are only compared within one run.

    .venv/bin/python bench/backtest.py            # about 2 minutes
    .venv/bin/python bench/backtest.py --quick    # 100,000 bars, one round
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

# `python bench/backtest.py` puts bench/, not the repository, first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# backtesting.py draws a tqdm progress bar over its bars: off, so it costs the peer
# nothing and writes nothing over the tables.
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from shared.backtest import BacktestConfig, BacktestResult, run_backtest  # noqa: E402
from shared.kernel.fills import FillModelConfig  # noqa: E402
from shared.kernel.strategy import create_strategy  # noqa: E402
from shared.market.candles import Candle  # noqa: E402
from shared.market.feeds import read_candles_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST, SLOW = 10, 30
FEE = 0.001
CASH = 10_000.0
SIZE = 0.1  # of equity
PARAMS = {"fast": FAST, "slow": SLOW}
CONFIG = BacktestConfig(
    capital=Decimal(10_000), fill_model=FillModelConfig(taker_fee=Decimal("0.001"))
)
# Goals from the issue: the event engine at least 3x backtesting.py; the compiled
# mode at least as fast as vectorbt.
GOAL_ENGINE = 3.0
GOAL_COMPILED = 1.0

console = Console(width=None if sys.stdout.isatty() else 160)


# --------------------------------------------------------------------------- data


@dataclass
class Dataset:
    name: str
    candles: list[Candle]
    frame: pd.DataFrame  # Open High Low Close Volume, for the peers
    seconds_to_build: float = 0.0  # building the Candle objects (our input format)
    fast_data: Any = None
    seconds_fast_data: float = 0.0


def random_walk(n: int, seed: int) -> Dataset:
    """`n` 1-minute bars of a geometric random walk around 100, as candles and a frame."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate(([100.0], closes[:-1]))
    spread = np.abs(rng.normal(0, 0.0005, n)) * closes
    highs = np.maximum(opens, closes) + spread
    lows = np.minimum(opens, closes) - spread
    volumes = rng.lognormal(3, 1, n)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    times = [t0 + timedelta(minutes=i) for i in range(n)]
    candles = [
        Candle("SIM/USDT", "1m", t, o, h, lo, c, v)
        for t, o, h, lo, c, v in zip(
            times,
            opens.tolist(),
            highs.tolist(),
            lows.tolist(),
            closes.tolist(),
            volumes.tolist(),
            strict=True,
        )
    ]
    built = time.perf_counter() - started
    return Dataset(f"random walk, {n:,} x 1m", candles, _frame(candles), built)


def shipped(file: str) -> Dataset:
    symbol = file.split("_")[0].replace("-", "/")
    started = time.perf_counter()
    candles = read_candles_csv(ROOT / "data" / file, symbol, "5m")
    built = time.perf_counter() - started
    return Dataset(f"{file}, {len(candles):,} x 5m", candles, _frame(candles), built)


def _frame(candles: Sequence[Candle]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Open": np.fromiter((c.open for c in candles), float, len(candles)),
            "High": np.fromiter((c.high for c in candles), float, len(candles)),
            "Low": np.fromiter((c.low for c in candles), float, len(candles)),
            "Close": np.fromiter((c.close for c in candles), float, len(candles)),
            "Volume": np.fromiter((c.volume for c in candles), float, len(candles)),
        },
        # Naive UTC: both peers slow down many times over on a tz-aware index.
        index=pd.DatetimeIndex([c.open_time for c in candles]).tz_localize(None),
    )


# --------------------------------------------------------------------------- contenders


def run_backtesting_py(data: Dataset) -> int:
    from backtesting import Backtest, Strategy  # type: ignore[import-untyped]
    from backtesting.lib import crossover  # type: ignore[import-untyped]

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                if not self.position:
                    self.buy(size=SIZE)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(data.frame, SmaCross, cash=CASH, commission=FEE).run()
    return int(stats["# Trades"])


def run_vectorbt(data: Dataset) -> int:
    import vectorbt as vbt  # type: ignore[import-untyped]

    close, open_ = data.frame["Close"], data.frame["Open"]
    fast = vbt.MA.run(close, FAST)
    slow = vbt.MA.run(close, SLOW)
    # Decided on the close, filled at the next bar's open.
    entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
    exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(
        close,
        entries,
        exits,
        price=open_,
        fees=FEE,
        init_cash=CASH,
        size=SIZE,
        size_type="percent",
    )
    pf.value()  # the equity curve
    pf.final_value()
    return int(len(pf.trades.records_arr))


def run_engine(data: Dataset) -> int:
    result = run_backtest(
        lambda: create_strategy("sma_cross", PARAMS),
        {data.candles[0].symbol: data.candles},
        CONFIG,
    )
    return len(result.trades)


def _columnar(result: BacktestResult) -> int:
    """What vectorbt's contender obtains, in the form the compiled mode hands it over:
    the trades as columns (each trade's decimals as text, its candles and return as
    arrays: `fast_books.book`), the equity curve as an array, the final value."""
    from shared.backtest.result import Lazy

    trades, equity = result.trades, result.equity
    if not (isinstance(trades, Lazy) and isinstance(equity, Lazy) and equity.array is not None):
        raise TypeError("the compiled run did not hand its trades and curve over as columns")
    if trades.materialized or equity.materialized:
        raise RuntimeError("the compiled run built its Python objects")
    result.final_equity  # noqa: B018 - obtained, as vectorbt's final value
    return len(trades)


def run_compiled(data: Dataset) -> int:
    from shared.backtest.fast import run_fast

    data.fast_data._means.clear()  # a single run: its SMAs are part of the cost
    return _columnar(run_fast("sma_cross", data.fast_data, CONFIG, params=PARAMS))


def run_compiled_objects(data: Dataset) -> int:
    from shared.backtest.fast import run_fast
    from shared.backtest.result import as_list

    data.fast_data._means.clear()
    result = run_fast("sma_cross", data.fast_data, CONFIG, params=PARAMS)
    # Everything as Python objects, as the result held it before it was lazy: the
    # TradeRecords (five Decimals each) and the curve and its times as lists.
    as_list(result.equity), as_list(result.equity_times)
    return len(as_list(result.trades))


def run_compiled_sweep(data: Dataset) -> int:
    from shared.backtest.fast import run_fast

    return _columnar(run_fast("sma_cross", data.fast_data, CONFIG, params=PARAMS))


CONTENDERS: dict[str, Callable[[Dataset], int]] = {
    "backtesting.py": run_backtesting_py,
    "vectorbt": run_vectorbt,
    "engine": run_engine,
    "compiled": run_compiled,
    "compiled + objects": run_compiled_objects,
    "compiled/sweep": run_compiled_sweep,
}
BASELINE = "backtesting.py"


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    trades: int = 0

    @property
    def best(self) -> float:
        """The least CPU time of a round: what the run costs on a machine that others
        share (wall time counts the time other processes had the core)."""
        return min(self.cpu)


def timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    """(CPU seconds, wall seconds, value) of one call, the garbage collector off."""
    gc.collect()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        value = function()
        return time.process_time() - cpu, time.perf_counter() - wall, value
    finally:
        gc.enable()


FIRST_CALLS = {
    "vectorbt": ("import vectorbt", "run_vectorbt(data)"),
    "compiled": (
        "import shared.backtest.fast",
        "from shared.backtest.fast import FastData, run_fast; "
        "run_fast('sma_cross', FastData.from_candles(data.candles), CONFIG, params=PARAMS)",
    ),
    "engine": ("import shared.backtest", "run_engine(data)"),
    "backtesting.py": ("import backtesting", "run_backtesting_py(data)"),
}


def first_calls(file: str) -> dict[str, tuple[float, float]]:
    """Per contender, in a fresh process of its own that has read `file` (and so
    imported this module, pandas, numba and our engine): (import of the contender,
    its first run) in seconds. The first run includes vectorbt's compilation, and
    loading our compiled functions from numba's cache (compiling them, the first
    time ever)."""
    out: dict[str, tuple[float, float]] = {}
    for name, (imports, first) in FIRST_CALLS.items():
        code = (
            f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); "
            f"from bench.backtest import *; data = shipped({file!r}); "
            f"t = time.perf_counter(); {imports}; i = time.perf_counter() - t; "
            f"t = time.perf_counter(); {first}; r = time.perf_counter() - t; print(i, r)"
        )
        done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        seconds = done.stdout.split()[-2:]
        out[name] = (float(seconds[0]), float(seconds[1]))
    return out


def measure(data: Dataset, rounds: int, only: Sequence[str]) -> dict[str, Timing]:
    from shared.backtest.fast import FastData

    cpu, _, data.fast_data = timed(lambda: FastData.from_candles(data.candles))
    data.seconds_fast_data = cpu
    results = {name: Timing() for name in only}
    for name in only:  # untimed: caches, lazy imports, compilation
        results[name].trades = CONTENDERS[name](data)
    for r in range(rounds):
        for name in only:
            cpu, wall, _ = timed(partial(CONTENDERS[name], data))
            results[name].cpu.append(cpu)
            results[name].wall.append(wall)
            console.print(
                f"  [dim]{data.name}, round {r + 1}/{rounds}: {name} {cpu:.3f} s CPU, "
                f"{wall:.3f} s wall[/dim]",
                highlight=False,
            )
    return results


def fixed_costs(data: Dataset, sizes: Sequence[int], repeats: int) -> dict[int, dict[str, float]]:
    """CPU seconds per run on the first `size` candles: what a short backtest costs."""
    from shared.backtest.fast import FastData, run_fast

    out: dict[int, dict[str, float]] = {}
    for size in sizes:
        candles = data.candles[:size]
        fast_data = FastData.from_candles(candles)

        def on_engine(c: list[Candle] = candles) -> Any:
            return run_backtest(
                lambda: create_strategy("sma_cross", PARAMS), {c[0].symbol: c}, CONFIG
            )

        def in_sweep(d: Any = fast_data) -> Any:
            return run_fast("sma_cross", d, CONFIG, params=PARAMS)

        row: dict[str, float] = {}
        for label, run in (
            ("engine", on_engine),
            ("compiled", partial(_cold, fast_data)),
            ("compiled/sweep", in_sweep),
        ):
            run()
            row[label] = min(timed(run)[0] for _ in range(repeats))  # CPU
        out[size] = row
    return out


def _cold(data: Any) -> Any:
    from shared.backtest.fast import run_fast

    data._means.clear()
    return run_fast("sma_cross", data, CONFIG, params=PARAMS)


# --------------------------------------------------------------------------- output


def render(data: Dataset, results: dict[str, Timing]) -> Table:
    bars = len(data.candles)
    base = results.get(BASELINE)
    table = Table(title=f"SMA({FAST})/SMA({SLOW}) cross on {data.name}")
    columns = ("contender", "CPU s", "wall s", "bars/s", f"vs {BASELINE}", "vs vectorbt", "trades")
    for col in columns:
        table.add_column(col, justify="left" if col == "contender" else "right")
    vbt = results.get("vectorbt")
    for name, timing in results.items():
        rate = bars / timing.best
        table.add_row(
            name,
            f"{timing.best:.3f}",
            f"{min(timing.wall):.3f}",
            _rate(rate),
            f"{base.best / timing.best:.2f}x" if base else "-",
            f"{vbt.best / timing.best:.2f}x" if vbt else "-",
            f"{timing.trades:,}",
        )
    return table


def _rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f} M"
    return f"{per_second / 1e3:,.0f} k"


def verdicts(results: dict[str, Timing]) -> list[str]:
    lines = []
    base, vbt = results.get(BASELINE), results.get("vectorbt")
    eng, com = results.get("engine"), results.get("compiled")
    if base and eng:
        ratio = base.best / eng.best
        met = "met" if ratio >= GOAL_ENGINE else f"NOT met ({ratio / GOAL_ENGINE:.2f} of it)"
        lines.append(f"engine {ratio:.2f}x backtesting.py (goal {GOAL_ENGINE:g}x): {met}")
    if vbt and com:
        ratio = vbt.best / com.best
        met = "met" if ratio >= GOAL_COMPILED else f"NOT met ({ratio:.2f} of vectorbt's speed)"
        lines.append(f"compiled {ratio:.2f}x vectorbt (goal {GOAL_COMPILED:g}x): {met}")
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100,000 bars, one round")
    parser.add_argument("--bars", type=int, default=1_000_000, help="synthetic bars")
    parser.add_argument("--seed", type=int, default=20240101, help="random walk seed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the fastest is shown")
    parser.add_argument("--file", default="ETH-BTC_5m.csv", help="shipped file in data/")
    parser.add_argument("--fast", type=int, default=FAST, help="fast SMA length")
    parser.add_argument("--slow", type=int, default=SLOW, help="slow SMA length")
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help=f"contenders, of {', '.join(CONTENDERS)}"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.bars, args.rounds = 100_000, 1
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    global FAST, SLOW, PARAMS  # the contenders read them
    args = parse_args(argv)
    FAST, SLOW = args.fast, args.slow
    PARAMS = {"fast": FAST, "slow": SLOW}
    started = time.monotonic()
    load = os.getloadavg()[0]
    small = shipped(args.file)
    firsts = first_calls(args.file)
    walk = random_walk(args.bars, args.seed)
    small_results: dict[str, Timing] = {}
    for data in (walk, small):
        results = measure(data, args.rounds, args.only)
        small_results = results
        console.print(render(data, results))
        for line in verdicts(results):
            console.print(f"  {line}", highlight=False)
        console.print(
            f"  input: {data.seconds_to_build:.3f} s to build the Candle objects "
            f"({len(data.candles) / data.seconds_to_build / 1e3:,.0f} k/s), "
            f"{data.seconds_fast_data:.3f} s for FastData from them (once per dataset)",
            highlight=False,
        )
    table = Table(title=f"a fresh process: import, then the first run on {args.file} (wall s)")
    for col in ("contender", "import", "first run", "a later run"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    later = {name: min(t.wall) for name, t in small_results.items()}
    for name, (imported, first) in firsts.items():
        table.add_row(name, f"{imported:.3f}", f"{first:.3f}", f"{later.get(name, 0):.3f}")
    console.print(table)
    costs = fixed_costs(small, (500, len(small.candles)), repeats=max(args.rounds, 3) * 3)
    table = Table(title=f"cost of one short run, {args.file} (milliseconds)")
    table.add_column("bars", justify="right")
    for label in ("engine", "compiled", "compiled/sweep"):
        table.add_column(label, justify="right")
    for size, row in costs.items():
        table.add_row(f"{size:,}", *(f"{row[k] * 1e3:.2f}" for k in row))
    console.print(table)
    console.print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{load:.2f} before, {os.getloadavg()[0]:.2f} after, seed {args.seed}, "
        f"{time.monotonic() - started:.0f} s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
