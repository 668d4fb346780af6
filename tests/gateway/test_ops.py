"""Operations endpoints: /health, /ready, /metrics, and what the gateway logs."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gateway.main import SchemaNotCurrent, create_app
from shared.db.engine import head_revision
from tests.conftest import API_KEY, Database, Gateway, gateway_settings
from tests.gateway.ws.wsclient import RawClient, signal


async def test_health_is_ok_without_an_api_key(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as c:
        r = await c.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_reports_database_and_migrations(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as c:
        r = await c.get("/ready")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "migrations": "ok"}


async def test_ready_schema_behind_the_code_is_503(gateway: Gateway) -> None:
    async with gateway.state.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    async with httpx.AsyncClient(base_url=gateway.http_url) as c:
        r = await c.get("/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    assert body["migrations"] == f"at old, head is {head_revision()}"


async def test_gateway_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    db = Database("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", None)
    app = create_app(gateway_settings(db, tmp_path / "data"))
    with pytest.raises(SchemaNotCurrent, match="run `ats db upgrade`"):
        async with app.router.lifespan_context(app):
            pass


async def test_metrics_count_connections_frames_and_rejections(gateway: Gateway) -> None:
    t = await gateway.add_trigger("t1")
    g = await gateway.add_group("g1", ["t1"])
    trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
    await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g)
    assert (await trig.request(signal()))["ok"] is True
    assert (await trig.request({"kind": "event", "category": "decision"}))["ok"] is False
    async with httpx.AsyncClient(base_url=gateway.http_url) as c:
        text = (await c.get("/metrics")).text
    assert 'ats_connections{role="trigger"} 1.0' in text
    assert 'ats_connections{role="trading_group"} 1.0' in text
    assert 'ats_frames_in_total{category="signal"} 1.0' in text
    assert 'ats_frames_out_total{category="signal"} 1.0' in text
    assert 'ats_frames_rejected_total{reason="validation_error"} 1.0' in text
    assert "ats_persist_seconds_bucket" in text
    assert "ats_route_seconds_count" in text


async def test_api_without_key_is_401(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as c:
        missing = await c.get("/api/v1/events")
        wrong = await c.get("/api/v1/events", headers={"Authorization": "Bearer nope"})
        right = await c.get("/api/v1/events", headers={"Authorization": f"Bearer {API_KEY}"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert right.status_code == 200


async def test_tokens_never_reach_the_logs(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.logging import configure_logging

    configure_logging(level="DEBUG", json=True)
    try:
        t = await gateway.add_trigger("t1")
        with caplog.at_level(logging.DEBUG):
            trig = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t)
            await trig.request(signal())
            await trig.close()
        out = capsys.readouterr()
        logged = out.err + out.out
        assert "trigger_token=" in logged  # uvicorn logged the URL...
        assert t not in logged  # ...without the token
        assert "trigger_token=***" in logged
    finally:
        logging.getLogger().handlers.clear()
