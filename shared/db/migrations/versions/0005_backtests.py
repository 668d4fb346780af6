"""backtests: runs requested through the REST API, their progress and results

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.db.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, shared.db.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "backtests",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", _JSON, nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("result", _JSON, nullable=True),
        sa.Column("metrics", _JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _time("created_at"),
        _time("started_at", True),
        _time("finished_at", True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtests")),
    )
    op.create_index("ix_backtests_created_at", "backtests", ["created_at"])
    op.create_index("ix_backtests_status", "backtests", ["status"])


def downgrade() -> None:
    op.drop_index("ix_backtests_status", table_name="backtests")
    op.drop_index("ix_backtests_created_at", table_name="backtests")
    op.drop_table("backtests")
