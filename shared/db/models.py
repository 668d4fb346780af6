"""The one schema of the platform, shared by every service that stores state.

The same models and migrations serve PostgreSQL (production) and SQLite (the embedded
default); the few type differences are handled by variants here, never by branches
in the code that uses them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime()}


class _Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --------------------------------------------------------------------------- events


class EventRow(Base):
    """Every accepted event, in the order the gateway committed it (`seq`)."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    category: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    causation_id: Mapped[str | None] = mapped_column(String(128))
    ts: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Space-delimited routing keys (" trading_group:a execution:b "), fixed at publish
    # time, so a client that was offline gets exactly what it would have received.
    recipients: Mapped[str] = mapped_column(Text, default=" ")
    # The delivered frame as sent on the wire; replay sends it verbatim.
    body: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_events_category_seq", "category", "seq"),
        Index("ix_events_source_seq", "source", "seq"),
        Index("ix_events_symbol_seq", "symbol", "seq"),
        Index("ix_events_correlation_id", "correlation_id"),
        Index("ix_events_ts", "ts"),
    )


class LogRow(Base):
    """Log frames: service logs, heartbeats and discussion transcripts."""

    __tablename__ = "logs"

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    source: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    causation_id: Mapped[str | None] = mapped_column(String(128))
    ts: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_logs_source_seq", "source", "seq"),
        Index("ix_logs_code_seq", "code", "seq"),
        Index("ix_logs_correlation_id", "correlation_id"),
    )


