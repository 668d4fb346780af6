"""Settings: embedded defaults in development, real secrets required in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from shared.config import CommonSettings


def test_common_settings_default_to_sqlite_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATS_DATABASE_URL", raising=False)
    monkeypatch.setenv("ATS_DATA_DIR", str(tmp_path))
    url = CommonSettings().resolved_database_url
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'ats.db'}"


@pytest.mark.parametrize("api_key", [None, "changeme", ""])
def test_gateway_settings_production_refuses_missing_or_placeholder_key(
    api_key: str | None,
) -> None:
    with pytest.raises(ValidationError, match="ATS_API_KEY must be set"):
        GatewaySettings.model_validate(
            {"env": "production", "api_key": api_key, "secret_key": Fernet.generate_key().decode()}
        )


def test_gateway_settings_production_refuses_a_secret_key_that_is_not_fernet() -> None:
    with pytest.raises(ValidationError, match="not a Fernet key"):
        GatewaySettings.model_validate(
            {"env": "production", "api_key": "k" * 32, "secret_key": "a-real-secret-value"}
        )
    ok = GatewaySettings.model_validate(
        {"env": "production", "api_key": "k" * 32, "secret_key": Fernet.generate_key().decode()}
    )
    assert ok.is_production


def test_gateway_settings_development_generates_and_keeps_the_api_key(tmp_path: Path) -> None:
    settings = GatewaySettings(data_dir=tmp_path)
    key, created = settings.resolve_api_key()
    again, created_again = settings.resolve_api_key()
    assert created and not created_again
    assert key == again and key.startswith("ats_api_")
    assert (tmp_path / "api_key").stat().st_mode & 0o777 == 0o600
