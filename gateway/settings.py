"""Gateway settings: the common `ATS_*` ones plus the hub's tunables."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, model_validator

from shared.config import CommonSettings, ensure_secret_file, refuse_placeholder
from shared.crypto import resolve_secret_key


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_key: SecretStr | None = Field(
        default=None, description="Operator key for /api/v1; generated in development."
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Fernet key that encrypts exchange credentials at rest."
    )

    ws_max_frame_bytes: int = Field(default=64 * 1024, ge=1024)
    ws_rate_limit: float = Field(default=500.0, gt=0, description="Frames per second per client.")
    ws_rate_burst: int = Field(default=1000, ge=1)
    ws_send_queue: int = Field(default=2000, ge=10, description="Frames queued per client.")
    ws_bad_frame_limit: int = Field(
        default=100, ge=1, description="Rejected frames within a minute before closing 1008."
    )
    ws_ping_interval: float = Field(default=10.0, gt=0)
    ws_ping_timeout: float = Field(default=10.0, gt=0)
    persist_batch_max: int = Field(default=500, ge=1)
    cursor_flush_interval: float = Field(default=0.5, gt=0)
    shutdown_timeout: float = Field(default=10.0, gt=0)

    backtest_workers: int = Field(
        default=2, ge=1, le=256, description="Backtests run at once, each in its own process."
    )
    backtest_data_dirs: list[Path] = Field(
        default_factory=list,
        description="Directories whose candle files backtests may read, besides the "
        "repository's data/ (a JSON list).",
    )
    backtest_progress_interval: float = Field(
        default=0.25, gt=0, description="Seconds between writes of a backtest's progress."
    )

    @model_validator(mode="after")
    def _production_secrets(self) -> Self:
        if self.is_production:
            refuse_placeholder("api_key", self.api_key)
            refuse_placeholder(
                "secret_key",
                self.secret_key,
                how="python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
            )
            assert self.secret_key is not None
            try:
                Fernet(self.secret_key.get_secret_value().encode())
            except ValueError as e:
                raise ValueError(
                    "ATS_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "generate one with Fernet.generate_key()"
                ) from e
        return self

    def resolve_api_key(self) -> tuple[str, bool]:
        """The operator API key, and whether it was generated just now."""
        if self.api_key is not None:
            return self.api_key.get_secret_value(), False
        return ensure_secret_file(self.data_dir / "api_key", prefix="ats_api_")

    def resolve_secret_key(self) -> str:
        configured = self.secret_key.get_secret_value() if self.secret_key else None
        return resolve_secret_key(configured, self.data_dir)
