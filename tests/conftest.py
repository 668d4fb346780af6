"""Fixtures shared by every test: databases, a real gateway on an ephemeral port.

Storage and gateway tests run on SQLite always, and on PostgreSQL too when
ATS_TEST_DATABASE_URL is set (CI sets it). Each PostgreSQL test gets its own schema,
so tests never see each other's rows. With the URL set, an unreachable server fails
the run instead of skipping it.
"""

from __future__ import annotations

import asyncio
import decimal
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import settings

from gateway.db import crud
from gateway.main import AppState
from gateway.server import GatewayServer, build_server
from gateway.settings import GatewaySettings
from shared.db.engine import create_engine, upgrade

# In CI every run explores the same examples, so a landing never hinges on a random
# draw; locally each run draws new ones and finds what CI would not.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _decimal_context() -> tuple[object, ...]:
    c = decimal.getcontext()
    return (
        c.prec,
        c.rounding,
        c.Emin,
        c.Emax,
        c.capitals,
        c.clamp,
        tuple(sorted((t.__name__, on) for t, on in c.traps.items())),
    )


@pytest.fixture(autouse=True)
def _decimal_context_kept() -> Iterator[None]:
    """Money is exact only in the default decimal context; a library that changes the
    process's context (ccxt's decimal_to_precision sets ROUND_HALF_UP) changes every
    later sum. A test that leaves it changed fails here, and the context is reset, so
    the tests after it are not judged in the wrong one."""
    before = _decimal_context()
    yield
    after = _decimal_context()
    if after != before:
        decimal.setcontext(decimal.Context())
        pytest.fail(f"the test changed the decimal context: {before} -> {after}")


PG_URL = os.environ.get("ATS_TEST_DATABASE_URL")
TIMEOUT_FACTOR = float(os.environ.get("ATS_TEST_TIMEOUT_FACTOR", "1"))
API_KEY = "test-operator-key-0123456789"


async def eventually(
    condition: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll `condition` until it returns a truthy value; fail after `timeout` (scaled)."""
    deadline = asyncio.get_running_loop().time() + timeout * TIMEOUT_FACTOR
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Database:
    """A fresh, migrated database: its URL and, on PostgreSQL, its schema."""

    kind: str
    url: str
    schema: str | None

    def env(self) -> dict[str, str]:
        env = {"ATS_DATABASE_URL": self.url}
        if self.schema:
            env["ATS_DATABASE_SCHEMA"] = self.schema
        return env


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'ats.db'}", None)
        engine = create_engine(db.url)
        await upgrade(engine)
        await engine.dispose()
        yield db
        return
    if not PG_URL:
        pytest.skip("PostgreSQL: set ATS_TEST_DATABASE_URL to run (CI does)")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(_pg_dsn(PG_URL))
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    db = Database("postgres", PG_URL, schema)
    engine = create_engine(db.url, schema=schema)
    await upgrade(engine)
    await engine.dispose()
    yield db
    conn = await asyncpg.connect(_pg_dsn(PG_URL))
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


@dataclass
class Gateway:
    """A real gateway served by uvicorn in this event loop."""

    server: GatewayServer
    task: asyncio.Task[None]
    database: Database
    settings: GatewaySettings

    @property
    def port(self) -> int:
        return self.server.bound_port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/events"

    @property
    def state(self) -> AppState:
        state: AppState = self.server._app.state.ats
        return state

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.http_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        )

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)

    # Provisioning straight through storage, for tests about the hub; the REST API
    # has its own tests.
    async def add_trigger(self, name: str) -> str:
        async with self.state.sessionmaker() as s:
            _, token = await crud.create_trigger(session=s, name=name)
            await s.commit()
        await self.state.hub.reload_routing(notify=False)
        return token

    async def add_group(self, name: str, triggers: list[str]) -> str:
        async with self.state.sessionmaker() as s:
            _, token = await crud.create_trading_group(session=s, name=name, triggers=triggers)
            await s.commit()
        await self.state.hub.reload_routing(notify=False)
        return token

    async def add_account(self, name: str, groups: list[str], exchange: str = "paper") -> None:
        async with self.state.sessionmaker() as s:
            await crud.create_trade_account(
                session=s, name=name, exchange=exchange, trading_groups=groups
            )
            await s.commit()
        await self.state.hub.reload_routing(notify=False)

    async def add_execution(self, name: str, accounts: list[str]) -> str:
        async with self.state.sessionmaker() as s:
            _, token = await crud.create_execution_service(
                session=s, name=name, trade_accounts=accounts
            )
            await s.commit()
        await self.state.hub.reload_routing(notify=False)
        return token


def gateway_settings(database: Database, data_dir: Path, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": data_dir,
        "database_url": database.url,
        "database_schema": database.schema,
        "api_key": API_KEY,
        "ws_ping_interval": 5.0,
        "ws_ping_timeout": 5.0,
        "shutdown_timeout": 5.0,
    }
    values.update(overrides)
    return GatewaySettings(**values)


async def start_gateway(settings: GatewaySettings, database: Database) -> Gateway:
    server = build_server(settings)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started or task.done(), message="gateway start")
    if task.done():
        task.result()
    return Gateway(server=server, task=task, database=database, settings=settings)


@pytest.fixture
def gateway_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Gateway settings for one test: `@pytest.mark.gateway(ws_rate_limit=5)`."""
    marker = request.node.get_closest_marker("gateway")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
async def gateway(
    database: Database, tmp_path: Path, gateway_overrides: dict[str, Any]
) -> AsyncIterator[Gateway]:
    gw = await start_gateway(
        gateway_settings(database, tmp_path / "data", **gateway_overrides), database
    )
    try:
        yield gw
    finally:
        if not gw.task.done():
            await gw.stop()


ATS = str(Path(sys.executable).with_name("ats"))
ROOT = Path(__file__).resolve().parents[1]
Spawn = Callable[[list[str], dict[str, str], Path], "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start `ats ARGS...` as a real process (log to a file); killed at teardown if a
    test leaves it running."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [ATS, *args],
                env={**os.environ, "ATS_LOG_JSON": "true", **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
