"""Who is connected to the hub right now: the operator's "online" light."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import HubDep

router = APIRouter(prefix="/connections", tags=["connections"])


class ConnectionPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str = Field(description="`role:name`, as events name their `source`.")
    role: str
    name: str
    client_id: str
    last_seq: int = Field(description="The last event `seq` sent to it.")
    queued: int = Field(description="Events waiting in its send queue.")


class ConnectionList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ConnectionPublic]
    operator_streams: int = Field(description="Open `/api/v1/stream` responses.")


@router.get("")
async def list_connections(hub: HubDep) -> ConnectionList:
    """The triggers, trading groups and execution services with a live `/ws/events`
    session, by principal. Read from the hub's memory: no database query."""
    return ConnectionList(
        items=[
            ConnectionPublic(
                principal=key,
                role=s.role.value,
                name=s.name,
                client_id=s.client_id,
                last_seq=s.last_seq,
                queued=s.queued_events,
            )
            for key, s in sorted(hub.sessions.items())
        ],
        operator_streams=len(hub.taps),
    )
