"""JSON rule strategies: users' rules parsed into a tree and evaluated without `eval`.

A strategy is a list of rules, tried in order; the first whose condition holds
decides, and when none holds the decision is HOLD. The format::

    rule       = {"when": condition, "then": "BUY" | "SELL" | "CLOSE" | "HOLD",
                  "name"?: str, "confidence"?: 0..1 (default 0.6),
                  "stop_loss"?: stop, "take_profit"?: stop}        # stops: BUY rules only
    condition  = {"all": [condition, ...]}                          # every one holds
               | {"any": [condition, ...]}                          # at least one holds
               | {"not": condition}
               | comparison
    comparison = {LEFT, "op": OP, RIGHT}
        LEFT   = "indicator": indicator  | "price": FIELD           # exactly one
        RIGHT  = "value": number | "indicator_b": indicator | "price_b": FIELD   # exactly one
        OP     = ">" | ">=" | "<" | "<=" | "==" | "!=" | "crosses_above" | "crosses_below"
        FIELD  = "open" | "high" | "low" | "close" | "volume"       # of the decision candle
    indicator  = an indicator spec of shared.market.indicators ({"kind": "rsi",
                 "length": 14}, ...), plus for the multi-line ones which line to read:
                 macd "output": "macd" (default) | "signal" | "histogram";
                 bbands "output": "middle" (default) | "lower" | "upper"
    stop       = {"kind": "atr", "multiple": 2.0, "length": 14} | {"kind": "pct", "value": 0.02}

For example, "sell when RSI(14) is over 70" and "buy when SMA(10) crosses above
SMA(30) while the close is above SMA(100)"::

    [{"when": {"all": [{"indicator": {"kind": "rsi", "length": 14}, "op": ">", "value": 70}]},
      "then": "SELL"},
     {"when": {"all": [
         {"indicator": {"kind": "sma", "length": 10}, "op": "crosses_above",
          "indicator_b": {"kind": "sma", "length": 30}},
         {"price": "close", "op": ">", "indicator_b": {"kind": "sma", "length": 100}}]},
      "then": "BUY", "confidence": 0.7, "stop_loss": {"kind": "pct", "value": 0.02}}]

Semantics:

* Comparisons read the decision candle; crossings compare it with the candle before,
  with the triggers' convention (`a` crosses above `b` when `a <= b` before and
  `a > b` now; `value` is the same on both candles). `==` is exact.
* An operand that has no value yet (an indicator warming up, no previous candle) makes
  its comparison unknown: `all` is false if any part is false, else unknown if any is;
  `any` is true if any part is true, else unknown if any is; `not` keeps unknown. Only
  a true condition fires a rule, so a rule never fires on a value it does not have.
* Long-only, as the built-ins: BUY opens a long when none is open (with the rule's
  stop-loss / take-profit), SELL and CLOSE close it; a rule that fires but cannot act
  (BUY with a position open, SELL without one) decides HOLD and says why. A HOLD rule
  decides HOLD, which lets an early rule veto the later ones.

Limits: at most `MAX_RULES` rules, `MAX_CHILDREN` conditions in one `all`/`any`,
conditions nested at most `MAX_DEPTH` deep (`when` is depth 1), `MAX_CONDITIONS`
condition nodes in all. Numbers must be finite; types are strict (`"70"` is not 70).

`parse_rules` / `parse_rule` raise `RuleError` with the path of the bad node, such as
`rules[0].when.all[0].indicator.length: Input should be greater than or equal to 1`,
and nothing else. `dump_rules(parse_rules(x))` is the canonical JSON of `x` (defaults
filled in); parsing it again gives the same tree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.events import Action
from shared.kernel.strategies import (
    ExitParams,
    StopRule,
    _buy,
    _dec,
    _exit_specs,
    _sell,
    crossed_above,
    crossed_below,
)
from shared.kernel.strategy import Context, Decision, Strategy, StrategyParams, register_strategy
from shared.market.candles import Candle
from shared.market.indicators import (
    AtrSpec,
    BbandsSpec,
    EmaSpec,
    IndicatorSpec,
    MacdSpec,
    RsiSpec,
    SmaSpec,
)

MAX_RULES = 50
MAX_CHILDREN = 50
MAX_DEPTH = 8
MAX_CONDITIONS = 1000
DEFAULT_CONFIDENCE = 0.6

Op = Literal[">", ">=", "<", "<=", "==", "!=", "crosses_above", "crosses_below"]
PriceField = Literal["open", "high", "low", "close", "volume"]
Then = Literal["BUY", "SELL", "CLOSE", "HOLD"]
OPS: tuple[str, ...] = get_args(Op)
PRICE_FIELDS: tuple[str, ...] = get_args(PriceField)

#: Where a node is: keys and list indexes, as in the JSON.
type Loc = tuple[str | int, ...]


class RuleError(ValueError):
    """A rule that cannot be parsed: `path` names the bad node, `message` what is wrong.

    `path` is written as in the JSON (`rules[0].when.all[1].op`, empty for the whole
    input) and `loc` is the same as a tuple of keys and indexes. `problems` holds every
    problem found as `(loc, message)`, the first being this one.
    """

    def __init__(self, loc: Loc, message: str, *, problems: Sequence[tuple[Loc, str]] = ()) -> None:
        self.loc = loc
        self.path = format_path(loc)
        self.message = message
        self.problems = list(problems) or [(loc, message)]
        super().__init__(f"{self.path}: {message}" if self.path else message)


def format_path(loc: Sequence[str | int]) -> str:
    """`("rules", 0, "when")` -> `rules[0].when`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


