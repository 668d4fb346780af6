"""Which articles were already handled, kept in a small file across restarts.

One article id a line, oldest first. The file is rewritten whole through a temporary
file and a rename, so a crash leaves either the old or the new version, never half
of one. It keeps the most recent `limit` ids: enough to cover every item a feed still
lists (feeds list the latest tens to hundreds), without growing forever.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

HEADER = "# ats news trigger: ids of handled articles, oldest first\n"


class StateError(ValueError):
    """The state file cannot be used; the message says what to do."""


class SeenArticles:
    """The ids of handled articles, persisted in `path`."""

    def __init__(self, path: Path, *, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError(f"the state limit must be positive, got {limit}")
        self.path = path
        self.limit = limit
        self._ids: dict[str, None] = {}  # insertion-ordered: oldest first

    @classmethod
    def load(cls, path: Path, *, limit: int = 10_000) -> SeenArticles:
        """Read `path` (a missing file is an empty state) and check it can be written."""
        seen = cls(path, limit=limit)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                for line in path.read_text(encoding="utf-8").splitlines():
                    line = line.strip()
                    if line and not line.startswith("#"):
                        seen._ids[line] = None
        except (OSError, UnicodeDecodeError) as e:
            raise StateError(
                f"cannot use the state file {path}: {e}; fix its permissions, or point "
                "--state at another file"
            ) from e
        if not os.access(path.parent, os.W_OK):
            raise StateError(
                f"cannot write the state file in {path.parent}: make it writable, or point "
                "--state at another file"
            )
        seen._trim()
        return seen

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, article_id: str) -> None:
        """Remember `article_id` and save, before returning."""
        self._ids.pop(article_id, None)
        self._ids[article_id] = None
        self._trim()
        self.save()

    def _trim(self) -> None:
        excess = len(self._ids) - self.limit
        if excess > 0:
            for key in list(self._ids)[:excess]:
                del self._ids[key]

    def save(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                f.write(HEADER)
                f.writelines(f"{i}\n" for i in self._ids)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is; not every OS allows it.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
