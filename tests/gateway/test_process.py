"""The gateway as a real process: SIGKILL mid-stream, SIGTERM, dead peers.

Each test runs `ats gateway` as a subprocess on the test's database, so what is
checked is what an operator runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal as signals
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.db import crud
from shared.db.engine import create_engine, make_sessionmaker
from shared.db.models import EventRow
from tests.conftest import API_KEY, TIMEOUT_FACTOR, Database, eventually, free_port
from tests.gateway.ws.wsclient import RawClient, signal

ATS = str(Path(sys.executable).with_name("ats"))


class GatewayProcess:
    def __init__(self, database: Database, data_dir: Path, **settings: Any) -> None:
        self.database = database
        self.port = free_port()
        self.env = {
            **os.environ,
            **database.env(),
            "ATS_DATA_DIR": str(data_dir),
            "ATS_API_KEY": API_KEY,
            "ATS_LOG_JSON": "true",
            **{f"ATS_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "gateway.log"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/events"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [ATS, "gateway", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited: {self.log.read_text()[-2000:]}")
            try:
                async with httpx.AsyncClient() as c:
                    r = await c.get(f"http://127.0.0.1:{self.port}/ready")
                return r.status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=30, interval=0.1, message="gateway ready")

    async def kill(self, sig: int = signals.SIGKILL) -> int:
        """Signal the gateway and wait for it to exit, keeping this event loop running:
        the test's clients must answer the gateway's closing handshake meanwhile."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        proc = self.proc
        return await asyncio.wait_for(asyncio.to_thread(proc.wait), 30 * TIMEOUT_FACTOR)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
async def provisioned(database: Database) -> dict[str, str]:
    engine = create_engine(database.url, schema=database.schema)
    try:
        async with make_sessionmaker(engine)() as s:
            _, trig = await crud.create_trigger(session=s, name="t1")
            _, grp = await crud.create_trading_group(session=s, name="g1", triggers=["t1"])
            await s.commit()
    finally:
        await engine.dispose()
    return {"trigger": trig, "group": grp}


def _gateway(database: Database, tmp_path: Path, ping: float) -> GatewayProcess:
    return GatewayProcess(
        database,
        tmp_path,
        ws_ping_interval=ping,
        ws_ping_timeout=ping,
        # These tests stream as fast as they can; throttling is tested elsewhere.
        ws_rate_limit=1_000_000,
        ws_rate_burst=1_000_000,
    )


@pytest.fixture
async def gateway_process(database: Database, tmp_path: Path) -> AsyncIterator[GatewayProcess]:
    # Pings every 5 s: a test client busy streaming thousands of frames on a loaded
    # machine may answer a ping late, and must not be dropped for it (CI saw 0.5 s do
    # that). The dead-peer test, which is about pings, uses its own fast ones.
    gw = _gateway(database, tmp_path, ping=5.0)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
async def fast_ping_gateway(database: Database, tmp_path: Path) -> AsyncIterator[GatewayProcess]:
    gw = _gateway(database, tmp_path, ping=0.5)
    try:
        yield gw
    finally:
        gw.stop()


async def _stored_ids(database: Database) -> list[str]:
    engine = create_engine(database.url, schema=database.schema)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(EventRow.id).order_by(EventRow.seq))).scalars())
    finally:
        await engine.dispose()


