"""Reconciliation at start, incidents, and the refusals an operator must be able to trust."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from execution.settings import LIVE_TRADING_CONFIRMATION, ExecutionSettings
from shared.db.models import IncidentRow, LogRow, OrderIntentRow
from tests.conftest import Database, Gateway, eventually
from tests.execution.conftest import Desk, close_desk, open_desk, paper_config, read_rows


def denied(desk: Desk) -> list[Any]:
    return [e for e in desk.orders if e.payload.status == "denied"]


def filled(desk: Desk) -> list[Any]:
    return [e for e in desk.orders if e.payload.status == "filled"]


def state_file(desk: Desk) -> Path:
    return desk.settings.data_dir / "paper" / "acct.json"


async def test_a_position_closed_by_hand_is_an_incident_until_acknowledged(desk: Desk) -> None:
    rows = read_rows()
    await desk.decide("BUY", rows[10]["time"], entry=rows[10]["close"])
    await eventually(lambda: filled(desk), message="the entry fill")

    def sell_by_hand() -> None:
        # On the exchange's website, the owner sells the ETH.
        state = json.loads(state_file(desk).read_text())
        state["balances"]["ETH"] = "0"
        state_file(desk).write_text(json.dumps(state))

    await desk.restart(sell_by_hand)
    async with desk.store.sessions() as s:
        (incident,) = (await s.scalars(select(IncidentRow))).all()
    assert incident.kind == "position_mismatch" and incident.status == "open"
    assert incident.details["symbol"] == "ETH/BTC" and incident.details["exchange"] == "0"

    async def logged() -> bool:
        async with desk.store.sessions() as s:
            return bool(
                (await s.scalars(select(LogRow).where(LogRow.code == "EXECUTION_INCIDENT"))).all()
            )

    await eventually(logged, message="the incident's log event")
    # No new entries while the incident is open, and the reason says why.
    await desk.decide("BUY", rows[30]["time"], entry=rows[30]["close"])
    await eventually(lambda: denied(desk), message="the refusal")
    assert denied(desk)[0].payload.reason == "account_halted"

    async with desk.gateway.api() as api:
        answer = await api.post(
            f"/api/v1/incidents/{incident.id}/acknowledge", json={"note": "sold by hand, fine"}
        )
    if answer.status_code == 404 and "Not Found" in answer.text:
        # Before the REST resource exists, acknowledge as it would.
        async with desk.store.sessions.begin() as s:
            row = await s.get(IncidentRow, incident.id)
            assert row is not None
            row.status, row.closed_at = "acknowledged", datetime.now(UTC)
    else:
        assert answer.status_code == 200, answer.text
    await eventually(lambda: not desk.service.accounts["acct"].halted, message="trading to resume")
    before = len(filled(desk))
    await desk.decide("BUY", rows[40]["time"], entry=rows[40]["close"])
    await eventually(lambda: len(filled(desk)) > before, message="an entry after the resume")


async def test_exchange_insufficient_funds_rejects_the_intent_with_its_reason(desk: Desk) -> None:
    rows = read_rows()
    # The owner withdraws the BTC: the books still think it is there, the exchange
    # refuses the order, and the intent records why.
    desk.service.accounts["acct"].adapter.set_balance("BTC", 0)  # type: ignore[attr-defined]
    await desk.decide("BUY", rows[10]["time"], entry=rows[10]["close"])
    await eventually(
        lambda: any(e.payload.status == "rejected" for e in desk.orders), message="rejection"
    )
    (rejected,) = [e for e in desk.orders if e.payload.status == "rejected"]
    assert rejected.payload.reason is not None
    assert rejected.payload.reason.startswith("insufficient_funds")
    async with desk.store.sessions() as s:
        intent = (await s.scalars(select(OrderIntentRow))).one()
    assert (intent.status, intent.reason) == ("rejected", "insufficient_funds")


@pytest.fixture
async def live_desk(
    gateway: Gateway, database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Desk]:
    d, engine = await open_desk(
        gateway,
        database,
        tmp_path / "exe",
        account_config=paper_config(),
        mode="live",
        settings={"enable_live_trading": request.param},
    )
    try:
        yield d
    finally:
        await close_desk(d, engine)


@pytest.mark.parametrize("live_desk", [None], indirect=True)
async def test_a_live_account_without_the_opt_in_is_refused(live_desk: Desk) -> None:
    rows = read_rows()
    await live_desk.decide("BUY", rows[10]["time"], entry=rows[10]["close"])
    await eventually(lambda: denied(live_desk), message="the refusal")
    assert denied(live_desk)[0].payload.reason == "live_trading_not_confirmed"


@pytest.mark.parametrize("live_desk", [LIVE_TRADING_CONFIRMATION], indirect=True)
async def test_a_live_account_with_both_opt_ins_trades(live_desk: Desk) -> None:
    rows = read_rows()
    # exchange "paper": the live path, without real money anywhere.
    await live_desk.decide("BUY", rows[10]["time"], entry=rows[10]["close"])
    await eventually(lambda: filled(live_desk), message="the fill")


def test_the_live_opt_in_takes_only_the_confirmation_value() -> None:
    for value in ("1", "true", "yes"):
        with pytest.raises(ValueError, match="not the confirmation value"):
            ExecutionSettings(enable_live_trading=value)
    assert not ExecutionSettings().live_trading_enabled
    assert ExecutionSettings(enable_live_trading=LIVE_TRADING_CONFIRMATION).live_trading_enabled


async def test_a_groups_own_limits_apply_with_the_accounts(
    gateway: Gateway, database: Database, tmp_path: Path
) -> None:
    d, engine = await open_desk(
        gateway,
        database,
        tmp_path / "exe",
        account_config=paper_config(),
        group_config={"risk": {"min_confidence": 0.9}},
    )
    try:
        rows = read_rows()
        await d.decide("BUY", rows[10]["time"], entry=rows[10]["close"])  # confidence 0.8
        await eventually(lambda: denied(d), message="the refusal")
        assert denied(d)[0].payload.reason == "confidence_too_low"
    finally:
        await close_desk(d, engine)
