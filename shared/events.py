"""Protocol 1: every frame that crosses `/ws/events`, as pydantic models.

Three kinds of frame: `event` (a business event, persisted and routed), `log` (a
service's log line or a discussion message, persisted and shown to operators) and
`ack`. Events carry a `category`; each category has its own payload model.

Inbound models (`*In`, what a client sends) forbid unknown fields, so a client
cannot set `source`, `seq` or any other field the gateway stamps. Delivered models
add the stamped envelope fields. One module-level `TypeAdapter` parses each side.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1

#: Names of triggers, groups, accounts and services: safe in URLs, logs and routing keys.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Role(StrEnum):
    """Who holds a token. The role comes from the token, never from the client."""

    TRIGGER = "trigger"
    TRADING_GROUP = "trading_group"
    EXECUTION = "execution"


class Category(StrEnum):
    SIGNAL = "signal"
    DECISION = "decision"
    ORDER = "order"
    CONFIG_UPDATE = "config_update"


#: The categories each role may publish; `config_update` is the gateway's alone.
ALLOWED_CATEGORIES: dict[Role, frozenset[Category]] = {
    Role.TRIGGER: frozenset({Category.SIGNAL}),
    Role.TRADING_GROUP: frozenset({Category.DECISION}),
    Role.EXECUTION: frozenset({Category.ORDER}),
}


class RejectReason(StrEnum):
    """`message` of an `ok:false` ack. Stable: clients branch on it."""

    BAD_JSON = "bad_json"
    VALIDATION_ERROR = "validation_error"
    FORBIDDEN_EVENT = "forbidden_event"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _OpenModel(BaseModel):
    """A payload that carries named fields plus whatever else its producer adds
    (indicator values, exchange details); the named fields are still validated."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Trace(_Model):
    correlation_id: str | None = Field(default=None, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)


# --------------------------------------------------------------------------- payloads


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"
    NEUTRAL = "neutral"


class SignalPayload(_OpenModel):
    """What a trigger saw. Indicator values ride along as extra fields (`rsi: 28.4`)."""

    signal_type: str = "immediate"
    symbol: str | None = Field(default=None, max_length=64)
    affected_symbols: list[str] = Field(default_factory=list, max_length=100)
    timeframe: str | None = Field(default=None, max_length=16)
    direction: Direction | None = None
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    strength: float | None = Field(default=None, ge=0, le=1)
    analysis: str | None = Field(default=None, max_length=20_000)
    candle_time: AwareDatetime | None = None


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    CLOSE = "CLOSE"
    HOLD = "HOLD"


class DecisionPayload(_OpenModel):
    """What a trading group decided, and why."""

    symbol: str = Field(max_length=64)
    action: Action
    confidence: float = Field(ge=0, le=1)
    entry: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    size_hint: Decimal | None = Field(default=None, ge=0)
    reasoning: str = Field(default="", max_length=50_000)
    timeframe: str | None = Field(default=None, max_length=16)
    trade_account: str | None = Field(
        default=None, description="Which bound trade account to trade on, when several are bound."
    )


class OrderPayload(_OpenModel):
    """What became of a decision: an intent, an order state change, a fill, a rejection."""

    trading_group: Name = Field(description="The group that decided; the event is routed to it.")
    status: str = Field(max_length=32)
    reason: str | None = Field(default=None, max_length=2_000)
    symbol: str | None = Field(default=None, max_length=64)
    trade_account: str | None = None
    intent_id: str | None = None
    order_id: str | None = None
    client_order_id: str | None = None
    side: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None


class ConfigUpdatePayload(_OpenModel):
    """The client's new configuration, the same shape as `config` in the connect ack."""

    config: dict[str, Any] = Field(default_factory=dict)
    subscriptions: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- events


class _EventIn(_Model):
    kind: Literal["event"] = "event"
    id: UUID | None = Field(
        default=None, description="Client-chosen id; publishing the same id twice is a no-op."
    )
    priority: int = Field(default=5, ge=0, le=10)
    targets: list[Name] = Field(default_factory=list, max_length=100)
    title: str = Field(default="", max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=50)
    trace: Trace = Field(default_factory=Trace)
    ts: AwareDatetime | None = Field(
        default=None, description="When it happened; the gateway's clock when omitted."
    )


class SignalEventIn(_EventIn):
    category: Literal["signal"] = "signal"
    payload: SignalPayload


class DecisionEventIn(_EventIn):
    category: Literal["decision"] = "decision"
    payload: DecisionPayload


class OrderEventIn(_EventIn):
    category: Literal["order"] = "order"
    payload: OrderPayload


class ConfigUpdateEventIn(_EventIn):
    category: Literal["config_update"] = "config_update"
    payload: ConfigUpdatePayload


# What the gateway sends is read leniently: a newer gateway may add fields, and an
# older client must keep working. What clients send stays strict.
_SERVER_CONFIG = ConfigDict(extra="ignore", frozen=True)


class _Stamped(_Model):
    """Fields the gateway stamps on every delivered event."""

    id: UUID
    seq: int = Field(ge=1)
    source: str = Field(description="`role:name` of the publisher, from its token.")
    ts: datetime


