"""Settings common to every service, read from `ATS_*` environment variables.

Each service extends `CommonSettings` with its own fields; all share the prefix so an
operator configures the whole system with one set of variables.
"""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_GATEWAY_URL = "ws://127.0.0.1:8000/ws/events"

_PLACEHOLDERS = frozenset({"changeme", "change-me", "secret", "password", "test", ""})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATS_", extra="ignore", frozen=True)

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(
        default=Path(".ats"), description="Embedded state: SQLite database, generated keys."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite file in data_dir.",
    )
    database_schema: str | None = Field(
        default=None,
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema to use (search_path); default: the server's.",
    )
    gateway_url: str = DEFAULT_GATEWAY_URL
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; default: when not a TTY.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ats.db').resolve()}"

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION


def ensure_secret_file(path: Path, *, nbytes: int = 32, prefix: str = "") -> tuple[str, bool]:
    """Read a generated secret from `path`, creating it (mode 0600) when absent.

    Returns the secret and whether it was created now.
    """
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(nbytes)
    # O_EXCL: two processes starting at once must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value, True


def refuse_placeholder(name: str, value: SecretStr | None, *, how: str | None = None) -> None:
    """Raise when a production secret is missing or a well-known placeholder."""
    if value is None or value.get_secret_value().strip().lower() in _PLACEHOLDERS:
        how = how or "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        raise ValueError(
            f"ATS_{name.upper()} must be set to a real secret when ATS_ENV=production "
            f"(generate one with: {how})"
        )


class ClientSettings(CommonSettings):
    """Settings of a service that connects to the gateway with a token."""

    trigger_token: SecretStr | None = None
    trading_group_token: SecretStr | None = None
    execution_token: SecretStr | None = None


class LLMSettings(ClientSettings):
    """A service that asks language models: the OpenAI-compatible endpoint and the
    models of each tier (`ATS_LLM_BASE_URL`, `ATS_LLM_MODEL` for the cheap tier,
    `ATS_LLM_STRONG_MODEL` for the strong one, `ATS_LLM_API_KEY`).

    Nothing LLM-based starts without `llm_base_url`: the platform is offline by default.
    """

    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_strong_model: str | None = Field(
        default=None, description="The strong tier's model; default: llm_model."
    )
    llm_api_key: SecretStr | None = None

    @property
    def strong_model(self) -> str | None:
        return self.llm_strong_model or self.llm_model
