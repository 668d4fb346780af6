"""`ats run`: the whole system on one machine, as separate processes.

The supervisor starts the gateway, provisions the demo configuration through the
REST API (as an operator would), starts each service with its token, prints the
signals as they are stored, and stops everything on Ctrl-C or SIGTERM. Each
service's log goes to ATS_DATA_DIR/logs/<name>.log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    ) -> None:
        self.base = f"http://{host}:{port}"
        self.ws_url = f"ws://{host}:{port}/ws/events"
        self.host, self.port = host, port
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.api_key = api_key
        self.console = console
        self.speed = speed
        self.children: list[Child] = []
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
        """Create (or find) the demo triggers and group; return fresh trigger tokens."""
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
        return tokens

    async def start_groups(self, tokens: dict[str, str]) -> None:
        for g in DEMO_GROUPS:
            # Strategy, params and feeds come from the group's REST config.
            argv = [ATS, "group", "algo"]
            await self._spawn(
                Child(g.name, argv, self._env(ATS_TRADING_GROUP_TOKEN=tokens[g.name]))
            )

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
        """Print each stored signal until asked to stop or the gateway dies."""
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
        when = str(p.get("candle_time") or e.get("ts", ""))[:16].replace("T", " ")
        self.console.print(
            f"[dim]{e['seq']:>6}[/] {e['category']:<8} {e['source']:<24} "
            f"{when}  {e.get('title', '')}",
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
                await self.start_groups(tokens)
                await self.start_triggers(tokens)
                names = [t.name for t in DEMO_TRIGGERS] + [g.name for g in DEMO_GROUPS]
                self.console.print(
                    f"running: gateway, {', '.join(names)} "
                    f"(logs in {self.logs}); Ctrl-C stops everything"
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


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
