"""A faster `__init__` for the kernel's frozen, slotted dataclasses.

The `__init__` that `dataclass(frozen=True)` generates stores each field with
`object.__setattr__(self, name, value)`, a lookup by name per field. An order, a fill,
an intent, a verdict and the books' records are built on every decision and every
fill, live and in a backtest (where they dominate the cost of a trade), so
`fast_init` regenerates that `__init__` to store through the slots' own descriptors,
in about half the time. Same signature, same defaults and default factories, the
same `__post_init__`; the class stays frozen (tests/shared/kernel/test_frozen.py).
"""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from typing import Any


class _Factory:
    """The default of a field with a default factory: call the factory."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def fast_init[T](cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass `cls` an equivalent, faster `__init__`.

    Raises:
        TypeError: `cls` is not a frozen dataclass with slots, or has fields that are
            keyword-only or left out of `__init__` (not handled here).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if not is_dataclass(cls) or params is None or not params.frozen:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass")
    if "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} has no slots: declare it with slots=True")
    names: dict[str, Any] = {"_FACTORY": _FACTORY}
    arguments: list[str] = []
    body: list[str] = []
    for field in fields(cls):
        if not field.init or field.kw_only:
            raise TypeError(f"{cls.__name__}.{field.name}: keyword-only or init=False")
        name = field.name
        names[f"_set_{name}"] = getattr(cls, name).__set__
        if field.default is not MISSING:
            names[f"_default_{name}"] = field.default
            arguments.append(f"{name}=_default_{name}")
        elif field.default_factory is not MISSING:
            names[f"_factory_{name}"] = field.default_factory
            arguments.append(f"{name}=_FACTORY")
            body.append(f"    if {name} is _FACTORY: {name} = _factory_{name}()")
        else:
            arguments.append(name)
        body.append(f"    _set_{name}(self, {name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(arguments)}):\n" + "\n".join(body)
    exec(source, names)  # noqa: S102 - our own source, built from the field names
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
