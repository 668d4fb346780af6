"""Python's `Decimal` arithmetic in compiled code: what the compiled mode's books need.

The compiled mode (`shared.backtest.fast`) keeps the event engine's books exactly:
every price read as its shortest repr, every product, sum and quotient rounded to the
default context's 28 digits, half-even (division toward minus infinity where the
kernel's `div_down` does). numba has neither `Decimal` nor 128-bit integers, so this
module does that arithmetic on integers it can hold:

* **A decimal** is a tuple `(negative, exponent, c0, c1, c2, c3)`: the coefficient
  `c0 + c1 B + c2 B^2 + c3 B^3` in base `B` = 10^9, up to 36 digits. Every rounded
  result has at most 28; the inputs (capital, rates, limits) may have up to 36.
* **Working numbers** are rows of ten such limbs in a scratch array (81 digits and a
  limb for carries), enough for the exact product of two 36-digit coefficients and
  the scaled dividend of a 28-digit quotient, so nothing is allocated per operation.
* Each operation computes the exact result and rounds it once, as the General Decimal
  Arithmetic specification (which `decimal` implements) defines: the same value and
  the same exponent (so the same string), including the exponent of an exact quotient
  and of a zero, and the sign of a zero sum. The code follows `_pydecimal`'s
  `__add__`, `__mul__`, `__truediv__`, `quantize`, `to_integral_value` and `_fix`.
* **Prices as written**: `shortest` gives `Decimal(repr(x))` of a float: the shortest
  decimal that reads back as `x` and, of those, the nearest (what CPython's repr
  prints), from exact 128-bit integer bounds, for 1e-5 <= x < 2**53; anything else,
  and the rare exact tie, is left to Python's repr.

Where a value would not fit (a coefficient over 81 digits mid-operation, an exponent
past +-100,000), the operation raises OverflowError: the caller then books in Python's
`Decimal` instead. tests/shared/backtest/test_decimals.py holds every operation
against `decimal` on random and edge-case operands.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, getcontext
from typing import Any, cast

import numba  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

Dec = tuple[int, int, int, int, int, int]
Ints = npt.NDArray[np.int64]

BASE = 1_000_000_000
LIMBS = 10  # per scratch row
CAPACITY = 81  # digits a scratch row may hold: nine limbs, the tenth takes carries
PRECISION = 28  # the default context's
HALF_EVEN, FLOOR = 0, 1
EXPONENT_LIMIT = 100_000
ROWS = 6  # scratch rows an operation uses

_P10 = np.array([10**i for i in range(19)], dtype=np.int64)

ZERO: Dec = (0, 0, 0, 0, 0, 0)
ONE: Dec = (0, 0, 1, 0, 0, 0)
HUNDRED: Dec = (0, 0, 100, 0, 0, 0)


def scratch() -> Ints:
    """The working rows every operation takes as its first argument."""
    return np.zeros((ROWS, LIMBS), np.int64)


def context_is_default() -> bool:
    """Whether the current `decimal` context rounds as this module does."""
    ctx = getcontext()
    return (
        ctx.prec == PRECISION
        and ctx.rounding == "ROUND_HALF_EVEN"
        and ctx.Emax >= EXPONENT_LIMIT
        and ctx.Emin <= -EXPONENT_LIMIT
        and ctx.clamp == 0
    )


def from_decimal(value: Decimal) -> Dec:
    """The tuple of a finite `Decimal` of up to 36 digits; OverflowError otherwise."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or len(digits) > 36 or abs(exponent) > EXPONENT_LIMIT:
        raise OverflowError(f"{value} does not fit the compiled books")
    coefficient = int("".join(map(str, digits)) or "0")
    limbs = [(coefficient // BASE**i) % BASE for i in range(4)]
    return (sign, exponent, limbs[0], limbs[1], limbs[2], limbs[3])


def to_decimal(value: Dec) -> Decimal:
    """The `Decimal` a tuple stands for, as written (its exponent kept)."""
    return Decimal(to_text(value))


def to_text(value: Dec) -> str:
    coefficient = value[2] + BASE * (value[3] + BASE * (value[4] + BASE * value[5]))
    return f"{'-' if value[0] else ''}{coefficient}E{value[1]}"


# --------------------------------------------------------------------------- limbs


def _top(x: Ints) -> int:
    """The index of the highest non-zero limb; -1 for zero."""
    i = LIMBS - 1
    while i >= 0 and x[i] == 0:
        i -= 1
    return i


def _width(v: int) -> int:
    """Decimal digits of 0 < v < 10**18."""
    n = 1
    while n < 18 and v >= _P10[n]:
        n += 1
    return n


def _ndigits(x: Ints) -> int:
    i = _top(x)
    return 0 if i < 0 else 9 * i + _width(x[i])


def _split(v: int, r: int) -> tuple[int, int]:
    """(v // 10**r, v % 10**r) for 0 <= r <= 9, by constants (multiplications, where a
    variable divisor would take a division instruction)."""
    if r == 0:
        return v, 0
    if r == 1:
        return v // 10, v % 10
    if r == 2:
        return v // 100, v % 100
    if r == 3:
        return v // 1_000, v % 1_000
    if r == 4:
        return v // 10_000, v % 10_000
    if r == 5:
        return v // 100_000, v % 100_000
    if r == 6:
        return v // 1_000_000, v % 1_000_000
    if r == 7:
        return v // 10_000_000, v % 10_000_000
    if r == 8:
        return v // 100_000_000, v % 100_000_000
    return v // 1_000_000_000, v % 1_000_000_000


def _load(x: Ints, t: Dec) -> None:
    x[0] = t[2]
    x[1] = t[3]
    x[2] = t[4]
    x[3] = t[5]
    for i in range(4, LIMBS):
        x[i] = 0


def _pack(negative: int, exponent: int, x: Ints) -> Dec:
    for i in range(4, LIMBS):
        if x[i] != 0:
            raise OverflowError("a coefficient over 36 digits")
    if exponent > EXPONENT_LIMIT or exponent < -EXPONENT_LIMIT:
        raise OverflowError("an exponent out of the compiled books' range")
    return (negative, exponent, x[0], x[1], x[2], x[3])


def _up(x: Ints, k: int) -> None:
    """x *= 10**k."""
    if k <= 0:
        return
    top = _top(x)
    if top < 0:
        return
    if 9 * top + _width(x[top]) + k > CAPACITY:
        raise OverflowError("a coefficient over 81 digits")
    q, r = k // 9, k % 9
    if q:
        for i in range(top + q, -1, -1):
            x[i] = x[i - q] if i >= q else 0
        top += q
    if r:
        m = _P10[r]
        carry = 0
        for i in range(top + 2):
            v = x[i] * m + carry
            x[i] = v % BASE
            carry = v // BASE


def _down(x: Ints, k: int) -> tuple[int, bool]:
    """x //= 10**k; how the dropped digits compare with half a unit of the last kept
    one (-1 below, 0 exactly, 1 above) and whether they were not all zero."""
    top = _top(x)
    if k <= 0 or top < 0:
        return -1, False
    p = k - 1
    li, di = p // 9, p % 9
    first = 0
    rest = False
    if li <= top:
        above, below = _split(x[li], di)
        first = above % 10
        rest = below != 0
        for i in range(li):
            if x[i] != 0:
                rest = True
                break
    else:
        rest = True
    q, r = k // 9, k % 9
    kept = top - q  # the highest limb left
    for i in range(kept + 1):
        x[i] = x[i + q]
    for i in range(max(kept + 1, 0), top + 1):
        x[i] = 0
    if r:
        h = _P10[9 - r]
        for i in range(kept + 1):
            low, _ = _split(x[i], r)
            _, high = _split(x[i + 1] if i + 1 < LIMBS else 0, r)
            x[i] = low + high * h
    half = 1 if first > 5 or (first == 5 and rest) else (0 if first == 5 else -1)
    return half, first != 0 or rest


def _trailing_zeros(x: Ints) -> int:
    """How many decimal zeros end a non-zero x."""
    n = 0
    i = 0
    while x[i] == 0:
        n += 9
        i += 1
    v = x[i]
    while v % 10 == 0:
        v //= 10
        n += 1
    return n


def _inc(x: Ints) -> None:
    i = 0
    while i < LIMBS:
        x[i] += 1
        if x[i] < BASE:
            return
        x[i] = 0
        i += 1
    raise OverflowError("a coefficient over 90 digits")


def _cmp(x: Ints, y: Ints) -> int:
    for i in range(max(_top(x), _top(y)), -1, -1):
        if x[i] != y[i]:
            return 1 if x[i] > y[i] else -1
    return 0


def _add(x: Ints, y: Ints, out: Ints) -> None:
    carry = 0
    n = max(_top(x), _top(y)) + 1
    for i in range(n):
        v = x[i] + y[i] + carry
        if v >= BASE:
            out[i] = v - BASE
            carry = 1
        else:
            out[i] = v
            carry = 0
    for i in range(n, LIMBS):
        out[i] = 0
    if carry:
        if n >= LIMBS:
            raise OverflowError("a coefficient over 90 digits")
        out[n] = 1


def _sub(x: Ints, y: Ints, out: Ints) -> None:
    """out = x - y, for x >= y (out may be x)."""
    borrow = 0
    n = _top(x) + 1
    for i in range(n):
        v = x[i] - y[i] - borrow
        if v < 0:
            out[i] = v + BASE
            borrow = 1
        else:
            out[i] = v
            borrow = 0
    for i in range(n, LIMBS):
        out[i] = 0


def _mul(x: Ints, y: Ints, out: Ints) -> None:
    tx, ty = _top(x), _top(y)
    for i in range(LIMBS):
        out[i] = 0
    if tx < 0 or ty < 0:
        return
    if 9 * (tx + ty) + _width(x[tx]) + _width(y[ty]) > CAPACITY:
        raise OverflowError("a product over 81 digits")
    for i in range(tx + 1):
        xi = x[i]
        if xi == 0:
            continue
        carry = 0
        for j in range(ty + 1):
            v = out[i + j] + xi * y[j] + carry
            out[i + j] = v % BASE
            carry = v // BASE
        out[i + ty + 1] = carry


def _cmp_shifted(x: Ints, y: Ints, j: int, n: int) -> int:
    """x against y * BASE**j, both below BASE**n."""
    for i in range(n - 1, -1, -1):
        yi = y[i - j] if i >= j else 0
        if x[i] != yi:
            return 1 if x[i] > yi else -1
    return 0


def _sub_shifted(x: Ints, y: Ints, j: int, n: int) -> None:
    """x -= y * BASE**j, for x >= it, both below BASE**n."""
    borrow = 0
    for i in range(j, n):
        v = x[i] - y[i - j] - borrow
        if v < 0:
            x[i] = v + BASE
            borrow = 1
        else:
            x[i] = v
            borrow = 0


def _short_divmod(x: Ints, d: int, q: Ints, nx: int) -> bool:
    """`_divmod` by a one-limb divisor `d`."""
    rest = 0
    for i in range(nx, -1, -1):
        v = rest * BASE + x[i]
        q[i] = v // d
        rest = v % d
        x[i] = 0
    x[0] = rest
    return rest != 0


def _subtract_multiple(x: Ints, y: Ints, qj: int, j: int, ny: int) -> int:
    """x -= qj * y * BASE**j in one pass; while that went below zero (the estimate
    `qj` was high), add y * BASE**j back. The quotient limb it took."""
    top = ny + j + 1
    carry = 0
    borrow = 0
    for i in range(ny + 1):
        p = y[i] * qj + carry
        carry = p // BASE
        v = x[i + j] - p % BASE - borrow
        if v < 0:
            x[i + j] = v + BASE
            borrow = 1
        else:
            x[i + j] = v
            borrow = 0
    x[top] -= carry + borrow  # the limb above y's top: may go negative
    while x[top] < 0:
        qj -= 1
        carry = 0
        for i in range(ny + 1):
            v = x[i + j] + y[i] + carry
            if v >= BASE:
                x[i + j] = v - BASE
                carry = 1
            else:
                x[i + j] = v
                carry = 0
        x[top] += carry
    return qj


def _divmod(x: Ints, y: Ints, q: Ints) -> bool:
    """q = x // y and x = x % y (y > 0); whether the remainder is not zero. Long
    division a limb at a time: each quotient limb estimated in floats from the top
    limbs, its multiple of y subtracted in one pass, then corrected exactly."""
    for i in range(LIMBS):
        q[i] = 0
    ny = _top(y)
    nx = _top(x)
    if ny == 0:
        return _short_divmod(x, y[0], q, nx)
    yt = float(y[ny]) + y[ny - 1] / BASE
    if ny >= 2:
        yt += y[ny - 2] / 1e18
    for j in range(nx - ny, -1, -1):
        i0 = ny + j
        xt = float(x[i0 + 1]) * BASE if i0 + 1 < LIMBS else 0.0
        xt += x[i0] + x[i0 - 1] / BASE
        if i0 >= 2:
            xt += x[i0 - 2] / 1e18
        qj = min(max(int(xt / yt), 0), BASE - 1)
        if qj > 0:
            qj = _subtract_multiple(x, y, qj, j, ny)
        n = min(i0 + 2, LIMBS)
        while _cmp_shifted(x, y, j, n) >= 0:  # the estimate was low
            qj += 1
            _sub_shifted(x, y, j, n)
        q[j] = qj
    return _top(x) >= 0


# --------------------------------------------------------------------------- decimals


def is_zero(a: Dec) -> bool:
    return a[2] == 0 and a[3] == 0 and a[4] == 0 and a[5] == 0


def negate(a: Dec) -> Dec:
    return (1 - a[0], a[1], a[2], a[3], a[4], a[5])


def _rounds_up(mode: int, negative: int, half: int, nonzero: bool, last: int) -> bool:
    """Whether dropping digits (`half`, `nonzero`: as `_down` says) rounds the kept
    coefficient (ending in `last`) away from zero."""
    if mode == HALF_EVEN:
        return half > 0 or (half == 0 and last % 2 == 1)
    return negative == 1 and nonzero  # FLOOR


def _fix(negative: int, exponent: int, x: Ints, mode: int) -> Dec:
    """`Decimal._fix`: round to the context's precision."""
    n = _ndigits(x)
    if n > PRECISION:
        d = n - PRECISION
        half, nonzero = _down(x, d)
        exponent += d
        if _rounds_up(mode, negative, half, nonzero, x[0]):
            _inc(x)
            if _ndigits(x) > PRECISION:
                _down(x, 1)
                exponent += 1
    return _pack(negative, exponent, x)


def _small_product(a: Dec, b: Dec) -> Dec:
    """a * b for b of at most two limbs when the product has at most 28 digits (so
    nothing rounds), in scalars; (-1, ...) otherwise."""
    a0, a1, a2, a3, b0, b1 = a[2], a[3], a[4], a[5], b[2], b[3]
    t = a0 * b0
    r0, c = t % BASE, t // BASE
    t = a1 * b0 + a0 * b1 + c
    r1, c = t % BASE, t // BASE
    t = a2 * b0 + a1 * b1 + c
    r2, c = t % BASE, t // BASE
    t = a3 * b0 + a2 * b1 + c
    r3, c = t % BASE, t // BASE
    exponent = a[1] + b[1]
    if c != 0 or a3 * b1 != 0 or r3 >= 10 or abs(exponent) > EXPONENT_LIMIT:
        return (-1, 0, 0, 0, 0, 0)
    return (a[0] ^ b[0], exponent, r0, r1, r2, r3)


def mul(w: Ints, a: Dec, b: Dec) -> Dec:
    """a * b."""
    if b[1] == 0 and b[2] == 1 and b[3] == 0 and b[4] == 0 and b[5] == 0 and a[5] < 10:
        return (a[0] ^ b[0], a[1], a[2], a[3], a[4], a[5])  # times 1: exact, <= 28 digits
    if b[4] == 0 and b[5] == 0:
        small = _small_product(a, b)
        if small[0] >= 0:
            return small
    elif a[4] == 0 and a[5] == 0:
        small = _small_product(b, a)
        if small[0] >= 0:
            return small
    x, y, p = w[0], w[1], w[2]
    _load(x, a)
    _load(y, b)
    _mul(x, y, p)
    return _fix(a[0] ^ b[0], a[1] + b[1], p, HALF_EVEN)


def add(w: Ints, a: Dec, b: Dec) -> Dec:
    """a + b."""
    x, y, s = w[0], w[1], w[2]
    exponent = min(a[1], b[1])
    if is_zero(a) or is_zero(b):
        if is_zero(a) and is_zero(b):
            return (a[0] & b[0], exponent, 0, 0, 0, 0)
        other = b if is_zero(a) else a
        if other[1] <= exponent and other[5] < 10:
            return other  # plus a zero of no finer exponent: itself (<= 28 digits)
        _load(x, other)
        exponent = max(exponent, other[1] - PRECISION - 1)
        _up(x, other[1] - exponent)
        return _fix(other[0], exponent, x, HALF_EVEN)
    big, small = (b, a) if a[1] < b[1] else (a, b)
    _load(x, big)
    _load(y, small)
    # `_normalize`: an operand wholly below the other's last rounded digit counts
    # only as a sticky unit there (the rounding sees the same side of half).
    low = big[1] + min(-1, _ndigits(x) - PRECISION - 2)
    small_exponent = small[1]
    if _ndigits(y) + small_exponent - 1 < low:
        _load(y, ONE)
        small_exponent = low
    _up(x, big[1] - small_exponent)
    if big[0] == small[0]:
        _add(x, y, s)
        return _fix(big[0], small_exponent, s, HALF_EVEN)
    order = _cmp(x, y)
    if order == 0:
        return (0, exponent, 0, 0, 0, 0)
    if order > 0:
        _sub(x, y, s)
        return _fix(big[0], small_exponent, s, HALF_EVEN)
    _sub(y, x, s)
    return _fix(small[0], small_exponent, s, HALF_EVEN)


def sub(w: Ints, a: Dec, b: Dec) -> Dec:
    """a - b."""
    return add(w, a, negate(b))


def compare(w: Ints, a: Dec, b: Dec) -> int:
    """-1, 0 or 1 as a <, == or > b."""
    za, zb = is_zero(a), is_zero(b)
    if za and zb:
        return 0
    if za:
        return 1 if b[0] else -1
    if zb:
        return -1 if a[0] else 1
    if a[0] != b[0]:
        return -1 if a[0] else 1
    x, y = w[0], w[1]
    _load(x, a)
    _load(y, b)
    la, lb = _ndigits(x) + a[1], _ndigits(y) + b[1]
    if la != lb:
        order = 1 if la > lb else -1
    else:
        if a[1] > b[1]:
            _up(x, a[1] - b[1])
        else:
            _up(y, b[1] - a[1])
        order = _cmp(x, y)
    return -order if a[0] else order


def _power_of_ten(c: int) -> int:
    """m where c == 10**m (c < 10**9), else -1."""
    for m in range(9):
        if c == _P10[m]:
            return m
    return -1


def _shifted_quotient(negative: int, a: Dec, ideal: int, m: int) -> Dec:
    """a / 10**m x 10**-ideal for a coefficient of <= 28 digits: exact, so its
    coefficient less up to m trailing zeros, at the exponent nearest `ideal`."""
    c0 = a[2]
    strip = 0
    if c0 == 0:  # nine zeros or more end it (it is not zero): all m go
        strip = m
    else:
        while strip < m and c0 % 10 == 0:
            c0 //= 10
            strip += 1
    if strip == 0:
        return (negative, ideal - m, a[2], a[3], a[4], a[5])
    high = _P10[9 - strip]
    low = _P10[strip]
    l0 = a[2] // low + (a[3] % low) * high
    l1 = a[3] // low + (a[4] % low) * high
    l2 = a[4] // low + (a[5] % low) * high
    l3 = a[5] // low
    return (negative, ideal - m + strip, l0, l1, l2, l3)


def div(w: Ints, a: Dec, b: Dec, mode: int) -> Dec:
    """a / b, rounded half-even or toward minus infinity (FLOOR)."""
    if is_zero(b):
        raise ZeroDivisionError("division by zero in the compiled books")
    negative = a[0] ^ b[0]
    if is_zero(a):
        return (negative, a[1] - b[1], 0, 0, 0, 0)
    if b[3] == 0 and b[4] == 0 and b[5] == 0 and a[5] < 10:
        m = _power_of_ten(b[2])
        if m >= 0:  # by 10**m: exact, the same digits as near the ideal exponent as zeros allow
            return _shifted_quotient(negative, a, a[1] - b[1], m)
    x, y, q = w[0], w[1], w[3]
    _load(x, a)
    _load(y, b)
    shift = _ndigits(y) - _ndigits(x) + PRECISION + 1
    exponent = a[1] - b[1] - shift
    if shift >= 0:
        _up(x, shift)
    else:
        _up(y, -shift)
    if _divmod(x, y, q):
        if q[0] % 5 == 0:
            q[0] += 1  # inexact: the last digit, always dropped, says so
    else:
        # Exact: as near the ideal exponent as trailing zeros allow, in one shift.
        strip = min(_trailing_zeros(q), a[1] - b[1] - exponent)
        if strip > 0:
            _down(q, strip)
            exponent += strip
    return _fix(negative, exponent, q, mode)


def quantize(w: Ints, a: Dec, exponent: int) -> Dec:
    """a.quantize(Decimal(1).scaleb(exponent), ROUND_HALF_EVEN)."""
    x = w[0]
    _load(x, a)
    if a[1] >= exponent:
        _up(x, a[1] - exponent)
    else:
        half, _ = _down(x, exponent - a[1])
        if half > 0 or (half == 0 and x[0] % 2 == 1):
            _inc(x)
    if _ndigits(x) > PRECISION:
        raise OverflowError("quantize: more digits than the precision")
    return _pack(a[0], exponent, x)


def to_integral(w: Ints, a: Dec, mode: int) -> Dec:
    """a.to_integral_value(rounding=ROUND_HALF_EVEN or ROUND_FLOOR)."""
    if a[1] >= 0:
        return a
    x = w[0]
    _load(x, a)
    half, nonzero = _down(x, -a[1])
    if _rounds_up(mode, a[0], half, nonzero, x[0]):
        _inc(x)
    return _pack(a[0], 0, x)


def to_float(a: Dec) -> float:
    """Within a few units in the last place of float(Decimal): for curves, not books."""
    v = ((a[5] * 1e9 + a[4]) * 1e9 + a[3]) * 1e9 + a[2]
    e = a[1]
    if e >= 0:
        v *= 10.0**e
    else:
        v /= 10.0**-e
    return -v if a[0] else v


def _times_power_of_two(x: Ints, k: int) -> None:
    while k > 0:
        step = min(k, 29)
        m = 1 << step
        carry = 0
        for i in range(LIMBS):
            v = x[i] * m + carry
            x[i] = v % BASE
            carry = v // BASE
        k -= step


def _round_bits(q: int, dropped: bool) -> tuple[int, int]:
    """q (of 54 to 62 bits, `dropped`: a non-zero fraction below it) rounded to 53
    bits, half-even: (the 53 bits, how many were dropped); (0, -1) under 54 bits."""
    bits = 0
    while bits < 63 and (q >> bits) != 0:
        bits += 1
    if bits < 54:
        return 0, -1
    drop = bits - 53
    mantissa = q >> drop
    guard = (q >> (drop - 1)) & 1
    below = dropped or (q & ((1 << (drop - 1)) - 1)) != 0
    if guard and (below or mantissa & 1):
        mantissa += 1
    return mantissa, drop


def exact_float(w: Ints, a: Dec) -> float:
    """float(Decimal): the nearest double (ties to even), or NaN where this cannot say
    (magnitudes past 2**55, or below about 1e-35): convert in Python then.

    With k such that V = a x 2**k lies in [2**54, 2**56): q = floor(V), exactly, is
    the coefficient times 2**k with the exponent's digits dropped; its 54-55 bits, the
    bits beyond 53 and whether any dropped digit was non-zero round it once."""
    if is_zero(a):
        return -0.0 if a[0] else 0.0
    _, binary = math.frexp(to_float(a))  # within a few ulps: k may be one off
    k = 55 - binary
    if k < 0 or k > 180:
        return math.nan
    x = w[0]
    _load(x, a)
    if a[1] > 0:
        _up(x, a[1])
    if _ndigits(x) + (k * 3) // 10 + 2 > CAPACITY:
        return math.nan
    _times_power_of_two(x, k)
    _, dropped = _down(x, -a[1]) if a[1] < 0 else (0, False)
    for i in range(3, LIMBS):
        if x[i] != 0:
            return math.nan
    q = x[0] + BASE * (x[1] + BASE * x[2])
    if q >= 1 << 62:
        return math.nan
    mantissa, drop = _round_bits(q, dropped)
    if drop < 0:
        return math.nan
    v = math.ldexp(float(mantissa), drop - k)
    return -v if a[0] else v


def write(a: Dec, out: npt.NDArray[np.uint8], at: int) -> int:
    """Write `a` as `[-]digitsEexponent ` (what `Decimal()` reads back to the same
    value and exponent) at `at`; the position after it."""
    if a[0]:
        out[at] = 45  # -
        at += 1
    top = 3
    while top > 0 and a[2 + top] == 0:
        top -= 1
    for i in range(top, -1, -1):
        v = a[2 + i]
        width = 9
        if i == top:
            width = 1
            while width < 9 and v >= _P10[width]:
                width += 1
        for d in range(width - 1, -1, -1):
            out[at + d] = 48 + v % 10
            v //= 10
        at += width
    out[at] = 69  # E
    at += 1
    e = a[1]
    if e < 0:
        out[at] = 45
        at += 1
        e = -e
    width = 1
    while width < 18 and e >= _P10[width]:
        width += 1
    for d in range(width - 1, -1, -1):
        out[at + d] = 48 + e % 10
        e //= 10
    at += width
    out[at] = 32  # space
    return at + 1


# --------------------------------------------------------------------------- repr

_MASK62 = (1 << 62) - 1
_MASK31 = (1 << 31) - 1
_POW5 = np.array([5**i for i in range(22)], dtype=np.int64)


def _wide(a: int, b: int) -> tuple[int, int]:
    """a * b for 0 <= a < 2**56, 0 <= b < 2**49, as (high, low) in base 2**62."""
    a1, a0 = a >> 31, a & _MASK31
    b1, b0 = b >> 31, b & _MASK31
    middle = a1 * b0 + a0 * b1
    low = a0 * b0 + ((middle & _MASK31) << 31)
    high = a1 * b1 + (middle >> 31) + (low >> 62)
    return high, low & _MASK62


def _shift_right(high: int, low: int, s: int) -> tuple[int, int, bool]:
    """For n = high * 2**62 + low and 1 <= s < 124: (n >> s, bit s - 1 of n, whether
    any bit below that is set); -1 as the quotient when it exceeds 2**62."""
    if s < 62:
        if high >> s != 0:
            return -1, 0, False
        quotient = (low >> s) | ((high << (62 - s)) & _MASK62)
        bit = (low >> (s - 1)) & 1
        sticky = (low & ((1 << (s - 1)) - 1)) != 0 if s > 1 else False
        return quotient, bit, sticky
    t = s - 62
    quotient = high >> t
    if quotient >> 62 != 0:
        return -1, 0, False
    if t == 0:
        bit = (low >> 61) & 1
        sticky = (low & ((1 << 61) - 1)) != 0
    else:
        bit = (high >> (t - 1)) & 1
        sticky = low != 0 or (t > 1 and (high & ((1 << (t - 1)) - 1)) != 0)
    return quotient, bit, sticky


def _bounds(
    lo_q: int, lo_exact: bool, hi_q: int, hi_exact: bool, even: bool, j: int
) -> tuple[int, int]:
    """The least and the greatest multiple of 10**j (in units of 10**j) inside the
    interval (lo_q + a fraction, hi_q + a fraction), its ends in it when `even`; the
    fractions are zero where `..._exact`."""
    p = _P10[j]
    a = lo_q // p
    c_lo = a if (even and lo_exact and lo_q % p == 0) else a + 1
    b = hi_q // p
    c_hi = b - 1 if (not even and hi_exact and hi_q % p == 0) else b
    return c_lo, c_hi


def _inside(lo_q: int, lo_exact: bool, hi_q: int, hi_exact: bool, even: bool, j: int) -> bool:
    c_lo, c_hi = _bounds(lo_q, lo_exact, hi_q, hi_exact, even, j)
    return c_lo <= c_hi


def _interval(x: float, bits: int) -> tuple[int, int, bool, int, bool, int, int, bool]:
    """For 1e-5 <= x < 2**53: t, and the interval of reals that round to x scaled by
    10**t: its ends' integer parts and whether they are exact, x's integer part, the
    first bit of its fraction and whether any other is set. t = -1 out of range."""
    none = (-1, 0, False, 0, False, 0, 0, False)
    if not (x >= 1e-5 and x < 9007199254740992.0):
        return none
    biased = (bits >> 52) & 0x7FF
    m = (bits & 0xFFFFFFFFFFFFF) | 0x10000000000000
    k = int(math.floor(math.log10(x)))
    t = 16 - k
    s = 2 - (biased - 1075) - t
    if t < 0 or t > 21 or s < 1 or s > 120:
        return none
    lower_gap = 1 if (bits & 0xFFFFFFFFFFFFF) == 0 and biased > 1 else 2
    p5 = _POW5[t]
    hi_high, hi_low = _wide(4 * m + 2, p5)
    lo_high, lo_low = _wide(4 * m - lower_gap, p5)
    x_high, x_low = _wide(4 * m, p5)
    hi_q, hi_bit, hi_sticky = _shift_right(hi_high, hi_low, s)
    lo_q, lo_bit, lo_sticky = _shift_right(lo_high, lo_low, s)
    x_q, x_bit, x_sticky = _shift_right(x_high, x_low, s)
    if hi_q < 0 or lo_q < 0 or x_q < 0:
        return none
    lo_exact = lo_bit == 0 and not lo_sticky
    hi_exact = hi_bit == 0 and not hi_sticky
    return t, lo_q, lo_exact, hi_q, hi_exact, x_q, x_bit, x_sticky


def shortest(x: float, bits: int) -> tuple[int, int]:
    """(coefficient, exponent) of `Decimal(repr(x))` for a float 1e-5 <= x < 2**53
    (`bits`: its IEEE 754 bits as an int64),
    or (-1, 0) when this cannot say (out of range, or two shortest decimals equally
    near): ask `repr` then.

    `repr` prints the shortest decimal inside the interval of reals that round to
    `x` (its ends included when x's significand is even), the one nearest `x` if
    several; positional when its point is at -4 < decpt <= 16, with '.0' on a whole
    number. Scaled by 10**t to 17-18 digit integers and by 2**s to integers, the
    interval's ends and `x` are exact 104-bit integers over a power of two."""
    t, lo_q, lo_exact, hi_q, hi_exact, x_q, x_bit, x_sticky = _interval(x, bits)
    even = bits % 2 == 0
    if t < 0:
        return -1, 0
    # The largest j with a multiple of 10**j inside (one at j is one at j - 1 too).
    if not _inside(lo_q, lo_exact, hi_q, hi_exact, even, 0):
        return -1, 0
    low, high = 0, 18
    while low < high:
        middle = (low + high + 1) // 2
        if _inside(lo_q, lo_exact, hi_q, hi_exact, even, middle):
            low = middle
        else:
            high = middle - 1
    j = low
    c_lo, c_hi = _bounds(lo_q, lo_exact, hi_q, hi_exact, even, j)
    return _written(_nearest(x_q, x_bit, x_sticky, c_lo, c_hi, j), j - t)


def _nearest(x_q: int, x_bit: int, x_sticky: bool, c_lo: int, c_hi: int, j: int) -> int:
    """Of the multiples c_lo..c_hi of 10**j, the nearest to x (x_q and the bits of its
    fraction); -1 when two are equally near."""
    p = int(_P10[j])
    near = x_q // p
    twice = 2 * (x_q % p) + x_bit
    if twice > p or (twice == p and x_sticky):
        near += 1
    elif twice == p and c_lo <= near and near + 1 <= c_hi:
        return -1  # two equally near: repr's tie rule decides
    return min(max(near, c_lo), c_hi)


def _written(c: int, exponent: int) -> tuple[int, int]:
    """`Decimal(repr(x))` of x = c * 10**exponent, the shortest: repr writes a whole
    number with ".0" (one more digit), anything else as its digits."""
    if c < 0:
        return -1, 0
    while c % 10 == 0:
        c //= 10
        exponent += 1
    n = _width(c)
    decpt = n + exponent
    if n <= decpt <= 16:  # positional, a whole number: "ddd00.0"
        c *= _P10[decpt - n + 1]
        exponent = -1
    return c, exponent


def _jit(function: Callable[..., Any]) -> Callable[..., Any]:
    return cast(Callable[..., Any], numba.njit(cache=True, nogil=True)(function))


scratch = _jit(scratch)
_top = _jit(_top)
_width = _jit(_width)
_split = _jit(_split)
_ndigits = _jit(_ndigits)
_load = _jit(_load)
_pack = _jit(_pack)
_up = _jit(_up)
_down = _jit(_down)
_trailing_zeros = _jit(_trailing_zeros)
_inc = _jit(_inc)
_cmp = _jit(_cmp)
_add = _jit(_add)
_sub = _jit(_sub)
_mul = _jit(_mul)
_cmp_shifted = _jit(_cmp_shifted)
_sub_shifted = _jit(_sub_shifted)
_short_divmod = _jit(_short_divmod)
_subtract_multiple = _jit(_subtract_multiple)
_divmod = _jit(_divmod)
is_zero = _jit(is_zero)
negate = _jit(negate)
_rounds_up = _jit(_rounds_up)
_fix = _jit(_fix)
_small_product = _jit(_small_product)
_power_of_ten = _jit(_power_of_ten)
_shifted_quotient = _jit(_shifted_quotient)
mul = _jit(mul)
add = _jit(add)
sub = _jit(sub)
compare = _jit(compare)
div = _jit(div)
quantize = _jit(quantize)
to_integral = _jit(to_integral)
to_float = _jit(to_float)
_times_power_of_two = _jit(_times_power_of_two)
_round_bits = _jit(_round_bits)
exact_float = _jit(exact_float)
write = _jit(write)
_wide = _jit(_wide)
_shift_right = _jit(_shift_right)
_bounds = _jit(_bounds)
_inside = _jit(_inside)
_interval = _jit(_interval)
_nearest = _jit(_nearest)
_written = _jit(_written)
shortest = _jit(shortest)


def _shortest_all(values: npt.NDArray[np.float64], bits: Ints, out: Ints) -> None:
    for i in range(len(values)):
        c, e = shortest(values[i], bits[i])
        out[i, 0] = c
        out[i, 1] = e


_shortest_all = _jit(_shortest_all)


def as_written(values: npt.NDArray[np.float64]) -> Ints:
    """Per float, (coefficient, exponent) of `Decimal(repr(x))`: compiled where
    `shortest` can say, by `repr` where it cannot."""
    out = np.empty((len(values), 2), np.int64)
    _shortest_all(values, values.view(np.int64), out)
    for i in np.flatnonzero(out[:, 0] < 0).tolist():
        sign, digits, exponent = Decimal(repr(float(values[i]))).as_tuple()
        if sign or not isinstance(exponent, int) or len(digits) > 18:
            raise OverflowError(f"price {values[i]!r} does not fit the compiled books")
        out[i, 0] = int("".join(map(str, digits)))
        out[i, 1] = exponent
    return out
