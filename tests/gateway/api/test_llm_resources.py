"""The LLM groups' tables over REST: usage, a group's spend beside its PnL, discussions.

The LLM group is not under test here, so its rows (calls, discussions, messages) and
the execution service's (fills, equity snapshots) go straight into the shared tables
through SQLAlchemy, on each database, as those services would write them. The signal
and the decision a discussion links to are real events, published over /ws/events.
The gateway is the real one, over HTTP. Costs are exact: written as Decimals, summed
by the database, read back as fixed-point JSON strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest

from shared.db.models import (
    DiscussionMessageRow,
    DiscussionRow,
    EquitySnapshotRow,
    FillRow,
    LlmCallRow,
)
from shared.kernel.risk.model import trading_day_start
from tests.conftest import Gateway
from tests.gateway.api.conftest import create, error_locs
from tests.gateway.ws.wsclient import RawClient, decision, signal

D = Decimal
T0 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
WIDE = D("1234567890.123456789012345678")  # 28 digits, 18 after the point
TINY = D("1E-18")  # stored as the text "1E-18" on SQLite
COST = D("0.123456789012345678")


def call(**fields: Any) -> LlmCallRow:
    values: dict[str, Any] = {
        "trading_group": "g1",
        "member": "technical",
        "model": "m-cheap",
        "prompt_hash": "0" * 64,
        "prompt": [{"role": "user", "content": "BTC/USDT?"}],
        "answer": '{"view": "long"}',
        "status": "ok",
        "tokens_in": 100,
        "tokens_out": 10,
        "cost": D("0.1"),
        "latency_ms": 12.5,
        "created_at": T0,
    }
    values.update(fields)
    return LlmCallRow(**values)


def calls() -> list[LlmCallRow]:
    """Two groups, two models, three members, two UTC days."""
    return [
    call(created_at=T0 + timedelta(hours=1)),
    call(created_at=T0 + timedelta(hours=2), cost=D("0.2"), tokens_in=200, tokens_out=20),
    call(created_at=T0 + timedelta(hours=3), status="invalid", cost=TINY, tokens_out=5,
         answer="not json"),
    # The last instant of the first day, and the first of the next.
    call(created_at=T0 + DAY - timedelta(microseconds=1), member="risk", model="m-strong",
         status="error", answer=None, error="timeout", tokens_in=0, tokens_out=0, cost=D("0")),
    call(created_at=T0 + DAY, cost=D("0.3"), tokens_in=300, tokens_out=30),
    call(trading_group="g2", member="bull", cost=WIDE, tokens_in=1_000, tokens_out=100),
    call(trading_group="g2", member="bull", cost=WIDE, tokens_in=1_000, tokens_out=100),
    ]  # fmt: skip


async def store(gateway: Gateway, rows: list[Any]) -> None:
    """Insert rows one flush at a time, so autoincrement ids follow the list."""
    async with gateway.state.sessionmaker() as session:
        for row in rows:
            session.add(row)
            await session.flush()
        await session.commit()


async def get(api: httpx.AsyncClient, path: str, **params: Any) -> Any:
    r = await api.get(f"/api/v1/{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def totals(
    calls: int, ok: int, invalid: int, error: int, tokens_in: int, tokens_out: int, cost: str
) -> dict[str, Any]:
    return {
        "calls": calls,
        "calls_by_status": {"ok": ok, "invalid": invalid, "error": error},
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost": cost,
    }


def keyed(**keys: str | None) -> dict[str, str | None]:
    return {"trading_group": None, "model": None, "member": None, "day": None, **keys}


NO_CALLS = totals(0, 0, 0, 0, 0, 0, "0")


# --------------------------------------------------------------------------- usage


@pytest.fixture
async def usage(gateway: Gateway) -> None:
    await store(gateway, calls())


async def test_llm_usage_by_group_model_and_day_by_default(
    api: httpx.AsyncClient, usage: None
) -> None:
    body = await get(api, "llm-usage")
    assert body == {
        "group_by": ["trading_group", "model", "day"],
        "currency": "USD",
        "items": [
            {**keyed(trading_group="g1", model="m-cheap", day="2026-03-01"),
             **totals(3, 2, 1, 0, 400, 35, "0.300000000000000001")},
            {**keyed(trading_group="g1", model="m-cheap", day="2026-03-02"),
             **totals(1, 1, 0, 0, 300, 30, "0.3")},
            {**keyed(trading_group="g1", model="m-strong", day="2026-03-01"),
             **totals(1, 0, 0, 1, 0, 0, "0")},
            {**keyed(trading_group="g2", model="m-cheap", day="2026-03-01"),
             **totals(2, 2, 0, 0, 2_000, 200, "2469135780.246913578024691356")},
        ],
        "total": totals(7, 5, 1, 1, 2_700, 265, "2469135780.846913578024691357"),
    }  # fmt: skip


async def test_llm_usage_group_by_any_keys_in_their_order(
    api: httpx.AsyncClient, usage: None
) -> None:
    by_member = await get(api, "llm-usage", group_by="member")
    assert by_member["group_by"] == ["member"]
    assert [(i["member"], i["calls"], i["cost"]) for i in by_member["items"]] == [
        ("bull", 2, "2469135780.246913578024691356"),
        ("risk", 1, "0"),
        ("technical", 4, "0.600000000000000001"),
    ]
    assert by_member["items"][0] == {
        **keyed(member="bull"),
        **totals(2, 2, 0, 0, 2_000, 200, "2469135780.246913578024691356"),
    }
    # Sorted by the keys in the order given; repeated or comma-separated; no duplicates.
    forms: list[Any] = [
        {"group_by": "day,trading_group"},
        [("group_by", "day"), ("group_by", "trading_group")],
        {"group_by": "day, trading_group,day"},
    ]
    for params in forms:
        r = await api.get("/api/v1/llm-usage", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["group_by"] == ["day", "trading_group"], params
        assert [(i["day"], i["trading_group"], i["model"], i["calls"]) for i in body["items"]] == [
            ("2026-03-01", "g1", None, 4),
            ("2026-03-01", "g2", None, 2),
            ("2026-03-02", "g1", None, 1),
        ]
    every = await get(api, "llm-usage", group_by="trading_group,model,day,member")
    assert len(every["items"]) == 4
    assert every["items"][2] == {
        **keyed(trading_group="g1", model="m-strong", day="2026-03-01", member="risk"),
        **totals(1, 0, 0, 1, 0, 0, "0"),
    }
    # No keys: one total.
    whole = await get(api, "llm-usage", group_by="")
    assert whole["group_by"] == []
    assert whole["items"] == [{**keyed(), **whole["total"]}]
    assert whole["total"] == every["total"]


async def test_llm_usage_filters_select_calls(api: httpx.AsyncClient, usage: None) -> None:
    cases: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({"trading_group": "g1"}, totals(5, 3, 1, 1, 700, 65, "0.600000000000000001")),
        ({"model": "m-strong"}, totals(1, 0, 0, 1, 0, 0, "0")),
        ({"member": "technical", "trading_group": "g1"},
         totals(4, 3, 1, 0, 700, 65, "0.600000000000000001")),
        # since inclusive, until exclusive, with any offset.
        ({"since": "2026-03-01T23:59:59.999999Z"}, totals(2, 1, 0, 1, 300, 30, "0.3")),
        ({"since": "2026-03-01T02:00:00Z", "until": "2026-03-01T04:00:00+01:00"},
         totals(1, 1, 0, 0, 200, 20, "0.2")),
        ({"until": "2026-03-01T00:00:00Z"}, NO_CALLS),
        ({"trading_group": "nobody"}, NO_CALLS),
    ]  # fmt: skip
    for params, expected in cases:
        body = await get(api, "llm-usage", group_by="", **params)
        assert body["total"] == expected, params
        assert body["items"] == ([] if expected == NO_CALLS else [{**keyed(), **expected}])
    g2 = await get(api, "llm-usage", trading_group="g2", group_by="model")
    assert [(i["model"], i["calls"]) for i in g2["items"]] == [("m-cheap", 2)]


async def test_llm_usage_sums_many_18_decimal_costs_exactly(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    # Floats would drift after a few additions, SUM(CAST(... AS NUMERIC)) on SQLite too,
    # and Python's default 28-digit context would round the 29-digit total.
    rows = [
        call(trading_group="g3", cost=COST, created_at=T0 + timedelta(seconds=i))
        for i in range(500)
    ]
    rows += [call(trading_group="g3", model="m-strong", cost=WIDE) for _ in range(10)]
    rows += [call(trading_group="g3", model="m-strong", cost=TINY, created_at=T0 + DAY)]
    await store(gateway, rows)
    body = await get(api, "llm-usage", group_by="model")
    assert [(i["model"], i["cost"]) for i in body["items"]] == [
        ("m-cheap", "61.728394506172839"),  # 500 x 0.123456789012345678
        ("m-strong", "12345678901.234567890123456781"),  # 10 x WIDE + 1E-18
    ]
    # 29 significant digits: Python's default 28-digit context gives ...29629578.
    assert body["total"]["cost"] == "12345678962.962962396296295781"
    assert format(sum((r.cost for r in rows), D(0)), "f") != body["total"]["cost"]
    by_day = await get(api, "llm-usage", group_by="day", model="m-strong")
    assert [(i["day"], i["cost"]) for i in by_day["items"]] == [
        ("2026-03-01", "12345678901.23456789012345678"),
        ("2026-03-02", "0.000000000000000001"),
    ]


async def test_llm_usage_bad_query_is_422_naming_the_field(
    api: httpx.AsyncClient, usage: None
) -> None:
    for params, loc in [
        ({"group_by": "symbol"}, ["query", "group_by", "0"]),
        ({"group_by": "day,hour"}, ["query", "group_by", "1"]),
        ({"since": "2026-03-01T00:00:00"}, ["query", "since"]),  # no offset
        ({"until": "yesterday"}, ["query", "until"]),
        ({"groupby": "day"}, ["query", "groupby"]),  # a typo is not silently ignored
    ]:
        r = await api.get("/api/v1/llm-usage", params=params)
        assert error_locs(r) == [loc], params


# --------------------------------------------------------------------------- performance


def fill(
    n: int, account: str, at: datetime, realized_pnl: Decimal | None, **fields: Any
) -> FillRow:
    values: dict[str, Any] = {
        "account": account,
        "fill_id": f"f-{n}",
        "client_order_id": f"atsP{n:02}",
        "trading_group": "g1",
        "symbol": "BTC/USDT",
        "side": "sell" if realized_pnl is not None else "buy",
        "quantity": D("0.5"),
        "price": D("100"),
        "fee": D("0.01"),
        "realized_pnl": realized_pnl,
        "at": at,
    }
    values.update(fields)
    return FillRow(**values)


def snapshot(account: str, at: datetime, currency: str) -> EquitySnapshotRow:
    zero = D("0")
    return EquitySnapshotRow(
        account=account, at=at, currency=currency, equity=D("1000"), cash=D("1000"),
        positions_value=zero, realized_pnl=zero, unrealized_pnl=zero, fees=zero, drawdown=zero,
    )  # fmt: skip


async def test_group_performance_reports_llm_spend_beside_pnl_per_account(
    gateway: Gateway, api: httpx.AsyncClient
) -> None:
    for name in ("g1", "g2", "idle"):
        await create(api, "trading-groups", name=name)
    midnight = trading_day_start(datetime.now(UTC))
    before = midnight - timedelta(microseconds=1)
    await store(gateway, [
        call(created_at=before, cost=D("0.5"), tokens_in=1_000, tokens_out=100),
        call(created_at=midnight, cost=COST, tokens_in=10, tokens_out=1),
        call(created_at=midnight, cost=COST, status="invalid", model="m-strong", member="risk"),
        call(created_at=midnight, trading_group="g2", cost=D("7")),
        fill(1, "acct-a", before, D("-0.5")),
        fill(2, "acct-a", midnight, None),  # opened a position: no trade closed
        fill(3, "acct-a", midnight, D("1.25")),
        fill(4, "acct-b", midnight, D("0.1")),
        fill(5, "acct-b", midnight, D("0.2")),
        fill(6, "acct-c", midnight, D("100"), trading_group="g2"),
        fill(7, "acct-d", midnight, D("100"), trading_group=None),
        snapshot("acct-a", before, "USDT"),
        snapshot("acct-a", midnight, "USDT"),
        snapshot("acct-c", midnight, "EUR"),
    ])  # fmt: skip
    body = await get(api, "trading-groups/g1/performance")
    if trading_day_start(datetime.now(UTC)) != midnight:
        pytest.skip("the UTC day changed during the test")
    assert body == {
        "trading_group": "g1",
        "day_start": midnight.isoformat().replace("+00:00", "Z"),
        "llm": {
            "currency": "USD",
            "today": totals(2, 1, 1, 0, 110, 11, "0.246913578024691356"),
            "total": totals(3, 2, 1, 0, 1_110, 111, "0.746913578024691356"),
        },
        "trading": {
            "closed_trades": 4,
            "closed_trades_today": 3,
            "accounts": [
                {
                    "account": "acct-a",
                    "currency": "USDT",
                    "closed_trades": 2,
                    "closed_trades_today": 1,
                    "realized_pnl": "0.75",
                    "realized_pnl_today": "1.25",
                },
                {
                    # No equity snapshot yet: the currency is not known, not guessed.
                    "account": "acct-b",
                    "currency": None,
                    "closed_trades": 2,
                    "closed_trades_today": 2,
                    "realized_pnl": "0.3",
                    "realized_pnl_today": "0.3",
                },
            ],
        },
    }
    g2 = await get(api, "trading-groups/g2/performance")
    assert g2["llm"]["total"]["cost"] == "7"
    assert [
        (a["account"], a["currency"], a["realized_pnl"]) for a in g2["trading"]["accounts"]
    ] == [("acct-c", "EUR", "100")]
    idle = await get(api, "trading-groups/idle/performance")
    assert idle["llm"] == {"currency": "USD", "today": NO_CALLS, "total": NO_CALLS}
    assert idle["trading"] == {"closed_trades": 0, "closed_trades_today": 0, "accounts": []}
    r = await api.get("/api/v1/trading-groups/nope/performance")
    assert r.status_code == 404
    assert r.json()["detail"] == "trading group 'nope' not found: list them to see the names"


# --------------------------------------------------------------------------- discussions

DISCUSSION_IDS = [str(UUID(int=n)) for n in range(1, 6)]


def discussion(n: int, **fields: Any) -> DiscussionRow:
    values: dict[str, Any] = {
        "id": DISCUSSION_IDS[n - 1],
        "trading_group": "g1",
        "symbol": "BTC/USDT",
        "status": "decided",
        "tokens_in": 0,
        "tokens_out": 0,
        "cost": D("0"),
        "started_at": T0,
    }
    values.update(fields)
    return DiscussionRow(**values)


def message(
    discussion_id: str, seq: int, member: str, kind: str, **fields: Any
) -> DiscussionMessageRow:
    values: dict[str, Any] = {
        "discussion_id": discussion_id,
        "seq": seq,
        "member": member,
        "role": member,
        "kind": kind,
        "content": f"{member} says {seq}",
        "created_at": T0 + timedelta(seconds=seq),
    }
    values.update(fields)
    return DiscussionMessageRow(**values)


@pytest.fixture
async def events(gateway: Gateway, api: httpx.AsyncClient) -> dict[str, str]:
    """A real signal from trigger t1 and g1's decision on it: their ids."""
    t1 = (await create(api, "triggers", name="t1"))["token"]
    g1 = (await create(api, "trading-groups", name="g1", triggers=["t1"]))["token"]
    trigger = await RawClient.connect(gateway.ws_url, param="trigger_token", token=t1)
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=g1)
    sent = await trigger.request(
        {**signal("BTC/USDT", rsi=27.5), "trace": {"correlation_id": "c-1", "causation_id": None}}
    )
    assert sent["ok"] is True, sent
    decided = await group.request(
        {**decision(), "trace": {"correlation_id": "c-1", "causation_id": sent["id"]}}
    )
    assert decided["ok"] is True, decided
    await trigger.close()
    await group.close()
    return {"signal": sent["id"], "decision": decided["id"]}


