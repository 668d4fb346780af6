"""Bodies of the operator REST API, kept apart from the storage models.

`XCreate` and `XUpdate` are what an operator sends; they forbid unknown fields, so a
typo (`"trigger": [...]`) is a 422 naming it rather than a silent no-op. An update is
partial: an omitted field keeps its stored value, a list replaces the stored list and
`config` replaces the stored config whole. `XPublic` is what the API returns; no
response model has a field for a trade account's credentials, so none can leak.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    MISSING,
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from shared.backtest.data import BacktestRequest
from shared.events import Category, Event, LogLevel, Name, Trace
from shared.kernel.orders import OrderStatus
from shared.kernel.rules import MAX_RULES
from shared.kernel.strategy import strategy_class, strategy_names

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
    withheld: Amount | None = Field(
        default=None,
        description="Base units of a buy the account does not hold: the fee the "
        "exchange took in the coin bought and the dust below the amount grid (their "
        "value is in `fee`); null for none.",
    )


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


class BacktestCreate(BacktestRequest):
    """A backtest to run: `BacktestRequest`, with `params` checked against the
    strategy's own model as a field, the way a trading group's are
    (`catalog.check_group_config`). So a bad param's 422 names it
    (`["body", "params", "fast"]`) and a check across params (`fast` below `slow`) is on
    `["body", "params"]`, where a form can show it, rather than on the whole body."""

    @field_validator("params")
    @classmethod
    def _fit_the_strategy(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("strategy")
        # An unknown strategy is left to the request's own check, which lists the known.
        if name in strategy_names():
            # Raised here, its errors become this field's, their locs under `params`.
            strategy_class(name).Params.model_validate(params)
        return params


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


# --------------------------------------------------------------------------- LLM groups
#
# What the LLM trading groups stored: every model call with its tokens and cost, and
# every discussion with its transcript. The gateway reads them. LLM cost is in USD,
# priced from the groups' price table; trading PnL is in each account's currency. The
# two are reported side by side, each with its unit, and never added.

LlmUsageKey = Literal["trading_group", "model", "day", "member"]
DiscussionStatus = Literal["running", "decided", "hold", "failed"]
Usd = Annotated[Literal["USD"], Field(description="The currency of every LLM `cost`.")]
UsdAmount = Annotated[Amount, Field(description="In USD, from the price table; exact.")]


def _default_usage_keys() -> list[LlmUsageKey]:
    return ["trading_group", "model", "day"]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class LlmUsageQuery(_Input):
    group_by: Annotated[
        list[LlmUsageKey], BeforeValidator(_comma_list), AfterValidator(_unique)
    ] = Field(
        default_factory=_default_usage_keys,
        max_length=10,
        description="Split the totals by these, sorted in this order: repeat it or list "
        "them (`group_by=trading_group,day`). `day` is the UTC date. Empty "
        "(`group_by=`): one total.",
    )
    trading_group: Filter = None
    model: Filter = None
    member: Filter = None
    since: AwareDatetime | None = Field(
        default=None, description="Only calls made at or after this (ISO 8601, with offset)."
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only calls made before this (ISO 8601, with offset)."
    )


class LlmCallsByStatus(_Output):
    ok: int
    invalid: int = Field(description="Answered, but the answer did not parse.")
    error: int = Field(description="No answer: a timeout, a refusal, a 429 after retries.")


class LlmTotals(_Output):
    calls: int
    calls_by_status: LlmCallsByStatus
    tokens_in: int
    tokens_out: int
    cost: UsdAmount


class LlmUsageGroup(LlmTotals):
    trading_group: str | None = Field(description="null unless split by it.")
    model: str | None = Field(description="null unless split by it.")
    member: str | None = Field(description="null unless split by it.")
    day: date | None = Field(description="The UTC date; null unless split by it.")


class LlmUsageReport(_Output):
    group_by: list[LlmUsageKey]
    currency: Usd
    items: list[LlmUsageGroup] = Field(description="Only groups with calls.")
    total: LlmTotals = Field(description="All the calls the filters select.")


class LlmSpend(_Output):
    currency: Usd
    today: LlmTotals = Field(description="Calls since midnight UTC.")
    total: LlmTotals


class AccountPnl(_Output):
    account: str
    currency: str | None = Field(
        description="The account's currency, which its PnL is in (from its latest equity "
        "snapshot); null before the first."
    )
    closed_trades: int = Field(description="Fills that closed (part of) a position.")
    closed_trades_today: int
    realized_pnl: Amount = Field(description="The sum of the group's fills' realized PnL.")
    realized_pnl_today: Amount = Field(description="The same, of fills since midnight UTC.")


class GroupTrading(_Output):
    closed_trades: int = Field(description="On every account.")
    closed_trades_today: int
    accounts: list[AccountPnl] = Field(
        description="Each account the group has fills on, by name: PnL stays per account, "
        "in its currency."
    )


class GroupPerformance(_Output):
    """A trading group's LLM spend beside its trading PnL: each in its own currency."""

    trading_group: str
    day_start: datetime = Field(description="Midnight UTC, where `today` starts.")
    llm: LlmSpend
    trading: GroupTrading


class DiscussionQuery(_Input):
    trading_group: Filter = None
    symbol: Filter = None
    status: DiscussionStatus | None = None
    correlation_id: Filter = None
    since: AwareDatetime | None = Field(
        default=None,
        description="Only discussions started at or after this (ISO 8601, with offset).",
    )
    until: AwareDatetime | None = Field(
        default=None, description="Only discussions started before this (ISO 8601, with offset)."
    )
    after: str | None = Field(
        default=None,
        max_length=200,
        description="Cursor: the previous page's `next_after`, as it was given.",
    )
    limit: int = Field(default=100, ge=1, le=1_000)
    order: Literal["asc", "desc"] = Field(default="asc", description="`desc`: newest first.")


class DiscussionPublic(_Output):
    id: str
    trading_group: str
    signal_id: str | None = Field(description="The signal event it discussed.")
    decision_id: str | None = Field(description="The decision event it led to.")
    correlation_id: str | None
    symbol: str | None
    status: str = Field(description="`running`, `decided`, `hold` or `failed`.")
    action: str | None = Field(description="What was decided: `BUY`, `SELL`, `CLOSE`, `HOLD`.")
    reason: str | None = Field(description="Why: the decision's reasoning, or why it held.")
    tokens_in: int
    tokens_out: int
    cost: UsdAmount
    started_at: datetime
    finished_at: datetime | None


class DiscussionPage(_Output):
    items: list[DiscussionPublic]
    next_after: NextCursor


class DiscussionMessagePublic(_Output):
    seq: int
    member: str
    role: str
    kind: str = Field(
        description="`analysis`, `argument`, `proposal`, `risk`, `decision`, `note` or `error`."
    )
    content: str
    data: dict[str, Any]
    llm_call_id: int | None = Field(description="The LLM call that produced it.")
    created_at: datetime


class MemberLlmTotals(LlmTotals):
    member: str


class DiscussionLlmCalls(LlmTotals):
    currency: Usd
    by_member: list[MemberLlmTotals] = Field(description="By member name.")


class DiscussionDetail(DiscussionPublic):
    messages: list[DiscussionMessagePublic] = Field(description="In the order said (`seq`).")
    signal: Event | None = Field(description="The signal event as stored; null if not stored.")
    decision: Event | None = Field(
        description="The decision event as stored; null if none or not stored."
    )
    llm_calls: DiscussionLlmCalls = Field(description="The calls made for this discussion.")
