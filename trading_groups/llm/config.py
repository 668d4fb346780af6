"""An LLM group's configuration: its team, debate, risk mode, budgets, prices, memory.

It is the `config` of a trading group of kind `llm` in the REST API, validated here
(frozen, unknown keys refused, so a typo is an error, not a silent default). Every key
has a default: `{}` (plus `feeds`) is the default team of the issue, on the models of
`ATS_LLM_MODEL` (cheap tier) and `ATS_LLM_STRONG_MODEL` (strong tier).

A member's model, endpoint and key come from the member when it names them, else
from its tier's settings; a key is never in the config, only the name of the
environment variable that holds it (`api_key_env`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from shared.config import LLMSettings
from shared.events import NAME_PATTERN
from shared.kernel.risk import RiskLimits
from shared.llm.client import ModelSpec
from shared.llm.pricing import Price, PriceTable


class Role(StrEnum):
    """What a member does in the discussion; each role has its own prompt."""

    TECHNICAL = "technical_analyst"
    SENTIMENT = "sentiment_analyst"
    FUNDAMENTALS = "fundamentals_analyst"
    BULL = "bull_researcher"
    BEAR = "bear_researcher"
    TRADER = "trader"
    AGGRESSIVE = "aggressive_risk"
    NEUTRAL = "neutral_risk"
    CONSERVATIVE = "conservative_risk"
    RISK_MANAGER = "risk_manager"
    LEADER = "leader"


ANALYSTS = frozenset({Role.TECHNICAL, Role.SENTIMENT, Role.FUNDAMENTALS})
#: The risk debate's voices, in the order they speak each round (as in TradingAgents:
#: the risky one argues first, the safe one answers, the neutral one weighs both).
RISK_VOICES = (Role.AGGRESSIVE, Role.CONSERVATIVE, Role.NEUTRAL)
#: The member name of the reflection call after a closed trade (not a team member).
REFLECTION_MEMBER = "reflection"


class Tier(StrEnum):
    CHEAP = "cheap"
    STRONG = "strong"


class RiskMode(StrEnum):
    SINGLE = "single"
    DEBATE = "debate"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CallDefaults(_Frozen):
    """How each member's calls are made, unless the member says otherwise."""

    temperature: float = Field(default=0.2, ge=0, le=2)
    timeout: float = Field(default=60.0, gt=0, le=600, description="Seconds per attempt.")
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a timeout, 429 or 5xx by the client."
    )
    max_tokens: int = Field(default=1024, ge=16, le=65_536, description="Output cap per call.")


class MemberConfig(_Frozen):
    """One member of the team."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    role: Role
    tier: Tier = Tier.CHEAP
    model: str | None = Field(default=None, min_length=1, max_length=128)
    base_url: str | None = Field(default=None, max_length=2_000)
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="Name of the environment variable holding this member's API key.",
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=20_000,
        description="Replaces the role's system prompt; {symbol}, {timeframe}, {member}, "
        "{role} and {group} are filled in. The answer format is always appended.",
    )
    temperature: float | None = Field(default=None, ge=0, le=2)
    timeout: float | None = Field(default=None, gt=0, le=600)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    max_tokens: int | None = Field(default=None, ge=16, le=65_536)

    @model_validator(mode="after")
    def _http_base_url(self) -> Self:
        if self.base_url is not None and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"member {self.name}: base_url {self.base_url!r} is not http(s)")
        return self


class Budgets(_Frozen):
    """Daily (UTC) limits of the group's LLM spend; null: no limit of that kind."""

    daily_tokens: int | None = Field(default=1_000_000, ge=1)
    daily_cost: Decimal | None = Field(
        default=Decimal(10), ge=0, max_digits=24, decimal_places=12, description="In USD."
    )


class MemoryConfig(_Frozen):
    """Reflections after closed trades, and how much of them goes into prompts."""

    reflect: bool = Field(default=True, description="Ask the cheap model for a reflection.")
    max_reflections: int = Field(default=5, ge=0, le=50)
    max_chars: int = Field(default=2_000, ge=0, le=20_000, description="All of them together.")
    reflection_chars: int = Field(default=600, ge=100, le=5_000, description="Each one.")


class ContextConfig(_Frozen):
    """How much the members are shown."""

    candles: int = Field(default=20, ge=0, le=200, description="Recent candles, newest last.")
    decisions: int = Field(default=10, ge=0, le=100, description="The group's recent ones.")


def default_team(risk_mode: RiskMode = RiskMode.SINGLE) -> tuple[MemberConfig, ...]:
    """The issue's team: three analysts in parallel and two researchers on the cheap
    tier, a trader, a risk manager and the leader on the strong tier; with a risk
    debate, its three voices on the cheap tier."""
    cheap, strong = Tier.CHEAP, Tier.STRONG
    team = [
        MemberConfig(name="technical", role=Role.TECHNICAL, tier=cheap),
        MemberConfig(name="sentiment", role=Role.SENTIMENT, tier=cheap),
        MemberConfig(name="fundamentals", role=Role.FUNDAMENTALS, tier=cheap),
        MemberConfig(name="bull", role=Role.BULL, tier=cheap),
        MemberConfig(name="bear", role=Role.BEAR, tier=cheap),
        MemberConfig(name="trader", role=Role.TRADER, tier=cheap),
    ]
    if risk_mode is RiskMode.DEBATE:
        team += [
            MemberConfig(name="aggressive", role=Role.AGGRESSIVE, tier=cheap),
            MemberConfig(name="conservative", role=Role.CONSERVATIVE, tier=cheap),
            MemberConfig(name="neutral", role=Role.NEUTRAL, tier=cheap),
        ]
    team += [
        MemberConfig(name="risk", role=Role.RISK_MANAGER, tier=strong),
        MemberConfig(name="leader", role=Role.LEADER, tier=strong),
    ]
    return tuple(team)


