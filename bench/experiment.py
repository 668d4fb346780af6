"""Run `ats gateway` with prototype changes patched in, to measure a proposal first.

The bench runs a target spelled `postgres/async-commit` through this launcher instead
of the `ats` script: it applies the named patches, then hands over to the CLI. Nothing
here is used by the gateway itself; a patch that pays off is proposed for the real
module (see docs/PERFORMANCE.md) and deleted here once it lands, as `one-statement`
(one INSERT per batch, now `gateway/ws/persist.py`) was.

    python bench/experiment.py async-commit [more patches] -- gateway [ats args]

Patches:
  async-commit  on PostgreSQL, `SET synchronous_commit = off` on the persister's
              connection. A commit returns before its WAL reaches the disk, so a
              PostgreSQL crash (not a gateway crash) can lose the last ~0.2-0.6 s of
              acknowledged events: a trade-off to measure, not a default.
  metric-children  cache the Prometheus children per category instead of calling
              `.labels()` for every frame.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.ws import hub as hub_module  # noqa: E402
from gateway.ws.persist import Persister  # noqa: E402


def _async_commit() -> None:
    # The persister's held connection comes from `_driver()` (one statement per batch).
    name = "_driver"
    original: Any = vars(Persister).get(name)
    if original is None:
        raise SystemExit("async-commit needs a Persister that holds its connection (_driver)")

    async def driver(self: Any) -> Any:
        fresh = self._driver_conn is None
        conn = await original(self)
        if fresh and self._dialect == "postgresql":
            await conn.execute("SET synchronous_commit = off")
        return conn

    setattr(Persister, name, driver)


def _metric_children() -> None:
    """Cache `Counter.labels(category)` children: one dict lookup per frame instead."""

    class _Cached:
        def __init__(self, counter: Any) -> None:
            self._counter = counter
            self._children: dict[tuple[str, ...], Any] = {}

        def labels(self, *values: str) -> Any:
            child = self._children.get(values)
            if child is None:
                child = self._children[values] = self._counter.labels(*values)
            return child

        def __getattr__(self, name: str) -> Any:
            return getattr(self._counter, name)

    original: Callable[..., None] = hub_module.Hub.__init__

    def init(self: hub_module.Hub, **kwargs: Any) -> None:
        original(self, **kwargs)
        self.metrics.frames_in = _Cached(self.metrics.frames_in)  # type: ignore[assignment]
        self.metrics.frames_out = _Cached(self.metrics.frames_out)  # type: ignore[assignment]

    hub_module.Hub.__init__ = init  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    "async-commit": _async_commit,
    "metric-children": _metric_children,
}


def main(argv: Sequence[str]) -> None:
    if "--" not in argv:
        raise SystemExit("usage: experiment.py PATCH... -- gateway [ats args]")
    split = list(argv).index("--")
    for name in argv[:split]:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}: choose from {', '.join(PATCHES)}")
        PATCHES[name]()
    from ats.cli import main as ats_main

    sys.argv = ["ats", *argv[split + 1 :]]
    ats_main()


if __name__ == "__main__":
    main(sys.argv[1:])
