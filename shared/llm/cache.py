"""Model answers kept by prompt, so asking the same again is free and gives the same.

A backtest of an LLM group asks the team the same questions on every run over the
same candles; the first run pays, the next ones read the answers back. The key is
what decides the answer: the model and the messages (`prompt_hash`), the call
settings that change it (temperature, output cap), the answer format (JSON mode) and
the schema asked for. The endpoint's URL and key are not in it: the same model behind
another address answers the same question the same way, and a test's local server
listens on a new port every time.

Only answers the model gave are kept: `ok` and `invalid` (a second run then shows the
same invalid text and asks the same correction). A failed call (`error`: a timeout, a
refused key, a 5xx after the retries) is not, so the next run asks again.

Entries are JSON files named by their key under one directory, written to a temporary
name and renamed into place, so concurrent runs (a sweep, two terminals) never read
half an entry, and an entry can be read or deleted by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from shared.llm.client import ChatMessage, ModelAnswer, ModelSpec, prompt_hash

#: Bumped when what an entry holds, or how its key is made, changes.
CACHE_VERSION = 1
#: The way every call asks for its object (`StructuredModel`): part of the key.
ANSWER_FORMAT = "json_mode"


def answer_key(spec: ModelSpec, messages: Sequence[ChatMessage], schema: type[BaseModel]) -> str:
    """The cache key of a call: SHA-256 (hex) of its prompt hash and the settings that
    change the answer, as canonical JSON."""
    canonical = json.dumps(
        {
            "version": CACHE_VERSION,
            "prompt_hash": prompt_hash(spec.model, messages),
            "temperature": spec.temperature,
            "max_tokens": spec.max_tokens,
            "format": ANSWER_FORMAT,
            "schema": schema.__name__,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AnswerCache:
    """Answers by key (`answer_key`), one JSON file each under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key (64 hex digits): {key!r}")
        # Two levels, as git does, so no directory grows to millions of files.
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str, schema: type[BaseModel]) -> ModelAnswer | None:
        """The stored answer, or None when there is none or it no longer reads as
        `schema` (then the call is made again and the entry replaced)."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable or half-written by hand: ask again
        try:
            return _answer(data, schema)
        except (KeyError, TypeError, ValueError, ValidationError):
            return None

    def put(
        self,
        key: str,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        answer: ModelAnswer,
    ) -> bool:
        """Keep `answer` under `key`, unless it is a failed call; return whether kept."""
        if answer.status == "error":
            return False
        data = {
            "version": CACHE_VERSION,
            "key": key,
            "prompt_hash": prompt_hash(model, messages),
            "model": model,
            "status": answer.status,
            "parsed": None if answer.parsed is None else answer.parsed.model_dump(mode="json"),
            "text": answer.text,
            "error": answer.error,
            "tokens_in": answer.tokens_in,
            "tokens_out": answer.tokens_out,
            "latency_ms": answer.latency_ms,
            "messages": [m.to_json() for m in messages],
        }
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return True


def _answer(data: dict[str, Any], schema: type[BaseModel]) -> ModelAnswer | None:
    if data.get("version") != CACHE_VERSION:
        return None
    status = data["status"]
    if status == "ok":
        parsed: BaseModel | None = schema.model_validate(data["parsed"])
    elif status == "invalid":
        parsed = None
    else:
        return None
    return ModelAnswer(
        status=status,
        parsed=parsed,
        text=data["text"],
        error=data["error"],
        tokens_in=int(data["tokens_in"]),
        tokens_out=int(data["tokens_out"]),
        latency_ms=0.0,
    )
