"""Labels never see past their horizon, and the `ml` strategy turns the model's P(up)
into decisions by its thresholds, refusing what it cannot trust."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

import pytest

from shared.events import Action
from shared.kernel.engine import StrategyEngine
from shared.kernel.features import (
    DEFAULT_FEATURES,
    FeatureManifest,
    FeatureSpec,
    FeatureSpecMismatch,
    features_at,
)
from shared.kernel.ml import MlStrategy, forward_labels
from shared.kernel.strategy import Context, Position, create_strategy, safe_decide
from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv
from tests.triggers.expected import load

ETH = "data/ETH-BTC_5m.csv"


@cache
def eth() -> tuple[Candle, ...]:
    return tuple(read_candles_csv(ETH, "ETH/BTC", "5m"))


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("horizon", [1, 6, 24])
def test_forward_labels_equal_independent_forward_returns(horizon: int) -> None:
    df = load("ETH-BTC_5m.csv")
    expected = (df["close"].shift(-horizon) / df["close"] - 1 > 0.0005).astype(int).tolist()
    got = forward_labels(df["close"].tolist(), horizon, 0.0005)
    assert got[-horizon:] == [None] * horizon
    assert got[:-horizon] == expected[:-horizon]


@pytest.mark.parametrize(("t", "horizon"), [(0, 1), (100, 6), (3000, 12), (5700, 24)])
def test_forward_labels_label_t_unchanged_when_candles_after_horizon_change(
    t: int, horizon: int
) -> None:
    closes = [c.close for c in eth()]
    before = forward_labels(closes, horizon)
    changed = closes[: t + horizon + 1] + [x * 3.0 for x in closes[t + horizon + 1 :]]
    after = forward_labels(changed, horizon)
    assert after[: t + 1] == before[: t + 1]


def test_forward_labels_label_t_reads_the_close_horizon_candles_later() -> None:
    closes = [1.0, 1.0, 1.0, 1.0, 1.0]
    assert forward_labels(closes, 2) == [0, 0, 0, None, None]
    closes[2] = 1.1  # t=0 sees it at t+2; t=1 would need it at t+1 (not its horizon)
    assert forward_labels(closes, 2) == [1, 0, 0, None, None]


def test_forward_labels_zero_horizon_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        forward_labels([1.0, 2.0], 0)


# --------------------------------------------------------------------------- strategy


@dataclass
class ScriptedModel:
    """A stand-in for a trained model (the outside input of the strategy): P(up) comes
    from a script, and every feature row it was asked about is recorded."""

    probabilities: list[float]
    name: str = "scripted"
    timeframe: str = "5m"
    spec: FeatureSpec = DEFAULT_FEATURES
    rows: list[tuple[float, ...]] = field(default_factory=list)

    @property
    def feature_manifest(self) -> FeatureManifest:
        return FeatureManifest.of(self.spec)

    def probability_up(self, row: Sequence[float]) -> float:
        self.rows.append(tuple(row))
        return self.probabilities[(len(self.rows) - 1) % len(self.probabilities)]


def strategy(model: ScriptedModel, **params: object) -> MlStrategy:
    s = create_strategy("ml", {"model": model.name, **params})
    assert isinstance(s, MlStrategy)
    s.bind(model)
    return s


def context(candles: Sequence[Candle], *, position: bool = False) -> Context:
    last = candles[-1]
    positions = [Position(last.symbol, Decimal(1), Decimal("0.09"), last.open_time)]
    return Context(
        symbol=last.symbol,
        timeframe=last.timeframe,
        now=last.close_time,
        candles=tuple(candles),
        indicators={},
        previous={},
        positions=positions if position else (),
    )


WINDOW = eth()[:100]


@pytest.mark.parametrize(
    ("p_up", "position", "action", "confidence"),
    [
        (0.61, False, Action.BUY, 0.61),
        (0.6, False, Action.BUY, 0.6),
        (0.9, True, Action.HOLD, 0.0),
        (0.4, True, Action.SELL, 0.6),
        (0.1, True, Action.SELL, 0.9),
        (0.1, False, Action.HOLD, 0.0),
        (0.5, False, Action.HOLD, 0.0),
        (0.5, True, Action.HOLD, 0.0),
    ],
)
def test_ml_decide_thresholds_give_the_action_and_confidence(
    p_up: float, position: bool, action: Action, confidence: float
) -> None:
    s = strategy(ScriptedModel([p_up]))
    d = safe_decide(s, context(WINDOW, position=position))
    assert d.action is action
    assert d.confidence == pytest.approx(confidence)
    assert f"P(up) {p_up:.3f}" in d.reasoning
    assert d.details["p_up"] == p_up
    if action is Action.BUY:
        assert d.entry == Decimal(repr(WINDOW[-1].close))


def test_ml_decide_custom_thresholds_applied() -> None:
    s = strategy(ScriptedModel([0.55]), buy_threshold=0.55, sell_threshold=0.2)
    assert safe_decide(s, context(WINDOW)).action is Action.BUY


def test_ml_decide_features_come_from_the_last_lookback_candles() -> None:
    model = ScriptedModel([0.5])
    s = strategy(model)
    engine = StrategyEngine(s)
    for c in WINDOW:
        engine.update(c)
    d = engine.decide(engine.context(now=WINDOW[-1].close_time))
    assert len(engine.context(now=WINDOW[-1].close_time).candles) == DEFAULT_FEATURES.lookback
    assert model.rows == [features_at(DEFAULT_FEATURES, WINDOW)]
    assert list(d.details["features"]) == list(DEFAULT_FEATURES.names)


def test_ml_decide_too_few_candles_holds_warming_up() -> None:
    model = ScriptedModel([0.99])
    d = safe_decide(strategy(model), context(WINDOW[: DEFAULT_FEATURES.lookback - 1]))
    assert d.action is Action.HOLD
    assert "warming up" in d.reasoning
    assert model.rows == []


def test_ml_decide_unbound_strategy_holds_with_the_reason() -> None:
    s = create_strategy("ml", {"model": "eth"})
    d = safe_decide(s, context(WINDOW))
    assert d.action is Action.HOLD
    assert d.details["error"] == "model_not_loaded"


def test_ml_decide_other_timeframe_holds() -> None:
    d = safe_decide(strategy(ScriptedModel([0.9], timeframe="1h")), context(WINDOW))
    assert d.action is Action.HOLD
    assert d.details["error"] == "timeframe_mismatch"


@pytest.mark.parametrize("p_up", [float("nan"), 1.5, -0.1])
def test_ml_decide_not_a_probability_holds(p_up: float) -> None:
    d = safe_decide(strategy(ScriptedModel([p_up])), context(WINDOW))
    assert d.action is Action.HOLD
    assert d.details["error"] == "bad_probability"


def test_ml_bind_other_model_name_refused() -> None:
    s = create_strategy("ml", {"model": "eth"})
    assert isinstance(s, MlStrategy)
    with pytest.raises(ValueError, match="configured for 'eth'"):
        s.bind(ScriptedModel([0.5], name="btc"))
    assert s.model is None


def test_ml_bind_model_with_stale_features_refused() -> None:
    @dataclass
    class StaleModel(ScriptedModel):
        @property
        def feature_manifest(self) -> FeatureManifest:
            m = FeatureManifest.of(self.spec)
            return m.model_copy(update={"fingerprint": tuple(v + 1.0 for v in m.fingerprint)})

    s = create_strategy("ml", {"model": "scripted"})
    assert isinstance(s, MlStrategy)
    with pytest.raises(FeatureSpecMismatch):
        s.bind(StaleModel([0.5]))
    assert s.model is None


def test_ml_bind_model_history_follows_its_feature_spec() -> None:
    spec = FeatureSpec(returns=(1, 100), sma=(5,), volatility=(3,), volume=(3,))
    s = strategy(ScriptedModel([0.5], spec=spec))
    assert s.history() == 101


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"model": "../outside"},
        {"model": "/etc/passwd"},
        {"model": "eth", "buy_threshold": 0.4, "sell_threshold": 0.5},
        {"model": "eth", "buy_threshold": 1.5},
        {"model": "eth", "sha256": "not-a-hash"},
        {"model": "eth", "path": "models/eth/model.joblib"},
    ],
)
def test_ml_create_bad_params_refused(params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="bad params for strategy 'ml'"):
        create_strategy("ml", params)


def test_ml_decide_is_pure_same_context_same_decision() -> None:
    s = strategy(ScriptedModel([0.7]))
    ctx = context(WINDOW)
    assert safe_decide(s, ctx) == safe_decide(s, ctx)
