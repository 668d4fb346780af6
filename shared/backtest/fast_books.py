"""The compiled mode's books: `fast._trade`'s loop compiled, in exact decimals.

Operation for operation what `shared.backtest.fast._trade` does in `Decimal` (and
so what the kernel's risk engine, fill model and portfolio do), in the compiled
decimals of `shared.backtest.decimals`: the same values, the same exponents. Only
what a result reports becomes a Python object, in bulk: each trade's five Decimals
(read from text the compiled loop writes), its return as a float, and the cash of
each flat stretch of the equity curve (exact); the curve's held stretches use floats
within a few units in the last place, as `fast` documents.

A case it does not model (a value that does not fit, a partial exit) raises
OverflowError: `fast` then books the run in Python's `Decimal` instead.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from itertools import repeat
from pathlib import Path
from typing import Any, cast

import numba  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from shared.backtest import decimals as dec
from shared.backtest.decimals import FLOOR, HALF_EVEN, Dec, Ints
from shared.backtest.result import Lazy, TradeRecord
from shared.kernel.orders import OrderLeg
from shared.kernel.risk import RiskReason

# Rows of the constants array: (set?, the decimal's six ints).
CASH, FEE, BUY_SLIP, SELL_SLIP, UNIT, TICK, GRID = 0, 1, 2, 3, 4, 5, 6
MIN_AMOUNT, MIN_NOTIONAL, MAX_AMOUNT, UNIT_COST_RATE = 7, 8, 9, 10
CONSTANTS = 11

# Refusal codes, counted in `counts`; the rest of `counts` is the run's tallies.
INSUFFICIENT_FUNDS, BELOW_MIN_AMOUNT, BELOW_MIN_NOTIONAL, INSUFFICIENT_CASH = 1, 2, 3, 4
FILLS, TRADES, CHANGES, TEXT, OPENED = 5, 6, 7, 8, 9
REASONS = {
    INSUFFICIENT_FUNDS: "insufficient_funds",
    BELOW_MIN_AMOUNT: RiskReason.BELOW_MIN_AMOUNT.value,
    BELOW_MIN_NOTIONAL: RiskReason.BELOW_MIN_NOTIONAL.value,
    INSUFFICIENT_CASH: RiskReason.INSUFFICIENT_CASH.value,
}
_BASE = dec.BASE
_EXIT = OrderLeg.EXIT.value
_TEXT_PER_VALUE = 48  # sign, 36 digits, "E", a signed exponent of 6, a space


def _row(constants: Ints, r: int) -> Dec:
    return (
        constants[r, 1],
        constants[r, 2],
        constants[r, 3],
        constants[r, 4],
        constants[r, 5],
        constants[r, 6],
    )


def _price(written: Ints, s: int) -> Dec:
    c = written[s, 0]
    return (0, int(written[s, 1]), int(c % _BASE), int(c // _BASE % _BASE), int(c // _BASE**2), 0)


def _round_price(w: Ints, constants: Ints, price: Dec) -> Dec:
    """`risk.sizing.round_price`."""
    if constants[UNIT, 0]:
        unit = _row(constants, UNIT)
        price = dec.quantize(w, price, unit[1])
        if dec.compare(w, unit, price) > 0:  # max(price, unit): the first of equals
            price = unit
    if constants[TICK, 0]:
        tick = _row(constants, TICK)
        ticks = dec.to_integral(w, dec.div(w, price, tick, HALF_EVEN), HALF_EVEN)
        price = dec.mul(w, ticks, tick)
        if dec.compare(w, tick, price) > 0:
            price = tick
    return price


def _fit(w: Ints, constants: Ints, wanted: Dec, price: Dec, short_of_cash: bool) -> tuple[int, Dec]:
    """`risk.sizing._fit`: (0, the quantity on the amount grid) or (refusal, 0)."""
    quantity = wanted
    if constants[GRID, 0]:
        grid = _row(constants, GRID)
        steps = dec.to_integral(w, dec.div(w, wanted, grid, FLOOR), FLOOR)
        quantity = dec.mul(w, steps, grid)
    reason = 0
    if dec.compare(w, quantity, dec.ZERO) <= 0 or (
        constants[MIN_AMOUNT, 0] and dec.compare(w, quantity, _row(constants, MIN_AMOUNT)) < 0
    ):
        reason = BELOW_MIN_AMOUNT
    elif constants[MIN_NOTIONAL, 0]:
        notional = dec.mul(w, quantity, price)
        if dec.compare(w, notional, _row(constants, MIN_NOTIONAL)) < 0:
            reason = BELOW_MIN_NOTIONAL
    if reason == 0:
        return 0, quantity
    return (INSUFFICIENT_CASH if short_of_cash else reason), dec.ZERO


def _size_entry(w: Ints, constants: Ints, sizings: Ints, cash: Dec, entry: Dec) -> tuple[int, Dec]:
    """`risk.sizing._size_entry` with `sizing_quantity`, for a flat account."""
    price = _round_price(w, constants, entry)
    unit_value = dec.mul(w, price, dec.ONE)
    quantity = dec.ZERO
    by_cash = False
    for r in range(len(sizings)):
        amount = _row(sizings, r)
        if sizings[r, 0]:  # percent of equity (a flat account's is its cash)
            equity = dec.add(w, cash, dec.ZERO)
            budget = dec.div(w, dec.mul(w, equity, amount), dec.HUNDRED, FLOOR)
            asked = dec.ZERO
            if dec.compare(w, budget, dec.ZERO) > 0:
                asked = dec.div(w, budget, unit_value, FLOOR)
        else:
            asked = dec.div(w, amount, unit_value, FLOOR)
        if r == 0 or dec.compare(w, asked, quantity) < 0:  # min(): the first of equals
            quantity = asked
    if constants[MAX_AMOUNT, 0]:
        cap = _row(constants, MAX_AMOUNT)
        if dec.compare(w, cap, quantity) < 0:
            quantity = cap
    if dec.compare(w, cash, dec.ZERO) <= 0:
        return INSUFFICIENT_CASH, dec.ZERO
    unit_cost = dec.mul(w, dec.mul(w, price, dec.ONE), _row(constants, UNIT_COST_RATE))
    affordable = dec.div(w, cash, unit_cost, FLOOR)
    if dec.compare(w, affordable, quantity) < 0:
        quantity = affordable
        by_cash = True
    return _fit(w, constants, quantity, price, by_cash)


def _exactly(w: Ints, a: Dec) -> float:
    """float(a), correctly rounded; OverflowError where `exact_float` cannot say."""
    v = dec.exact_float(w, a)
    if math.isnan(v):
        raise OverflowError("a float the compiled books cannot round")
    return v


def _sell(
    w: Ints, constants: Ints, price: Dec, quantity: Dec, cash: Dec, cost_basis: Dec
) -> tuple[Dec, Dec, Dec, Dec, Dec]:
    """A market sell of the whole position at `price` (the open as written): `simulate`
    (slipped, the taker fee) and `Portfolio.apply`. (price, fee, pnl, return x 100,
    cash after)."""
    if constants[SELL_SLIP, 0]:
        price = dec.mul(w, price, _row(constants, SELL_SLIP))
    value = dec.mul(w, quantity, price)  # price x quantity: the same digits and exponent
    fee = dec.mul(w, value, _row(constants, FEE))
    proceeds = dec.sub(w, value, fee)
    pnl = dec.sub(w, proceeds, cost_basis)
    cash = dec.add(w, cash, proceeds)
    ratio = dec.ZERO
    if not dec.is_zero(cost_basis):
        ratio = dec.mul(w, dec.div(w, pnl, cost_basis, HALF_EVEN), dec.HUNDRED)
    return price, fee, pnl, ratio, cash


def _buy(w: Ints, constants: Ints, price: Dec, quantity: Dec) -> tuple[Dec, Dec, Dec]:
    """A market buy's (price, fee, cost): `simulate` and `Portfolio.apply`'s cost."""
    if constants[BUY_SLIP, 0]:
        price = dec.mul(w, price, _row(constants, BUY_SLIP))
    value = dec.mul(w, quantity, price)  # price x quantity: the same digits and exponent
    fee = dec.mul(w, value, _row(constants, FEE))
    return price, fee, dec.add(w, value, fee)


def _decide(
    w: Ints, constants: Ints, sizings: Ints, move: int, cash: Dec, held: Dec, entry: Dec
) -> tuple[int, Dec]:
    """The risk engine's sizing of a BUY (`move` > 0) or a SELL of the position."""
    if move > 0:
        return _size_entry(w, constants, sizings, cash, entry)
    # `_size_exit`: all of it (AccountState.held sums from 0).
    whole = dec.add(w, dec.ZERO, held)
    code, sized = _fit(w, constants, whole, _round_price(w, constants, entry), False)
    if code == 0 and dec.compare(w, sized, held) != 0:
        raise OverflowError("a partial exit runs on the event engine")
    return code, sized


