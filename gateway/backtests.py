"""Backtests requested through the REST API: run in worker processes, persisted.

A backtest is CPU-bound for seconds to minutes, so it never runs on the event loop:
`BacktestRunner` owns a `ProcessPoolExecutor` (created on the first request, at most
`backtest_workers` processes). Workers are forked from a `forkserver`, a clean
single-threaded process that imported the backtester once: forking the gateway
itself, which runs threads, could copy a lock in a held state, and `spawn` would
import everything again in every worker. The database
row is the record: `queued` when accepted, `running` once a worker picks it up,
then `done` with the result or `failed` with the error.

Workers report over one `multiprocessing` queue: when they start a run and, at most
every `progress_interval` seconds, how far it got. A thread in the gateway reads
the queue and hands the messages to the event loop, which coalesces them and writes
them at most once per interval, whatever the number of runs.

A worker process cannot outlive the gateway's knowledge of it: at shutdown the
runner tells the workers to stop (their progress callback raises), marks what they
were running failed, and at start it marks failed whatever a previous process left
`queued` or `running` (it was killed before it could). This assumes one gateway per
database, as the event hub does.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db import crud
from shared.backtest.data import BacktestRequest
from shared.backtest.metrics import compute_metrics
from shared.logging import get_logger

log = get_logger(__name__)

RESTARTED = "interrupted by a restart: the gateway stopped before the backtest finished"
STOPPED = "interrupted: the gateway shut down while the backtest ran; submit it again"

type Message = tuple[str, str, float]  # (kind, backtest id, value)

#: Relative data paths are read from here, and its data/ is always readable.
REPO = Path(__file__).resolve().parents[1]
SHIPPED_DATA = REPO / "data"


class DataPathError(ValueError):
    """A request's data file (`data[index]`) may not or cannot be read."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def confine_data(request: BacktestRequest, allowed: Sequence[Path]) -> BacktestRequest:
    """The request with every data path made absolute, each checked to be a file
    inside the repository's data/ or one of `allowed`.

    A request comes from the network, so its paths are untrusted: a relative one is
    taken from the repository root (not the gateway's working directory), and each is
    resolved (`..` and symlinks followed) before the check, so neither can step out.
    The stored request holds the resolved paths, which are the files the worker reads.

    Raises:
        DataPathError: a path outside those directories, or not an existing file.
    """
    roots = [SHIPPED_DATA.resolve(), *((REPO / d).resolve() for d in allowed)]
    sources = []
    for index, source in enumerate(request.data):
        path = (REPO / source.path).resolve()
        if not any(path.is_relative_to(root) for root in roots):
            raise DataPathError(
                index,
                f"{source.path} is outside the directories backtests may read: put the file "
                "in the repository's data/ or in a directory listed in ATS_BACKTEST_DATA_DIRS",
            )
        if not path.is_file():
            raise DataPathError(index, f"{source.path}: no such file")
        sources.append(source.model_copy(update={"path": path}))
    return request.model_copy(update={"data": sources})


# --------------------------------------------------------------------------- worker side

# Set once per worker process by `_init_worker`: the channel back to the gateway.
_worker_queue: Queue[Message | None] | None = None
_worker_cancel: Event | None = None


class Interrupted(Exception):
    """The gateway is shutting down: stop this run."""


def _init_worker(queue: Queue[Message | None], cancel: Event) -> None:
    global _worker_queue, _worker_cancel  # noqa: PLW0603 - per-process state, set once
    _worker_queue, _worker_cancel = queue, cancel


def run_job(backtest_id: str, request: dict[str, Any], interval: float) -> dict[str, Any]:
    """Run one backtest in a worker process; return `{"result", "metrics"}` or
    `{"error"}`. Never raises: an exception object may not survive the trip back."""
    queue, cancel = _worker_queue, _worker_cancel
    if queue is not None:
        queue.put(("started", backtest_id, time.time()))
    last = time.monotonic()

    def progress(done: int, total: int) -> None:
        nonlocal last
        if cancel is not None and cancel.is_set():
            raise Interrupted(STOPPED)
        now = time.monotonic()
        if queue is not None and now - last >= interval and total:
            last = now
            queue.put(("progress", backtest_id, done / total))

    try:
        result = BacktestRequest.model_validate(request).run(progress=progress)
        # JSON (and PostgreSQL's jsonb) has no infinity: an unbounded ratio is undefined.
        metrics = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in compute_metrics(result).to_json().items()
        }
    except Interrupted:
        return {"error": STOPPED}
    except Exception as e:  # any failure of the run is the backtest's outcome
        return {"error": describe_error(e)}
    return {"result": {**result.to_json(), "metrics": metrics}, "metrics": metrics}


