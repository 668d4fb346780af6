"""Bodies of the operator REST API, kept apart from the storage models.

`XCreate` and `XUpdate` are what an operator sends; they forbid unknown fields, so a
typo (`"trigger": [...]`) is a 422 naming it rather than a silent no-op. An update is
partial: an omitted field keeps its stored value, a list replaces the stored list and
`config` replaces the stored config whole. `XPublic` is what the API returns; no
response model has a field for a trade account's credentials, so none can leak.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    MISSING,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from shared.events import Category, Event, LogLevel, Name, Trace
from shared.kernel.orders import OrderStatus
from shared.kernel.rules import MAX_RULES

Description = Annotated[str, Field(max_length=2_000)]
Config = Annotated[
    dict[str, Any],
    Field(description="The component's own configuration, sent to it on connect and on change."),
]
GroupKind = Literal["algo", "llm"]
Mode = Literal["paper", "live"]
Exchange = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Exchange adapter: `paper`, `oanda`, or a ccxt exchange id such as `binance`.",
    ),
]
Credentials = Annotated[
    dict[str, Any],
    Field(
        description="Exchange keys. Write-only: encrypted at rest and never returned.",
        json_schema_extra={"writeOnly": True},
    ),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Output):
    """The body of a 401, 404 or 409: what was wrong and what to do."""

    detail: str


class FieldError(_Output):
    loc: list[str] = Field(description='Where: `["body", "triggers"]`, `["query", "since"]`.')
    msg: str
    type: str


class ValidationProblem(_Output):
    """The body of a 422: one entry per bad field."""

    detail: list[FieldError]
    message: str = Field(description="The bad fields in one line.")


class TokenIssued(_Output):
    name: str
    token: str = Field(description="The new token. Shown this once: store it now.")


# --------------------------------------------------------------------------- triggers


class TriggerCreate(_Input):
    name: Name
    description: Description = ""
    config: Config = Field(default_factory=dict)


class TriggerUpdate(_Input):
    name: Name | MISSING = MISSING
    description: Description | MISSING = MISSING
    config: Config | MISSING = MISSING
    enabled: bool | MISSING = MISSING


class TriggerPublic(_Output):
    name: str
    description: str
    config: dict[str, Any]
    enabled: bool
    has_token: bool = Field(description="Whether a live (unrevoked) token exists.")
    created_at: datetime
    updated_at: datetime


class TriggerCreated(TriggerPublic):
    token: str = Field(description="The trigger's token. Shown this once: store it now.")


# --------------------------------------------------------------------------- trading groups


class TradingGroupCreate(_Input):
    name: Name
    triggers: list[Name] = Field(
        default_factory=list, max_length=1_000, description="Triggers it subscribes to."
    )
    kind: GroupKind = "algo"
    description: Description = ""
    config: Config = Field(default_factory=dict)


class TradingGroupUpdate(_Input):
    name: Name | MISSING = MISSING
    triggers: Annotated[list[Name], Field(max_length=1_000)] | MISSING = MISSING
    kind: GroupKind | MISSING = MISSING
    description: Description | MISSING = MISSING
    config: Config | MISSING = MISSING
    enabled: bool | MISSING = MISSING


class TradingGroupPublic(_Output):
    name: str
    kind: str
    description: str
    config: dict[str, Any]
    enabled: bool
    triggers: list[str]
    has_token: bool = Field(description="Whether a live (unrevoked) token exists.")
    created_at: datetime
    updated_at: datetime


class TradingGroupCreated(TradingGroupPublic):
    token: str = Field(description="The group's token. Shown this once: store it now.")


# --------------------------------------------------------------------------- trade accounts


class TradeAccountCreate(_Input):
    name: Name
    exchange: Exchange
    mode: Mode = "paper"
    trading_groups: list[Name] = Field(
        default_factory=list, max_length=1_000, description="Groups whose decisions it trades."
    )
    config: Config = Field(default_factory=dict)
    credentials: Credentials | None = None


class TradeAccountUpdate(_Input):
    name: Name | MISSING = MISSING
    exchange: Exchange | MISSING = MISSING
    mode: Mode | MISSING = MISSING
    trading_groups: Annotated[list[Name], Field(max_length=1_000)] | MISSING = MISSING
    config: Config | MISSING = MISSING
    credentials: Credentials | None | MISSING = Field(
        default=MISSING, description="New exchange keys (write-only); null removes them."
    )


class TradeAccountPublic(_Output):
    name: str
    exchange: str
    mode: str
    config: dict[str, Any]
    trading_groups: list[str]
    execution_service: str | None = Field(description="The execution service serving it.")
    has_credentials: bool
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------------- execution services


class ExecutionServiceCreate(_Input):
    name: Name
    trade_accounts: list[Name] = Field(
        default_factory=list,
        max_length=1_000,
        description="Accounts it places orders for; each account has one execution service.",
    )
    description: Description = ""
    config: Config = Field(default_factory=dict)


class ExecutionServiceUpdate(_Input):
    name: Name | MISSING = MISSING
    trade_accounts: Annotated[list[Name], Field(max_length=1_000)] | MISSING = MISSING
    description: Description | MISSING = MISSING
    config: Config | MISSING = MISSING


class ExecutionServicePublic(_Output):
    name: str
    description: str
    config: dict[str, Any]
    trade_accounts: list[str]
    has_token: bool = Field(description="Whether a live (unrevoked) token exists.")
    created_at: datetime
    updated_at: datetime


class ExecutionServiceCreated(ExecutionServicePublic):
    token: str = Field(description="The service's token. Shown this once: store it now.")


# --------------------------------------------------------------------------- strategies

Symbol = Annotated[
    str, Field(min_length=1, max_length=64, description="The market it trades: `ETH/BTC`.")
]
Rules = Annotated[
    list[dict[str, Any]],
    Field(
        min_length=1,
        max_length=MAX_RULES,
        description=(
            "JSON rules, tried in order; the first that holds decides, none -> HOLD. "
            'A rule: `{"when": condition, "then": "BUY"|"SELL"|"CLOSE"|"HOLD", '
            '"name"?, "confidence"?, "stop_loss"?, "take_profit"?}`; a condition: '
            '`{"all": [...]}`, `{"any": [...]}`, `{"not": ...}` or a comparison '
            '`{"indicator"|"price": ..., "op": ">"|">="|"<"|"<="|"=="|"!="|'
            '"crosses_above"|"crosses_below", "value"|"indicator_b"|"price_b": ...}`. '
            "The full format is in shared/kernel/rules.py."
        ),
        examples=[
            [
                {
                    "when": {
                        "all": [
                            {"indicator": {"kind": "rsi", "length": 14}, "op": ">", "value": 70}
                        ]
                    },
                    "then": "SELL",
                }
            ]
        ],
    ),
]


class StrategyCreate(_Input):
    name: Name
    symbol: Symbol
    rules: Rules
    description: Description = ""


class StrategyUpdate(_Input):
    """A new version: `rules` replaces the rules; an omitted `symbol` or `description`
    keeps the latest version's."""

    rules: Rules
    symbol: Symbol | MISSING = MISSING
    description: Description | MISSING = MISSING


