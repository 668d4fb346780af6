"""What a call costs: exact decimals from the price table, defaults overridable."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.llm.pricing import DEFAULT_PRICES, Price, PriceTable, cost_of


def test_cost_of_is_tokens_times_price_per_million_exactly() -> None:
    price = Price(input=Decimal("0.15"), output=Decimal("0.60"))
    assert cost_of(price, 1_234, 567) == Decimal("0.0005253")  # 185.1 + 340.2 per million
    assert cost_of(price, 0, 0) == Decimal(0)
    assert cost_of(Price(input=Decimal(3), output=Decimal(15)), 10**6, 10**6) == Decimal(18)
    # Prices have at most 12 places, so a cost fits the column's 18 without rounding.
    tiny = Price(input=Decimal("0.000000000001"), output=Decimal(0))
    assert cost_of(tiny, 1, 0) == Decimal("0.000000000000000001")
    with pytest.raises(ValidationError):
        Price(input=Decimal("0.0000000000001"), output=Decimal(0))


def test_cost_of_refuses_negative_tokens() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        cost_of(DEFAULT_PRICES["gpt-4o"], -1, 0)


def test_price_table_config_over_defaults_then_provider_prefix_then_catch_all() -> None:
    table = PriceTable({"gpt-4o": Price(input=Decimal(1), output=Decimal(2))})
    assert table.cost("gpt-4o", 10**6, 10**6) == Decimal(3)  # the config's price wins
    assert table.price("openai/gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]
    assert table.price("llama3.1:8b") is None
    assert not table.known("llama3.1:8b")
    assert table.cost("llama3.1:8b", 10**6, 10**6) == Decimal(0)  # unknown: free, and said so
    fallback = PriceTable({"*": Price(input=Decimal("0.5"), output=Decimal("0.5"))})
    assert fallback.cost("llama3.1:8b", 10**6, 10**6) == Decimal(1)
    assert fallback.price("gpt-4o") == DEFAULT_PRICES["gpt-4o"]


def test_price_refuses_negative_and_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Price.model_validate({"input": "-1", "output": "1"})
    with pytest.raises(ValidationError):
        Price.model_validate({"input": "1", "output": "1", "cached": "0.5"})
