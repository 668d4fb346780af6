"""Assemble the gateway app: storage, hub, REST routers, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.websockets import WebSocket
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.api.deps import APIKeyDep
from gateway.api.routes import api_router, candles, connections, ops_router, stream
from gateway.backtests import BacktestRunner
from gateway.dashboard import mount_dashboard
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from gateway.ws.hub import Hub
from shared.crypto import CredentialBox
from shared.db.engine import create_engine, current_revision, head_revision, make_sessionmaker
from shared.logging import get_logger

log = get_logger(__name__)


class SchemaNotCurrent(RuntimeError):
    """The database is not migrated to the code's head revision."""


@dataclass
class AppState:
    settings: GatewaySettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics
    hub: Hub
    api_key: str
    credentials: CredentialBox
    backtests: BacktestRunner


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the app; storage and the hub start in its lifespan."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url, schema=settings.database_schema)
        current, head = await current_revision(engine), head_revision()
        if current != head:
            await engine.dispose()
            raise SchemaNotCurrent(
                f"database schema is at revision {current}, this gateway needs {head}: "
                "run `ats db upgrade` (or start with `ats gateway`, which migrates first)"
            )
        sessionmaker = make_sessionmaker(engine)
        metrics = Metrics()
        hub = Hub(settings=settings, engine=engine, sessionmaker=sessionmaker, metrics=metrics)
        api_key, _ = settings.resolve_api_key()
        backtests = BacktestRunner(
            sessionmaker=sessionmaker,
            max_workers=settings.backtest_workers,
            progress_interval=settings.backtest_progress_interval,
            shutdown_timeout=settings.shutdown_timeout,
        )
        # Runs a previous process left behind died with it.
        await backtests.recover()
        app.state.ats = AppState(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            metrics=metrics,
            hub=hub,
            api_key=api_key,
            credentials=CredentialBox(settings.resolve_secret_key()),
            backtests=backtests,
        )
        await hub.start()
        log.info("gateway_started", database=engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            await hub.shutdown()
            await backtests.shutdown()
            await engine.dispose()
            log.info("gateway_stopped")

    app = FastAPI(
        title="ATS gateway",
        version="1",
        lifespan=lifespan,
        description="Event hub on /ws/events and the operator REST API under /api/v1.",
    )
    app.include_router(ops_router)
    app.include_router(api_router, prefix="/api/v1")
    # What the operator dashboard reads besides the resources: the live stream, who is
    # connected, candles for its charts.
    for extra in (stream, connections, candles):
        app.include_router(extra.router, prefix="/api/v1", dependencies=[APIKeyDep])
    mount_dashboard(app)

    @app.websocket("/ws/events")
    async def ws_events(websocket: WebSocket) -> None:
        await websocket.app.state.ats.hub.serve(websocket)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the bad field plainly; FastAPI's default also works but echoes input.
        errors = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        fields = ", ".join(".".join(e["loc"][1:]) or e["loc"][0] for e in errors)
        return JSONResponse(
            status_code=422, content={"detail": errors, "message": f"invalid field(s): {fields}"}
        )

    return app