@pytest.fixture
async def discussions(gateway: Gateway, events: dict[str, str]) -> None:
    """Five discussions in (started_at, id) order, stored out of that order; the first
    is the whole story: the real signal and decision, messages, LLM calls."""
    rows = [
    discussion(1, signal_id=events["signal"], decision_id=events["decision"],
               correlation_id="c-1", action="BUY", reason="RSI oversold, bull case holds",
               tokens_in=1_300, tokens_out=130, cost=D("0.300000000000000001"),
               finished_at=T0 + timedelta(minutes=1)),
    discussion(2, started_at=T0 + timedelta(seconds=1), symbol="ETH/USDT", status="hold",
               action="HOLD", reason="daily cost budget reached", correlation_id="c-2",
               finished_at=T0 + timedelta(seconds=2)),
    discussion(3, started_at=T0 + timedelta(seconds=1), trading_group="g2", status="running",
               signal_id=str(UUID(int=999))),  # a signal the event store does not have
    discussion(4, started_at=T0 + timedelta(seconds=1), trading_group="g2", status="failed",
               reason="model endpoint unreachable"),
    discussion(5, started_at=T0 + DAY, symbol="ETH/USDT", status="decided", action="SELL"),
    ]  # fmt: skip
    d1 = DISCUSSION_IDS[0]
    await store(gateway, [rows[i] for i in (4, 2, 0, 3, 1)])
    await store(gateway, [
        call(discussion_id=d1, member="technical", cost=D("0.1"), tokens_in=100, tokens_out=10),
        call(discussion_id=d1, member="technical", cost=TINY, status="invalid", tokens_in=200,
             tokens_out=20),
        call(discussion_id=d1, member="trader", model="m-strong", cost=D("0.2"),
             tokens_in=1_000, tokens_out=100),
        call(discussion_id=DISCUSSION_IDS[1], member="trader", cost=D("5")),
        call(member="trader", cost=D("5")),  # no discussion
        message(d1, 3, "trader", "proposal", data={"action": "BUY", "size_hint": "0.1"},
                llm_call_id=3),
        message(d1, 1, "technical", "analysis", data={"rsi": 27.5}, llm_call_id=1),
        message(d1, 2, "bull", "argument"),
        message(DISCUSSION_IDS[1], 1, "leader", "note", content="budget reached"),
    ])  # fmt: skip


