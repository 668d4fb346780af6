"""The one feature builder of the ML strategy, used by training and by inference alike.

The seed project trained on one feature set and predicted on another. Here there is
a single function, `features_at(spec, candles)`: the features of the LAST candle of
`candles`, computed from the last `spec.lookback` candles and nothing else. Training
calls it once per candle over the window ending at that candle (`feature_table`); the
strategy calls it over `ctx.candles`. Same inputs, same code, same floats.

Because a row depends only on a bounded window, there is no recursive state (no
EMA, no Wilder RSI) whose value would depend on how much history happened to be
loaded: the RSI here is the simple-average (Cutler) variant. Sums use `math.fsum`,
which is exactly rounded, so the result does not depend on summation order either.

A trained model stores a `FeatureManifest`: the spec (parameters and
`FEATURES_VERSION`), the column names, a SHA-256 over both, and a fingerprint (the
features of a fixed synthetic series). `FeatureManifest.verify()` refuses a model
whose spec this code no longer accepts, whose names it no longer produces, or whose
fingerprint it no longer reproduces; so a change to the feature code cannot be
silently paired with a model trained on the old features. Bump `FEATURES_VERSION`
whenever the meaning of a feature changes (the fingerprint catches a forgotten bump).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.market.candles import Candle

FEATURES_VERSION = 1
MAX_WINDOW = 500

Window = Annotated[int, Field(ge=1, le=MAX_WINDOW)]
Windows = tuple[Window, ...]


class FeatureSpec(BaseModel):
    """Which features to build. Every feature is scale-free (ratios, not prices), so a
    model can be applied to a market with other price levels.

    Attributes:
        returns: `ret_k`, the return over the last k bars: close / close k bars ago - 1.
        sma: `sma_ratio_n`, close / SMA(n) of closes - 1.
        volatility: `volatility_n`, sample standard deviation of the last n 1-bar returns.
        rsi: `rsi_n`, simple-average RSI over the last n changes, scaled to 0..1
            (0.5 when the closes did not move).
        atr: `atr_ratio_n`, mean true range over the last n bars / close.
        range_position: `range_pos_n`, where the close sits in the high-low range of the
            last n bars, 0..1 (0.5 for a flat range).
        volume: `volume_ratio_n`, volume / mean volume of the last n bars - 1.
        candle_shape: `body`, `upper_wick`, `lower_wick` of the last bar as fractions of
            its high-low range (0 for a flat bar).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = FEATURES_VERSION
    returns: Windows = (1, 2, 3, 6, 12)
    sma: Windows = (10, 30)
    volatility: Windows = (12, 48)
    rsi: Windows = (14,)
    atr: Windows = (14,)
    range_position: Windows = (24,)
    volume: Windows = (24,)
    candle_shape: bool = True

    @field_validator("returns", "sma", "volatility", "rsi", "atr", "range_position", "volume")
    @classmethod
    def _distinct(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(windows)) != len(windows):
            raise ValueError(f"windows {list(windows)} repeat a length; list each once")
        return windows

    @field_validator("volatility")
    @classmethod
    def _two_returns(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if any(n < 2 for n in windows):
            raise ValueError("a volatility window needs at least 2 returns")
        return windows

    @property
    def names(self) -> tuple[str, ...]:
        """Column names, in the order `features_at` returns the values."""
        names = [f"ret_{k}" for k in self.returns]
        names += [f"sma_ratio_{n}" for n in self.sma]
        names += [f"volatility_{n}" for n in self.volatility]
        names += [f"rsi_{n}" for n in self.rsi]
        names += [f"atr_ratio_{n}" for n in self.atr]
        names += [f"range_pos_{n}" for n in self.range_position]
        names += [f"volume_ratio_{n}" for n in self.volume]
        if self.candle_shape:
            names += ["body", "upper_wick", "lower_wick"]
        return tuple(names)

    @property
    def lookback(self) -> int:
        """Candles `features_at` needs, the last one included."""
        needs = [1, *self.sma, *self.range_position, *self.volume]
        # A k-bar return, and n changes or true ranges, need one close before them.
        needs += [k + 1 for k in (*self.returns, *self.volatility, *self.rsi, *self.atr)]
        return max(needs)


DEFAULT_FEATURES = FeatureSpec()


def _change(now: float, before: float) -> float:
    # Prices of zero exist only in broken data; a defined 0 keeps the row finite.
    return now / before - 1.0 if before != 0 else 0.0


def _share(part: float, whole: float, default: float) -> float:
    return part / whole if whole != 0 else default


def features_at(spec: FeatureSpec, candles: Sequence[Candle]) -> tuple[float, ...] | None:
    """The features of the last candle of `candles` (oldest first), from its last
    `spec.lookback` candles only; None when there are fewer than that."""
    lookback = spec.lookback
    if len(candles) < lookback:
        return None
    window = candles[len(candles) - lookback :]
    closes = [c.close for c in window]
    last = window[-1]
    close = last.close
    row: list[float] = [_change(close, closes[-1 - k]) for k in spec.returns]
    row += [_change(close, math.fsum(closes[-n:]) / n) for n in spec.sma]
    for n in spec.volatility:
        rets = [_change(closes[i], closes[i - 1]) for i in range(len(closes) - n, len(closes))]
        mean = math.fsum(rets) / n
        row.append(math.sqrt(math.fsum((r - mean) ** 2 for r in rets) / (n - 1)))
    for n in spec.rsi:
        moves = [closes[i] - closes[i - 1] for i in range(len(closes) - n, len(closes))]
        gain = math.fsum(m for m in moves if m > 0)
        loss = -math.fsum(m for m in moves if m < 0)
        row.append(_share(gain, gain + loss, 0.5))
    for n in spec.atr:
        ranges = [
            max(window[i].high, window[i - 1].close) - min(window[i].low, window[i - 1].close)
            for i in range(len(window) - n, len(window))
        ]
        row.append(_share(math.fsum(ranges) / n, close, 0.0))
    for n in spec.range_position:
        high = max(c.high for c in window[-n:])
        low = min(c.low for c in window[-n:])
        row.append(_share(close - low, high - low, 0.5))
    for n in spec.volume:
        mean_volume = math.fsum(c.volume for c in window[-n:]) / n
        row.append(_share(last.volume, mean_volume, 1.0) - 1.0)
    if spec.candle_shape:
        span = last.high - last.low
        row.append(_share(close - last.open, span, 0.0))
        row.append(_share(last.high - max(last.open, close), span, 0.0))
        row.append(_share(min(last.open, close) - last.low, span, 0.0))
    return tuple(row)


def feature_table(spec: FeatureSpec, candles: Sequence[Candle]) -> list[tuple[float, ...] | None]:
    """`features_at` for every candle: row t is computed from the window ending at t,
    so it cannot see candles after t. Rows before the lookback is filled are None."""
    lookback = spec.lookback
    return [
        features_at(spec, candles[max(0, t + 1 - lookback) : t + 1]) for t in range(len(candles))
    ]


# --------------------------------------------------------------------------- manifest

_PROBE_ROWS = 8


def _probe_candles(count: int) -> list[Candle]:
    """A fixed synthetic series: the same candles in every process, on every machine."""
    start = datetime(2020, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        base = 100.0 * (1.0 + 0.03 * math.sin(i * 0.37) + 0.002 * i)
        close = base * (1.0 + 0.004 * math.cos(i * 1.3))
        high = max(base, close) * (1.0 + 0.002 + 0.001 * math.sin(i * 0.9) ** 2)
        low = min(base, close) * (1.0 - 0.002 - 0.001 * math.cos(i * 0.7) ** 2)
        volume = 1000.0 + 400.0 * math.sin(i * 0.21) + 5.0 * i
        out.append(
            Candle(
                "PROBE/X", "5m", start + timedelta(minutes=5 * i), base, high, low, close, volume
            )
        )
    return out


def feature_fingerprint(spec: FeatureSpec) -> list[float]:
    """The features of the last rows of a fixed synthetic series: what this code computes
    for `spec`, to compare with what it computed when a model was trained."""
    candles = _probe_candles(spec.lookback + _PROBE_ROWS - 1)
    rows = feature_table(spec, candles)[-_PROBE_ROWS:]
    return [value for row in rows if row is not None for value in row]


def _spec_hash(spec: dict[str, Any], names: Sequence[str]) -> str:
    canonical = json.dumps(
        {"spec": spec, "names": list(names)}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class FeatureSpecMismatch(ValueError):
    """A model's features are not the ones this code builds: retrain it."""


class FeatureManifest(BaseModel):
    """What a model was trained on, stored beside it; see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: dict[str, Any]
    names: tuple[str, ...]
    sha256: str
    fingerprint: tuple[float, ...]

    @classmethod
    def of(cls, spec: FeatureSpec) -> FeatureManifest:
        dumped = spec.model_dump(mode="json")
        return cls(
            spec=dumped,
            names=spec.names,
            sha256=_spec_hash(dumped, spec.names),
            fingerprint=tuple(feature_fingerprint(spec)),
        )

    def verify(self) -> FeatureSpec:
        """The spec, if this code still builds exactly these features.

        Raises:
            FeatureSpecMismatch: the version, parameters, names, hash or fingerprint
                differ from what this code produces; the message says which.
        """
        retrain = "retrain the model with `ats ml train`"
        version = self.spec.get("version")
        if version != FEATURES_VERSION:
            raise FeatureSpecMismatch(
                f"the model was trained on features version {version}, this code builds "
                f"version {FEATURES_VERSION}: {retrain}"
            )
        if _spec_hash(self.spec, self.names) != self.sha256:
            raise FeatureSpecMismatch(
                f"the feature spec does not match its SHA-256 (edited by hand?): {retrain}"
            )
        try:
            spec = FeatureSpec.model_validate(self.spec)
        except ValueError as e:
            raise FeatureSpecMismatch(f"this code no longer accepts the feature spec: {e}") from e
        if spec.names != self.names:
            raise FeatureSpecMismatch(
                f"the model expects features {list(self.names)}, this code builds "
                f"{list(spec.names)} from the same spec: {retrain}"
            )
        now = feature_fingerprint(spec)
        if len(now) != len(self.fingerprint) or not all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
            for a, b in zip(now, self.fingerprint, strict=True)
        ):
            raise FeatureSpecMismatch(
                "this code computes different feature values than the code the model was "
                f"trained with (was FEATURES_VERSION bumped?): {retrain}"
            )
        return spec
