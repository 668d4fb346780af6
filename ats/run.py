"""`ats run`: the whole system on one machine, as separate processes.

The supervisor starts the gateway, provisions the demo configuration through the
REST API (as an operator would), starts each service with its token, prints the
signals, decisions and orders as they are stored, and stops everything on Ctrl-C or
SIGTERM. Each service's log goes to ATS_DATA_DIR/logs/<name>.log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

ATS = str(Path(sys.executable).with_name("ats"))
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


@dataclass(frozen=True)
class DemoTrigger:
    name: str
    kind: str
    symbol: str
    csv: str
    params: dict[str, Any] = field(default_factory=dict)


#: Replayed from the shipped data at 3000x: ten 5m candles a second, so the SMA cross
#: fires every few seconds and the whole data set takes about ten minutes.
DEMO_TRIGGERS = (
    DemoTrigger("rsi-eth", "rsi", "ETH/BTC", "ETH-BTC_5m.csv", {"length": 14}),
    DemoTrigger("macross-ltc", "ma_cross", "LTC/BTC", "LTC-BTC_5m.csv", {"fast": 10, "slow": 30}),
)
DEMO_GROUP = "demo-momentum"
REPLAY_SPEED = 3000.0


@dataclass(frozen=True)
class DemoGroup:
    name: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        feeds = {t.symbol: f"csv:{DATA / t.csv}" for t in DEMO_TRIGGERS}
        return {"strategy": self.strategy, "params": self.params, "feeds": feeds}


#: Algorithmic groups subscribed to every demo trigger; each decides with its strategy.
DEMO_GROUPS = (
    DemoGroup(DEMO_GROUP, "sma_cross", {"fast": 10, "slow": 30}),
    DemoGroup(
        "demo-ensemble",
        "ensemble",
        {
            "members": [
                {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}},
                {"strategy": "rsi_reversal"},
                {"strategy": "breakout"},
            ],
            "min_confidence": 0.3,
            "cooldown_minutes": 30,
        },
    ),
)


#: The LLM demo group: a team of LLM agents on the SMA-cross signals of LTC/BTC. It
#: starts only when an endpoint is configured (ATS_LLM_BASE_URL and ATS_LLM_MODEL):
#: offline by default, and never spending without being asked to.
DEMO_LLM_GROUP = "demo-llm"
DEMO_LLM_TRIGGER = "macross-ltc"


def demo_llm_config() -> dict[str, Any]:
    """One debate round, a single risk manager, and a small daily budget: the replay
    raises signals far faster than a team can discuss them, and the budget, not the
    data, should end the demo's spending."""
    return {
        "feeds": {t.symbol: f"csv:{DATA / t.csv}" for t in DEMO_TRIGGERS},
        "debate_rounds": 1,
        "risk_mode": "single",
        "budgets": {"daily_tokens": 200_000, "daily_cost": "0.50"},
    }


def llm_demo_skipped() -> str | None:
    """Why the LLM demo group does not start (from the ATS_LLM_* environment), or
    None when it does."""
    from shared.config import LLMSettings

    settings = LLMSettings()
    if not settings.llm_base_url:
        return "set ATS_LLM_BASE_URL (and ATS_LLM_MODEL) to an OpenAI-compatible endpoint"
    if not settings.llm_model:
        return "set ATS_LLM_MODEL to a model at ATS_LLM_BASE_URL"
    return None


#: The execution service that trades the demo groups' decisions on a paper account.
DEMO_EXECUTION = "demo-execution"
#: Each run trades on a fresh paper account named `demo-paper-<id epoch>`.
DEMO_ACCOUNT_PREFIX = "demo-paper-"


def demo_account_config() -> dict[str, Any]:
    """The demo paper account: 1 BTC, the triggers' candles as its market data.

    A fixed 0.05 BTC per entry, at most one position per symbol and two in all, so
    the groups' decisions become a few meaningful orders (and some refusals) rather
    than the whole balance on the first signal. Its csv feeds put the account on the
    market clock: it fills each order at the open of the candle after the decision's.
    """
    return {
        "currency": "BTC",
        "balances": {"BTC": "1"},
        "feeds": {t.symbol: f"csv:{DATA / t.csv}" for t in DEMO_TRIGGERS},
        "markets": {
            t.symbol: {"amount_step": "0.001", "min_notional": "0.0001"} for t in DEMO_TRIGGERS
        },
        "fill_model": {"slippage_bps": "5", "taker_fee": "0.001"},
        "risk": {
            "sizing": {"method": "fixed_notional", "notional": "0.05"},
            "max_open_positions": 2,
            "max_positions_per_symbol": 1,
        },
    }


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    critical: bool = False  # the system cannot run without it