class SignalEvent(SignalEventIn, _Stamped):
    model_config = _SERVER_CONFIG
    id: UUID
    ts: datetime


class DecisionEvent(DecisionEventIn, _Stamped):
    model_config = _SERVER_CONFIG
    id: UUID
    ts: datetime


class OrderEvent(OrderEventIn, _Stamped):
    model_config = _SERVER_CONFIG
    id: UUID
    ts: datetime


class ConfigUpdateEvent(ConfigUpdateEventIn, _Stamped):
    model_config = _SERVER_CONFIG
    id: UUID
    ts: datetime


EventIn = Annotated[
    SignalEventIn | DecisionEventIn | OrderEventIn | ConfigUpdateEventIn,
    Field(discriminator="category"),
]
Event = Annotated[
    SignalEvent | DecisionEvent | OrderEvent | ConfigUpdateEvent,
    Field(discriminator="category"),
]

# --------------------------------------------------------------------------- logs


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


#: Well-known log codes.
TRIGGER_HEARTBEAT = "TRIGGER_HEARTBEAT"
TRADING_GROUP_DISCUSSION_LOG = "TRADING_GROUP_DISCUSSION_LOG"


class LogIn(_Model):
    kind: Literal["log"] = "log"
    id: UUID | None = None
    level: LogLevel = LogLevel.INFO
    code: str = Field(default="LOG", max_length=64)
    message: str = Field(default="", max_length=50_000)
    data: dict[str, Any] = Field(default_factory=dict)
    trace: Trace = Field(default_factory=Trace)
    ts: AwareDatetime | None = None


class Log(LogIn):
    model_config = _SERVER_CONFIG
    id: UUID
    source: str
    ts: datetime


# --------------------------------------------------------------------------- acks


class AckIn(_Model):
    """A subscriber's acknowledgement of a delivered event: its cursor moves to `seq`."""

    kind: Literal["ack"] = "ack"
    seq: int = Field(ge=1)


class Ack(_Model):
    """The gateway's answer: to a connect, to a published event or log, or a rejection."""

    model_config = _SERVER_CONFIG
    kind: Literal["ack"] = "ack"
    ok: bool
    message: str
    id: UUID | None = None
    seq: int | None = None
    dispatched_clients: int | None = None
    detail: Any = None
    # Present on the connect ack only.
    protocol: int | None = None
    client_id: str | None = None
    role: Role | None = None
    subscriptions: list[str] | None = None
    cursor: int | None = None
    config: dict[str, Any] | None = None
    limits: Limits | None = None
    positions: list[HeldPosition] | None = Field(
        default=None,
        description="A trading group's connect ack only: the open positions execution "
        "holds for its decisions, so a restarted group knows what it holds.",
    )


class HeldPosition(_Model):
    """One open position of a trading group's trades, as execution last stored it."""

    model_config = _SERVER_CONFIG
    trade_account: str
    symbol: str
    quantity: Decimal
    average_price: Decimal | None = None
    opened_at: datetime | None = None


class Limits(_Model):
    """The session's limits, sent in the connect ack so clients can check locally."""

    model_config = _SERVER_CONFIG
    max_frame_bytes: int
    rate_limit: float = Field(description="Frames per second, sustained.")
    rate_burst: int
    send_queue: int = Field(description="Events queued for the client before it is dropped.")


ClientFrame = Annotated[EventIn | LogIn | AckIn, Field(discriminator="kind")]
"""Anything a client may send. Events are told apart by `category` within `kind`."""

ServerFrame = Annotated[Event | Log | Ack, Field(discriminator="kind")]
"""Anything the gateway sends."""

ClientEventFrame = SignalEventIn | DecisionEventIn | OrderEventIn | ConfigUpdateEventIn
DeliveredEvent = SignalEvent | DecisionEvent | OrderEvent | ConfigUpdateEvent

client_frame_adapter: TypeAdapter[
    SignalEventIn | DecisionEventIn | OrderEventIn | ConfigUpdateEventIn | LogIn | AckIn
] = TypeAdapter(ClientFrame)
server_frame_adapter: TypeAdapter[DeliveredEvent | Log | Ack] = TypeAdapter(ServerFrame)
event_adapter: TypeAdapter[DeliveredEvent] = TypeAdapter(Event)


def protocol_json_schema() -> dict[str, Any]:
    """The JSON Schema of protocol 1, both directions; committed as docs/protocol.schema.json."""
    client = client_frame_adapter.json_schema(ref_template="#/$defs/{model}")
    server = server_frame_adapter.json_schema(ref_template="#/$defs/{model}")
    defs = {**client.pop("$defs", {}), **server.pop("$defs", {})}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ATS gateway protocol",
        "description": f"Frames on /ws/events, protocol {PROTOCOL_VERSION}.",
        "protocol": PROTOCOL_VERSION,
        "$defs": {
            **defs,
            "ClientFrame": client,
            "ServerFrame": server,
        },
        "oneOf": [{"$ref": "#/$defs/ClientFrame"}, {"$ref": "#/$defs/ServerFrame"}],
    }