async def all_pages(
    api: httpx.AsyncClient, path: str, **params: Any
) -> tuple[list[dict[str, Any]], list[int]]:
    """Walk every page; return the items and the size of each page."""
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    after: Any = None
    while True:
        page = await get(api, path, **params, **({"after": after} if after is not None else {}))
        items += page["items"]
        sizes.append(len(page["items"]))
        after = page["next_after"]
        if after is None:
            return items, sizes


async def test_discussions_pages_walk_every_discussion_once_in_start_order(
    api: httpx.AsyncClient, discussions: None
) -> None:
    items, sizes = await all_pages(api, "discussions", limit=2)
    assert [d["id"] for d in items] == DISCUSSION_IDS and sizes == [2, 2, 1]
    # Newest first; the three started at the same instant come in reverse id order.
    items, sizes = await all_pages(api, "discussions", limit=2, order="desc")
    assert [d["id"] for d in items] == DISCUSSION_IDS[::-1] and sizes == [2, 2, 1]
    page = await get(api, "discussions", limit=5)
    assert len(page["items"]) == 5 and page["next_after"] is None
    assert page["items"][1] == {
        "id": DISCUSSION_IDS[1],
        "trading_group": "g1",
        "signal_id": None,
        "decision_id": None,
        "correlation_id": "c-2",
        "symbol": "ETH/USDT",
        "status": "hold",
        "action": "HOLD",
        "reason": "daily cost budget reached",
        "tokens_in": 0,
        "tokens_out": 0,
        "cost": "0",
        "started_at": "2026-03-01T00:00:01Z",
        "finished_at": "2026-03-01T00:00:02Z",
    }
    assert "messages" not in page["items"][0]


