"""The migrations build exactly the schema the models describe, on both databases.

Services run on the migrated database but query it through the models; a column the
migration types differently (or an index it forgets) passes every other test on one
database and breaks on the other. Alembic's autogenerate comparison is the check:
after `upgrade head` it must find nothing to change.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from shared.db.engine import create_engine, current_revision, head_revision
from shared.db.models import Base
from tests.conftest import Database


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True},
    )
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_head_matches_models_no_differences(database: Database) -> None:
    engine = create_engine(database.url, schema=database.schema)
    try:
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    # The comparison looked at the migrated tables (on PostgreSQL, in the test's schema).
    assert set(Base.metadata.tables) <= tables
    assert differences == []
