"""Position sizing and the market's rounding rules.

An entry's quantity, step by step (each step may only lower it):

1. every sizing method in force gives a quantity at the entry price (rounded to the
   tick): fixed notional / (price x rate), equity x pct / 100 / (price x rate), or
   equity x risk_pct / 100 / ((price - stop_loss) x rate); the smallest wins;
2. the decision's `size_hint`, then the market's `max_amount`, cap it;
3. the free cash caps it, keeping room for the taker fee:
   cash / (price x rate x (1 + fee));
4. it is rounded DOWN to the market's amount precision, then to its amount step;
5. below the market's minimum amount or minimum notional (or zero) it is refused,
   as `insufficient_cash` when the cash cap made it that small.

An exit sells the whole position (CLOSE, or a SELL without a hint) or the hinted
part of it, rounded down the same way and refused below the market's minimums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, getcontext
from functools import lru_cache
from typing import Any

from shared.events import Action
from shared.kernel.frozen import fast_init
from shared.kernel.risk.limits import FixedNotional, PercentOfEquity, RiskLimits, Sizing
from shared.kernel.risk.model import ONE, ZERO, AccountState, MarketRules, TradeIntent
from shared.kernel.risk.verdict import CheckResult, CheckStatus, RiskCheck, RiskReason

_HUNDRED = Decimal(100)


def div_down(a: Decimal, b: Decimal) -> Decimal:
    """`a / b` rounded toward minus infinity in its last digit, so a quantity computed
    from a budget never exceeds the budget, even by one unit of the 28th digit."""
    # As `with localcontext() as c: c.rounding = ROUND_FLOOR; return a / b`, with the
    # copy of the context made once per precision and exponent range, not per call:
    # sizing divides four or five times per decision.
    ctx = getcontext()
    return _floor_context(ctx.prec, ctx.Emax, ctx.Emin, ctx.clamp).divide(a, b)


@lru_cache(maxsize=8)
def _floor_context(prec: int, emax: int, emin: int, clamp: int) -> Context:
    floor = getcontext().copy()
    floor.rounding = ROUND_FLOOR
    return floor


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of `step` that is <= `value`."""
    return div_down(value, step).to_integral_value(rounding=ROUND_FLOOR) * step


def round_amount(quantity: Decimal, rules: MarketRules) -> Decimal:
    """Round a quantity DOWN onto the market's amount grid: a multiple of the step
    that has no more decimals than the precision allows (with step 0.25 and one
    decimal, the grid is 0.5). Never more than asked."""
    grid = _amount_grid(rules.amount_step, rules.amount_precision)
    return quantity if grid is None else floor_to_step(quantity, grid)


def amount_grid(rules: MarketRules) -> Decimal | None:
    """The market's amount grid (see `round_amount`); None when quantities are free."""
    return _amount_grid(rules.amount_step, rules.amount_precision)


@lru_cache(maxsize=256)
def _amount_grid(step: Decimal | None, precision: int | None) -> Decimal | None:
    unit = _unit(precision) if precision is not None else None
    if step is None or unit is None:
        return step if step is not None else unit
    return _lcm(step, unit)


