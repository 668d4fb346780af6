"""The LLM group's config: the default team, what is refused, how members resolve
their model, endpoint and key."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import SecretStr

from shared.config import LLMSettings
from trading_groups.llm.config import (
    CallDefaults,
    MemberConfig,
    Role,
    Tier,
    parse_config,
    reflection_member,
    resolve_member,
)

SETTINGS = LLMSettings.model_validate(
    {
        "llm_base_url": "http://127.0.0.1:9/v1",
        "llm_model": "cheap-1",
        "llm_strong_model": "strong-1",
        "llm_api_key": "sk-default-key",
    }
)


def test_config_defaults_are_the_issues_team_and_bounded_spend() -> None:
    config = parse_config({})
    assert [(m.name, m.role, m.tier) for m in config.members] == [
        ("technical", Role.TECHNICAL, Tier.CHEAP),
        ("sentiment", Role.SENTIMENT, Tier.CHEAP),
        ("fundamentals", Role.FUNDAMENTALS, Tier.CHEAP),
        ("bull", Role.BULL, Tier.CHEAP),
        ("bear", Role.BEAR, Tier.CHEAP),
        ("trader", Role.TRADER, Tier.CHEAP),
        ("risk", Role.RISK_MANAGER, Tier.STRONG),
        ("leader", Role.LEADER, Tier.STRONG),
    ]
    assert (config.debate_rounds, config.risk_mode.value, config.risk_rounds) == (1, "single", 1)
    assert config.budgets.daily_tokens == 1_000_000
    assert config.budgets.daily_cost == Decimal(10)
    assert (config.memory.max_reflections, config.memory.max_chars) == (5, 2_000)
    assert config.defaults == CallDefaults()
    assert config.feeds == {} and config.timeframe == "5m"


def test_config_risk_debate_adds_the_three_voices_to_the_default_team() -> None:
    config = parse_config({"risk_mode": "debate", "risk_rounds": 2})
    roles = [m.role for m in config.members]
    assert roles[6:9] == [Role.AGGRESSIVE, Role.CONSERVATIVE, Role.NEUTRAL]
    assert roles[-2:] == [Role.RISK_MANAGER, Role.LEADER]


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"debate_round": 2}, "debate_round: Extra inputs are not permitted"),
        ({"debate_rounds": 9}, "debate_rounds: Input should be less than or equal to 5"),
        ({"budgets": {"daily_cost": "-1"}}, "budgets.daily_cost"),
        ({"team": [{"name": "t", "role": "trader"}]}, "at least one analyst"),
        (
            {"team": [{"name": "a", "role": "technical_analyst"}, {"name": "a", "role": "trader"}]},
            "twice: a",
        ),
        (
            {
                "team": [
                    {"name": "a", "role": "technical_analyst"},
                    {"name": "t", "role": "trader"},
                    {"name": "r", "role": "risk_manager"},
                ]
            },  # fmt: skip
            "a debate needs exactly one bull_researcher",
        ),
        ({"risk_mode": "debate", "team": None, "risk_rounds": 0}, "risk_rounds"),
        (
            {"team": [{"name": "reflection", "role": "technical_analyst"}]},
            "reserved for reflections",
        ),
        ({"team": [{"name": "x", "role": "trader", "base_url": "ftp://h"}]}, "is not http(s)"),
        ({"team": [{"name": "x", "role": "wizard"}]}, "team.0.role"),
    ],
)
def test_config_refuses_what_would_not_work_naming_the_field(
    config: dict[str, object], error: str
) -> None:
    with pytest.raises(ValueError, match="invalid LLM group config") as e:
        parse_config(config)
    assert error in str(e.value)


def test_config_a_team_without_debate_or_leader_is_valid() -> None:
    config = parse_config(
        {
            "debate_rounds": 0,
            "team": [
                {"name": "ta", "role": "technical_analyst"},
                {"name": "t", "role": "trader", "tier": "strong"},
                {"name": "r", "role": "risk_manager"},
            ],
        }
    )
    assert [m.name for m in config.members] == ["ta", "t", "r"]


def test_resolve_member_takes_the_tier_model_then_the_members_own() -> None:
    defaults = CallDefaults(timeout=9, max_retries=1, temperature=0.5, max_tokens=700)
    cheap = resolve_member(MemberConfig(name="a", role=Role.TECHNICAL), defaults, SETTINGS, {})
    assert (cheap.spec.model, cheap.spec.base_url) == ("cheap-1", "http://127.0.0.1:9/v1")
    assert cheap.spec.api_key == SecretStr("sk-default-key")
    assert (cheap.spec.timeout, cheap.spec.max_retries, cheap.spec.max_tokens) == (9, 1, 700)
    strong = resolve_member(
        MemberConfig(name="r", role=Role.RISK_MANAGER, tier=Tier.STRONG, temperature=0),
        defaults,
        SETTINGS,
        {},
    )
    assert (strong.spec.model, strong.spec.temperature) == ("strong-1", 0)
    own = resolve_member(
        MemberConfig(
            name="o",
            role=Role.BULL,
            model="their-model",
            base_url="https://or.test/api/v1",
            api_key_env="OTHER_PROVIDER_KEY",
        ),  # fmt: skip
        defaults,
        SETTINGS,
        {"OTHER_PROVIDER_KEY": "sk-other"},
    )
    assert (own.spec.model, own.spec.base_url) == ("their-model", "https://or.test/api/v1")
    assert own.spec.api_key == SecretStr("sk-other")


def test_resolve_member_strong_tier_defaults_to_the_cheap_model() -> None:
    settings = LLMSettings.model_validate({"llm_base_url": "http://h/v1", "llm_model": "only"})
    member = resolve_member(
        MemberConfig(name="r", role=Role.RISK_MANAGER, tier=Tier.STRONG), CallDefaults(), settings
    )
    assert member.spec.model == "only"
    assert reflection_member(CallDefaults(), settings).spec.model == "only"


def test_resolve_member_says_what_is_missing_without_showing_keys() -> None:
    member = MemberConfig(name="o", role=Role.BULL, api_key_env="MISSING_KEY_VAR")
    with pytest.raises(ValueError, match="MISSING_KEY_VAR is not set"):
        resolve_member(member, CallDefaults(), SETTINGS, {})
    no_model = LLMSettings.model_validate({"llm_base_url": "http://h/v1"})
    with pytest.raises(ValueError, match="no model; set ATS_LLM_MODEL"):
        resolve_member(MemberConfig(name="a", role=Role.BULL), CallDefaults(), no_model, {})
