"""Service logs and discussion transcripts sent as `log` frames, for operators."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from gateway.api.deps import SessionDep
from gateway.api.schemas import LogPage, LogPublic, LogQuery
from gateway.db import crud
from shared.events import LogLevel, Trace

router = APIRouter(prefix="/logs", tags=["logs"])


@router.get("")
async def list_logs(query: Annotated[LogQuery, Query()], session: SessionDep) -> LogPage:
    """Log frames, oldest first (or newest first with `order=desc`). Page on by passing
    `next_after` back as `after`."""
    rows = await crud.list_logs(
        session=session,
        source=query.source,
        code=query.code,
        level=query.level,
        correlation_id=query.correlation_id,
        since=query.since,
        until=query.until,
        after=query.after,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return LogPage(
        items=[
            LogPublic(
                seq=r.seq,
                id=UUID(r.id),
                source=r.source,
                level=LogLevel(r.level),
                code=r.code,
                message=r.message,
                data=r.data,
                trace=Trace(correlation_id=r.correlation_id, causation_id=r.causation_id),
                ts=r.ts,
            )
            for r in page
        ],
        next_after=page[-1].seq if len(rows) > query.limit else None,
    )
