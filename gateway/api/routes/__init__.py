"""One router per resource; `api_router` needs the operator key, `ops_router` does not."""

from fastapi import APIRouter

from gateway.api.deps import APIKeyDep
from gateway.api.routes import (
    backtests,
    catalog,
    discussions,
    equity,
    events,
    execution_services,
    fills,
    health,
    incidents,
    intents,
    llm_usage,
    logs,
    orders,
    performance,
    positions,
    strategies,
    trade_accounts,
    trading_groups,
    triggers,
)
from gateway.api.routes._common import INVALID, UNAUTHORIZED

ops_router = APIRouter()
ops_router.include_router(health.router)

# Every route declares the gateway's 422 body, which replaces FastAPI's default shape.
api_router = APIRouter(dependencies=[APIKeyDep], responses={**UNAUTHORIZED, **INVALID})
for _resource in (
    triggers,
    trading_groups,
    trade_accounts,
    execution_services,
    strategies,
    events,
    logs,
    intents,
    orders,
    fills,
    positions,
    incidents,
    equity,
    backtests,
    llm_usage,
    performance,
    discussions,
    catalog,
):
    api_router.include_router(_resource.router)
