"""llm: LLM calls, discussions and their messages, reflections

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, shared.db.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("trading_group", sa.String(64), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("discussion_id", sa.String(36), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("prompt", _JSON, nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost", shared.db.models.Money(), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
    )
    op.create_index("ix_llm_calls_group_created_at", "llm_calls", ["trading_group", "created_at"])
    op.create_index("ix_llm_calls_prompt_hash", "llm_calls", ["prompt_hash"])
    op.create_index("ix_llm_calls_discussion_id", "llm_calls", ["discussion_id"])

    op.create_table(
        "discussions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("trading_group", sa.String(64), nullable=False),
        sa.Column("signal_id", sa.String(36), nullable=True),
        sa.Column("decision_id", sa.String(36), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("symbol", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("action", sa.String(8), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost", shared.db.models.Money(), nullable=False),
        _time("started_at"),
        _time("finished_at", True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discussions")),
    )
    op.create_index(
        "ix_discussions_group_started_at", "discussions", ["trading_group", "started_at"]
    )
    op.create_index("ix_discussions_correlation_id", "discussions", ["correlation_id"])

    op.create_table(
        "discussion_messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("discussion_id", sa.String(36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("llm_call_id", sa.BigInteger(), nullable=True),
        _time("created_at"),
        sa.ForeignKeyConstraint(
            ["discussion_id"],
            ["discussions.id"],
            name=op.f("fk_discussion_messages_discussion_id_discussions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discussion_messages")),
        sa.UniqueConstraint(
            "discussion_id", "seq", name=op.f("uq_discussion_messages_discussion_id_seq")
        ),
    )

    op.create_table(
        "reflections",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("trading_group", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=True),
        sa.Column("pnl", shared.db.models.Money(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reflections")),
    )
    op.create_index("ix_reflections_group_symbol", "reflections", ["trading_group", "symbol"])


def downgrade() -> None:
    op.drop_index("ix_reflections_group_symbol", table_name="reflections")
    op.drop_table("reflections")
    op.drop_table("discussion_messages")
    op.drop_index("ix_discussions_correlation_id", table_name="discussions")
    op.drop_index("ix_discussions_group_started_at", table_name="discussions")
    op.drop_table("discussions")
    op.drop_index("ix_llm_calls_discussion_id", table_name="llm_calls")
    op.drop_index("ix_llm_calls_prompt_hash", table_name="llm_calls")
    op.drop_index("ix_llm_calls_group_created_at", table_name="llm_calls")
    op.drop_table("llm_calls")
