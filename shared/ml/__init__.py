"""The I/O side of the `ml` strategy: the model directory and the training pipeline.

The pure half lives in the kernel (`shared.kernel.features`, `shared.kernel.ml`);
this package reads candle files, fits scikit-learn models, and saves and loads them
with their manifest. Build strategies from config with `build_strategy`, which binds
an `ml` strategy to its verified model.
"""

from shared.ml.store import (
    ModelIntegrityError,
    ModelPathError,
    ModelStore,
    ModelStoreError,
    build_strategy,
    default_model_dir,
)

__all__ = [
    "ModelIntegrityError",
    "ModelPathError",
    "ModelStore",
    "ModelStoreError",
    "build_strategy",
    "default_model_dir",
]
