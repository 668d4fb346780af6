"""The `ml` strategy and its labels: pure code, the model arrives from outside.

Labels: the label of candle t is whether the return from its close to the close
`horizon` candles later beats a threshold. It reads candles t+1..t+horizon only
through that later close; the features of t (`shared.kernel.features`) read candles
up to t only. The last `horizon` candles have no label.

The strategy asks a `Predictor` for P(up) on the features of the last candle and
takes the decision from two thresholds (params `model`, `buy_threshold` 0.6,
`sell_threshold` 0.4, optional `sha256` to pin the exact model file):

* BUY when P(up) >= buy_threshold and no position is open (confidence P(up));
* SELL (close the long) when P(up) <= sell_threshold and a position is open
  (confidence 1 - P(up));
* HOLD otherwise, with P(up) in the reasoning.

Injection point: the kernel does no I/O, so the strategy cannot open the model file.
`create_strategy("ml", params)` gives an unbound strategy, which HOLDs and says so;
the process binds a `Predictor` with `MlStrategy.bind`. `shared.ml.build_strategy`
does both (it loads the model from the model directory, verifying its hash), and is
what a trading group or the backtester calls instead of `create_strategy`. A test can
bind any object with the `Predictor` shape. `bind` re-checks the model's feature
manifest against this code, so no path can pair a model with features it was not
trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

from pydantic import Field, model_validator

from shared.events import Action
from shared.kernel.features import (
    DEFAULT_FEATURES,
    FeatureManifest,
    FeatureSpec,
    features_at,
)
from shared.kernel.strategy import Context, Decision, Strategy, StrategyParams, register_strategy

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


def forward_labels(
    closes: Sequence[float], horizon: int, threshold: float = 0.0
) -> list[int | None]:
    """1 where close[t + horizon] / close[t] - 1 > threshold, else 0; None for the last
    `horizon` candles, whose future is not in the data."""
    if horizon < 1:
        raise ValueError(f"horizon {horizon} must be at least 1 candle")
    n = len(closes)
    labels: list[int | None] = []
    for t in range(n):
        if t + horizon >= n:
            labels.append(None)
            continue
        now, later = closes[t], closes[t + horizon]
        change = later / now - 1.0 if now != 0 else 0.0
        labels.append(1 if change > threshold else 0)
    return labels


class Predictor(Protocol):
    """A trained model: what the `ml` strategy needs from it."""

    @property
    def name(self) -> str:
        """The model's name in the model directory."""
        ...

    @property
    def timeframe(self) -> str:
        """The timeframe of the candles it was trained on."""
        ...

    @property
    def feature_manifest(self) -> FeatureManifest:
        """The features it was trained on."""
        ...

    def probability_up(self, row: Sequence[float]) -> float:
        """P(up) for one row of features, in `feature_manifest.names` order."""
        ...


class MlParams(StrategyParams):
    model: str = Field(pattern=MODEL_NAME_PATTERN, description="Name in the model directory.")
    buy_threshold: float = Field(default=0.6, gt=0, le=1)
    sell_threshold: float = Field(default=0.4, ge=0, lt=1)
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Optional: the model file's SHA-256; loading refuses any other file.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> MlParams:
        if self.sell_threshold >= self.buy_threshold:
            raise ValueError(
                f"sell_threshold ({self.sell_threshold}) must be below "
                f"buy_threshold ({self.buy_threshold})"
            )
        return self


@register_strategy("ml")
class MlStrategy(Strategy):
    """BUY when the model's P(up) >= `buy_threshold` (0.6) and no position is open; SELL
    (close) when P(up) <= `sell_threshold` (0.4) and one is. Params: `model` (required),
    thresholds, optional `sha256`. Bind the model with `bind` (see the module docstring)."""

    Params = MlParams
    params: MlParams

    def __init__(self, params: StrategyParams | None = None) -> None:
        super().__init__(params)
        self._model: Predictor | None = None
        self._features: FeatureSpec = DEFAULT_FEATURES

    @property
    def model(self) -> Predictor | None:
        return self._model

    def bind(self, model: Predictor) -> None:
        """Use `model` from now on.

        Raises:
            ValueError: the model is not the one the params name, or was trained on
                features this code no longer builds (`FeatureSpecMismatch`).
        """
        if model.name != self.params.model:
            raise ValueError(
                f"model {model.name!r} given to a strategy configured for {self.params.model!r}"
            )
        self._features = model.feature_manifest.verify()
        self._model = model

    def history(self) -> int:
        return self._features.lookback

    def decide(self, ctx: Context) -> Decision:
        p = self.params
        model = self._model
        if model is None:
            return Decision.hold(
                f"model {p.model!r} is not loaded: build the strategy with "
                "shared.ml.build_strategy (or bind a model) before deciding",
                error="model_not_loaded",
            )
        if ctx.timeframe != model.timeframe:
            return Decision.hold(
                f"model {p.model!r} was trained on {model.timeframe} candles, these are "
                f"{ctx.timeframe}: train one on {ctx.timeframe} data",
                error="timeframe_mismatch",
            )
        spec = self._features
        row = features_at(spec, ctx.candles)
        if row is None:
            return Decision.hold(
                f"warming up: the model's features need {spec.lookback} candles, "
                f"{len(ctx.candles)} so far"
            )
        up = model.probability_up(row)
        if not (math.isfinite(up) and 0.0 <= up <= 1.0):
            return Decision.hold(
                f"model {p.model!r} returned P(up) = {up!r}, not a probability",
                error="bad_probability",
            )
        details = {
            "model": p.model,
            "p_up": up,
            "features": dict(zip(spec.names, row, strict=True)),
        }
        position = ctx.position()
        close = Decimal(repr(ctx.candle.close))
        if up >= p.buy_threshold and position is None:
            return Decision(
                Action.BUY,
                up,
                f"model {p.model}: P(up) {up:.3f} >= buy threshold {p.buy_threshold:g}",
                entry=close,
                details=details,
            )
        if up <= p.sell_threshold and position is not None:
            return Decision(
                Action.SELL,
                1.0 - up,
                f"model {p.model}: P(up) {up:.3f} <= sell threshold {p.sell_threshold:g}, "
                "closing the long",
                entry=close,
                details=details,
            )
        if up >= p.buy_threshold:
            why = "a position is already open"
        elif up <= p.sell_threshold:
            why = "no position is open to close (spot: long only)"
        else:
            why = f"between the thresholds {p.sell_threshold:g} and {p.buy_threshold:g}"
        return Decision(
            Action.HOLD, 0.0, f"model {p.model}: P(up) {up:.3f}, {why}", details=details
        )
