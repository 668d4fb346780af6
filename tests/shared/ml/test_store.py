"""The model directory: models load only by name from inside it, and only when the
file's hash, the library version and the features match the manifest."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.kernel.ensemble import Ensemble
from shared.kernel.ml import MlStrategy
from shared.ml.store import (
    MANIFEST_FILE,
    MODEL_FILE,
    ModelIntegrityError,
    ModelPathError,
    ModelStore,
    ModelStoreError,
    SklearnModel,
    build_strategy,
)
from shared.ml.train import train

ETH = Path("data/ETH-BTC_5m.csv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding one model, `eth`, trained once for this module."""
    root = tmp_path_factory.mktemp("models")
    train(
        data=ETH,
        horizon=6,
        name="eth",
        store=ModelStore(root),
        now=datetime(2024, 1, 1, tzinfo=UTC),
        symbol="ETH/BTC",
    )
    return root


@pytest.fixture
def models(trained: Path, tmp_path: Path) -> ModelStore:
    """A private copy of the trained model directory, free to tamper with."""
    root = tmp_path / "models"
    shutil.copytree(trained, root)
    return ModelStore(root)


class WritesAFile:
    """A pickle payload: unpickling it creates `path`, as hostile code would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (shutil.copyfile, (str(ETH), str(self.path)))


def test_store_load_saved_model_predicts_probabilities(models: ModelStore) -> None:
    model = models.load("eth")
    assert isinstance(model, SklearnModel)
    assert model.name == "eth"
    assert model.timeframe == "5m"
    manifest = models.manifest("eth")
    assert manifest.versions["scikit-learn"]
    assert manifest.data.sha256 == hashlib.sha256(ETH.read_bytes()).hexdigest()
    assert (
        manifest.model_sha256
        == hashlib.sha256((models.root / "eth" / MODEL_FILE).read_bytes()).hexdigest()
    )
    p = model.probability_up([0.0] * len(manifest.features.names))
    assert 0.0 <= p <= 1.0
    assert models.names() == ["eth"]


def test_store_load_tampered_model_file_refused(models: ModelStore) -> None:
    path = models.root / "eth" / MODEL_FILE
    blob = bytearray(path.read_bytes())
    blob[-20] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        models.load("eth")


def test_store_load_swapped_pickle_refused_without_running_it(
    models: ModelStore, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    (models.root / "eth" / MODEL_FILE).write_bytes(pickle.dumps(WritesAFile(marker)))
    with pytest.raises(ModelIntegrityError, match="refusing to unpickle"):
        models.load("eth")
    assert not marker.exists()


def test_store_load_hash_pinned_by_caller_must_match(models: ModelStore) -> None:
    actual = models.manifest("eth").model_sha256
    assert models.load("eth", sha256=actual).name == "eth"
    with pytest.raises(ModelIntegrityError, match="pin"):
        models.load("eth", sha256="0" * 64)


@pytest.mark.parametrize(
    "name", ["../eth", "..", "/etc/passwd", "a/b", ".hidden", "", "eth/../eth", "x" * 101]
)
def test_store_load_name_that_is_a_path_refused(models: ModelStore, name: str) -> None:
    with pytest.raises(ModelPathError, match="not a plain name"):
        models.load(name)


def test_store_load_symlink_out_of_the_directory_refused(
    models: ModelStore, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(models.root / "eth", outside / "eth")
    (models.root / "evil").symlink_to(outside / "eth", target_is_directory=True)
    with pytest.raises(ModelPathError, match="outside the model directory"):
        models.load("evil")


def test_store_load_symlinked_model_file_refused(models: ModelStore, tmp_path: Path) -> None:
    path = models.root / "eth" / MODEL_FILE
    outside = tmp_path / "model.joblib"
    shutil.move(path, outside)
    path.symlink_to(outside)
    with pytest.raises(ModelPathError, match="symlink"):
        models.load("eth")


def test_store_load_other_sklearn_version_refused(models: ModelStore) -> None:
    path = models.root / "eth" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["versions"]["scikit-learn"] = "0.24.2"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelStoreError, match="scikit-learn 0.24.2"):
        models.load("eth")


def test_store_load_features_code_no_longer_builds_refused(models: ModelStore) -> None:
    path = models.root / "eth" / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["features"]["spec"]["version"] = 0
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelStoreError, match="features version 0"):
        models.load("eth")


def test_store_load_renamed_model_directory_refused(models: ModelStore) -> None:
    (models.root / "eth").rename(models.root / "btc")
    with pytest.raises(ModelIntegrityError, match="names model 'eth'"):
        models.load("btc")


def test_store_load_unknown_model_lists_the_known_ones(models: ModelStore) -> None:
    with pytest.raises(ModelStoreError, match=r"no model 'nope'.*models there: eth"):
        models.load("nope")


def test_store_save_existing_name_refused_unless_overwrite(models: ModelStore) -> None:
    model = models.load("eth")
    fields = models.manifest("eth").model_dump(exclude={"model_sha256"})
    with pytest.raises(ModelStoreError, match="already exists"):
        models.save(model.estimator, fields)
    saved = models.save(model.estimator, fields, overwrite=True)
    assert models.load("eth").manifest == saved


def test_build_strategy_binds_the_verified_model(models: ModelStore) -> None:
    s = build_strategy("ml", {"model": "eth"}, model_dir=models.root)
    assert isinstance(s, MlStrategy)
    assert s.model is not None
    assert s.model.name == "eth"
    assert build_strategy("sma_cross", {}, model_dir=models.root).name == "sma_cross"


def test_build_strategy_binds_the_model_of_an_ensembles_ml_member(models: ModelStore) -> None:
    params = {
        "members": [
            {"strategy": "sma_cross"},
            {
                "strategy": "ensemble",
                "params": {"members": [{"strategy": "ml", "params": {"model": "eth"}}]},
            },
        ]
    }
    s = build_strategy("ensemble", params, model_dir=models.root)

    assert isinstance(s, Ensemble)
    inner = s.members["ensemble"]
    assert isinstance(inner, Ensemble)
    ml = inner.members["ml"]
    assert isinstance(ml, MlStrategy)
    assert ml.model is not None and ml.model.name == "eth"
    # A member's model is verified like a strategy's own: a tampered file is refused.
    (models.root / "eth" / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(ValueError, match="SHA-256"):
        build_strategy("ensemble", params, model_dir=models.root)


def test_build_strategy_tampered_model_refused(models: ModelStore) -> None:
    (models.root / "eth" / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(ValueError, match="SHA-256"):
        build_strategy("ml", {"model": "eth"}, model_dir=models.root)
