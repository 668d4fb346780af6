"""The model directory: save and load trained models with a manifest and a hash.

A model is `<model dir>/<name>/model.joblib` beside `<name>/manifest.json`. The
manifest records what the model needs to be used correctly: the features it was
trained on (`FeatureManifest`), the library versions, the training data's SHA-256,
the split and the evaluation metrics, and the SHA-256 of the model file.

A pickled model is code: unpickling it runs whatever the file says. So `load`

* takes a model *name*, never a path, and refuses a name or a symlink that leads
  out of the model directory;
* reads the file once, checks the SHA-256 of those bytes against the manifest (and
  against the `sha256` the caller pins, if any), checks the scikit-learn version and
  the feature manifest, and only then unpickles the very bytes it hashed.

The manifest sits beside the model, so someone who can write both can forge both:
the hash guards against a swapped, truncated or corrupted model file, not against
an attacker with write access to the model directory. Keep that directory writable
only by whoever trains; pin `sha256` in the strategy params to trust one exact file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy
import sklearn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from threadpoolctl import ThreadpoolController

from shared.config import CommonSettings
from shared.kernel.ensemble import Ensemble
from shared.kernel.features import FeatureManifest, FeatureSpecMismatch
from shared.kernel.ml import MODEL_NAME_PATTERN, MlStrategy
from shared.kernel.strategy import Strategy, create_strategy

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
_NAME = re.compile(MODEL_NAME_PATTERN)


class ModelStoreError(ValueError):
    """A model cannot be saved or loaded; the message says why and what to do."""


class ModelPathError(ModelStoreError):
    """The model name is not a plain name, or leads out of the model directory."""


class ModelIntegrityError(ModelStoreError):
    """The model file is not the one its manifest (or the caller) vouches for."""


def library_versions() -> dict[str, str]:
    """Versions of what a pickled model depends on."""
    return {
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


def default_model_dir() -> Path:
    """`ATS_DATA_DIR/models`."""
    return CommonSettings().data_dir / "models"


class DataInfo(BaseModel):
    """The candles a model was trained on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    sha256: str
    candles: int
    first: datetime
    last: datetime


