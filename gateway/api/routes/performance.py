"""A trading group's performance: its LLM spend beside the PnL its trades realized.

The two are in different currencies (LLM cost in USD from the price table, PnL in each
trade account's currency), so they are reported side by side with their units, and
never added or netted.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from gateway.api.deps import SessionDep
from gateway.api.routes._common import NOT_FOUND, get_or_404
from gateway.api.routes.llm_usage import llm_totals
from gateway.api.schemas import AccountPnl, GroupPerformance, GroupTrading, LlmSpend
from gateway.db import crud
from shared.db.models import TradingGroupRow
from shared.kernel.risk.model import trading_day_start

router = APIRouter(prefix="/trading-groups", tags=["trading groups"])


@router.get("/{name}/performance", responses=NOT_FOUND)
async def get_performance(name: str, session: SessionDep) -> GroupPerformance:
    """The group's LLM calls, tokens and cost (USD) today and in total, beside the
    realized PnL and closed trades of its fills, per trade account in that account's
    currency. Today starts at midnight UTC, as the daily budgets and limits do."""
    await get_or_404(session, TradingGroupRow, name)
    day_start = trading_day_start(datetime.now(UTC))
    today = await crud.llm_usage(session=session, group_by=(), trading_group=name, since=day_start)
    total = await crud.llm_usage(session=session, group_by=(), trading_group=name)
    accounts = await crud.group_realized_pnl(
        session=session, trading_group=name, day_start=day_start
    )
    return GroupPerformance(
        trading_group=name,
        day_start=day_start,
        llm=LlmSpend(currency="USD", today=llm_totals(today.total), total=llm_totals(total.total)),
        trading=GroupTrading(
            closed_trades=sum(a.closed_trades for a in accounts),
            closed_trades_today=sum(a.closed_trades_today for a in accounts),
            accounts=[AccountPnl.model_validate(a, from_attributes=True) for a in accounts],
        ),
    )
