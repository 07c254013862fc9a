"""The projection store as the worker writes it: off the event loop, one write in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import structlog

from mbcjourney.processors.applied_events import PendingRow, append_applied_in
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.store import Checkpoint, ProjectionStore
from mbcjourney.processors.worker.ports import RowWriter
from mbcjourney.projections import Journey

log = structlog.get_logger(__name__)

WRITE_ATTEMPTS = 4
WRITE_BACKOFF_S = 0.5


class LoggedStore:
    """The worker's write (a :data:`RowWriter`): rows, checkpoints, applied events, one transaction.

    The events go last: appending holds the log's lock until the commit (on
    PostgreSQL an exclusive table lock, so the writes of several worker processes
    take turns for that moment; readers never wait for it).
    """

    def __init__(self, store: ProjectionStore, event_log: SqlEventLog) -> None:
        self.store = store
        self.event_log = event_log
        self.conflicts = 0  # applied events the log refused (see processors/applied_events.py)

    def __call__(self, journeys: Sequence[Journey], checkpoints: Sequence[Checkpoint],
                 events: Sequence[PendingRow]) -> None:
        with self.store.engine.begin() as conn:
            self.store.write_in(conn, journeys, checkpoints)
            self.conflicts += append_applied_in(self.event_log, conn, events)


class ProjectionSink:
    """The projection store, written off the event loop: one write in flight at a time.

    A batch's write runs in a thread while the next batch is decoded and
    projected; writes stay in batch order.  A write is retried a few times; if
    it still fails, ``on_failure`` is told (the worker stops) and the next
    :meth:`submit` or :meth:`drain` raises.  A write carries the events applied
    since the previous one, for the SQL event log (``event_log``, beside the store
    by default): :class:`LoggedStore`.
    """

    def __init__(self, store: ProjectionStore, consumer: str, executor: ThreadPoolExecutor,
                 on_failure: Callable[[BaseException], None] = lambda _exc: None,
                 write: RowWriter | None = None, event_log: SqlEventLog | None = None
                 ) -> None:
        self.store = store
        self.consumer = consumer
        self.executor = executor
        self.on_failure = on_failure
        # ``write`` replaces :class:`LoggedStore` (same transaction contract): live alerting
        # evaluates the written patients in that transaction (processors/alerting/live.py).
        self.write_rows: RowWriter = write if write is not None else LoggedStore(
            store, event_log if event_log is not None else SqlEventLog(store.engine))
        self._inflight: asyncio.Future[None] | None = None

    async def checkpoints(self) -> dict[int, int]:
        await self.drain()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.store.checkpoint, self.consumer)

    async def submit(self, journeys: Sequence[Journey], checkpoints: Sequence[Checkpoint],
                     events: Sequence[PendingRow] = ()) -> None:
        """Start writing these rows, checkpoints and applied events once the previous
        write succeeded."""
        await self.drain()
        task = asyncio.ensure_future(self._write(journeys, checkpoints, events))
        task.add_done_callback(self._done)
        self._inflight = task

    async def drain(self) -> None:
        """Wait for the write in flight (raises its error)."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await inflight

    def _done(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("worker.write_failed", error=type(task.exception()).__name__)
            self.on_failure(task.exception())  # type: ignore[arg-type]

    async def _write(self, journeys: Sequence[Journey], checkpoints: Sequence[Checkpoint],
                     events: Sequence[PendingRow]) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                await loop.run_in_executor(self.executor, self.write_rows, journeys,
                                           checkpoints, events)
                return
            except Exception as exc:  # SQLAlchemy errors: retried, then the worker stops
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.warning("worker.write_retry", attempt=attempt, error=type(exc).__name__)
                await asyncio.sleep(WRITE_BACKOFF_S * 2 ** (attempt - 1))
