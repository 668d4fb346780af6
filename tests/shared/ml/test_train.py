"""`ats ml train` end to end: a real subprocess trains on the shipped data, and the
`ml` strategy loads that model and decides over the same data with the very features
training used."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shared.events import Action
from shared.kernel.engine import StrategyEngine
from shared.kernel.features import DEFAULT_FEATURES, feature_table
from shared.kernel.ml import MlStrategy
from shared.kernel.strategy import Decision, Position, Strategy
from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv
from shared.ml.store import ModelStore, build_strategy
from shared.ml.train import (
    MIN_TEST_ROWS,
    MIN_TRAIN_ROWS,
    build_dataset,
    symbol_from_filename,
    time_split,
    train,
)
from tests.conftest import TIMEOUT_FACTOR
from tests.triggers.expected import load
from trading_groups.ml_cli import app

ETH = Path("data/ETH-BTC_5m.csv")
HORIZON = 6
NAME = "eth-h6"


@dataclass(frozen=True)
class Trained:
    root: Path
    stdout: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`ats ml train` run once, as a real process, into a fresh model directory."""
    root = tmp_path_factory.mktemp("models")
    cmd = [sys.executable, "-c", "from trading_groups.ml_cli import app; app()", "train"]
    args = ["--data", str(ETH), "--horizon", str(HORIZON), "--out", NAME]
    proc = subprocess.run(
        [*cmd, *args, "--model-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=120 * TIMEOUT_FACTOR,
        env={**os.environ, "COLUMNS": "160", "ATS_DATA_DIR": str(root / "unused")},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return Trained(root=root, stdout=proc.stdout)


def eth() -> list[Candle]:
    return read_candles_csv(ETH, "ETH/BTC", "5m")


def test_ml_train_cli_saves_model_with_manifest(trained: Trained) -> None:
    manifest = json.loads((trained.root / NAME / "manifest.json").read_text())
    assert (manifest["name"], manifest["symbol"], manifest["timeframe"]) == (NAME, "ETH/BTC", "5m")
    assert manifest["horizon"] == HORIZON
    assert manifest["features"]["names"] == list(DEFAULT_FEATURES.names)
    assert manifest["data"]["sha256"] == hashlib.sha256(ETH.read_bytes()).hexdigest()
    assert manifest["data"]["candles"] == 5760
    model_file = trained.root / NAME / "model.joblib"
    assert manifest["model_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert {"python", "scikit-learn", "numpy", "scipy", "joblib"} <= set(manifest["versions"])
    assert not (trained.root / "unused").exists()


def test_ml_train_cli_split_leaves_a_horizon_gap(trained: Trained) -> None:
    split = json.loads((trained.root / NAME / "manifest.json").read_text())["split"]
    train_to = datetime.fromisoformat(split["train_to"])
    test_from = datetime.fromisoformat(split["test_from"])
    # The last training label reads the close HORIZON candles after train_to, which
    # must be before the first test candle.
    assert train_to + timedelta(minutes=5 * HORIZON) < test_from
    # Every labelled candle is in one part or in the gap, and only the gap is dropped.
    labelled = 5760 - (DEFAULT_FEATURES.lookback - 1) - HORIZON
    assert split["train_rows"] + HORIZON + split["test_rows"] == labelled
    assert split["gap_candles"] == HORIZON


def test_ml_train_cli_metrics_and_baselines_match_independent_labels(trained: Trained) -> None:
    manifest = json.loads((trained.root / NAME / "manifest.json").read_text())
    split, metrics = manifest["split"], manifest["metrics"]
    df = load("ETH-BTC_5m.csv")
    up = (df["close"].shift(-HORIZON) / df["close"] - 1 > 0).astype(int)
    test = up[split["test_from"] : split["test_to"]]
    assert len(test) == split["test_rows"]
    always_up = metrics["always_up"]["up"]
    assert always_up["precision"] == pytest.approx(test.mean())
    assert always_up["recall"] == 1.0
    assert always_up["support"] == int(test.sum())
    assert metrics["model"]["up"]["support"] + metrics["model"]["not_up"]["support"] == len(test)
    for cls in ("up", "not_up"):
        for key in ("precision", "recall", "f1"):
            assert 0.0 <= metrics["model"][cls][key] <= 1.0
    assert metrics["majority"]["class"] in ("up", "not_up")


def test_ml_train_cli_prints_the_metrics_table(trained: Trained) -> None:
    for heading in ("precision", "recall", "F1", "support", "always up", "majority"):
        assert heading in trained.stdout


def run_book(strategy: Strategy, candles: list[Candle]) -> list[Decision]:
    """Replay the candles with a long-only book: BUY opens, SELL closes."""
    engine = StrategyEngine(strategy)
    position: Position | None = None
    out = []
    for c in candles:
        engine.update(c)
        d = engine.decide(
            engine.context(now=c.close_time, positions=[position] if position else [])
        )
        if d.action is Action.BUY:
            position = Position(c.symbol, Decimal(1), d.entry or Decimal(0), c.close_time)
        elif d.action is Action.SELL:
            position = None
        out.append(d)
    return out


def test_ml_strategy_uses_the_cli_model_with_training_features(trained: Trained) -> None:
    strategy = build_strategy("ml", {"model": NAME}, model_dir=trained.root)
    assert isinstance(strategy, MlStrategy)
    candles = eth()
    decisions = run_book(strategy, candles)

    # Training's rows (the dataset `ats ml train` fits on) against what the strategy
    # built from ctx.candles ending at the same candle: equal, float for float.
    dataset = build_dataset(candles, horizon=HORIZON, spec=DEFAULT_FEATURES)
    for i, t in enumerate(dataset.index):
        assert tuple(decisions[t].details["features"].values()) == tuple(dataset.features[i])
    table = feature_table(DEFAULT_FEATURES, candles)
    lookback = DEFAULT_FEATURES.lookback
    for t in range(lookback - 1, len(candles)):
        assert tuple(decisions[t].details["features"].values()) == table[t]
    assert all("warming up" in d.reasoning for d in decisions[: lookback - 1])

    # P(up) is the model's class probability, asked for all rows at once here.
    model = ModelStore(trained.root).load(NAME)
    rows = [table[t] for t in range(lookback - 1, len(candles))]
    expected = model.probabilities_up([r for r in rows if r is not None])
    got = [d.details["p_up"] for d in decisions[lookback - 1 :]]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)

    # The decisions are exactly the threshold rules over those probabilities.
    holding, wanted = False, []
    for p in expected:
        if p >= 0.6 and not holding:
            wanted.append(Action.BUY)
            holding = True
        elif p <= 0.4 and holding:
            wanted.append(Action.SELL)
            holding = False
        else:
            wanted.append(Action.HOLD)
    assert [d.action for d in decisions[lookback - 1 :]] == wanted
    trades = [d for d in decisions if d.action is not Action.HOLD]
    assert {d.action for d in trades} == {Action.BUY, Action.SELL}
    for d in trades:
        p = d.details["p_up"]
        assert d.confidence == (p if d.action is Action.BUY else 1.0 - p)
        assert f"P(up) {p:.3f}" in d.reasoning


def test_ml_train_gbm_model_loads_and_predicts(tmp_path: Path) -> None:
    # The last 1500 candles only: boosted trees take longer to fit.
    lines = ETH.read_text().splitlines(keepends=True)
    data = tmp_path / ETH.name
    data.write_text("".join([lines[0], *lines[-1500:]]))
    store = ModelStore(tmp_path / "models")
    result = train(
        data=data,
        horizon=12,
        name="gbm",
        store=store,
        now=datetime(2024, 1, 1, tzinfo=UTC),
        symbol="ETH/BTC",
        estimator="gbm",
        threshold=0.001,
    )
    assert result.manifest.estimator == "gbm"
    assert result.manifest.threshold == 0.001
    strategy = build_strategy(
        "ml", {"model": "gbm", "buy_threshold": 0.55, "sell_threshold": 0.45}, model_dir=store.root
    )
    decisions = run_book(strategy, eth()[-300:])
    assert all(0.0 <= d.details["p_up"] <= 1.0 for d in decisions[DEFAULT_FEATURES.lookback :])


def test_ml_train_cli_name_that_is_a_path_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(ETH), "--horizon", "6", "--out", "../escape"]
        + ["--model-dir", str(tmp_path / "models")],
    )
    assert result.exit_code == 2
    assert "not a plain name" in result.output
    assert not (tmp_path / "escape").exists()


