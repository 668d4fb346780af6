"""The documented configuration is the real one: every setting is in the README's
table, no document names an `ATS_*` variable that nothing reads, and every `ats`
command a document shows takes the options it is shown with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from execution.settings import ExecutionSettings
from gateway.settings import GatewaySettings
from shared.config import ClientSettings, LLMSettings
from triggers.news.cli import NewsSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *(
        ROOT / "docs" / n
        for n in (
            "ARCHITECTURE.md",
            "PROTOCOL.md",
            "TRIGGERS.md",
            "GROUPS.md",
            "EXECUTION.md",
            "DEPENDENCIES.md",
        )
    ),
]
#: Read by the test suite (tests/conftest.py), not by any service.
TEST_VARIABLES = {"ATS_TEST_DATABASE_URL", "ATS_TEST_TIMEOUT_FACTOR"}


def compose_variables() -> set[str]:
    """Variables docker-compose.yml substitutes (per-service trigger tokens)."""
    text = (ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"\$\{(ATS_\w+?)(?::[-?][^}]*)?\}", text))


def settings() -> set[str]:
    fields = {
        *GatewaySettings.model_fields,
        *ClientSettings.model_fields,
        *NewsSettings.model_fields,
        *LLMSettings.model_fields,
        *ExecutionSettings.model_fields,
    }
    return {f"ATS_{name.upper()}" for name in fields}


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]

    missing = settings() - set(re.findall(r"`(ATS_[A-Z_]+)`", table))
    assert not missing, f"README's configuration table does not list {sorted(missing)}"


def test_docs_name_only_real_variables() -> None:
    for doc in DOCS:
        named = set(re.findall(r"\bATS_[A-Z][A-Z_]*[A-Z]\b", doc.read_text()))
        unknown = named - settings() - TEST_VARIABLES - compose_variables()
        assert not unknown, f"{doc.name} names variables nothing reads: {sorted(unknown)}"


# `ats SUBCOMMAND` (with the kind of trigger or the group's kind), then its arguments.
_ATS = re.compile(
    r"\bats (?P<command>group [a-z]+|ml [a-z]+|trigger [a-z_]+|db [a-z]+|gateway|run|schema)"
    r"(?P<args>.*)"
)
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def shown_commands(text: str) -> set[tuple[str, str]]:
    """(command, option) for every option of an `ats` command in a shell block or an
    inline code span; continuation lines are joined, placeholders like KIND skipped."""
    found: set[tuple[str, str]] = set()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
    spans = re.findall(r"(?<!`)`(ats [^`]+)`(?!`)", text)
    chunks = [b.replace("\\\n", " ") for b in blocks] + [s.replace("\n", " ") for s in spans]
    lines = [line for chunk in chunks for line in chunk.splitlines()]
    for line in lines:
        m = _ATS.search(line)
        if m is None:
            continue
        args = re.split(r"\s(?:\||>|&&|;)\s", m["args"])[0]
        found.add((m["command"], ""))
        found.update((m["command"], option) for option in _OPTION.findall(args))
    return found


@cache
def help_text(command: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "from ats.cli import main; main()", *command.split(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        check=False,
    )
    assert result.returncode == 0, f"`ats {command}` is not a command:\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_docs_show_ats_commands_with_real_options(doc: Path) -> None:
    for command, option in sorted(shown_commands(doc.read_text())):
        text = help_text(command)
        if option:
            assert option in text, f"{doc.name} shows `ats {command} {option}`, which it lacks"
