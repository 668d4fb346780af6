"""Incidents: what the execution service found wrong, such as a reconciliation
mismatch. An account with an open incident does not trade; the execution service
resumes it once an operator has acknowledged or resolved every one of its incidents.
Both close the incident for good, with the operator's note."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status

from gateway.api.deps import SessionDep
from gateway.api.routes._common import Responses
from gateway.api.schemas import (
    IncidentClose,
    IncidentPage,
    IncidentPublic,
    IncidentQuery,
    Problem,
)
from gateway.db import crud
from shared.logging import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/incidents", tags=["incidents"])

_NOT_FOUND: Responses = {404: {"model": Problem, "description": "No incident has that id."}}
_CLOSED: Responses = {
    409: {"model": Problem, "description": "The incident was already acknowledged or resolved."}
}


def _not_found(incident_id: int) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"incident {incident_id} not found: list them at /api/v1/incidents",
    )


@router.get("")
async def list_incidents(
    query: Annotated[IncidentQuery, Query()], session: SessionDep
) -> IncidentPage:
    """Incidents, oldest first (or newest first with `order=desc`). Page on by passing
    `next_after` back as `after`; `status=open` lists what keeps accounts from trading."""
    rows = await crud.list_incidents(
        session=session,
        account=query.account,
        status=query.status,
        after=query.after,
        limit=query.limit + 1,  # one more than asked tells whether another page exists
        descending=query.order == "desc",
    )
    page = rows[: query.limit]
    return IncidentPage(
        items=[IncidentPublic.model_validate(r, from_attributes=True) for r in page],
        next_after=page[-1].id if len(rows) > query.limit else None,
    )


@router.get("/{incident_id}", responses=_NOT_FOUND)
async def get_incident(incident_id: int, session: SessionDep) -> IncidentPublic:
    try:
        row = await crud.get_incident(session=session, incident_id=incident_id)
    except crud.NotFound as e:
        raise _not_found(incident_id) from e
    return IncidentPublic.model_validate(row, from_attributes=True)


async def _close(
    session: SessionDep,
    incident_id: int,
    body: IncidentClose,
    to: Literal["acknowledged", "resolved"],
) -> IncidentPublic:
    try:
        row = await crud.close_incident(
            session=session,
            incident_id=incident_id,
            status=to,
            note=body.note,
            at=datetime.now(UTC),
        )
    except crud.NotFound as e:
        raise _not_found(incident_id) from e
    except crud.IncidentClosed as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
    await session.commit()
    log.info("incident_closed", incident=row.id, account=row.account, status=to)
    return IncidentPublic.model_validate(row, from_attributes=True)


@router.post("/{incident_id}/acknowledge", responses={**_NOT_FOUND, **_CLOSED})
async def acknowledge_incident(
    incident_id: int, body: IncidentClose, session: SessionDep
) -> IncidentPublic:
    """Mark an open incident seen and dealt with for now; its account trades again once
    it has no other open incident. `note` (required) says what was checked or done."""
    return await _close(session, incident_id, body, "acknowledged")


@router.post("/{incident_id}/resolve", responses={**_NOT_FOUND, **_CLOSED})
async def resolve_incident(
    incident_id: int, body: IncidentClose, session: SessionDep
) -> IncidentPublic:
    """Mark an open incident fixed; its account trades again once it has no other open
    incident. `note` (required) says what the cause was and how it was fixed."""
    return await _close(session, incident_id, body, "resolved")
