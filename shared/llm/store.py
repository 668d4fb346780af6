"""The LLM tables: every call, every discussion with its transcript, reflections.

Each write is its own short transaction, committed before anyone is told (a log
frame, a decision), so what was announced is on disk. The gateway reads these tables
for its REST API (`/api/v1/llm-usage`, `/api/v1/discussions`); they are written here.

Today's spend is one aggregate query. Costs are exact on both databases: PostgreSQL
sums NUMERIC exactly; SQLite keeps `Money` as text, whose SUM would add doubles, so
there the same query concatenates the day's costs and Python adds them as decimals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from shared.db.models import DiscussionMessageRow, DiscussionRow, LlmCallRow, ReflectionRow
from shared.db.money import money_sum
from shared.llm.budget import Usage
from shared.llm.client import ChatMessage

_ZERO = Decimal(0)

#: What a discussion ends as. `decided`: a BUY, SELL or CLOSE was published;
#: `hold`: the team chose not to trade; `failed`: it could not finish (a member's
#: invalid output or failed call, the budget, an error), which is a HOLD too.
FINISHED = ("decided", "hold", "failed")


class LlmStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    # ------------------------------------------------------------------ calls

    async def spent_since(self, group: str, since: datetime) -> Usage:
        """Tokens (in + out) and cost of the group's calls since `since`: one query."""
        async with self.sessions() as s:
            row = (
                await s.execute(
                    select(
                        func.coalesce(func.sum(LlmCallRow.tokens_in + LlmCallRow.tokens_out), 0),
                        money_sum(LlmCallRow.cost),
                    ).where(LlmCallRow.trading_group == group, LlmCallRow.created_at >= since)
                )
            ).one()
        return Usage(int(row[0]), row[1] if row[1] is not None else _ZERO)

    async def record_call(
        self,
        *,
        group: str,
        member: str,
        model: str,
        prompt_hash: str,
        messages: Sequence[ChatMessage],
        answer: str | None,
        status: str,
        error: str | None,
        tokens_in: int,
        tokens_out: int,
        cost: Decimal,
        latency_ms: float,
        created_at: datetime,
        discussion_id: str | None = None,
        correlation_id: str | None = None,
    ) -> int:
        """Store one call; return its id."""
        row = LlmCallRow(
            trading_group=group,
            member=member,
            model=model,
            discussion_id=discussion_id,
            correlation_id=correlation_id,
            prompt_hash=prompt_hash,
            prompt=[m.to_json() for m in messages],
            answer=answer,
            status=status,
            error=error,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            latency_ms=latency_ms,
            created_at=created_at,
        )
        async with self.sessions.begin() as s:
            s.add(row)
        return row.id

    async def calls(self, *, discussion_id: str) -> list[LlmCallRow]:
        """A discussion's calls, in the order they were stored."""
        async with self.sessions() as s:
            result = await s.scalars(
                select(LlmCallRow)
                .where(LlmCallRow.discussion_id == discussion_id)
                .order_by(LlmCallRow.id)
            )
            return list(result)

    # ------------------------------------------------------------------ discussions

    async def start_discussion(
        self,
        *,
        id: str,
        group: str,
        signal_id: str | None,
        correlation_id: str | None,
        symbol: str | None,
        started_at: datetime,
    ) -> None:
        async with self.sessions.begin() as s:
            s.add(
                DiscussionRow(
                    id=id,
                    trading_group=group,
                    signal_id=signal_id,
                    correlation_id=correlation_id,
                    symbol=symbol,
                    status="running",
                    tokens_in=0,
                    tokens_out=0,
                    cost=_ZERO,
                    started_at=started_at,
                )
            )

    async def add_message(
        self,
        *,
        discussion_id: str,
        seq: int,
        member: str,
        role: str,
        kind: str,
        content: str,
        data: Mapping[str, Any],
        created_at: datetime,
        llm_call_id: int | None = None,
    ) -> None:
        async with self.sessions.begin() as s:
            s.add(
                DiscussionMessageRow(
                    discussion_id=discussion_id,
                    seq=seq,
                    member=member,
                    role=role,
                    kind=kind,
                    content=content,
                    data=dict(data),
                    llm_call_id=llm_call_id,
                    created_at=created_at,
                )
            )

    async def finish_discussion(
        self,
        id: str,
        *,
        status: str,
        action: str | None,
        reason: str | None,
        finished_at: datetime,
        decision_id: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost: Decimal = _ZERO,
    ) -> None:
        if status not in FINISHED:
            raise ValueError(f"a discussion finishes as one of {FINISHED}, not {status!r}")
        async with self.sessions.begin() as s:
            await s.execute(
                update(DiscussionRow)
                .where(DiscussionRow.id == id)
                .values(
                    status=status,
                    action=action,
                    reason=reason,
                    decision_id=decision_id,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    cost=cost,
                    finished_at=finished_at,
                )
            )

    async def discussion(self, id: str) -> DiscussionRow | None:
        async with self.sessions() as s:
            return await s.get(DiscussionRow, id)

    async def discussion_of_signal(self, group: str, signal_id: str) -> DiscussionRow | None:
        """The group's latest discussion of a signal (a re-delivered signal has one)."""
        async with self.sessions() as s:
            return await s.scalar(
                select(DiscussionRow)
                .where(DiscussionRow.trading_group == group, DiscussionRow.signal_id == signal_id)
                .order_by(DiscussionRow.started_at.desc(), DiscussionRow.id.desc())
                .limit(1)
            )

    async def messages(self, discussion_id: str) -> list[DiscussionMessageRow]:
        """A discussion's transcript, in the order it was said."""
        async with self.sessions() as s:
            result = await s.scalars(
                select(DiscussionMessageRow)
                .where(DiscussionMessageRow.discussion_id == discussion_id)
                .order_by(DiscussionMessageRow.seq)
            )
            return list(result)

    async def recent_discussions(self, group: str, *, limit: int) -> list[DiscussionRow]:
        """The group's latest finished discussions, newest first."""
        if limit <= 0:
            return []
        async with self.sessions() as s:
            result = await s.scalars(
                select(DiscussionRow)
                .where(DiscussionRow.trading_group == group, DiscussionRow.status.in_(FINISHED))
                .order_by(DiscussionRow.started_at.desc(), DiscussionRow.id.desc())
                .limit(limit)
            )
            return list(result)

    async def decided(
        self, group: str, *, symbol: str, action: str, before: datetime | None = None
    ) -> DiscussionRow | None:
        """The group's latest discussion that published `action` on `symbol`."""
        conditions = [
            DiscussionRow.trading_group == group,
            DiscussionRow.symbol == symbol,
            DiscussionRow.status == "decided",
            DiscussionRow.action == action,
        ]
        if before is not None:
            conditions.append(DiscussionRow.started_at <= before)
        async with self.sessions() as s:
            return await s.scalar(
                select(DiscussionRow)
                .where(*conditions)
                .order_by(DiscussionRow.started_at.desc(), DiscussionRow.id.desc())
                .limit(1)
            )

    async def discussion_of_decision(self, decision_id: str) -> DiscussionRow | None:
        async with self.sessions() as s:
            return await s.scalar(
                select(DiscussionRow).where(DiscussionRow.decision_id == decision_id).limit(1)
            )

    # ------------------------------------------------------------------ reflections

    async def add_reflection(
        self,
        *,
        group: str,
        symbol: str,
        decision_id: str | None,
        pnl: Decimal | None,
        content: str,
        created_at: datetime,
    ) -> int:
        row = ReflectionRow(
            trading_group=group,
            symbol=symbol,
            decision_id=decision_id,
            pnl=pnl,
            content=content,
            created_at=created_at,
        )
        async with self.sessions.begin() as s:
            s.add(row)
        return row.id

    async def has_reflection(self, group: str, decision_id: str) -> bool:
        async with self.sessions() as s:
            found = await s.scalar(
                select(ReflectionRow.id)
                .where(
                    ReflectionRow.trading_group == group, ReflectionRow.decision_id == decision_id
                )
                .limit(1)
            )
        return found is not None

    async def reflections(self, group: str, *, symbol: str, limit: int) -> list[ReflectionRow]:
        """The group's most relevant recent reflections: those on `symbol` first, then
        the others, newest first within each; at most `limit`."""
        if limit <= 0:
            return []
        same = case((ReflectionRow.symbol == symbol, 0), else_=1)
        async with self.sessions() as s:
            result = await s.scalars(
                select(ReflectionRow)
                .where(ReflectionRow.trading_group == group)
                .order_by(same, ReflectionRow.created_at.desc(), ReflectionRow.id.desc())
                .limit(limit)
            )
            return list(result)
