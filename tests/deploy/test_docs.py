"""The documented configuration is the real one: every setting is in the README's
table, and no document names an `ATS_*` variable that nothing reads."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.settings import GatewaySettings
from shared.config import ClientSettings
from triggers.news.cli import NewsSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *(ROOT / "docs" / n for n in ("ARCHITECTURE.md", "PROTOCOL.md", "TRIGGERS.md")),
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
