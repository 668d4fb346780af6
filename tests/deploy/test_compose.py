"""The container files against the code they run, without a Docker engine.

Every service that runs our image must run a command the CLI really has, with options
it really takes, configured by variables that are real settings; the compose file must
refuse to start without the production secrets; the image must run `ats` as a
non-root user.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from pydantic_settings import BaseSettings

from execution.settings import ExecutionSettings
from gateway.settings import GatewaySettings
from shared.config import ClientSettings, LLMSettings
from shared.kernel.strategy import create_strategy

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

#: The settings class each `ats` command reads; add a service's class when it lands.
SETTINGS_OF_COMMAND: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "trigger": ClientSettings,
    "group": ClientSettings,
    "execution": ExecutionSettings,
}
#: Sub-commands that read a wider settings class than their command's.
SETTINGS_OF_SUBCOMMAND: dict[tuple[str, str], type[BaseSettings]] = {
    ("group", "llm"): LLMSettings,
}

_VAR = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def our_services() -> dict[str, dict[str, Any]]:
    """The services that run the image built from this repo."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if "build" in svc or str(svc.get("image", "")).startswith("ats")
    }


def interpolate(value: str, env: dict[str, str]) -> str:
    """Substitute `${VAR}`, `${VAR:-default}` and `${VAR:?error}` as compose does."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        if op == ":?":
            raise LookupError(f"{name}: {arg}")
        return ""

    return _VAR.sub(sub, value)


def trigger_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in our_services().items() if svc["command"][0] == "trigger"}


def group_services() -> dict[str, dict[str, Any]]:
    """The algorithmic groups (`ats group algo`)."""
    return {
        name: svc for name, svc in our_services().items() if svc["command"][:2] == ["group", "algo"]
    }


def llm_group_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in our_services().items() if svc["command"][:2] == ["group", "llm"]
    }


def execution_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in our_services().items() if svc["command"][0] == "execution"}


def client_services() -> dict[str, dict[str, Any]]:
    """The services that connect to the gateway with a token: triggers, groups and
    execution."""
    return {**trigger_services(), **group_services(), **execution_services()}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def options(command: list[str], name: str) -> list[str]:
    """Every value of a repeatable option."""
    return [command[i + 1] for i, arg in enumerate(command) if arg == name]


def assert_read_only_file(name: str, svc: dict[str, Any], path: str) -> None:
    """`path` in the container is a shipped file under a read-only mount of the repo."""
    mounts = [v.split(":") for v in svc.get("volumes", [])]
    host = [
        ROOT / src / Path(path).relative_to(dst)
        for src, dst, *mode in mounts
        if Path(path).is_relative_to(dst) and mode == ["ro"]
    ]
    assert host, f"{name}: {path} is not under a read-only mount of the repository"
    assert host[0].is_file(), f"{name}: {path} is {host[0]} on the host, which does not exist"


def strings(node: Any) -> list[str]:
    """Every string value in a parsed YAML document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def run_ats(*args: str) -> subprocess.CompletedProcess[str]:
    """`ats ARGS` in a fresh interpreter, as the image's entrypoint would run it."""
    return subprocess.run(
        [sys.executable, "-c", "from ats.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        check=False,
    )


def assert_cli_accepts(command: list[str]) -> None:
    """`ats COMMAND --help` parses the options and lists every one of them."""
    result = run_ats(*command, "--help")
    assert result.returncode == 0, f"`ats {' '.join(command)}` is not a valid command:\n" + (
        result.stdout + result.stderr
    )
    for option in (arg.split("=", 1)[0] for arg in command if arg.startswith("--")):
        assert option in result.stdout, f"`ats {command[0]} --help` does not list {option}"


def settings_class(command: list[str]) -> type[BaseSettings]:
    assert command[0] in SETTINGS_OF_COMMAND, (
        f"no settings class known for `ats {command[0]}`: add it to SETTINGS_OF_COMMAND"
    )
    if len(command) > 1 and (command[0], command[1]) in SETTINGS_OF_SUBCOMMAND:
        return SETTINGS_OF_SUBCOMMAND[command[0], command[1]]
    return SETTINGS_OF_COMMAND[command[0]]


def setting_names(cls: type[BaseSettings]) -> set[str]:
    return {f"ATS_{name.upper()}" for name in cls.model_fields}


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines()]
    instructions = [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "")
        for ln in lines
        if ln and not ln.startswith("#")
    ]
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def exec_form(args: str) -> list[str]:
    value: list[str] = json.loads(args)
    return value


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in instructions:
        if op == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def test_dockerfile_final_stage_is_python_312_slim() -> None:
    (op, base), *_ = dockerfile_instructions()
    assert (op, base) == ("FROM", "python:3.12-slim")


def test_dockerfile_entrypoint_is_ats_and_default_command_is_real() -> None:
    instructions = dict(dockerfile_instructions())

    assert exec_form(instructions["ENTRYPOINT"]) == ["ats"]
    assert_cli_accepts(exec_form(instructions["CMD"]))


