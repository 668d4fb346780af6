"""JSON rule strategies: the parser takes every valid tree and rejects every invalid one
with the path of the bad node (property-based), and rules take on real data exactly the
decisions computed independently with pandas-ta."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pandas_ta as ta
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import Action
from shared.kernel.rules import (
    MAX_CHILDREN,
    MAX_DEPTH,
    MAX_RULES,
    OPS,
    PRICE_FIELDS,
    JsonRule,
    RuleError,
    dump_rule,
    dump_rules,
    parse_rule,
    parse_rules,
)
from shared.kernel.strategy import Context, Decision, Position, create_strategy
from shared.market.candles import Candle
from tests.shared.kernel.test_strategy import candles, run
from tests.triggers.expected import load

type Json = Any
type Loc = tuple[str | int, ...]

# --------------------------------------------------------------------------- valid trees

lengths = st.integers(1, 5000)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def indicators(draw: st.DrawFn) -> dict[str, Json]:
    kind = draw(st.sampled_from(["rsi", "sma", "ema", "atr", "macd", "bbands"]))
    spec: dict[str, Json] = {"kind": kind}
    if kind in ("sma", "ema") or (kind in ("rsi", "atr") and draw(st.booleans())):
        spec["length"] = draw(lengths)
    if kind == "macd":
        fast = draw(st.integers(1, 100))
        spec |= {"fast": fast, "slow": draw(st.integers(fast + 1, 200))}
        spec["signal"] = draw(st.integers(1, 50))
        if draw(st.booleans()):
            spec["output"] = draw(st.sampled_from(["macd", "signal", "histogram"]))
    if kind == "bbands":
        spec["length"] = draw(st.integers(2, 500))
        spec["std"] = draw(st.floats(0.1, 5))
        if draw(st.booleans()):
            spec["output"] = draw(st.sampled_from(["lower", "middle", "upper"]))
    return spec


@st.composite
def comparisons(draw: st.DrawFn) -> dict[str, Json]:
    node: dict[str, Json] = {"op": draw(st.sampled_from(OPS))}
    if draw(st.booleans()):
        node["indicator"] = draw(indicators())
    else:
        node["price"] = draw(st.sampled_from(PRICE_FIELDS))
    match draw(st.sampled_from(["value", "indicator_b", "price_b"])):
        case "value":
            node["value"] = draw(finite | st.integers(-1000, 1000))
        case "indicator_b":
            node["indicator_b"] = draw(indicators())
        case _:
            node["price_b"] = draw(st.sampled_from(PRICE_FIELDS))
    return node


def _depth(node: Json) -> int:
    children = [*node.get("all", []), *node.get("any", [])]
    if "not" in node:
        children.append(node["not"])
    return 1 + max((_depth(c) for c in children), default=0)


def _composites(inner: st.SearchStrategy[dict[str, Json]]) -> st.SearchStrategy[dict[str, Json]]:
    children = st.lists(inner, min_size=1, max_size=3)
    return st.one_of(
        st.builds(lambda c: {"all": c}, children),
        st.builds(lambda c: {"any": c}, children),
        st.builds(lambda c: {"not": c}, inner),
    )


#: Conditions whose nesting never passes MAX_DEPTH (`when` is depth 1).
conditions = st.recursive(comparisons(), _composites, max_leaves=8).filter(
    lambda c: _depth(c) <= MAX_DEPTH
)


stops = st.one_of(
    st.builds(
        lambda m, n: {"kind": "atr", "multiple": m, "length": n},
        st.floats(0.1, 50),
        st.integers(1, 500),
    ),
    st.builds(lambda v: {"kind": "pct", "value": v}, st.floats(0.001, 0.5)),
)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Json]:
    then = draw(st.sampled_from(["BUY", "SELL", "CLOSE", "HOLD"]))
    rule: dict[str, Json] = {"when": draw(conditions), "then": then}
    if draw(st.booleans()):
        rule["confidence"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        rule["name"] = draw(st.text(min_size=1, max_size=20))
    if then == "BUY":
        for key in ("stop_loss", "take_profit"):
            if draw(st.booleans()):
                rule[key] = draw(stops)
    return rule


rule_lists = st.lists(rules(), min_size=1, max_size=4)


# --------------------------------------------------------------------------- contexts

T0 = datetime(2024, 1, 1, tzinfo=UTC)
prices = st.floats(1e-8, 1e6)
maybe_values = st.one_of(st.none(), finite, st.just(math.nan))


@st.composite
def contexts(draw: st.DrawFn, strategy: JsonRule) -> Context:
    bars = []
    for i in range(draw(st.integers(1, 3))):
        o, c = draw(prices), draw(prices)
        h, low = max(o, c) * draw(st.floats(1, 1.1)), min(o, c) * draw(st.floats(0.9, 1))
        bars.append(Candle("X/Y", "5m", T0 + timedelta(minutes=5 * i), o, h, low, c, draw(prices)))
    columns = [col for spec in strategy.indicators() for col in spec.columns]
    position = None
    if draw(st.booleans()):
        position = Position("X/Y", Decimal(1), Decimal("1.5"), T0)
    return Context(
        symbol="X/Y",
        timeframe="5m",
        now=bars[-1].close_time,
        candles=bars,
        indicators={col: draw(maybe_values) for col in columns},
        previous={col: draw(maybe_values) for col in columns},
        positions=[position] if position else [],
    )


# --------------------------------------------------------------------------- properties

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(rule_lists)
def test_parse_rules_valid_tree_round_trips_through_json(data: list[dict[str, Json]]) -> None:
    tree = parse_rules(data)
    assert parse_rules(dump_rules(tree)) == tree
    text = json.dumps(dump_rules(tree))
    assert parse_rules(text) == tree
    assert dump_rules(parse_rules(text)) == dump_rules(tree)
    assert [parse_rule(dump_rule(r)) for r in tree] == tree


@PROPERTY
@given(rule_lists, st.data())
def test_json_rule_valid_tree_decides_on_random_context_without_exception(
    data: list[dict[str, Json]], draw: st.DataObject
) -> None:
    strategy = create_strategy("json_rule", {"rules": data, "name": "s", "version": 3})
    assert isinstance(strategy, JsonRule)
    ctx = draw.draw(contexts(strategy))
    decision = strategy.decide(ctx)
    assert isinstance(decision, Decision)
    assert decision.reasoning
    assert decision.details["strategy"] == "s" and decision.details["version"] == 3
    if decision.action is Action.BUY:
        assert ctx.position() is None
    if decision.action in (Action.SELL, Action.CLOSE):
        assert ctx.position() is not None
    json.dumps(dict(decision.details), allow_nan=False)


def _positions(data: Json, loc: Loc = ()) -> Iterator[tuple[Loc, Json]]:
    yield loc, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _positions(v, (*loc, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _positions(v, (*loc, i))


def _set(data: Json, loc: Loc, value: Json) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


def _get(data: Json, loc: Loc) -> Json:
    for part in loc:
        data = data[part]
    return data


def _is_condition(loc: Loc) -> bool:
    return loc[-1:] in (("when",), ("not",)) or (
        len(loc) > 1 and isinstance(loc[-1], int) and loc[-2] in ("all", "any")
    )


def _is_indicator(loc: Loc) -> bool:
    return bool(loc) and loc[-1] in ("indicator", "indicator_b")


INT_FIELDS = {"length", "fast", "slow", "signal"}
WRONG_TYPES: dict[type, list[Json]] = {
    str: [7, 1.5, True, [], {}],
    float: ["7", True, [], {}],
    int: ["7", True, 2.5, [], {}],
    dict: ["x", 3, [], [1]],
    list: ["x", 3, {}, {"a": 1}],
}


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[Json, Loc]:
    """A valid rule list with one corruption, and where the corruption is."""
    data = copy.deepcopy(draw(rule_lists))
    spots = [(loc, v) for loc, v in _positions(data) if loc]
    conditions_ = [loc for loc, _ in spots if _is_condition(loc)]
    compares = [loc for loc in conditions_ if "op" in _get(data, loc)]
    refs = [loc for loc, _ in spots if _is_indicator(loc)]
    kind = draw(
        st.sampled_from(
            ["wrong_type", "unknown_op", "missing_key", "bad_length", "extra_key", "too_deep"]
        )
    )
    match kind:
        case "wrong_type":
            loc, value = draw(st.sampled_from(spots))
            if isinstance(value, int | float):
                # `value: 3` is a valid number; `length: 3.0` is not an integer.
                value = 0 if loc[-1] in INT_FIELDS else 0.5
            _set(data, loc, draw(st.sampled_from(WRONG_TYPES[type(value)])))
        case "unknown_op":
            loc = (*draw(st.sampled_from(compares)), "op")
            _set(data, loc, draw(st.text().filter(lambda s: s not in OPS)))
        case "missing_key":
            choices: list[Loc] = [(i, k) for i in range(len(data)) for k in ("when", "then")]
            choices += [(*c, "op") for c in compares]
            for c in compares:
                node = _get(data, c)
                choices += [(*c, k) for k in ("indicator", "price") if k in node]
            choices += [(*r, "kind") for r in refs]
            choices += [(*r, "length") for r in refs if _get(data, r)["kind"] in ("sma", "ema")]
            loc = draw(st.sampled_from(choices))
            del _get(data, loc[:-1])[loc[-1]]
        case "bad_length":
            if not refs:
                loc = (0, "when")
                _set(data, loc, {"indicator": {"kind": "sma", "length": 0}, "op": ">", "value": 1})
            else:
                ref = draw(st.sampled_from(refs))
                field = "fast" if _get(data, ref)["kind"] == "macd" else "length"
                loc = (*ref, field)
                _set(data, loc, draw(st.sampled_from([0, -1, 5001, 10**12])))
        case "extra_key":
            loc, _ = draw(st.sampled_from([(loc, v) for loc, v in spots if isinstance(v, dict)]))
            key = draw(st.sampled_from(["colour", "x_when", "then_", "Op", "length2"]))
            _get(data, loc)[key] = 1
            loc = (*loc, key)
        case _:
            loc = (draw(st.integers(0, len(data) - 1)), "when")
            node = _get(data, loc)
            for _ in range(MAX_DEPTH):
                node = {"all": [node]}
            _set(data, loc, node)
    return data, loc


def _related(a: Loc, b: Loc) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


@PROPERTY
@given(corrupted())
def test_parse_rules_corrupted_tree_is_rejected_with_the_path(case: tuple[Json, Loc]) -> None:
    data, where = case
    with pytest.raises(RuleError) as caught:
        parse_rules(data)
    e = caught.value
    assert e.loc[0] == "rules" and e.path.startswith("rules")
    assert e.message and str(e) == f"{e.path}: {e.message}"
    # The reported node is the corrupted one, or on the way to it, or inside it.
    assert _related(e.loc[1:], where), (e.path, where)
    with pytest.raises(ValueError, match="bad params for strategy 'json_rule'"):
        create_strategy("json_rule", {"rules": data})


json_values = st.recursive(
    st.none() | st.booleans() | finite | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["when", "then", "all", "any", "not", "op", "indicator", "kind", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@PROPERTY
@given(json_values)
def test_parse_rules_arbitrary_json_raises_only_rule_error(data: Json) -> None:
    for parse in (parse_rules, parse_rule):
        try:
            parse(data)
            error = None
        except RuleError as e:
            error = e
        assert error is None or (isinstance(error.path, str) and error.message)


# --------------------------------------------------------------------------- examples

RSI14 = {"kind": "rsi", "length": 14}


def _rule(when: Json, then: str = "SELL", **extra: Json) -> dict[str, Json]:
    return {"when": when, "then": then, **extra}


def _deep(depth: int) -> dict[str, Json]:
    node: dict[str, Json] = {"indicator": RSI14, "op": ">", "value": 70}
    for _ in range(depth - 1):
        node = {"all": [node]}
    return node


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        (
            _rule({"all": [{"indicator": {"kind": "rsi", "length": 0}, "op": ">", "value": 70}]}),
            "when.all[0].indicator.length",
            "Input should be greater than or equal to 1",
        ),
        (
            _rule({"any": [{"price": "close", "op": "=>", "value": 1}]}),
            "when.any[0].op",
            "Input should be '>', '>='",
        ),
        (
            _rule({"not": {"indicator": {"kind": "vwap"}, "op": ">", "value": 1}}),
            "when.not.indicator",
            "kind is one of",
        ),
        (_rule({"indicator": RSI14, "op": ">"}), "when", "exactly one right operand"),
        (
            _rule({"indicator": RSI14, "price": "close", "op": ">", "value": 1}),
            "when",
            "exactly one left operand",
        ),
        (_rule({"indicator": RSI14, "op": ">", "value": "70"}), "when.value", "valid number"),
        (
            _rule({"indicator": RSI14, "op": ">", "value": 70, "then": "BUY"}),
            "when.then",
            "Extra inputs",
        ),
        (_rule({"all": [{"when": 1}]}), "when.all[0]", "Expected a condition"),
        (_rule({"all": []}), "when.all", "at least 1 item"),
        (_rule({"all": [_deep(1)] * (MAX_CHILDREN + 1)}), "when.all", f"at most {MAX_CHILDREN}"),
        (_rule(_deep(1), "sell"), "then", "'BUY', 'SELL', 'CLOSE' or 'HOLD'"),
        (_rule(_deep(1), confidence=1.5), "confidence", "less than or equal to 1"),
        (_rule(_deep(1), stop_loss={"kind": "pct", "value": 0.02}), "stop_loss", "BUY rules only"),
        (
            _rule(_deep(1), "BUY", take_profit={"kind": "atr"}),
            "take_profit.multiple",
            "Field required",
        ),
        (
            _rule({"indicator": {"kind": "macd", "fast": 30, "slow": 20}, "op": ">", "value": 0}),
            "when.indicator.slow",
            "slow (20) must be longer than fast (30)",
        ),
        (
            _rule({"indicator": {"kind": "rsi", "output": "upper"}, "op": ">", "value": 0}),
            "when.indicator.output",
            "Extra inputs",
        ),
        (_rule(_deep(MAX_DEPTH + 1)), "when" + ".all[0]" * MAX_DEPTH, f"deeper than {MAX_DEPTH}"),
        ({"then": "BUY"}, "when", "Field required"),
        ([_deep(1)], "", "valid dictionary"),
        ('{"when": ', "", "not valid JSON"),
    ],
)
def test_parse_rule_invalid_names_the_path_and_the_problem(
    rule: Json, path: str, message: str
) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(rule)
    assert caught.value.path == path
    assert message in caught.value.message


def test_parse_rule_nesting_at_the_limit_is_accepted() -> None:
    rule = parse_rule(_rule(_deep(MAX_DEPTH)))
    assert parse_rule(dump_rule(rule)) == rule


def test_parse_rules_paths_start_at_rules_and_count_is_bounded() -> None:
    ok = _rule(_deep(1))
    with pytest.raises(RuleError) as caught:
        parse_rules([ok, _rule({"indicator": {"kind": "sma"}, "op": ">", "value": 1})])
    assert caught.value.path == "rules[1].when.indicator.length"
    assert caught.value.loc == ("rules", 1, "when", "indicator", "length")
    with pytest.raises(RuleError) as caught:
        parse_rules([ok] * (MAX_RULES + 1))
    assert caught.value.path == "rules"
    with pytest.raises(RuleError, match="at least 1 item"):
        parse_rules([])


def test_parse_rule_canonical_form_fills_defaults() -> None:
    rule = parse_rule(
        '{"when": {"indicator": {"kind": "macd", "output": "signal"}, "op": "crosses_above",'
        ' "price_b": "close"}, "then": "BUY", "stop_loss": {"kind": "atr", "multiple": 2}}'
    )
    assert dump_rule(rule) == {
        "when": {
            "indicator": {"kind": "macd", "fast": 12, "slow": 26, "signal": 9, "output": "signal"},
            "op": "crosses_above",
            "price_b": "close",
        },
        "then": "BUY",
        "confidence": 0.6,
        "stop_loss": {"kind": "atr", "multiple": 2.0, "length": 14},
    }


def test_json_rule_declares_every_indicator_once_with_atr_stops() -> None:
    strategy = create_strategy(
        "json_rule",
        {
            "rules": [
                _rule(
                    {
                        "all": [
                            {
                                "indicator": {"kind": "sma", "length": 10},
                                "op": "crosses_above",
                                "indicator_b": {"kind": "sma", "length": 30},
                            },
                            {
                                "indicator": {"kind": "bbands", "output": "upper"},
                                "op": ">",
                                "price_b": "close",
                            },
                        ]
                    },
                    "BUY",
                    stop_loss={"kind": "atr", "multiple": 2, "length": 20},
                ),
                _rule({"indicator": {"kind": "bbands", "output": "lower"}, "op": "<", "value": 1}),
                _rule({"indicator": {"kind": "sma", "length": 10}, "op": ">", "value": 1}),
            ]
        },
    )
    assert [spec.columns[0] for spec in strategy.indicators()] == [
        "sma_10",
        "sma_30",
        "bbl_20_2.0",
        "atr_20",
    ]


def _ctx(
    indicators: Mapping[str, float | None],
    previous: Mapping[str, float | None] | None = None,
    *,
    holding: bool = False,
    close: float = 100.0,
) -> Context:
    c = Candle("X/Y", "5m", T0, close, close, close, close, 1.0)
    position = Position("X/Y", Decimal(1), Decimal(90), T0) if holding else None
    return Context(
        "X/Y",
        "5m",
        c.close_time,
        [c],
        indicators,
        previous or {},
        positions=[position] if position else [],
    )


def _decide(rules_: list[dict[str, Json]], ctx: Context) -> Decision:
    return create_strategy("json_rule", {"rules": rules_}).decide(ctx)


def test_json_rule_first_matching_rule_decides_and_says_why() -> None:
    rules_ = [
        _rule({"indicator": RSI14, "op": ">", "value": 90}, "SELL", name="extreme"),
        _rule({"indicator": RSI14, "op": ">", "value": 70}, "HOLD", name="veto"),
        _rule({"indicator": RSI14, "op": ">", "value": 50}, "BUY", confidence=0.8),
    ]
    d = _decide(rules_, _ctx({"rsi_14": 75.5}))
    assert d.action is Action.HOLD
    assert d.reasoning == "rule 2 'veto' -> HOLD: rsi_14 75.5 > 70"
    assert d.details["rule"] == 2 and d.details["values"] == {"rsi_14": 75.5}
    d = _decide(rules_, _ctx({"rsi_14": 60.0}))
    assert (d.action, d.confidence, d.entry) == (Action.BUY, 0.8, Decimal("100.0"))
    assert d.reasoning.startswith("rule 3 -> BUY: rsi_14 60 > 50")
    d = _decide(rules_, _ctx({"rsi_14": 95.0}, holding=True))
    assert d.action is Action.SELL and "rule 1 'extreme'" in d.reasoning
    d = _decide(rules_, _ctx({"rsi_14": 20.0}))
    assert d.action is Action.HOLD and d.reasoning == "no rule of 3 matched"


def test_json_rule_long_only_buy_needs_no_position_sell_and_close_need_one() -> None:
    buy = [_rule({"price": "close", "op": ">", "value": 1}, "BUY")]
    assert _decide(buy, _ctx({}, holding=True)).action is Action.HOLD
    assert "already open" in _decide(buy, _ctx({}, holding=True)).reasoning
    for then, action in (("SELL", Action.SELL), ("CLOSE", Action.CLOSE)):
        rules_ = [_rule({"price": "close", "op": ">", "value": 1}, then)]
        assert _decide(rules_, _ctx({}, holding=True)).action is action
        flat = _decide(rules_, _ctx({}))
        assert flat.action is Action.HOLD and "no position" in flat.reasoning


def test_json_rule_missing_values_never_fire_a_rule() -> None:
    warming: dict[str, float | None] = {"rsi_14": None, "sma_30": None}
    whens: list[Json] = [
        {"indicator": RSI14, "op": "<", "value": 30},
        {"not": {"indicator": RSI14, "op": ">", "value": 30}},
        {
            "all": [
                {"price": "close", "op": ">", "value": 1},
                {"indicator": {"kind": "sma", "length": 30}, "op": "<", "price_b": "close"},
            ]
        },
        {"price": "close", "op": "crosses_above", "value": 1},  # no previous candle
    ]
    for when in whens:
        d = _decide([_rule(when, "BUY")], _ctx(warming))
        assert d.action is Action.HOLD, when
    d = _decide([_rule({"indicator": RSI14, "op": "<", "value": 30}, "BUY")], _ctx(warming))
    assert d.reasoning == "no rule of 1 matched (still warming up: rsi_14)"
    # `any` holds as soon as one part does, whatever the others lack.
    any_ = {
        "any": [
            {"indicator": RSI14, "op": "<", "value": 30},
            {"price": "close", "op": ">=", "value": 100},
        ]
    }
    assert _decide([_rule(any_, "BUY")], _ctx(warming)).action is Action.BUY


@pytest.mark.parametrize(
    ("op", "before", "now", "fires"),
    [
        ("crosses_above", (29.0, 30.0), (31.0, 30.0), True),
        ("crosses_above", (30.0, 30.0), (30.5, 30.0), True),  # from equal, as the triggers
        ("crosses_above", (31.0, 30.0), (32.0, 30.0), False),
        ("crosses_below", (31.0, 30.0), (29.0, 30.0), True),
        ("crosses_below", (29.0, 30.0), (28.0, 30.0), False),
        ("crosses_above", (None, 30.0), (31.0, 30.0), False),
    ],
)
def test_json_rule_crossings_follow_the_kernel_convention(
    op: str, before: tuple[float | None, float], now: tuple[float, float], fires: bool
) -> None:
    when = {
        "indicator": {"kind": "ema", "length": 5},
        "op": op,
        "indicator_b": {"kind": "ema", "length": 20},
    }
    ctx = _ctx(
        {"ema_5": now[0], "ema_20": now[1]},
        {"ema_5": before[0], "ema_20": before[1]},
        holding=True,
    )
    assert (_decide([_rule(when)], ctx).action is Action.SELL) is fires


# --------------------------------------------------------------------------- real data


def _expected(df: pd.DataFrame, conditions_: list[tuple[pd.Series, str]]) -> list[tuple[str, str]]:
    """First matching condition decides, long-only, as a reviewer would replay it."""
    out, holding = [], False
    for t in df.index:
        for condition, action in conditions_:
            if condition.fillna(False).astype(bool)[t]:
                if action == "BUY" and not holding:
                    out.append((t.isoformat(), "BUY"))
                    holding = True
                elif action == "SELL" and holding:
                    out.append((t.isoformat(), "SELL"))
                    holding = False
                break
    return out


def _taken(rules_: list[dict[str, Json]]) -> list[tuple[str, str]]:
    strategy = create_strategy("json_rule", {"rules": rules_})
    return [
        (c.open_time.isoformat(), d.action.value)
        for c, d in run(strategy, candles())
        if d.action is not Action.HOLD
    ]


def _above(a: pd.Series, b: pd.Series | float) -> pd.Series:
    b0 = b.shift(1) if isinstance(b, pd.Series) else b
    return (a.shift(1) <= b0) & (a > b)


def _below(a: pd.Series, b: pd.Series | float) -> pd.Series:
    b0 = b.shift(1) if isinstance(b, pd.Series) else b
    return (a.shift(1) >= b0) & (a < b)


def test_json_rule_rsi_rules_on_eth_take_the_pandas_ta_decisions() -> None:
    df = load("ETH-BTC_5m.csv")
    rsi = ta.rsi(df["close"], length=14)
    rules_ = [
        _rule({"indicator": RSI14, "op": "crosses_below", "value": 30}, "BUY", name="oversold"),
        _rule({"all": [{"indicator": RSI14, "op": ">", "value": 70}]}, "SELL"),
    ]
    expected = _expected(df, [(_below(rsi, 30), "BUY"), (rsi > 70, "SELL")])
    assert len(expected) > 20
    assert _taken(rules_) == expected


def test_json_rule_sma_cross_with_filters_on_eth_takes_the_pandas_ta_decisions() -> None:
    df = load("ETH-BTC_5m.csv")
    close = df["close"]
    fast, slow = ta.sma(close, length=10), ta.sma(close, length=30)
    trend = ta.ema(close, length=50)
    bands = ta.bbands(close, length=20, lower_std=2.0, upper_std=2.0)
    lower = bands[next(c for c in bands.columns if c.startswith("BBL_"))]
    sma10, sma30 = {"kind": "sma", "length": 10}, {"kind": "sma", "length": 30}
    rules_ = [
        _rule(
            {
                "all": [
                    {"indicator": sma10, "op": "crosses_above", "indicator_b": sma30},
                    {"price": "close", "op": ">", "indicator_b": {"kind": "ema", "length": 50}},
                ]
            },
            "BUY",
        ),
        _rule(
            {
                "any": [
                    {"indicator": sma10, "op": "crosses_below", "indicator_b": sma30},
                    {
                        "price": "close",
                        "op": "<",
                        "indicator_b": {"kind": "bbands", "length": 20, "output": "lower"},
                    },
                ]
            },
            "SELL",
        ),
    ]
    expected = _expected(
        df,
        [
            (_above(fast, slow) & (close > trend), "BUY"),
            (_below(fast, slow) | (close < lower), "SELL"),
        ],
    )
    assert len(expected) > 20
    assert _taken(rules_) == expected


def test_json_rule_macd_lines_on_eth_take_the_pandas_ta_decisions() -> None:
    df = load("ETH-BTC_5m.csv")
    macd = ta.macd(df["close"], fast=12, slow=26, signal=9)
    line, signal, hist = (macd[f"{p}_12_26_9"] for p in ("MACD", "MACDs", "MACDh"))
    rules_ = [
        _rule(
            {
                "indicator": {"kind": "macd"},
                "op": "crosses_above",
                "indicator_b": {"kind": "macd", "output": "signal"},
            },
            "BUY",
        ),
        _rule(
            {
                "indicator": {"kind": "macd", "output": "histogram"},
                "op": "crosses_below",
                "value": 0,
            }
        ),
    ]
    expected = _expected(df, [(_above(line, signal), "BUY"), (_below(hist, 0.0), "SELL")])
    assert len(expected) > 20
    assert _taken(rules_) == expected


def test_json_rule_buy_carries_the_rule_stops_on_eth() -> None:
    df = load("ETH-BTC_5m.csv")
    atr = ta.atr(df["high"], df["low"], df["close"], length=14)
    rules_ = [
        _rule(
            {"indicator": RSI14, "op": "crosses_below", "value": 30},
            "BUY",
            stop_loss={"kind": "atr", "multiple": 2.0},
            take_profit={"kind": "pct", "value": 0.03},
        ),
        _rule({"indicator": RSI14, "op": ">", "value": 70}),
    ]
    strategy = create_strategy("json_rule", {"rules": rules_})
    buys = [(c, d) for c, d in run(strategy, candles()) if d.action is Action.BUY]
    assert buys
    for c, d in buys[:10]:
        assert d.stop_loss is not None and d.take_profit is not None
        assert float(d.stop_loss) == pytest.approx(
            c.close - 2 * atr[pd.Timestamp(c.open_time)], rel=1e-9
        )
        assert float(d.take_profit) == pytest.approx(c.close * 1.03, rel=1e-12)
        assert "stop" in d.reasoning and "target" in d.reasoning