class Supervisor:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        data_dir: Path,
        api_key: str,
        console: Console,
        speed: float = REPLAY_SPEED,
        llm: bool | None = None,
    ) -> None:
        self.base = f"http://{host}:{port}"
        self.ws_url = f"ws://{host}:{port}/ws/events"
        self.host, self.port = host, port
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.api_key = api_key
        self.console = console
        self.speed = speed
        # Whether the LLM demo group runs; by default, when an endpoint is configured.
        self.llm = llm if llm is not None else llm_demo_skipped() is None
        self.children: list[Child] = []
        self.account = ""  # this run's paper account, named once provisioned
        self._candles: dict[str, str] = {}  # decision id -> its candle, for order lines
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ processes

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_TOKEN")}
        env.update(
            ATS_DATA_DIR=str(self.data_dir),
            ATS_GATEWAY_URL=self.ws_url,
            ATS_LOG_JSON="true",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    async def _spawn(self, child: Child) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{child.name}.log").open("ab")
        try:
            child.proc = await asyncio.create_subprocess_exec(
                *child.argv, env=child.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            log.close()
        self.children.append(child)

    async def stop_children(self) -> None:
        for child in reversed(self.children):  # services first, the gateway last
            if child.proc is not None and child.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(child.proc.wait(), 15)
                except TimeoutError:
                    child.proc.kill()
                    await child.proc.wait()

    # ------------------------------------------------------------------ steps

    async def start_gateway(self) -> None:
        child = Child(
            "gateway",
            [ATS, "gateway", "--host", self.host, "--port", str(self.port)],
            self._env(ATS_API_KEY=self.api_key),
            critical=True,
        )
        await self._spawn(child)
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as http:
            for _ in range(300):
                if child.proc is not None and child.proc.returncode is not None:
                    raise RuntimeError(
                        f"the gateway exited ({child.proc.returncode}); "
                        f"see {self.logs / 'gateway.log'}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the gateway was not ready after 30 s; see {self.logs / 'gateway.log'}")

    async def provision(self, http: httpx.AsyncClient) -> dict[str, str]:
        """Create (or find) the demo triggers, groups, paper account and execution
        service; return fresh tokens for each service, by process name."""
        tokens: dict[str, str] = {}
        # Every run replays the same shipped candles: a new id epoch makes them new
        # signals and decisions instead of duplicates of the previous run's.
        epoch = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        for t in DEMO_TRIGGERS:
            config = {
                "kind": t.kind,
                "symbol": t.symbol,
                "timeframe": "5m",
                "params": t.params,
                "id_epoch": epoch,
            }
            tokens[t.name] = await _create_or_rotate(
                http, "triggers", {"name": t.name, "config": config}
            )
        for g in DEMO_GROUPS:
            tokens[g.name] = await _create_or_rotate(
                http,
                "trading-groups",
                {
                    "name": g.name,
                    "triggers": [t.name for t in DEMO_TRIGGERS],
                    "config": {**g.config(), "id_epoch": epoch},
                },
            )
        await self._provision_llm_group(http, epoch, tokens)
        tokens[DEMO_EXECUTION] = await self._provision_account(http, epoch)
        return tokens

    async def _provision_llm_group(
        self, http: httpx.AsyncClient, epoch: str, tokens: dict[str, str]
    ) -> None:
        """Create the LLM demo group afresh when it runs; delete it when it does not.

        Afresh, because a new group's replay starts at the newest event: an LLM group
        re-created each run discusses this run's signals, not a backlog of earlier
        runs' (which would be paid for). Its discussions and calls stay in the tables.
        """
        gone = await http.delete(f"/api/v1/trading-groups/{DEMO_LLM_GROUP}")
        if gone.status_code not in (204, 404):
            raise RuntimeError(f"deleting trading group {DEMO_LLM_GROUP!r} failed: {gone.text}")
        if not self.llm:
            return
        tokens[DEMO_LLM_GROUP] = await _create_or_rotate(
            http,
            "trading-groups",
            {
                "name": DEMO_LLM_GROUP,
                "kind": "llm",
                "triggers": [DEMO_LLM_TRIGGER],
                "config": {**demo_llm_config(), "id_epoch": epoch},
            },
        )

    def group_names(self) -> list[str]:
        """The demo groups this run starts (and binds to its paper account)."""
        return [g.name for g in DEMO_GROUPS] + ([DEMO_LLM_GROUP] if self.llm else [])

    async def _provision_account(self, http: httpx.AsyncClient, epoch: str) -> str:
        """A fresh paper account for this run, served by the demo execution service;
        return the service's token.

        The replay starts again from the first candle, and a paper account's books
        and market clock continue from its last fill: the previous run's account would
        see time go backwards. So each run trades on a new `demo-paper-<epoch>`, and
        the previous runs' demo accounts are deleted so that only this one is bound
        to the groups. Their orders, fills and positions stay in the tables under
        their old names (GET /api/v1/orders?account=...), as a real account's history
        would after it is closed.
        """
        account = f"{DEMO_ACCOUNT_PREFIX}{epoch}"
        r = await http.post(
            "/api/v1/trade-accounts",
            json={
                "name": account,
                "exchange": "paper",
                "mode": "paper",
                "config": demo_account_config(),
                "trading_groups": self.group_names(),
            },
        )
        if r.status_code != 201 and r.status_code != 409:  # 409: a restart within a second
            raise RuntimeError(f"provisioning trade account {account!r} failed: {r.text}")
        # Bind the service to the new account first: it then serves no old account,
        # and deleting those cannot leave it serving nothing in between.
        token = await _create_or_rotate(
            http, "execution-services", {"name": DEMO_EXECUTION, "trade_accounts": [account]}
        )
        listed = await http.get("/api/v1/trade-accounts")
        listed.raise_for_status()
        for old in listed.json():
            name = old["name"]
            if name.startswith(DEMO_ACCOUNT_PREFIX) and name != account:
                gone = await http.delete(f"/api/v1/trade-accounts/{name}")
                if gone.status_code not in (204, 404):
                    raise RuntimeError(f"deleting trade account {name!r} failed: {gone.text}")
                # Its paper exchange (balances, orders) is of no use without it.
                (self.data_dir / "paper" / f"{name}.json").unlink(missing_ok=True)
        self.account = account
        return token

    async def start_execution(self, tokens: dict[str, str]) -> None:
        # Started before the groups so it is connected when their first decisions
        # arrive, and (stopped in reverse order) stopped after them.
        await self._spawn(
            Child(
                DEMO_EXECUTION,
                [ATS, "execution"],
                self._env(ATS_EXECUTION_TOKEN=tokens[DEMO_EXECUTION]),
            )
        )

    async def start_groups(self, tokens: dict[str, str]) -> None:
        for g in DEMO_GROUPS:
            # Strategy, params and feeds come from the group's REST config.
            argv = [ATS, "group", "algo"]
            await self._spawn(
                Child(g.name, argv, self._env(ATS_TRADING_GROUP_TOKEN=tokens[g.name]))
            )
        if self.llm:
            # The team, budgets and feeds come from its REST config; the endpoint and
            # models from ATS_LLM_*, which the environment passes on.
            env = self._env(ATS_TRADING_GROUP_TOKEN=tokens[DEMO_LLM_GROUP])
            await self._spawn(Child(DEMO_LLM_GROUP, [ATS, "group", "llm"], env))

    async def start_triggers(self, tokens: dict[str, str]) -> None:
        for t in DEMO_TRIGGERS:
            argv = [
                ATS, "trigger", t.kind,
                "--symbol", t.symbol,
                "--timeframe", "5m",
                "--feed", f"csv:{DATA / t.csv}",
                "--params", _json(t.params),
                "--speed", f"{self.speed:g}",
            ]  # fmt: skip
            await self._spawn(Child(t.name, argv, self._env(ATS_TRIGGER_TOKEN=tokens[t.name])))

    async def watch(self, http: httpx.AsyncClient) -> None:
        """Print each stored event (signals, decisions, orders) until asked to stop or
        the gateway dies."""
        after = 0
        first = await http.get("/api/v1/events", params={"order": "desc", "limit": 1})
        if first.status_code == 200 and first.json()["items"]:
            after = first.json()["items"][0]["seq"]
        while not self._stop.is_set():
            gateway = self.children[0].proc
            if gateway is not None and gateway.returncode is not None:
                raise RuntimeError(
                    f"the gateway exited ({gateway.returncode}); see {self.logs / 'gateway.log'}"
                )
            with contextlib.suppress(httpx.HTTPError):
                r = await http.get("/api/v1/events", params={"after": after, "limit": 200})
                if r.status_code == 200:
                    for e in r.json()["items"]:
                        after = e["seq"]
                        self._show(e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    def _show(self, e: dict[str, Any]) -> None:
        p = e.get("payload", {})
        title = e.get("title", "")
        when = p.get("candle_time") or e.get("ts", "")
        if e["category"] == "decision" and p.get("candle_time"):
            self._candles[e["id"]] = p["candle_time"]
        elif e["category"] == "order":
            if p.get("status") == "submitted":
                return  # its fill or refusal follows at once: one line per order
            title = _order_line(p)
            # On the market clock an order belongs to its decision's candle, not to
            # the wall-clock moment the replay reached it.
            cause = str((e.get("trace") or {}).get("causation_id"))
            when = self._candles.get(cause, when)
        when = str(when)[:16].replace("T", " ")
        self.console.print(
            f"[dim]{e['seq']:>6}[/] {e['category']:<8} {e['source']:<24} {when}  {title}",
            highlight=False,
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.start_gateway()
            headers = {"Authorization": f"Bearer {self.api_key}"}
            async with httpx.AsyncClient(base_url=self.base, headers=headers, timeout=10) as http:
                tokens = await self.provision(http)
                await self.start_execution(tokens)
                await self.start_groups(tokens)
                await self.start_triggers(tokens)
                names = [DEMO_EXECUTION, *self.group_names()] + [t.name for t in DEMO_TRIGGERS]
                self.console.print(
                    f"running: gateway, {', '.join(names)} "
                    f"(logs in {self.logs}); Ctrl-C stops everything"
                )
                if self.llm:
                    self.console.print(
                        f"llm      {DEMO_LLM_GROUP} discusses the {DEMO_LLM_TRIGGER} signals "
                        "(GET /api/v1/logs?code=TRADING_GROUP_DISCUSSION_LOG)",
                        highlight=False,
                    )
                else:
                    self.console.print(
                        f"llm      {DEMO_LLM_GROUP} skipped: {llm_demo_skipped()}",
                        highlight=False,
                    )
                self.console.print(
                    f"trading  on the paper account {self.account} "
                    f"(GET /api/v1/orders, /api/v1/positions)",
                    highlight=False,
                )
                self.console.rule()
                await self.watch(http)
        finally:
            await self.stop_children()


async def _create_or_rotate(http: httpx.AsyncClient, resource: str, body: dict[str, Any]) -> str:
    r = await http.post(f"/api/v1/{resource}", json=body)
    if r.status_code == 201:
        token: str = r.json()["token"]
        return token
    if r.status_code == 409:
        # It exists from an earlier run: bring its settings up to date, and issue a new
        # token since tokens are shown once.
        update = {k: v for k, v in body.items() if k != "name"}
        if update:
            (await http.patch(f"/api/v1/{resource}/{body['name']}", json=update)).raise_for_status()
        r = await http.post(f"/api/v1/{resource}/{body['name']}/token")
        r.raise_for_status()
        token = r.json()["token"]
        return token
    raise RuntimeError(f"provisioning {resource} {body['name']!r} failed: {r.status_code} {r.text}")


def _order_line(p: dict[str, Any]) -> str:
    """One line for an order event: what happened, to what, and why or at what price.

    `filled buy 0.514 ETH/BTC @ 0.0972486 (position 0.514) for demo-ensemble`,
    `denied buy LTC/BTC: max_positions_per_symbol for demo-momentum`.
    """
    status, side, symbol = p.get("status", "?"), p.get("side", ""), p.get("symbol", "")
    group = p.get("trading_group", "")
    if p.get("fill_id"):
        position = (p.get("position") or {}).get("quantity")
        notes = [f"position {_short(position)}"] if position is not None else []
        if p.get("realized_pnl") is not None:
            notes.append(f"pnl {_short(p['realized_pnl'])}")
        extra = f" ({', '.join(notes)})" if notes else ""
        quantity, price = _short(p.get("quantity")), _short(p.get("price"))
        return f"{status} {side} {quantity} {symbol} @ {price}{extra} for {group}"
    why = p.get("reason") or p.get("message") or ""
    return f"{status} {side} {symbol}: {why} for {group}"


def _short(value: Any) -> str:
    """A decimal string for reading: at most 8 places (a satoshi), no trailing zeros."""
    try:
        number = Decimal(str(value)).quantize(Decimal("1e-8"))
    except (InvalidOperation, ValueError):
        return str(value)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