def describe_error(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --------------------------------------------------------------------------- gateway side


def utcnow() -> datetime:
    return datetime.now(UTC)


class BacktestRunner:
    """Runs backtests in worker processes and keeps their rows up to date.

    Args:
        sessionmaker: the gateway's database sessions.
        max_workers: at most this many backtests run at once; the rest wait, queued.
        progress_interval: seconds between progress writes (and worker reports).
        shutdown_timeout: how long `shutdown` waits for the workers to stop.
        clock: the time written in `started_at` / `finished_at`.
    """

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        max_workers: int,
        progress_interval: float = 0.25,
        shutdown_timeout: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._max_workers = max_workers
        self._interval = progress_interval
        self._shutdown_timeout = shutdown_timeout
        self._clock = clock
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([__name__])
        self._pool: ProcessPoolExecutor | None = None
        self._queue: Queue[Message | None] | None = None
        self._cancel: Event | None = None
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._started: dict[str, datetime] = {}
        self._progress: dict[str, float] = {}
        self._dirty = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def running(self) -> int:
        """Backtests submitted and not yet finished (queued or running)."""
        return len(self._jobs)

    async def recover(self) -> int:
        """Mark failed what a previous gateway left queued or running; returns how many."""
        async with self._sessionmaker() as session:
            count = await crud.fail_unfinished_backtests(
                session=session, error=RESTARTED, at=self._clock()
            )
            await session.commit()
        if count:
            log.warning("backtests_interrupted", count=count)
        return count

    def submit(self, backtest_id: str, request: dict[str, Any]) -> None:
        """Start a stored, queued backtest in the pool (in the background)."""
        if self._closing:
            raise RuntimeError("the backtest runner is shut down")
        self._jobs[backtest_id] = asyncio.create_task(
            self._job(backtest_id, request), name=f"backtest-{backtest_id}"
        )

    async def _job(self, backtest_id: str, request: dict[str, Any]) -> None:
        try:
            pool = self._ensure_pool()
            # Off the event loop: a submit may start a worker, which waits for the
            # fork server (seconds, the first time, while it imports the backtester).
            future = await asyncio.to_thread(
                pool.submit, run_job, backtest_id, request, self._interval
            )
            outcome = await asyncio.wrap_future(future)
        except BrokenProcessPool as e:
            # A worker died (killed, out of memory): every run in the pool is lost, and
            # the pool with it; the next request starts a new one.
            self._drop_pool()
            outcome = {"error": f"the worker process died: {describe_error(e)}"}
        except asyncio.CancelledError:
            outcome = {"error": STOPPED}
        except Exception as e:  # the submit itself failed: report it on the backtest
            log.exception("backtest_submit_failed", backtest_id=backtest_id)
            outcome = {"error": describe_error(e)}
        try:
            await self._finish(backtest_id, outcome)
        finally:
            self._jobs.pop(backtest_id, None)

    async def _finish(self, backtest_id: str, outcome: dict[str, Any]) -> None:
        started = self._started.pop(backtest_id, None)
        self._progress.pop(backtest_id, None)
        async with self._sessionmaker() as session:
            await crud.finish_backtest(
                session=session,
                backtest_id=backtest_id,
                at=self._clock(),
                started_at=started,
                result=outcome.get("result"),
                metrics=outcome.get("metrics"),
                error=outcome.get("error"),
            )
            await session.commit()
        log.info(
            "backtest_finished",
            backtest_id=backtest_id,
            status="failed" if "error" in outcome else "done",
        )

    # ------------------------------------------------------------------ the pool

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is not None:
            return self._pool
        if self._queue is None or self._cancel is None:
            self._loop = asyncio.get_running_loop()
            self._queue = self._context.Queue()
            self._cancel = self._context.Event()
            self._reader = threading.Thread(
                target=self._read, name="backtest-progress", daemon=True
            )
            self._reader.start()
            self._writer = asyncio.create_task(self._write(), name="backtest-progress-writer")
        self._pool = ProcessPoolExecutor(
            max_workers=self._max_workers,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=(self._queue, self._cancel),  # inherited: queues cannot be pickled
        )
        log.info("backtest_pool_started", max_workers=self._max_workers, pid=os.getpid())
        return self._pool

    def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _read(self) -> None:
        """Thread: hand the workers' messages to the event loop until the sentinel."""
        assert self._queue is not None
        assert self._loop is not None
        while True:
            message = self._queue.get()
            if message is None:
                return
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                self._loop.call_soon_threadsafe(self._on_message, message)

    def _on_message(self, message: Message) -> None:
        kind, backtest_id, value = message
        if backtest_id not in self._jobs:
            return  # finished already: a late report must not undo the outcome
        if kind == "started":
            self._started[backtest_id] = datetime.fromtimestamp(value, UTC)
        elif kind == "progress":
            self._progress[backtest_id] = value
        self._dirty.set()

    async def _write(self) -> None:
        """Task: write the latest starts and progress, at most once per interval."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            started = {k: v for k, v in self._started.items() if k in self._jobs}
            progress = {k: v for k, v in self._progress.items() if k in self._jobs}
            try:
                async with self._sessionmaker() as session:
                    for backtest_id, at in started.items():
                        await crud.mark_backtest_running(
                            session=session, backtest_id=backtest_id, at=at
                        )
                    await crud.set_backtest_progress(session=session, progress=progress)
                    await session.commit()
            except Exception:  # progress is advisory: a failed write must not stop the next
                log.exception("backtest_progress_write_failed")
            await asyncio.sleep(self._interval)

    async def shutdown(self) -> None:
        """Stop the workers, mark what they ran failed, and release the pool."""
        self._closing = True
        if self._cancel is not None:
            self._cancel.set()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(
                    asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True),
                    self._shutdown_timeout,
                )
            except TimeoutError:
                log.warning("backtest_pool_shutdown_timeout", timeout=self._shutdown_timeout)
        jobs = list(self._jobs.values())
        if jobs:
            _, pending = await asyncio.wait(jobs, timeout=self._shutdown_timeout)
            for task in pending:
                task.cancel()
        ids = list(self._jobs)
        if ids:
            async with self._sessionmaker() as session:
                await crud.fail_unfinished_backtests(
                    session=session, error=STOPPED, at=self._clock(), ids=ids
                )
                await session.commit()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._queue is not None:
            self._queue.put(None)
            if self._reader is not None:
                await asyncio.to_thread(self._reader.join, self._shutdown_timeout)
            self._queue.close()
            self._queue.join_thread()
        # Their semaphores are released when the last reference goes: uvicorn ends the
        # process by re-raising SIGTERM, which skips the exit hooks that would.
        self._queue = self._cancel = self._reader = None
