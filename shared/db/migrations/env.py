"""Alembic environment: always run through `shared.db.engine.upgrade`, which passes
an open connection, so migrations work the same on SQLite and PostgreSQL."""

from alembic import context

from shared.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `ats db upgrade` (shared.db.engine.upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
