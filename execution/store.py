"""Execution's tables: intents, orders, fills, positions, incidents, equity.

Each write is its own short transaction, committed before the service tells anyone
(an `order` event) or asks the exchange, so what was announced is on disk and an
order is on disk before it is sent: a crash between the two leaves a `submitted`
order the reconciliation looks up by its client order id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from shared.db.models import (
    EquitySnapshotRow,
    FillRow,
    IncidentRow,
    OrderIntentRow,
    OrderRow,
    PositionRow,
    TradeAccountRow,
)
from shared.kernel.orders import (
    Fill,
    Liquidity,
    Order,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
)
from shared.kernel.portfolio import EquitySnapshot, Holding

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class OrderMeta:
    """What the service knows of an order beyond the kernel's `Order`."""

    intent_id: str | None
    trading_group: str | None


@dataclass(frozen=True, slots=True)
class StoredFill:
    fill: Fill
    trading_group: str | None


class ExecutionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    # ------------------------------------------------------------------ credentials

    async def sealed_credentials(self, account: str) -> bytes | None:
        async with self.sessions() as s:
            return await s.scalar(
                select(TradeAccountRow.credentials_encrypted).where(TradeAccountRow.name == account)
            )

    # ------------------------------------------------------------------ intents

    async def intent(self, account: str, decision_id: str) -> OrderIntentRow | None:
        async with self.sessions() as s:
            return await s.scalar(
                select(OrderIntentRow).where(
                    OrderIntentRow.account == account, OrderIntentRow.decision_id == decision_id
                )
            )

    async def add_intent(self, row: OrderIntentRow) -> bool:
        """Insert; False when the (account, decision) already has one (a re-delivery
        that raced the first)."""
        async with self.sessions() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                return False
        return True

    async def reject_intent(self, intent_id: str, reason: str, message: str) -> None:
        """An accepted intent whose order the exchange refused (insufficient funds)."""
        async with self.sessions.begin() as s:
            row = await s.get(OrderIntentRow, intent_id)
            if row is not None:
                row.status, row.reason, row.message = "rejected", reason, message

    # ------------------------------------------------------------------ orders

    async def save_order(self, order: Order, meta: OrderMeta) -> None:
        async with self.sessions.begin() as s:
            row = await s.scalar(
                select(OrderRow).where(
                    OrderRow.account == order.account,
                    OrderRow.client_order_id == order.client_order_id,
                )
            )
            if row is None:
                row = OrderRow(
                    account=order.account,
                    client_order_id=order.client_order_id,
                    intent_id=meta.intent_id,
                    trading_group=meta.trading_group,
                    created_at=order.created_at,
                )
                s.add(row)
            row.symbol, row.side, row.type = order.symbol, order.side.value, order.type.value
            row.leg, row.status = order.leg.value, order.status.value
            row.quantity, row.filled_quantity = order.quantity, order.filled_quantity
            row.average_price, row.fees = order.average_fill_price, order.fees
            row.limit_price, row.stop_price = order.limit_price, order.stop_price
            row.exchange_order_id, row.reason = order.exchange_order_id, order.reason
            row.decision_id, row.correlation_id = order.decision_id, order.correlation_id
            row.parent_id, row.not_before = order.parent_id, order.not_before
            row.updated_at = order.updated_at or order.created_at

    async def open_orders(self, account: str) -> list[tuple[Order, OrderMeta]]:
        """Orders not in a terminal state (including `new`: a crash before sending)."""
        terminal = ("denied", "rejected", "filled", "canceled", "expired")
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    select(OrderRow)
                    .where(OrderRow.account == account, OrderRow.status.not_in(terminal))
                    .order_by(OrderRow.id)
                )
            ).all()
            fills = await self._fill_ids(s, account, [r.client_order_id for r in rows])
        return [(_order(r, fills.get(r.client_order_id, ())), _meta(r)) for r in rows]

    async def _fill_ids(self, s: Any, account: str, cids: Sequence[str]) -> dict[str, list[str]]:
        if not cids:
            return {}
        rows = await s.execute(
            select(FillRow.client_order_id, FillRow.fill_id).where(
                FillRow.account == account, FillRow.client_order_id.in_(cids)
            )
        )
        out: dict[str, list[str]] = {}
        for cid, fid in rows:
            out.setdefault(cid, []).append(fid)
        return out

    # ------------------------------------------------------------------ fills

    async def add_fill(
        self,
        account: str,
        fill: Fill,
        *,
        trading_group: str | None,
        correlation_id: str | None,
        realized_pnl: Decimal | None,
    ) -> None:
        async with self.sessions() as s:
            s.add(
                FillRow(
                    account=account,
                    fill_id=fill.fill_id,
                    client_order_id=fill.client_order_id,
                    trading_group=trading_group,
                    correlation_id=correlation_id,
                    symbol=fill.symbol,
                    side=fill.side.value,
                    leg=fill.leg.value if fill.leg else None,
                    quantity=fill.quantity,
                    price=fill.price,
                    fee=fill.fee,
                    liquidity=fill.liquidity.value if fill.liquidity else None,
                    realized_pnl=realized_pnl,
                    at=fill.at,
                    withheld=fill.withheld or None,
                )
            )
            # Booked already: a fill reported twice is booked once.
            with contextlib.suppress(IntegrityError):
                await s.commit()

    async def fills(self, account: str) -> list[StoredFill]:
        """Every fill of the account, in booking order: the books are rebuilt from them."""
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    select(FillRow).where(FillRow.account == account).order_by(FillRow.id)
                )
            ).all()
        return [StoredFill(_fill(r), r.trading_group) for r in rows]

    # ------------------------------------------------------------------ positions

    async def save_position(
        self,
        account: str,
        symbol: str,
        holding: Holding | None,
        *,
        mark: Decimal | None,
        realized_pnl: Decimal,
        trading_group: str | None = None,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        keep_exits: bool = True,
    ) -> None:
        async with self.sessions.begin() as s:
            row = await s.get(PositionRow, (account, symbol))
            if row is None:
                row = PositionRow(account=account, symbol=symbol, realized_pnl=ZERO)
                s.add(row)
            row.quantity = holding.quantity if holding else ZERO
            row.average_price = holding.average_entry_price if holding else None
            row.opened_at = holding.opened_at if holding else None
            row.mark_price = mark
            row.unrealized_pnl = holding.unrealized_pnl(mark) if holding and mark else ZERO
            row.realized_pnl = realized_pnl
            if trading_group is not None:
                row.trading_group = trading_group
            if holding is None:
                row.stop_loss = row.take_profit = None
            elif not keep_exits or stop_loss is not None or take_profit is not None:
                row.stop_loss, row.take_profit = stop_loss, take_profit
            row.updated_at = datetime.now(UTC)

    async def positions(self, account: str) -> list[PositionRow]:
        async with self.sessions() as s:
            return list(
                (await s.scalars(select(PositionRow).where(PositionRow.account == account))).all()
            )

    # ------------------------------------------------------------------ incidents

    async def add_incident(
        self, account: str, kind: str, message: str, details: dict[str, Any]
    ) -> int:
        async with self.sessions.begin() as s:
            row = IncidentRow(account=account, kind=kind, message=message, details=details)
            s.add(row)
            await s.flush()
            return row.id

    async def open_incidents(self, account: str) -> int:
        async with self.sessions() as s:
            count = await s.scalar(
                select(func.count())
                .select_from(IncidentRow)
                .where(IncidentRow.account == account, IncidentRow.status == "open")
            )
        return int(count or 0)

    # ------------------------------------------------------------------ equity

    async def add_snapshot(self, account: str, currency: str, snap: EquitySnapshot) -> None:
        async with self.sessions.begin() as s:
            s.add(
                EquitySnapshotRow(
                    account=account,
                    at=snap.at,
                    currency=currency,
                    equity=snap.equity,
                    cash=snap.cash,
                    positions_value=snap.positions_value,
                    realized_pnl=snap.realized_pnl,
                    unrealized_pnl=snap.unrealized_pnl,
                    fees=snap.fees_paid,
                    drawdown=snap.drawdown,
                )
            )

    async def first_cash(self, account: str) -> Decimal | None:
        """Cash in the account's first snapshot, taken when the service first served
        it: the books' starting capital on an exchange."""
        async with self.sessions() as s:
            return await s.scalar(
                select(EquitySnapshotRow.cash)
                .where(EquitySnapshotRow.account == account)
                .order_by(EquitySnapshotRow.id)
                .limit(1)
            )

    async def peak_equity(self, account: str) -> Decimal | None:
        # Not max() in SQL: SQLite keeps Money as text, whose max is not a number's.
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    select(EquitySnapshotRow.equity).where(EquitySnapshotRow.account == account)
                )
            ).all()
        return max(rows, default=None)