class StrategyPublic(_Output):
    name: str
    version: int = Field(description="1 at creation, one more on each edit.")
    symbol: str
    description: str
    rules: list[dict[str, Any]] = Field(description="The rules, defaults filled in.")
    created_at: datetime = Field(description="When this version was made.")
    deleted_at: datetime | None = Field(description="When the strategy was deleted.")


# --------------------------------------------------------------------------- events and logs

NextAfter = Annotated[
    int | None,
    Field(description="Pass as `after` to get the next page; null when this page is the last."),
]


class EventPage(_Output):
    items: list[Event] = Field(description="Events as delivered on /ws/events, `seq` included.")
    next_after: NextAfter


class LogPublic(_Output):
    seq: int
    id: UUID
    source: str
    level: LogLevel
    code: str
    message: str
    data: dict[str, Any]
    trace: Trace
    ts: datetime


class LogPage(_Output):
    items: list[LogPublic]
    next_after: NextAfter


class _Window(_Input):
    since: AwareDatetime | None = Field(
        default=None,
        description="Only items whose `ts` is at or after this (ISO 8601, with offset).",
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only items whose `ts` is before this (ISO 8601, with offset)."
    )
    correlation_id: str | None = Field(default=None, max_length=128)
    after: int | None = Field(
        default=None,
        ge=0,
        description="Cursor: start after this `seq` (before it with `order=desc`); "
        "pass the previous page's `next_after`.",
    )
    limit: int = Field(default=100, ge=1, le=1_000)
    order: Literal["asc", "desc"] = Field(default="asc", description="`desc`: newest first.")


class EventQuery(_Window):
    category: Category | None = None
    source: str | None = Field(
        default=None,
        max_length=100,
        description="The publisher as stored: `role:name` (`trigger:rsi-btc`), or `gateway`.",
    )
    symbol: str | None = Field(default=None, max_length=64)


class LogQuery(_Window):
    source: str | None = Field(
        default=None, max_length=100, description="The sender as stored: `role:name`."
    )
    code: str | None = Field(default=None, max_length=64)
    level: LogLevel | None = None


# --------------------------------------------------------------------------- execution
#
# What the execution service stored: intents, orders, fills, positions, incidents and
# equity snapshots. The gateway reads them; only an incident's status is the
# operator's to change.


