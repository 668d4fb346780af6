"""Strategies: users' JSON rules (shared/kernel/rules.py), per symbol and versioned.

An edit (PUT) stores the next version and never changes an old one, so a decision
that records `(name, version)` always points at the rules that made it. DELETE marks
the strategy deleted: its versions stay readable for audit, it can no longer be run or
edited, and its name is not given out again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.deps import HubDep, SessionDep
from gateway.api.routes._common import CONFLICT, NOT_FOUND, commit, given, storage_errors
from gateway.api.schemas import StrategyCreate, StrategyPublic, StrategyUpdate, Symbol
from gateway.db import crud
from shared.db.models import StrategyRow
from shared.kernel.rules import RuleError

router = APIRouter(prefix="/strategies", tags=["strategies"])


def _public(row: StrategyRow) -> StrategyPublic:
    return StrategyPublic(
        name=row.name,
        version=row.version,
        symbol=row.symbol,
        description=row.description,
        rules=row.rules,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )


@contextmanager
def _rule_errors() -> Iterator[None]:
    """An invalid rule is a 422 whose `loc` is the path of the bad node in the body."""
    try:
        yield
    except RuleError as e:
        raise RequestValidationError(
            [
                {"loc": ("body", *(str(p) for p in loc)), "msg": msg, "type": "invalid_rule"}
                for loc, msg in e.problems
            ]
        ) from e


async def _get_or_404(
    session: AsyncSession, name: str, version: int | None = None, *, deleted_ok: bool = False
) -> StrategyRow:
    try:
        return await crud.get_strategy(
            session=session, name=name, version=version, deleted_ok=deleted_ok
        )
    except crud.StrategyDeleted as e:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{e}; read them at /api/v1/strategies/{name}/versions",
        ) from e
    except crud.NotFound as e:
        if version is not None and e.kind == "strategy version":
            detail = f"strategy {name!r} has no version {version}: list its versions"
        else:
            detail = f"strategy {name!r} not found: list them to see the names"
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail) from e


@router.post("", status_code=status.HTTP_201_CREATED, responses=CONFLICT)
async def create_strategy(body: StrategyCreate, session: SessionDep, hub: HubDep) -> StrategyPublic:
    """Create version 1. An invalid rule is a 422 naming the bad node; a name in use,
    or once used by a deleted strategy, is a 409."""
    with _rule_errors(), storage_errors():
        row = await crud.create_strategy(
            session=session,
            name=body.name,
            symbol=body.symbol,
            rules=body.rules,
            description=body.description,
        )
    await commit(session, hub)
    return _public(row)


@router.get("")
async def list_strategies(
    session: SessionDep,
    symbol: Annotated[Symbol | None, Query(description="Only those trading it.")] = None,
    deleted: Annotated[bool, Query(description="The deleted ones instead.")] = False,
) -> list[StrategyPublic]:
    """The latest version of each strategy, by name."""
    rows = await crud.list_strategies(session=session, symbol=symbol, deleted=deleted)
    return [_public(r) for r in rows]


@router.get("/{name}", responses=NOT_FOUND)
async def get_strategy(name: str, session: SessionDep) -> StrategyPublic:
    """The latest version; a deleted strategy is a 404 (its versions stay readable)."""
    return _public(await _get_or_404(session, name))


@router.get("/{name}/versions", responses=NOT_FOUND)
async def list_strategy_versions(name: str, session: SessionDep) -> list[StrategyPublic]:
    """Every version, oldest first, deleted strategies included."""
    try:
        rows = await crud.strategy_versions(session=session, name=name)
    except crud.NotFound as e:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"strategy {name!r} not found: list them to see the names"
        ) from e
    return [_public(r) for r in rows]


@router.get("/{name}/versions/{version}", responses=NOT_FOUND)
async def get_strategy_version(
    name: str, version: Annotated[int, Path(ge=1)], session: SessionDep
) -> StrategyPublic:
    """One version, as it was made; deleted strategies included."""
    return _public(await _get_or_404(session, name, version, deleted_ok=True))


@router.put("/{name}", responses={**NOT_FOUND, **CONFLICT})
async def update_strategy(
    name: str, body: StrategyUpdate, session: SessionDep, hub: HubDep
) -> StrategyPublic:
    """Store the next version; older versions are kept unchanged."""
    await _get_or_404(session, name)
    with _rule_errors(), storage_errors():
        row = await crud.update_strategy(
            session=session,
            name=name,
            rules=body.rules,
            symbol=given(body.symbol),
            description=given(body.description),
        )
    await commit(session, hub)
    return _public(row)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_strategy(name: str, session: SessionDep, hub: HubDep) -> None:
    """Mark the strategy deleted; its versions are kept for audit."""
    await _get_or_404(session, name)
    await crud.delete_strategy(session=session, name=name)
    await commit(session, hub)
