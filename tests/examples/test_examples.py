"""The examples as their readers run them: real processes against a real gateway.

The plain-websockets Python example runs under this interpreter (it needs only
`websockets`); the Node example runs when `node` and `npm` are installed and
`npm install` can fetch `ws`. The SDK trigger, the custom rule and the custom strategy
run from the repository, as TRIGGERS.md and GROUPS.md tell readers to run them.
PROTOCOL.md, TRIGGERS.md and GROUPS.md show examples in full, so they must stay
identical to the files.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pandas_ta as ta
import pytest

from shared.events import Action, client_frame_adapter, server_frame_adapter
from shared.kernel.engine import StrategyEngine
from shared.kernel.strategy import Position, create_strategy
from shared.market.feeds import read_candles_csv
from tests.conftest import TIMEOUT_FACTOR, Gateway, eventually
from tests.gateway.ws.wsclient import RawClient
from triggers.base import TriggerEngine, create_trigger

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PROTOCOL_MD = ROOT / "docs" / "PROTOCOL.md"
TRIGGERS_MD = ROOT / "docs" / "TRIGGERS.md"
GROUPS_MD = ROOT / "docs" / "GROUPS.md"
EXAMPLE_FILES = ("minimal_trigger.py", "minimal_trigger.js", "package.json")
#: The files each document shows in full.
SHOWN_FILES = {
    PROTOCOL_MD: EXAMPLE_FILES,
    TRIGGERS_MD: ("custom_rule.py", "sdk_trigger.py"),
    GROUPS_MD: ("custom_strategy.py",),
}

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


# --------------------------------------------------------------------------- SDK trigger


def published(out: str) -> list[tuple[int, str]]:
    """`SEQ stored` / `SEQ duplicate` lines, as the SDK example prints them."""
    return [(int(seq), outcome) for seq, outcome in (line.split() for line in out.splitlines())]


async def test_sdk_trigger_publishes_signals_to_subscriber_and_exits_0(gateway: Gateway) -> None:
    token = await gateway.add_trigger("sdk-example")
    group = await gateway.add_group("watchers", ["sdk-example"])
    subscriber = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group)

    code, out, err = await run_example(
        [sys.executable, str(EXAMPLES / "sdk_trigger.py")],
        ROOT,
        ATS_GATEWAY_URL=gateway.ws_url,
        ATS_TRIGGER_TOKEN=token,
    )

    assert code == 0, err
    seqs = [seq for seq, outcome in published(out) if outcome == "stored"]
    assert len(seqs) == 2, out
    await eventually(lambda: len(subscriber.events) >= 2, message="both signals at the group")
    assert [e["seq"] for e in subscriber.events] == seqs
    assert {e["payload"]["symbol"] for e in subscriber.events} == {"ETH/BTC", "LTC/BTC"}
    assert {e["source"] for e in subscriber.events} == {"trigger:sdk-example"}
    await subscriber.close()


async def test_sdk_trigger_rerun_is_answered_duplicate_and_routed_once(gateway: Gateway) -> None:
    token = await gateway.add_trigger("sdk-example")
    group = await gateway.add_group("watchers", ["sdk-example"])
    subscriber = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group)
    argv = [sys.executable, str(EXAMPLES / "sdk_trigger.py")]
    env = {"ATS_GATEWAY_URL": gateway.ws_url, "ATS_TRIGGER_TOKEN": token}

    first = await run_example(argv, ROOT, **env)
    again = await run_example(argv, ROOT, **env)

    assert first[0] == again[0] == 0, first[2] + again[2]
    assert [seq for seq, _ in published(again[1])] == [seq for seq, _ in published(first[1])]
    assert {outcome for _, outcome in published(again[1])} == {"duplicate"}
    # A later signal arriving proves the duplicates were not routed before it.
    marker = await RawClient.connect(gateway.ws_url, param="trigger_token", token=token)
    ack = await marker.request({"kind": "event", "category": "signal", "payload": {}})
    await eventually(lambda: subscriber.events and subscriber.events[-1]["id"] == ack["id"])
    assert len(subscriber.events) == 3
    await marker.close()
    await subscriber.close()


# --------------------------------------------------------------------------- custom rule


@cache
def custom_rule() -> ModuleType:
    """examples/custom_rule.py, imported once: importing it registers `volume_spike`."""
    spec = importlib.util.spec_from_file_location("custom_rule", EXAMPLES / "custom_rule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_volume_spikes(
    csv: str, length: int = 20, factor: float = 5.0, trend: int = 50
) -> set[tuple[datetime, str]]:
    """(candle open time, direction) of each spike, computed with pandas and pandas-ta."""
    df = pd.read_csv(ROOT / "data" / csv)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df = df.set_index("timestamp")
    average = df["volume"].rolling(length).mean().shift(1)
    ema = ta.ema(df["close"], length=trend)
    fired = ema.notna() & (average > 0) & (df["volume"] >= factor * average)
    direction = (df["close"] > ema).map({True: "long", False: "short"})
    return {(t.to_pydatetime(), direction[t]) for t in df.index[fired]}


def test_custom_rule_over_shipped_data_fires_exactly_the_volume_spikes() -> None:
    custom_rule()
    trigger = create_trigger("volume_spike", {}, symbol="ETH/BTC", timeframe="5m")
    engine = TriggerEngine(trigger)

    fired = {
        (candle.open_time, draft.direction.value)
        for candle in read_candles_csv(ROOT / "data" / "ETH-BTC_5m.csv", "ETH/BTC", "5m")
        for draft in engine.on_candle(candle)
    }

    want = expected_volume_spikes("ETH-BTC_5m.csv")
    assert want, "the default parameters must fire on this data"
    assert fired == want


def test_custom_rule_bad_params_are_refused_with_the_field() -> None:
    custom_rule()

    with pytest.raises(ValueError, match="factor"):
        create_trigger("volume_spike", {"factor": 0.5}, symbol="ETH/BTC", timeframe="5m")


async def test_custom_rule_runs_as_a_trigger_process_and_publishes_the_spikes(
    gateway: Gateway,
) -> None:
    token = await gateway.add_trigger("volume-eth")
    group = await gateway.add_group("watchers", ["volume-eth"])
    subscriber = await RawClient.connect(gateway.ws_url, param="trading_group_token", token=group)

    code, _, err = await run_example(
        [
            sys.executable, str(EXAMPLES / "custom_rule.py"), "volume_spike",
            "--symbol", "ETH/BTC", "--timeframe", "5m", "--feed", "csv:data/ETH-BTC_5m.csv",
            "--params", json.dumps({"factor": 4}), "--gateway-url", gateway.ws_url,
        ],
        ROOT,
        ATS_TRIGGER_TOKEN=token,
    )  # fmt: skip

    assert code == 0, err[-3000:]
    want = {
        (t.strftime("%Y-%m-%dT%H:%M:%SZ"), direction)
        for t, direction in expected_volume_spikes("ETH-BTC_5m.csv", factor=4)
    }
    await eventually(lambda: len(subscriber.events) >= len(want), message="every spike")
    got = {(e["payload"]["candle_time"], e["payload"]["direction"]) for e in subscriber.events}
    assert got == want
    assert {e["payload"]["trigger"] for e in subscriber.events} == {"volume_spike"}
    await subscriber.close()


# --------------------------------------------------------------------------- custom strategy


@cache
def custom_strategy() -> ModuleType:
    """examples/custom_strategy.py, imported once: importing it registers `band_breakout`."""
    path = EXAMPLES / "custom_strategy.py"
    spec = importlib.util.spec_from_file_location("custom_strategy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_band_trades(
    csv: str, length: int = 20, std: float = 2.0
) -> list[tuple[datetime, str]]:
    """(candle open time, action) of each long-only trade, computed with pandas-ta: BUY a
    close above the upper band when flat, SELL a close below the middle band when long."""
    df = pd.read_csv(ROOT / "data" / csv)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    bands = ta.bbands(df["close"], length=length, lower_std=std, upper_std=std, talib=False)
    upper = bands[[c for c in bands.columns if c.startswith("BBU_")][0]]
    middle = bands[[c for c in bands.columns if c.startswith("BBM_")][0]]
    trades: list[tuple[datetime, str]] = []
    holding = False
    for t, close, up, mid in zip(df["timestamp"], df["close"], upper, middle, strict=True):
        if pd.isna(up):
            continue
        if close > up and not holding:
            trades.append((t.to_pydatetime(), "BUY"))
            holding = True
        elif close < mid and holding:
            trades.append((t.to_pydatetime(), "SELL"))
            holding = False
    return trades


def test_custom_strategy_over_shipped_data_takes_exactly_the_band_trades() -> None:
    custom_strategy()
    strategy = create_strategy("band_breakout", {"std": 2.5})
    engine = StrategyEngine(strategy)
    positions: list[Position] = []
    taken = []

    for candle in read_candles_csv(ROOT / "data" / "ETH-BTC_5m.csv", "ETH/BTC", "5m"):
        engine.update(candle)
        decision = engine.decide(engine.context(now=candle.close_time, positions=positions))
        if decision.action is Action.BUY:
            assert decision.entry is not None
            positions = [Position("ETH/BTC", Decimal(1), decision.entry, candle.close_time)]
        elif decision.action is Action.SELL:
            positions = []
        if decision.action is not Action.HOLD:
            taken.append((candle.open_time, decision.action.value))

    want = expected_band_trades("ETH-BTC_5m.csv", std=2.5)
    assert len(want) > 10, "the data must exercise the strategy"
    assert taken == want


def test_custom_strategy_bad_params_are_refused_with_the_field() -> None:
    custom_strategy()

    with pytest.raises(ValueError, match="std"):
        create_strategy("band_breakout", {"std": 0})


async def test_custom_strategy_runs_as_a_group_process_and_decides_on_signals(
    gateway: Gateway, tmp_path: Path
) -> None:
    # The test is the trigger: a signal on each candle where a trade is due, and on the
    # candle after the first BUY, where the strategy must hold (it is already long).
    trades = expected_band_trades("ETH-BTC_5m.csv", std=2.5)[:8]
    hold = trades[0][0] + timedelta(minutes=5)
    assert hold < trades[1][0]
    trigger_token = await gateway.add_trigger("bands-eth")
    group_token = await gateway.add_group("bands", ["bands-eth"])
    log = (tmp_path / "group.log").open("wb")
    group = subprocess.Popen(
        [
            sys.executable, str(EXAMPLES / "custom_strategy.py"), "algo",
            "--strategy", "band_breakout", "--params", json.dumps({"std": 2.5}),
            "--feed", "ETH/BTC=csv:data/ETH-BTC_5m.csv", "--gateway-url", gateway.ws_url,
        ],
        cwd=ROOT,
        env={**os.environ, "ATS_TRADING_GROUP_TOKEN": group_token, "ATS_LOG_JSON": "true"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        trigger = await RawClient.connect(
            gateway.ws_url, param="trigger_token", token=trigger_token
        )
        times = sorted([t for t, _ in trades] + [hold])
        signals = {}
        for t in times:
            ack = await trigger.request(
                {
                    "kind": "event",
                    "category": "signal",
                    "payload": {
                        "symbol": "ETH/BTC",
                        "timeframe": "5m",
                        "candle_time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                }
            )
            assert ack["ok"], ack
            signals[t] = ack["id"]

        async def decisions() -> list[dict[str, Any]] | None:
            async with gateway.api() as api:
                page = (await api.get("/api/v1/events", params={"category": "decision"})).json()
            return page["items"] if len(page["items"]) >= len(trades) else None

        got = await eventually(decisions, timeout=60, message="a decision per trade")
        decided = [
            (datetime.fromisoformat(e["payload"]["candle_time"]), e["payload"]["action"])
            for e in got
        ]
        assert decided == trades
        assert [e["trace"]["causation_id"] for e in got] == [signals[t] for t, _ in trades]
        assert {e["source"] for e in got} == {"trading_group:bands"}
        assert {e["payload"]["strategy"] for e in got} == {"band_breakout"}
        await trigger.close()
    finally:
        group.terminate()
        group.wait(timeout=30)
        log.close()


# --------------------------------------------------------------------------- the doc


@pytest.mark.parametrize("doc", sorted(SHOWN_FILES), ids=lambda doc: doc.name)
def test_doc_shows_its_example_files_verbatim(doc: Path) -> None:
    shown = {m["path"]: m["code"] for m in _SHOWN_FILE.finditer(doc.read_text())}

    assert sorted(shown) == sorted(f"examples/{name}" for name in SHOWN_FILES[doc])
    for path, code in shown.items():
        assert code == (ROOT / path).read_text(), f"{path} differs from its copy in {doc.name}"


@pytest.mark.parametrize("doc", [PROTOCOL_MD, TRIGGERS_MD], ids=lambda doc: doc.name)
def test_doc_example_frames_are_valid_protocol(doc: Path) -> None:
    frames = list(_SHOWN_FRAME.finditer(doc.read_text()))

    assert frames, f"{doc.name} shows no frame"
    if doc == PROTOCOL_MD:
        assert {m["side"] for m in frames} == {"client", "server"}
    for m in frames:
        adapter = client_frame_adapter if m["side"] == "client" else server_frame_adapter
        adapter.validate_json(m["json"])
