"""A raw protocol client for hub tests: plain `websockets`, none of our SDK, so the
tests pin the wire protocol itself."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from typing import Any
from urllib.parse import urlparse

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import TIMEOUT_FACTOR


class RawClient:
    def __init__(self, ws: ClientConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.events: list[dict[str, Any]] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.rejections: list[dict[str, Any]] = []
        self._waiters: list[tuple[Any, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.create_task(self._read())
        self.closed: asyncio.Future[tuple[int | None, str]] = (
            asyncio.get_running_loop().create_future()
        )
        self.auto_ack = True

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        param: str | None = None,
        token: str | None = None,
        bearer: str | None = None,
        auto_ack: bool = True,
    ) -> RawClient:
        ws = await open_raw(url, param=param, token=token, bearer=bearer)
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10 * TIMEOUT_FACTOR))
        assert hello["ok"] is True, hello
        client = cls(ws, hello)
        client.auto_ack = auto_ack
        return client

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame["kind"] == "event":
                    self.events.append(frame)
                    if self.auto_ack:
                        await self.ws.send(json.dumps({"kind": "ack", "seq": frame["seq"]}))
                elif frame["kind"] == "ack":
                    if frame.get("ok") is False:
                        self.rejections.append(frame)
                    if frame.get("id"):
                        self.acks[frame["id"]] = frame
                for pred, fut in list(self._waiters):
                    if not fut.done() and pred(frame):
                        fut.set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result((self.ws.close_code, self.ws.close_reason or ""))

    async def wait_for(self, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        try:
            return await asyncio.wait_for(fut, timeout * TIMEOUT_FACTOR)
        finally:
            self._waiters.remove((pred, fut))

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def request(self, frame: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send a frame with an id and return the gateway's ack or rejection for it."""
        frame = dict(frame)
        frame.setdefault("id", str(uuid.uuid4()))
        waiter = asyncio.create_task(
            self.wait_for(lambda f: f["kind"] == "ack" and f.get("id") == frame["id"], timeout)
        )
        await asyncio.sleep(0)
        await self.ws.send(json.dumps(frame))
        return await waiter

    async def next_reply(self, timeout: float = 10.0) -> Any:
        """Arm a waiter for the next ack frame (no id needed); await the returned task."""
        task = asyncio.create_task(self.wait_for(lambda f: f["kind"] == "ack", timeout))
        await asyncio.sleep(0)
        return task

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


async def open_raw(
    url: str,
    *,
    param: str | None = None,
    token: str | None = None,
    bearer: str | None = None,
    rcvbuf: int | None = None,
) -> ClientConnection:
    """Open a connection; `rcvbuf` shrinks the socket's receive buffer, so a client that
    stops reading backs up into the gateway quickly instead of into kernel buffers."""
    if param is not None:
        url = f"{url}?{param}={token}"
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else None
    sock = None
    if rcvbuf is not None:
        parsed = urlparse(url)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parsed.hostname, parsed.port))
    return await connect(
        url,
        additional_headers=headers,
        open_timeout=10 * TIMEOUT_FACTOR,
        sock=sock,
        max_queue=1 if rcvbuf is not None else 16,
    )


async def close_reason(url: str, **kwargs: Any) -> tuple[int | None, str]:
    """Connect and return the close code and reason the gateway answers with."""
    ws = await open_raw(url, **kwargs)
    try:
        await asyncio.wait_for(ws.recv(), 10 * TIMEOUT_FACTOR)
    except ConnectionClosed:
        pass
    else:
        await ws.close()
        return (None, "accepted")
    return (ws.close_code, ws.close_reason or "")


def signal(symbol: str = "BTC/USDT", **payload: Any) -> dict[str, Any]:
    return {
        "kind": "event",
        "category": "signal",
        "title": f"test signal on {symbol}",
        "payload": {"signal_type": "immediate", "symbol": symbol, "direction": "long", **payload},
    }


def decision(symbol: str = "BTC/USDT", action: str = "BUY") -> dict[str, Any]:
    return {
        "kind": "event",
        "category": "decision",
        "payload": {"symbol": symbol, "action": action, "confidence": 0.8, "reasoning": "test"},
    }


def order(group: str, status: str = "submitted") -> dict[str, Any]:
    return {
        "kind": "event",
        "category": "order",
        "payload": {"trading_group": group, "status": status, "symbol": "BTC/USDT"},
    }
