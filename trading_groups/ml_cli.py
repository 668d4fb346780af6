"""`ats ml train ...`: train a model for the `ml` strategy and show how good it is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train models for the `ml` strategy."
)


@app.callback()
def _ml() -> None:
    """Train models for the `ml` strategy (saved under ATS_DATA_DIR/models)."""


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(
        f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True
    )
    return typer.Exit(2)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Candle CSV (timestamp,open,high,low,close,volume).")],
    horizon: Annotated[int, typer.Option(help="Label: the return over this many candles.")],
    symbol: Annotated[
        str | None, typer.Option(help="Market, e.g. ETH/BTC; default: from the file name.")
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Timeframe of the candles.")] = "5m",
    out: Annotated[
        str | None, typer.Option(help="Model name; default: <file stem>-h<horizon>.")
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Model directory; default: ATS_DATA_DIR/models.")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Label up when the forward return exceeds this (0.001 = 0.1%).")
    ] = 0.0,
    estimator: Annotated[
        str, typer.Option(help="logistic (scaled logistic regression) or gbm (boosted trees).")
    ] = "logistic",
    test_fraction: Annotated[
        float, typer.Option(help="Share of the latest rows held out for evaluation.")
    ] = 0.25,
    force: Annotated[bool, typer.Option(help="Replace a model of the same name.")] = False,
) -> None:
    """Train on a candle file, evaluate on its later part, save the model and its manifest."""
    from shared.market.errors import PermanentFeedError
    from shared.ml.store import ModelStore, default_model_dir
    from shared.ml.train import ESTIMATORS, symbol_from_filename
    from shared.ml.train import train as run_training

    if estimator not in ESTIMATORS:
        raise _fail(f"--estimator {estimator!r} is not one of {', '.join(ESTIMATORS)}")
    market = symbol or symbol_from_filename(data)
    if market is None:
        raise _fail(f"cannot tell the market from {data.name}: pass --symbol, e.g. ETH/BTC")
    name = out or f"{data.stem}-h{horizon}"
    store = ModelStore(model_dir if model_dir is not None else default_model_dir())
    try:
        result = run_training(
            data=data,
            horizon=horizon,
            name=name,
            store=store,
            now=datetime.now(UTC),
            symbol=market,
            timeframe=timeframe,
            threshold=threshold,
            estimator=estimator,
            test_fraction=test_fraction,
            overwrite=force,
        )
    except (ValueError, PermanentFeedError) as e:
        raise _fail(str(e)) from e
    _report(result.manifest.model_dump(mode="json"), store.directory(name))


def _pct(value: float) -> str:
    return f"{value:.3f}"


def _report(manifest: dict[str, Any], where: Path) -> None:
    console = Console(highlight=False)
    split, metrics = manifest["split"], manifest["metrics"]
    table = Table(
        title=(
            f"{manifest['name']}: {manifest['symbol']} {manifest['timeframe']}, up = return over "
            f"{manifest['horizon']} candles > {manifest['threshold']:g}\n"
            f"test {split['test_from']} .. {split['test_to']}"
        )
    )
    for column in ("predictor", "class", "precision", "recall", "F1", "support", "accuracy"):
        table.add_column(column, justify="left" if column in ("predictor", "class") else "right")
    rows = [
        (f"model ({manifest['estimator']})", metrics["model"]),
        ("always up", metrics["always_up"]),
        (f"majority: {metrics['majority']['class'].replace('_', ' ')}", metrics["majority"]),
    ]
    for i, (label, scores) in enumerate(rows):
        for j, cls in enumerate(("up", "not_up")):
            s = scores[cls]
            table.add_row(
                label if j == 0 else "",
                cls.replace("_", " "),
                _pct(s["precision"]),
                _pct(s["recall"]),
                _pct(s["f1"]),
                str(s["support"]),
                _pct(scores["accuracy"]) if j == 0 else "",
                end_section=j == 1 and i < len(rows) - 1,
            )
    console.print(table)
    auc = metrics["model"]["auc"]
    console.print(
        f"train {split['train_rows']} rows, gap {split['gap_candles']} candles, "
        f"test {split['test_rows']} rows; up rate train {metrics['train_up_rate']:.3f}, "
        f"test {metrics['test_up_rate']:.3f}; model ROC AUC "
        f"{'n/a' if auc is None else f'{auc:.3f}'}"
    )
    console.print(f"saved {where} (model sha256 {manifest['model_sha256']})")
    console.print(
        f"""use it: --strategy ml --params '{{"model": "{manifest["name"]}"}}'""", soft_wrap=True
    )
