"""LLM usage: how many calls the LLM trading groups made, how many tokens they used and
what they cost, split by group, model, member and UTC day."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import SessionDep
from gateway.api.schemas import (
    LlmCallsByStatus,
    LlmTotals,
    LlmUsageGroup,
    LlmUsageQuery,
    LlmUsageReport,
)
from gateway.db import crud

router = APIRouter(prefix="/llm-usage", tags=["llm usage"])


def llm_totals(usage: crud.LlmUsage) -> LlmTotals:
    """The API's view of stored totals; the other LLM resources report the same."""
    return LlmTotals(
        calls=usage.calls,
        calls_by_status=LlmCallsByStatus(ok=usage.ok, invalid=usage.invalid, error=usage.error),
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        cost=usage.cost,
    )


@router.get("")
async def get_llm_usage(
    query: Annotated[LlmUsageQuery, Query()], session: SessionDep
) -> LlmUsageReport:
    """Calls (and calls by status), tokens in and out and cost of the calls the filters
    select, one item per `group_by` combination that has calls, sorted by those keys,
    and their `total`. Cost is in USD and exact, summed in one query."""
    report = await crud.llm_usage(
        session=session,
        group_by=query.group_by,
        trading_group=query.trading_group,
        model=query.model,
        member=query.member,
        since=query.since,
        until=query.until,
    )
    return LlmUsageReport(
        group_by=query.group_by,
        currency="USD",
        items=[
            LlmUsageGroup(
                **llm_totals(g).model_dump(),
                trading_group=g.trading_group,
                model=g.model,
                member=g.member,
                day=g.day,
            )
            for g in report.groups
        ],
        total=llm_totals(report.total),
    )