async def test_discussions_filters_select_matching_discussions(
    api: httpx.AsyncClient, discussions: None
) -> None:
    cases: list[tuple[dict[str, str], list[int]]] = [
        ({"trading_group": "g2"}, [3, 4]),
        ({"symbol": "ETH/USDT"}, [2, 5]),
        ({"status": "decided"}, [1, 5]),
        ({"status": "decided", "symbol": "BTC/USDT"}, [1]),
        ({"correlation_id": "c-1"}, [1]),
        ({"since": "2026-03-01T00:00:01Z", "until": "2026-03-02T00:00:00Z"}, [2, 3, 4]),
        ({"since": "2026-03-01T01:00:01+01:00"}, [2, 3, 4, 5]),
        ({"trading_group": "nobody"}, []),
    ]
    for params, expected in cases:
        items, _ = await all_pages(api, "discussions", limit=1, **params)
        assert [d["id"] for d in items] == [DISCUSSION_IDS[n - 1] for n in expected], params


async def test_discussion_detail_has_messages_events_and_llm_calls(
    api: httpx.AsyncClient, discussions: None, events: dict[str, str]
) -> None:
    body = await get(api, f"discussions/{DISCUSSION_IDS[0]}")
    assert body["id"] == DISCUSSION_IDS[0]
    assert (body["status"], body["action"], body["cost"]) == (
        "decided",
        "BUY",
        "0.300000000000000001",
    )
    assert (body["signal_id"], body["decision_id"]) == (events["signal"], events["decision"])
    assert [(m["seq"], m["member"], m["kind"]) for m in body["messages"]] == [
        (1, "technical", "analysis"),
        (2, "bull", "argument"),
        (3, "trader", "proposal"),
    ]
    assert body["messages"][2] == {
        "seq": 3,
        "member": "trader",
        "role": "trader",
        "kind": "proposal",
        "content": "trader says 3",
        "data": {"action": "BUY", "size_hint": "0.1"},
        "llm_call_id": 3,
        "created_at": "2026-03-01T00:00:03Z",
    }
    # The linked events as the event store delivers them.
    stored = {e["id"]: e for e in (await get(api, "events"))["items"]}
    assert body["signal"] == stored[events["signal"]]
    assert body["decision"] == stored[events["decision"]]
    assert body["signal"]["payload"]["rsi"] == 27.5
    assert body["decision"]["trace"]["causation_id"] == events["signal"]
    assert body["llm_calls"] == {
        **totals(3, 2, 1, 0, 1_300, 130, "0.300000000000000001"),
        "currency": "USD",
        "by_member": [
            {"member": "technical", **totals(2, 1, 1, 0, 300, 30, "0.100000000000000001")},
            {"member": "trader", **totals(1, 1, 0, 0, 1_000, 100, "0.2")},
        ],
    }