def test_ml_train_cli_existing_model_needs_force(tmp_path: Path) -> None:
    args = ["train", "--data", str(ETH), "--horizon", "3", "--out", "m"]
    args += ["--model-dir", str(tmp_path)]
    assert CliRunner().invoke(app, args).exit_code == 0
    sha = json.loads((tmp_path / "m" / "manifest.json").read_text())["model_sha256"]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2
    assert "already exists" in again.output
    assert CliRunner().invoke(app, [*args, "--force"]).exit_code == 0
    assert ModelStore(tmp_path).manifest("m").model_sha256 == sha  # same data, same model


def test_ml_train_cli_unreadable_data_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "X-Y_5m.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2018-01-10T04:55:00Z,1,2,0.5,x,3\n")
    result = CliRunner().invoke(
        app, ["train", "--data", str(bad), "--horizon", "6", "--model-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "close is not a number" in result.output


def test_time_split_training_labels_end_before_the_test_period() -> None:
    index = list(range(49, 5000))
    split = time_split(index, horizon=12, test_fraction=0.25)
    first_test = index[split.test_start]
    assert index[split.train_end - 1] + 12 < first_test
    assert index[split.train_end] + 12 >= first_test  # no more rows dropped than needed
    assert split.rows - split.test_start == round(len(index) * 0.25)


def test_time_split_too_few_rows_refused() -> None:
    with pytest.raises(ValueError, match="need at least"):
        time_split(list(range(MIN_TRAIN_ROWS + MIN_TEST_ROWS)), horizon=50, test_fraction=0.25)


def test_build_dataset_drops_unlabelled_and_warming_rows() -> None:
    candles = eth()[:400]
    dataset = build_dataset(candles, horizon=HORIZON, spec=DEFAULT_FEATURES)
    assert dataset.index == list(range(DEFAULT_FEATURES.lookback - 1, 400 - HORIZON))
    assert dataset.features.shape == (len(dataset.index), len(DEFAULT_FEATURES.names))
    assert np.isfinite(dataset.features).all()


@pytest.mark.parametrize(
    ("file", "symbol"),
    [("ETH-BTC_5m.csv", "ETH/BTC"), ("XRP-USDT_5m.csv", "XRP/USDT"), ("prices.csv", None)],
)
def test_symbol_from_filename_reads_the_data_naming(file: str, symbol: str | None) -> None:
    assert symbol_from_filename(Path(file)) == symbol
