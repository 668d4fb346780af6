"""Group tests run their gateway on SQLite only: they test groups, not storage,
and each runs real subprocesses; the storage tests cover PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.db.engine import create_engine, upgrade
from tests.conftest import Database


@pytest.fixture
async def database(tmp_path: Path) -> Database:
    db = Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'ats.db'}", None)
    engine = create_engine(db.url)
    await upgrade(engine)
    await engine.dispose()
    return db
