"""Orders the execution service placed (or tried to), each with what is known of it;
one order is addressed by its account and client order id, and comes with its fills."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from gateway.api.deps import SessionDep
from gateway.api.routes._common import Responses
from gateway.api.schemas import FillPublic, OrderDetail, OrderPage, OrderPublic, OrderQuery, Problem
from gateway.db import crud

router = APIRouter(prefix="/orders", tags=["orders"])

_NOT_FOUND: Responses = {
    404: {"model": Problem, "description": "The account has no order with that client order id."}
}


@router.get("")
async def list_orders(query: Annotated[OrderQuery, Query()], session: SessionDep) -> OrderPage:
    """Orders, oldest first (or newest first with `order=desc`). Page on by passing
    `next_after` back as `after`."""
    rows = await crud.list_orders(
        session=session,
        account=query.account,
        trading_group=query.trading_group,
        symbol=query.symbol,
        statuses=[s.value for s in query.status],
        is_open=query.open,
        correlation_id=query.correlation_id,
        client_order_id=query.client_order_id,
        since=query.since,
        until=query.until,
        after=query.after,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return OrderPage(
        items=[OrderPublic.model_validate(r, from_attributes=True) for r in page],
        next_after=page[-1].id if len(rows) > query.limit else None,
    )


@router.get("/{account}/{client_order_id}", responses=_NOT_FOUND)
async def get_order(account: str, client_order_id: str, session: SessionDep) -> OrderDetail:
    """One order and its fills, oldest first. The client order id is in the order's
    `order` events and in `GET /api/v1/orders`."""
    try:
        row = await crud.get_order(
            session=session, account=account, client_order_id=client_order_id
        )
    except crud.NotFound as e:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"order {client_order_id!r} of account {account!r} not found: "
            f"list them at /api/v1/orders?account={account}",
        ) from e
    fills = await crud.order_fills(
        session=session, account=account, client_order_id=client_order_id
    )
    return OrderDetail(
        **OrderPublic.model_validate(row, from_attributes=True).model_dump(),
        fills=[FillPublic.model_validate(f, from_attributes=True) for f in fills],
    )
