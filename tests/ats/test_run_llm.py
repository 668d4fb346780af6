"""`ats run`'s LLM demo group: started only with an endpoint configured, on a config
the LLM group accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from ats.run import DEMO_GROUPS, DEMO_LLM_GROUP, Supervisor, demo_llm_config, llm_demo_skipped
from trading_groups.llm.config import parse_config


def supervisor(tmp_path: Path, llm: bool | None = None) -> Supervisor:
    return Supervisor(
        host="127.0.0.1",
        port=8000,
        data_dir=tmp_path,
        api_key="k",
        console=Console(file=None),
        llm=llm,
    )


def test_run_llm_demo_is_skipped_without_an_endpoint_and_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ATS_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("ATS_LLM_MODEL", raising=False)
    assert llm_demo_skipped() == (
        "set ATS_LLM_BASE_URL (and ATS_LLM_MODEL) to an OpenAI-compatible endpoint"
    )
    assert supervisor(tmp_path).group_names() == [g.name for g in DEMO_GROUPS]
    monkeypatch.setenv("ATS_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    assert llm_demo_skipped() == "set ATS_LLM_MODEL to a model at ATS_LLM_BASE_URL"


def test_run_llm_demo_runs_with_an_endpoint_on_a_valid_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ATS_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("ATS_LLM_MODEL", "llama3.1:8b")
    assert llm_demo_skipped() is None
    assert supervisor(tmp_path).group_names()[-1] == DEMO_LLM_GROUP
    assert supervisor(tmp_path, llm=False).group_names() == [g.name for g in DEMO_GROUPS]
    config = parse_config(demo_llm_config())
    assert config.budgets.daily_tokens == 200_000
    assert all(Path(spec.removeprefix("csv:")).is_file() for spec in config.feeds.values())
