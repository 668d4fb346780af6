"""Training: candles -> features and labels -> time-ordered split -> model and metrics.

Features come from `shared.kernel.features.feature_table`, which calls the very
function the `ml` strategy calls at inference (`features_at`); labels from
`shared.kernel.ml.forward_labels`. A row is a candle t with both: its features read
candles <= t, its label candles t+1..t+horizon.

The split is by time: the model learns on the earlier rows and is scored on the
later ones, with `horizon` candles left out between them, so no training label
reaches into the test period. The saved model is the one that was scored (it has not
seen the test rows), so the metrics in its manifest describe it exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import ThreadpoolController

from shared.kernel.features import DEFAULT_FEATURES, FeatureManifest, FeatureSpec, feature_table
from shared.kernel.ml import forward_labels
from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv
from shared.ml.store import DataInfo, ModelManifest, ModelStore, library_versions

Estimator = Literal["logistic", "gbm"]
ESTIMATORS: tuple[Estimator, ...] = ("logistic", "gbm")
MIN_TRAIN_ROWS = 100
MIN_TEST_ROWS = 30


@dataclass(frozen=True, slots=True)
class Dataset:
    """Rows with both features and a label: `index[i]` is the candle of row i."""

    index: list[int]
    times: list[datetime]
    features: np.ndarray[Any, np.dtype[np.float64]]
    labels: np.ndarray[Any, np.dtype[np.int64]]
    names: tuple[str, ...]


def build_dataset(
    candles: Sequence[Candle], *, horizon: int, threshold: float = 0.0, spec: FeatureSpec
) -> Dataset:
    """Features and forward-return labels of every candle that has both."""
    rows = feature_table(spec, candles)
    labels = forward_labels([c.close for c in candles], horizon, threshold)
    keep = [
        t
        for t, (row, label) in enumerate(zip(rows, labels, strict=True))
        if row is not None and label is not None
    ]
    return Dataset(
        index=keep,
        times=[candles[t].open_time for t in keep],
        features=np.asarray([rows[t] for t in keep], dtype=np.float64).reshape(
            len(keep), len(spec.names)
        ),
        labels=np.asarray([labels[t] for t in keep], dtype=np.int64),
        names=spec.names,
    )


@dataclass(frozen=True, slots=True)
class Split:
    """Row positions in a `Dataset`: train is `[0, train_end)`, test `[test_start, n)`."""

    train_end: int
    test_start: int
    rows: int


def time_split(index: Sequence[int], *, horizon: int, test_fraction: float) -> Split:
    """Split rows by time, dropping the training rows whose label window (t+1..t+horizon)
    reaches the first test candle.

    Raises:
        ValueError: too few rows on either side.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test fraction {test_fraction} must be between 0 and 1")
    n = len(index)
    test_start = n - max(1, round(n * test_fraction))
    first_test_candle = index[test_start] if 0 <= test_start < n else 0
    train_end = 0
    while train_end < test_start and index[train_end] + horizon < first_test_candle:
        train_end += 1
    if train_end < MIN_TRAIN_ROWS or n - test_start < MIN_TEST_ROWS:
        raise ValueError(
            f"{n} labelled rows give {train_end} to train on and {n - test_start} to test on; "
            f"need at least {MIN_TRAIN_ROWS} and {MIN_TEST_ROWS}: use more candles or a "
            "shorter horizon"
        )
    return Split(train_end=train_end, test_start=test_start, rows=n)


