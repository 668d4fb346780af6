"""Exact sums of Money columns on both databases.

PostgreSQL sums NUMERIC exactly. SQLite keeps Money as text, and
SUM(CAST(x AS NUMERIC)) there adds doubles (0.1 + 0.2 is 0.30000000000000004;
18-decimal values lose their last digits), so on SQLite `money_sum` concatenates a
group's values and Python adds them as Decimals. Either way it is one GROUP BY query
and no row is fetched on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal, Inexact
from functools import reduce
from typing import Any

from sqlalchemy import Dialect, Numeric, String, TypeDecorator
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

#: Wide enough for any sum of NUMERIC(38, 18) values; a rounding would raise, not pass.
EXACT = Context(prec=100, traps=[Inexact])
ZERO = Decimal(0)


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Add decimals without rounding (the default context keeps 28 digits)."""
    return reduce(EXACT.add, values, ZERO)


def plain(value: Decimal) -> Decimal:
    """As Money reads a value back: 1.500000000000000000 -> 1.5, 0E-18 -> 0."""
    if value == value.to_integral():
        return value.quantize(Decimal(1), context=EXACT)
    return value.normalize(EXACT)


class _MoneySumType(TypeDecorator[Decimal]):
    """The result of `money_sum`: a NUMERIC sum, or SQLite's comma-joined values."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, str):
            return plain(exact_sum(Decimal(v) for v in value.split(",")))
        return plain(Decimal(value))


class money_sum(FunctionElement[Decimal]):  # noqa: N801 - used like func.sum
    """SUM of a Money expression, exact on both databases; NULL over no rows."""

    type = _MoneySumType()
    name = "money_sum"
    inherit_cache = True


@compiles(money_sum)
def _money_sum_sql(element: money_sum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"sum({compiler.process(element.clauses, **kw)})"


@compiles(money_sum, "sqlite")
def _money_sum_sqlite(element: money_sum, compiler: SQLCompiler, **kw: Any) -> str:
    # Money text never holds a comma; group_concat skips NULLs as SUM does.
    return f"group_concat({compiler.process(element.clauses, **kw)}, ',')"
