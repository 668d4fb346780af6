"""Signals computed independently of the trigger code: pandas-ta over the whole
history and vectorised crossings, as a reviewer would check them by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas_ta as ta

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> pd.DataFrame:
    df = pd.read_csv(ROOT / "data" / name)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df.set_index("timestamp")


def _above(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a.shift(1) <= b.shift(1)) & (a > b)


def _below(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a.shift(1) >= b.shift(1)) & (a < b)


def _events(up: pd.Series, down: pd.Series, up_rule: str, down_rule: str) -> set[tuple[str, str]]:
    # As the wire carries them: ISO 8601 UTC with Z.
    out = {(t.strftime("%Y-%m-%dT%H:%M:%SZ"), up_rule) for t in up[up.fillna(False)].index}
    out |= {(t.strftime("%Y-%m-%dT%H:%M:%SZ"), down_rule) for t in down[down.fillna(False)].index}
    return out


def rsi_threshold(df: pd.DataFrame, length: int = 14, lower: float = 30, upper: float = 70):
    r = ta.rsi(df["close"], length=length)
    lo = pd.Series(lower, index=df.index)
    hi = pd.Series(upper, index=df.index)
    return _events(_below(r, lo), _above(r, hi), "rsi_below_lower", "rsi_above_upper")


def ma_cross(df: pd.DataFrame, fast: int = 10, slow: int = 30, ma: str = "sma"):
    fn = ta.sma if ma == "sma" else ta.ema
    f, s = fn(df["close"], length=fast), fn(df["close"], length=slow)
    return _events(_above(f, s), _below(f, s), "ma_cross_up", "ma_cross_down")


def macd_cross(df: pd.DataFrame, fast: int = 12, slow: int = 26, signal: int = 9):
    m = ta.macd(df["close"], fast=fast, slow=slow, signal=signal)
    line, sig = m.iloc[:, 0], m.iloc[:, 2]
    return _events(_above(line, sig), _below(line, sig), "macd_cross_up", "macd_cross_down")


def breakout(df: pd.DataFrame, length: int = 20):
    high = df["high"].rolling(length).max().shift(1)
    low = df["low"].rolling(length).min().shift(1)
    return _events(df["close"] > high, df["close"] < low, "breakout_up", "breakout_down")


def price_level(df: pd.DataFrame, level: float):
    lv = pd.Series(level, index=df.index)
    return _events(_above(df["close"], lv), _below(df["close"], lv), "price_above", "price_below")