def _book(
    last: int,
    index: Ints,
    kind: npt.NDArray[np.int8],
    closes: Ints,
    opens: Ints,
    constants: Ints,
    sizings: Ints,
    candles: Ints,
    returns: npt.NDArray[np.float64],
    changes: npt.NDArray[np.float64],
    counts: Ints,
    text: npt.NDArray[np.uint8],
) -> None:
    """`fast._trade` over the signals (`index`, `kind`), the prices as written
    (`closes[s]` of signal s's candle, `opens[s]` of the next). Writes per trade
    its entry and exit candles (`candles`), and as text its quantity, entry price,
    exit price, PnL, fees and return x 100; per fill, in `changes`, its candle, 1
    if it left the account flat, the cash and the quantity held as floats, and as
    text a flat account's cash; at the end, as text, the cash, fees and quantity
    held; `counts` the tallies."""
    w = dec.scratch()
    cash = _row(constants, CASH)
    fees = dec.ZERO
    held = bought = cost_basis = entry_fee = dec.ZERO
    opened = 0
    pending = -1  # the signal whose order waits to fill; -1: none
    pending_quantity = dec.ZERO
    trades = fills = n_changes = 0
    at = 0
    for s in range(len(index) + 1):
        i = index[s] if s < len(index) else last + 1
        move = kind[s] if s < len(index) else 0
        if pending >= 0:
            k = index[pending] + 1
            price = _price(opens, pending)
            pending = -1
            # `simulate` fills the order's remaining: its quantity less 0 filled.
            quantity = dec.sub(w, pending_quantity, dec.ZERO)
            if not dec.is_zero(held):  # a sell: closes the whole position
                price, fee, pnl, ratio, cash = _sell(
                    w, constants, price, quantity, cash, cost_basis
                )
                fees = dec.add(w, fees, fee)
                candles[trades, 0] = opened
                candles[trades, 1] = k
                at = dec.write(quantity, text, at)
                at = dec.write(bought, text, at)
                at = dec.write(price, text, at)
                at = dec.write(pnl, text, at)
                at = dec.write(dec.add(w, entry_fee, fee), text, at)
                returns[trades] = _exactly(w, ratio)
                trades += 1
                held = bought = cost_basis = entry_fee = dec.ZERO
                fills += 1
                changes[n_changes, 0] = k
                changes[n_changes, 1] = 1.0
                changes[n_changes, 2] = _exactly(w, cash)  # a flat account's equity
                changes[n_changes, 3] = 0.0
                n_changes += 1
            else:
                price, fee, cost = _buy(w, constants, price, quantity)
                if dec.compare(w, cost, cash) > 0:
                    counts[INSUFFICIENT_FUNDS] += 1
                else:
                    fees = dec.add(w, fees, fee)
                    cash = dec.sub(w, cash, cost)
                    held, bought, cost_basis, entry_fee, opened = quantity, price, cost, fee, k
                    fills += 1
                    changes[n_changes, 0] = k
                    changes[n_changes, 1] = 0.0
                    changes[n_changes, 2] = dec.to_float(cash)
                    changes[n_changes, 3] = dec.to_float(held)
                    n_changes += 1
        if move == 0 or (move > 0) == (not dec.is_zero(held)):
            continue  # the sentinel; a cross up with a position, or down without: HOLD
        code, sized = _decide(w, constants, sizings, move, cash, held, _price(closes, s))
        if code != 0:
            counts[code] += 1
        elif i < last:
            pending = s
            pending_quantity = sized
    at = dec.write(cash, text, at)
    at = dec.write(fees, text, at)
    at = dec.write(held, text, at)
    at = dec.write(bought, text, at)
    at = dec.write(cost_basis, text, at)
    at = dec.write(entry_fee, text, at)
    counts[OPENED] = opened
    counts[FILLS] = fills
    counts[TRADES] = trades
    counts[CHANGES] = n_changes
    counts[TEXT] = at


