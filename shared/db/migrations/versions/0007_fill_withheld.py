"""fills.withheld: the coin of a buy the exchange kept as its fee (and the dust)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, so the fills booked before it need no rewrite: NULL is nothing withheld.
    op.add_column("fills", sa.Column("withheld", shared.db.models.Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("withheld")
