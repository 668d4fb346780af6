"""Storage operations: configuration, and the operator's reads of events, logs and
what the execution service and the LLM trading groups stored.

Keyword-only functions over one session. They flush but do not commit; the caller (a
request) commits once, so a multi-step change (create a group and its subscriptions
and its token) is atomic. Update functions take `None` for "keep the stored value".
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Numeric,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, defer
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from gateway.security import hash_token, new_token
from shared.db.models import (
    BacktestRow,
    ClientCursor,
    DiscussionMessageRow,
    DiscussionRow,
    EquitySnapshotRow,
    EventRow,
    ExecutionServiceAccount,
    ExecutionServiceRow,
    FillRow,
    IncidentRow,
    LlmCallRow,
    LogRow,
    OrderIntentRow,
    OrderRow,
    PositionRow,
    StrategyRow,
    TokenRow,
    TradeAccountRow,
    TradingGroupRow,
    TriggerRow,
)
from shared.db.money import exact_sum, money_sum, plain
from shared.events import Role
from shared.kernel.orders import WORKING, OrderStatus
from shared.kernel.rules import dump_rules, parse_rules

type ConfigRow = TriggerRow | TradingGroupRow | TradeAccountRow | ExecutionServiceRow


class NotFound(LookupError):
    """A named resource does not exist."""

    def __init__(self, kind: str, names: Sequence[str]) -> None:
        self.kind = kind
        self.names = list(names)
        super().__init__(f"unknown {kind}: {', '.join(self.names)}")


class NameTaken(Exception):
    """Another resource of the same kind already has the name."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r} already exists: choose another name")


class AlreadyServed(Exception):
    """A trade account is already served by another execution service."""

    def __init__(self, served: dict[str, str]) -> None:
        self.served = served
        which = ", ".join(f"{a!r} by {s!r}" for a, s in served.items())
        super().__init__(
            f"trade account already served by another execution service: {which}; "
            "an account has one execution service, so remove it from that service first"
        )


def kind_of(model: type[ConfigRow]) -> str:
    """The resource's name in messages: `trading_groups` -> `trading group`."""
    return model.__tablename__.rstrip("s").replace("_", " ")


ROLE_TABLE: dict[Role, type[TriggerRow] | type[TradingGroupRow] | type[ExecutionServiceRow]] = {
    Role.TRIGGER: TriggerRow,
    Role.TRADING_GROUP: TradingGroupRow,
    Role.EXECUTION: ExecutionServiceRow,
}
_ROLE_OF: dict[type[ConfigRow], Role] = {model: role for role, model in ROLE_TABLE.items()}


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


async def live_token_principals(*, session: AsyncSession, role: Role) -> set[int]:
    """Ids of the principals of `role` that hold an unrevoked token."""
    rows = await session.scalars(
        select(TokenRow.principal_id).where(
            TokenRow.role == role.value, TokenRow.revoked.is_(False)
        )
    )
    return set(rows)


# --------------------------------------------------------------------------- lookups


async def get_by_name[T: (TriggerRow, TradingGroupRow, TradeAccountRow, ExecutionServiceRow)](
    *, session: AsyncSession, model: type[T], name: str
) -> T:
    row = await session.scalar(select(model).where(model.name == name))
    if row is None:
        raise NotFound(kind_of(model), [name])
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
        raise NotFound(kind_of(model), missing)
    return [rows[n] for n in dict.fromkeys(names)]


async def ensure_name_free(
    *, session: AsyncSession, model: type[ConfigRow], name: str, exclude_id: int | None = None
) -> None:
    """Raise NameTaken if another row of `model` has `name`; the unique index is the
    last word, this only turns the common case into a clear message."""
    query = select(model.id).where(model.name == name)
    if exclude_id is not None:
        query = query.where(model.id != exclude_id)
    if await session.scalar(query) is not None:
        raise NameTaken(kind_of(model), name)


async def list_all[T: (TriggerRow, TradingGroupRow, TradeAccountRow, ExecutionServiceRow)](
    *, session: AsyncSession, model: type[T]
) -> list[T]:
    return list(await session.scalars(select(model).order_by(model.name)))


# --------------------------------------------------------------------------- cursors


async def start_cursor_at_head(*, session: AsyncSession, role: Role, name: str) -> None:
    """Start a client's replay cursor at the newest event.

    Replay finds a client's events by name; without this a new client named like a
    deleted (or renamed) one would be handed that one's history on first connect.
    """
    key = f"{role.value}:{name}"
    head = await session.scalar(select(func.max(EventRow.seq))) or 0
    await session.execute(delete(ClientCursor).where(ClientCursor.principal == key))
    session.add(ClientCursor(principal=key, seq=head))
    await session.flush()


# --------------------------------------------------------------------------- creates


