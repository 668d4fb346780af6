"""The event store over REST: filters and cursor pagination over events published by
real WebSocket clients; items are exactly the frames subscribers were delivered."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, eventually
from tests.gateway.api.conftest import create, error_locs
from tests.gateway.ws.wsclient import RawClient, signal


async def events(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await api.get("/api/v1/events", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


async def all_pages(api: httpx.AsyncClient, **params: Any) -> tuple[list[Any], list[int]]:
    """Walk every page; return the items and the size of each page."""
    items: list[Any] = []
    sizes: list[int] = []
    after: int | None = None
    while True:
        page = await events(api, **params, **({"after": after} if after is not None else {}))
        items += page["items"]
        sizes.append(len(page["items"]))
        after = page["next_after"]
        if after is None:
            return items, sizes


@pytest.fixture
async def published(gateway: Gateway, api: httpx.AsyncClient) -> RawClient:
    """Eight signals from two triggers and one config update, all delivered to one group,
    which is returned with what it received."""
    t1 = (await create(api, "triggers", name="t1"))["token"]
    t2 = (await create(api, "triggers", name="t2"))["token"]
    g = (await create(api, "trading-groups", name="g1", triggers=["t1", "t2"]))["token"]
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    trig1 = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t1)
    trig2 = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t2)
    for i in range(5):
        frame = {**signal("BTC/USDT", n=i), "ts": f"2026-01-01T00:00:0{i}Z"}
        if i < 2:
            frame["trace"] = {"correlation_id": "c-1", "causation_id": None}
        assert (await trig1.request(frame))["ok"] is True
    for i in range(3):
        frame = {**signal("ETH/USDT", n=i), "ts": f"2026-01-02T00:00:0{i}Z"}
        assert (await trig2.request(frame))["ok"] is True
    r = await api.patch(
        "/api/v1/trading-groups/g1", json={"config": {"risk": {"min_confidence": 0.5}}}
    )
    assert r.status_code == 200, r.text
    await eventually(lambda: len(group.events) == 9)
    await trig1.close()
    await trig2.close()
    return group


async def test_events_items_are_the_delivered_frames(
    api: httpx.AsyncClient, published: RawClient
) -> None:
    page = await events(api, limit=1000)
    assert page["items"] == published.events
    assert page["next_after"] is None
    seqs = [e["seq"] for e in page["items"]]
    assert seqs == sorted(seqs)


async def test_events_pagination_walks_every_event_once(
    api: httpx.AsyncClient, published: RawClient
) -> None:
    items, sizes = await all_pages(api, limit=4)
    assert sizes == [4, 4, 1]
    assert items == published.events
    # A last page that is exactly full says so: no empty page after it.
    items, sizes = await all_pages(api, limit=3)
    assert sizes == [3, 3, 3] and items == published.events
    # Newest first, paged the same way.
    items, sizes = await all_pages(api, limit=4, order="desc")
    assert sizes == [4, 4, 1] and items == published.events[::-1]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "signal"}, 8),
        ({"category": "config_update", "source": "gateway"}, 1),
        ({"source": "trigger:t1"}, 5),
        ({"source": "t1"}, 0),
        ({"symbol": "ETH/USDT"}, 3),
        ({"correlation_id": "c-1"}, 2),
        ({"since": "2026-01-01T00:00:02Z", "until": "2026-01-01T00:00:04Z"}, 2),
        ({"since": "2026-01-01T01:00:02+01:00", "until": "2026-01-02T00:00:00Z"}, 3),
        ({"since": "2026-01-02T00:00:00Z", "category": "signal"}, 3),
        ({"source": "trigger:t1", "symbol": "ETH/USDT"}, 0),
    ],
)
async def test_events_filters_select_matching_events(
    api: httpx.AsyncClient,
    published: RawClient,
    params: dict[str, str],
    expected: int,
) -> None:
    items, _ = await all_pages(api, limit=2, **params)
    assert len(items) == expected
    for key in ("category", "source"):
        if key in params:
            assert {e[key] for e in items} <= {params[key]}
    if "symbol" in params:
        assert {e["payload"]["symbol"] for e in items} <= {params["symbol"]}
    if "correlation_id" in params:
        assert {e["trace"]["correlation_id"] for e in items} == {"c-1"}
    assert items == [e for e in published.events if e in items]  # in delivery order


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"since": "2026-01-01T00:00:00"}, ["query", "since"]),
        ({"until": "yesterday"}, ["query", "until"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 1001}, ["query", "limit"]),
        ({"after": -1}, ["query", "after"]),
        ({"category": "gossip"}, ["query", "category"]),
        ({"order": "random"}, ["query", "order"]),
        ({"categroy": "signal"}, ["query", "categroy"]),
    ],
)
async def test_events_bad_query_returns_422_naming_the_parameter(
    api: httpx.AsyncClient, params: dict[str, Any], loc: list[str]
) -> None:
    assert error_locs(await api.get("/api/v1/events", params=params)) == [loc]


async def test_events_empty_store_returns_empty_page(api: httpx.AsyncClient) -> None:
    assert await events(api) == {"items": [], "next_after": None}