def _fixed_point(value: Decimal) -> str:
    # str() would print a normalized 1E-18 or 1E+2; fixed point reads the same in every
    # client and parses back to the same Decimal. abs() of a zero drops its sign.
    return format(value if value else abs(value), "f")


Amount = Annotated[
    Decimal,
    PlainSerializer(_fixed_point, return_type=str, when_used="json"),
    Field(
        description='An exact decimal as a JSON string in fixed point: `"0.3"`, '
        '`"0.000000000000000001"`. Parse it as a decimal, not a float.'
    ),
]
NextCursor = Annotated[
    str | None,
    Field(description="Pass as `after` to get the next page; null when this page is the last."),
]
IncidentStatus = Literal["open", "acknowledged", "resolved"]
Filter = Annotated[str | None, Field(max_length=128)]


def _comma_list(value: Any) -> Any:
    """`status=a,b&status=c` -> `["a", "b", "c"]`: both forms a client may send."""
    items = value if isinstance(value, list) else [value]
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


class _Page(_Input):
    after: int | None = Field(
        default=None,
        ge=0,
        description="Cursor: start after this `id` (before it with `order=desc`); "
        "pass the previous page's `next_after`.",
    )
    limit: int = Field(default=100, ge=1, le=1_000)
    order: Literal["asc", "desc"] = Field(default="asc", description="`desc`: newest first.")


class IntentQuery(_Input):
    account: Filter = None
    trading_group: Filter = None
    symbol: Filter = None
    status: Literal["accepted", "rejected"] | None = None
    reason: Annotated[
        str | None, Field(max_length=64, description="The risk check's code: `max_positions`.")
    ] = None
    correlation_id: Filter = None
    since: AwareDatetime | None = Field(
        default=None, description="Only intents made at or after this (ISO 8601, with offset)."
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only intents made before this (ISO 8601, with offset)."
    )
    after: str | None = Field(
        default=None,
        max_length=200,
        description="Cursor: the previous page's `next_after`, as it was given.",
    )
    limit: int = Field(default=100, ge=1, le=1_000)
    order: Literal["asc", "desc"] = Field(default="asc", description="`desc`: newest first.")


class IntentPublic(_Output):
    id: str
    account: str
    trading_group: str
    decision_id: str
    correlation_id: str | None
    symbol: str
    action: str
    confidence: float
    status: str = Field(description="`accepted` or `rejected`.")
    reason: str | None = Field(description="Rejected: the stable code of the check that refused.")
    message: str
    quantity: Amount | None
    price: Amount | None
    notional: Amount | None
    checks: list[dict[str, Any]] = Field(description="The risk engine's trail, check by check.")
    decision: dict[str, Any] = Field(description="The decision's payload as execution read it.")
    created_at: datetime


class IntentPage(_Output):
    items: list[IntentPublic]
    next_after: NextCursor


class OrderQuery(_Page):
    account: Filter = None
    trading_group: Filter = None
    symbol: Filter = None
    status: Annotated[list[OrderStatus], BeforeValidator(_comma_list)] = Field(
        default_factory=list,
        max_length=10,
        description="Only these statuses: repeat it (`status=filled&status=canceled`) or "
        "list them (`status=filled,canceled`).",
    )
    open: bool | None = Field(
        default=None,
        description="`true`: only orders that may still fill or whose fate is unknown "
        "(`submitted`, `accepted`, `partially_filled`, `ambiguous`); `false`: the others.",
    )
    correlation_id: Filter = None
    client_order_id: Filter = None
    since: AwareDatetime | None = Field(
        default=None, description="Only orders created at or after this (ISO 8601, with offset)."
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only orders created before this (ISO 8601, with offset)."
    )


class FillPublic(_Output):
    id: int
    account: str
    fill_id: str = Field(description="The exchange's id of the fill.")
    client_order_id: str
    trading_group: str | None
    correlation_id: str | None
    symbol: str
    side: str
    leg: str | None
    quantity: Amount
    price: Amount
    fee: Amount
    liquidity: str | None
    realized_pnl: Amount | None
    at: datetime


class OrderPublic(_Output):
    id: int
    account: str
    client_order_id: str
    intent_id: str | None
    trading_group: str | None
    symbol: str
    side: str
    type: str
    leg: str
    status: str = Field(description="`submitted`, `filled`, ...: see `status` in the query.")
    quantity: Amount
    filled_quantity: Amount
    average_price: Amount | None
    fees: Amount
    limit_price: Amount | None
    stop_price: Amount | None
    exchange_order_id: str | None
    reason: str | None
    decision_id: str | None
    correlation_id: str | None
    parent_id: str | None
    not_before: datetime | None
    created_at: datetime
    updated_at: datetime


class OrderDetail(OrderPublic):
    fills: list[FillPublic] = Field(description="The order's fills, oldest first.")