async def create_trigger(
    *, session: AsyncSession, name: str, description: str = "", config: dict[str, Any] | None = None
) -> tuple[TriggerRow, str]:
    await ensure_name_free(session=session, model=TriggerRow, name=name)
    row = TriggerRow(name=name, description=description, config=config or {})
    session.add(row)
    await session.flush()
    await start_cursor_at_head(session=session, role=Role.TRIGGER, name=name)
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
    await ensure_name_free(session=session, model=TradingGroupRow, name=name)
    trigger_rows = await get_many_by_name(session=session, model=TriggerRow, names=triggers)
    row = TradingGroupRow(name=name, kind=kind, description=description, config=config or {})
    row.triggers = trigger_rows
    session.add(row)
    await session.flush()
    await start_cursor_at_head(session=session, role=Role.TRADING_GROUP, name=name)
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
    await ensure_name_free(session=session, model=TradeAccountRow, name=name)
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
    await ensure_name_free(session=session, model=ExecutionServiceRow, name=name)
    accounts = await get_many_by_name(session=session, model=TradeAccountRow, names=trade_accounts)
    await ensure_unserved(session=session, accounts=accounts)
    row = ExecutionServiceRow(name=name, description=description, config=config or {})
    row.trade_accounts = accounts
    session.add(row)
    await session.flush()
    await start_cursor_at_head(session=session, role=Role.EXECUTION, name=name)
    token = await issue_token(session=session, role=Role.EXECUTION, principal_id=row.id)
    return row, token


async def ensure_unserved(
    *, session: AsyncSession, accounts: Sequence[TradeAccountRow], service_id: int | None = None
) -> None:
    """Raise AlreadyServed if a service other than `service_id` serves one of `accounts`."""
    if not accounts:
        return
    query = (
        select(TradeAccountRow.name, ExecutionServiceRow.name)
        .join(ExecutionServiceAccount, ExecutionServiceAccount.account_id == TradeAccountRow.id)
        .join(ExecutionServiceRow, ExecutionServiceRow.id == ExecutionServiceAccount.service_id)
        .where(TradeAccountRow.id.in_([a.id for a in accounts]))
        .order_by(TradeAccountRow.name)
    )
    if service_id is not None:
        query = query.where(ExecutionServiceRow.id != service_id)
    served = {account: service for account, service in await session.execute(query)}
    if served:
        raise AlreadyServed(served)


async def account_services(*, session: AsyncSession) -> dict[int, str]:
    """The execution service serving each served trade account, by account id."""
    rows = await session.execute(
        select(ExecutionServiceAccount.account_id, ExecutionServiceRow.name).join(
            ExecutionServiceRow, ExecutionServiceRow.id == ExecutionServiceAccount.service_id
        )
    )
    return {account_id: service for account_id, service in rows}


# --------------------------------------------------------------------------- updates


async def _rename(*, session: AsyncSession, row: ConfigRow, name: str | None) -> None:
    if name is not None and name != row.name:
        await ensure_name_free(session=session, model=type(row), name=name, exclude_id=row.id)
        row.name = name
        role = _ROLE_OF.get(type(row))
        if role is not None:
            await start_cursor_at_head(session=session, role=role, name=name)


async def update_trigger(
    *,
    session: AsyncSession,
    row: TriggerRow,
    name: str | None = None,
    description: str | None = None,
    config: dict[str, Any] | None = None,
    enabled: bool | None = None,
) -> TriggerRow:
    await _rename(session=session, row=row, name=name)
    if description is not None:
        row.description = description
    if config is not None:
        row.config = config
    if enabled is not None:
        row.enabled = enabled
    await session.flush()
    return row


async def update_trading_group(
    *,
    session: AsyncSession,
    row: TradingGroupRow,
    name: str | None = None,
    triggers: Sequence[str] | None = None,
    kind: str | None = None,
    description: str | None = None,
    config: dict[str, Any] | None = None,
    enabled: bool | None = None,
) -> TradingGroupRow:
    """Update the given fields; `triggers` replaces the group's subscriptions."""
    await _rename(session=session, row=row, name=name)
    if triggers is not None:
        row.triggers = await get_many_by_name(session=session, model=TriggerRow, names=triggers)
    if kind is not None:
        row.kind = kind
    if description is not None:
        row.description = description
    if config is not None:
        row.config = config
    if enabled is not None:
        row.enabled = enabled
    await session.flush()
    return row


async def update_trade_account(
    *,
    session: AsyncSession,
    row: TradeAccountRow,
    name: str | None = None,
    exchange: str | None = None,
    mode: str | None = None,
    trading_groups: Sequence[str] | None = None,
    config: dict[str, Any] | None = None,
    credentials_encrypted: bytes | None = None,
    clear_credentials: bool = False,
) -> TradeAccountRow:
    """Update the given fields; `trading_groups` replaces the account's bindings."""
    await _rename(session=session, row=row, name=name)
    if exchange is not None:
        row.exchange = exchange
    if mode is not None:
        row.mode = mode
    if trading_groups is not None:
        row.trading_groups = await get_many_by_name(
            session=session, model=TradingGroupRow, names=trading_groups
        )
    if config is not None:
        row.config = config
    if clear_credentials:
        row.credentials_encrypted = None
    elif credentials_encrypted is not None:
        row.credentials_encrypted = credentials_encrypted
    await session.flush()
    return row


async def update_execution_service(
    *,
    session: AsyncSession,
    row: ExecutionServiceRow,
    name: str | None = None,
    trade_accounts: Sequence[str] | None = None,
    description: str | None = None,
    config: dict[str, Any] | None = None,
) -> ExecutionServiceRow:
    """Update the given fields; `trade_accounts` replaces the accounts it serves."""
    await _rename(session=session, row=row, name=name)
    if trade_accounts is not None:
        accounts = await get_many_by_name(
            session=session, model=TradeAccountRow, names=trade_accounts
        )
        await ensure_unserved(session=session, accounts=accounts, service_id=row.id)
        row.trade_accounts = accounts
    if description is not None:
        row.description = description
    if config is not None:
        row.config = config
    await session.flush()
    return row