# --------------------------------------------------------------------------- the tree


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, serialize_by_alias=True)


class _Ref(BaseModel):
    """An indicator operand: an indicator spec and, for MACD and Bollinger Bands, which
    line to read. Subclasses put the spec first, so its fields and columns win."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def column(self) -> str:
        """The column of `Context.indicators` this operand reads."""
        return self.columns[0]

    def spec(self) -> IndicatorSpec:
        """The plain indicator spec, for `Strategy.indicators()`."""
        raise NotImplementedError


class RsiRef(RsiSpec, _Ref):
    def spec(self) -> IndicatorSpec:
        return RsiSpec(length=self.length)


class SmaRef(SmaSpec, _Ref):
    def spec(self) -> IndicatorSpec:
        return SmaSpec(length=self.length)


class EmaRef(EmaSpec, _Ref):
    def spec(self) -> IndicatorSpec:
        return EmaSpec(length=self.length)


class AtrRef(AtrSpec, _Ref):
    def spec(self) -> IndicatorSpec:
        return AtrSpec(length=self.length)


class MacdRef(MacdSpec, _Ref):
    output: Literal["macd", "signal", "histogram"] = "macd"

    @property
    def column(self) -> str:
        return self.columns[("macd", "signal", "histogram").index(self.output)]

    def spec(self) -> IndicatorSpec:
        return MacdSpec(fast=self.fast, slow=self.slow, signal=self.signal)


class BbandsRef(BbandsSpec, _Ref):
    output: Literal["lower", "middle", "upper"] = "middle"

    @property
    def column(self) -> str:
        return self.columns[("lower", "middle", "upper").index(self.output)]

    def spec(self) -> IndicatorSpec:
        return BbandsSpec(length=self.length, std=self.std)


def _kind_tag(v: Any) -> str | None:
    kind = v.get("kind") if isinstance(v, dict) else getattr(v, "kind", None)
    return kind if isinstance(kind, str) else None


IndicatorRef = Annotated[
    Annotated[RsiRef, Tag("rsi")]
    | Annotated[SmaRef, Tag("sma")]
    | Annotated[EmaRef, Tag("ema")]
    | Annotated[MacdRef, Tag("macd")]
    | Annotated[BbandsRef, Tag("bbands")]
    | Annotated[AtrRef, Tag("atr")],
    Discriminator(
        _kind_tag,
        custom_error_type="indicator",
        custom_error_message=(
            'Expected an indicator such as {"kind": "rsi", "length": 14}; '
            'kind is one of "rsi", "sma", "ema", "macd", "bbands", "atr"'
        ),
    ),
]


class Compare(_Node):
    """`{LEFT, "op": OP, RIGHT}`: one left operand, one right operand."""

    indicator: IndicatorRef | None = None
    price: PriceField | None = None
    op: Op
    value: Annotated[float, Field(allow_inf_nan=False)] | None = None
    indicator_b: IndicatorRef | None = None
    price_b: PriceField | None = None

    @model_validator(mode="after")
    def _one_each(self) -> Compare:
        lefts = [k for k in ("indicator", "price") if getattr(self, k) is not None]
        rights = [k for k in ("value", "indicator_b", "price_b") if getattr(self, k) is not None]
        if len(lefts) != 1:
            raise PydanticCustomError(
                "operand",
                "give exactly one left operand, 'indicator' or 'price' (got {got})",
                {"got": ", ".join(lefts) or "none"},
            )
        if len(rights) != 1:
            raise PydanticCustomError(
                "operand",
                "give exactly one right operand, 'value', 'indicator_b' or 'price_b' (got {got})",
                {"got": ", ".join(rights) or "none"},
            )
        return self


class All(_Node):
    """`{"all": [...]}`: holds when every condition holds."""

    all: list[Condition] = Field(min_length=1, max_length=MAX_CHILDREN)


class AnyOf(_Node):
    """`{"any": [...]}`: holds when at least one condition holds."""

    any: list[Condition] = Field(min_length=1, max_length=MAX_CHILDREN)


class Not(_Node):
    """`{"not": condition}`."""

    not_: Condition = Field(alias="not")


# Tags are never keys of the JSON; `_clean_loc` drops them from error locations.
_TAGS = {All: "<all>", AnyOf: "<any>", Not: "<not>", Compare: "<compare>"}


def _condition_tag(v: Any) -> str | None:
    if isinstance(v, _Node):
        return _TAGS.get(type(v))
    if not isinstance(v, dict):
        return None
    for key, model in (("all", All), ("any", AnyOf), ("not", Not)):
        if key in v:
            return _TAGS[model]
    return _TAGS[Compare] if "op" in v else None


Condition = Annotated[
    Annotated[All, Tag(_TAGS[All])]
    | Annotated[AnyOf, Tag(_TAGS[AnyOf])]
    | Annotated[Not, Tag(_TAGS[Not])]
    | Annotated[Compare, Tag(_TAGS[Compare])],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message=(
            'Expected a condition: {"all": [...]}, {"any": [...]}, {"not": {...}}, '
            'or a comparison with "op"'
        ),
    ),
]


class Rule(_Node):
    """`{"when": condition, "then": action}`, with optional name, confidence and stops."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    when: Condition
    then: Then
    confidence: float = Field(default=DEFAULT_CONFIDENCE, ge=0, le=1)
    stop_loss: StopRule | None = None
    take_profit: StopRule | None = None

    @field_validator("stop_loss", "take_profit")
    @classmethod
    def _buy_only(cls, stop: StopRule | None, info: ValidationInfo) -> StopRule | None:
        then = info.data.get("then")
        if stop is not None and then is not None and then != "BUY":
            raise PydanticCustomError(
                "stop_not_buy",
                "stops apply to BUY rules only, this rule is {then}: remove it",
                {"then": then},
            )
        return stop

    @property
    def exits(self) -> ExitParams:
        return ExitParams(stop_loss=self.stop_loss, take_profit=self.take_profit)


