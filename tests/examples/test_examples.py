"""The protocol examples as their readers run them: real processes against a real gateway.

The Python example runs under this interpreter (it needs only `websockets`); the Node
example runs when `node` and `npm` are installed and `npm install` can fetch `ws`.
PROTOCOL.md shows the examples in full, so it must stay identical to the files.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.events import client_frame_adapter, server_frame_adapter
from tests.conftest import TIMEOUT_FACTOR, Gateway, eventually
from tests.gateway.ws.wsclient import RawClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PROTOCOL_MD = ROOT / "docs" / "PROTOCOL.md"
EXAMPLE_FILES = ("minimal_trigger.py", "minimal_trigger.js", "package.json")

# A file shown in the doc is introduced by `<!-- file: examples/NAME -->` on the line
# before its fenced block.
_SHOWN_FILE = re.compile(r"<!-- file: (?P<path>\S+) -->\n```[a-z]*\n(?P<code>.*?)^```", re.M | re.S)
# An example frame is introduced by `<!-- frame: client -->` or `<!-- frame: server -->`.
_SHOWN_FRAME = re.compile(
    r"<!-- frame: (?P<side>client|server) -->\n```json\n(?P<json>.*?)^```", re.M | re.S
)


async def run_example(argv: list[str], cwd: Path, **env: str) -> tuple[int, str, str]:
    """Run an example to completion; returns its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30 * TIMEOUT_FACTOR)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv} did not exit within 30 s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def assert_publishes_one_signal(gateway: Gateway, argv: list[str], cwd: Path) -> None:
    token = await gateway.add_trigger("rsi-btc")
    group = await gateway.add_group("btc-momentum", ["rsi-btc"])
    subscriber = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group)

    code, out, err = await run_example(
        argv, cwd, ATS_GATEWAY_URL=gateway.ws_url, ATS_TRIGGER_TOKEN=token
    )

    assert code == 0, err
    seq = int(out.strip())
    event = await eventually(
        lambda: next((e for e in subscriber.events if e["seq"] == seq), None),
        message=f"the example's signal (seq {seq}) at the subscriber",
    )
    assert event["category"] == "signal"
    assert event["source"] == "trigger:rsi-btc"
    assert event["payload"]["symbol"] == "BTC/USDT"
    await subscriber.close()


async def assert_refused_token_exits_1(gateway: Gateway, argv: list[str], cwd: Path) -> None:
    code, out, err = await run_example(
        argv, cwd, ATS_GATEWAY_URL=gateway.ws_url, ATS_TRIGGER_TOKEN="ats_trg_not-a-real-token"
    )

    assert code == 1
    assert out == ""
    assert "1008" in err and "invalid token" in err


# --------------------------------------------------------------------------- Python


async def test_python_trigger_publishes_signal_to_subscriber_and_exits_0(
    gateway: Gateway,
) -> None:
    await assert_publishes_one_signal(
        gateway, [sys.executable, str(EXAMPLES / "minimal_trigger.py")], EXAMPLES
    )


async def test_python_trigger_invalid_token_exits_1_with_close_reason(gateway: Gateway) -> None:
    await assert_refused_token_exits_1(
        gateway, [sys.executable, str(EXAMPLES / "minimal_trigger.py")], EXAMPLES
    )


# --------------------------------------------------------------------------- Node


@pytest.fixture(scope="session")
def node_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/ with `ws` installed by npm, as a reader would set it up."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not on PATH: the JavaScript example cannot run")
    work = tmp_path_factory.mktemp("node-example")
    for name in EXAMPLE_FILES:
        shutil.copy(EXAMPLES / name, work / name)
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            check=True,
            capture_output=True,
            timeout=300 * TIMEOUT_FACTOR,
        )
    except subprocess.CalledProcessError as e:
        pytest.skip(f"npm install failed (offline?): {e.stderr.decode().strip()[-500:]}")
    except subprocess.TimeoutExpired:
        pytest.skip("npm install did not finish in 300 s (offline?)")
    return work


async def test_node_trigger_publishes_signal_to_subscriber_and_exits_0(
    gateway: Gateway, node_example: Path
) -> None:
    await assert_publishes_one_signal(gateway, ["node", "minimal_trigger.js"], node_example)


async def test_node_trigger_invalid_token_exits_1_with_close_reason(
    gateway: Gateway, node_example: Path
) -> None:
    await assert_refused_token_exits_1(gateway, ["node", "minimal_trigger.js"], node_example)


# --------------------------------------------------------------------------- the doc


def test_protocol_doc_shows_every_example_file_verbatim() -> None:
    shown = {m["path"]: m["code"] for m in _SHOWN_FILE.finditer(PROTOCOL_MD.read_text())}

    assert sorted(shown) == sorted(f"examples/{name}" for name in EXAMPLE_FILES)
    for path, code in shown.items():
        assert code == (ROOT / path).read_text(), f"{path} differs from its copy in PROTOCOL.md"


def test_protocol_doc_example_frames_are_valid_protocol() -> None:
    frames = list(_SHOWN_FRAME.finditer(PROTOCOL_MD.read_text()))

    assert {m["side"] for m in frames} == {"client", "server"}
    for m in frames:
        adapter = client_frame_adapter if m["side"] == "client" else server_frame_adapter
        adapter.validate_json(m["json"])
