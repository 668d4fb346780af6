"""Triggers: the services that raise signals. Each has one token, shown once."""

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
from gateway.api.schemas import TriggerCreate, TriggerCreated, TriggerPublic, TriggerUpdate
from gateway.db import crud
from shared.db.models import TriggerRow
from shared.events import Role

router = APIRouter(prefix="/triggers", tags=["triggers"])


async def _public(session: AsyncSession, rows: Sequence[TriggerRow]) -> list[TriggerPublic]:
    live = await crud.live_token_principals(session=session, role=Role.TRIGGER)
    return [
        TriggerPublic(
            name=r.name,
            description=r.description,
            config=r.config,
            enabled=r.enabled,
            has_token=r.id in live,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


@router.post("", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
async def create_trigger(body: TriggerCreate, session: SessionDep, hub: HubDep) -> TriggerCreated:
    """Create a trigger; the response carries its token, shown this once."""
    with storage_errors():
        row, token = await crud.create_trigger(
            session=session, name=body.name, description=body.description, config=body.config
        )
    await commit(session, hub)
    (public,) = await _public(session, [row])
    return TriggerCreated(**public.model_dump(), token=token)


@router.get("")
async def list_triggers(session: SessionDep) -> list[TriggerPublic]:
    return await _public(session, await crud.list_all(session=session, model=TriggerRow))


@router.get("/{name}", responses=NOT_FOUND)
async def get_trigger(name: str, session: SessionDep) -> TriggerPublic:
    row = await get_or_404(session, TriggerRow, name)
    return (await _public(session, [row]))[0]


@router.patch("/{name}", responses={**NOT_FOUND, **CONFLICT})
async def update_trigger(
    name: str, body: TriggerUpdate, session: SessionDep, hub: HubDep
) -> TriggerPublic:
    """Change the given fields; `config` is replaced whole. A connected trigger gets a
    `config_update`; a renamed one is closed (1012) to reconnect under its new name."""
    row = await get_or_404(session, TriggerRow, name)
    with storage_errors():
        await crud.update_trigger(
            session=session,
            row=row,
            name=given(body.name),
            description=given(body.description),
            config=given(body.config),
            enabled=given(body.enabled),
        )
    await commit(session, hub)
    renamed(hub, Role.TRIGGER, name, row.name)
    return (await _public(session, [row]))[0]


add_client_routes(router, role=Role.TRIGGER, model=TriggerRow)
