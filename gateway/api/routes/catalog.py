"""The catalog: what a trading group's and a trade account's `config` may hold.

Read-only: every registered strategy (`@register_strategy`) with the JSON Schema of
its params, and the JSON Schema of the risk limits (`shared.kernel.risk.RiskLimits`).
The dashboard builds its configuration forms from these, and the config routes check
what they store against the same models (`check_group_config`,
`check_account_config`), so what a form offers and what the gateway accepts are one.

(`/strategies` is taken by the users' stored JSON-rule strategies, which run through
the registered `json_rule` strategy.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.kernel.risk import RiskLimits
from shared.kernel.strategy import Strategy, strategy_class, strategy_names

router = APIRouter(prefix="/catalog", tags=["catalog"])

type Loc = tuple[str | int, ...]


class StrategyType(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    params_schema: dict[str, Any]


def _describe(cls: type[Strategy]) -> StrategyType:
    return StrategyType(
        name=cls.name,
        # The docstring's first paragraph: what the strategy does, in one breath.
        description=" ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()),
        params_schema=cls.Params.model_json_schema(),
    )


@router.get("/strategies")
async def list_strategy_types() -> list[StrategyType]:
    """Every registered strategy a group's `strategy` may name, by name, with the JSON
    Schema of its `params`."""
    return [_describe(strategy_class(name)) for name in strategy_names()]


@router.get("/risk-limits")
async def risk_limits_schema() -> dict[str, Any]:
    """The JSON Schema of the risk limits a trade account's or an algorithmic group's
    config holds under `risk`."""
    return RiskLimits.model_json_schema()


# --------------------------------------------------------------------------- checks


def _problems(e: ValidationError, at: Loc) -> list[dict[str, Any]]:
    return [
        {"loc": ("body", *at, *err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in e.errors()
    ]


def _risk_problems(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    if config.get("risk") is None:
        return []
    try:
        RiskLimits.model_validate(config["risk"])
    except ValidationError as e:
        return _problems(e, ("config", "risk"))
    return []


def _strategy_problems(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    name = config.get("strategy")
    if name is None:
        return []
    known = strategy_names()
    if name not in known:
        return [
            {
                "loc": ("body", "config", "strategy"),
                "msg": f"unknown strategy {name!r}; known: {', '.join(known)}",
                "type": "unknown_strategy",
            }
        ]
    params = config.get("params")
    try:
        strategy_class(name).Params.model_validate({} if params is None else params)
    except ValidationError as e:
        return _problems(e, ("config", "params"))
    return []


def check_group_config(kind: str, config: Mapping[str, Any]) -> None:
    """Refuse (422, `loc` at the bad field) an algorithmic group's unknown `strategy` or
    bad `params`, and any group's bad `risk` limits. An LLM group's own config is
    checked by the group when it starts (its model lives in `trading_groups`)."""
    problems = _risk_problems(config)
    if kind == "algo":
        problems += _strategy_problems(config)
    if problems:
        raise RequestValidationError(problems)


def check_account_config(config: Mapping[str, Any]) -> None:
    """Refuse (422, `loc` at the bad field) a trade account's bad `risk` limits."""
    if problems := _risk_problems(config):
        raise RequestValidationError(problems)