async def test_discussion_detail_without_stored_events_or_calls(
    api: httpx.AsyncClient, discussions: None
) -> None:
    running = await get(api, f"discussions/{DISCUSSION_IDS[2]}")
    assert running["signal_id"] == str(UUID(int=999))
    assert (running["signal"], running["decision"], running["messages"]) == (None, None, [])
    assert running["llm_calls"] == {**NO_CALLS, "currency": "USD", "by_member": []}
    held = await get(api, f"discussions/{DISCUSSION_IDS[1]}")
    assert [m["content"] for m in held["messages"]] == ["budget reached"]
    assert held["llm_calls"]["cost"] == "5"


async def test_discussions_unknown_is_404_and_bad_query_is_422(
    api: httpx.AsyncClient, discussions: None
) -> None:
    r = await api.get(f"/api/v1/discussions/{UUID(int=99)}")
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"discussion '{UUID(int=99)}' not found: list them at /api/v1/discussions"
    )
    assert error_locs(await api.get(f"/api/v1/discussions/{'x' * 37}")) == [
        ["path", "discussion_id"]
    ]
    for params, loc in [
        ({"status": "done"}, ["query", "status"]),
        ({"after": "not-a-cursor"}, ["query", "after"]),
        ({"after": "bm8gYmFy"}, ["query", "after"]),  # base64 of "no bar"
        ({"since": "2026-03-01T00:00:00"}, ["query", "since"]),  # no offset
        ({"limit": "1001"}, ["query", "limit"]),
        ({"order": "newest"}, ["query", "order"]),
        ({"group": "g1"}, ["query", "group"]),
    ]:
        r = await api.get("/api/v1/discussions", params=params)
        assert error_locs(r) == [loc], params


