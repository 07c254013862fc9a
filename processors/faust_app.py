"""The faust-streaming app of the live worker, built by :func:`create_app` (nothing at import).

One agent, ``project-patients``, reads the event topic in batches
(``stream.take_events``) and hands them to the
:class:`~mbcjourney.processors.worker.BatchProcessor`.  Patient histories live in a
faust table, ``patient-history``, whose store is in memory and whose changelog is
the durable copy:

* one record per source partition per batch (more when large), on the changelog
  partition of the same number, so a partition's histories are recovered by
  whichever worker owns it; the key is the delta's highest source offset;
* value = a *delta*, the events the batch added (each body names its patient;
  :mod:`~mbcjourney.processors.histories`), so the changelog is append-only:
  ``cleanup.policy=delete`` with ``retention.ms=-1``, never compacted;
* recovery replays the deltas in order; replaying one twice adds nothing.

faust's own ``table[key] = value`` is not used: inside ``take_events`` faust would
route the changelog write by the *current* event's partition, which for a batch
is whichever record came last.  Deltas are sent with an explicit partition.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import structlog
from yarl import URL

from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.histories import Histories
from mbcjourney.processors.kafkaio import SourceRecord, dead_letter_message
from mbcjourney.processors.kafkaread import RangeReader
from mbcjourney.processors.sealing import Cipher
from mbcjourney.processors.worker import (
    HEARTBEAT_S,
    TAKE_CHUNK,
    BatchProcessor,
    ProjectionSink,
    WorkerConfig,
)

if TYPE_CHECKING:
    from mbcjourney.processors.alerting import LiveAlerts

log = structlog.get_logger(__name__)

TABLE_NAME = "patient-history"
SESSION_TIMEOUT_S = 10.0
AGENT_NAME = "project-patients"
# A table recovery with no changelog record for this long has stalled (seen once in
# tests after a rebalance: faust waited on its changelog partitions for ever, while
# the heartbeat said all was well).  The worker then stops, to be restarted.
RECOVERY_STALL_S = 120.0
RECOVERY_CHECK_S = 10.0
FETCH_BYTES_PER_PARTITION = 8 << 20


class RecoveryWatch:
    """Notices a table recovery that stopped making progress; times are passed in."""

    def __init__(self, stall_s: float = RECOVERY_STALL_S) -> None:
        self.stall_s = stall_s
        self._progress_at: float | None = None  # None: no recovery under way

    def started(self, partitions: int, now: float) -> None:
        """A rebalance: recovery of ``partitions`` assigned partitions begins (none: nothing)."""
        self._progress_at = now if partitions else None

    def progressed(self, now: float) -> None:
        if self._progress_at is not None:
            self._progress_at = now

    def completed(self) -> None:
        self._progress_at = None

    def stalled_for(self, now: float) -> float | None:
        """Seconds without progress, once that reaches ``stall_s``; else None."""
        if self._progress_at is None or now - self._progress_at < self.stall_s:
            return None
        return now - self._progress_at


def _store_class() -> type[Any]:
    from faust.stores.memory import Store

    class HistoryStore(Store[Any, Any]):
        """In-memory store whose changelog records are history deltas, applied by merging."""

        def __init__(self, *args: Any, histories: Histories, watch: RecoveryWatch,
                     **kwargs: Any) -> None:
            self.histories = histories
            self.watch = watch
            super().__init__(*args, **kwargs)

        def apply_changelog_batch(self, batch: Iterable[Any], to_key: Callable[[Any], Any],
                                  to_value: Callable[[Any], Any]) -> None:
            for event in batch:
                message = event.message
                if message.value is not None:
                    self.histories.restore(message.partition, bytes(message.value))
            self.watch.progressed(time.monotonic())

        async def on_rebalance(self, assigned: set[Any], revoked: set[Any],
                               newly_assigned: set[Any], generation_id: int = 0) -> None:
            self.watch.started(len(assigned), time.monotonic())  # before recovery starts

        async def on_recovery_completed(self, active_tps: set[Any], standby_tps: set[Any]
                                        ) -> None:
            self.watch.completed()
            keep = {tp.partition for tp in active_tps}
            dropped = self.histories.drop_partitions(keep)
            log.info("worker.table_recovered", partitions=sorted(keep),
                     patients=len(self.histories.logs), events=self.histories.event_count(),
                     positions={str(p): o for p, o in sorted(self.histories.positions.items())},
                     dropped_patients=dropped)

    return HistoryStore


def _table_class() -> type[Any]:
    from faust import Table

    store_class = _store_class()

    class HistoryTable(Table[Any, Any]):
        """Patient histories; the changelog is append-only deltas (see the module docstring)."""

        _changelog_compacting = False
        _changelog_deleting = True

        def __init__(self, app: Any, *, histories: Histories, watch: RecoveryWatch,
                     **kwargs: Any) -> None:
            self.histories = histories
            self.watch = watch
            super().__init__(app, **kwargs)

        def _new_store(self) -> Any:
            return store_class(
                URL("memory://"), self.app, self, histories=self.histories, watch=self.watch,
                table_name=self.name, key_type=self.key_type, value_type=self.value_type,
                key_serializer=self.key_serializer, value_serializer=self.value_serializer,
                options=self.options,
            )

        def append(self, partition: int, offset: int, value: bytes) -> Any:
            """Send one delta to the changelog partition of the records it came from."""
            return self.send_changelog(partition, str(offset).encode(), value)

    return HistoryTable


class TopicDeadLetters:
    """Dead letters through the app's producer; awaiting one waits for the broker's ack."""

    def __init__(self, topic: Any, cipher: Cipher | None = None) -> None:
        self.topic = topic
        self.cipher = cipher

    async def send(self, letter: DeadLetter) -> Any:
        key, value, headers = dead_letter_message(letter, self.cipher)
        future = await self.topic.send(key=key, value=value, headers=headers)
        return await future


def _record(event: Any) -> SourceRecord:
    message = event.message
    return SourceRecord(message.partition, message.offset, message.key, message.value,
                        round(message.timestamp * 1000))


SinkFactory = Callable[[Callable[[BaseException], None]], ProjectionSink]


def create_app(config: WorkerConfig, sink: SinkFactory, alerts: LiveAlerts | None = None,
               cipher: Cipher | None = None) -> Any:
    """A faust app for ``config``, writing through a sink; run it with :func:`run_app`.

    ``sink`` builds the projection sink given what to call when a write fails
    for good (crash the app, so the worker stops): the app exists only here.
    With ``alerts``, the leader also runs the alert timer (windows passing with time).
    """
    import faust
    from mode import CrashingSupervisor

    from mbcjourney.processors.faust_consumer import use_eager_consumer

    app = faust.App(
        config.app_id,
        broker=[f"kafka://{host}" for host in config.bootstrap.split(",")],
        store="memory://",
        # the in-memory store keeps nothing on disk; keep faust's empty folders out of cwd
        datadir=Path(tempfile.gettempdir()) / f"mbc-journey-{config.app_id}",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=config.partitions,
        topic_replication_factor=config.replication,
        table_standby_replicas=0,
        producer_acks=-1,  # acks=all: a delta counts once every in-sync replica has it
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=True,  # a rebalance waits for the chunk in hand (see handover)
        broker_commit_interval=1.0,
        # A crashed worker's partitions move after this long (faust's default is 60 s).
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=SESSION_TIMEOUT_S / 4,
        # Bigger fetches while catching up: with 1 MiB per partition (faust's default)
        # the consumer waited on the broker between small fetches.
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
    )
    use_eager_consumer(app)
    histories = Histories(config.max_cached_events, cipher)
    watch = RecoveryWatch()
    table = _table_class()(
        app, histories=histories, watch=watch, name=TABLE_NAME, key_type=bytes, value_type=bytes,
        partitions=config.partitions, beacon=app.tables.beacon,
        extra_topic_configs={"cleanup.policy": "delete", "retention.ms": "-1"},
        help="Validated event bodies per patient (deltas), deduplicated by event_id.",
    )
    app.tables.add(table)
    source = app.topic(config.topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=config.partitions)
    dead_letters = app.topic(config.dead_letter_topic, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")

    def highwater(partition: int) -> int | None:
        from faust.types import TP

        value = app.consumer.highwater(TP(config.topic, partition))
        return int(value) if value is not None else None

    crashing: set[asyncio.Future[Any]] = set()

    def stop_on_failure(exc: BaseException) -> None:
        crash = asyncio.ensure_future(app.crash(exc))
        crashing.add(crash)
        crash.add_done_callback(crashing.discard)

    writer = sink(stop_on_failure)
    processor = BatchProcessor(
        histories=histories, changelog=table,
        dead_letters=TopicDeadLetters(dead_letters, cipher), cipher=cipher,
        ranges=RangeReader(config.bootstrap, config.topic), sink=writer,
        settings=config.settings, topic=config.topic,
        generation=lambda: int(app.consumer_generation_id), highwater=highwater,
        batch_max=config.batch_max, project_every=config.project_every, freeze_gc=True,
    )

    async def project_patients(stream: Any) -> None:
        chunk = min(config.batch_max, TAKE_CHUNK)
        running = asyncio.ensure_future(processor.run())
        running.add_done_callback(processing_stopped)
        try:
            async for events in stream.take_events(chunk, within=config.batch_within_s):
                await processor.hand([_record(e) for e in events])
        finally:
            running.cancel()

    def before_handing_over(_sender: Any, *_revoked: Any, signal: Any, **_kw: Any
                            ) -> Awaitable[None]:
        return processor.handover()  # what this worker holds is stored before partitions move

    def processing_stopped(task: asyncio.Future[None]) -> None:
        if not task.cancelled():  # run() only ends by failing: the worker stops, loudly
            stop_on_failure(task.exception() or RuntimeError("batch processing ended"))

    if config.heartbeat_file is not None:
        alive = config.heartbeat_file

        async def heartbeat() -> None:  # for container health checks: the loop is alive
            alive.touch()

        app.timer(interval=HEARTBEAT_S)(heartbeat)

    async def check_recovery() -> None:
        stalled = watch.stalled_for(time.monotonic())
        if stalled is not None:
            log.error("worker.recovery_stalled", seconds=round(stalled))
            stop_on_failure(RuntimeError(
                f"table recovery made no progress for {stalled:.0f} s; stopping to restart"))

    app.timer(interval=RECOVERY_CHECK_S, name="recovery-watch")(check_recovery)

    if alerts is not None:
        timer_tick = alerts.timer_tick

        async def evaluate_alerts() -> None:  # on the write thread: never beside a write
            await asyncio.get_running_loop().run_in_executor(writer.executor, timer_tick)

        app.timer(interval=alerts.interval_s, on_leader=True, name="alerts")(evaluate_alerts)

    # mode's SignalHandlerT (mypy_extensions VarArg/NamedArg) matches no function under
    # mypy 2, not even its documented receiver shape.
    app.on_partitions_revoked.connect(before_handing_over)  # type: ignore[arg-type]
    app.agent(source, name=AGENT_NAME, supervisor_strategy=CrashingSupervisor)(project_patients)
    return app


def use_uvloop() -> bool:
    """Run on uvloop when installed: faust spends most of its time in the event loop."""
    try:
        import mode.loop

        mode.loop.use("uvloop")
    except ImportError:
        return False
    return True


def run_app(app: Any, config: WorkerConfig) -> NoReturn:
    """Run the app in this process until SIGTERM/SIGINT (faust's Worker)."""
    import faust

    level = max(logging.INFO, logging.getLevelNamesMapping()[config.log_level.upper()])
    # override_logging=False: faust's records go through logs.configure's JSON handler on
    # stderr, like everything else, instead of mode's coloured text on stdout.
    worker = faust.Worker(app, loglevel=logging.getLevelName(level).lower(), quiet=True,
                          redirect_stdouts=False, override_logging=False)
    # No terminal spinner: it would also lower the root logger to DEBUG, so every
    # library debug record (one per produced message) got built and thrown away.
    worker.spinner = None
    logging.getLogger("kafka").setLevel(max(level, logging.WARNING))
    log.info("worker.start", app_id=config.app_id, topic=config.topic,
             partitions=config.partitions, batch_max=config.batch_max)
    worker.execute_from_commandline()
