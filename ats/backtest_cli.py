"""`ats backtest ...`: replay candle files through a strategy, the risk engine and the
paper fill model; print the metrics, write `result.json` and `report.html`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shared.backtest.data import BacktestInputError, BacktestRequest
from shared.backtest.metrics import Metrics, compute_metrics
from shared.backtest.report import duration, metric_rows, write_report, write_result
from shared.backtest.result import BacktestResult

if TYPE_CHECKING:
    from shared.config import LLMSettings
    from shared.llm.cache import AnswerCache
    from shared.market.candles import Candle
    from trading_groups.llm.backtest import LLMRunReport
    from trading_groups.llm.config import LLMGroupConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Backtest a strategy on candle files.",
    rich_markup_mode=None,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(
        f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code)


def _json_object(option: str, text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(f"{option} is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise _fail(f"{option} must be a JSON object ({{...}}), got {text!r}")
    return value


@app.command()
def backtest(
    strategy: Annotated[
        str,
        typer.Option(metavar="NAME", help="Strategy: sma_cross, rsi_reversal, breakout, ml, ..."),
    ],
    data: Annotated[
        list[str],
        typer.Option(
            metavar="PATH",
            help="Candle CSV, repeatable: a file named like ETH-BTC_5m.csv (market and "
            "timeframe from the name), or SYMBOL=PATH. Several share one account.",
        ),
    ],
    params: Annotated[
        str | None,
        typer.Option(metavar="JSON", help="Strategy parameters, e.g. '{\"fast\":10}'."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Write result.json and report.html here (created)."),
    ] = None,
    capital: Annotated[
        str, typer.Option(metavar="AMOUNT", help="Starting cash of the account.")
    ] = "10000",
    currency: Annotated[
        str | None,
        typer.Option(
            metavar="CODE",
            help="Account currency: the markets' quote currency (the default), which it "
            "must equal; needed only for symbols without one.",
        ),
    ] = None,
    commission: Annotated[
        str, typer.Option(metavar="RATE", help="Fee rate of every fill (0.001 = 0.1 %).")
    ] = "0.001",
    maker_fee: Annotated[
        str | None,
        typer.Option(
            metavar="RATE",
            help="Fee rate of take-profits resting in the book; default: --commission.",
        ),
    ] = None,
    slippage_bps: Annotated[
        str, typer.Option(metavar="BPS", help="Market orders and stops fill this many bps worse.")
    ] = "0",
    risk: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Risk limits (RiskLimits, as on a trade account); with no sizing, an entry "
            "buys 10% of equity (the risk engine's DEFAULT_SIZING), e.g. "
            '\'{"sizing":{"method":"percent_equity","pct":50}}\'.',
        ),
    ] = None,
    markets: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Market rules by symbol, e.g. "
            '\'{"ETH/BTC":{"amount_step":"0.001","min_notional":"0.0001"}}\'; '
            "default: 8 decimals, no minimums.",
        ),
    ] = None,
    timeframe: Annotated[
        str | None,
        typer.Option(metavar="TF", help="Timeframe of the candles; default: from the file names."),
    ] = None,
    lookahead: Annotated[
        bool,
        typer.Option(
            "--lookahead",
            help="Instead of a backtest, check that the strategy's past decisions do not "
            "change when the future is cut off (exit 1 if they do); with --llm-group, the "
            "team's decisions and its prompts.",
        ),
    ] = False,
    cuts: Annotated[
        int, typer.Option(metavar="N", help="With --lookahead: how many cuts to try.")
    ] = 10,
    grid: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Instead of one backtest, a parameter sweep: each param's values to try, "
            'e.g. \'{"fast":[5,10],"slow":[20,30]}\'; runs across processes and ranks them.',
        ),
    ] = None,
    rank_by: Annotated[
        str, typer.Option(metavar="METRIC", help="With --grid: the metric to rank by.")
    ] = "sharpe",
    processes: Annotated[
        int | None,
        typer.Option(metavar="N", help="With --grid: worker processes (default: one per CPU)."),
    ] = None,
    llm_group: Annotated[
        Path | None,
        typer.Option(
            metavar="CONFIG.json",
            help="Backtest an LLM group: the strategy raises the signals, the team (this "
            "config, or a REST body with name and config) decides on each. Model endpoint "
            "from ATS_LLM_BASE_URL, ATS_LLM_MODEL, ATS_LLM_STRONG_MODEL, ATS_LLM_API_KEY.",
        ),
    ] = None,
    llm_budget_usd: Annotated[
        str | None,
        typer.Option(
            metavar="USD",
            help="With --llm-group: the run's cost cap; then uncached calls are refused "
            "and the team holds. Default: the group's daily budgets.",
        ),
    ] = None,
    llm_budget_tokens: Annotated[
        int | None,
        typer.Option(metavar="N", help="With --llm-group: the run's token cap (in + out)."),
    ] = None,
    llm_cache: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="With --llm-group: where answers are cached by prompt hash; default "
            "ATS_DATA_DIR/llm-cache.",
        ),
    ] = None,
) -> None:
    """Backtest a strategy: decisions on each candle's close fill at the next open,
    through the live risk engine and paper fill model. Prints the metrics, writes
    OUT/result.json and OUT/report.html. Bad input exits with 2."""
    fields: dict[str, Any] = {
        "strategy": strategy,
        "params": _json_object("--params", params) or {},
        "data": data,
        "capital": capital,
        "currency": currency,
        "commission": commission,
        "maker_fee": maker_fee,
        "slippage_bps": slippage_bps,
        "risk": _json_object("--risk", risk) or {},
        "markets": _json_object("--markets", markets) or {},
        "timeframe": timeframe,
    }
    llm_given = llm_budget_usd is not None or llm_budget_tokens is not None or llm_cache is not None
    if llm_group is None and llm_given:
        raise _fail("--llm-budget-usd, --llm-budget-tokens and --llm-cache need --llm-group")
    if llm_group is not None and grid is not None:
        raise _fail("--llm-group runs one backtest or a look-ahead check: leave out --grid")
    report: LLMRunReport | None = None
    try:
        request = BacktestRequest.parse(fields)
        if llm_group is not None and lookahead:
            raise typer.Exit(
                _lookahead_llm(
                    request, llm_group, llm_budget_usd, llm_budget_tokens, llm_cache, cuts
                )
            )
        if llm_group is not None:
            result, report = _run_llm(
                request, llm_group, llm_budget_usd, llm_budget_tokens, llm_cache
            )
        elif lookahead:
            from shared.backtest.lookahead import main_lookahead

            (symbol, timeframe_, path), *more = request.sources()
            if more:
                raise BacktestInputError("--lookahead checks one market: give one --data")
            raise typer.Exit(
                main_lookahead(request.strategy, request.params, path, symbol, timeframe_, cuts)
            )
        elif grid is not None:
            _sweep(request, _json_object("--grid", grid) or {}, rank_by, processes)
            return
        else:
            result = _run(request)
    except BacktestInputError as e:
        raise _fail(str(e)) from e
    metrics = compute_metrics(result)
    console = Console(highlight=False)
    console.print(escape(_header(result)), soft_wrap=True)
    table = _table(result, metrics)
    if report is not None:
        _llm_rows(table, report)
    console.print(table)
    for line in _summary(result) + (_llm_summary(report) if report is not None else []):
        console.print(escape(line), soft_wrap=True)
    if out is not None:
        written = _write(out, result, metrics, report)
        console.print(escape("wrote " + ", ".join(str(p) for p in written)), soft_wrap=True)


def _write(
    out: Path, result: BacktestResult, metrics: Metrics, report: LLMRunReport | None
) -> list[Path]:
    try:
        written = [
            write_result(result, metrics, out),
            write_report(result, metrics, out / "report.html"),
        ]
        if report is not None:
            # The LLM calls go beside the backtester's fields, under `llm`.
            data = json.loads(written[0].read_text(encoding="utf-8"))
            data["llm"] = report.to_json()
            written[0].write_text(
                json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8"
            )
    except OSError as e:
        raise _fail(f"cannot write to {out}: {e.strerror or e}", code=1) from e
    return written


def _sweep(
    request: BacktestRequest, grid: dict[str, Any], rank_by: str, processes: int | None
) -> None:
    from shared.backtest.sweep import expand_grid, format_table, sweep

    try:
        total = len(expand_grid(grid, request.params))
        with Progress(
            TextColumn("sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("sweep", total=total)
            rows = sweep(
                request,
                grid,
                processes=processes,
                rank_by=rank_by,
                progress=lambda done, _: bar.update(task, completed=done),
            )
    except ValueError as e:  # a bad grid, metric or process count (BacktestInputError too)
        raise _fail(str(e)) from e
    console = Console(highlight=False)
    console.print(escape(f"{len(rows)} runs of {request.strategy}, ranked by {rank_by}:"))
    console.print(escape(format_table(rows)), soft_wrap=True)


def _run(request: BacktestRequest) -> BacktestResult:
    """Run with a progress bar on stderr (hidden when stderr is not a terminal)."""
    candles = request.load()
    with _progress(candles) as progress:
        return request.run(progress, candles=candles)


@contextmanager
def _progress(candles: Mapping[str, Sequence[Candle]]) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over the bars to replay on stderr (hidden when stderr is not a
    terminal), as a run's `progress` callback."""
    with Progress(
        TextColumn("backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("bars", total=sum(len(c) for c in candles.values()))
        yield lambda done, total: bar.update(task, completed=done, total=total)


@dataclass(frozen=True)
class _LLMRun:
    """What `--llm-group` and its options resolve to."""

    name: str
    config: LLMGroupConfig
    settings: LLMSettings
    cache: AnswerCache
    cost: Decimal | None
    tokens: int | None


def _run_llm(
    request: BacktestRequest,
    group: Path,
    budget_usd: str | None,
    budget_tokens: int | None,
    cache: Path | None,
) -> tuple[BacktestResult, LLMRunReport]:
    """The LLM group's backtest, with a progress bar as `_run`'s."""
    from trading_groups.llm.backtest import run_llm_backtest

    llm = _llm_run(group, budget_usd, budget_tokens, cache)
    candles = request.load()
    with _progress(candles) as progress:
        try:
            return run_llm_backtest(
                request,
                llm.config,
                name=llm.name,
                settings=llm.settings,
                cache=llm.cache,
                budget_cost=llm.cost,
                budget_tokens=llm.tokens,
                candles=candles,
                progress=progress,
            )
        except BacktestInputError:
            raise
        except ValueError as e:  # a member without a model, endpoint or key
            raise _fail(str(e)) from e


def _lookahead_llm(
    request: BacktestRequest,
    group: Path,
    budget_usd: str | None,
    budget_tokens: int | None,
    cache: Path | None,
    cuts: int,
) -> int:
    """`--lookahead` on an LLM group: the report, and the verdict on its prompts; the
    exit code of `main_lookahead` (0 clean, 1 look-ahead found)."""
    from shared.backtest.lookahead import print_report
    from trading_groups.llm.backtest import run_llm_lookahead

    llm = _llm_run(group, budget_usd, budget_tokens, cache)
    try:
        checked = run_llm_lookahead(
            request,
            llm.config,
            name=llm.name,
            settings=llm.settings,
            cache=llm.cache,
            cuts=cuts,
            budget_cost=llm.cost,
            budget_tokens=llm.tokens,
        )
    except BacktestInputError:
        raise
    except ValueError as e:  # several markets, a member without a model or key
        raise _fail(str(e)) from e
    console = Console(highlight=False)
    print_report(checked.report, console)
    calls = checked.calls
    console.print(
        escape(
            f"llm: the whole run made {calls.calls_made:,} calls ({calls.cost:f} USD) and "
            f"read {calls.calls_cached:,} from the cache ({llm.cache.directory}); the "
            "truncated runs replayed its answers and asked no model"
        ),
        soft_wrap=True,
    )
    if checked.misses:
        first = checked.misses[0]
        when = f"the signal at {_at(first.time)} UTC" if first.time else "a reflection"
        console.print(
            escape(
                f"LOOK-AHEAD in the briefs: {len(checked.misses):,} prompts of the truncated "
                f"runs differ from the whole run's; the first at the cut after #{first.cut}, "
                f"{when}, member {first.member}: what the team is shown changed when the "
                "candles after the cut were removed"
            ),
            style="bold red",
            soft_wrap=True,
        )
    elif calls.budget_reason is not None:
        console.print(
            escape(
                f"llm: the whole run's budget was reached ({calls.budget_reason}): the "
                "signals after it were held, in the truncated runs as well"
            ),
            soft_wrap=True,
        )
    return 0 if checked.clean else 1


def _llm_run(
    group: Path, budget_usd: str | None, budget_tokens: int | None, cache: Path | None
) -> _LLMRun:
    """The group file, the budgets, the endpoint and the cache `--llm-group` names;
    a bad one is a usage error."""
    from urllib.parse import urlsplit

    from pydantic import ValidationError

    from shared.config import LLMSettings
    from shared.llm.cache import AnswerCache
    from trading_groups.llm.backtest import read_group

    cost: Decimal | None = None
    if budget_usd is not None:
        try:
            cost = Decimal(budget_usd)
        except InvalidOperation:
            cost = None
        if cost is None or not cost.is_finite() or cost < 0:
            raise _fail(f"--llm-budget-usd must be an amount of USD >= 0, got {budget_usd!r}")
    if budget_tokens is not None and budget_tokens < 0:
        raise _fail(f"--llm-budget-tokens must be >= 0, got {budget_tokens}")
    try:
        name, config = read_group(group)
    except ValueError as e:
        raise _fail(str(e)) from e
    try:
        settings = LLMSettings()
    except ValidationError as e:
        raise _fail(str(e.errors()[0]["msg"])) from e
    if not settings.llm_base_url:
        raise _fail(
            "no LLM endpoint configured: set ATS_LLM_BASE_URL to an OpenAI-compatible API "
            "(e.g. https://api.openai.com/v1, or http://127.0.0.1:11434/v1 for Ollama) and "
            "ATS_LLM_MODEL to a model there"
        )
    if urlsplit(settings.llm_base_url).scheme not in ("http", "https"):
        raise _fail(f"ATS_LLM_BASE_URL {settings.llm_base_url!r} is not an http(s) URL")
    store = AnswerCache(cache or settings.data_dir / "llm-cache")
    return _LLMRun(name, config, settings, store, cost, budget_tokens)


def _llm_rows(table: Table, report: LLMRunReport) -> None:
    table.add_section()
    table.add_row("LLM signals discussed", f"{report.signals:,}")
    table.add_row("LLM calls made", f"{report.calls_made:,}")
    table.add_row("LLM calls cached", f"{report.calls_cached:,}")
    table.add_row("LLM tokens (in / out)", f"{report.tokens_in:,} / {report.tokens_out:,}")
    table.add_row("LLM cost", f"{report.cost:f} USD")


def _llm_summary(report: LLMRunReport) -> list[str]:
    lines = [
        f"llm: {report.decided} decided, {report.holds} held of {report.signals} signals; "
        f"{report.reflections} reflections; cached answers saved {report.saved_cost:f} USD "
        f"({report.cache})"
    ]
    if report.budget_reason is not None:
        lines.append(
            f"llm budget reached at signal {report.budget_reached_at_signal} of "
            f"{report.signals}: {report.budget_reason}; uncached calls after it were refused "
            "and those signals held"
        )
    if report.unpriced_models:
        lines.append(
            f"llm: no price for {', '.join(report.unpriced_models)}: their calls cost 0 and "
            'do not count towards --llm-budget-usd; add them to the config\'s "prices"'
        )
    return lines


def _table(result: BacktestResult, metrics: Metrics) -> Table:
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in metric_rows(metrics, result.currency):
        table.add_row(label, escape(value))
    return table


def _header(result: BacktestResult) -> str:
    params = json.dumps(result.params, sort_keys=True)
    return (
        f"{result.strategy} {params} on {', '.join(result.symbols)} {result.timeframe}: "
        f"{_at(result.start)} .. {_at(result.end)} UTC, {result.bars:,} bars, "
        f"capital {result.capital} {result.currency}"
    )


def _summary(result: BacktestResult) -> list[str]:
    """A few lines on the trades: wins and losses, how they ended, best, worst, holding."""
    trades = result.trades
    if not trades:
        lines = ["no closed trades"]
    else:
        won = sum(1 for t in trades if t.pnl > 0)
        lost = sum(1 for t in trades if t.pnl < 0)
        reasons: dict[str, int] = {}
        for t in trades:
            reasons[t.exit_reason] = reasons.get(t.exit_reason, 0) + 1
        best = max(trades, key=lambda t: t.pnl)
        worst = min(trades, key=lambda t: t.pnl)
        held = sum((t.exit_time - t.entry_time).total_seconds() for t in trades) / len(trades)
        lines = [
            f"trades: {len(trades)} ({won} won, {lost} lost); exits: "
            + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())),
            f"best {best.pnl:+.8f} {result.currency} ({best.symbol}, {_at(best.exit_time)}); "
            f"worst {worst.pnl:+.8f} {result.currency} ({worst.symbol}, "
            f"{_at(worst.exit_time)}); average hold {duration(held)}",
        ]
    for t in result.open_trades:
        lines.append(
            f"open at the end: {t.quantity} {t.symbol} since {_at(t.entry_time)}, unrealized "
            f"{t.pnl:+.8f} {result.currency} at the last close (exit reason end, not a trade)"
        )
    if result.rejections:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(result.rejections.items()))
        lines.append(f"risk refusals: {refused}")
    return lines


def _at(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")
