"""Per-candle cost of live indicators: `IndicatorWindow` vs recomputing pandas-ta.

A live trigger updates its indicators on every closed candle. Recomputing pandas-ta
over the whole history each time costs more as the history grows; the incremental
`IndicatorWindow` must not. For histories of 1k, 10k and 100k candles (a seeded
random walk), this measures the cost of one more candle with:

  window      `IndicatorWindow.update(candle)` (incremental state, see the module
              docstring of shared/market/indicators.py)
  full        `compute_all(specs, frame[: n + 1])`: pandas-ta over the whole history
              (the frame is prebuilt and sliced, so only pandas-ta is timed)
  bounded     pandas-ta over the last 10 x the longest warm-up only: flat too, but
              it only converges to the full-history values, and is far slower

The indicators are the six kinds with default parameters: RSI(14), SMA(20),
EMA(20), MACD(12, 26, 9), BBANDS(20, 2.0), ATR(14).

    .venv/bin/python bench/indicators.py            # about 20 seconds
    .venv/bin/python bench/indicators.py --quick    # a smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

# `python bench/indicators.py` puts bench/, not the repository, first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from shared.market.candles import Candle  # noqa: E402
from shared.market.indicators import (  # noqa: E402
    INDICATOR_SPECS,
    IndicatorSpec,
    IndicatorWindow,
    candles_to_frame,
    compute_all,
)

SPECS: list[IndicatorSpec] = INDICATOR_SPECS.validate_python(
    [
        {"kind": "rsi", "length": 14},
        {"kind": "sma", "length": 20},
        {"kind": "ema", "length": 20},
        {"kind": "macd"},
        {"kind": "bbands", "length": 20, "std": 2.0},
        {"kind": "atr", "length": 14},
    ]
)
HISTORIES = (1_000, 10_000, 100_000)

console = Console(width=None if sys.stdout.isatty() else 120)


def random_walk(n: int, seed: int) -> list[Candle]:
    """`n` 1m candles of a geometric random walk around 100."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate(([100.0], closes[:-1]))
    spread = np.abs(rng.normal(0, 0.0005, n)) * closes
    highs = np.maximum(opens, closes) + spread
    lows = np.minimum(opens, closes) - spread
    volumes = rng.lognormal(3, 1, n)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Candle(
            "SIM/USD",
            "1m",
            t0 + timedelta(minutes=i),
            float(opens[i]),
            float(highs[i]),
            float(lows[i]),
            float(closes[i]),
            float(volumes[i]),
        )
        for i in range(n)
    ]


def per_call(step: Callable[[int], object], calls: int, repeats: int) -> float:
    """Best over `repeats` of the mean seconds per call of `step(i)`, i < calls.

    As `timeit` does: the garbage collector is off while timing, and the fastest
    repeat is the one least disturbed by the rest of the machine.
    """
    samples = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            for i in range(calls):
                step(i)
            samples.append((time.perf_counter() - started) / calls)
        finally:
            gc.enable()
    return min(samples)


def measure(candles: list[Candle], history: int, args: argparse.Namespace) -> dict[str, float]:
    frame = candles_to_frame(candles)
    updates = args.updates
    spare = candles[history : history + updates * args.repeats]

    def window_step_factory() -> Callable[[int], object]:
        window = IndicatorWindow(SPECS)
        window.extend(candles[:history])
        feed = iter(spare)
        return lambda _i: window.update(next(feed))

    # A fresh window per repeat, warmed up on `history` candles, so every timed update
    # lands on exactly that much history.
    window_samples = []
    for _ in range(args.repeats):
        step = window_step_factory()
        window_samples.append(per_call(step, updates, 1))
    window_cost = min(window_samples)

    # pandas-ta's first calls pay for lazy imports and caches: not part of the cost.
    compute_all(SPECS, frame.iloc[:history])
    full_calls = max(2, args.full_updates * 1_000 // history)
    full_cost = per_call(
        lambda i: compute_all(SPECS, frame.iloc[: history + 1 + i]), full_calls, args.repeats
    )

    span = 10 * max(spec.warmup for spec in SPECS)
    bounded_cost = per_call(
        lambda i: compute_all(SPECS, frame.iloc[history + 1 + i - span : history + 1 + i]),
        args.full_updates,
        args.repeats,
    )
    return {"window": window_cost, "full": full_cost, "bounded": bounded_cost}


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def render(results: dict[int, dict[str, float]]) -> Table:
    base = results[min(results)]
    table = Table(title="cost of one more candle, six indicators (RSI, SMA, EMA, MACD, BB, ATR)")
    for col in (
        "history",
        "window µs",
        "window vs 1k",
        "full pandas-ta µs",
        "full vs 1k",
        "full / window",
        "bounded pandas-ta µs",
        "bounded / window",
    ):
        table.add_column(col, justify="right")
    for history, cost in sorted(results.items()):
        table.add_row(
            f"{history:,}",
            _us(cost["window"]),
            f"{cost['window'] / base['window']:.2f}x",
            _us(cost["full"]),
            f"{cost['full'] / base['full']:.2f}x",
            f"{cost['full'] / cost['window']:,.0f}x",
            _us(cost["bounded"]),
            f"{cost['bounded'] / cost['window']:,.0f}x",
        )
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke run")
    parser.add_argument("--seed", type=int, default=20240101, help="random walk seed")
    parser.add_argument("--updates", type=int, default=5000, help="window updates timed")
    parser.add_argument(
        "--full-updates",
        type=int,
        default=20,
        help="pandas-ta recomputations timed (at 1k history; fewer for longer ones)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the fastest is shown")
    args = parser.parse_args(argv)
    if args.quick:
        args.updates, args.full_updates, args.repeats = 500, 5, 1
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    candles = random_walk(max(HISTORIES) + args.updates * args.repeats + 1_000, args.seed)
    results = {history: measure(candles, history, args) for history in HISTORIES}
    console.print(render(results))
    window = [r["window"] for r in results.values()]
    growth = results[max(HISTORIES)]["full"] / results[min(HISTORIES)]["full"]
    console.print(
        f"window cost across histories varies by {max(window) / min(window):.2f}x (flat = 1x); "
        f"the full recompute grows {growth:.0f}x from {min(HISTORIES):,} to "
        f"{max(HISTORIES):,} candles",
        highlight=False,
    )
    console.print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}, "
        f"seed {args.seed}, {time.monotonic() - started:.0f} s",
        highlight=False,
    )


if __name__ == "__main__":
    main()