class OrderPage(_Output):
    items: list[OrderPublic]
    next_after: NextAfter


class FillQuery(_Page):
    account: Filter = None
    trading_group: Filter = None
    symbol: Filter = None
    correlation_id: Filter = None
    client_order_id: Filter = None
    since: AwareDatetime | None = Field(
        default=None, description="Only fills at or after this (ISO 8601, with offset)."
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only fills before this (ISO 8601, with offset)."
    )


class FillPage(_Output):
    items: list[FillPublic]
    next_after: NextAfter


class PositionQuery(_Input):
    account: Filter = None
    symbol: Filter = None
    open: bool = Field(
        default=True,
        description="`true`: only positions held (quantity not 0); `false`: every position, "
        "closed ones included.",
    )


class PositionPublic(_Output):
    account: str
    symbol: str
    trading_group: str | None
    quantity: Amount = Field(description="Base units; 0 once closed.")
    average_price: Amount | None
    mark_price: Amount | None = Field(description="The last price it was valued at.")
    unrealized_pnl: Amount
    realized_pnl: Amount
    stop_loss: Amount | None
    take_profit: Amount | None
    opened_at: datetime | None
    updated_at: datetime


class IncidentQuery(_Page):
    account: Filter = None
    status: IncidentStatus | None = None


class IncidentPublic(_Output):
    id: int
    account: str
    kind: str
    status: str = Field(description="`open`, `acknowledged` or `resolved`.")
    message: str
    details: dict[str, Any]
    created_at: datetime
    closed_at: datetime | None = Field(description="When an operator acknowledged or resolved it.")
    closed_note: str | None = Field(description="The operator's note.")


class IncidentPage(_Output):
    items: list[IncidentPublic]
    next_after: NextAfter


Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2_000),
    Field(description="What the operator found or did; kept with the incident."),
]


class IncidentClose(_Input):
    note: Note


class EquityQuery(_Page):
    since: AwareDatetime | None = Field(
        default=None, description="Only snapshots at or after this (ISO 8601, with offset)."
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only snapshots before this (ISO 8601, with offset)."
    )
    summary: bool = Field(default=True, description="`false`: leave `summary` out (null).")


class EquitySnapshotPublic(_Output):
    id: int
    at: datetime
    currency: str
    equity: Amount
    cash: Amount
    positions_value: Amount
    realized_pnl: Amount = Field(description="Since the account started trading.")
    unrealized_pnl: Amount
    fees: Amount
    drawdown: Amount = Field(description="Below the peak equity, as a fraction of the peak.")


class EquitySummary(_Output):
    """The account now, from all its snapshots whatever the page's window."""

    at: datetime | None = Field(description="Time of the latest snapshot; null if none.")
    currency: str | None
    equity: Amount | None = Field(description="Equity at the latest snapshot.")
    realized_pnl_today: Amount | None = Field(
        description="Realized PnL since midnight UTC: the latest snapshot's `realized_pnl` "
        "minus that of the last snapshot before midnight (0 if there is none)."
    )
    max_drawdown: Amount | None = Field(description="The deepest `drawdown` of any snapshot.")


class EquityPage(_Output):
    account: str
    items: list[EquitySnapshotPublic]
    next_after: NextAfter
    summary: EquitySummary | None


# --------------------------------------------------------------------------- backtests

BacktestStatus = Literal["queued", "running", "done", "failed"]


class BacktestQuery(_Input):
    status: BacktestStatus | None = None
    after: str | None = Field(
        default=None,
        max_length=200,
        description="Cursor: the previous page's `next_after`, as it was given.",
    )
    limit: int = Field(default=100, ge=1, le=1_000)
    order: Literal["asc", "desc"] = Field(
        default="desc", description="`desc` (the default): newest first; `asc`: oldest first."
    )


class BacktestAccepted(_Output):
    """A backtest was queued: poll `GET /api/v1/backtests/{id}`."""

    id: str
    status: BacktestStatus


class BacktestSummary(_Output):
    id: str
    status: BacktestStatus
    progress: float = Field(description="Fraction of the candles replayed, 0 to 1.")
    request: dict[str, Any] = Field(description="The request as validated, defaults filled in.")
    metrics: dict[str, Any] | None = Field(
        description="Done: total return, Sharpe, drawdown... (docs/BACKTESTING.md)."
    )
    error: str | None = Field(description="Failed: what went wrong.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class BacktestPublic(BacktestSummary):
    result: dict[str, Any] | None = Field(
        description="Done: the whole result as `ats backtest` writes `result.json` (trades, "
        "equity curve, settings), with its `metrics`."
    )


class BacktestPage(_Output):
    items: list[BacktestSummary] = Field(description="Without `result`: get one for it.")
    next_after: NextCursor
