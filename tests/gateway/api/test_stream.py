"""The operator stream (`/api/v1/stream`): live, filtered, resumable, never a drag.

A real gateway, real publishers over /ws/events and a real HTTP client reading the
server-sent events as a browser's fetch reader would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.api.routes import stream as stream_route
from tests.conftest import TIMEOUT_FACTOR, Gateway, eventually
from tests.gateway.api.conftest import error_locs
from tests.gateway.ws.wsclient import RawClient, decision, signal


@dataclass
class SSE:
    """The frames one stream response delivered, parsed as `EventSource` would."""

    frames: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    comments: int = 0
    ended: bool = False

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for event, data, _ in self.frames if event == kind]


@asynccontextmanager
async def open_stream(api: httpx.AsyncClient, **params: Any) -> AsyncIterator[SSE]:
    sse = SSE()

    async def read() -> None:
        async with api.stream("GET", "/api/v1/stream", params=params, timeout=None) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            event, data, ident = "message", "", None
            async for line in r.aiter_lines():
                if line.startswith(":"):
                    sse.comments += 1
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line == "" and data:
                    sse.frames.append((event, json.loads(data), ident))
                    event, data, ident = "message", "", None
        sse.ended = True

    task = asyncio.create_task(read())
    try:
        await eventually(lambda: sse.of("hello") or task.done(), message="the stream's hello")
        if task.done():
            task.result()
        yield sse
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _publishers(gateway: Gateway) -> tuple[RawClient, RawClient]:
    trig = await gateway.add_trigger("rsi")
    grp = await gateway.add_group("momentum", ["rsi"])
    trigger = await RawClient.connect(gateway.ws_url, param="trigger_token", token=trig)
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=grp)
    return trigger, group


async def test_stream_delivers_committed_events_filtered_by_category(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    trigger, group = await _publishers(gateway)
    async with open_stream(api, category="signal") as sse:
        ack = await trigger.request(signal("ETH/BTC"))
        await group.request(decision("ETH/BTC"))
        await trigger.request(signal("LTC/BTC"))
        await eventually(lambda: len(sse.of("event")) == 2, message="two signals")
    events = sse.of("event")
    assert [e["category"] for e in events] == ["signal", "signal"]
    assert events[0]["seq"] == ack["seq"] and events[0]["source"] == "trigger:rsi"
    assert [e["payload"]["symbol"] for e in events] == ["ETH/BTC", "LTC/BTC"]
    # The SSE id is the seq, so a reconnecting reader knows where it stood.
    assert [ident for kind, _, ident in sse.frames if kind == "event"] == [
        str(e["seq"]) for e in events
    ]
    assert sse.of("hello")[0]["after"] == ack["seq"] - 1


async def test_stream_resumes_after_a_seq_from_the_store_then_goes_live(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    trigger, _ = await _publishers(gateway)
    first = await trigger.request(signal("ETH/BTC"))
    missed = [await trigger.request(signal(f"S{i}/BTC")) for i in range(3)]
    async with open_stream(api, after=first["seq"], symbol="S1/BTC,S2/BTC,LIVE/BTC") as sse:
        live = await trigger.request(signal("LIVE/BTC"))
        await eventually(lambda: len(sse.of("event")) == 3, message="replay and live")
    assert [e["seq"] for e in sse.of("event")] == [missed[1]["seq"], missed[2]["seq"], live["seq"]]


async def test_stream_sends_the_logs_asked_for_with_their_seq(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    trigger, group = await _publishers(gateway)
    async with open_stream(api, category="decision", logs="TRADING_GROUP_DISCUSSION_LOG") as sse:
        await trigger.request({"kind": "log", "code": "TRIGGER_HEARTBEAT", "message": "alive"})
        await group.request(
            {
                "kind": "log",
                "code": "TRADING_GROUP_DISCUSSION_LOG",
                "message": "RSI 28: buying",
                "trace": {"correlation_id": "c-1"},
            }
        )
        await eventually(lambda: sse.of("log"), message="the discussion log")
    (log,) = sse.of("log")
    assert log["code"] == "TRADING_GROUP_DISCUSSION_LOG"
    assert log["source"] == "trading_group:momentum" and log["message"] == "RSI 28: buying"
    assert log["trace"]["correlation_id"] == "c-1"
    stored = (await api.get("/api/v1/logs", params={"code": log["code"]})).json()["items"]
    assert log == stored[0]
    # Resuming by log seq replays it.
    async with open_stream(api, logs="*", log_after=0) as sse2:
        await eventually(lambda: len(sse2.of("log")) == 2, message="both logs replayed")
    assert [x["code"] for x in sse2.of("log")] == ["TRIGGER_HEARTBEAT", log["code"]]


async def test_stream_that_falls_behind_reads_the_gap_from_the_store_and_says_so(
    gateway: Gateway, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_route, "QUEUE_LIMIT", 3)
    trigger, _ = await _publishers(gateway)
    async with open_stream(api, category="signal") as sse:
        (tap,) = gateway.state.hub.taps
        # Hold the stream's reader off the loop while 20 events commit: its queue of 3
        # overflows, and the hub carries on regardless.
        acks = await asyncio.gather(*(trigger.request(signal(f"X{i}/BTC")) for i in range(20)))
        await eventually(lambda: len(sse.of("event")) == 20, message="all 20 events")
    assert [e["seq"] for e in sse.of("event")] == sorted(a["seq"] for a in acks)
    assert tap.dropped > 0
    assert sse.of("lagged")[-1]["dropped"] == tap.dropped


async def test_stream_ends_with_bye_when_the_gateway_stops(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    async with open_stream(api) as sse:
        assert len(gateway.state.hub.taps) == 1
        await gateway.stop()
        await eventually(lambda: sse.ended, message="the stream to end")
    assert sse.of("bye") == [{"reason": "gateway shutting down"}]


async def test_stream_tap_is_removed_when_the_reader_goes(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    async with open_stream(api):
        assert len(gateway.state.hub.taps) == 1
    await eventually(lambda: not gateway.state.hub.taps, message="the tap to go")


async def test_stream_refuses_without_the_key_and_names_a_bad_filter(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as anonymous:
        r = await anonymous.get("/api/v1/stream")
        assert r.status_code == 401
        assert "missing API key" in r.json()["detail"]
    r = await api.get("/api/v1/stream", params={"category": "signal,nonsense"})
    assert error_locs(r) == [["query", "category", "1"]]


async def test_stream_refuses_past_the_open_stream_limit(
    gateway: Gateway, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_route, "MAX_STREAMS", 1)
    async with open_stream(api):
        r = await api.get("/api/v1/stream")
    assert r.status_code == 503
    assert "operator streams are open" in r.json()["detail"]


async def test_connections_lists_live_sessions(gateway: Gateway, api: httpx.AsyncClient) -> None:
    trigger, _ = await _publishers(gateway)
    body = (await api.get("/api/v1/connections")).json()
    assert [c["principal"] for c in body["items"]] == ["trading_group:momentum", "trigger:rsi"]
    assert body["items"][1]["role"] == "trigger" and body["items"][1]["name"] == "rsi"
    await trigger.close()
    await eventually(
        lambda: "trigger:rsi" not in gateway.state.hub.sessions, timeout=5 * TIMEOUT_FACTOR
    )
    body = (await api.get("/api/v1/connections")).json()
    assert [c["principal"] for c in body["items"]] == ["trading_group:momentum"]


async def test_candles_reads_a_shipped_file_and_refuses_others(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v1/candles", params={"data": "data/ETH-BTC_5m.csv", "limit": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["symbol"] == "ETH/BTC" and body["timeframe"] == "5m"
    assert [c["time"] for c in body["items"]] == ["2018-01-30T04:45:00Z", "2018-01-30T04:50:00Z"]
    window = await api.get(
        "/api/v1/candles",
        params={
            "data": "data/ETH-BTC_5m.csv",
            "since": "2018-01-10T05:00:00Z",
            "until": "2018-01-10T05:10:00Z",
        },
    )
    assert [c["close"] for c in window.json()["items"]] == [0.09969, 0.09999]
    assert error_locs(await api.get("/api/v1/candles", params={"data": "../pyproject.toml"})) == [
        ["query", "data"]
    ]
    missing = await api.get("/api/v1/candles", params={"data": "data/NOPE-BTC_5m.csv"})
    assert "no such file" in missing.json()["message"] or missing.status_code == 422
    files = (await api.get("/api/v1/candles/files")).json()
    assert {"path": "data/ETH-BTC_5m.csv", "symbol": "ETH/BTC", "timeframe": "5m"} in files
