"""Trade accounts: where orders go. An account trades the decisions of the groups bound
to it; its exchange credentials are write-only and encrypted at rest."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, status
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.deps import HubDep, SessionDep, StateDep
from gateway.api.routes._common import (
    CONFLICT,
    NOT_FOUND,
    commit,
    get_or_404,
    given,
    storage_errors,
)
from gateway.api.routes.catalog import check_account_config
from gateway.api.schemas import TradeAccountCreate, TradeAccountPublic, TradeAccountUpdate
from gateway.db import crud
from shared.db.models import TradeAccountRow

router = APIRouter(prefix="/trade-accounts", tags=["trade accounts"])


async def _public(
    session: AsyncSession, rows: Sequence[TradeAccountRow]
) -> list[TradeAccountPublic]:
    services = await crud.account_services(session=session)
    return [
        TradeAccountPublic(
            name=r.name,
            exchange=r.exchange,
            mode=r.mode,
            config=r.config,
            trading_groups=sorted(g.name for g in r.trading_groups),
            execution_service=services.get(r.id),
            has_credentials=r.credentials_encrypted is not None,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


@router.post("", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
async def create_trade_account(
    body: TradeAccountCreate, session: SessionDep, hub: HubDep, state: StateDep
) -> TradeAccountPublic:
    """Create an account bound to `trading_groups`; naming an unknown group, or risk
    limits (`config.risk`) their model refuses, is a 422."""
    check_account_config(body.config)
    sealed = state.credentials.seal(body.credentials) if body.credentials is not None else None
    with storage_errors():
        row = await crud.create_trade_account(
            session=session,
            name=body.name,
            exchange=body.exchange,
            mode=body.mode,
            trading_groups=body.trading_groups,
            config=body.config,
            credentials_encrypted=sealed,
        )
    await commit(session, hub)
    return (await _public(session, [row]))[0]


@router.get("")
async def list_trade_accounts(session: SessionDep) -> list[TradeAccountPublic]:
    return await _public(session, await crud.list_all(session=session, model=TradeAccountRow))


@router.get("/{name}", responses=NOT_FOUND)
async def get_trade_account(name: str, session: SessionDep) -> TradeAccountPublic:
    row = await get_or_404(session, TradeAccountRow, name)
    return (await _public(session, [row]))[0]


@router.patch("/{name}", responses={**NOT_FOUND, **CONFLICT})
async def update_trade_account(
    name: str, body: TradeAccountUpdate, session: SessionDep, hub: HubDep, state: StateDep
) -> TradeAccountPublic:
    """Change the given fields; `trading_groups` replaces the bindings, `credentials`
    replaces the keys (null removes them). Its execution service gets a `config_update`."""
    row = await get_or_404(session, TradeAccountRow, name)
    if (config := given(body.config)) is not None:
        check_account_config(config)
    credentials = given(body.credentials)
    with storage_errors():
        await crud.update_trade_account(
            session=session,
            row=row,
            name=given(body.name),
            exchange=given(body.exchange),
            mode=given(body.mode),
            trading_groups=given(body.trading_groups),
            config=given(body.config),
            credentials_encrypted=(
                state.credentials.seal(credentials) if credentials is not None else None
            ),
            clear_credentials="credentials" in body.model_fields_set and credentials is None,
        )
    await commit(session, hub)
    return (await _public(session, [row]))[0]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_trade_account(name: str, session: SessionDep, hub: HubDep) -> None:
    """Delete the account; its groups' decisions no longer reach its execution service."""
    row = await get_or_404(session, TradeAccountRow, name)
    await crud.delete_trade_account(session=session, row=row)
    await commit(session, hub)
