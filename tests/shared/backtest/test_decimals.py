"""The compiled decimals are Python's `Decimal`, digit for digit and exponent for
exponent, and `shortest` is `Decimal(repr(x))`.

Every operation runs against `decimal` in the default context on generated operands:
up to 36 digits, exponents far apart (the sticky-digit path of addition), zeros of
both signs, exact and inexact quotients, ties of every rounding.
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.backtest import decimals as dec

PROPERTY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def decimals(draw: st.DrawFn, max_digits: int = 36) -> Decimal:
    digits = draw(st.integers(0, max_digits))
    if digits == 0:
        coefficient = 0
    else:
        coefficient = draw(
            st.one_of(
                st.integers(10 ** (digits - 1), 10**digits - 1),
                # Round numbers and halves: the ties and the carries of rounding.
                st.sampled_from([10 ** (digits - 1), 5 * 10 ** (digits - 1), 10**digits - 1]),
            )
        )
    exponent = draw(st.one_of(st.integers(-30, 10), st.integers(-200, 200)))
    negative = draw(st.booleans())
    return Decimal((int(negative), tuple(map(int, str(coefficient))), exponent))


def same(got: dec.Dec, want: Decimal) -> None:
    assert dec.to_decimal(got).as_tuple() == want.as_tuple(), (dec.to_text(got), want)


@PROPERTY
@given(decimals(), decimals())
def test_add_sub_mul_are_decimals(a: Decimal, b: Decimal) -> None:
    w = dec.scratch()
    x, y = dec.from_decimal(a), dec.from_decimal(b)
    same(dec.add(w, x, y), a + b)
    same(dec.sub(w, x, y), a - b)
    same(dec.mul(w, x, y), a * b)
    assert dec.compare(w, x, y) == (a > b) - (a < b)


@PROPERTY
@given(decimals(), decimals().filter(bool))
def test_div_is_decimal_half_even_and_floor(a: Decimal, b: Decimal) -> None:
    w = dec.scratch()
    x, y = dec.from_decimal(a), dec.from_decimal(b)
    same(dec.div(w, x, y, dec.HALF_EVEN), a / b)
    with localcontext() as ctx:
        ctx.rounding = ROUND_FLOOR
        want = a / b
    same(dec.div(w, x, y, dec.FLOOR), want)


@PROPERTY
@given(decimals(30), st.integers(-14, 4))
def test_quantize_and_to_integral_are_decimal(a: Decimal, exponent: int) -> None:
    w = dec.scratch()
    x = dec.from_decimal(a)
    try:
        want = a.quantize(Decimal(1).scaleb(exponent), ROUND_HALF_EVEN)
    except InvalidOperation:  # more digits than the precision: the compiled one refuses
        with pytest.raises(OverflowError):
            dec.quantize(w, x, exponent)
    else:
        same(dec.quantize(w, x, exponent), want)
    same(dec.to_integral(w, x, dec.FLOOR), a.to_integral_value(rounding=ROUND_FLOOR))
    same(dec.to_integral(w, x, dec.HALF_EVEN), a.to_integral_value(rounding=ROUND_HALF_EVEN))


def test_exact_quotients_take_the_ideal_exponent() -> None:
    w = dec.scratch()
    pairs = [("1.000", "4"), ("100", "0.01"), ("0E-8", "7"), ("-6", "0.3"), ("1", "3")]
    powers = [("123.4500", "100"), ("5", "1E-8"), ("1000", "10"), ("7E+3", "1E+2"), ("1E9", "1E8")]
    for a, b in pairs + powers:
        same(
            dec.div(w, dec.from_decimal(Decimal(a)), dec.from_decimal(Decimal(b)), 0),
            (Decimal(a) / Decimal(b)),
        )


def test_values_that_do_not_fit_refuse() -> None:
    with pytest.raises(OverflowError):
        dec.from_decimal(Decimal("1" * 37))
    w = dec.scratch()
    with pytest.raises(ZeroDivisionError):
        dec.div(w, dec.ONE, dec.ZERO, dec.HALF_EVEN)


@PROPERTY
@given(decimals(28))
def test_write_reads_back_the_same_decimal(a: Decimal) -> None:
    out = np.zeros(64, np.uint8)
    end = dec.write(dec.from_decimal(a), out, 0)
    text = out[:end].tobytes().decode()
    assert text.endswith(" ")
    assert Decimal(text.strip()).as_tuple() == a.as_tuple()


# --------------------------------------------------------------------------- repr


def _check_written(values: list[float]) -> None:
    array = np.array(values, dtype=np.float64)
    got = dec.as_written(array)
    for x, (coefficient, exponent) in zip(values, got.tolist(), strict=True):
        sign, digits, want_exponent = Decimal(repr(x)).as_tuple()
        assert (coefficient, exponent) == (int("".join(map(str, digits))), want_exponent), x


def test_shortest_is_repr_on_prices() -> None:
    rng = np.random.default_rng(7)
    walk = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 100_000)))
    spread = np.exp(rng.uniform(math.log(1e-5), math.log(9e15), 100_000))
    written = [
        round(float(v), int(d))
        for v, d in zip(rng.uniform(0.001, 1000, 50_000), rng.integers(0, 9, 50_000), strict=True)
    ]
    _check_written([*walk.tolist(), *spread.tolist(), *written])


def test_shortest_is_repr_at_the_edges() -> None:
    powers = [2.0**i for i in range(-17, 54)] + [10.0**i for i in range(-5, 17)]
    near = [math.nextafter(p, d) for p in powers for d in (0.0, math.inf)]
    ties = [1216531583886392.8, 198531183114942.12, 0.5, 0.125, 123.0, 1e15, 1e16]
    odd = [1e-5, 0.0001, 5e-5, 9007199254740991.0, 9007199254740992.0, 1e300, 1e-300, 0.0]
    values = [v for v in powers + near + ties + odd if v >= 0]
    _check_written(values)


@PROPERTY
@given(st.floats(min_value=0, max_value=1e20, allow_nan=False, allow_infinity=False))
def test_shortest_is_repr_on_any_float(x: float) -> None:
    _check_written([x])


def test_shortest_is_repr_on_random_bits() -> None:
    rng = random.Random(3)
    low, high = 0x3EE0000000000000, 0x4340000000000000  # about 1e-5 .. 2**53
    bits = np.array([rng.randrange(low, high) for _ in range(100_000)], dtype=np.int64)
    _check_written(bits.view(np.float64).tolist())


@PROPERTY
@given(decimals(28))
def test_exact_float_is_float_of_the_decimal_or_says_it_cannot(a: Decimal) -> None:
    got = dec.exact_float(dec.scratch(), dec.from_decimal(a))
    if math.isnan(got):  # out of its range: Python converts
        assert not 1e-30 < abs(a) < 2**54
    else:
        assert got == float(a) and math.copysign(1, got) == math.copysign(1, float(a))


def test_exact_float_rounds_ties_to_even() -> None:
    w = dec.scratch()
    for text in ["9007199254740993", "9007199254740995", "0.1", "2.5E-20", "123456789.987654321"]:
        for value in (Decimal(text), -Decimal(text)):
            assert dec.exact_float(w, dec.from_decimal(value)) == float(value)