#: numba stamps a cached function with its own file's time and size only, and these
#: functions compile `decimals`' in: its content joins their stamp, so an edit to it
#: recompiles them instead of running the decimals they were first compiled with.
_DECIMALS = hashlib.sha256(Path(dec.__file__).read_bytes()).hexdigest()


def _jit(function: Callable[..., Any]) -> Callable[..., Any]:
    dispatcher = numba.njit(cache=True, nogil=True)(function)
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    stamp = getattr(cache_file, "_source_stamp", None)
    if cache_file is not None and isinstance(stamp, tuple):  # numba 0.61
        cache_file._source_stamp = (*stamp, _DECIMALS)
    return cast(Callable[..., Any], dispatcher)


_row = _jit(_row)
_price = _jit(_price)
_round_price = _jit(_round_price)
_fit = _jit(_fit)
_size_entry = _jit(_size_entry)
_exactly = _jit(_exactly)
_sell = _jit(_sell)
_buy = _jit(_buy)
_decide = _jit(_decide)
_book = _jit(_book)


_FIELDS = (
    "symbol",
    "quantity",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "pnl",
    "return_pct",
    "fees",
    "exit_reason",
)
_TEXT_FIELDS = ("quantity", "entry_price", "exit_price", "pnl", "fees")  # as `_book` writes
_SETTERS = [getattr(TradeRecord, name).__set__ for name in _FIELDS]
_BULK = tuple(f.name for f in fields(TradeRecord)) == _FIELDS