# --------------------------------------------------------------------------- deletes


async def delete_client(
    *, session: AsyncSession, role: Role, row: TriggerRow | TradingGroupRow | ExecutionServiceRow
) -> None:
    """Delete a token holder; its tokens are revoked, since nothing else ties them to it."""
    await revoke_tokens(session=session, role=role, principal_id=row.id)
    await session.delete(row)
    await session.flush()


async def delete_trade_account(*, session: AsyncSession, row: TradeAccountRow) -> None:
    await session.delete(row)
    await session.flush()


# --------------------------------------------------------------------------- strategies


class StrategyDeleted(NotFound):
    """The strategy was deleted: its versions are kept for audit, but it cannot be used
    or edited, and its name is not given out again."""

    def __init__(self, name: str) -> None:
        super().__init__("strategy", [name])
        self.args = (
            f"strategy {name!r} was deleted; its versions are kept for audit only: "
            "create a strategy under a new name",
        )


def _canonical(rules: Sequence[Any]) -> list[dict[str, Any]]:
    # Raises shared.kernel.rules.RuleError naming the bad node.
    return dump_rules(parse_rules(list(rules)))


async def create_strategy(
    *,
    session: AsyncSession,
    name: str,
    symbol: str,
    rules: Sequence[Any],
    description: str = "",
) -> StrategyRow:
    """Store version 1 of a JSON-rule strategy, its rules in canonical form.

    Raises:
        RuleError: a rule is invalid (its path names the bad node).
        NameTaken: a strategy, live or deleted, already has the name.
    """
    canonical = _canonical(rules)
    existing = await session.scalar(select(StrategyRow).where(StrategyRow.name == name).limit(1))
    if existing is not None:
        error = NameTaken("strategy", name)
        if existing.deleted_at is not None:
            error.args = (
                f"strategy {name!r} was deleted and names are not reused, so that decisions "
                "keep pointing at one strategy: choose another name",
            )
        raise error
    row = StrategyRow(name=name, version=1, symbol=symbol, description=description, rules=canonical)
    session.add(row)
    await session.flush()
    return row


async def get_strategy(
    *, session: AsyncSession, name: str, version: int | None = None, deleted_ok: bool = False
) -> StrategyRow:
    """A version of a strategy, the latest when `version` is None.

    Raises:
        NotFound: no strategy has the name, or it has no such version.
        StrategyDeleted: it was deleted, unless `deleted_ok` (reading history).
    """
    query = select(StrategyRow).where(StrategyRow.name == name)
    if version is None:
        query = query.order_by(StrategyRow.version.desc()).limit(1)
    else:
        query = query.where(StrategyRow.version == version)
    row = await session.scalar(query)
    if row is None:
        if version is not None and await session.scalar(
            select(StrategyRow.id).where(StrategyRow.name == name).limit(1)
        ):
            raise NotFound("strategy version", [f"{name} v{version}"])
        raise NotFound("strategy", [name])
    if row.deleted_at is not None and not deleted_ok:
        raise StrategyDeleted(name)
    return row


async def latest_strategy(*, session: AsyncSession, name: str) -> tuple[int, list[dict[str, Any]]]:
    """`(version, rules)` of a live strategy's latest version, for the groups that run
    it: pass them as `create_strategy("json_rule", {"rules": rules, "name": name,
    "version": version})` so every decision records the version that made it.

    Raises:
        NotFound: no strategy has the name.
        StrategyDeleted: it was deleted (a subclass of NotFound).
    """
    row = await get_strategy(session=session, name=name)
    return row.version, row.rules


async def list_strategies(
    *, session: AsyncSession, symbol: str | None = None, deleted: bool = False
) -> list[StrategyRow]:
    """The latest version of each live strategy (of each deleted one if `deleted`), by
    name; `symbol` filters on the latest version's symbol."""
    latest = (
        select(StrategyRow.name, func.max(StrategyRow.version).label("version"))
        .group_by(StrategyRow.name)
        .subquery()
    )
    query = (
        select(StrategyRow)
        .join(
            latest,
            (StrategyRow.name == latest.c.name) & (StrategyRow.version == latest.c.version),
        )
        .where(StrategyRow.deleted_at.is_not(None) if deleted else StrategyRow.deleted_at.is_(None))
        .order_by(StrategyRow.name)
    )
    if symbol is not None:
        query = query.where(StrategyRow.symbol == symbol)
    return list(await session.scalars(query))


async def strategy_versions(*, session: AsyncSession, name: str) -> list[StrategyRow]:
    """Every version of a strategy, deleted or not, oldest first.

    Raises:
        NotFound: no strategy has the name.
    """
    rows = list(
        await session.scalars(
            select(StrategyRow).where(StrategyRow.name == name).order_by(StrategyRow.version)
        )
    )
    if not rows:
        raise NotFound("strategy", [name])
    return rows


