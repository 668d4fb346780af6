"""Fixtures and helpers for the REST API tests: an operator client on a real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.api.schemas import ValidationProblem
from tests.conftest import Gateway
from tests.gateway.ws.wsclient import RawClient


@pytest.fixture
async def api(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.api() as client:
        yield client


async def create(api: httpx.AsyncClient, resource: str, **body: Any) -> dict[str, Any]:
    """POST a resource and return the created body; fail on anything but 201."""
    r = await api.post(f"/api/v1/{resource}", json=body)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def error_locs(response: httpx.Response) -> list[list[str]]:
    """The `loc` of each error in a 422, whose body must match the documented schema."""
    assert response.status_code == 422, response.text
    problem = ValidationProblem.model_validate(response.json())
    return [e.loc for e in problem.detail]


def config_updates(client: RawClient) -> list[dict[str, Any]]:
    """The `config_update` events a client has received so far."""
    return [e for e in client.events if e["category"] == "config_update"]
