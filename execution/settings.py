"""Execution settings: the common client ones plus the live-trading opt-in."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from shared.config import ClientSettings

#: The exact value `ATS_ENABLE_LIVE_TRADING` must have before any order of a live
#: account is sent. A value, not a boolean: `1`, `true` or a stray `yes` in an
#: environment file must not be enough to trade real money.
LIVE_TRADING_CONFIRMATION = "I-ACCEPT-REAL-MONEY-RISK"


class ExecutionSettings(ClientSettings):
    secret_key: SecretStr | None = Field(
        default=None, description="The gateway's Fernet key, to open exchange credentials."
    )
    enable_live_trading: str | None = Field(
        default=None,
        description=f"Set to {LIVE_TRADING_CONFIRMATION} to let live-mode accounts trade.",
    )
    sync_interval: float = Field(default=2.0, gt=0, description="Seconds between sync rounds.")
    order_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for an order's acknowledgement."
    )
    snapshot_interval: float = Field(
        default=60.0, gt=0, description="Seconds between equity snapshots (and after fills)."
    )

    @model_validator(mode="after")
    def _confirmation(self) -> Self:
        value = self.enable_live_trading
        if value not in (None, "", LIVE_TRADING_CONFIRMATION):
            raise ValueError(
                "ATS_ENABLE_LIVE_TRADING is set but is not the confirmation value: set it to "
                f"{LIVE_TRADING_CONFIRMATION} to allow live trading, or unset it"
            )
        return self

    @property
    def live_trading_enabled(self) -> bool:
        return self.enable_live_trading == LIVE_TRADING_CONFIRMATION