def _lcm(a: Decimal, b: Decimal) -> Decimal:
    """Least common multiple of two positive decimals (0.25 and 0.1 -> 0.5)."""
    places = max(-a.as_tuple().exponent, -b.as_tuple().exponent, 0)  # type: ignore[operator]
    scale = Decimal(10) ** places
    x, y = int(a * scale), int(b * scale)
    return Decimal(x * y // math.gcd(x, y)) / scale


def round_price(price: Decimal, rules: MarketRules) -> Decimal:
    """Round a price to the nearest tick and precision the market allows (never to 0)."""
    if rules.price_precision is not None:
        exponent = _unit(rules.price_precision)
        price = max(price.quantize(exponent, ROUND_HALF_EVEN), exponent)
    if rules.price_tick is not None:
        tick = rules.price_tick
        price = max((price / tick).to_integral_value(ROUND_HALF_EVEN) * tick, tick)
    return price


@lru_cache(maxsize=32)
def _unit(precision: int) -> Decimal:
    """10 ^ -precision: the smallest step of `precision` decimals."""
    return Decimal(1).scaleb(-precision)


@lru_cache(maxsize=256)
def _dumped(sizing: Sizing) -> dict[str, Any]:
    # A sizing method is frozen: its dump, shown in every entry's details, is too.
    return sizing.model_dump()


def sizing_quantity(
    sizing: Sizing, *, equity: Decimal, price: Decimal, stop_loss: Decimal | None, rate: Decimal
) -> Decimal:
    """The quantity one sizing method asks for (0 when it cannot ask for any)."""
    unit_value = price * rate
    if isinstance(sizing, FixedNotional):
        return div_down(sizing.notional, unit_value)
    pct = sizing.pct if isinstance(sizing, PercentOfEquity) else sizing.risk_pct
    budget = div_down(equity * pct, _HUNDRED)
    if budget <= 0:
        return ZERO
    if isinstance(sizing, PercentOfEquity):
        return div_down(budget, unit_value)
    if stop_loss is None or stop_loss >= price:
        return ZERO
    return div_down(budget, (price - stop_loss) * rate)


@fast_init
@dataclass(frozen=True, slots=True)
class Sized:
    """A quantity the market accepts, at a price it accepts."""

    quantity: Decimal
    price: Decimal
    notional: Decimal
    details: dict[str, Any]


def size(
    intent: TradeIntent, account: AccountState, market: MarketRules, limits: RiskLimits
) -> Sized | CheckResult:
    """Size an intent (see the module docstring), or the rejection that says why not."""
    if intent.is_entry:
        return _size_entry(intent, account, market, limits)
    return _size_exit(intent, account, market)


def _size_entry(
    intent: TradeIntent, account: AccountState, market: MarketRules, limits: RiskLimits
) -> Sized | CheckResult:
    price = round_price(intent.entry, market)
    asked = [
        (
            sizing,
            sizing_quantity(
                sizing,
                equity=account.equity,
                price=price,
                stop_loss=intent.stop_loss,
                rate=intent.quote_rate,
            ),
        )
        for sizing in limits.sizings
    ]
    chosen, quantity = asked[0] if len(asked) == 1 else min(asked, key=lambda item: item[1])
    bound: str = chosen.method
    details: dict[str, Any] = {
        "price": price,
        "equity": account.equity,
        "cash": account.cash,
        "asked": [{**_dumped(sizing), "quantity": q} for sizing, q in asked],
    }
    caps = (("size_hint", intent.size_hint), ("max_amount", market.max_amount))
    for name, cap in caps:
        if cap is not None and cap < quantity:
            bound, quantity = name, cap
    if account.cash <= 0:
        return _reject(
            RiskReason.INSUFFICIENT_CASH,
            f"no free cash ({account.cash} {account.currency}) to buy {intent.symbol}: "
            "add funds or close positions",
            details,
        )
    unit_cost = price * intent.quote_rate * (ONE + market.taker_fee)
    affordable = div_down(account.cash, unit_cost)
    details["affordable"] = affordable
    if affordable < quantity:
        bound, quantity = "cash", affordable
    details["bound_by"] = bound
    return _fit(intent, account, market, quantity, price, details)


def _size_exit(
    intent: TradeIntent, account: AccountState, market: MarketRules
) -> Sized | CheckResult:
    held = account.held(intent.symbol)
    details: dict[str, Any] = {"held": held}
    if held <= 0:
        return _reject(
            RiskReason.NOTHING_TO_CLOSE,
            f"no open {intent.symbol} position to {intent.side.value}: accounts are "
            "long-only, so a SELL or CLOSE only reduces a long the account holds",
            details,
        )
    quantity, bound = held, "position"
    if intent.side is Action.SELL and intent.size_hint is not None and intent.size_hint < held:
        quantity, bound = intent.size_hint, "size_hint"
    details["bound_by"] = bound
    return _fit(intent, account, market, quantity, round_price(intent.entry, market), details)


def _fit(
    intent: TradeIntent,
    account: AccountState,
    market: MarketRules,
    wanted: Decimal,
    price: Decimal,
    details: dict[str, Any],
) -> Sized | CheckResult:
    quantity = round_amount(wanted, market)
    details.update(wanted=wanted, quantity=quantity)

    def why_small() -> str:  # only a refusal says it: formatting a Decimal is not free
        return (
            f"{intent.symbol}: {intent.side.value} quantity {wanted:.8g} (bound by "
            f"{details['bound_by']}) rounds down to {quantity}"
        )

    short_of_cash = details["bound_by"] == "cash"
    if quantity <= 0 or (market.min_amount is not None and quantity < market.min_amount):
        details["min_amount"] = market.min_amount
        minimum = (
            f"below the market's minimum amount {market.min_amount}"
            if quantity > 0
            else "which the market cannot trade"
        )
        return _too_small(
            RiskReason.BELOW_MIN_AMOUNT,
            short_of_cash,
            f"{why_small()}, {minimum}",
            account,
            details,
        )
    quote_notional = quantity * price
    if market.min_notional is not None and quote_notional < market.min_notional:
        details.update(min_notional=market.min_notional, quote_notional=quote_notional)
        return _too_small(
            RiskReason.BELOW_MIN_NOTIONAL,
            short_of_cash,
            f"{why_small()}, worth {quote_notional} at {price}, below the market's minimum "
            f"notional {market.min_notional}",
            account,
            details,
        )
    notional = quote_notional * intent.quote_rate
    details["notional"] = notional
    return Sized(quantity, price, notional, details)


def _too_small(
    reason: RiskReason,
    short_of_cash: bool,
    message: str,
    account: AccountState,
    details: dict[str, Any],
) -> CheckResult:
    if short_of_cash:
        return _reject(
            RiskReason.INSUFFICIENT_CASH,
            f"{message}: free cash {account.cash} {account.currency} is not enough; "
            "add funds or close positions",
            details,
        )
    return _reject(
        reason,
        f"{message}: size positions larger (sizing, size_hint) or trade another market",
        details,
    )


def _reject(reason: RiskReason, message: str, details: dict[str, Any]) -> CheckResult:
    return CheckResult(RiskCheck.SIZING, CheckStatus.REJECTED, details, reason, message)
