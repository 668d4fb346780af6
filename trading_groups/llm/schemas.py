"""What each member answers: one pydantic model per kind of message.

The models are the contract with the LLM: their JSON Schema goes into the prompt
(JSON mode), and an answer that does not validate is shown its error and asked for
once more. They read leniently what models commonly vary (`"buy"` for `"BUY"`, extra
keys) and strictly what matters (actions, bounds, lengths).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.events import Action

Point = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
#: A price or a quantity: positive, exact, within the `Money` columns' digits.
Positive = Annotated[Decimal, Field(gt=0, max_digits=38, decimal_places=18)]


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class Stance(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"
    NEUTRAL = "neutral"


class AnalystReport(_Answer):
    """Your analysis of the market from your angle."""

    stance: Stance = Field(description="bullish, bearish or neutral on the symbol.")
    confidence: float = Field(ge=0, le=1, description="How sure you are, 0..1.")
    summary: str = Field(min_length=1, max_length=2_000, description="One short paragraph.")
    key_points: list[Point] = Field(
        default_factory=list, max_length=8, description="The facts that matter most."
    )

    @field_validator("stance", mode="before")
    @classmethod
    def _read_stance(cls, value: Any) -> Any:
        return _lower(value)


class Argument(_Answer):
    """Your argument in the debate."""

    argument: str = Field(
        min_length=1, max_length=3_000, description="Your case, answering the other side."
    )
    key_points: list[Point] = Field(default_factory=list, max_length=6)
    confidence: float = Field(ge=0, le=1, description="How strong your case is, 0..1.")


class Proposal(_Answer):
    """The trade you propose, or HOLD."""

    action: Action = Field(description="BUY, SELL, CLOSE or HOLD.")
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=1, max_length=3_000)
    entry: Positive | None = Field(default=None, description="Entry price; null: the last close.")
    stop_loss: Positive | None = None
    take_profit: Positive | None = None
    size_hint: Positive | None = Field(
        default=None,
        description="At most this quantity of the base asset; null: the account's sizing.",
    )

    @field_validator("action", mode="before")
    @classmethod
    def _read_action(cls, value: Any) -> Any:
        return _upper(value)


class Verdict(StrEnum):
    APPROVE = "approve"
    ADJUST = "adjust"
    REJECT = "reject"


class RiskVerdict(_Answer):
    """Your verdict on the trader's proposal."""

    verdict: Verdict = Field(description="approve, adjust (with new values) or reject.")
    reasoning: str = Field(min_length=1, max_length=3_000)
    confidence: float | None = Field(default=None, ge=0, le=1, description="With adjust.")
    stop_loss: Positive | None = Field(default=None, description="With adjust.")
    take_profit: Positive | None = Field(default=None, description="With adjust.")
    size_hint: Positive | None = Field(
        default=None, description="With adjust: at most this quantity of the base asset."
    )

    @field_validator("verdict", mode="before")
    @classmethod
    def _read_verdict(cls, value: Any) -> Any:
        return _lower(value)


class LeaderDecision(_Answer):
    """The group's decision."""

    action: Action = Field(description="The approved action, or HOLD.")
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=1, max_length=3_000, description="Why, for the operator.")

    @field_validator("action", mode="before")
    @classmethod
    def _read_action(cls, value: Any) -> Any:
        return _upper(value)


class ReflectionNote(_Answer):
    """What the closed trade teaches."""

    lesson: str = Field(
        min_length=1,
        max_length=1_000,
        description="Two or three sentences: what to repeat or avoid.",
    )
