"""`ats run` (what `make run` starts): the whole system as processes, on shipped data."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from ats.run import DEMO_GROUPS
from tests.conftest import TIMEOUT_FACTOR, eventually, free_port

ATS = str(Path(sys.executable).with_name("ats"))


async def test_run_starts_gateway_and_triggers_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATS_")} | {
        "ATS_DATA_DIR": str(tmp_path / "state")
    }
    proc = subprocess.Popen(
        [ATS, "run", "--port", str(port), "--speed", "30000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,  # the shipped data is found from the install, not the cwd
    )
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
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(asyncio.to_thread(proc.wait), 30 * TIMEOUT_FACTOR)
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert code == 0, output[-3000:]
        assert "signal" in output
        # A second run on the same state replays the same candles as new signals.
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
