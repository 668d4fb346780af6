"""One router per resource; `api_router` needs the operator key, `ops_router` does not."""

from fastapi import APIRouter

from gateway.api.deps import APIKeyDep
from gateway.api.routes import health

ops_router = APIRouter()
ops_router.include_router(health.router)

api_router = APIRouter(dependencies=[APIKeyDep])