def test_dockerfile_runs_as_non_root_user() -> None:
    users = [args for op, args in dockerfile_instructions() if op == "USER"]

    assert users, "the final stage has no USER: the services would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_healthcheck_probes_gateway_health() -> None:
    checks = [args for op, args in dockerfile_instructions() if op == "HEALTHCHECK"]

    assert len(checks) == 1 and "/health" in checks[0]


def test_dockerfile_ats_variables_are_real_settings() -> None:
    cmd = exec_form(dict(dockerfile_instructions())["CMD"])
    env = {k: v for k, v in dockerfile_env(dockerfile_instructions()).items() if k[:4] == "ATS_"}

    assert env.keys() <= setting_names(settings_class(cmd))
    settings_class(cmd).model_validate({k[4:].lower(): v for k, v in env.items()})


def test_dockerfile_copies_only_files_in_the_build_context() -> None:
    ignored = {ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()}
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    sources = [
        src
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for src in line.split()[1:-1]
    ]

    assert sources
    for src in sources:
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"
        assert src not in ignored, f"Dockerfile copies {src}, which .dockerignore excludes"


# --------------------------------------------------------------------------- compose


def test_compose_services_of_our_image_run_real_cli_commands() -> None:
    services = our_services()

    assert "gateway" in services
    for name, svc in services.items():
        command = svc["command"]
        assert isinstance(command, list), f"{name}: write `command` in exec (list) form"
        assert_cli_accepts(command)


@pytest.mark.parametrize("name", sorted(our_services()))
def test_compose_ats_variables_are_real_settings(name: str) -> None:
    svc = our_services()[name]
    cls = settings_class(svc["command"])
    env = {k: str(v) for k, v in svc.get("environment", {}).items()}
    secrets = {"ATS_API_KEY": "k" * 43, "ATS_SECRET_KEY": Fernet.generate_key().decode()}

    ats_vars = {k for k in env if k.startswith("ATS_")}
    assert ats_vars <= setting_names(cls), f"{name}: not settings: {ats_vars - setting_names(cls)}"
    values = {k[4:].lower(): interpolate(v, secrets) for k, v in env.items() if k in ats_vars}
    cls.model_validate(values)  # the values as compose would pass them are valid settings


def test_compose_without_production_secrets_refuses_to_start() -> None:
    env = our_services()["gateway"]["environment"]

    assert env["ATS_ENV"] == "production"
    for var in ("ATS_API_KEY", "ATS_SECRET_KEY"):
        with pytest.raises(LookupError, match=var):
            interpolate(str(env[var]), {})


def test_compose_gateway_waits_for_healthy_postgres_and_reports_ready() -> None:
    services = compose()["services"]
    gateway = services["gateway"]

    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/ready" in " ".join(gateway["healthcheck"]["test"])
    assert interpolate(gateway["environment"]["ATS_DATABASE_URL"], {}).startswith(
        "postgresql+asyncpg://"
    )


def test_compose_trigger_services_exist_and_wait_for_a_healthy_gateway() -> None:
    triggers = trigger_services()

    assert {option(svc["command"], "--symbol") for svc in triggers.values()} >= {
        "ETH/BTC",
        "LTC/BTC",
    }
    for name, svc in client_services().items():
        assert svc["depends_on"]["gateway"]["condition"] == "service_healthy", name
        assert svc["restart"] == "on-failure", name
        # The image's HEALTHCHECK probes the gateway's HTTP port; a client has none.
        assert svc["healthcheck"] == {"disable": True}, name


def test_compose_client_services_connect_to_the_gateway_service_port() -> None:
    gateway = compose()["services"]["gateway"]
    port = option(gateway["command"], "--port")

    for name, svc in client_services().items():
        assert svc["environment"]["ATS_GATEWAY_URL"] == f"ws://gateway:{port}/ws/events", name


def test_compose_trigger_feeds_are_shipped_files_mounted_read_only() -> None:
    for name, svc in trigger_services().items():
        feed = option(svc["command"], "--feed")
        assert feed.startswith("csv:/"), f"{name}: replay an absolute csv: path in the container"
        assert_read_only_file(name, svc, feed.removeprefix("csv:"))


def test_compose_trigger_tokens_are_not_required_to_start_the_gateway() -> None:
    # Compose interpolates every service, whatever the profiles, before it selects
    # any (docker/compose#11977): a `${TOKEN:?}` would block `make up` before the
    # gateway exists to issue the tokens.
    secrets = {"ATS_API_KEY": "k" * 43, "ATS_SECRET_KEY": Fernet.generate_key().decode()}

    for value in strings(compose()):
        interpolate(value, secrets)
    for name, svc in trigger_services().items():
        assert "triggers" in svc.get("profiles", []), f"{name}: put it in the triggers profile"
        assert interpolate(svc["environment"]["ATS_TRIGGER_TOKEN"], {}) == ""
    for name, svc in group_services().items():
        assert "groups" in svc.get("profiles", []), f"{name}: put it in the groups profile"
        assert interpolate(svc["environment"]["ATS_TRADING_GROUP_TOKEN"], {}) == ""
    for name, svc in execution_services().items():
        assert "execution" in svc.get("profiles", []), f"{name}: put it in the execution profile"
        assert interpolate(svc["environment"]["ATS_EXECUTION_TOKEN"], {}) == ""
    for name, svc in llm_group_services().items():
        # Not in `groups`: it needs a model endpoint and spends money, so it is asked for.
        assert svc.get("profiles") == ["llm"], f"{name}: put it in the llm profile alone"
        assert interpolate(svc["environment"]["ATS_TRADING_GROUP_TOKEN"], {}) == ""


