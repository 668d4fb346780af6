"""`ats backtest`: the command docs/BACKTESTING.md shows, run as a real process on the
shipped data, prints the output the doc shows and writes result.json and report.html;
bad input exits with 2 and says what is wrong."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ats.backtest_cli import app
from shared.backtest.metrics import compute_metrics
from shared.backtest.report import metric_rows
from shared.backtest.result import BacktestResult
from tests.conftest import ATS, ROOT, TIMEOUT_FACTOR

DOC = ROOT / "docs" / "BACKTESTING.md"


def documented_run() -> tuple[list[str], list[str]]:
    """The doc's first `ats backtest` command (after `ats`) and the output it shows."""
    text = DOC.read_text()
    command = re.search(r"```sh\n(\.venv/bin/ats backtest .*?)```", text, re.S)
    shown = re.search(r"```text\n(.*?)```", text, re.S)
    assert command is not None and shown is not None, "BACKTESTING.md lost its example"
    args = shlex.split(command[1].replace("\\\n", " "))
    return args[1:], shown[1].splitlines()


async def ats(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        ATS,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60 * TIMEOUT_FACTOR)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_ats_backtest_documented_run_prints_table_and_writes_files(tmp_path: Path) -> None:
    args, shown = documented_run()
    out = tmp_path / "run"
    args[args.index("--out") + 1] = str(out)

    (code, stdout, stderr), (bad_code, _, bad_err) = await asyncio.gather(
        ats(*args), ats("backtest", "--strategy", "sma_cross", "--data", "data/BTC-EUR_5m.csv")
    )

    assert code == 0, stderr
    printed = stdout.splitlines()
    for line in shown:  # the doc shows real output
        assert line in printed, f"BACKTESTING.md shows a line no longer printed: {line}"
    assert printed[-1] == f"wrote {out / 'result.json'}, {out / 'report.html'}"

    data = json.loads((out / "result.json").read_text())
    result = BacktestResult.from_json(data)
    metrics = compute_metrics(result)
    assert data["metrics"] == metrics.to_json()
    assert result.strategy == "sma_cross"
    assert result.params == {"fast": 10, "slow": 30}
    assert result.symbols == ["ETH/BTC"]
    assert result.currency == "BTC"
    assert result.bars == 5760
    assert f"│ Trades                  │ {len(result.trades):>14} │" in printed
    for label, value in metric_rows(metrics, result.currency):
        assert any(line.startswith(f"│ {label} ") and f" {value} │" in line for line in printed)
    assert all(t["entry_time"] and t["exit_price"] for t in data["trades"])

    html = (out / "report.html").read_text()
    assert "plotly.js v" in html
    assert re.search(r"<script[^>]*\bsrc\s*=", html) is None

    # Through the top-level `ats` too, bad input exits with 2 and says why.
    assert bad_code == 2
    assert "data/BTC-EUR_5m.csv: no such file" in bad_err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (["--params", "{fast: 10}"], "--params is not JSON"),
        (["--params", "[10, 30]"], "--params must be a JSON object"),
        (["--risk", '{"sizing": 10}'], "risk.sizing"),
        (["--markets", "{"], "--markets is not JSON"),
        (["--data", "data/XRP-USDT_5m.csv"], "priced in BTC, USDT"),
        (["--currency", "USDT"], "currency USDT is not the quote currency"),
        (["--data", "data/README.md"], "cannot tell the market of data/README.md"),
        (["--commission", "1%"], "commission: Input should be a valid decimal"),
    ],
)
def test_backtest_cli_bad_input_exits_2_with_the_reason(args: list[str], message: str) -> None:
    base = ["--strategy", "sma_cross", "--data", str(ROOT / "data" / "ETH-BTC_5m.csv")]

    result = CliRunner().invoke(app, [*base, *args])

    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_backtest_cli_help_states_the_default_sizing() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})

    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "an entry buys 10% of equity (the risk engine's DEFAULT_SIZING)" in text


async def test_ats_backtest_lookahead_checks_a_strategy_from_the_cli() -> None:
    code, out, err = await ats(
        "backtest",
        "--strategy",
        "sma_cross",
        "--data",
        "data/ETH-BTC_5m.csv",
        "--params",
        '{"fast": 10, "slow": 30}',
        "--lookahead",
        "--cuts",
        "3",
    )
    assert code == 0, err
    assert "3 cuts" in out and "clean" in out
    code, _, err = await ats(
        "backtest", "--strategy", "sma_cross", "--data", "data/ETH-BTC_5m.csv",
        "--data", "LTC/BTC=data/LTC-BTC_5m.csv", "--lookahead",
    )  # fmt: skip
    assert code == 2 and "one market" in err


async def test_ats_backtest_grid_sweeps_across_processes_and_ranks() -> None:
    code, out, err = await ats(
        "backtest", "--strategy", "sma_cross", "--data", "data/ETH-BTC_5m.csv",
        "--grid", '{"fast": [5, 10], "slow": [30, 40]}', "--rank-by", "total_return_pct",
        "--processes", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "4 runs of sma_cross, ranked by total_return_pct" in out
    ranked = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+\d", line)]
    assert [r[0] for r in ranked] == ["1", "2", "3", "4"]
    returns = [float(r[3]) for r in ranked]
    assert returns == sorted(returns, reverse=True)
    code, _, err = await ats(
        "backtest", "--strategy", "sma_cross", "--data", "data/ETH-BTC_5m.csv",
        "--grid", '{"nope": [1]}',
    )  # fmt: skip
    assert code == 2 and "nope" in err
