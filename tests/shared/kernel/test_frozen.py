"""`fast_init` builds the same objects as the `__init__` a frozen dataclass generates."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, FrozenInstanceError, dataclass, field, fields, replace
from typing import Any

import pytest

from shared.kernel import orders, portfolio, strategy
from shared.kernel.frozen import fast_init
from shared.kernel.risk import model, sizing, verdict


def make(fast: bool) -> Any:
    @dataclass(frozen=True, slots=True)
    class Thing:
        name: str
        size: int = 3
        tags: list[str] = field(default_factory=list)
        seen: dict[str, int] = field(default_factory=dict)

        def __post_init__(self) -> None:
            if self.size < 0:
                raise ValueError(f"size {self.size} < 0")
            if not self.tags:
                object.__setattr__(self, "tags", [self.name])

    return fast_init(Thing) if fast else Thing


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("a",), {}), (("a", 5), {}), (("a",), {"tags": ["x"]}), ((), {"name": "b", "size": 0})],
)
def test_fast_init_builds_what_the_dataclass_init_builds(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain, fast = make(False), make(True)
    want, got = plain(*args, **kwargs), fast(*args, **kwargs)
    assert [getattr(got, f.name) for f in fields(fast)] == [
        getattr(want, f.name) for f in fields(plain)
    ]
    assert str(inspect.signature(fast)) == str(inspect.signature(plain))
    assert replace(got, size=9).size == 9 and replace(got, size=9).name == got.name


def test_fast_init_keeps_post_init_factories_and_frozenness() -> None:
    fast = make(True)
    with pytest.raises(ValueError, match="size -1 < 0"):
        fast("a", -1)
    one, two = fast("a"), fast("a")
    assert one.seen == {} and one.seen is not two.seen  # a fresh default per object
    with pytest.raises(FrozenInstanceError):
        one.size = 4
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        fast()
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        fast("a", colour="red")


def test_fast_init_refuses_what_it_does_not_handle() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True, kw_only=True)
    class KeywordOnly:
        a: int

    for cls in (NoSlots, NotFrozen, KeywordOnly):
        with pytest.raises(TypeError):
            fast_init(cls)


KERNEL = [
    strategy.Position,
    strategy.Outcome,
    strategy.Decision,
    orders.Fill,
    orders.Order,
    portfolio.Holding,
    portfolio.ClosedTrade,
    portfolio.Booking,
    model.TradeIntent,
    model.OpenPosition,
    model.ClosedTrade,
    model.AccountState,
    verdict.CheckResult,
    verdict.RiskVerdict,
    sizing.Sized,
]


@pytest.mark.parametrize("cls", KERNEL, ids=lambda c: c.__qualname__)
def test_kernel_classes_keep_their_fields_defaults_and_order(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields(cls)]
    for p, f in zip(params, fields(cls), strict=True):
        if f.default is not MISSING:
            assert p.default is f.default
        elif f.default_factory is not MISSING:
            assert p.default is not inspect.Parameter.empty
        else:
            assert p.default is inspect.Parameter.empty
    assert vars(cls)["__init__"].__qualname__ == f"{cls.__qualname__}.__init__"
