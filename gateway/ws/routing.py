"""Who receives what: a snapshot of the configuration, rebuilt whenever it changes.

signal   (trigger T)        -> the groups subscribed to T, narrowed by `targets`
decision (group G)          -> the execution services of the accounts bound to G
order    (execution E)      -> `payload.trading_group`, if bound to one of E's accounts
config_update (the gateway) -> the one client it is for
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import crud
from shared.db.models import ExecutionServiceRow, TradeAccountRow, TradingGroupRow, TriggerRow
from shared.events import Role


def principal(role: Role | str, name: str) -> str:
    return f"{Role(role).value}:{name}"


class Forbidden(Exception):
    """The sender may not send this event (its role, or an unbound recipient)."""


@dataclass(frozen=True, slots=True)
class ClientView:
    """What a client is told on connect: its subscriptions and configuration."""

    subscriptions: list[str]
    config: dict[str, Any]


@dataclass(slots=True)
class RoutingTable:
    trigger_groups: dict[str, list[str]] = field(default_factory=dict)
    group_services: dict[str, list[str]] = field(default_factory=dict)
    service_groups: dict[str, set[str]] = field(default_factory=dict)
    views: dict[str, ClientView] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)

    def recipients(
        self, role: Role, name: str, category: str, targets: list[str], payload: Any
    ) -> tuple[str, ...]:
        if category == "signal" and role is Role.TRIGGER:
            groups = self.trigger_groups.get(name, [])
            if targets:
                wanted = set(targets)
                groups = [g for g in groups if g in wanted]
            return tuple(principal(Role.TRADING_GROUP, g) for g in groups)
        if category == "decision" and role is Role.TRADING_GROUP:
            return tuple(principal(Role.EXECUTION, s) for s in self.group_services.get(name, []))
        if category == "order" and role is Role.EXECUTION:
            group = payload.trading_group
            if group not in self.service_groups.get(name, set()):
                raise Forbidden(
                    f"trading group {group!r} is not bound to any trade account "
                    f"served by execution service {name!r}"
                )
            return (principal(Role.TRADING_GROUP, group),)
        raise Forbidden(f"a {role.value} may not publish {category!r} events")

    def view(self, key: str) -> ClientView:
        return self.views.get(key, ClientView(subscriptions=[], config={}))


async def load_routing(session: AsyncSession) -> RoutingTable:
    """Build the table from the database in a handful of queries."""
    table = RoutingTable()
    triggers = (await session.scalars(select(TriggerRow).order_by(TriggerRow.name))).all()
    groups = (await session.scalars(select(TradingGroupRow).order_by(TradingGroupRow.name))).all()
    accounts = (await session.scalars(select(TradeAccountRow).order_by(TradeAccountRow.name))).all()
    services = (
        await session.scalars(select(ExecutionServiceRow).order_by(ExecutionServiceRow.name))
    ).all()

    account_service: dict[str, str] = {}
    for s in services:
        for a in s.trade_accounts:
            account_service[a.name] = s.name
    group_accounts: dict[str, list[str]] = {}
    for a in accounts:
        for g in a.trading_groups:
            group_accounts.setdefault(g.name, []).append(a.name)

    for t in triggers:
        if not t.enabled:
            table.disabled.add(principal(Role.TRIGGER, t.name))
        table.trigger_groups[t.name] = []
        table.views[principal(Role.TRIGGER, t.name)] = ClientView(
            subscriptions=[],
            config={"name": t.name, "description": t.description, "config": t.config},
        )
    rules_cache: dict[str, dict[str, Any]] = {}
    for g in groups:
        if not g.enabled:
            table.disabled.add(principal(Role.TRADING_GROUP, g.name))
            continue
        for t in g.triggers:
            table.trigger_groups.setdefault(t.name, []).append(g.name)
        services_of_group = sorted(
            {account_service[a] for a in group_accounts.get(g.name, []) if a in account_service}
        )
        table.group_services[g.name] = services_of_group
        table.views[principal(Role.TRADING_GROUP, g.name)] = ClientView(
            subscriptions=[t.name for t in g.triggers],
            config={
                "name": g.name,
                "kind": g.kind,
                "description": g.description,
                "trade_accounts": group_accounts.get(g.name, []),
                "config": await _resolve_rules(session, g.config, rules_cache),
            },
        )
    for s in services:
        served_groups = {g.name for a in s.trade_accounts for g in a.trading_groups}
        table.service_groups[s.name] = served_groups
        table.views[principal(Role.EXECUTION, s.name)] = ClientView(
            subscriptions=sorted(served_groups),
            config={
                "name": s.name,
                "description": s.description,
                "config": s.config,
                "trade_accounts": [
                    {
                        "name": a.name,
                        "exchange": a.exchange,
                        "mode": a.mode,
                        "config": a.config,
                        "trading_groups": [g.name for g in a.trading_groups],
                        # Each group's own risk limits (its config's `risk`), merged
                        # with the account's by execution: the stricter one wins.
                        "group_limits": {
                            g.name: g.config.get("risk") or {} for g in a.trading_groups
                        },
                    }
                    for a in s.trade_accounts
                ],
            },
        )
    return table


async def _resolve_rules(
    session: AsyncSession, config: dict[str, Any], cache: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A group configured with `"strategy_ref": NAME` runs the latest version of the
    stored JSON-rule strategy NAME: its rules are put in the group's config here, so a
    new version reaches the running group as a config_update."""
    ref = config.get("strategy_ref")
    if not isinstance(ref, str):
        return config
    if ref not in cache:
        try:
            version, rules = await crud.latest_strategy(session=session, name=ref)
        except crud.NotFound as e:
            cache[ref] = {"strategy_error": str(e)}
        else:
            cache[ref] = {
                "strategy": "json_rule",
                "params": {"rules": rules, "name": ref, "version": version},
            }
    return {**config, **cache[ref]}