class LLMGroupConfig(_Frozen):
    """The `config` of an LLM trading group (see docs/GROUPS.md, "LLM groups")."""

    team: tuple[MemberConfig, ...] | None = Field(
        default=None, max_length=30, description="null: the default team."
    )
    defaults: CallDefaults = CallDefaults()
    debate_rounds: int = Field(default=1, ge=0, le=5, description="Bull and bear rounds.")
    risk_mode: RiskMode = RiskMode.SINGLE
    risk_rounds: int = Field(default=1, ge=1, le=5, description="Rounds of the risk debate.")
    budgets: Budgets = Budgets()
    prices: dict[str, Price] = Field(default_factory=dict, max_length=200)
    memory: MemoryConfig = MemoryConfig()
    context: ContextConfig = ContextConfig()
    feeds: dict[str, str] = Field(default_factory=dict, max_length=200)
    timeframe: str = Field(default="5m", pattern=r"^[1-9][0-9]*[smhdw]$")
    id_epoch: str = Field(default="", max_length=64)
    risk: RiskLimits | None = Field(
        default=None,
        description="The group's risk limits: execution merges them with each account's "
        "(the stricter wins), as for an algorithmic group; the team does not read them.",
    )

    @model_validator(mode="after")
    def _check_team(self) -> Self:
        team = self.members
        names = Counter(m.name for m in team)
        if twice := sorted(n for n, c in names.items() if c > 1):
            raise ValueError(f"member names must be unique; twice: {', '.join(twice)}")
        if REFLECTION_MEMBER in names:
            raise ValueError(f"{REFLECTION_MEMBER!r} is reserved for reflections; rename it")
        roles = Counter(m.role for m in team)
        if not any(roles[r] for r in ANALYSTS):
            raise ValueError("the team needs at least one analyst")
        for role in (Role.TRADER, Role.RISK_MANAGER):
            if roles[role] != 1:
                raise ValueError(f"the team needs exactly one {role.value}, has {roles[role]}")
        if roles[Role.LEADER] > 1:
            raise ValueError("the team has at most one leader")
        if self.debate_rounds > 0 and (roles[Role.BULL] != 1 or roles[Role.BEAR] != 1):
            raise ValueError(
                "a debate needs exactly one bull_researcher and one bear_researcher "
                "(or set debate_rounds to 0)"
            )
        voices = [r for r in RISK_VOICES if roles[r]]
        if self.risk_mode is RiskMode.DEBATE and any(roles[r] != 1 for r in RISK_VOICES):
            raise ValueError(
                "risk_mode debate needs exactly one aggressive_risk, neutral_risk and "
                "conservative_risk member"
            )
        if self.risk_mode is RiskMode.SINGLE and voices:
            raise ValueError(
                f"risk voices ({', '.join(v.value for v in voices)}) speak only with "
                'risk_mode "debate"'
            )
        return self

    @property
    def members(self) -> tuple[MemberConfig, ...]:
        return self.team if self.team is not None else default_team(self.risk_mode)

    def price_table(self) -> PriceTable:
        return PriceTable(self.prices)


def parse_config(data: Mapping[str, Any] | None) -> LLMGroupConfig:
    """The group's config from its REST `config`.

    Raises:
        ValueError: it is invalid; the message names each wrong field.
    """
    try:
        return LLMGroupConfig.model_validate(dict(data or {}))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in e.errors()
        )
        raise ValueError(f"invalid LLM group config: {problems}") from e


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class Member:
    """A member resolved against the settings: who speaks, with which model."""

    name: str
    role: Role
    tier: Tier
    spec: ModelSpec
    prompt: str | None = None


def resolve_member(
    member: MemberConfig,
    defaults: CallDefaults,
    settings: LLMSettings,
    environ: Mapping[str, str] | None = None,
) -> Member:
    """The member's model, endpoint, key and call settings.

    Raises:
        ValueError: no model or endpoint for it, or its key's variable is not set.
    """
    env = os.environ if environ is None else environ
    tier_model = settings.llm_model if member.tier is Tier.CHEAP else settings.strong_model
    model = member.model or tier_model
    if not model:
        raise ValueError(
            f"member {member.name}: no model; set ATS_LLM_MODEL (and ATS_LLM_STRONG_MODEL "
            "for the strong tier) or the member's model"
        )
    base_url = member.base_url or settings.llm_base_url
    if not base_url:
        raise ValueError(f"member {member.name}: no endpoint; set ATS_LLM_BASE_URL")
    key: SecretStr | None = settings.llm_api_key
    if member.api_key_env is not None:
        value = env.get(member.api_key_env)
        if not value:
            raise ValueError(
                f"member {member.name}: its API key variable {member.api_key_env} is not set"
            )
        key = SecretStr(value)
    return Member(
        name=member.name,
        role=member.role,
        tier=member.tier,
        prompt=member.prompt,
        spec=ModelSpec(
            base_url=base_url,
            model=model,
            api_key=key,
            timeout=_pick(member.timeout, defaults.timeout),
            max_retries=_pick(member.max_retries, defaults.max_retries),
            temperature=_pick(member.temperature, defaults.temperature),
            max_tokens=_pick(member.max_tokens, defaults.max_tokens),
        ),
    )


def reflection_member(defaults: CallDefaults, settings: LLMSettings) -> Member:
    """Who writes reflections: the cheap tier with the call defaults. (Its role is not
    used: a reflection has a prompt of its own.)"""
    return resolve_member(
        MemberConfig(name=REFLECTION_MEMBER, role=Role.LEADER, tier=Tier.CHEAP), defaults, settings
    )


def _pick[T](value: T | None, default: T) -> T:
    return default if value is None else value