def _records(columns: tuple[Iterable[Any], ...], count: int) -> list[TradeRecord]:
    """`TradeRecord`s from their columns. A frozen dataclass's `__init__` sets each
    field through `object.__setattr__`, a call per field in Python (a microsecond a
    record); here each field's slot is set for all records by one C-level `map`:
    the same objects at a third of the cost."""
    if not _BULK:  # TradeRecord changed its fields: the plain way
        return list(map(TradeRecord, *columns))
    records = list(map(object.__new__, repeat(TradeRecord, count)))
    for setter, column in zip(_SETTERS, columns, strict=True):
        deque(map(setter, records, column), maxlen=0)
    return records


def constant(value: Decimal | None) -> list[int]:
    """A row of the constants array: (1, the decimal) or (0, zero) when not set."""
    return [0, *dec.ZERO] if value is None else [1, *dec.from_decimal(value)]


@dataclass
class Booked:
    """What `book` returns: the run's books as `fast._Books` holds them, and the
    stretches of the equity curve (from candle `starts[k]` on: `cash[k] + quantity[k]
    x close`)."""

    cash: Decimal
    fees: Decimal
    quantity: Decimal
    bought: Decimal  # the position open at the end: its price, cost, entry fee, candle
    cost_basis: Decimal
    entry_fee: Decimal
    opened: int
    fills: int
    trades: Lazy[TradeRecord]  # built on first use: see `Lazy`
    rejections: dict[str, int]
    starts: npt.NDArray[np.int64]
    curve_cash: npt.NDArray[np.float64]
    curve_quantity: npt.NDArray[np.float64]


def book(
    *,
    symbol: str,
    open_times: list[datetime],
    last: int,
    index: Ints,
    kind: npt.NDArray[np.int8],
    closes: Ints,
    opens: Ints,
    constants: Ints,
    sizings: Ints,
    capital: float,
) -> Booked:
    """Run `_book` and turn what it reports into Python values (see the module doc).
    Raises OverflowError where the compiled decimals cannot follow."""
    n = len(index)
    candles = np.empty((n // 2 + 1, 2), np.int64)
    returns = np.empty(n // 2 + 1, np.float64)
    changes = np.empty((n + 1, 4), np.float64)
    counts = np.zeros(10, np.int64)
    text = np.empty((n * 5 + 6) * _TEXT_PER_VALUE, np.uint8)
    _book(
        last,
        index,
        kind,
        closes,
        opens,
        constants,
        sizings,
        candles,
        returns,
        changes,
        counts,
        text,
    )
    trades, n_changes = int(counts[TRADES]), int(counts[CHANGES])
    words = text[: counts[TEXT]].tobytes().decode("ascii").split()
    # Per trade five values; then the cash, fees, quantity held at the end, and the
    # open position's buy price, cost basis and entry fee.
    entries, exits = candles[:trades, 0].copy(), candles[:trades, 1].copy()
    return_pct = returns[:trades].copy()

    def column(name: str) -> list[Any]:
        """One field of every trade, without building the records."""
        if name in _TEXT_FIELDS:
            j = _TEXT_FIELDS.index(name)
            return list(map(Decimal, words[j : 5 * trades : 5]))
        if name in ("entry_time", "exit_time"):
            at = entries if name == "entry_time" else exits
            return list(map(open_times.__getitem__, at.tolist()))
        if name == "return_pct":
            return cast(list[Any], return_pct.tolist())
        if name in ("symbol", "exit_reason"):
            return [symbol if name == "symbol" else _EXIT] * trades
        raise KeyError(name)

    def build() -> list[TradeRecord]:
        return _records(tuple(column(name) for name in _FIELDS), trades)

    records: Lazy[TradeRecord] = Lazy(trades, build, column=column)
    cash, total_fees, held, bought, cost_basis, entry_fee = map(
        Decimal, words[5 * trades : 5 * trades + 6]
    )
    stretches = changes[:n_changes]
    return Booked(
        cash=cash,
        fees=total_fees,
        quantity=held,
        bought=bought,
        cost_basis=cost_basis,
        entry_fee=entry_fee,
        opened=int(counts[OPENED]),
        fills=int(counts[FILLS]),
        trades=records,
        rejections={REASONS[c]: int(counts[c]) for c in REASONS if counts[c]},
        starts=np.concatenate(([0], stretches[:, 0].astype(np.int64))),
        curve_cash=np.concatenate(([capital], stretches[:, 2])),
        curve_quantity=np.concatenate(([0.0], stretches[:, 3])),
    )
