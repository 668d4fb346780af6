"""Fixtures for the news trigger: a fake OpenAI-compatible model, a feed server, and
the trigger as a real `ats trigger news` process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIMEOUT_FACTOR, Gateway, eventually
from tests.fakes.openai import FakeOpenAI
from tests.gateway.ws.wsclient import RawClient
from tests.triggers.news.newsfeeds import FeedServer

ATS = str(Path(sys.executable).with_name("ats"))
ROOT = Path(__file__).resolve().parents[3]
LLM_KEY = "sk-test-news-0123456789abcdef"
MODEL = "fake-analyst-1"


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=LLM_KEY) as server:
        yield server


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class NewsSetup:
    """A provisioned trigger `news1` and a group `g1` subscribed to it."""

    gateway: Gateway
    llm: FakeOpenAI
    token: str
    group: RawClient
    data_dir: Path
    log: Path

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`ats trigger news ARGS` against the gateway and the fake model."""
        full_env = {
            **os.environ,
            "ATS_TRIGGER_TOKEN": self.token,
            "ATS_LOG_JSON": "true",
            "ATS_DATA_DIR": str(self.data_dir),
            "ATS_LLM_BASE_URL": self.llm.base_url,
            "ATS_LLM_MODEL": MODEL,
            "ATS_LLM_API_KEY": LLM_KEY,
            **(env or {}),
        }
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [ATS, "trigger", "news", "--gateway-url", self.gateway.ws_url, *args],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    async def run(self, *args: str, env: dict[str, str] | None = None) -> None:
        """Run to completion (with --once) and require exit status 0."""
        proc = self.start("--once", *args, env=env)
        assert await wait_exit(proc) == 0, self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def logs(self, code: str) -> list[dict[str, Any]]:
        """Log frames with `code` the trigger sent, oldest first."""
        async with self.gateway.api() as api:
            r = await api.get("/api/v1/logs", params={"code": code, "limit": 1000})
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    async def marker(self) -> dict[str, Any]:
        """Publish a signal as news1 and wait for the group to receive it: everything
        the trigger published before has been delivered by then."""
        client = await RawClient.connect(
            self.gateway.ws_url, param="trigger_token", token=self.token
        )
        try:
            ack = await client.request(
                {"kind": "event", "category": "signal", "payload": {"symbol": "MARKER"}}
            )
        finally:
            await client.close()
        assert ack["ok"], ack
        await eventually(lambda: any(e["id"] == ack["id"] for e in self.group.events))
        return ack

    def signals(self) -> list[dict[str, Any]]:
        """What the group received from the trigger, markers left out."""
        return [e for e in self.group.events if e["payload"].get("trigger") == "news"]


@pytest.fixture
async def news(gateway: Gateway, llm: FakeOpenAI, tmp_path: Path) -> AsyncIterator[NewsSetup]:
    token = await gateway.add_trigger("news1")
    group_token = await gateway.add_group("g1", ["news1"])
    group = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group_token)
    try:
        yield NewsSetup(gateway, llm, token, group, tmp_path / "data", tmp_path / "news.log")
    finally:
        await group.close()


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    try:
        return await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout * TIMEOUT_FACTOR)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise
