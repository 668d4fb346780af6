"""Serve an ASGI app with uvicorn on an ephemeral port of 127.0.0.1, in the test's loop."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

import uvicorn

from tests.conftest import eventually


class LocalServer:
    """`async with LocalServer(app) as server:` serves `app` at `server.url`."""

    def __init__(self, app: Any, *, name: str = "local server") -> None:
        self.app = app
        self.name = name
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, f"{self.name} is not started"
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            lifespan="off",
            # Answers a test holds back (a slow LLM) must not hold up the teardown.
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)
        task = self._task = asyncio.create_task(server.serve())
        await eventually(lambda: server.started or task.done(), message=f"{self.name} start")
        if task.done():
            task.result()

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
