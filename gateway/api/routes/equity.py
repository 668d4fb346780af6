"""An account's equity over time, from the snapshots the execution service records
after each fill and once per sync interval, with a summary of where it stands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import SessionDep
from gateway.api.routes._common import NOT_FOUND, get_or_404
from gateway.api.schemas import EquityPage, EquityQuery, EquitySnapshotPublic, EquitySummary
from gateway.db import crud
from shared.db.models import TradeAccountRow
from shared.kernel.risk.model import trading_day_start

router = APIRouter(prefix="/accounts", tags=["equity"])


async def _summary(session: SessionDep, account: str) -> EquitySummary:
    # The same day boundary as the risk engine's daily limits: midnight UTC.
    totals = await crud.equity_totals(
        session=session, account=account, day_start=trading_day_start(datetime.now(UTC))
    )
    latest = totals.latest
    if latest is None:
        return EquitySummary(
            at=None, currency=None, equity=None, realized_pnl_today=None, max_drawdown=None
        )
    # realized_pnl accumulates from the account's start: today's is the growth since
    # the last snapshot of yesterday, or all of it for an account that started today.
    before = totals.before_day.realized_pnl if totals.before_day is not None else 0
    return EquitySummary(
        at=latest.at,
        currency=latest.currency,
        equity=latest.equity,
        realized_pnl_today=latest.realized_pnl - before,
        max_drawdown=totals.max_drawdown,
    )


@router.get("/{name}/equity", responses=NOT_FOUND)
async def get_equity(
    name: str, query: Annotated[EquityQuery, Query()], session: SessionDep
) -> EquityPage:
    """The trade account's equity snapshots, oldest first (or newest first with
    `order=desc`), paged like the other lists, and a `summary` of all of them."""
    await get_or_404(session, TradeAccountRow, name)
    rows = await crud.list_equity(
        session=session,
        account=name,
        since=query.since,
        until=query.until,
        after=query.after,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return EquityPage(
        account=name,
        items=[EquitySnapshotPublic.model_validate(r, from_attributes=True) for r in page],
        next_after=page[-1].id if len(rows) > query.limit else None,
        summary=await _summary(session, name) if query.summary else None,
    )
