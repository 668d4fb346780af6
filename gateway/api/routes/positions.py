"""Positions: what each account holds, valued at the last mark the execution service
recorded. One row per account and symbol; a closed one stays at quantity 0."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import SessionDep
from gateway.api.schemas import PositionPublic, PositionQuery
from gateway.db import crud

router = APIRouter(prefix="/positions", tags=["positions"])


@router.get("")
async def list_positions(
    query: Annotated[PositionQuery, Query()], session: SessionDep
) -> list[PositionPublic]:
    """Positions by account and symbol; only open ones unless `open=false`."""
    rows = await crud.list_positions(
        session=session, account=query.account, symbol=query.symbol, open_only=query.open
    )
    return [PositionPublic.model_validate(r, from_attributes=True) for r in rows]
