"""Logs over REST: filters and cursor pagination over `log` frames sent by real
WebSocket clients."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.gateway.api.conftest import create, error_locs
from tests.gateway.ws.wsclient import RawClient


async def logs(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await api.get("/api/v1/logs", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


async def all_pages(api: httpx.AsyncClient, **params: Any) -> tuple[list[Any], list[int]]:
    items: list[Any] = []
    sizes: list[int] = []
    after: int | None = None
    while True:
        page = await logs(api, **params, **({"after": after} if after is not None else {}))
        items += page["items"]
        sizes.append(len(page["items"]))
        after = page["next_after"]
        if after is None:
            return items, sizes


@pytest.fixture
async def sent(gateway: Gateway, api: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Four heartbeats from a trigger and three discussion lines from a group, with
    their acks; returns the frames in the order they were sent."""
    t = (await create(api, "triggers", name="t1"))["token"]
    g = (await create(api, "trading-groups", name="g1"))["token"]
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    frames: list[dict[str, Any]] = []
    for i in range(4):
        frame: dict[str, Any] = {
            "kind": "log",
            "id": str(uuid.uuid4()),
            "level": "debug" if i % 2 else "info",
            "code": "TRIGGER_HEARTBEAT",
            "message": f"alive {i}",
            "data": {"n": i},
            "ts": f"2026-01-01T00:00:0{i}Z",
        }
        assert (await trig.request(frame))["ok"] is True
        frames.append(frame)
    for i in range(3):
        frame = {
            "kind": "log",
            "id": str(uuid.uuid4()),
            "level": "warning" if i == 2 else "info",
            "code": "TRADING_GROUP_DISCUSSION_LOG",
            "message": f"bull says {i}",
            "data": {"speaker": "bull", "turn": i},
            "trace": {"correlation_id": "debate-1", "causation_id": "sig-1"},
            "ts": f"2026-01-02T00:00:0{i}Z",
        }
        assert (await group.request(frame))["ok"] is True
        frames.append(frame)
    await trig.close()
    await group.close()
    return frames


async def test_logs_items_carry_every_field_in_order(
    api: httpx.AsyncClient, sent: list[dict[str, Any]]
) -> None:
    page = await logs(api)
    assert page["next_after"] is None
    items = page["items"]
    assert [i["id"] for i in items] == [f["id"] for f in sent]
    first, last = items[0], items[-1]
    assert set(first) == {"seq", "id", "source", "level", "code", "message", "data", "trace", "ts"}
    assert (first["source"], first["level"], first["code"]) == (
        "trigger:t1",
        "info",
        "TRIGGER_HEARTBEAT",
    )
    assert (first["message"], first["data"], first["ts"]) == ("alive 0", {"n": 0}, sent[0]["ts"])
    assert first["trace"] == {"correlation_id": None, "causation_id": None}
    assert last["source"] == "trading_group:g1" and last["level"] == "warning"
    assert last["trace"] == {"correlation_id": "debate-1", "causation_id": "sig-1"}
    assert [i["seq"] for i in items] == sorted(i["seq"] for i in items)


async def test_logs_pagination_walks_every_line_once(
    api: httpx.AsyncClient, sent: list[dict[str, Any]]
) -> None:
    items, sizes = await all_pages(api, limit=3)
    assert sizes == [3, 3, 1]
    assert [i["id"] for i in items] == [f["id"] for f in sent]
    items, sizes = await all_pages(api, limit=2, order="desc")
    assert sizes == [2, 2, 2, 1]
    assert [i["id"] for i in items] == [f["id"] for f in reversed(sent)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "trigger:t1"}, ["alive 0", "alive 1", "alive 2", "alive 3"]),
        ({"code": "TRADING_GROUP_DISCUSSION_LOG"}, ["bull says 0", "bull says 1", "bull says 2"]),
        ({"level": "debug"}, ["alive 1", "alive 3"]),
        ({"level": "warning", "source": "trading_group:g1"}, ["bull says 2"]),
        (
            {"correlation_id": "debate-1", "order": "desc"},
            ["bull says 2", "bull says 1", "bull says 0"],
        ),
        (
            {"since": "2026-01-01T00:00:01Z", "until": "2026-01-01T00:00:03Z"},
            ["alive 1", "alive 2"],
        ),
        ({"since": "2026-01-02T00:00:02Z"}, ["bull says 2"]),
        ({"code": "NOPE"}, []),
    ],
)
async def test_logs_filters_select_matching_lines(
    api: httpx.AsyncClient,
    sent: list[dict[str, Any]],
    params: dict[str, str],
    expected: list[str],
) -> None:
    items, _ = await all_pages(api, limit=2, **params)
    assert [i["message"] for i in items] == expected


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"level": "loud"}, ["query", "level"]),
        ({"since": "2026-01-01"}, ["query", "since"]),
        ({"limit": 5000}, ["query", "limit"]),
        ({"after": "last"}, ["query", "after"]),
        ({"category": "signal"}, ["query", "category"]),
    ],
)
async def test_logs_bad_query_returns_422_naming_the_parameter(
    api: httpx.AsyncClient, params: dict[str, Any], loc: list[str]
) -> None:
    assert error_locs(await api.get("/api/v1/logs", params=params)) == [loc]