class ClientCursor(Base):
    """The last `seq` a client principal acknowledged; replay starts after it."""

    __tablename__ = "client_cursors"

    principal: Mapped[str] = mapped_column(String(100), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --------------------------------------------------------------------------- config


class TokenRow(Base):
    """A client token, stored as its SHA-256; the token itself is shown once."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    principal_id: Mapped[int] = mapped_column(BigInteger)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_tokens_role_principal_id", "role", "principal_id"),)


class TriggerRow(_Timestamps, Base):
    __tablename__ = "triggers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class GroupTriggerSubscription(Base):
    __tablename__ = "group_trigger_subscriptions"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("trading_groups.id", ondelete="CASCADE"), primary_key=True
    )
    trigger_id: Mapped[int] = mapped_column(
        ForeignKey("triggers.id", ondelete="CASCADE"), primary_key=True
    )


class TradingGroupRow(_Timestamps, Base):
    __tablename__ = "trading_groups"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="algo")
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    triggers: Mapped[list[TriggerRow]] = relationship(
        secondary="group_trigger_subscriptions", lazy="selectin", order_by="TriggerRow.name"
    )


class AccountGroupBinding(Base):
    __tablename__ = "account_group_bindings"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("trade_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("trading_groups.id", ondelete="CASCADE"), primary_key=True
    )


class TradeAccountRow(_Timestamps, Base):
    __tablename__ = "trade_accounts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    exchange: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16), default="paper")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Fernet token of the JSON credentials; decrypted only where orders are placed.
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)

    trading_groups: Mapped[list[TradingGroupRow]] = relationship(
        secondary="account_group_bindings", lazy="selectin", order_by="TradingGroupRow.name"
    )


class ExecutionServiceAccount(Base):
    __tablename__ = "execution_service_accounts"

    service_id: Mapped[int] = mapped_column(
        ForeignKey("execution_services.id", ondelete="CASCADE"), primary_key=True
    )
    # One execution service per account: two would both place its orders.
    account_id: Mapped[int] = mapped_column(
        ForeignKey("trade_accounts.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (UniqueConstraint("account_id"),)


class ExecutionServiceRow(_Timestamps, Base):
    __tablename__ = "execution_services"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)

    trade_accounts: Mapped[list[TradeAccountRow]] = relationship(
        secondary="execution_service_accounts", lazy="selectin", order_by="TradeAccountRow.name"
    )


# --------------------------------------------------------------------------- market data

# NUMERIC keeps prices exactly as the exchange printed them (the store binds the
# shortest decimal that round-trips the float); values come back as floats, which is
# what indicators compute with.
Price = Numeric(asdecimal=False)


class CandleRow(Base):
    """Closed OHLCV candles, one per market, timeframe and open time."""

    __tablename__ = "candles"

    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_time: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[float] = mapped_column(Price)
    high: Mapped[float] = mapped_column(Price)
    low: Mapped[float] = mapped_column(Price)
    close: Mapped[float] = mapped_column(Price)
    volume: Mapped[float] = mapped_column(Price)


# --------------------------------------------------------------------------- strategies


class StrategyRow(Base):
    """One version of a user's JSON-rule strategy (`shared.kernel.rules`).

    An edit adds the next version and never changes a row, so a decision that records
    `(name, version)` always points at the rules that made it. Deleting a strategy
    stamps `deleted_at` on all its versions and keeps them for audit; its name is not
    given out again.
    """

    __tablename__ = "strategies"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    # The canonical JSON of the rules (`shared.kernel.rules.dump_rules`), defaults
    # filled in, so a version means the same whatever later code takes as default.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index("ix_strategies_symbol", "symbol"),
    )


# --------------------------------------------------------------------------- execution


# Wide enough for NUMERIC(38, 18) with room: the default 28 digits would round.
_EXACT = Context(prec=64)


class Money(TypeDecorator[Decimal]):
    """Exact decimals on both databases: NUMERIC on PostgreSQL, text on SQLite (whose
    NUMERIC is a float and would round a quantity like 0.1 + 0.2)."""

    impl = Numeric(38, 18)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"Money columns take Decimal, not {type(value).__name__}")
        if not value.is_finite():
            raise ValueError(f"Money columns take finite decimals, not {value}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        # normalize() drops PostgreSQL's padding to 18 places (1.500000000000000000).
        number = Decimal(str(value))
        if number == number.to_integral():
            return number.quantize(Decimal(1), context=_EXACT)
        return number.normalize(_EXACT)


class OrderIntentRow(Base):
    """What execution made of one decision for one account: accepted with its sized
    quantity, or rejected with the risk engine's reason. One per (account, decision):
    a decision delivered twice finds its intent and makes nothing new."""

    __tablename__ = "order_intents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    trading_group: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[str] = mapped_column(String(36))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
    confidence: Mapped[float]
    # accepted | rejected
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[Decimal | None] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    notional: Mapped[Decimal | None] = mapped_column(Money)
    # The risk engine's trail: every check with its numbers.
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("account", "decision_id"),
        Index("ix_order_intents_created_at", "created_at"),
        Index("ix_order_intents_correlation_id", "correlation_id"),
    )


class OrderRow(Base):
    """An order and what is known of it (`shared.kernel.orders.Order`, persisted)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    client_order_id: Mapped[str] = mapped_column(String(64))
    intent_id: Mapped[str | None] = mapped_column(String(36))
    trading_group: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(16))
    leg: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    quantity: Mapped[Decimal] = mapped_column(Money)
    filled_quantity: Mapped[Decimal] = mapped_column(Money)
    average_price: Mapped[Decimal | None] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    limit_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    exchange_order_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    decision_id: Mapped[str | None] = mapped_column(String(36))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    parent_id: Mapped[str | None] = mapped_column(String(64))
    not_before: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("account", "client_order_id"),
        Index("ix_orders_status", "status"),
        Index("ix_orders_correlation_id", "correlation_id"),
    )