class ModelManifest(BaseModel):
    """Everything recorded about a saved model (`manifest.json`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    format: int = MANIFEST_FORMAT
    name: str = Field(pattern=MODEL_NAME_PATTERN)
    created_at: datetime
    symbol: str
    timeframe: str
    horizon: int = Field(ge=1)
    threshold: float
    estimator: str
    features: FeatureManifest
    versions: dict[str, str]
    data: DataInfo
    split: dict[str, Any]
    metrics: dict[str, Any]
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SklearnModel:
    """A loaded model: the `Predictor` the `ml` strategy binds."""

    def __init__(self, manifest: ModelManifest, estimator: Any) -> None:
        classes = [int(c) for c in getattr(estimator, "classes_", ())]
        if not hasattr(estimator, "predict_proba") or sorted(classes) != [0, 1]:
            raise ModelStoreError(
                f"model {manifest.name!r} is not a binary classifier with predict_proba "
                f"(classes {classes}): retrain it with `ats ml train`"
            )
        width = getattr(estimator, "n_features_in_", None)
        if width != len(manifest.features.names):
            raise ModelStoreError(
                f"model {manifest.name!r} takes {width} features, its manifest lists "
                f"{len(manifest.features.names)}: retrain it with `ats ml train`"
            )
        self.manifest = manifest
        self.estimator = estimator
        self._up = classes.index(1)
        self._threads = ThreadpoolController()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def timeframe(self) -> str:
        return self.manifest.timeframe

    @property
    def feature_manifest(self) -> FeatureManifest:
        return self.manifest.features

    def probability_up(self, row: Sequence[float]) -> float:
        return self.probabilities_up([row])[0]

    def probabilities_up(self, rows: Sequence[Sequence[float]]) -> list[float]:
        """P(up) for many rows at once (training and evaluation)."""
        # One thread: a row per candle gains nothing from OpenMP, and an OpenMP pool
        # on a busy host turns a 2 ms prediction into tens of milliseconds.
        with self._threads.limit(limits=1):
            proba = self.estimator.predict_proba(np.asarray(rows, dtype=float))
        return [float(p) for p in proba[:, self._up]]


class ModelStore:
    """Models under one directory, addressed by name only (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, name: str) -> Path:
        """The directory of model `name`, inside the model directory.

        Raises:
            ModelPathError: `name` is not a plain name (letters, digits, `_.-`, not
                starting with a dot), or resolves outside the model directory.
        """
        if not _NAME.fullmatch(name):
            raise ModelPathError(
                f"model name {name!r} is not a plain name: use letters, digits, '_', '.', '-' "
                "(not starting with '.'); models load only from the model directory, "
                "never from a path"
            )
        root = self.root.resolve()
        resolved = (root / name).resolve()
        if resolved.parent != root:
            raise ModelPathError(
                f"model {name!r} resolves to {resolved}, outside the model directory {root} "
                "(a symlink?): move the model into the model directory"
            )
        return resolved

    def names(self) -> list[str]:
        """Names of the saved models."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST_FILE).is_file())

    def refuse_existing(self, name: str) -> None:
        """Raise ModelStoreError if model `name` exists (checked again by `save`)."""
        if (self.directory(name) / MANIFEST_FILE).exists():
            raise ModelStoreError(
                f"model {name!r} already exists in {self.root}: choose another name or "
                "replace it on purpose (`ats ml train --force`)"
            )

    def save(
        self, estimator: Any, manifest: Mapping[str, Any], *, overwrite: bool = False
    ) -> ModelManifest:
        """Write `estimator` and its manifest (`manifest` without `model_sha256`, which
        is computed here) as model `manifest["name"]`.

        Raises:
            ModelStoreError: the model exists and `overwrite` is false.
        """
        name = str(manifest.get("name"))
        directory = self.directory(name)
        if not overwrite:
            self.refuse_existing(name)
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        blob = buffer.getvalue()
        saved = ModelManifest.model_validate(
            {**manifest, "model_sha256": hashlib.sha256(blob).hexdigest()}
        )
        directory.mkdir(parents=True, exist_ok=True)
        # Model first, manifest last: a reader between the two sees a hash mismatch and
        # refuses, never a new manifest vouching for an old file.
        _write_atomic(directory / MODEL_FILE, blob)
        _write_atomic(directory / MANIFEST_FILE, (saved.model_dump_json(indent=2) + "\n").encode())
        return saved

    def manifest(self, name: str) -> ModelManifest:
        """Read and validate the manifest of model `name`."""
        path = self.directory(name) / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            known = ", ".join(self.names()) or "none"
            raise ModelStoreError(
                f"no model {name!r} in {self.root} (models there: {known}); train one with "
                f"`ats ml train --out {name}`"
            ) from e
        try:
            manifest = ModelManifest.model_validate_json(text)
        except ValidationError as e:
            raise ModelStoreError(f"the manifest of model {name!r} is not valid: {e}") from e
        if manifest.name != name:
            raise ModelIntegrityError(
                f"the manifest in {path.parent} names model {manifest.name!r}, not {name!r}: "
                "models cannot be renamed by moving them, retrain under the new name"
            )
        return manifest

    def load(self, name: str, *, sha256: str | None = None) -> SklearnModel:
        """Load model `name` after every check in the module docstring passed.

        Raises:
            ModelPathError, ModelIntegrityError, ModelStoreError: the model is refused;
                the message says why and what to do. All are ValueErrors.
        """
        manifest = self.manifest(name)
        path = self.directory(name) / MODEL_FILE
        if path.is_symlink():
            raise ModelPathError(f"{path} is a symlink: models load only from real files")
        try:
            blob = path.read_bytes()
        except FileNotFoundError as e:
            raise ModelStoreError(f"model {name!r} has a manifest but no {MODEL_FILE}") from e
        actual = hashlib.sha256(blob).hexdigest()
        if actual != manifest.model_sha256:
            raise ModelIntegrityError(
                f"{path} has SHA-256 {actual}, its manifest says {manifest.model_sha256}: the "
                "file was changed after training; refusing to unpickle it (retrain)"
            )
        if sha256 is not None and actual != sha256:
            raise ModelIntegrityError(
                f"{path} has SHA-256 {actual}, the strategy params pin {sha256}: refusing it"
            )
        trained_with = manifest.versions.get("scikit-learn")
        if trained_with != sklearn.__version__:
            raise ModelStoreError(
                f"model {name!r} was trained with scikit-learn {trained_with}, this is "
                f"{sklearn.__version__}; pickles are not portable across versions: retrain it"
            )
        try:
            manifest.features.verify()
        except FeatureSpecMismatch as e:
            raise ModelStoreError(f"model {name!r}: {e}") from e
        return SklearnModel(manifest, joblib.load(io.BytesIO(blob)))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_strategy(
    name: str, params: Mapping[str, Any] | None = None, *, model_dir: Path | None = None
) -> Strategy:
    """`create_strategy`, plus the model for an `ml` strategy, loaded and verified from
    `model_dir` (default `ATS_DATA_DIR/models`). Use it wherever strategies are built
    from config, so an `ml` strategy never runs without its model.

    Raises:
        ValueError: unknown strategy, bad params, or a model that is refused.
    """
    strategy = create_strategy(name, params)
    models = [s for s in _strategies_in(strategy) if isinstance(s, MlStrategy)]
    if models:
        store = ModelStore(model_dir if model_dir is not None else default_model_dir())
        for ml in models:
            ml.bind(store.load(ml.params.model, sha256=ml.params.sha256))
    return strategy


def _strategies_in(strategy: Strategy) -> list[Strategy]:
    """`strategy` and, for an ensemble, its members (and theirs): an `ml` member needs
    its model as much as an `ml` strategy on its own does, or it only ever holds."""
    found = [strategy]
    if isinstance(strategy, Ensemble):
        for member in strategy.members.values():
            found.extend(_strategies_in(member))
    return found
