"""Exchange credentials at rest: sealed by the gateway, opened only by execution.

One Fernet key (`ATS_SECRET_KEY`, or in development a key generated once into
`ATS_DATA_DIR/secret.key`) serves both: the gateway seals what an operator sends and
never opens it; the execution service opens it in memory to sign its requests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class CredentialBox:
    """Encrypts and decrypts a trade account's credentials with the Fernet key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials).encode())

    def open(self, sealed: bytes) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(sealed))
        except InvalidToken as e:
            raise ValueError(
                "credentials were sealed with another secret key: give this service the "
                "gateway's ATS_SECRET_KEY"
            ) from e
        return value


def resolve_secret_key(configured: str | None, data_dir: Path) -> str:
    """The configured key, else the development key in `data_dir` (created once, 0600)."""
    if configured is not None:
        return configured
    path = data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode() + "\n")
    return path.read_text().strip()
