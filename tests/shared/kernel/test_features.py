"""The ML feature builder: no look-ahead, window-only, and a manifest that refuses
features the code no longer builds."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import replace
from functools import cache

import pytest

from shared.kernel.features import (
    DEFAULT_FEATURES,
    FEATURES_VERSION,
    FeatureManifest,
    FeatureSpec,
    FeatureSpecMismatch,
    feature_fingerprint,
    feature_table,
    features_at,
)
from shared.market.candles import Candle
from shared.market.feeds import read_candles_csv

ETH = "data/ETH-BTC_5m.csv"


@cache
def eth() -> tuple[Candle, ...]:
    return tuple(read_candles_csv(ETH, "ETH/BTC", "5m"))


def scrambled_after(candles: tuple[Candle, ...], t: int, seed: int) -> list[Candle]:
    """The same history up to t; every later candle changed beyond recognition."""
    rng = random.Random(seed)
    out = list(candles[: t + 1])
    for c in candles[t + 1 :]:
        k = rng.uniform(0.5, 2.0)
        out.append(
            replace(
                c,
                open=c.open * k,
                high=c.high * k * 1.05,
                low=c.low * k * 0.95,
                close=c.close * rng.uniform(0.96, 1.04) * k,
                volume=c.volume * rng.uniform(0.0, 10.0),
            )
        )
    return out


@pytest.mark.parametrize("t", [48, 49, 500, 2879, 5000, 5758])
def test_feature_table_row_t_unchanged_when_later_candles_change(t: int) -> None:
    candles = eth()
    before = feature_table(DEFAULT_FEATURES, candles[: t + 80])
    after = feature_table(DEFAULT_FEATURES, scrambled_after(candles, t, seed=t)[: t + 80])
    assert after[: t + 1] == before[: t + 1]
    # The scrambling is visible right after t, so the check above is not vacuous.
    assert after[t + 1] != before[t + 1] or t + 1 >= len(before)


def test_features_at_depends_only_on_the_last_lookback_candles() -> None:
    candles = eth()
    lookback = DEFAULT_FEATURES.lookback
    table = feature_table(DEFAULT_FEATURES, candles)
    for t in (lookback - 1, 700, 3000, len(candles) - 1):
        exact = candles[t + 1 - lookback : t + 1]
        assert features_at(DEFAULT_FEATURES, candles[: t + 1]) == table[t]
        assert features_at(DEFAULT_FEATURES, exact) == table[t]
        assert features_at(DEFAULT_FEATURES, exact[1:]) is None


def test_feature_table_rows_before_lookback_none_after_finite() -> None:
    for path, symbol in ((ETH, "ETH/BTC"), ("data/ADA-BTC_5m.csv", "ADA/BTC")):
        candles = read_candles_csv(path, symbol, "5m")
        table = feature_table(DEFAULT_FEATURES, candles)
        lookback = DEFAULT_FEATURES.lookback
        assert all(row is None for row in table[: lookback - 1])
        for row in table[lookback - 1 :]:
            assert row is not None
            assert len(row) == len(DEFAULT_FEATURES.names)
            assert all(math.isfinite(v) for v in row)


def test_features_at_values_match_their_definitions() -> None:
    candles = eth()[:200]
    t = 150
    row = features_at(DEFAULT_FEATURES, candles[: t + 1])
    assert row is not None
    got = dict(zip(DEFAULT_FEATURES.names, row, strict=True))
    closes = [c.close for c in candles[: t + 1]]
    c = candles[t]
    assert got["ret_6"] == pytest.approx(closes[-1] / closes[-7] - 1, rel=1e-12)
    assert got["sma_ratio_30"] == pytest.approx(closes[-1] / (sum(closes[-30:]) / 30) - 1)
    moves = [b - a for a, b in zip(closes[-15:-1], closes[-14:], strict=True)]
    gain = sum(m for m in moves if m > 0)
    loss = -sum(m for m in moves if m < 0)
    assert got["rsi_14"] == pytest.approx(gain / (gain + loss))
    window = candles[t - 23 : t + 1]
    high, low = max(x.high for x in window), min(x.low for x in window)
    assert got["range_pos_24"] == pytest.approx((c.close - low) / (high - low))
    assert got["body"] == pytest.approx((c.close - c.open) / (c.high - c.low))


def test_feature_spec_lookback_covers_every_window() -> None:
    spec = FeatureSpec(returns=(1, 60), sma=(5,), volatility=(3,), rsi=(2,), atr=(2,))
    assert spec.lookback == 61
    assert len(spec.names) == len(features_at(spec, eth()[:61]) or ())


def test_feature_spec_repeated_or_too_short_windows_refused() -> None:
    with pytest.raises(ValueError, match="repeat"):
        FeatureSpec(sma=(10, 10))
    with pytest.raises(ValueError, match="at least 2"):
        FeatureSpec(volatility=(1,))
    with pytest.raises(ValueError, match="extra"):
        FeatureSpec.model_validate({"macd": [12]})


def test_feature_manifest_round_trips_through_json_and_verifies() -> None:
    spec = FeatureSpec(returns=(1, 4), sma=(7,), candle_shape=False)
    stored = FeatureManifest.of(spec).model_dump_json()
    assert FeatureManifest.model_validate_json(stored).verify() == spec


def _edited(manifest: FeatureManifest, **changes: object) -> FeatureManifest:
    return FeatureManifest.model_validate({**manifest.model_dump(), **changes})


def test_feature_manifest_from_another_version_refused() -> None:
    m = FeatureManifest.of(DEFAULT_FEATURES)
    spec = {**m.spec, "version": FEATURES_VERSION + 1}
    with pytest.raises(FeatureSpecMismatch, match="version"):
        _edited(m, spec=spec).verify()


def test_feature_manifest_spec_edited_without_its_hash_refused() -> None:
    m = FeatureManifest.of(DEFAULT_FEATURES)
    with pytest.raises(FeatureSpecMismatch, match="SHA-256"):
        _edited(m, spec={**m.spec, "sma": [10, 50]}).verify()


def test_feature_manifest_names_code_no_longer_produces_refused() -> None:
    m = FeatureManifest.of(DEFAULT_FEATURES)
    names = ("ret_1_old", *m.names[1:])
    forged = FeatureManifest.of(DEFAULT_FEATURES).model_copy(
        update={"names": names, "sha256": _rehash(m.spec, names)}
    )
    with pytest.raises(FeatureSpecMismatch, match="expects features"):
        forged.verify()


def test_feature_manifest_values_code_no_longer_computes_refused() -> None:
    # What a changed feature formula looks like to a stored model: same spec and
    # names, different numbers on the fixed probe series.
    m = FeatureManifest.of(DEFAULT_FEATURES)
    drifted = (m.fingerprint[0] * 1.001, *m.fingerprint[1:])
    with pytest.raises(FeatureSpecMismatch, match="different feature values"):
        _edited(m, fingerprint=drifted).verify()


def test_feature_fingerprint_is_reproducible() -> None:
    assert feature_fingerprint(DEFAULT_FEATURES) == feature_fingerprint(FeatureSpec())
    assert len(feature_fingerprint(DEFAULT_FEATURES)) == 8 * len(DEFAULT_FEATURES.names)


def _rehash(spec: dict[str, object], names: tuple[str, ...]) -> str:
    canonical = json.dumps(
        {"spec": spec, "names": list(names)}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