All.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()

_RULE: TypeAdapter[Rule] = TypeAdapter(Rule)
_RULES: TypeAdapter[list[Rule]] = TypeAdapter(
    Annotated[list[Rule], Field(min_length=1, max_length=MAX_RULES)]
)

# Fields whose value is a tagged union: the element after them in a pydantic
# location is the tag, not a key of the JSON.
_UNION_FIELDS = frozenset({"when", "not", "indicator", "indicator_b", "stop_loss", "take_profit"})


# --------------------------------------------------------------------------- parse, dump


def _clean_loc(loc: Sequence[str | int]) -> Loc:
    out: list[str | int] = []
    for i, part in enumerate(loc):
        prev = loc[i - 1] if i else None
        before = loc[i - 2] if i > 1 else None
        after_union = prev in _UNION_FIELDS or (isinstance(prev, int) and before in ("all", "any"))
        if isinstance(part, str) and after_union:
            continue
        out.append(part)
    return tuple(out)


def _error(prefix: Loc, e: ValidationError) -> RuleError:
    problems = [
        (prefix + _clean_loc(err["loc"]), err["msg"].removeprefix("Value error, "))
        for err in e.errors(include_url=False)
    ]
    return RuleError(*problems[0], problems=problems)


def _children(node: Any) -> Iterator[tuple[Loc, Any]]:
    if not isinstance(node, dict):
        return
    for key in ("all", "any"):
        children = node.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                yield (key, i), child
    if "not" in node:
        yield ("not",), node["not"]


def _check_size(rules: Sequence[tuple[Loc, Any]]) -> None:
    """Refuse deep or huge condition trees before pydantic recurses into them; the
    walk is iterative, so no input can exhaust the stack here."""
    count = 0
    for prefix, rule in rules:
        if not isinstance(rule, dict) or "when" not in rule:
            continue
        stack: list[tuple[Loc, Any, int]] = [(prefix + ("when",), rule["when"], 1)]
        while stack:
            loc, node, depth = stack.pop()
            count += 1
            if depth > MAX_DEPTH:
                raise RuleError(
                    loc, f"conditions nest deeper than {MAX_DEPTH} levels: flatten them"
                )
            if count > MAX_CONDITIONS:
                raise RuleError(
                    loc, f"more than {MAX_CONDITIONS} conditions in all: split the strategy"
                )
            stack.extend((loc + sub, child, depth + 1) for sub, child in _children(node))


