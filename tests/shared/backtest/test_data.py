"""`BacktestRequest`: what a backtest names, checked with clear errors, read from real
candle files, and run through the engine the same way as by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.backtest import BacktestConfig, run_backtest
from shared.backtest.data import BacktestInputError, BacktestRequest, DataSource, quote_currency
from shared.kernel.fills import FillModelConfig
from shared.kernel.risk import DEFAULT_SIZING, MarketRules, PercentOfEquity, RiskLimits
from shared.market.feeds import read_candles_csv
from shared.ml import build_strategy

ROOT = Path(__file__).resolve().parents[3]
ETH = ROOT / "data" / "ETH-BTC_5m.csv"
LTC = ROOT / "data" / "LTC-BTC_5m.csv"
XRP = ROOT / "data" / "XRP-USDT_5m.csv"
SMA = {"fast": 10, "slow": 30}


def head(source: Path, target: Path, rows: int) -> Path:
    """The header and first `rows` candles of a shipped file, as `target`."""
    lines = source.read_text().splitlines()[: rows + 1]
    target.write_text("\n".join(lines) + "\n")
    return target


def request(**fields: Any) -> BacktestRequest:
    return BacktestRequest.parse({"strategy": "sma_cross", "params": SMA, **fields})


def error(**fields: Any) -> str:
    with pytest.raises(BacktestInputError) as info:
        request(**fields)
    return str(info.value)


@pytest.mark.parametrize(
    ("spec", "timeframe", "market"),
    [
        ("data/ETH-BTC_5m.csv", None, ("ETH/BTC", "5m")),
        ("/abs/XRP-USDT_1h.csv", None, ("XRP/USDT", "1h")),
        ("ETH/BTC=prices_15m.csv", None, ("ETH/BTC", "15m")),
        ("BTC/USDT:USDT=perp.csv", "4h", ("BTC/USDT:USDT", "4h")),
        ("data/ETH-BTC_5m.csv", "1h", ("ETH/BTC", "1h")),  # the override wins
    ],
)
def test_data_source_market_from_name_or_spec(
    spec: str, timeframe: str | None, market: tuple[str, str]
) -> None:
    assert DataSource.parse(spec).market(timeframe) == market


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("prices.csv", "cannot tell the market of prices.csv"),
        ("data/ETH_BTC_5m.csv", "cannot tell the market"),
        ("ETH/BTC=prices.csv", "cannot tell the timeframe of prices.csv"),
    ],
)
def test_data_source_market_unknown_says_how_to_name_it(spec: str, expected: str) -> None:
    with pytest.raises(BacktestInputError, match=expected):
        DataSource.parse(spec).market()


@pytest.mark.parametrize("spec", ["=data/x_5m.csv", "ETH/BTC="])
def test_data_source_parse_empty_half_refused(spec: str) -> None:
    with pytest.raises(BacktestInputError, match="give PATH or SYMBOL=PATH"):
        DataSource.parse(spec)


def test_quote_currency_of_spot_perp_and_bare_symbols() -> None:
    assert quote_currency("ETH/BTC") == "BTC"
    assert quote_currency("BTC/USDT:USDT") == "USDT"
    assert quote_currency("AAPL") is None


def test_request_defaults_fill_model_markets_and_currency() -> None:
    req = request(data=[str(ETH)])
    config = req.to_config()

    assert config.capital == Decimal(10_000)
    assert config.currency == "BTC"  # the market's quote
    assert config.fill_model == FillModelConfig(
        slippage_bps=Decimal(0), taker_fee=Decimal("0.001"), maker_fee=Decimal("0.001")
    )
    assert config.risk == RiskLimits()
    assert config.risk.sizings == (DEFAULT_SIZING,)
    assert PercentOfEquity(pct=Decimal(10)) == DEFAULT_SIZING  # what --help says
    assert config.markets == {
        "ETH/BTC": MarketRules.from_config("ETH/BTC", None, taker_fee=Decimal("0.001"))
    }


def test_request_options_reach_the_config() -> None:
    req = request(
        data=f"ETH/BTC={ETH}",
        capital="2.5",
        currency="BTC",
        commission="0.002",
        maker_fee="0",
        slippage_bps="5",
        risk={"sizing": {"method": "percent_equity", "pct": 50}, "max_open_positions": 1},
        markets={"ETH/BTC": {"amount_step": "0.001", "min_notional": "0.0001"}},
    )
    config = req.to_config()

    assert config.capital == Decimal("2.5")
    assert config.fill_model == FillModelConfig(
        slippage_bps=Decimal(5), taker_fee=Decimal("0.002"), maker_fee=Decimal(0)
    )
    assert config.risk.max_open_positions == 1
    rules = config.markets["ETH/BTC"]
    assert rules.amount_step == Decimal("0.001")
    assert rules.min_notional == Decimal("0.0001")
    assert rules.taker_fee == Decimal("0.002")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"strategy": "nope"}, "unknown strategy 'nope'; known: "),
        ({"params": {"fast": "x"}}, "bad params for strategy 'sma_cross': fast"),
        ({"data": []}, "data: List should have at least 1 item"),
        ({"data": [str(ETH), f"ETH/BTC={LTC}"]}, "ETH/BTC given more than once"),
        (
            {"data": [str(ETH), f"LTC/BTC={ROOT}/x_1h.csv"]},
            "one timeframe, these files have 1h, 5m",
        ),
        ({"data": [str(ETH), str(XRP)]}, "priced in BTC, USDT: one account holds one currency"),
        ({"currency": "USDT"}, "currency USDT is not the quote currency of every market"),
        ({"data": ["AAPL=prices_1d.csv"]}, "cannot tell the currency of AAPL: give currency"),
        ({"markets": {"LTC/BTC": {}}}, "markets: LTC/BTC not in the data (it has ETH/BTC)"),
        ({"markets": {"ETH/BTC": {"amount_stp": 1}}}, "markets.ETH/BTC.amount_stp: Extra inputs"),
        ({"markets": {"ETH/BTC": {"amount_step": 0}}}, "amount_step: Input should be greater"),
        ({"risk": {"sizing": {"method": "all_in"}}}, "risk.sizing.0: Input tag 'all_in'"),
        ({"timeframe": "5M"}, "timeframe: unknown timeframe '5M'"),
        ({"capital": "0"}, "capital: Input should be greater than 0"),
        ({"commission": "0.5"}, "commission: Input should be less than or equal to 0.1"),
        ({"slippage_bps": "-1"}, "slippage_bps: Input should be greater than or equal to 0"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)
def test_request_bad_input_raises_typed_error_naming_the_field(
    fields: dict[str, Any], expected: str
) -> None:
    assert expected in error(**{"data": [str(ETH)], **fields})


def test_request_model_validate_raises_pydantic_error_for_the_api() -> None:
    with pytest.raises(ValidationError, match="unknown strategy"):
        BacktestRequest.model_validate({"strategy": "nope", "data": [str(ETH)]})


def test_request_currency_needed_for_bare_symbols_is_taken() -> None:
    req = request(data=["AAPL=prices_1d.csv"], currency="USD")

    assert req.to_config().currency == "USD"


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    req = request(data=[str(tmp_path / "ETH-BTC_5m.csv")])

    with pytest.raises(BacktestInputError, match=r"ETH-BTC_5m\.csv: no such file"):
        req.load()


def test_load_malformed_file_names_the_line(tmp_path: Path) -> None:
    path = head(ETH, tmp_path / "ETH-BTC_5m.csv", 5)
    with path.open("a") as f:
        f.write("2018-01-10T05:20:00Z,0.1,0.1,0.1,abc,1\n")

    with pytest.raises(BacktestInputError, match="line 7: close is not a number"):
        request(data=[str(path)]).load()


def test_load_wrong_timeframe_says_what_the_file_is(tmp_path: Path) -> None:
    with pytest.raises(BacktestInputError, match="is the file's timeframe 1h"):
        request(data=[str(ETH)], timeframe="1h").load()


def test_load_header_only_file_holds_no_candles(tmp_path: Path) -> None:
    path = head(ETH, tmp_path / "ETH-BTC_5m.csv", 0)

    with pytest.raises(BacktestInputError, match="holds no candles"):
        request(data=[str(path)]).load()


def test_load_outside_root_refused(tmp_path: Path) -> None:
    req = request(data=[str(ETH)])

    with pytest.raises(BacktestInputError, match="is outside"):
        req.load(root=tmp_path)
    assert set(req.load(root=ROOT / "data")) == {"ETH/BTC"}


def test_run_is_the_engine_run_by_hand(tmp_path: Path) -> None:
    path = head(ETH, tmp_path / "ETH-BTC_5m.csv", 1500)
    req = request(data=[str(path)], commission="0.002", slippage_bps="3")
    seen: list[tuple[int, int]] = []

    result = req.run(lambda done, total: seen.append((done, total)))

    by_hand = run_backtest(
        lambda: build_strategy("sma_cross", SMA),
        {"ETH/BTC": read_candles_csv(path, "ETH/BTC", "5m")},
        BacktestConfig(
            currency="BTC",
            fill_model=FillModelConfig(
                slippage_bps=Decimal(3), taker_fee=Decimal("0.002"), maker_fee=Decimal("0.002")
            ),
            markets={
                "ETH/BTC": MarketRules.from_config("ETH/BTC", None, taker_fee=Decimal("0.002"))
            },
        ),
        strategy_name="sma_cross",
        params=SMA,
    )
    assert result.trades
    assert result.to_json() == by_hand.to_json()
    assert result.strategy == "sma_cross"
    assert result.params == SMA
    assert seen[-1] == (1500, 1500)


def test_run_several_files_share_one_account(tmp_path: Path) -> None:
    eth = head(ETH, tmp_path / "ETH-BTC_5m.csv", 800)
    ltc = head(LTC, tmp_path / "LTC-BTC_5m.csv", 800)
    req = request(data=[str(eth), str(ltc)], risk={"max_open_positions": 1})

    candles = req.load()
    result = req.run(candles=candles)

    assert result.symbols == ["ETH/BTC", "LTC/BTC"]
    assert result.bars == 1600
    assert {t.symbol for t in result.trades} == {"ETH/BTC", "LTC/BTC"}
    # One account: with one position allowed, the two markets' trades never overlap.
    spans = sorted((t.entry_time, t.exit_time) for t in result.trades)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert result.rejections.get("max_open_positions", 0) > 0
