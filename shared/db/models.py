"""The one schema of the platform, shared by every service that stores state.

The same models and migrations serve PostgreSQL (production) and SQLite (the embedded
default); the few type differences are handled by variants here, never by branches
in the code that uses them.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