def _load(data: Any) -> Any:
    if isinstance(data, str | bytes | bytearray):
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as e:
            raise RuleError((), f"not valid JSON: {e}") from e
    return data


def parse_rule(data: Any) -> Rule:
    """Parse one rule (a dict, or its JSON text); paths start at the rule (`when...`).

    Raises:
        RuleError: naming the bad node; no other exception.
    """
    data = _load(data)
    _check_size([((), data)])
    try:
        return _RULE.validate_python(data)
    except ValidationError as e:
        raise _error((), e) from None


def parse_rules(data: Any) -> list[Rule]:
    """Parse a strategy's list of rules (or its JSON text); paths start at `rules`.

    Raises:
        RuleError: naming the bad node; no other exception.
    """
    data = _load(data)
    if isinstance(data, list | tuple):
        _check_size([(("rules", i), rule) for i, rule in enumerate(data[: MAX_RULES + 1])])
    try:
        return _RULES.validate_python(data)
    except ValidationError as e:
        raise _error(("rules",), e) from None


def dump_rule(rule: Rule) -> dict[str, Any]:
    """The rule as JSON data, in the format `parse_rule` reads."""
    dumped: dict[str, Any] = rule.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


def dump_rules(rules: Sequence[Rule]) -> list[dict[str, Any]]:
    return [dump_rule(r) for r in rules]


# --------------------------------------------------------------------------- evaluation

Truth = bool | None  # None: unknown, some operand has no value yet


@dataclass(slots=True)
class _Eval:
    """One evaluation: the values read (for the reasoning) and what was missing."""

    ctx: Context
    values: dict[str, float | None]
    missing: set[str]

    def operand(
        self, indicator: _Ref | None, price: str | None, value: float | None
    ) -> tuple[str, float | None, float | None]:
        """(label, now, one candle earlier)."""
        if indicator is not None:
            col = indicator.column
            now, before = self.ctx.indicators.get(col), self.ctx.previous.get(col)
            self.values[col] = now
            if now is None:
                self.missing.add(col)
            return col, now, before
        if price is not None:
            candles = self.ctx.candles
            prev: Candle | None = candles[-2] if len(candles) > 1 else None
            now = float(getattr(candles[-1], price))
            self.values[price] = now
            return price, now, None if prev is None else float(getattr(prev, price))
        assert value is not None  # Compare guarantees one right operand
        return _num(value), value, value


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.8g}"


def _compare(node: Compare, ev: _Eval) -> tuple[Truth, str]:
    la, a1, a0 = ev.operand(node.indicator, node.price, None)
    lb, b1, b0 = ev.operand(node.indicator_b, node.price_b, node.value)
    right = lb if node.value is not None else f"{lb} {_num(b1)}"
    if node.op in ("crosses_above", "crosses_below"):
        verb = "crossed above" if node.op == "crosses_above" else "crossed below"
        text = f"{la} {_num(a1)} (was {_num(a0)}) {verb} {right}"
        if None in (a0, a1, b0, b1):
            return None, text
        cross = crossed_above if node.op == "crosses_above" else crossed_below
        return cross(a0, b0, a1, b1), text
    text = f"{la} {_num(a1)} {node.op} {right}"
    if a1 is None or b1 is None:
        return None, text
    match node.op:
        case ">":
            result = a1 > b1
        case ">=":
            result = a1 >= b1
        case "<":
            result = a1 < b1
        case "<=":
            result = a1 <= b1
        case "==":
            result = a1 == b1
        case _:
            result = a1 != b1
    return result, text


def _evaluate(node: All | AnyOf | Not | Compare, ev: _Eval) -> tuple[Truth, str]:
    """The node's truth and, when true, why (the parts that made it so)."""
    match node:
        case Compare():
            return _compare(node, ev)
        case Not():
            truth, text = _evaluate(node.not_, ev)
            return (None if truth is None else not truth), f"not ({text})"
        case All():
            unknown = False
            texts = []
            for child in node.all:
                truth, text = _evaluate(child, ev)
                if truth is False:
                    return False, text
                unknown = unknown or truth is None
                texts.append(text)
            return (None if unknown else True), " and ".join(texts)
        case AnyOf():
            unknown = False
            for child in node.any:
                truth, text = _evaluate(child, ev)
                if truth:
                    return True, text
                unknown = unknown or truth is None
            return (None if unknown else False), ""


