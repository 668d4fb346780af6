"""Discussions: how an LLM trading group talked a signal over, member by member, and
what it decided. Each links to the signal it discussed, the decision it led to and the
LLM calls it made."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError

from gateway.api.deps import SessionDep
from gateway.api.routes._common import Responses
from gateway.api.routes.llm_usage import llm_totals
from gateway.api.schemas import (
    DiscussionDetail,
    DiscussionLlmCalls,
    DiscussionMessagePublic,
    DiscussionPage,
    DiscussionPublic,
    DiscussionQuery,
    MemberLlmTotals,
    Problem,
)
from gateway.db import crud
from gateway.ws.persist import frame_with_seq
from shared.db.models import DiscussionRow
from shared.events import DeliveredEvent, event_adapter

router = APIRouter(prefix="/discussions", tags=["discussions"])

_NOT_FOUND: Responses = {404: {"model": Problem, "description": "No discussion has that id."}}
DiscussionId = Annotated[str, Path(max_length=36, description="The discussion's id.")]


def _cursor(row: DiscussionRow) -> str:
    """The page key `(started_at, id)` as one opaque, URL-safe string."""
    key = f"{row.started_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, discussion_id = key.split("|", 1)
        started_at = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise _bad_cursor() from e
    if started_at.tzinfo is None:
        raise _bad_cursor()
    return started_at, discussion_id


def _bad_cursor() -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "loc": ("query", "after"),
                "msg": "not a cursor of this list: pass the previous page's `next_after` unchanged",
                "type": "invalid_cursor",
            }
        ]
    )


@router.get("")
async def list_discussions(
    query: Annotated[DiscussionQuery, Query()], session: SessionDep
) -> DiscussionPage:
    """Discussions, oldest first (or newest first with `order=desc`), without their
    messages. Page on by passing `next_after` back as `after`."""
    rows = await crud.list_discussions(
        session=session,
        trading_group=query.trading_group,
        symbol=query.symbol,
        status=query.status,
        correlation_id=query.correlation_id,
        since=query.since,
        until=query.until,
        after=_parse_cursor(query.after) if query.after is not None else None,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return DiscussionPage(
        items=[DiscussionPublic.model_validate(r, from_attributes=True) for r in page],
        next_after=_cursor(page[-1]) if len(rows) > query.limit else None,
    )


@router.get("/{discussion_id}", responses=_NOT_FOUND)
async def get_discussion(discussion_id: DiscussionId, session: SessionDep) -> DiscussionDetail:
    """The discussion with every message in order, the signal and decision events it
    links to (as `/api/v1/events` shows them), and what its LLM calls used and cost,
    in total and per member."""
    try:
        row = await crud.get_discussion(session=session, discussion_id=discussion_id)
    except crud.NotFound as e:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"discussion {discussion_id!r} not found: list them at /api/v1/discussions",
        ) from e
    messages = await crud.discussion_messages(session=session, discussion_id=row.id)
    linked = [i for i in (row.signal_id, row.decision_id) if i is not None]
    stored = await crud.events_by_id(session=session, ids=linked)

    def event(event_id: str | None) -> DeliveredEvent | None:
        if event_id is None or event_id not in stored:
            return None
        return event_adapter.validate_json(frame_with_seq(*stored[event_id]))

    usage = await crud.llm_usage(session=session, group_by=("member",), discussion_id=row.id)
    return DiscussionDetail(
        **DiscussionPublic.model_validate(row, from_attributes=True).model_dump(),
        messages=[
            DiscussionMessagePublic.model_validate(m, from_attributes=True) for m in messages
        ],
        signal=event(row.signal_id),
        decision=event(row.decision_id),
        llm_calls=DiscussionLlmCalls(
            **llm_totals(usage.total).model_dump(),
            currency="USD",
            by_member=[
                MemberLlmTotals(**llm_totals(g).model_dump(), member=g.member or "")
                for g in usage.groups
            ],
        ),
    )