# --------------------------------------------------------------------------- all of them

ENDPOINTS = [
    "/api/v1/llm-usage",
    "/api/v1/trading-groups/g1/performance",
    "/api/v1/discussions",
    f"/api/v1/discussions/{DISCUSSION_IDS[0]}",
]


async def test_llm_resources_need_the_api_key(gateway: Gateway, discussions: None) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key"}):
        async with httpx.AsyncClient(base_url=gateway.http_url, headers=headers) as client:
            for path in ENDPOINTS:
                r = await client.get(path)
                assert r.status_code == 401, (path, r.text)
    async with gateway.api() as api:
        for path in ENDPOINTS:
            assert (await api.get(path)).status_code == 200, path


async def test_openapi_documents_llm_costs_as_usd_strings(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http_url) as client:
        spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    cost = schemas["LlmTotals"]["properties"]["cost"]
    assert cost["type"] == "string" and "USD" in cost["description"]
    assert schemas["DiscussionPublic"]["properties"]["cost"]["type"] == "string"
    assert schemas["AccountPnl"]["properties"]["realized_pnl"]["type"] == "string"
    paths = spec["paths"]
    assert "404" in paths["/api/v1/trading-groups/{name}/performance"]["get"]["responses"]
    assert "404" in paths["/api/v1/discussions/{discussion_id}"]["get"]["responses"]
    group_by = next(
        p for p in paths["/api/v1/llm-usage"]["get"]["parameters"] if p["name"] == "group_by"
    )
    assert group_by["schema"]["items"]["enum"] == ["trading_group", "model", "day", "member"]
