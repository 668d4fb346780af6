"""Storage operations on configuration: keyword-only functions over one session.

Functions flush but do not commit; the caller (a request) commits once, so a
multi-step change (create a group and its subscriptions and its token) is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.security import hash_token, new_token
from shared.db.models import (
    ExecutionServiceRow,
    TokenRow,
    TradeAccountRow,
    TradingGroupRow,
    TriggerRow,
)
from shared.events import Role


class NotFound(LookupError):
    """A named resource does not exist."""

    def __init__(self, kind: str, names: Sequence[str]) -> None:
        self.kind = kind
        self.names = list(names)
        super().__init__(f"unknown {kind}: {', '.join(self.names)}")


ROLE_TABLE: dict[Role, type[TriggerRow] | type[TradingGroupRow] | type[ExecutionServiceRow]] = {
    Role.TRIGGER: TriggerRow,
    Role.TRADING_GROUP: TradingGroupRow,
    Role.EXECUTION: ExecutionServiceRow,
}


# --------------------------------------------------------------------------- tokens


async def issue_token(*, session: AsyncSession, role: Role, principal_id: int) -> str:
    """Revoke the principal's live tokens and issue a new one; returns it (shown once)."""
    await revoke_tokens(session=session, role=role, principal_id=principal_id)
    token = new_token(role)
    session.add(TokenRow(token_hash=hash_token(token), role=role.value, principal_id=principal_id))
    await session.flush()
    return token


async def revoke_tokens(*, session: AsyncSession, role: Role, principal_id: int) -> int:
    result = await session.execute(
        update(TokenRow)
        .where(
            TokenRow.role == role.value,
            TokenRow.principal_id == principal_id,
            TokenRow.revoked.is_(False),
        )
        .values(revoked=True, revoked_at=datetime.now(UTC))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def has_live_token(*, session: AsyncSession, role: Role, principal_id: int) -> bool:
    found = await session.scalar(
        select(TokenRow.id).where(
            TokenRow.role == role.value,
            TokenRow.principal_id == principal_id,
            TokenRow.revoked.is_(False),
        )
    )
    return found is not None


# --------------------------------------------------------------------------- lookups


async def get_by_name[T: (TriggerRow, TradingGroupRow, TradeAccountRow, ExecutionServiceRow)](
    *, session: AsyncSession, model: type[T], name: str
) -> T:
    row = await session.scalar(select(model).where(model.name == name))
    if row is None:
        raise NotFound(model.__tablename__.rstrip("s").replace("_", " "), [name])
    return row


async def get_many_by_name[T: (TriggerRow, TradingGroupRow, TradeAccountRow, ExecutionServiceRow)](
    *, session: AsyncSession, model: type[T], names: Sequence[str]
) -> list[T]:
    """Rows in the order of `names`; raises NotFound naming every missing one."""
    if not names:
        return []
    rows = {r.name: r for r in await session.scalars(select(model).where(model.name.in_(names)))}
    missing = [n for n in names if n not in rows]
    if missing:
        raise NotFound(model.__tablename__.rstrip("s").replace("_", " "), missing)
    return [rows[n] for n in dict.fromkeys(names)]


async def list_all[T: (TriggerRow, TradingGroupRow, TradeAccountRow, ExecutionServiceRow)](
    *, session: AsyncSession, model: type[T]
) -> list[T]:
    return list(await session.scalars(select(model).order_by(model.name)))


# --------------------------------------------------------------------------- creates


async def create_trigger(
    *, session: AsyncSession, name: str, description: str = "", config: dict[str, Any] | None = None
) -> tuple[TriggerRow, str]:
    row = TriggerRow(name=name, description=description, config=config or {})
    session.add(row)
    await session.flush()
    token = await issue_token(session=session, role=Role.TRIGGER, principal_id=row.id)
    return row, token


async def create_trading_group(
    *,
    session: AsyncSession,
    name: str,
    triggers: Sequence[str] = (),
    kind: str = "algo",
    description: str = "",
    config: dict[str, Any] | None = None,
) -> tuple[TradingGroupRow, str]:
    trigger_rows = await get_many_by_name(session=session, model=TriggerRow, names=triggers)
    row = TradingGroupRow(name=name, kind=kind, description=description, config=config or {})
    row.triggers = trigger_rows
    session.add(row)
    await session.flush()
    token = await issue_token(session=session, role=Role.TRADING_GROUP, principal_id=row.id)
    return row, token


async def create_trade_account(
    *,
    session: AsyncSession,
    name: str,
    exchange: str,
    trading_groups: Sequence[str] = (),
    mode: str = "paper",
    config: dict[str, Any] | None = None,
    credentials_encrypted: bytes | None = None,
) -> TradeAccountRow:
    groups = await get_many_by_name(session=session, model=TradingGroupRow, names=trading_groups)
    row = TradeAccountRow(
        name=name,
        exchange=exchange,
        mode=mode,
        config=config or {},
        credentials_encrypted=credentials_encrypted,
    )
    row.trading_groups = groups
    session.add(row)
    await session.flush()
    return row


async def create_execution_service(
    *,
    session: AsyncSession,
    name: str,
    trade_accounts: Sequence[str] = (),
    description: str = "",
    config: dict[str, Any] | None = None,
) -> tuple[ExecutionServiceRow, str]:
    accounts = await get_many_by_name(session=session, model=TradeAccountRow, names=trade_accounts)
    row = ExecutionServiceRow(name=name, description=description, config=config or {})
    row.trade_accounts = accounts
    session.add(row)
    await session.flush()
    token = await issue_token(session=session, role=Role.EXECUTION, principal_id=row.id)
    return row, token
