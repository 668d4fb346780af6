"""What every resource router shares: lookups, error translation, commit, token routes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import MISSING
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.deps import HubDep, SessionDep
from gateway.api.schemas import Problem, TokenIssued, ValidationProblem
from gateway.db import crud
from gateway.ws.hub import POLICY_VIOLATION, Hub
from gateway.ws.routing import principal
from shared.db.models import ExecutionServiceRow, TradeAccountRow, TradingGroupRow, TriggerRow
from shared.events import Role

# RFC 6455 "service restart": reconnect. Not 1013, on which the hub drops what is still
# queued for the client; a renamed client cannot get that back by replay, which looks
# events up by its new name.
SERVICE_RESTART = 1012

#: The body field that names resources of each kind, for 422s on unknown names.
_REFERENCE_FIELDS = {
    crud.kind_of(TriggerRow): "triggers",
    crud.kind_of(TradingGroupRow): "trading_groups",
    crud.kind_of(TradeAccountRow): "trade_accounts",
}

type Responses = dict[int | str, dict[str, Any]]

NOT_FOUND: Responses = {404: {"model": Problem, "description": "No resource has that name."}}
CONFLICT: Responses = {
    409: {"model": Problem, "description": "The name is taken, or an account is already served."}
}
INVALID: Responses = {
    422: {
        "model": ValidationProblem,
        "description": "A bad field, or a name in a list that names no resource.",
    }
}
UNAUTHORIZED: Responses = {
    401: {"model": Problem, "description": "Missing or invalid API key (`Authorization: Bearer`)."}
}


def given[T](value: T | MISSING) -> T | None:
    """An update field's value, or None ("keep the stored value") when it was omitted."""
    return None if value is MISSING else value


async def get_or_404[T: (TriggerRow, TradingGroupRow, TradeAccountRow, ExecutionServiceRow)](
    session: AsyncSession, model: type[T], name: str
) -> T:
    try:
        return await crud.get_by_name(session=session, model=model, name=name)
    except crud.NotFound as e:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{e.kind} {name!r} not found: list them to see the names"
        ) from e


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn storage refusals into answers: an unknown referenced name is a 422 on the
    field that named it; a taken name or an already served account is a 409."""
    try:
        yield
    except crud.NotFound as e:
        field = _REFERENCE_FIELDS.get(e.kind, e.kind)
        raise RequestValidationError(
            [{"loc": ("body", field), "msg": str(e), "type": "unknown_reference"}]
        ) from e
    except (crud.NameTaken, crud.AlreadyServed) as e:
        raise HTTPException(status.HTTP_409_CONFLICT, str(e)) from e
    except IntegrityError as e:
        # The checks above lost a race with a concurrent request.
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "conflicts with a change made meanwhile (a name or an account binding): "
            "reload and retry",
        ) from e


async def commit(session: AsyncSession, hub: Hub) -> None:
    """Commit, then rebuild routing so the change holds for the next event; clients whose
    configuration changed get a `config_update`."""
    with storage_errors():
        await session.commit()
    await hub.reload_routing()


def renamed(hub: Hub, role: Role, old: str, new: str) -> None:
    """Close a renamed client's session: routing knows it by name, so it must reconnect."""
    if old != new:
        hub.disconnect(principal(role, old), SERVICE_RESTART, f"renamed to {new!r}: reconnect")


def add_client_routes[T: (TriggerRow, TradingGroupRow, ExecutionServiceRow)](
    router: APIRouter, *, role: Role, model: type[T]
) -> None:
    """Add the routes every token holder has: rotate and revoke its token, delete it."""
    kind = crud.kind_of(model)

    @router.post(
        "/{name}/token",
        status_code=status.HTTP_201_CREATED,
        response_model=TokenIssued,
        responses=NOT_FOUND,
        summary=f"Rotate a {kind}'s token",
        description=(
            f"Revoke the {kind}'s token, close its live session (1008 'token rotated') "
            "and return a new token, shown this once."
        ),
    )
    async def rotate_token(name: str, session: SessionDep, hub: HubDep) -> TokenIssued:
        row = await get_or_404(session, model, name)
        token = await crud.issue_token(session=session, role=role, principal_id=row.id)
        await session.commit()
        hub.disconnect(principal(role, row.name), POLICY_VIOLATION, "token rotated")
        return TokenIssued(name=row.name, token=token)

    @router.delete(
        "/{name}/token",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=NOT_FOUND,
        summary=f"Revoke a {kind}'s token",
        description=(
            f"Revoke the {kind}'s token and close its live session (1008 'token revoked'). "
            "It cannot connect until its token is rotated."
        ),
    )
    async def revoke_token(name: str, session: SessionDep, hub: HubDep) -> None:
        row = await get_or_404(session, model, name)
        await crud.revoke_tokens(session=session, role=role, principal_id=row.id)
        await session.commit()
        hub.disconnect(principal(role, row.name), POLICY_VIOLATION, "token revoked")

    @router.delete(
        "/{name}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=NOT_FOUND,
        summary=f"Delete a {kind}",
        description=f"Delete the {kind}, revoke its token and close its live session.",
    )
    async def delete(name: str, session: SessionDep, hub: HubDep) -> None:
        row = await get_or_404(session, model, name)
        await crud.delete_client(session=session, role=role, row=row)
        await session.commit()
        hub.disconnect(principal(role, name), POLICY_VIOLATION, "deleted")
        await hub.reload_routing()
