"""`ats backtest --llm-group`: real processes asking a local OpenAI-compatible server
over HTTP. The first run pays; a second process asks nothing, costs nothing and
prints and writes the same backtest; a budget below the run's cost stops the calls
and the output says at which signal; `--lookahead` checks the group, asking only for
the whole run."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ATS, ROOT, TIMEOUT_FACTOR
from tests.fakes.openai import FakeOpenAI
from tests.trading_groups.llm.conftest import CHEAP, LLM_KEY, STRONG
from tests.trading_groups.llm.test_backtest import BARS, CONFIG, follow_the_signal


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=LLM_KEY, default=follow_the_signal) as server:
        yield server


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """300 shipped ETH/BTC candles, and the group as its REST body."""
    lines = (ROOT / "data" / "ETH-BTC_5m.csv").read_text().splitlines()[: BARS + 1]
    data = tmp_path / "ETH-BTC_5m.csv"
    data.write_text("\n".join(lines) + "\n")
    group = tmp_path / "team.json"
    group.write_text(json.dumps({"name": "eth-team", "kind": "llm", "config": CONFIG}))
    return data, group


async def ats(llm: FakeOpenAI, data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATS_LLM_")}
    proc = await asyncio.create_subprocess_exec(
        ATS,
        "backtest",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **env,
            "COLUMNS": "160",
            "NO_COLOR": "1",
            "ATS_DATA_DIR": str(data_dir),
            "ATS_LLM_BASE_URL": llm.base_url,
            "ATS_LLM_MODEL": CHEAP,
            "ATS_LLM_STRONG_MODEL": STRONG,
            "ATS_LLM_API_KEY": LLM_KEY,
        },
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120 * TIMEOUT_FACTOR)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def row(stdout: str, label: str) -> str:
    """A value of the printed table."""
    line = next(line for line in stdout.splitlines() if f" {label} " in line)
    return line.split("│")[2].strip()


def read(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "result.json").read_text())
    return data


async def test_ats_backtest_llm_group_second_process_asks_nothing_and_trades_the_same(
    llm: FakeOpenAI, files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, group = files
    args = ["--strategy", "sma_cross", "--params", '{"fast":10,"slow":30}', "--data", str(data)]
    args += ["--llm-group", str(group)]

    code, stdout, stderr = await ats(llm, tmp_path / "state", *args, "--out", str(tmp_path / "a"))

    assert code == 0, stderr
    asked = len(llm.requests)
    first = read(tmp_path / "a")
    assert asked > 0
    assert first["llm"]["calls_made"] == asked and first["llm"]["calls_cached"] == 0
    assert Decimal(first["llm"]["cost"]) > 0
    assert first["llm"]["cache"] == str(tmp_path / "state" / "llm-cache")
    assert row(stdout, "LLM calls made") == f"{asked:,}"
    assert row(stdout, "LLM calls cached") == "0"
    assert row(stdout, "LLM cost") == f"{first['llm']['cost']} USD"
    assert first["trades"], "the team's decisions must trade"

    code, again, stderr = await ats(llm, tmp_path / "state", *args, "--out", str(tmp_path / "b"))

    assert code == 0, stderr
    assert len(llm.requests) == asked, "the second process must make no request"
    second = read(tmp_path / "b")
    assert second["llm"]["calls_made"] == 0 and second["llm"]["calls_cached"] == asked
    assert second["llm"]["cost"] == "0"
    assert row(again, "LLM calls made") == "0"
    assert row(again, "LLM calls cached") == f"{asked:,}"
    assert {k: v for k, v in second.items() if k != "llm"} == {
        k: v for k, v in first.items() if k != "llm"
    }
    assert again.split("├")[0] == stdout.split("├")[0], "the same metrics, printed the same"


async def test_ats_backtest_llm_budget_stops_calls_and_says_at_which_signal(
    llm: FakeOpenAI, files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, group = files
    args = ["--strategy", "sma_cross", "--params", '{"fast":10,"slow":30}', "--data", str(data)]
    args += ["--llm-group", str(group), "--llm-cache", str(tmp_path / "cache")]

    code, stdout, stderr = await ats(
        llm, tmp_path, *args, "--llm-budget-usd", "0.02", "--out", str(tmp_path / "run")
    )

    assert code == 0, stderr
    llm_report = read(tmp_path / "run")["llm"]
    budget = llm_report["budget"]
    assert budget["reached"] is True and budget["cost"] == "0.02"
    assert llm_report["calls_made"] == len(llm.requests) > 0
    assert Decimal(llm_report["cost"]) >= Decimal("0.02")
    # The call that crossed the cap was the last one made.
    last = [c for c in llm_report["calls"] if not c["cached"]][-1]
    assert Decimal(llm_report["cost"]) - Decimal(last["cost"]) < Decimal("0.02")
    n = budget["reached_at_signal"]
    assert f"llm budget reached at signal {n} of {llm_report['signals']}" in stdout
    assert all(d["action"] == "HOLD" for d in llm_report["discussions"][n - 1 :])


async def test_ats_backtest_llm_bad_input_exits_2_before_asking(
    llm: FakeOpenAI, files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, group = files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"debate_rounds": 9}))
    base = ["--strategy", "sma_cross", "--data", str(data)]

    results = await asyncio.gather(
        ats(llm, tmp_path, *base, "--llm-group", str(bad)),
        ats(llm, tmp_path, *base, "--llm-group", str(group), "--llm-budget-usd", "-1"),
        ats(llm, tmp_path, *base, "--llm-budget-usd", "1"),
        ats(llm, tmp_path, *base, "--llm-group", str(group), "--grid", '{"fast":[5,10]}'),
    )

    errors = []
    for code, _, stderr in results:
        assert code == 2, stderr
        errors.append(stderr)
    assert "debate_rounds" in errors[0]
    assert "--llm-budget-usd must be an amount of USD >= 0" in errors[1]
    assert "need --llm-group" in errors[2]
    assert "leave out --grid" in errors[3]
    assert llm.requests == []


async def test_ats_backtest_llm_lookahead_replays_its_cuts_and_exits_0(
    llm: FakeOpenAI, files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, group = files
    args = ["--strategy", "sma_cross", "--params", '{"fast":10,"slow":30}', "--data", str(data)]
    args += ["--llm-group", str(group), "--lookahead", "--cuts", "2"]

    code, stdout, stderr = await ats(llm, tmp_path, *args)

    assert code == 0, stderr
    asked = len(llm.requests)
    assert asked > 0
    assert "look-ahead check of llm:eth-team on ETH/BTC 5m: 300 candles" in stdout
    assert "clean: no decision at or before a cut changed" in stdout
    assert f"llm: the whole run made {asked:,} calls" in stdout
    assert "the truncated runs replayed its answers and asked no model" in stdout
    assert "LOOK-AHEAD" not in stdout