async def test_gateway_sigkill_mid_stream_loses_no_acknowledged_event(
    gateway_process: GatewayProcess, provisioned: dict[str, str], database: Database
) -> None:
    gw = gateway_process
    await gw.start()
    pub = await RawClient.connect(gw.ws_url, param="trigger_token", token=provisioned["trigger"])
    sent: list[str] = []

    async def stream() -> None:
        # Pipelined: many events in flight, so the kill lands between commit and ack.
        try:
            for i in range(5000):
                frame_id = str(uuid.uuid4())
                sent.append(frame_id)
                await pub.send_raw(json.dumps({**signal(n=i), "id": frame_id}))
                if i % 50 == 0:
                    await asyncio.sleep(0)
        except Exception:  # noqa: S110 - the kill closes the socket under us; expected
            pass

    streamer = asyncio.create_task(stream())
    await eventually(lambda: len(pub.acks) >= 300, message="some acks before the kill")
    assert await gw.kill() == -signals.SIGKILL
    await streamer
    await asyncio.wait_for(pub.closed, 10)
    acked = {i for i, a in pub.acks.items() if a["ok"]}
    acked_seq = {i: pub.acks[i]["seq"] for i in acked}

    # Every event the gateway acknowledged is stored, with the seq it acknowledged.
    stored = await _stored_ids(database)
    assert acked <= set(stored)
    assert len(stored) == len(set(stored))
    # Anything stored is something that was sent; the store holds nothing unsent.
    assert set(stored) <= set(sent)

    # After a restart the publisher re-sends everything unacknowledged with the same
    # ids: each is stored once, and the ones stored before the kill keep their seq.
    await gw.start()
    pub2 = await RawClient.connect(gw.ws_url, param="trigger_token", token=provisioned["trigger"])
    for frame_id in sent:
        if frame_id not in acked:
            await pub2.send_raw(json.dumps({**signal(), "id": frame_id}))
    unacked = [i for i in sent if i not in acked]
    await eventually(lambda: all(i in pub2.acks for i in unacked), timeout=30)
    assert all(pub2.acks[i]["ok"] for i in unacked)
    stored_after = await _stored_ids(database)
    assert sorted(stored_after) == sorted(set(sent))

    # The subscriber, connecting only now, receives every stored event exactly once.
    sub = await RawClient.connect(
        gw.ws_url, param="trading_group_token", token=provisioned["group"]
    )
    await eventually(
        lambda: len(sub.events) >= len(sent),
        timeout=60,
        message=f"replay of {len(sent)} events (got {len(sub.events)})",
    )
    got = [e["id"] for e in sub.events]
    assert sorted(got) == sorted(sent)
    seqs = [e["seq"] for e in sub.events]
    assert seqs == sorted(seqs)
    by_id = {e["id"]: e["seq"] for e in sub.events}
    assert all(by_id[i] == s for i, s in acked_seq.items())
    for c in (pub2, sub):
        await c.close()


async def test_gateway_sigterm_flushes_and_closes_sessions_with_1001(
    gateway_process: GatewayProcess, provisioned: dict[str, str], database: Database
) -> None:
    gw = gateway_process
    await gw.start()
    pub = await RawClient.connect(gw.ws_url, param="trigger_token", token=provisioned["trigger"])
    sub = await RawClient.connect(
        gw.ws_url, param="trading_group_token", token=provisioned["group"]
    )
    for i in range(200):
        await pub.send_raw(json.dumps({**signal(n=i), "id": str(uuid.uuid4())}))
    await eventually(lambda: len(pub.acks) == 200)
    # uvicorn re-raises the signal once shut down, so the exit status says "SIGTERM".
    assert await gw.kill(signals.SIGTERM) == -signals.SIGTERM
    assert await asyncio.wait_for(pub.closed, 10) == (1001, "gateway shutting down")
    assert await asyncio.wait_for(sub.closed, 10) == (1001, "gateway shutting down")
    # Everything acknowledged was handed to the subscriber before the close.
    assert {e["id"] for e in sub.events} == set(pub.acks)
    # The acknowledged cursor survived the shutdown: a reconnect replays exactly what
    # the subscriber had not acknowledged (nothing, when its acks all arrived).
    await gw.start()
    sub2 = await RawClient.connect(
        gw.ws_url, param="trading_group_token", token=provisioned["group"]
    )
    cursor = sub2.hello["cursor"]
    assert 0 < cursor <= max(e["seq"] for e in sub.events)
    unacked = [e["id"] for e in sub.events if e["seq"] > cursor]
    marker = await RawClient.connect(gw.ws_url, param="trigger_token", token=provisioned["trigger"])
    last = await marker.request(signal())
    await eventually(lambda: any(e["id"] == last["id"] for e in sub2.events))
    assert [e["id"] for e in sub2.events] == [*unacked, last["id"]]
    await sub2.close()


async def test_gateway_dead_peer_frees_its_token(
    fast_ping_gateway: GatewayProcess, provisioned: dict[str, str]
) -> None:
    gw = fast_ping_gateway
    await gw.start()
    # A client in another process that stops answering (SIGSTOP): no pongs, no close.
    code = (
        "import asyncio, sys\n"
        "from websockets.asyncio.client import connect\n"
        "async def main():\n"
        "    async with connect(sys.argv[1]) as ws:\n"
        "        await ws.recv()\n"
        "        print('connected', flush=True)\n"
        "        await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    url = f"{gw.ws_url}?trigger_token={provisioned['trigger']}"
    peer = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE)
    try:
        assert peer.stdout is not None
        line = await asyncio.to_thread(peer.stdout.readline)
        assert line.strip() == b"connected"
        peer.send_signal(signals.SIGSTOP)

        async def reconnects() -> bool:
            try:
                c = await RawClient.connect(
                    gw.ws_url, param="trigger_token", token=provisioned["trigger"]
                )
            except AssertionError:
                return False
            except Exception:
                return False
            await c.close()
            return True

        # Ping interval + timeout are 0.5 s each here (10 s + 10 s by default: < 30 s).
        await eventually(reconnects, timeout=15, interval=0.25, message="token freed")
    finally:
        peer.send_signal(signals.SIGKILL)
        peer.wait()