def _order(row: OrderRow, fill_ids: Sequence[str]) -> Order:
    order = Order(
        client_order_id=row.client_order_id,
        account=row.account,
        symbol=row.symbol,
        side=OrderSide(row.side),
        type=OrderType(row.type),
        quantity=row.quantity,
        created_at=row.created_at,
        limit_price=row.limit_price,
        stop_price=row.stop_price,
        status=OrderStatus(row.status),
        filled_quantity=row.filled_quantity,
        average_fill_price=row.average_price,
        fees=row.fees,
        updated_at=row.updated_at,
        leg=OrderLeg(row.leg),
        decision_id=row.decision_id,
        correlation_id=row.correlation_id,
        parent_id=row.parent_id,
        exchange_order_id=row.exchange_order_id,
        reason=row.reason,
        not_before=row.not_before,
        fill_ids=frozenset(fill_ids),
    )
    return order


def _meta(row: OrderRow) -> OrderMeta:
    return OrderMeta(row.intent_id, row.trading_group)


def _fill(row: FillRow) -> Fill:
    return Fill(
        fill_id=row.fill_id,
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=OrderSide(row.side),
        quantity=row.quantity,
        price=row.price,
        fee=row.fee,
        at=row.at,
        liquidity=Liquidity(row.liquidity) if row.liquidity else None,
        leg=OrderLeg(row.leg) if row.leg else None,
        withheld=row.withheld or Decimal(0),
    )
