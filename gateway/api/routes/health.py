"""Operations endpoints: liveness, readiness, Prometheus metrics. No API key needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.api.deps import StateDep
from shared.db.engine import current_revision, head_revision

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "not ready, with the reason"}})
async def ready(state: StateDep) -> JSONResponse:
    """The database answers and its schema is at the code's migration head."""
    checks: dict[str, Any] = {}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = await current_revision(state.engine), head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except Exception as e:
        checks["database"] = f"unreachable: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values()) and "migrations" in checks
    return JSONResponse(
        status_code=200 if ok else 503, content={"status": "ok" if ok else "not ready", **checks}
    )


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
