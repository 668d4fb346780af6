"""Tokens (random, stored hashed, shown once) and encryption of credentials at rest."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from shared.events import Role

_TOKEN_PREFIX = {
    Role.TRIGGER: "ats_trg_",
    Role.TRADING_GROUP: "ats_grp_",
    Role.EXECUTION: "ats_exe_",
}


def new_token(role: Role) -> str:
    return _TOKEN_PREFIX[role] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 cannot be brute-forced and
    # lets the gateway look a token up by its hash in one indexed query.
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class CredentialBox:
    """Encrypts a trade account's credentials with the gateway's Fernet key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, credentials: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(credentials).encode())

    def open(self, sealed: bytes) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(sealed))
        except InvalidToken as e:
            raise ValueError("credentials were sealed with another secret key") from e
        return value
