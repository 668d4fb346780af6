"""FastAPI dependencies: the app state, a database session, the operator's key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.security import constant_time_equal
from gateway.settings import GatewaySettings
from gateway.ws.hub import Hub

if TYPE_CHECKING:
    from gateway.main import AppState

_bearer = HTTPBearer(auto_error=False, description="The operator API key (ATS_API_KEY).")


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.ats
    return state


StateDep = Annotated["AppState", Depends(get_state)]


def get_settings(state: StateDep) -> GatewaySettings:
    return state.settings


def get_hub(state: StateDep) -> Hub:
    return state.hub


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessionmaker() as session:
        yield session


def require_api_key(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send 'Authorization: Bearer <ATS_API_KEY>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not constant_time_equal(credentials.credentials, state.api_key):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"}
        )


SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
HubDep = Annotated[Hub, Depends(get_hub)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
APIKeyDep = Depends(require_api_key)