def evaluate(condition: All | AnyOf | Not | Compare, ctx: Context) -> Truth:
    """Whether `condition` holds on `ctx`: True, False, or None (some value missing)."""
    return _evaluate(condition, _Eval(ctx, {}, set()))[0]


def _refs(node: All | AnyOf | Not | Compare) -> Iterator[_Ref]:
    match node:
        case Compare():
            yield from (r for r in (node.indicator, node.indicator_b) if r is not None)
        case Not():
            yield from _refs(node.not_)
        case All():
            for child in node.all:
                yield from _refs(child)
        case AnyOf():
            for child in node.any:
                yield from _refs(child)


def rule_indicators(rules: Sequence[Rule]) -> list[IndicatorSpec]:
    """Every indicator the rules read, their ATR stops included, each once."""
    specs: dict[IndicatorSpec, None] = {}
    for rule in rules:
        for ref in _refs(rule.when):
            specs[ref.spec()] = None
        for spec in _exit_specs(rule.exits):
            specs[spec] = None
    return list(specs)


# --------------------------------------------------------------------------- strategy


class JsonRuleParams(StrategyParams):
    """`rules` in the format of this module; `name` and `version` identify the stored
    strategy, and are copied into every decision's details."""

    rules: list[Rule] = Field(min_length=1, max_length=MAX_RULES)
    name: str | None = Field(default=None, max_length=64)
    version: int | None = Field(default=None, ge=1)

    @field_validator("rules", mode="before")
    @classmethod
    def _parse(cls, rules: Any) -> Any:
        if isinstance(rules, list) and all(isinstance(r, Rule) for r in rules):
            return rules
        try:
            return parse_rules(rules)
        except RuleError as e:
            raise PydanticCustomError("rule", "{problem}", {"problem": str(e)}) from None


@register_strategy("json_rule")
class JsonRule(Strategy):
    """Rules saved by users (see the module docstring for the format): the first rule
    that holds decides, none -> HOLD. Params: `rules`, optional `name`, `version`."""

    Params = JsonRuleParams
    params: JsonRuleParams

    def describe(self) -> str:
        p = self.params
        which = f"{p.name} v{p.version}: " if p.name is not None else ""
        return f"{self.name}({which}{json.dumps(dump_rules(p.rules), separators=(',', ':'))})"

    def indicators(self) -> Sequence[IndicatorSpec]:
        return rule_indicators(self.params.rules)

    def decide(self, ctx: Context) -> Decision:
        p = self.params
        missing: set[str] = set()
        for index, rule in enumerate(p.rules, start=1):
            ev = _Eval(ctx, {}, missing)
            truth, why = _evaluate(rule.when, ev)
            if truth:
                return self._act(ctx, index, rule, why, ev.values)
        reason = f"no rule of {len(p.rules)} matched"
        if missing:
            reason += f" (still warming up: {', '.join(sorted(missing))})"
        return Decision.hold(reason, **self._details(None, None, {}))

    def _act(
        self,
        ctx: Context,
        index: int,
        rule: Rule,
        why: str,
        values: Mapping[str, float | None],
    ) -> Decision:
        label = f"rule {index}" + (f" {rule.name!r}" if rule.name else "")
        reasoning = f"{label} -> {rule.then}: {why}"
        details = self._details(index, rule, values)
        match rule.then:
            case "BUY":
                if ctx.position() is not None:
                    decision = Decision.hold(f"{reasoning}, but a position is already open")
                else:
                    decision = _buy(ctx, rule.exits, rule.confidence, reasoning)
            case "SELL":
                decision = _sell(ctx, rule.confidence, reasoning)
            case "CLOSE":
                if ctx.position() is None:
                    decision = Decision.hold(f"{reasoning}, but no position is open to close")
                else:
                    decision = Decision(
                        Action.CLOSE, rule.confidence, reasoning, entry=_dec(ctx.candle.close)
                    )
            case _:
                decision = Decision.hold(reasoning)
        return replace(decision, details={**decision.details, **details})

    def _details(
        self, index: int | None, rule: Rule | None, values: Mapping[str, float | None]
    ) -> dict[str, Any]:
        p = self.params
        details: dict[str, Any] = {
            k: v for k, v in (("strategy", p.name), ("version", p.version)) if v is not None
        }
        if index is not None:
            details["rule"] = index
        if rule is not None and rule.name:
            details["rule_name"] = rule.name
        if values:
            # NaN is not JSON, and the decision travels as JSON.
            details["values"] = {
                k: (v if v is None or math.isfinite(v) else None) for k, v in values.items()
            }
        return details