# --------------------------------------------------------------------------- compose: groups


def test_compose_group_services_run_the_demo_strategies_on_the_trigger_markets() -> None:
    groups = group_services()
    markets = {option(svc["command"], "--symbol") for svc in trigger_services().values()}

    assert [svc["command"][:2] for svc in groups.values()] == [["group", "algo"]] * len(groups)
    assert {option(svc["command"], "--strategy") for svc in groups.values()} >= {
        "sma_cross",
        "ensemble",
    }
    for name, svc in groups.items():
        fed = {feed.split("=", 1)[0] for feed in options(svc["command"], "--feed")}
        assert fed >= markets, f"{name}: no feed for {sorted(markets - fed)}: it could not decide"


def test_compose_group_params_build_their_strategy() -> None:
    for name, svc in group_services().items():
        command = svc["command"]
        try:
            create_strategy(option(command, "--strategy"), json.loads(option(command, "--params")))
        except ValueError as e:
            pytest.fail(f"{name}: the group would exit 2 at start: {e}")


def test_compose_group_feeds_are_shipped_files_mounted_read_only() -> None:
    for name, svc in group_services().items():
        feeds = options(svc["command"], "--feed")
        assert feeds, f"{name}: give its feeds as flags, or its REST config must hold them"
        for feed in feeds:
            symbol, _, spec = feed.partition("=")
            assert symbol and spec.startswith("csv:/"), f"{name}: {feed} is not SYMBOL=csv:/PATH"
            assert_read_only_file(name, svc, spec.removeprefix("csv:"))


def test_compose_llm_group_records_in_the_gateways_database_and_is_offline_by_default() -> None:
    gateway = compose()["services"]["gateway"]["environment"]
    services = llm_group_services()
    secrets = {"ATS_API_KEY": "k" * 43, "ATS_SECRET_KEY": Fernet.generate_key().decode()}

    assert services, "no service runs `ats group llm`"
    for name, svc in services.items():
        env = svc["environment"]
        # Its calls, discussions and reflections are what /llm-usage and /discussions read.
        assert interpolate(env["ATS_DATABASE_URL"], secrets) == interpolate(
            gateway["ATS_DATABASE_URL"], secrets
        ), name
        # No endpoint unless the operator gives one: the group exits 2 rather than call out.
        settings = LLMSettings.model_validate(
            {k[4:].lower(): interpolate(str(v), {}) for k, v in env.items() if k != "ATS_API_KEY"}
        )
        assert not settings.llm_base_url and not settings.llm_api_key, name
        assert interpolate(env["ATS_LLM_BASE_URL"], {"ATS_LLM_BASE_URL": "http://x/v1"}) == (
            "http://x/v1"
        )
        # Its feeds come from the REST config as csv:/app/data/... paths.
        assert_read_only_file(name, svc, "/app/data/LTC-BTC_5m.csv")


# --------------------------------------------------------------------------- compose: execution


def test_compose_execution_service_shares_the_gateways_database_and_secret_key() -> None:
    gateway = compose()["services"]["gateway"]["environment"]
    services = execution_services()
    secrets = {"ATS_API_KEY": "k" * 43, "ATS_SECRET_KEY": Fernet.generate_key().decode()}

    assert services, "no service runs `ats execution`"
    for name, svc in services.items():
        env = svc["environment"]
        # It writes orders, fills and positions where the gateway's REST API reads them.
        assert interpolate(env["ATS_DATABASE_URL"], secrets) == interpolate(
            gateway["ATS_DATABASE_URL"], secrets
        ), name
        # The key the gateway sealed the accounts' exchange credentials with.
        assert interpolate(env["ATS_SECRET_KEY"], secrets) == secrets["ATS_SECRET_KEY"], name
        with pytest.raises(LookupError, match="ATS_SECRET_KEY"):
            interpolate(str(env["ATS_SECRET_KEY"]), {})


def test_compose_execution_state_is_on_a_volume_and_replay_data_read_only() -> None:
    for name, svc in execution_services().items():
        mounts = [v.split(":") for v in svc.get("volumes", [])]
        named = set(compose().get("volumes") or {})
        # Paper accounts keep their simulated exchange under ATS_DATA_DIR (/data).
        assert any(src in named and dst == "/data" for src, dst, *_ in mounts), name
        # A paper account may replay the shipped candles (csv:/app/data/...).
        assert_read_only_file(name, svc, "/app/data/ETH-BTC_5m.csv")
