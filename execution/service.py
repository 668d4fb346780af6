"""The execution service: decisions in, risk-checked orders out, and a trace of each.

For every decision it receives (at least once) the service:

1. finds the trade account (bound to the deciding group and served here) and the
   intent it may already have made of that decision: a second delivery stops here;
2. brings the account up to date (the adapter's market, fills since the last sync);
3. asks the kernel's risk engine, with the account's books, the market's rules and
   the account's and group's limits merged; persists the intent, accepted (with its
   size) or rejected (with the reason code), and publishes it as an `order` event;
4. persists the order (client order id derived from the decision id), sends it,
   and applies the answer: fills are booked on the kernel's `Portfolio`, persisted,
   and published with the position and realized PnL. No answer in time makes the
   order `ambiguous`; it is never sent again, the sync loop finds it;
5. protects a filled entry: its stop-loss and take-profit rest at the exchange as
   one one-cancels-other pair where the adapter holds them (`holds_exits`: paper,
   a Binance OCO order list), stored before the one request leaves; elsewhere the
   sync loop watches the price and sends a market exit.

A sync loop polls each account: the adapter's market (paper fills, stops), the
working and ambiguous orders, prices for unrealized PnL, equity snapshots, and the
open incidents. At start, each account is reconciled with its exchange; a mismatch
is persisted as an incident and published as a `log` event, and the account takes
no new entries until an operator acknowledges or resolves the incident.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from execution.adapters.base import (
    AccountSpec,
    Credentials,
    ExchangeAdapter,
    FillReport,
    OrderReport,
    OrderRequest,
    create_adapter,
)
from execution.adapters.errors import (
    ExchangeError,
    OrderNotFound,
    OutcomeUnknown,
)
from execution.adapters.retry import RetryPolicy, call_with_retry
from execution.settings import ExecutionSettings
from execution.store import ExecutionStore, OrderMeta
from shared.crypto import CredentialBox, resolve_secret_key
from shared.db.models import OrderIntentRow
from shared.events import Action, Category, DecisionEvent, LogLevel, Trace
from shared.kernel.orders import (
    Fill,
    Order,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    apply_fill,
    can_transition,
    client_order_id,
    exit_orders,
    fill_from_totals,
    transition,
)
from shared.kernel.portfolio import Booking, Portfolio
from shared.kernel.risk import (
    Mode,
    RiskEngine,
    RiskLimits,
    RiskReason,
    TradeIntent,
    jsonable,
    merge_limits,
)
from shared.kernel.risk.sizing import round_amount
from shared.kernel.risk.state import account_state
from shared.logging import get_logger
from shared.market.candles import timeframe_delta
from shared.sdk import AckTimeout, GatewayClient, Unavailable

log = get_logger(__name__)

ORDER_EVENT_NAMESPACE = uuid.UUID("0b7c4f7e-2a55-4c1e-9d0e-6f3b1f5a8c21")
INTENT_NAMESPACE = uuid.UUID("9e0f2d51-8c47-4b8e-a6a3-1c2d3e4f5a6b")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: An order the exchange still does not know this long after it was sent was
#: never received: it is rejected, and the decision's trace says so.
AMBIGUOUS_GRACE = timedelta(seconds=30)
ACCOUNT_HALTED = "account_halted"
# Statuses a report moves an order to by itself; fills move it to (partially) filled.
_REPORTED_STATUSES = frozenset(
    {OrderStatus.ACCEPTED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)
NO_ACCOUNT = "no_trade_account"
PROTECTIVE = frozenset({OrderLeg.STOP_LOSS, OrderLeg.TAKE_PROFIT})
# A protective leg in these statuses may not be at the exchange yet.
_UNCONFIRMED = frozenset({OrderStatus.SUBMITTED, OrderStatus.AMBIGUOUS})


@dataclass
class Account:
    """One trade account served by this process: its adapter, books and limits."""

    spec: AccountSpec
    adapter: ExchangeAdapter
    portfolio: Portfolio
    limits: RiskLimits
    group_limits: dict[str, RiskLimits]
    groups: list[str]
    market_clock: bool
    market_time: datetime = EPOCH
    halted: bool = False
    orders: dict[str, Order] = field(default_factory=dict)
    meta: dict[str, OrderMeta] = field(default_factory=dict)
    exits: dict[str, tuple[Decimal | None, Decimal | None]] = field(default_factory=dict)
    #: Per symbol, the group (and intent) whose entry opened the position: its
    #: protective exits are that group's orders and are announced to it.
    owners: dict[str, OrderMeta] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_snapshot: datetime | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def now(self) -> datetime:
        return self.market_time if self.market_clock else datetime.now(UTC)


def _limits(value: Any, where: str) -> RiskLimits:
    try:
        return RiskLimits.model_validate(value or {})
    except ValueError as e:
        raise ValueError(f"{where}: invalid risk limits: {e}") from e


def _uses_market_clock(config: Mapping[str, Any]) -> bool:
    clock = config.get("clock")
    if clock in ("market", "wall"):
        return bool(clock == "market")
    feeds = config.get("feeds") or {}
    specs = [v if isinstance(v, str) else (v or {}).get("feed", "") for v in feeds.values()]
    return any(str(s).startswith("csv:") for s in specs)


class ExecutionService:
    def __init__(
        self,
        client: GatewayClient,
        store: ExecutionStore,
        settings: ExecutionSettings,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.risk = RiskEngine(live_trading_enabled=settings.live_trading_enabled)
        self.accounts: dict[str, Account] = {}
        self._box: CredentialBox | None = None
        self._sync_task: asyncio.Task[None] | None = None
        client.add_handler(Category.DECISION, self.on_decision)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Build each served account's adapter and books, reconcile, start syncing."""
        config = self.client.config
        for entry in config.get("trade_accounts", []):
            try:
                account = await self._open_account(entry)
            except Exception as e:
                # One broken account (bad credentials, unknown exchange) must not
                # keep the others from trading: say so loudly and go on.
                log.error("account_not_started", account=entry.get("name"), error=str(e))
                await self._log(
                    f"trade account {entry.get('name')!r} not started: {e}",
                    level=LogLevel.ERROR,
                    code="ACCOUNT_NOT_STARTED",
                )
                continue
            self.accounts[account.name] = account
            await self.reconcile(account)
        self._sync_task = asyncio.create_task(self._sync_forever(), name="execution-sync")

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
            await asyncio.gather(self._sync_task, return_exceptions=True)
        for account in self.accounts.values():
            await account.adapter.close()

    async def _open_account(self, entry: Mapping[str, Any]) -> Account:
        name = str(entry["name"])
        config = dict(entry.get("config") or {})
        mode = Mode(entry.get("mode") or "paper")
        if entry.get("exchange") == "paper" or (mode is Mode.PAPER and not config.get("sandbox")):
            config.setdefault(
                "state_file", str((self.settings.data_dir / "paper" / f"{name}.json").resolve())
            )
        spec = AccountSpec(
            name=name,
            exchange=str(entry["exchange"]),
            mode=mode,
            config=config,
            credentials=await self._credentials(name),
        )
        market_clock = _uses_market_clock(config)
        # A replay's clock resumes where the books stopped; the adapter reads the
        # account's clock, which exists before the account does.
        start = max((f.fill.at for f in await self.store.fills(name)), default=EPOCH)
        account_ref: list[Account] = []

        def clock() -> datetime:
            if account_ref:
                return account_ref[0].now()
            return start if market_clock else datetime.now(UTC)

        adapter = create_adapter(spec, clock=clock)
        await adapter.start()
        portfolio = await self._books(spec, adapter)
        account = Account(
            spec=spec,
            adapter=adapter,
            portfolio=portfolio,
            limits=_limits(config.get("risk"), f"trade account {name}"),
            group_limits={
                g: _limits(v, f"trading group {g}")
                for g, v in (entry.get("group_limits") or {}).items()
            },
            groups=list(entry.get("trading_groups") or []),
            market_clock=market_clock,
            market_time=start,
        )
        account_ref.append(account)
        for order, meta in await self.store.open_orders(name):
            account.orders[order.client_order_id] = order
            account.meta[order.client_order_id] = meta
        for row in await self.store.positions(name):
            if row.quantity:
                account.exits[row.symbol] = (row.stop_loss, row.take_profit)
                account.owners[row.symbol] = OrderMeta(None, row.trading_group)
        account.halted = await self.store.open_incidents(name) > 0
        await self._snapshot(account, force=True)
        log.info(
            "account_started",
            account=name,
            adapter=adapter.name,
            mode=mode.value,
            market_clock=market_clock,
            equity=str(portfolio.equity()),
        )
        return account

    async def _credentials(self, account: str) -> Credentials:
        sealed = await self.store.sealed_credentials(account)
        if sealed is None:
            return Credentials()
        if self._box is None:
            key = self.settings.secret_key.get_secret_value() if self.settings.secret_key else None
            self._box = CredentialBox(resolve_secret_key(key, self.settings.data_dir))
        return Credentials(self._box.open(sealed))

    async def _books(self, spec: AccountSpec, adapter: ExchangeAdapter) -> Portfolio:
        """The account's books: its starting cash, then every stored fill replayed."""
        currency = str(spec.config.get("currency") or "USDT")
        fills = await self.store.fills(spec.name)
        capital = spec.config.get("capital")
        if capital is None:
            balances = spec.config.get("balances")
            if balances and currency in balances:
                capital = balances[currency]
        if capital is None:
            capital = await self.store.first_cash(spec.name)
        if capital is None:
            # First start on a real account: today's free cash, with the cash flow of
            # any fills of ours taken back out. The snapshot taken right after start
            # records it, so later starts read it back (`first_cash`) rather than
            # derive it from a balance that open orders may have moved meanwhile.
            held = (await adapter.balances()).get(currency)
            flow = sum(
                (
                    (f.fill.held_quantity * f.fill.price + f.fill.fee)
                    * (1 if f.fill.side is OrderSide.BUY else -1)
                    for f in fills
                ),
                Decimal(0),
            )
            capital = (held.total if held else Decimal(0)) + flow
        portfolio = Portfolio(
            spec.name,
            Decimal(str(capital)),
            currency=currency,
            peak_equity=await self.store.peak_equity(spec.name),
        )
        for stored in fills:
            portfolio.apply(stored.fill)
        return portfolio

    # ------------------------------------------------------------------ decisions

    async def on_decision(self, event: DecisionEvent) -> None:
        payload = event.payload
        group = event.source.split(":", 1)[-1]
        if payload.action is Action.HOLD:
            return
        account = self._account_for(group, payload.trade_account)
        decision_id = str(event.id)
        trace = Trace(
            correlation_id=event.trace.correlation_id or decision_id, causation_id=decision_id
        )
        if isinstance(account, str):
            await self._publish_order(
                group,
                trace,
                key=f"{decision_id}|no-account",
                status=OrderStatus.DENIED,
                reason=NO_ACCOUNT,
                message=account,
                symbol=payload.symbol,
                side=_side(payload.action),
            )
            return
        async with account.lock:
            await self._decide(account, group, event, trace)

    def _account_for(self, group: str, named: str | None) -> Account | str:
        bound = [a for a in self.accounts.values() if group in a.groups]
        if named is not None:
            bound = [a for a in bound if a.name == named]
            if not bound:
                return f"trade account {named!r} is not bound to {group!r} or not served here"
        if not bound:
            return f"no trade account served here is bound to trading group {group!r}"
        if len(bound) > 1:
            names = ", ".join(a.name for a in bound)
            return f"{group!r} is bound to several accounts ({names}): name one in trade_account"
        return bound[0]

    async def _decide(
        self, account: Account, group: str, event: DecisionEvent, trace: Trace
    ) -> None:
        payload, decision_id = event.payload, str(event.id)
        if await self.store.intent(account.name, decision_id) is not None:
            log.info("decision_redelivered", account=account.name, decision=decision_id)
            return
        extra = payload.model_extra or {}
        candle_time = _parse_time(extra.get("candle_time"))
        timeframe = payload.timeframe
        if account.market_clock and candle_time is not None and timeframe is not None:
            account.market_time = max(account.market_time, candle_time + timeframe_delta(timeframe))
        await self._sync_account(account)
        now = account.now()
        intent_id = str(uuid.uuid5(INTENT_NAMESPACE, f"{account.name}|{decision_id}"))
        decided_at = event.ts if not account.market_clock else now
        side = _side(payload.action)

        verdict_json: dict[str, Any]
        reason: str | None
        try:
            price = payload.entry or await self._read(
                account, account.adapter.last_price, payload.symbol
            )
            intent = TradeIntent(
                account=account.name,
                group=group,
                symbol=payload.symbol,
                side=payload.action,
                confidence=payload.confidence,
                entry=price,
                decided_at=decided_at,
                stop_loss=payload.stop_loss,
                take_profit=payload.take_profit,
                candle_time=candle_time if timeframe else None,
                timeframe=timeframe if candle_time else None,
                size_hint=payload.size_hint,
            )
            rules = await self._read(account, account.adapter.market_rules, payload.symbol)
            if account.halted and intent.is_entry:
                accepted, reason = False, ACCOUNT_HALTED
                message = (
                    f"trade account {account.name} has an open incident: it takes no new "
                    "entries until an operator acknowledges or resolves it "
                    "(GET /api/v1/incidents)"
                )
                quantity = notional = None
                verdict_json = {"trail": []}
            else:
                verdict = self.risk.evaluate(
                    intent,
                    account_state(account.portfolio, mode=account.spec.mode, now=now),
                    rules,
                    merge_limits(account.limits, account.group_limits.get(group)),
                    now=now,
                )
                accepted = verdict.accepted
                reason = verdict.reason.value if verdict.reason else None
                message, quantity, notional = verdict.message, verdict.quantity, verdict.notional
                price = verdict.price or price
                verdict_json = verdict.to_json()
        except ExchangeError as e:
            accepted, reason, message = False, e.code, f"the exchange could not be asked: {e}"
            quantity = notional = None
            price, verdict_json = payload.entry, {"trail": []}
        except ValueError as e:
            accepted, reason, message = False, RiskReason.INVALID_INTENT.value, str(e)
            quantity = notional = None
            price, verdict_json = payload.entry, {"trail": []}

        inserted = await self.store.add_intent(
            OrderIntentRow(
                id=intent_id,
                account=account.name,
                trading_group=group,
                decision_id=decision_id,
                correlation_id=trace.correlation_id,
                symbol=payload.symbol,
                action=payload.action.value,
                confidence=payload.confidence,
                status="accepted" if accepted else "rejected",
                reason=reason,
                message=message,
                quantity=quantity,
                price=price,
                notional=notional,
                checks=jsonable(verdict_json.get("trail", [])),
                decision=jsonable(payload.model_dump(mode="json")),
                created_at=datetime.now(UTC),
            )
        )
        if not inserted:
            return
        log.info(
            "intent",
            account=account.name,
            group=group,
            symbol=payload.symbol,
            action=payload.action.value,
            accepted=accepted,
            reason=reason,
        )
        if not accepted or quantity is None:
            await self._publish_order(
                group,
                trace,
                key=f"{intent_id}|denied",
                status=OrderStatus.DENIED,
                reason=reason,
                message=message,
                symbol=payload.symbol,
                side=side,
                account=account.name,
                intent_id=intent_id,
            )
            return
        leg = OrderLeg.ENTRY if intent.is_entry else OrderLeg.EXIT
        if not intent.is_entry:
            await self._cancel_exits(account, payload.symbol)
        order = Order(
            client_order_id=client_order_id(decision_id, leg),
            account=account.name,
            symbol=payload.symbol,
            side=side,
            type=OrderType.MARKET,
            quantity=quantity,
            created_at=now,
            leg=leg,
            decision_id=decision_id,
            correlation_id=trace.correlation_id,
            not_before=intent.candle_close or now,
        )
        if intent.is_entry:
            account.exits[payload.symbol] = (payload.stop_loss, payload.take_profit)
            account.owners[payload.symbol] = OrderMeta(intent_id, group)
        await self._submit(account, order, OrderMeta(intent_id, group))

    # ------------------------------------------------------------------ orders

    async def _submit(self, account: Account, order: Order, meta: OrderMeta) -> None:
        """Persist, send once, apply the answer. Never sends an order twice: the
        order is on disk as `submitted` before the request leaves."""
        cid = order.client_order_id
        account.meta[cid] = meta
        order = transition(order, OrderStatus.SUBMITTED, at=account.now())
        account.orders[cid] = order
        await self.store.save_order(order, meta)
        await self._announce(account, order)
        request = OrderRequest(
            client_order_id=cid,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            quantity=order.quantity,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            not_before=order.not_before,
            parent_id=order.parent_id,
        )
        try:
            async with asyncio.timeout(self.settings.order_timeout):
                report = await call_with_retry(
                    lambda: account.adapter.place_order(request),
                    policy=self.retry,
                    idempotent=False,
                )
        except (TimeoutError, OutcomeUnknown) as e:
            why = "no answer in time" if isinstance(e, TimeoutError) else str(e)
            await self._move(
                account,
                order,
                OrderStatus.AMBIGUOUS,
                f"{why}: not resent; the sync loop looks it up by client order id",
            )
            return
        except ExchangeError as e:
            # Stored before it is announced: whoever hears the rejection finds the
            # intent rejected too.
            if meta.intent_id is not None and order.leg is OrderLeg.ENTRY:
                await self.store.reject_intent(meta.intent_id, e.code, str(e))
            await self._move(account, order, OrderStatus.REJECTED, f"{e.code}: {e}")
            return
        await self._apply(account, order, report)

    async def _move(
        self, account: Account, order: Order, status: OrderStatus, reason: str | None
    ) -> Order:
        if not can_transition(order.status, status):
            return order
        order = transition(order, status, at=account.now(), reason=reason)
        await self._save(account, order)
        await self._announce(account, order)
        return order

    async def _save(self, account: Account, order: Order) -> None:
        cid = order.client_order_id
        if order.is_terminal:
            account.orders.pop(cid, None)
        else:
            account.orders[cid] = order
        await self.store.save_order(order, account.meta.get(cid, OrderMeta(None, None)))

    async def _apply(self, account: Account, order: Order, report: OrderReport) -> Order:
        """Bring `order` to what the exchange reports: fills booked, status moved."""
        booked: list[Booking] = []
        fills = [
            await self._fill_of(account, order, f)
            for f in report.fills
            if f.fill_id not in order.fill_ids
        ]
        if not report.fills and report.filled_quantity > order.filled_quantity:
            synthetic = fill_from_totals(
                order,
                filled_quantity=report.filled_quantity,
                average_price=report.average_price or Decimal(0),
                fees=report.fee,
                at=report.updated_at or account.now(),
                fill_id=f"{order.client_order_id}:{report.filled_quantity}",
            )
            fills = [synthetic] if synthetic is not None else []
        if report.exchange_order_id and not order.exchange_order_id:
            order = replace(order, exchange_order_id=report.exchange_order_id)
        for fill in fills:
            error = account.portfolio.can_apply(fill)
            if error is not None:
                await self._incident(
                    account,
                    "books_disagree",
                    f"a fill of {order.client_order_id} cannot be booked: {error}",
                    {"fill_id": fill.fill_id, "order": order.client_order_id},
                )
                continue
            order = apply_fill(order, fill)
            booking = account.portfolio.apply(fill)
            booked.append(booking)
            trade = booking.closed_trade
            meta = account.meta.get(order.client_order_id, OrderMeta(None, None))
            await self.store.add_fill(
                account.name,
                fill,
                trading_group=meta.trading_group,
                correlation_id=order.correlation_id,
                realized_pnl=trade.pnl if trade else None,
            )
        status = report.status
        if (
            status in _REPORTED_STATUSES
            and status is not order.status
            and can_transition(order.status, status)
        ):
            order = transition(
                order, status, at=report.updated_at or account.now(), reason=report.reason
            )
        await self._save(account, order)
        if booked:
            # Stored before announced: whoever hears the fill finds the position.
            await self._record_position(account, order)
            for booking in booked:
                await self._announce(account, order, booking)
            await self._after_fills(account, order, booked)
        elif status is not OrderStatus.SUBMITTED:
            await self._announce(account, order)
        return order

    async def _fill_of(self, account: Account, order: Order, report: FillReport) -> Fill:
        """The fill to book for an exchange's report of one execution of `order`.

        A buy whose fee the exchange took from the coin bought leaves the account
        less than the fill's quantity, and what is left is rarely on the market's
        amount grid. The books hold the rest rounded down to the grid, so the exit
        (and an OCO) sells exactly what the books hold and the exchange has; the
        coin below the grid (dust) stays at the exchange, counted as fee.
        """
        withheld, fee = Decimal(0), report.fee
        if order.side is OrderSide.BUY and 0 < report.base_fee < report.quantity:
            net = report.quantity - report.base_fee
            try:
                rules = await self._read(account, account.adapter.market_rules, order.symbol)
                kept = round_amount(net, rules)
            except ExchangeError as e:
                # Without the grid the net coin is held as it is: the exit rounds it
                # down and the dust stays in the books; never lose the fill for it.
                log.warning("market_rules_unread", account=account.name, error=str(e))
                kept = net
            if kept <= 0:
                kept = net
            withheld = report.quantity - kept
            if kept != net:
                fee += (net - kept) * report.price
        return Fill(
            fill_id=report.fill_id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=report.quantity,
            price=report.price,
            fee=fee,
            at=report.at,
            liquidity=report.liquidity,
            leg=order.leg,
            withheld=withheld,
        )

    async def _record_position(self, account: Account, order: Order) -> None:
        symbol = order.symbol
        holding = account.portfolio.position(symbol)
        stop, target = account.exits.get(symbol, (None, None))
        meta = account.meta.get(order.client_order_id, OrderMeta(None, None))
        await self.store.save_position(
            account.name,
            symbol,
            holding,
            mark=account.portfolio.price(symbol),
            realized_pnl=account.portfolio.realized_pnl_since(EPOCH, symbol),
            trading_group=meta.trading_group,
            stop_loss=stop if holding else None,
            take_profit=target if holding else None,
        )
        await self._snapshot(account, force=True)

    async def _after_fills(self, account: Account, order: Order, booked: list[Booking]) -> None:
        """Protection follows the position: a flat symbol's stop and target go, a
        filled entry's are placed."""
        symbol = order.symbol
        stop, target = account.exits.get(symbol, (None, None))
        meta = account.meta.get(order.client_order_id, OrderMeta(None, None))
        if account.portfolio.position(symbol) is None:
            account.exits.pop(symbol, None)
            await self._cancel_exits(account, symbol)
            return
        if (
            order.leg is OrderLeg.ENTRY
            and order.status is OrderStatus.FILLED
            and (stop or target)
            and account.adapter.holds_exits(symbol)
        ):
            last = booked[-1].fill
            holding = account.portfolio.position(symbol)
            # What the account holds of the entry: less than it filled when the
            # exchange took its fee in the coin (`_fill_of`).
            quantity = min(order.filled_quantity, holding.quantity) if holding else None
            children = [
                child
                for child in exit_orders(
                    order,
                    stop_loss=stop,
                    take_profit=target,
                    at=last.at,
                    not_before=last.at,
                    quantity=quantity,
                )
                if child.client_order_id not in account.orders
            ]
            if children:
                await self._submit_exits(account, children, meta)

    async def _submit_exits(self, account: Account, legs: list[Order], meta: OrderMeta) -> None:
        """A filled entry's stop-loss and take-profit, held at the exchange as one
        protective pair (`adapter.place_exits`: an OCO order list on Binance). Both
        legs are on disk as `submitted` before the one request leaves."""
        sent = []
        for leg in legs:
            account.meta[leg.client_order_id] = meta
            leg = transition(leg, OrderStatus.SUBMITTED, at=account.now())
            account.orders[leg.client_order_id] = leg
            await self.store.save_order(leg, meta)
            sent.append(leg)
        for leg in sent:
            await self._announce(account, leg)
        await self._send_exits(account, sent)

    async def _send_exits(self, account: Account, legs: list[Order]) -> None:
        """Send stored protective legs in one `place_exits` call and apply the answer.

        Also the way a pair the exchange does not know (a crash before the request
        left) is sent again: the adapter looks the legs up by client order id before
        placing, and a spot venue's pair reserves the whole position, so a second
        pair could not be placed beside the first."""

        def request(leg: OrderLeg) -> OrderRequest | None:
            order = next((o for o in legs if o.leg is leg), None)
            if order is None:
                return None
            return OrderRequest(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                type=order.type,
                quantity=order.quantity,
                stop_price=order.stop_price,
                not_before=order.not_before,
                parent_id=order.parent_id,
            )

        stop, target = request(OrderLeg.STOP_LOSS), request(OrderLeg.TAKE_PROFIT)
        try:
            async with asyncio.timeout(self.settings.order_timeout):
                reports = await call_with_retry(
                    lambda: account.adapter.place_exits(stop, target),
                    policy=self.retry,
                    idempotent=False,
                )
        except (TimeoutError, OutcomeUnknown) as e:
            why = "no answer in time" if isinstance(e, TimeoutError) else str(e)
            for leg in legs:
                await self._move(
                    account,
                    leg,
                    OrderStatus.AMBIGUOUS,
                    f"{why}: the sync loop looks it up by client order id",
                )
            return
        except ExchangeError as e:
            # Placed one by one, a first leg may stand although the second failed.
            for leg in legs:
                await self._settle_unplaced(account, leg, f"{e.code}: {e}")
            return
        by_id = {r.client_order_id: r for r in reports}
        for leg in legs:
            report = by_id.get(leg.client_order_id)
            current = account.orders.get(leg.client_order_id)
            if current is None:
                continue  # ended while the other leg's answer was applied
            if report is not None:
                await self._apply(account, current, report)
            else:
                await self._move(
                    account, current, OrderStatus.REJECTED, "the exchange did not take this leg"
                )

    async def _settle_unplaced(self, account: Account, leg: Order, reason: str) -> None:
        try:
            report = await self._read(
                account, account.adapter.fetch_order, leg.symbol, leg.client_order_id
            )
        except OrderNotFound:
            # Refused: the position is watched instead (`_watch_exits`).
            await self._move(account, leg, OrderStatus.REJECTED, reason)
        except ExchangeError as e:
            log.warning("exit_lookup_failed", order=leg.client_order_id, error=str(e))
            await self._move(
                account, leg, OrderStatus.AMBIGUOUS, f"{reason}; not found out yet: {e}"
            )
        else:
            await self._apply(account, leg, report)

    async def _cancel_exits(self, account: Account, symbol: str) -> None:
        for order in list(account.orders.values()):
            if order.symbol != symbol or order.leg not in (
                OrderLeg.STOP_LOSS,
                OrderLeg.TAKE_PROFIT,
            ):
                continue
            if not order.is_working:
                continue
            try:
                report = await account.adapter.cancel_order(symbol, order.client_order_id)
            except OrderNotFound:
                report = await self._read(
                    account, account.adapter.fetch_order, symbol, order.client_order_id
                )
            except ExchangeError as e:
                log.warning("exit_cancel_failed", order=order.client_order_id, error=str(e))
                continue
            await self._apply(account, order, report)

    # ------------------------------------------------------------------ sync

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_interval)
            for account in list(self.accounts.values()):
                try:
                    async with account.lock:
                        await self._sync_account(account)
                        await self._snapshot(account)
                        await self._check_incidents(account)
                except Exception as e:  # one account's trouble must not stop the others
                    log.error("sync_failed", account=account.name, error=str(e))

    async def sync_now(self) -> None:
        """One sync round of every account (tests, and the CLI's --once)."""
        for account in list(self.accounts.values()):
            async with account.lock:
                await self._sync_account(account)
                await self._check_incidents(account)

    async def _sync_account(self, account: Account) -> None:
        await account.adapter.poll()
        for order in list(account.orders.values()):
            await self._sync_order(account, order)
        await self._watch_exits(account)
        for symbol in list(account.portfolio.positions):
            try:
                price = await account.adapter.last_price(symbol)
            except ExchangeError:
                continue
            account.portfolio.mark(symbol, price)

    async def _sync_order(self, account: Account, order: Order) -> None:
        current = account.orders.get(order.client_order_id)
        if current is None:
            return  # ended since the round began (its pair's other leg filled)
        order = current
        if order.status is OrderStatus.NEW:
            # Written, never sent (a crash in between): it may still be sent, once.
            await self._submit(
                account, order, account.meta.get(order.client_order_id, OrderMeta(None, None))
            )
            return
        try:
            report = await self._read(
                account, account.adapter.fetch_order, order.symbol, order.client_order_id
            )
        except OrderNotFound:
            if (
                order.leg in PROTECTIVE
                and order.status in _UNCONFIRMED
                and account.adapter.holds_exits(order.symbol)
            ):
                await self._resend_exits(account, order)
                return
            age = datetime.now(UTC) - (order.updated_at or order.created_at)
            if order.status in (OrderStatus.SUBMITTED, OrderStatus.AMBIGUOUS) and (
                account.market_clock or age > AMBIGUOUS_GRACE
            ):
                await self._move(
                    account,
                    order,
                    OrderStatus.REJECTED,
                    "the exchange has no order with this client order id: it never arrived",
                )
            elif order.status not in (OrderStatus.SUBMITTED, OrderStatus.AMBIGUOUS):
                await self._incident(
                    account,
                    "order_missing",
                    f"order {order.client_order_id} was {order.status} but the exchange "
                    "does not know it",
                    {"order": order.client_order_id, "status": order.status.value},
                )
            return
        except ExchangeError as e:
            log.warning("order_sync_failed", order=order.client_order_id, error=str(e))
            return
        await self._apply(account, order, report)

    async def _resend_exits(self, account: Account, order: Order) -> None:
        """A protective leg the exchange does not know: its pair never arrived (the
        service stopped between storing and sending it, or the request was lost).
        While the position is open it is sent again, as the pair it belongs to."""
        pair = [
            o
            for o in account.orders.values()
            if o.parent_id == order.parent_id and o.leg in PROTECTIVE and o.status in _UNCONFIRMED
        ]
        if account.portfolio.position(order.symbol) is None:
            for leg in pair:
                await self._move(
                    account, leg, OrderStatus.REJECTED, "never arrived; the position is closed"
                )
            return
        log.info("exits_resent", account=account.name, orders=[o.client_order_id for o in pair])
        await self._send_exits(account, pair)

    async def _watch_exits(self, account: Account) -> None:
        """Stop-loss and take-profit the exchange does not hold (the adapter cannot,
        or the venue refused them): a market exit when the last price crosses one.
        A leg resting at the exchange is not watched; the other one of its pair is
        (OANDA may take a trade's stop-loss and refuse its take-profit), and when it
        fires the resting leg is cancelled first, so the position is sold once."""
        for symbol, (stop, target) in list(account.exits.items()):
            holding = account.portfolio.position(symbol)
            if holding is None:
                continue
            resting = {
                o.leg
                for o in account.orders.values()
                if o.symbol == symbol and o.leg is not OrderLeg.ENTRY
            }
            if OrderLeg.EXIT in resting:
                continue  # a market exit is on its way already
            if OrderLeg.STOP_LOSS in resting:
                stop = None
            if OrderLeg.TAKE_PROFIT in resting:
                target = None
            if stop is None and target is None:
                continue
            try:
                price = await account.adapter.last_price(symbol)
            except ExchangeError:
                continue
            leg = (
                OrderLeg.STOP_LOSS
                if stop is not None and price <= stop
                else OrderLeg.TAKE_PROFIT
                if target is not None and price >= target
                else None
            )
            if leg is None:
                continue
            if resting:
                await self._cancel_exits(account, symbol)
                holding = account.portfolio.position(symbol)
                if holding is None:
                    continue  # the resting leg filled before it could be cancelled
            # One exit per position: its id derives from the position's opening.
            decision = uuid.uuid5(
                INTENT_NAMESPACE, f"{account.name}|{symbol}|{holding.opened_at.isoformat()}"
            )
            order = Order(
                client_order_id=client_order_id(decision, leg),
                account=account.name,
                symbol=symbol,
                side=OrderSide.SELL,
                type=OrderType.MARKET,
                quantity=holding.quantity,
                created_at=account.now(),
                leg=leg,
                decision_id=str(decision),
            )
            await self._submit(account, order, account.owners.get(symbol, OrderMeta(None, None)))

    async def _snapshot(self, account: Account, *, force: bool = False) -> None:
        now = datetime.now(UTC)
        due = account.last_snapshot is None or now - account.last_snapshot >= timedelta(
            seconds=self.settings.snapshot_interval
        )
        if not (force or due):
            return
        account.last_snapshot = now
        snap = account.portfolio.snapshot(account.now() if account.market_clock else now)
        await self.store.add_snapshot(account.name, account.portfolio.currency, snap)
        for symbol, holding in account.portfolio.positions.items():
            stop, target = account.exits.get(symbol, (None, None))
            await self.store.save_position(
                account.name,
                symbol,
                holding,
                mark=account.portfolio.price(symbol),
                realized_pnl=account.portfolio.realized_pnl_since(EPOCH, symbol),
                stop_loss=stop,
                take_profit=target,
            )

    async def _check_incidents(self, account: Account) -> None:
        if account.halted and await self.store.open_incidents(account.name) == 0:
            account.halted = False
            await self._log(
                f"trade account {account.name}: incidents closed, trading resumes",
                code="ACCOUNT_RESUMED",
            )

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self, account: Account) -> int:
        """Compare stored orders and positions with the exchange's; returns how many
        incidents it opened. Orders that moved while the service was down (filled,
        canceled) are simply applied: that is not a mismatch."""
        for order in list(account.orders.values()):
            await self._sync_order(account, order)
        found = 0
        try:
            ours = {o.client_order_id for o in account.orders.values()}
            for report in await self._read(account, account.adapter.open_orders, None):
                if report.client_order_id.startswith("ats") and report.client_order_id not in ours:
                    found += 1
                    await self._incident(
                        account,
                        "unknown_order",
                        f"the exchange has an open order {report.client_order_id} this "
                        "service has no record of",
                        {"order": report.client_order_id, "symbol": report.symbol},
                    )
            symbols = sorted(
                set(account.portfolio.positions)
                | {r.symbol for r in await self.store.positions(account.name) if r.quantity}
            )
            if symbols:
                exact = account.adapter.capabilities.positions
                for report in await account.adapter.positions(symbols):
                    held = account.portfolio.position(report.symbol)
                    expected = held.quantity if held else Decimal(0)
                    # A spot balance may hold more than our trades bought (coins the
                    # owner had): only less than our books is a mismatch there.
                    wrong = report.quantity != expected if exact else report.quantity < expected
                    if wrong:
                        found += 1
                        await self._incident(
                            account,
                            "position_mismatch",
                            f"{report.symbol}: the books hold {expected}, the exchange "
                            f"{report.quantity} (closed or changed by hand?)",
                            {
                                "symbol": report.symbol,
                                "books": str(expected),
                                "exchange": str(report.quantity),
                            },
                        )
        except ExchangeError as e:
            found += 1
            await self._incident(
                account, "reconciliation_failed", f"could not reconcile: {e}", {"error": e.code}
            )
        return found

    async def _incident(
        self, account: Account, kind: str, message: str, details: dict[str, Any]
    ) -> None:
        incident = await self.store.add_incident(account.name, kind, message, details)
        account.halted = True
        log.error("incident", account=account.name, kind=kind, incident=incident, message=message)
        await self._log(
            f"trade account {account.name}: {message}; new entries stop until incident "
            f"{incident} is acknowledged (POST /api/v1/incidents/{incident}/acknowledge)",
            level=LogLevel.ERROR,
            code="EXECUTION_INCIDENT",
            data={"incident": incident, "kind": kind, "account": account.name, **details},
        )

    # ------------------------------------------------------------------ events

    async def _read(self, account: Account, method: Any, *args: Any) -> Any:
        return await call_with_retry(lambda: method(*args), policy=self.retry, idempotent=True)

    async def _announce(
        self, account: Account, order: Order, booking: Booking | None = None
    ) -> None:
        meta = account.meta.get(order.client_order_id, OrderMeta(None, None))
        if meta.trading_group is None:
            return
        trace = Trace(correlation_id=order.correlation_id, causation_id=order.decision_id)
        extra: dict[str, Any] = {"leg": order.leg.value, "fees": str(order.fees)}
        price = order.average_fill_price
        quantity = order.quantity
        status = order.status
        key = f"{account.name}|{order.client_order_id}|{order.status.value}"
        if booking is not None:
            fill = booking.fill
            price, quantity = fill.price, fill.quantity
            key = f"{account.name}|{fill.fill_id}"
            extra["fill_id"] = fill.fill_id
            extra["fee"] = str(fill.fee)
            extra["filled_quantity"] = str(order.filled_quantity)
            position = booking.position
            extra["position"] = {
                "quantity": str(position.quantity if position else 0),
                "average_price": str(position.average_entry_price) if position else None,
            }
            if booking.closed_trade is not None:
                extra["realized_pnl"] = str(booking.closed_trade.pnl)
            extra["equity"] = str(account.portfolio.equity())
        await self._publish_order(
            meta.trading_group,
            trace,
            key=key,
            status=status,
            reason=order.reason,
            symbol=order.symbol,
            side=order.side,
            account=account.name,
            intent_id=meta.intent_id,
            client_order_id=order.client_order_id,
            order_id=order.exchange_order_id,
            quantity=quantity,
            price=price,
            **extra,
        )

    async def _publish_order(
        self,
        group: str,
        trace: Trace,
        *,
        key: str,
        status: OrderStatus,
        reason: str | None,
        symbol: str | None,
        side: OrderSide | None,
        account: str | None = None,
        message: str | None = None,
        **fields: Any,
    ) -> None:
        payload: dict[str, Any] = {
            "trading_group": group,
            "status": status.value,
            "reason": reason,
            "symbol": symbol,
            "side": side.value if side else None,
            "trade_account": account,
            "message": message,
            **fields,
        }
        payload = {
            k: (str(v) if isinstance(v, Decimal) else v)
            for k, v in payload.items()
            if v is not None
        }
        title = f"{status.value} {side.value if side else ''} {symbol or ''}".strip()
        event_id = uuid.uuid5(ORDER_EVENT_NAMESPACE, key)
        for _ in range(20):
            try:
                await self.client.publish(
                    Category.ORDER, payload, id=event_id, trace=trace, title=title
                )
                return
            except (AckTimeout, Unavailable) as e:
                log.warning("order_event_retry", event=str(event_id), error=repr(e))
        log.error("order_event_dropped", event=str(event_id), status=status.value)

    async def _log(
        self,
        message: str,
        *,
        level: LogLevel = LogLevel.INFO,
        code: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        try:
            await self.client.log(message, level=level, code=code, data=data)
        except (AckTimeout, Unavailable) as e:
            log.warning("log_not_sent", code=code, error=repr(e))


def _side(action: Action) -> OrderSide:
    return OrderSide.BUY if action is Action.BUY else OrderSide.SELL


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
