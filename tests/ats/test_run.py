"""`ats run` (what `make run` starts): the whole system as processes, on shipped data:
signals, decisions, and the paper account's orders, fills and positions."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import httpx

from ats.run import DEMO_ACCOUNT_PREFIX, DEMO_EXECUTION, DEMO_GROUPS
from tests.conftest import TIMEOUT_FACTOR, eventually, free_port

ATS = str(Path(sys.executable).with_name("ats"))


def read_lines(stream: IO[bytes], into: list[str]) -> None:
    for line in stream:
        into.append(line.decode())


async def demo_accounts(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The demo paper accounts the gateway holds (none while it does not answer)."""
    try:
        r = await http.get("/api/v1/trade-accounts")
    except httpx.TransportError:
        return []
    return [a for a in r.json() if a["name"].startswith(DEMO_ACCOUNT_PREFIX)]


async def filled_order_events(http: httpx.AsyncClient, account: str) -> list[dict[str, Any]]:
    """The account's `order` events that report a fill, newest first."""
    try:
        r = await http.get(
            "/api/v1/events", params={"category": "order", "order": "desc", "limit": 1000}
        )
    except httpx.TransportError:
        return []
    return [
        e
        for e in r.json()["items"]
        if e["payload"].get("trade_account") == account and e["payload"]["status"] == "filled"
    ]


async def assert_trades_on_one_paper_account(http: httpx.AsyncClient, state: Path) -> str:
    """The run's one demo paper account trades: a fill traced to its decision, the
    order and position stored; return the account's name."""
    (account,) = await demo_accounts(http)
    name: str = account["name"]
    assert account["mode"] == "paper"
    assert account["trading_groups"] == sorted(g.name for g in DEMO_GROUPS)
    assert account["execution_service"] == DEMO_EXECUTION
    (fill, *_) = await eventually(
        lambda: filled_order_events(http, name),
        timeout=60,
        interval=0.5,
        message="a filled order",
    )
    assert fill["source"] == f"execution:{DEMO_EXECUTION}"
    assert Decimal(fill["payload"]["quantity"]) > 0
    chain = await http.get(
        "/api/v1/events",
        params={"category": "decision", "correlation_id": fill["trace"]["correlation_id"]},
    )
    assert fill["trace"]["causation_id"] in {e["id"] for e in chain.json()["items"]}, (
        "a fill names the decision it came from"
    )
    # Stored, as the operator reads them: the order, and the position it moved
    # (written just after the fill is announced).
    orders = (
        await http.get("/api/v1/orders", params={"account": name, "status": "filled"})
    ).json()["items"]
    assert fill["payload"]["client_order_id"] in {o["client_order_id"] for o in orders}

    async def position_stored() -> bool:
        r = await http.get("/api/v1/positions", params={"account": name, "open": "false"})
        return fill["payload"]["symbol"] in {p["symbol"] for p in r.json()}

    await eventually(position_stored, timeout=10, message="the position stored")
    assert (state / "paper" / f"{name}.json").is_file()
    return name


async def test_run_trades_the_demo_chain_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATS_")} | {
        "ATS_DATA_DIR": str(tmp_path / "state"),
        "COLUMNS": "200",  # one printed event per line
    }
    proc = subprocess.Popen(
        [ATS, "run", "--port", str(port), "--speed", "30000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,  # the shipped data is found from the install, not the cwd
    )
    # Read as it comes, so the test can wait for a line without ending the process.
    printed: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=read_lines, args=(proc.stdout, printed), daemon=True)
    reader.start()
    try:
        key_file = tmp_path / "state" / "api_key"
        await eventually(key_file.exists, timeout=30, message="the generated API key")
        headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=5
        ) as http:

            async def signals_from_both() -> bool:
                try:
                    r = await http.get(
                        "/api/v1/events", params={"category": "signal", "limit": 1000}
                    )
                except httpx.TransportError:
                    return False
                sources = {e["source"] for e in r.json().get("items", [])}
                return {"trigger:rsi-eth", "trigger:macross-ltc"} <= sources

            await eventually(signals_from_both, timeout=60, interval=0.5, message="signals")

            async def decisions() -> bool:
                r = await http.get("/api/v1/events", params={"category": "decision"})
                return any(e["source"] == "trading_group:demo-momentum" for e in r.json()["items"])

            await eventually(decisions, timeout=60, interval=0.5, message="a group's decision")
            first_run_signals = (
                await http.get("/api/v1/events", params={"category": "signal", "limit": 1000})
            ).json()["items"]
            groups = (await http.get("/api/v1/trading-groups")).json()
            assert [g["name"] for g in groups] == sorted(g.name for g in DEMO_GROUPS)

            first_account = await assert_trades_on_one_paper_account(http, tmp_path / "state")
            # The supervisor prints the fills as it prints the signals.
            await eventually(
                lambda: any(" order " in ln and "filled" in ln for ln in printed[:]),
                timeout=30,
                message="a printed fill",
            )
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 30 * TIMEOUT_FACTOR)
        reader.join(10)
        output = "".join(printed)
        assert code == 0, output[-3000:]
        assert " signal " in output
        # A second run on the same state replays the same candles as new signals, and
        # trades them on a new paper account: the first one is deleted, its orders kept.
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=5
        ) as http:
            proc = subprocess.Popen(
                [ATS, "run", "--port", str(port), "--speed", "30000"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=tmp_path,
            )
            before = len(first_run_signals)

            async def more_signals() -> bool:
                try:
                    r = await http.get(
                        "/api/v1/events", params={"category": "signal", "limit": 1000}
                    )
                except httpx.TransportError:
                    return False
                return len(r.json()["items"]) > before

            await eventually(more_signals, timeout=60, interval=0.5, message="new signals")

            async def only_a_new_account() -> str | None:
                names = [a["name"] for a in await demo_accounts(http)]
                return names[0] if len(names) == 1 and names != [first_account] else None

            second_account = await eventually(
                only_a_new_account,
                timeout=30,
                interval=0.5,
                message="the second run's account, and the first one's gone",
            )
            assert not (tmp_path / "state" / "paper" / f"{first_account}.json").exists()
            await eventually(
                lambda: filled_order_events(http, second_account),
                timeout=60,
                interval=0.5,
                message="a fill on the second run's account",
            )
            kept = await http.get("/api/v1/orders", params={"account": first_account})
            assert kept.json()["items"], "the deleted account's orders stay in the history"
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(asyncio.to_thread(proc.wait), 30 * TIMEOUT_FACTOR) == 0
        # Everything it started is gone: the gateway no longer answers.
        async with httpx.AsyncClient() as c:
            try:
                await c.get(f"http://127.0.0.1:{port}/health")
            except httpx.TransportError:
                pass
            else:
                raise AssertionError("the gateway outlived `ats run`")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
