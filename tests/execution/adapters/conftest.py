"""One `harness` fixture, parametrized over every `harness_<venue>.py` in this folder."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.execution.adapters.harness import Harness

VENUES = sorted(p.stem.removeprefix("harness_") for p in Path(__file__).parent.glob("harness_*.py"))


@pytest.fixture(params=VENUES)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    module: Any = importlib.import_module(f"tests.execution.adapters.harness_{request.param}")
    async with module.open_harness() as h:
        yield h