class FillRow(Base):
    """One execution; `fill_id` is the exchange's, so a fill reported twice is booked once."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    fill_id: Mapped[str] = mapped_column(String(128))
    client_order_id: Mapped[str] = mapped_column(String(64))
    trading_group: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(64))
    side: Mapped[str] = mapped_column(String(8))
    leg: Mapped[str | None] = mapped_column(String(16))
    quantity: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    liquidity: Mapped[str | None] = mapped_column(String(8))
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    at: Mapped[datetime]
    # Coin of a buy the account does not hold (`Fill.withheld`); NULL for none.
    withheld: Mapped[Decimal | None] = mapped_column(Money)

    __table_args__ = (
        UniqueConstraint("account", "fill_id"),
        Index("ix_fills_account_at", "account", "at"),
    )


class PositionRow(Base):
    """An account's open (or last closed, at quantity 0) position in a symbol."""

    __tablename__ = "positions"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64), primary_key=True)
    trading_group: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(Money)
    average_price: Mapped[Decimal | None] = mapped_column(Money)
    mark_price: Mapped[Decimal | None] = mapped_column(Money)
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money)
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    stop_loss: Mapped[Decimal | None] = mapped_column(Money)
    take_profit: Mapped[Decimal | None] = mapped_column(Money)
    opened_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentRow(Base):
    """Something execution found wrong (a reconciliation mismatch). While an account
    has an open incident it does not trade; an operator acknowledges it to resume."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    # open | acknowledged | resolved
    status: Mapped[str] = mapped_column(String(16), default="open")
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    closed_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_incidents_account_status", "account", "status"),)


class EquitySnapshotRow(Base):
    """An account's equity at a moment: after each fill and once per sync interval."""

    __tablename__ = "equity_snapshots"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(16))
    equity: Mapped[Decimal] = mapped_column(Money)
    cash: Mapped[Decimal] = mapped_column(Money)
    positions_value: Mapped[Decimal] = mapped_column(Money)
    realized_pnl: Mapped[Decimal] = mapped_column(Money)
    unrealized_pnl: Mapped[Decimal] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)
    drawdown: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = (Index("ix_equity_snapshots_account_at", "account", "at"),)


# --------------------------------------------------------------------------- backtests


class BacktestRow(Base):
    """A backtest requested through the REST API, its progress and its outcome.

    `request` is the request as validated (so a run can be repeated); `result` the
    whole result (trades, equity curve, metrics), `metrics` a copy of just the metrics
    so a list reads and sorts them without loading every curve.
    """

    __tablename__ = "backtests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # queued | running | done | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    request: Mapped[dict[str, Any]]
    progress: Mapped[float] = mapped_column(default=0.0)
    result: Mapped[dict[str, Any] | None]
    metrics: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_backtests_created_at", "created_at"),
        Index("ix_backtests_status", "status"),
    )


# --------------------------------------------------------------------------- LLM groups


class LlmCallRow(Base):
    """One call of an LLM group member: what was asked, what came back, what it cost.

    Every call is recorded, failed ones too, so a discussion can be replayed from the
    stored answers and audited, and a day's tokens and cost are one aggregate over
    this table (the budget check before every call). `prompt_hash` (SHA-256 of the
    model and messages) lets a backtest reuse an answer instead of paying again.
    """

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    trading_group: Mapped[str] = mapped_column(String(64))
    member: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    discussion_id: Mapped[str | None] = mapped_column(String(36))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    answer: Mapped[str | None] = mapped_column(Text)
    # ok | invalid (unparseable output) | error (timeout, refusal, 429 after retries)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[Decimal] = mapped_column(Money)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_llm_calls_group_created_at", "trading_group", "created_at"),
        Index("ix_llm_calls_prompt_hash", "prompt_hash"),
        Index("ix_llm_calls_discussion_id", "discussion_id"),
    )


class DiscussionRow(Base):
    """A trading group's discussion of one signal, and what it led to."""

    __tablename__ = "discussions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    trading_group: Mapped[str] = mapped_column(String(64))
    signal_id: Mapped[str | None] = mapped_column(String(36))
    decision_id: Mapped[str | None] = mapped_column(String(36))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str | None] = mapped_column(String(64))
    # running | decided | hold | failed
    status: Mapped[str] = mapped_column(String(16), default="running")
    action: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[Decimal] = mapped_column(Money)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_discussions_group_started_at", "trading_group", "started_at"),
        Index("ix_discussions_correlation_id", "correlation_id"),
    )


class DiscussionMessageRow(Base):
    """One member's message in a discussion, in the order it was said."""

    __tablename__ = "discussion_messages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    discussion_id: Mapped[str] = mapped_column(ForeignKey("discussions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    member: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    # analysis | argument | proposal | risk | decision | note | error
    kind: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    llm_call_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("discussion_id", "seq"),)


class ReflectionRow(Base):
    """What a group wrote after one of its trades closed: what it decided, what
    happened. The most relevant recent ones go into its later prompts."""

    __tablename__ = "reflections"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    trading_group: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(String(36))
    pnl: Mapped[Decimal | None] = mapped_column(Money)
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_reflections_group_symbol", "trading_group", "symbol"),)
