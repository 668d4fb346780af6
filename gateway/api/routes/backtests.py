"""Backtests: run one in the background from a request, follow it, read its result.

`POST` checks the request the way `ats backtest` does (`BacktestRequest`: a known
strategy, valid params, candle files whose names say their market; a bad param's 422
names it, as a trading group's does: `BacktestCreate`), confines its
files to the directories a backtest may read (the repository's `data/` and
`ATS_BACKTEST_DATA_DIRS`), stores it `queued` and answers 202 at once; a worker
process runs it (`gateway/backtests.py`). `GET` shows its status and progress, and
once done its metrics and whole result.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError

from gateway.api.deps import SessionDep, StateDep
from gateway.api.routes._common import Responses
from gateway.api.schemas import (
    BacktestAccepted,
    BacktestCreate,
    BacktestPage,
    BacktestPublic,
    BacktestQuery,
    BacktestSummary,
    Problem,
)
from gateway.backtests import DataPathError, confine_data
from gateway.db import crud
from shared.db.models import BacktestRow

router = APIRouter(prefix="/backtests", tags=["backtests"])

_NOT_FOUND: Responses = {404: {"model": Problem, "description": "No backtest has that id."}}
BacktestId = Annotated[str, Path(max_length=36, description="The id `POST` returned.")]


def _cursor(row: BacktestRow) -> str:
    """The page key `(created_at, id)` as one opaque, URL-safe string."""
    key = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, backtest_id = key.split("|", 1)
        created_at = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise _bad_cursor() from e
    if created_at.tzinfo is None:
        raise _bad_cursor()
    return created_at, backtest_id


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


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Run a backtest in the background",
    response_description="Queued: follow it at the `Location` header's URL.",
)
async def create_backtest(
    body: BacktestCreate, session: SessionDep, state: StateDep, response: Response
) -> BacktestAccepted:
    """Check the request, store it and start it; 202 with its id. A bad field, an
    unknown strategy or bad params, or a data file that does not exist or lies
    outside the readable directories is a 422 saying which."""
    try:
        request = confine_data(body, state.settings.backtest_data_dirs)
    except DataPathError as e:
        raise RequestValidationError(
            [{"loc": ("body", "data", e.index, "path"), "msg": str(e), "type": "data_path"}]
        ) from e
    backtest_id = str(uuid.uuid4())
    stored = request.model_dump(mode="json")
    await crud.create_backtest(session=session, backtest_id=backtest_id, request=stored)
    await session.commit()
    state.backtests.submit(backtest_id, stored)
    response.headers["Location"] = f"/api/v1/backtests/{backtest_id}"
    return BacktestAccepted(id=backtest_id, status="queued")


@router.get("")
async def list_backtests(
    query: Annotated[BacktestQuery, Query()], session: SessionDep
) -> BacktestPage:
    """Backtests, newest first (oldest first with `order=asc`), with their metrics but
    not their results. Page on by passing `next_after` back as `after`."""
    rows = await crud.list_backtests(
        session=session,
        status=query.status,
        after=_parse_cursor(query.after) if query.after is not None else None,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return BacktestPage(
        items=[BacktestSummary.model_validate(r, from_attributes=True) for r in page],
        next_after=_cursor(page[-1]) if len(rows) > query.limit else None,
    )


@router.get("/{backtest_id}", responses=_NOT_FOUND)
async def get_backtest(backtest_id: BacktestId, session: SessionDep) -> BacktestPublic:
    """Status and progress; once `done` the metrics and the whole result (trades,
    equity curve), once `failed` the error."""
    try:
        row = await crud.get_backtest(session=session, backtest_id=backtest_id)
    except crud.NotFound as e:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"backtest {backtest_id!r} not found: list them at /api/v1/backtests",
        ) from e
    return BacktestPublic.model_validate(row, from_attributes=True)
