"""The dashboard's bundled copy of the LLM group config's schema is the model's.

The gateway cannot serve it (it imports no service, and `LLMGroupConfig` lives in
`trading_groups.llm`), so the dashboard carries it: `dashboard/src/schemas/llm-group.json`,
written by `make dashboard-schemas` (this module, run as a script) and built in with
`make dashboard`. This test fails when the model changed and the copy did not.
"""

from __future__ import annotations

import json
import sys

from tests.conftest import ROOT
from trading_groups.llm.config import LLMGroupConfig, RiskMode, default_team

BUNDLED = ROOT / "dashboard" / "src" / "schemas" / "llm-group.json"


def llm_group_schema() -> str:
    """The file's text: the config's JSON Schema and the default team of each risk mode
    (what "Customize the team" starts from)."""
    document = {
        "schema": LLMGroupConfig.model_json_schema(),
        "default_teams": {
            mode.value: [m.model_dump(mode="json", exclude_none=True) for m in default_team(mode)]
            for mode in RiskMode
        },
    }
    return json.dumps(document, indent=2) + "\n"


def test_dashboard_bundled_llm_group_schema_matches_the_model() -> None:
    assert BUNDLED.read_text() == llm_group_schema(), (
        "LLMGroupConfig changed: run `make dashboard-schemas dashboard` and commit the result"
    )


if __name__ == "__main__":
    sys.stdout.write(llm_group_schema())
