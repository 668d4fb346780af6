"""execution: order intents, orders, fills, positions, incidents, equity snapshots

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, shared.db.models.UTCDateTime(timezone=True), nullable=nullable)


def _money(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, shared.db.models.Money(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "order_intents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("trading_group", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        _money("quantity", True),
        _money("price", True),
        _money("notional", True),
        sa.Column("checks", _JSON, nullable=False),
        sa.Column("decision", _JSON, nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_intents")),
        sa.UniqueConstraint(
            "account", "decision_id", name=op.f("uq_order_intents_account_decision_id")
        ),
    )
    op.create_index("ix_order_intents_created_at", "order_intents", ["created_at"])
    op.create_index("ix_order_intents_correlation_id", "order_intents", ["correlation_id"])

    op.create_table(
        "orders",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("intent_id", sa.String(36), nullable=True),
        sa.Column("trading_group", sa.String(64), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("leg", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        _money("quantity"),
        _money("filled_quantity"),
        _money("average_price", True),
        _money("fees"),
        _money("limit_price", True),
        _money("stop_price", True),
        sa.Column("exchange_order_id", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decision_id", sa.String(36), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("parent_id", sa.String(64), nullable=True),
        _time("not_before", True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "account", "client_order_id", name=op.f("uq_orders_account_client_order_id")
        ),
    )
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_orders_correlation_id", "orders", ["correlation_id"])

    op.create_table(
        "fills",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("fill_id", sa.String(128), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("trading_group", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("leg", sa.String(16), nullable=True),
        _money("quantity"),
        _money("price"),
        _money("fee"),
        sa.Column("liquidity", sa.String(8), nullable=True),
        _money("realized_pnl", True),
        _time("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("account", "fill_id", name=op.f("uq_fills_account_fill_id")),
    )
    op.create_index("ix_fills_account_at", "fills", ["account", "at"])

    op.create_table(
        "positions",
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("trading_group", sa.String(64), nullable=True),
        _money("quantity"),
        _money("average_price", True),
        _money("mark_price", True),
        _money("unrealized_pnl"),
        _money("realized_pnl"),
        _money("stop_loss", True),
        _money("take_profit", True),
        _time("opened_at", True),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("account", "symbol", name=op.f("pk_positions")),
    )

    op.create_table(
        "incidents",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", _JSON, nullable=False),
        _time("created_at"),
        _time("closed_at", True),
        sa.Column("closed_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index("ix_incidents_account_status", "incidents", ["account", "status"])

    op.create_table(
        "equity_snapshots",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        _time("at"),
        sa.Column("currency", sa.String(16), nullable=False),
        _money("equity"),
        _money("cash"),
        _money("positions_value"),
        _money("realized_pnl"),
        _money("unrealized_pnl"),
        _money("fees"),
        _money("drawdown"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_snapshots")),
    )
    op.create_index("ix_equity_snapshots_account_at", "equity_snapshots", ["account", "at"])


def downgrade() -> None:
    for index, table in (
        ("ix_equity_snapshots_account_at", "equity_snapshots"),
        ("ix_incidents_account_status", "incidents"),
        ("ix_fills_account_at", "fills"),
        ("ix_orders_correlation_id", "orders"),
        ("ix_orders_status", "orders"),
        ("ix_order_intents_correlation_id", "order_intents"),
        ("ix_order_intents_created_at", "order_intents"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("equity_snapshots", "incidents", "positions", "fills", "orders", "order_intents"):
        op.drop_table(table)