async def update_strategy(
    *,
    session: AsyncSession,
    name: str,
    rules: Sequence[Any],
    symbol: str | None = None,
    description: str | None = None,
) -> StrategyRow:
    """Store the next version; `symbol` and `description` default to the latest's.

    Raises:
        RuleError: a rule is invalid.
        NotFound, StrategyDeleted: as `get_strategy`.
    """
    canonical = _canonical(rules)
    latest = await get_strategy(session=session, name=name)
    row = StrategyRow(
        name=name,
        version=latest.version + 1,
        symbol=latest.symbol if symbol is None else symbol,
        description=latest.description if description is None else description,
        rules=canonical,
    )
    session.add(row)
    await session.flush()
    return row


async def delete_strategy(*, session: AsyncSession, name: str) -> None:
    """Mark every version deleted; the rows stay for audit.

    Raises:
        NotFound, StrategyDeleted: as `get_strategy`.
    """
    await get_strategy(session=session, name=name)
    await session.execute(
        update(StrategyRow)
        .where(StrategyRow.name == name, StrategyRow.deleted_at.is_(None))
        .values(deleted_at=datetime.now(UTC))
    )
    await session.flush()


# --------------------------------------------------------------------------- events and logs


def _window(
    seq: InstrumentedAttribute[int],
    ts: InstrumentedAttribute[datetime],
    *,
    since: datetime | None,
    until: datetime | None,
    after: int | None,
    descending: bool,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(ts >= since)
    if until is not None:
        conditions.append(ts < until)
    if after is not None:
        conditions.append(seq < after if descending else seq > after)
    return conditions


async def list_events(
    *,
    session: AsyncSession,
    category: str | None = None,
    source: str | None = None,
    symbol: str | None = None,
    correlation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[tuple[int, str]]:
    """`(seq, body)` of stored events in `seq` order, from just past `after`.

    `since` is inclusive and `until` exclusive, on the events' own `ts`.
    """
    conditions = _window(
        EventRow.seq, EventRow.ts, since=since, until=until, after=after, descending=descending
    )
    for column, value in (
        (EventRow.category, category),
        (EventRow.source, source),
        (EventRow.symbol, symbol),
        (EventRow.correlation_id, correlation_id),
    ):
        if value is not None:
            conditions.append(column == value)
    rows = await session.execute(
        select(EventRow.seq, EventRow.body)
        .where(*conditions)
        .order_by(EventRow.seq.desc() if descending else EventRow.seq)
        .limit(limit)
    )
    return [(seq, body) for seq, body in rows]


async def list_logs(
    *,
    session: AsyncSession,
    source: str | None = None,
    code: str | None = None,
    level: str | None = None,
    correlation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[LogRow]:
    """Stored log frames in `seq` order, from just past `after`; same window as events."""
    conditions = _window(
        LogRow.seq, LogRow.ts, since=since, until=until, after=after, descending=descending
    )
    for column, value in (
        (LogRow.source, source),
        (LogRow.code, code),
        (LogRow.level, level),
        (LogRow.correlation_id, correlation_id),
    ):
        if value is not None:
            conditions.append(column == value)
    rows = await session.scalars(
        select(LogRow)
        .where(*conditions)
        .order_by(LogRow.seq.desc() if descending else LogRow.seq)
        .limit(limit)
    )
    return list(rows)


# --------------------------------------------------------------------------- execution
#
# The execution service writes these tables; the gateway reads them for operators and
# changes only an incident's status. Money columns are exact Decimals (`Money`).

#: Orders that may still fill, or whose fate the sync loop has yet to learn.
OPEN_ORDER_STATUSES = frozenset(s.value for s in (*WORKING, OrderStatus.AMBIGUOUS))


class IncidentClosed(Exception):
    """An operator acted on an incident that is no longer open."""

    def __init__(self, incident: IncidentRow) -> None:
        self.incident = incident
        when = incident.closed_at.isoformat() if incident.closed_at else "earlier"
        super().__init__(
            f"incident {incident.id} is already {incident.status} (at {when}): only an open "
            "incident can be acknowledged or resolved"
        )


def _equal(*pairs: tuple[InstrumentedAttribute[Any], object]) -> list[ColumnElement[bool]]:
    """`column == value` for each pair whose value was given."""
    return [column == value for column, value in pairs if value is not None]


def _time_keyset(
    at: InstrumentedAttribute[datetime],
    id_: InstrumentedAttribute[str],
    conditions: list[ColumnElement[bool]],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    descending: bool = False,
) -> tuple[Any, ...]:
    """Keyset paging on `(at, id)`, for tables whose ids are UUIDs (which say nothing
    of order): adds the window (`since` inclusive, `until` exclusive) and the
    just-past-`after` condition to `conditions`, and returns the ORDER BY."""
    if since is not None:
        conditions.append(at >= since)
    if until is not None:
        conditions.append(at < until)
    if after is not None:
        key_at, key_id = after
        if descending:
            conditions.append(or_(at < key_at, and_(at == key_at, id_ < key_id)))
        else:
            conditions.append(or_(at > key_at, and_(at == key_at, id_ > key_id)))
    return (at.desc(), id_.desc()) if descending else (at, id_)


async def list_intents(
    *,
    session: AsyncSession,
    account: str | None = None,
    trading_group: str | None = None,
    symbol: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    correlation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[OrderIntentRow]:
    """Intents in `(created_at, id)` order, from just past the `after` key.

    Intent ids are UUIDs, which say nothing of order, so the page key is the pair.
    `since` is inclusive and `until` exclusive, on `created_at`.
    """
    at, id_ = OrderIntentRow.created_at, OrderIntentRow.id
    conditions = _equal(
        (OrderIntentRow.account, account),
        (OrderIntentRow.trading_group, trading_group),
        (OrderIntentRow.symbol, symbol),
        (OrderIntentRow.status, status),
        (OrderIntentRow.reason, reason),
        (OrderIntentRow.correlation_id, correlation_id),
    )
    order = _time_keyset(
        at, id_, conditions, since=since, until=until, after=after, descending=descending
    )
    rows = await session.scalars(
        select(OrderIntentRow).where(*conditions).order_by(*order).limit(limit)
    )
    return list(rows)


async def get_intent(*, session: AsyncSession, intent_id: str) -> OrderIntentRow:
    row = await session.get(OrderIntentRow, intent_id)
    if row is None:
        raise NotFound("order intent", [intent_id])
    return row


async def list_orders(
    *,
    session: AsyncSession,
    account: str | None = None,
    trading_group: str | None = None,
    symbol: str | None = None,
    statuses: Collection[str] = (),
    is_open: bool | None = None,
    correlation_id: str | None = None,
    client_order_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[OrderRow]:
    """Orders in `id` order, from just past `after`.

    `statuses` keeps those statuses (all when empty); `is_open` True keeps the open ones
    (`OPEN_ORDER_STATUSES`), False the others; together they must both hold.
    """
    conditions = _window(
        OrderRow.id,
        OrderRow.created_at,
        since=since,
        until=until,
        after=after,
        descending=descending,
    )
    conditions += _equal(
        (OrderRow.account, account),
        (OrderRow.trading_group, trading_group),
        (OrderRow.symbol, symbol),
        (OrderRow.correlation_id, correlation_id),
        (OrderRow.client_order_id, client_order_id),
    )
    if statuses:
        conditions.append(OrderRow.status.in_(sorted(statuses)))
    if is_open is not None:
        in_open = OrderRow.status.in_(sorted(OPEN_ORDER_STATUSES))
        conditions.append(in_open if is_open else ~in_open)
    rows = await session.scalars(
        select(OrderRow)
        .where(*conditions)
        .order_by(OrderRow.id.desc() if descending else OrderRow.id)
        .limit(limit)
    )
    return list(rows)


async def get_order(*, session: AsyncSession, account: str, client_order_id: str) -> OrderRow:
    row = await session.scalar(
        select(OrderRow).where(
            OrderRow.account == account, OrderRow.client_order_id == client_order_id
        )
    )
    if row is None:
        raise NotFound("order", [f"{account}/{client_order_id}"])
    return row


async def list_fills(
    *,
    session: AsyncSession,
    account: str | None = None,
    trading_group: str | None = None,
    symbol: str | None = None,
    correlation_id: str | None = None,
    client_order_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[FillRow]:
    """Fills in `id` (booking) order, from just past `after`; `since`/`until` on `at`."""
    conditions = _window(
        FillRow.id, FillRow.at, since=since, until=until, after=after, descending=descending
    )
    conditions += _equal(
        (FillRow.account, account),
        (FillRow.trading_group, trading_group),
        (FillRow.symbol, symbol),
        (FillRow.correlation_id, correlation_id),
        (FillRow.client_order_id, client_order_id),
    )
    rows = await session.scalars(
        select(FillRow)
        .where(*conditions)
        .order_by(FillRow.id.desc() if descending else FillRow.id)
        .limit(limit)
    )
    return list(rows)


async def order_fills(
    *, session: AsyncSession, account: str, client_order_id: str
) -> list[FillRow]:
    """An order's fills, oldest first."""
    rows = await session.scalars(
        select(FillRow)
        .where(FillRow.account == account, FillRow.client_order_id == client_order_id)
        .order_by(FillRow.at, FillRow.id)
    )
    return list(rows)


async def list_positions(
    *,
    session: AsyncSession,
    account: str | None = None,
    symbol: str | None = None,
    open_only: bool = True,
) -> list[PositionRow]:
    """Positions by account and symbol; `open_only` leaves out those at quantity 0."""
    conditions = _equal((PositionRow.account, account), (PositionRow.symbol, symbol))
    if open_only:
        # SQLite keeps Money as text, where "0.0" != 0; the cast compares numbers on
        # both databases, and no nonzero decimal of 38 digits casts to 0.
        conditions.append(cast(PositionRow.quantity, Numeric) != 0)
    rows = await session.scalars(
        select(PositionRow).where(*conditions).order_by(PositionRow.account, PositionRow.symbol)
    )
    return list(rows)


async def list_incidents(
    *,
    session: AsyncSession,
    account: str | None = None,
    status: str | None = None,
    after: int | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[IncidentRow]:
    """Incidents in `id` order, from just past `after`."""
    conditions = _equal((IncidentRow.account, account), (IncidentRow.status, status))
    if after is not None:
        conditions.append(IncidentRow.id < after if descending else IncidentRow.id > after)
    rows = await session.scalars(
        select(IncidentRow)
        .where(*conditions)
        .order_by(IncidentRow.id.desc() if descending else IncidentRow.id)
        .limit(limit)
    )
    return list(rows)


async def get_incident(*, session: AsyncSession, incident_id: int) -> IncidentRow:
    row = await session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFound("incident", [str(incident_id)])
    return row


async def close_incident(
    *, session: AsyncSession, incident_id: int, status: str, note: str, at: datetime
) -> IncidentRow:
    """Move an open incident to `status` (acknowledged or resolved) with the operator's
    note. The execution service resumes an account once it has no open incident.

    One conditional UPDATE, so of two operators acting at once exactly one wins.

    Raises:
        NotFound: no incident has the id.
        IncidentClosed: it is not open any more.
    """
    result = await session.execute(
        update(IncidentRow)
        .where(IncidentRow.id == incident_id, IncidentRow.status == "open")
        .values(status=status, closed_at=at, closed_note=note)
        .execution_options(synchronize_session=False)
    )
    row = await session.get(IncidentRow, incident_id, populate_existing=True)
    if row is None:
        raise NotFound("incident", [str(incident_id)])
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise IncidentClosed(row)
    return row


async def list_equity(
    *,
    session: AsyncSession,
    account: str,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[EquitySnapshotRow]:
    """An account's equity snapshots in `id` (recording) order; `since`/`until` on `at`."""
    conditions = _window(
        EquitySnapshotRow.id,
        EquitySnapshotRow.at,
        since=since,
        until=until,
        after=after,
        descending=descending,
    )
    rows = await session.scalars(
        select(EquitySnapshotRow)
        .where(EquitySnapshotRow.account == account, *conditions)
        .order_by(EquitySnapshotRow.id.desc() if descending else EquitySnapshotRow.id)
        .limit(limit)
    )
    return list(rows)


@dataclass(frozen=True, slots=True)
class EquityTotals:
    """What an account's equity summary is made of.

    Attributes:
        latest: The newest snapshot, None when there is none.
        before_day: The newest snapshot before the day's start, None when there is none.
        max_drawdown: The deepest drawdown any snapshot recorded, None without snapshots.
    """

    latest: EquitySnapshotRow | None
    before_day: EquitySnapshotRow | None
    max_drawdown: Decimal | None


async def equity_totals(
    *, session: AsyncSession, account: str, day_start: datetime
) -> EquityTotals:
    """The newest snapshot, the newest before `day_start`, and the deepest drawdown."""
    newest = select(EquitySnapshotRow).where(EquitySnapshotRow.account == account)
    newest = newest.order_by(EquitySnapshotRow.at.desc(), EquitySnapshotRow.id.desc()).limit(1)
    latest = await session.scalar(newest)
    before_day = await session.scalar(newest.where(EquitySnapshotRow.at < day_start))
    # Ordered as numbers, since SQLite keeps Money as text; the value returned is the
    # stored one, exact. (On SQLite the cast orders by doubles: two drawdowns equal to
    # 15 digits may come out either way.)
    max_drawdown = await session.scalar(
        select(EquitySnapshotRow.drawdown)
        .where(EquitySnapshotRow.account == account)
        .order_by(cast(EquitySnapshotRow.drawdown, Numeric).desc())
        .limit(1)
    )
    return EquityTotals(latest=latest, before_day=before_day, max_drawdown=max_drawdown)


# --------------------------------------------------------------------------- backtests

BACKTEST_UNFINISHED = ("queued", "running")


async def create_backtest(
    *, session: AsyncSession, backtest_id: str, request: dict[str, Any]
) -> BacktestRow:
    row = BacktestRow(id=backtest_id, status="queued", request=request, progress=0.0)
    session.add(row)
    await session.flush()
    return row


async def get_backtest(*, session: AsyncSession, backtest_id: str) -> BacktestRow:
    row = await session.get(BacktestRow, backtest_id)
    if row is None:
        raise NotFound("backtest", [backtest_id])
    return row


async def list_backtests(
    *,
    session: AsyncSession,
    status: str | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 100,
    descending: bool = True,
) -> list[BacktestRow]:
    """Backtests in `(created_at, id)` order, from just past the `after` key.

    The `result` column (the whole equity curve) is not loaded: a list shows metrics.
    """
    at, id_ = BacktestRow.created_at, BacktestRow.id
    conditions = _equal((BacktestRow.status, status))
    order = _time_keyset(at, id_, conditions, after=after, descending=descending)
    rows = await session.scalars(
        select(BacktestRow)
        .options(defer(BacktestRow.result, raiseload=True))
        .where(*conditions)
        .order_by(*order)
        .limit(limit)
    )
    return list(rows)


async def mark_backtest_running(*, session: AsyncSession, backtest_id: str, at: datetime) -> None:
    await session.execute(
        update(BacktestRow)
        .where(BacktestRow.id == backtest_id, BacktestRow.status == "queued")
        .values(status="running", started_at=at)
    )


async def set_backtest_progress(*, session: AsyncSession, progress: dict[str, float]) -> None:
    """Record the progress of running backtests (id -> fraction done)."""
    for backtest_id, fraction in progress.items():
        await session.execute(
            update(BacktestRow)
            .where(BacktestRow.id == backtest_id, BacktestRow.status == "running")
            .values(progress=fraction)
        )


async def finish_backtest(
    *,
    session: AsyncSession,
    backtest_id: str,
    at: datetime,
    started_at: datetime | None = None,
    result: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """End a backtest: done with its result, or failed with `error`. `started_at` fills
    in the start when the run ended before its start was written."""
    values: dict[str, Any] = {"finished_at": at}
    if started_at is not None:
        values["started_at"] = func.coalesce(
            BacktestRow.started_at, literal(started_at, BacktestRow.started_at.type)
        )
    if error is None:
        values.update(status="done", progress=1.0, result=result, metrics=metrics)
    else:
        values.update(status="failed", error=error)
    await session.execute(
        update(BacktestRow)
        .where(BacktestRow.id == backtest_id, BacktestRow.status.in_(BACKTEST_UNFINISHED))
        .values(**values)
    )


async def fail_unfinished_backtests(
    *, session: AsyncSession, error: str, at: datetime, ids: Collection[str] | None = None
) -> int:
    """Mark queued and running backtests failed (all of them, or those in `ids`):
    their worker processes are gone. Returns how many."""
    conditions = [BacktestRow.status.in_(BACKTEST_UNFINISHED)]
    if ids is not None:
        conditions.append(BacktestRow.id.in_(list(ids)))
    result = await session.execute(
        update(BacktestRow).where(*conditions).values(status="failed", error=error, finished_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- LLM groups
#
# The LLM trading groups write these tables (every model call, every discussion and its
# transcript); the gateway only reads them.
#
# Sums of Money are exact on both databases (`shared.db.money`).
_ZERO = Decimal(0)


class _UtcDay(FunctionElement[str]):
    """The UTC date of a UTCDateTime column as `YYYY-MM-DD` text."""

    type = String()
    name = "utc_day"
    inherit_cache = True


@compiles(_UtcDay)
def _utc_day_sql(element: _UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # AT TIME ZONE: the date in UTC whatever the session's TimeZone setting.
    return f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(_UtcDay, "sqlite")
def _utc_day_sqlite(element: _UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds UTCDateTime as naive UTC text: its date part is the UTC date.
    return f"date({compiler.process(element.clauses, **kw)})"


#: What LLM usage can be split by.
LLM_USAGE_KEYS = ("trading_group", "model", "member", "day")


@dataclass(frozen=True, slots=True)
class LlmUsage:
    """Totals of a set of LLM calls. A key is None when the totals are not split by it.

    Attributes:
        day: The UTC date of the calls, when split by day.
        calls: Every call; `ok`, `invalid` and `error` count those of each status.
        cost: Exact, in the price table's currency (USD).
    """

    trading_group: str | None = None
    model: str | None = None
    member: str | None = None
    day: date | None = None
    calls: int = 0
    ok: int = 0
    invalid: int = 0
    error: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = _ZERO


@dataclass(frozen=True, slots=True)
class LlmUsageReport:
    """LLM usage split into groups, and the total of all of them."""

    groups: list[LlmUsage]
    total: LlmUsage


def _usage_total(groups: Sequence[LlmUsage]) -> LlmUsage:
    return LlmUsage(
        calls=sum(g.calls for g in groups),
        ok=sum(g.ok for g in groups),
        invalid=sum(g.invalid for g in groups),
        error=sum(g.error for g in groups),
        tokens_in=sum(g.tokens_in for g in groups),
        tokens_out=sum(g.tokens_out for g in groups),
        cost=plain(exact_sum(g.cost for g in groups)),
    )


async def llm_usage(
    *,
    session: AsyncSession,
    group_by: Sequence[str] = ("trading_group", "model", "day"),
    trading_group: str | None = None,
    model: str | None = None,
    member: str | None = None,
    discussion_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> LlmUsageReport:
    """Calls, calls by status, tokens and cost, split by `group_by` (any of
    `LLM_USAGE_KEYS`, in that order of sorting; none gives one group, or no group
    without calls). One aggregate query; the total is added up from the groups.

    `since` is inclusive and `until` exclusive, on the calls' `created_at`; `day` is
    the UTC date of `created_at`.

    Raises:
        ValueError: a `group_by` key is not one of `LLM_USAGE_KEYS`.
    """
    columns: dict[str, ColumnElement[Any] | InstrumentedAttribute[Any]] = {
        "trading_group": LlmCallRow.trading_group,
        "model": LlmCallRow.model,
        "member": LlmCallRow.member,
        "day": _UtcDay(LlmCallRow.created_at),
    }
    unknown = [k for k in group_by if k not in columns]
    if unknown:
        raise ValueError(f"cannot group LLM usage by {unknown}: use {list(LLM_USAGE_KEYS)}")
    keys = list(dict.fromkeys(group_by))
    conditions = _equal(
        (LlmCallRow.trading_group, trading_group),
        (LlmCallRow.model, model),
        (LlmCallRow.member, member),
        (LlmCallRow.discussion_id, discussion_id),
    )
    if since is not None:
        conditions.append(LlmCallRow.created_at >= since)
    if until is not None:
        conditions.append(LlmCallRow.created_at < until)
    # count(CASE WHEN ... THEN id END) counts the matching rows; it needs no typed
    # literal, which PostgreSQL could not infer inside sum().
    by_status = [
        func.count(case((LlmCallRow.status == s, LlmCallRow.id)))
        for s in ("ok", "invalid", "error")
    ]
    query = select(
        *(columns[k] for k in keys),
        func.count(LlmCallRow.id),
        *by_status,
        func.coalesce(func.sum(LlmCallRow.tokens_in), 0),
        func.coalesce(func.sum(LlmCallRow.tokens_out), 0),
        money_sum(LlmCallRow.cost),
    ).where(*conditions)
    if keys:
        grouped = [columns[k] for k in keys]
        query = query.group_by(*grouped).order_by(*grouped)
    groups: list[LlmUsage] = []
    for row in await session.execute(query):
        named = dict(zip(keys, row[: len(keys)], strict=True))
        calls, ok, invalid, error, tokens_in, tokens_out, cost = row[len(keys) :]
        if not calls:
            continue  # no group by and no call: the aggregate's one row is empty
        day = named.pop("day", None)
        groups.append(
            LlmUsage(
                **named,
                day=date.fromisoformat(day) if day is not None else None,
                calls=calls,
                ok=ok,
                invalid=invalid,
                error=error,
                tokens_in=int(tokens_in),
                tokens_out=int(tokens_out),
                cost=cost if cost is not None else _ZERO,
            )
        )
    return LlmUsageReport(groups=groups, total=_usage_total(groups))


@dataclass(frozen=True, slots=True)
class AccountPnl:
    """What a trading group's fills realized on one account, in that account's currency.

    Attributes:
        currency: From the account's latest equity snapshot; None before the first.
        closed_trades: Fills that closed (part of) a position, as the portfolio counts
            closed trades: those with a `realized_pnl`.
    """

    account: str
    currency: str | None
    closed_trades: int
    closed_trades_today: int
    realized_pnl: Decimal
    realized_pnl_today: Decimal


async def group_realized_pnl(
    *, session: AsyncSession, trading_group: str, day_start: datetime
) -> list[AccountPnl]:
    """The realized PnL and closed trades of a group's fills, per account (by name),
    in total and since `day_start`; every account the group has a fill on."""
    today = FillRow.at >= day_start
    rows = (
        await session.execute(
            select(
                FillRow.account,
                func.count(FillRow.realized_pnl),
                func.count(case((today, FillRow.realized_pnl))),
                money_sum(FillRow.realized_pnl),
                money_sum(case((today, FillRow.realized_pnl))),
            )
            .where(FillRow.trading_group == trading_group)
            .group_by(FillRow.account)
            .order_by(FillRow.account)
        )
    ).all()
    accounts = [account for account, *_ in rows]
    latest = (
        select(func.max(EquitySnapshotRow.id))
        .where(EquitySnapshotRow.account.in_(accounts))
        .group_by(EquitySnapshotRow.account)
    )
    currencies: dict[str, str] = {
        account: currency
        for account, currency in await session.execute(
            select(EquitySnapshotRow.account, EquitySnapshotRow.currency).where(
                EquitySnapshotRow.id.in_(latest)
            )
        )
    }
    return [
        AccountPnl(
            account=account,
            currency=currencies.get(account),
            closed_trades=closed,
            closed_trades_today=closed_today,
            realized_pnl=pnl if pnl is not None else _ZERO,
            realized_pnl_today=pnl_today if pnl_today is not None else _ZERO,
        )
        for account, closed, closed_today, pnl, pnl_today in rows
    ]


async def list_discussions(
    *,
    session: AsyncSession,
    trading_group: str | None = None,
    symbol: str | None = None,
    status: str | None = None,
    correlation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int = 100,
    descending: bool = False,
) -> list[DiscussionRow]:
    """Discussions in `(started_at, id)` order, from just past the `after` key; their
    ids are UUIDs, so the page key is the pair. `since`/`until` on `started_at`."""
    at, id_ = DiscussionRow.started_at, DiscussionRow.id
    conditions = _equal(
        (DiscussionRow.trading_group, trading_group),
        (DiscussionRow.symbol, symbol),
        (DiscussionRow.status, status),
        (DiscussionRow.correlation_id, correlation_id),
    )
    order = _time_keyset(
        at, id_, conditions, since=since, until=until, after=after, descending=descending
    )
    rows = await session.scalars(
        select(DiscussionRow).where(*conditions).order_by(*order).limit(limit)
    )
    return list(rows)


async def get_discussion(*, session: AsyncSession, discussion_id: str) -> DiscussionRow:
    row = await session.get(DiscussionRow, discussion_id)
    if row is None:
        raise NotFound("discussion", [discussion_id])
    return row


async def discussion_messages(
    *, session: AsyncSession, discussion_id: str
) -> list[DiscussionMessageRow]:
    """A discussion's messages in the order they were said (`seq`)."""
    rows = await session.scalars(
        select(DiscussionMessageRow)
        .where(DiscussionMessageRow.discussion_id == discussion_id)
        .order_by(DiscussionMessageRow.seq)
    )
    return list(rows)


async def events_by_id(
    *, session: AsyncSession, ids: Collection[str]
) -> dict[str, tuple[int, str]]:
    """`id -> (seq, body)` of the stored events among `ids`; unknown ids are left out."""
    if not ids:
        return {}
    rows = await session.execute(
        select(EventRow.id, EventRow.seq, EventRow.body).where(EventRow.id.in_(sorted(ids)))
    )
    return {event_id: (seq, body) for event_id, seq, body in rows}
