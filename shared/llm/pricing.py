"""What a model call costs: prices per model, per million tokens in and out.

A group's price table is its config's `prices` over `DEFAULT_PRICES`. A model is
looked up by its exact name, then without a provider prefix (OpenRouter names
`openai/gpt-4o-mini`), then under `"*"` (a catch-all an operator may configure). A
model found nowhere costs 0 and the caller is told (`PriceTable.known`), since its
spend cannot count towards a cost budget: local models (Ollama, vLLM) are free, and
a paid model missing from the table should be added to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Costs are stored as NUMERIC(38, 18): exact to 18 places, rounded half-even there.
COST_QUANTUM = Decimal("1e-18")
_EXACT = Context(prec=60)
_MILLION = Decimal(1_000_000)

PerMillion = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=24, decimal_places=12)]


class Price(BaseModel):
    """A model's list price, in the table's currency (USD) per 1M tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: PerMillion = Field(description="Per million prompt tokens.")
    output: PerMillion = Field(description="Per million completion tokens.")


def _p(input_: str, output: str) -> Price:
    return Price(input=Decimal(input_), output=Decimal(output))


#: USD per 1M tokens, the providers' published list prices (standard tier, no
#: caching or batch discounts). Prices change: a group's `prices` config overrides
#: any of them, and adds the models it uses that are not here.
DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o-mini": _p("0.15", "0.60"),
    "gpt-4o": _p("2.50", "10.00"),
    "gpt-4.1": _p("2.00", "8.00"),
    "gpt-4.1-mini": _p("0.40", "1.60"),
    "gpt-4.1-nano": _p("0.10", "0.40"),
    "gpt-5": _p("1.25", "10.00"),
    "gpt-5-mini": _p("0.25", "2.00"),
    "gpt-5-nano": _p("0.05", "0.40"),
    "o3-mini": _p("1.10", "4.40"),
    "o4-mini": _p("1.10", "4.40"),
    "o3": _p("2.00", "8.00"),
    "claude-3-5-haiku": _p("0.80", "4.00"),
    "claude-sonnet-4": _p("3.00", "15.00"),
    "deepseek-chat": _p("0.27", "1.10"),
}

ZERO = Price(input=Decimal(0), output=Decimal(0))


def cost_of(price: Price, tokens_in: int, tokens_out: int) -> Decimal:
    """`tokens_in` and `tokens_out` at `price`, exact (quantized to `COST_QUANTUM`)."""
    if tokens_in < 0 or tokens_out < 0:
        raise ValueError(f"token counts must not be negative, got {tokens_in} and {tokens_out}")
    total = _EXACT.add(
        _EXACT.multiply(Decimal(tokens_in), price.input),
        _EXACT.multiply(Decimal(tokens_out), price.output),
    )
    cost = _EXACT.divide(total, _MILLION).quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)
    # Plain form for storage and display: 0.000123, not 1.23000000000000E-4 padded.
    return cost.normalize(_EXACT) if cost != cost.to_integral() else cost.quantize(Decimal(1))


class PriceTable:
    """Prices by model: `prices` (a group's config) over `defaults`."""

    def __init__(
        self,
        prices: Mapping[str, Price] | None = None,
        *,
        defaults: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        self._prices = {**defaults, **(prices or {})}

    def price(self, model: str) -> Price | None:
        """The model's price, or None when the table has none (not even `"*"`)."""
        for name in (model, model.rsplit("/", 1)[-1], "*"):
            if name in self._prices:
                return self._prices[name]
        return None

    def known(self, model: str) -> bool:
        return self.price(model) is not None

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> Decimal:
        """What the call cost; 0 for a model the table does not know."""
        return cost_of(self.price(model) or ZERO, tokens_in, tokens_out)
