"""Fills: every execution the execution service booked, in booking order."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import SessionDep
from gateway.api.schemas import FillPage, FillPublic, FillQuery
from gateway.db import crud

router = APIRouter(prefix="/fills", tags=["fills"])


@router.get("")
async def list_fills(query: Annotated[FillQuery, Query()], session: SessionDep) -> FillPage:
    """Fills, oldest first (or newest first with `order=desc`). Page on by passing
    `next_after` back as `after`."""
    rows = await crud.list_fills(
        session=session,
        account=query.account,
        trading_group=query.trading_group,
        symbol=query.symbol,
        correlation_id=query.correlation_id,
        client_order_id=query.client_order_id,
        since=query.since,
        until=query.until,
        after=query.after,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return FillPage(
        items=[FillPublic.model_validate(r, from_attributes=True) for r in page],
        next_after=page[-1].id if len(rows) > query.limit else None,
    )
