"""Order intents: what the execution service made of each decision for each account,
accepted with its size or rejected with the risk check that refused, and why."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from gateway.api.deps import SessionDep
from gateway.api.routes._common import Responses
from gateway.api.schemas import IntentPage, IntentPublic, IntentQuery, Problem
from gateway.db import crud
from shared.db.models import OrderIntentRow

router = APIRouter(prefix="/intents", tags=["intents"])

_NOT_FOUND: Responses = {404: {"model": Problem, "description": "No intent has that id."}}


def _cursor(row: OrderIntentRow) -> str:
    """The page key `(created_at, id)` as one opaque, URL-safe string."""
    key = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, intent_id = key.split("|", 1)
        created_at = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "after"),
                    "msg": "not a cursor of this list: pass the previous page's `next_after` "
                    "unchanged",
                    "type": "invalid_cursor",
                }
            ]
        ) from e
    if created_at.tzinfo is None:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "after"),
                    "msg": "cursor without timezone",
                    "type": "invalid_cursor",
                }
            ]
        )
    return created_at, intent_id


@router.get("")
async def list_intents(query: Annotated[IntentQuery, Query()], session: SessionDep) -> IntentPage:
    """Intents, oldest first (or newest first with `order=desc`). Page on by passing
    `next_after` back as `after`."""
    rows = await crud.list_intents(
        session=session,
        account=query.account,
        trading_group=query.trading_group,
        symbol=query.symbol,
        status=query.status,
        reason=query.reason,
        correlation_id=query.correlation_id,
        since=query.since,
        until=query.until,
        after=_parse_cursor(query.after) if query.after is not None else None,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return IntentPage(
        items=[IntentPublic.model_validate(r, from_attributes=True) for r in page],
        next_after=_cursor(page[-1]) if len(rows) > query.limit else None,
    )


@router.get("/{intent_id}", responses=_NOT_FOUND)
async def get_intent(intent_id: str, session: SessionDep) -> IntentPublic:
    try:
        row = await crud.get_intent(session=session, intent_id=intent_id)
    except crud.NotFound as e:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"intent {intent_id!r} not found: list them at /api/v1/intents",
        ) from e
    return IntentPublic.model_validate(row, from_attributes=True)
