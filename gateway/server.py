"""Run the gateway under uvicorn, closing WebSocket sessions with 1001 on shutdown."""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from gateway.main import create_app
from gateway.settings import GatewaySettings


class GatewayServer(uvicorn.Server):
    """uvicorn closes WebSockets with 1012 on shutdown; the protocol promises 1001 after
    a flush, so the hub closes its sessions first, once new connections are refused."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(self._app.state, "ats", None)
        if state is not None:
            for server in self.servers:
                server.close()
            await state.hub.close_sessions()
        await super().shutdown(sockets)

    @property
    def bound_port(self) -> int:
        sock = self.servers[0].sockets[0]
        port: int = sock.getsockname()[1]
        return port


def build_server(settings: GatewaySettings, app: FastAPI | None = None) -> GatewayServer:
    app = app or create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=max(4 * settings.ws_max_frame_bytes, 1 << 20),
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        # Frames are a few hundred bytes of JSON: compressing each one again per
        # subscriber cost more CPU than the whole rest of the fan-out (PERFORMANCE.md).
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_timeout) + 1,
    )
    return GatewayServer(config, app)


def run(settings: GatewaySettings | None = None, *, migrate: bool = True) -> None:
    """Migrate (unless told not to) and serve until SIGINT/SIGTERM."""
    import asyncio

    from shared.db.engine import upgrade_sync

    settings = settings or GatewaySettings()
    if migrate:
        upgrade_sync(settings.resolved_database_url, settings.database_schema)
    asyncio.run(build_server(settings).serve())
