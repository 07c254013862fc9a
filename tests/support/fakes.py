"""The one set of fakes of the live worker's ports, for every test that drives its processing.

:class:`~mbcjourney.processors.worker.BatchProcessor` talks to Kafka only through
three ports (``Changelog``, ``DeadLetters``, ``Ranges``) and writes rows through
its sink; here the ports are in-memory and keep what they were given, and the
sink is the real :class:`~mbcjourney.processors.worker.ProjectionSink` on a real
store (SQLite or PostgreSQL) with the real SQL event log beside it, so the rows
and the log written are the worker's own.

* :class:`FakeChangelog` keeps every history delta appended;
* :class:`FakeDeadLetters` keeps every dead letter sent;
* :class:`FakeTopic` is a partitioned topic: records are published to it (keyed by
  patient, partitioned as Kafka's default partitioner would spread them) and it
  serves the worker's re-reads (``Ranges``), noting each;
* :class:`NoRereads` is a ``Ranges`` for tests in which a re-read is a bug;
* :func:`worker_rig` builds a processor on these fakes.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mbcjourney.processors.applied_events import PendingRow
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.histories import Histories
from mbcjourney.processors.kafkaio import SourceRecord
from mbcjourney.processors.store import Checkpoint, ProjectionStore
from mbcjourney.processors.worker import BatchProcessor, ProjectionSink, Ranges
from mbcjourney.projections import Journey

PARTITIONS = 3
# every fake record's broker timestamp: 2026-12-01, after the test data was recorded
TIMESTAMP_MS = 1_796_083_200_000


async def acked() -> None:
    """What the fakes' sends resolve to: acknowledged at once."""
    return None


@dataclass
class FakeChangelog:
    """``Changelog``: keeps each (partition, offset, delta) appended."""

    records: list[tuple[int, int, bytes]] = field(default_factory=list)

    def append(self, partition: int, offset: int, value: bytes) -> Awaitable[None]:
        self.records.append((partition, offset, value))
        return acked()


@dataclass
class FakeDeadLetters:
    """``DeadLetters``: keeps each letter sent, in order."""

    letters: list[DeadLetter] = field(default_factory=list)

    def send(self, letter: DeadLetter) -> Awaitable[None]:
        self.letters.append(letter)
        return acked()


class FakeTopic:
    """A topic of ``partitions`` partitions: every record ever published, for re-reads."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        self.partition_count = partitions
        self.partitions: dict[int, list[SourceRecord]] = {}
        self.reads: list[tuple[int, int, int]] = []

    def publish(self, key: bytes | None, value: bytes, partition: int | None = None
                ) -> SourceRecord:
        """Append a record (partition by the key's CRC-32 unless given); returns it."""
        if partition is None:
            partition = zlib.crc32(key or b"") % self.partition_count
        log = self.partitions.setdefault(partition, [])
        record = SourceRecord(partition, len(log), key, value, TIMESTAMP_MS)
        log.append(record)
        return record

    async def read(self, partition: int, start: int, end: int) -> list[SourceRecord]:
        """``Ranges``: the records of ``partition`` at offsets ``start`` to ``end`` - 1."""
        self.reads.append((partition, start, end))
        return self.partitions.get(partition, [])[start:end]

    def everything(self) -> list[SourceRecord]:
        """Every record, partition by partition, in offset order."""
        return [r for p in sorted(self.partitions) for r in self.partitions[p]]


class NoRereads:
    """``Ranges`` for a test in which the worker must never re-read the topic."""

    async def read(self, partition: int, start: int, end: int) -> list[SourceRecord]:
        raise AssertionError(f"unexpected re-read of partition {partition} {start}..{end}")


RowWriter = Callable[[Sequence[Journey], Sequence[Checkpoint], Sequence[PendingRow]], object]


@dataclass
class WorkerRig:
    """A processor on the fakes, and the fakes to look into afterwards."""

    processor: BatchProcessor
    histories: Histories
    changelog: FakeChangelog
    dead: FakeDeadLetters
    store: ProjectionStore
    log: SqlEventLog  # where the worker appends the events it applied


def worker_rig(store: ProjectionStore, executor: ThreadPoolExecutor, *, consumer: str,
               ranges: Ranges | None = None, histories: Histories | None = None,
               write: RowWriter | None = None, **options: Any) -> WorkerRig:
    """A :class:`BatchProcessor` writing through a real :class:`ProjectionSink` on ``store``
    and the SQL event log beside it (created here; checkpoints under ``consumer``;
    ``write`` replaces the sink's ``LoggedStore``, as live alerting does), reading back
    through ``ranges`` (default: :class:`NoRereads`); ``options`` go to the processor
    (``topic``, ``batch_max``, ...)."""
    histories = histories if histories is not None else Histories()
    changelog, dead = FakeChangelog(), FakeDeadLetters()
    event_log = SqlEventLog(store.engine)
    event_log.create()
    processor = BatchProcessor(
        histories=histories, changelog=changelog, dead_letters=dead,
        ranges=ranges if ranges is not None else NoRereads(),
        sink=ProjectionSink(store, consumer, executor, write=write, event_log=event_log),
        **options)
    return WorkerRig(processor, histories, changelog, dead, store, event_log)
