"""Execution services: they place the orders of the trade accounts they serve. Each
account has at most one; each service has one token, shown once."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, status
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.deps import HubDep, SessionDep
from gateway.api.routes._common import (
    CONFLICT,
    NOT_FOUND,
    add_client_routes,
    commit,
    get_or_404,
    given,
    renamed,
    storage_errors,
)
from gateway.api.schemas import (
    ExecutionServiceCreate,
    ExecutionServiceCreated,
    ExecutionServicePublic,
    ExecutionServiceUpdate,
)
from gateway.db import crud
from shared.db.models import ExecutionServiceRow
from shared.events import Role

router = APIRouter(prefix="/execution-services", tags=["execution services"])


async def _public(
    session: AsyncSession, rows: Sequence[ExecutionServiceRow]
) -> list[ExecutionServicePublic]:
    live = await crud.live_token_principals(session=session, role=Role.EXECUTION)
    return [
        ExecutionServicePublic(
            name=r.name,
            description=r.description,
            config=r.config,
            trade_accounts=sorted(a.name for a in r.trade_accounts),
            has_token=r.id in live,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


@router.post("", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
async def create_execution_service(
    body: ExecutionServiceCreate, session: SessionDep, hub: HubDep
) -> ExecutionServiceCreated:
    """Create a service for `trade_accounts`; the response carries its token, shown this
    once. An account already served by another service is a 409 naming it."""
    with storage_errors():
        row, token = await crud.create_execution_service(
            session=session,
            name=body.name,
            trade_accounts=body.trade_accounts,
            description=body.description,
            config=body.config,
        )
    await commit(session, hub)
    (public,) = await _public(session, [row])
    return ExecutionServiceCreated(**public.model_dump(), token=token)


@router.get("")
async def list_execution_services(session: SessionDep) -> list[ExecutionServicePublic]:
    rows = await crud.list_all(session=session, model=ExecutionServiceRow)
    return await _public(session, rows)


@router.get("/{name}", responses=NOT_FOUND)
async def get_execution_service(name: str, session: SessionDep) -> ExecutionServicePublic:
    row = await get_or_404(session, ExecutionServiceRow, name)
    return (await _public(session, [row]))[0]


@router.patch("/{name}", responses={**NOT_FOUND, **CONFLICT})
async def update_execution_service(
    name: str, body: ExecutionServiceUpdate, session: SessionDep, hub: HubDep
) -> ExecutionServicePublic:
    """Change the given fields; `trade_accounts` replaces the accounts it serves. A
    connected service gets a `config_update`; a renamed one is closed (1012) to
    reconnect under its new name."""
    row = await get_or_404(session, ExecutionServiceRow, name)
    with storage_errors():
        await crud.update_execution_service(
            session=session,
            row=row,
            name=given(body.name),
            trade_accounts=given(body.trade_accounts),
            description=given(body.description),
            config=given(body.config),
        )
    await commit(session, hub)
    renamed(hub, Role.EXECUTION, name, row.name)
    return (await _public(session, [row]))[0]


add_client_routes(router, role=Role.EXECUTION, model=ExecutionServiceRow)
