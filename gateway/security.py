"""Tokens: random, stored hashed, shown once. (Credentials at rest: `shared.crypto`.)"""

from __future__ import annotations

import hashlib
import hmac
import secrets

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
