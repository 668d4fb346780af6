"""The event store, for operators: every accepted event, filtered and paged by `seq`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from gateway.api.deps import SessionDep
from gateway.api.schemas import EventPage, EventQuery
from gateway.db import crud
from gateway.ws.persist import frame_with_seq

router = APIRouter(prefix="/events", tags=["events"])


@router.get("", response_model=EventPage)
async def list_events(query: Annotated[EventQuery, Query()], session: SessionDep) -> Response:
    """Events as they were delivered on /ws/events, oldest first (or newest first with
    `order=desc`). Page on by passing `next_after` back as `after`."""
    rows = await crud.list_events(
        session=session,
        category=query.category,
        source=query.source,
        symbol=query.symbol,
        correlation_id=query.correlation_id,
        since=query.since,
        until=query.until,
        after=query.after,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    next_after = str(page[-1][0]) if len(rows) > query.limit else "null"
    # The stored bodies are the delivered frames already: splice them in verbatim
    # rather than parse and re-encode every one.
    items = ",".join(frame_with_seq(seq, body) for seq, body in page)
    return Response(
        f'{{"items":[{items}],"next_after":{next_after}}}', media_type="application/json"
    )
