"""Trading groups: the decision makers. A group receives the signals of the triggers
it subscribes to; each has one token, shown once."""

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
from gateway.api.routes.catalog import check_group_config
from gateway.api.schemas import (
    TradingGroupCreate,
    TradingGroupCreated,
    TradingGroupPublic,
    TradingGroupUpdate,
)
from gateway.db import crud
from shared.db.models import TradingGroupRow
from shared.events import Role

router = APIRouter(prefix="/trading-groups", tags=["trading groups"])


async def _public(
    session: AsyncSession, rows: Sequence[TradingGroupRow]
) -> list[TradingGroupPublic]:
    live = await crud.live_token_principals(session=session, role=Role.TRADING_GROUP)
    return [
        TradingGroupPublic(
            name=r.name,
            kind=r.kind,
            description=r.description,
            config=r.config,
            enabled=r.enabled,
            triggers=sorted(t.name for t in r.triggers),
            has_token=r.id in live,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


@router.post("", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
async def create_trading_group(
    body: TradingGroupCreate, session: SessionDep, hub: HubDep
) -> TradingGroupCreated:
    """Create a group subscribed to `triggers`; the response carries its token, shown
    this once. Naming an unknown trigger, an unknown strategy, or params or risk
    limits its model refuses is a 422."""
    check_group_config(body.kind, body.config)
    with storage_errors():
        row, token = await crud.create_trading_group(
            session=session,
            name=body.name,
            triggers=body.triggers,
            kind=body.kind,
            description=body.description,
            config=body.config,
        )
    await commit(session, hub)
    (public,) = await _public(session, [row])
    return TradingGroupCreated(**public.model_dump(), token=token)


@router.get("")
async def list_trading_groups(session: SessionDep) -> list[TradingGroupPublic]:
    return await _public(session, await crud.list_all(session=session, model=TradingGroupRow))


@router.get("/{name}", responses=NOT_FOUND)
async def get_trading_group(name: str, session: SessionDep) -> TradingGroupPublic:
    row = await get_or_404(session, TradingGroupRow, name)
    return (await _public(session, [row]))[0]


@router.patch("/{name}", responses={**NOT_FOUND, **CONFLICT})
async def update_trading_group(
    name: str, body: TradingGroupUpdate, session: SessionDep, hub: HubDep
) -> TradingGroupPublic:
    """Change the given fields; `triggers` replaces the subscriptions and `config` the
    config. Routing follows at once and a connected group gets a `config_update`; a
    renamed one is closed (1012) to reconnect under its new name."""
    row = await get_or_404(session, TradingGroupRow, name)
    kind, config = given(body.kind), given(body.config)
    if kind is not None or config is not None:
        check_group_config(kind or row.kind, row.config if config is None else config)
    with storage_errors():
        await crud.update_trading_group(
            session=session,
            row=row,
            name=given(body.name),
            triggers=given(body.triggers),
            kind=given(body.kind),
            description=given(body.description),
            config=given(body.config),
            enabled=given(body.enabled),
        )
    await commit(session, hub)
    renamed(hub, Role.TRADING_GROUP, name, row.name)
    return (await _public(session, [row]))[0]


add_client_routes(router, role=Role.TRADING_GROUP, model=TradingGroupRow)