def make_estimator(kind: Estimator) -> Any:
    """A fresh, seeded scikit-learn pipeline."""
    if kind == "logistic":
        return Pipeline(
            [("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000, C=1.0))]
        )
    if kind == "gbm":
        # Imported here: it is the slowest part of scikit-learn to load.
        from sklearn.ensemble import HistGradientBoostingClassifier

        return Pipeline(
            [
                (
                    "model",
                    HistGradientBoostingClassifier(
                        max_iter=150, learning_rate=0.05, max_leaf_nodes=15, random_state=0
                    ),
                )
            ]
        )
    raise ValueError(f"unknown estimator {kind!r}; choose one of {', '.join(ESTIMATORS)}")


def _scores(y_true: Any, y_pred: Any) -> dict[str, Any]:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=[1, 0], zero_division=0
    )
    out: dict[str, Any] = {
        cls: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, cls in enumerate(("up", "not_up"))
    }
    out["accuracy"] = float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
    return out


def evaluate(model: Any, dataset: Dataset, split: Split, *, cutoff: float = 0.5) -> dict[str, Any]:
    """Precision, recall, F1 and support of the model on the test rows, beside two
    baselines: always predicting up, and always the training set's majority class."""
    x_test = dataset.features[split.test_start :]
    y_test = dataset.labels[split.test_start :]
    y_train = dataset.labels[: split.train_end]
    proba = np.asarray(model.predict_proba(x_test))[:, list(model.classes_).index(1)]
    majority = int(np.mean(y_train) > 0.5)
    auc = float(roc_auc_score(y_test, proba)) if len(set(y_test.tolist())) == 2 else None
    return {
        "model": {**_scores(y_test, (proba >= cutoff).astype(int)), "auc": auc},
        "always_up": _scores(y_test, np.ones_like(y_test)),
        "majority": {
            **_scores(y_test, np.full_like(y_test, majority)),
            "class": "up" if majority else "not_up",
        },
        "test_up_rate": float(np.mean(y_test)),
        "train_up_rate": float(np.mean(y_train)),
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def symbol_from_filename(path: Path) -> str | None:
    """`ETH-BTC_5m.csv` -> `ETH/BTC` (the data/ naming), else None."""
    base = path.stem.split("_")[0]
    parts = base.split("-")
    return "/".join(parts) if len(parts) == 2 and all(parts) else None


@dataclass(frozen=True, slots=True)
class TrainingResult:
    manifest: ModelManifest
    metrics: dict[str, Any]
    split: dict[str, Any]


def train(
    *,
    data: Path,
    horizon: int,
    name: str,
    store: ModelStore,
    now: datetime,
    symbol: str,
    timeframe: str = "5m",
    threshold: float = 0.0,
    estimator: Estimator = "logistic",
    test_fraction: float = 0.25,
    spec: FeatureSpec = DEFAULT_FEATURES,
    overwrite: bool = False,
) -> TrainingResult:
    """Train on a candle CSV, evaluate on its later part, and save the model.

    Raises:
        ValueError: bad arguments, unusable data, or the model name is taken or
            not a plain name (`MalformedData` and `ModelStoreError` are ValueErrors
            or say what to fix).
    """
    if horizon < 1:
        raise ValueError(f"horizon {horizon} must be at least 1 candle")
    # Refuse a bad or taken name before spending time on training.
    store.directory(name)
    if not overwrite:
        store.refuse_existing(name)
    candles = read_candles_csv(data, symbol, timeframe)
    if not candles:
        raise ValueError(f"{data} holds no candles")
    dataset = build_dataset(candles, horizon=horizon, threshold=threshold, spec=spec)
    split = time_split(dataset.index, horizon=horizon, test_fraction=test_fraction)
    y_train = dataset.labels[: split.train_end]
    if len(set(y_train.tolist())) < 2:
        raise ValueError(
            f"every training label is {int(y_train[0])} with threshold {threshold}: "
            "choose a threshold some returns exceed and some do not"
        )
    model = make_estimator(estimator)
    # One thread: on thousands of rows OpenMP's start-up and, on a shared host, its
    # contention cost more than it saves (measured: 0.2 s single-threaded, 4 s pooled).
    with ThreadpoolController().limit(limits=1):
        model.fit(dataset.features[: split.train_end], y_train)
        metrics = evaluate(model, dataset, split)
    split_info = {
        "train_rows": split.train_end,
        "test_rows": split.rows - split.test_start,
        "gap_candles": horizon,
        "train_from": dataset.times[0].isoformat(),
        "train_to": dataset.times[split.train_end - 1].isoformat(),
        "test_from": dataset.times[split.test_start].isoformat(),
        "test_to": dataset.times[-1].isoformat(),
    }
    manifest = store.save(
        model,
        {
            "name": name,
            "created_at": now,
            "symbol": symbol,
            "timeframe": timeframe,
            "horizon": horizon,
            "threshold": threshold,
            "estimator": estimator,
            "features": FeatureManifest.of(spec),
            "versions": library_versions(),
            "data": DataInfo(
                file=data.name,
                sha256=file_sha256(data),
                candles=len(candles),
                first=candles[0].open_time,
                last=candles[-1].open_time,
            ),
            "split": split_info,
            "metrics": metrics,
        },
        overwrite=overwrite,
    )
    return TrainingResult(manifest=manifest, metrics=metrics, split=split_info)
