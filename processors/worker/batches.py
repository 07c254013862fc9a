"""Batches of source records applied to histories, projections and checkpoints (see the package)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from mbcjourney.events.errors import EventConflict, InvalidEvent
from mbcjourney.processors.admission import ERASED, decode_record, refusal
from mbcjourney.processors.applied_events import PendingRow, pending_row
from mbcjourney.processors.bulk import BULK_GC_THRESHOLD
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.erasures import ERASURE_MARK, ERASURE_MARK_LEN, erased_patient
from mbcjourney.processors.histories import Histories, Offer, encode_deltas, sealed_entry
from mbcjourney.processors.kafkaio import EVENTS_TOPIC, SourceRecord, dead_letter_for
from mbcjourney.processors.sealing import Cipher
from mbcjourney.processors.store import Checkpoint
from mbcjourney.processors.worker.config import (
    BACKLOG_LAG,
    BATCH_MAX,
    GATHER_MAX_S,
    PROJECT_EVERY,
)
from mbcjourney.processors.worker.ports import Changelog, DeadLetters, Ranges
from mbcjourney.processors.worker.sink import ProjectionSink
from mbcjourney.projections import Journey
from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings
from mbcjourney.projections.views import project

log = structlog.get_logger(__name__)


@dataclass
class _Partition:
    done: int  # last offset whose projection is stored (checkpoint), -1: none
    next: int  # next offset to process


@dataclass
class _Delta:
    offset: int  # highest source offset among ``bodies``
    bodies: list[bytes]


@dataclass
class BatchStats:
    records: int = 0
    reread: int = 0
    new: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    patients: int = 0
    redecoded: int = 0  # events decoded again for projection: not in the histories' cache
    deferred: bool = False  # far behind: rows not written yet (PROJECT_EVERY)
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)


class BatchProcessor:
    """Applies batches of source records to histories, projections and checkpoints."""

    def __init__(
        self,
        *,
        histories: Histories,
        changelog: Changelog,
        dead_letters: DeadLetters,
        ranges: Ranges,
        sink: ProjectionSink,
        settings: ClinicalSettings = DEFAULT_CLINICAL,
        topic: str = EVENTS_TOPIC,
        generation: Callable[[], int] = lambda: 0,
        highwater: Callable[[int], int | None] = lambda _partition: None,
        batch_max: int = BATCH_MAX,
        max_wait_s: float = GATHER_MAX_S,
        backlog_lag: int = BACKLOG_LAG,
        project_every: int = PROJECT_EVERY,
        freeze_gc: bool = False,
        cipher: Cipher | None = None,
    ) -> None:
        self.histories = histories
        # Values arrive sealed (journey publish): opened with the patient's key; the
        # changelog deltas and dead letters this worker writes are sealed the same way.
        self.cipher = cipher if cipher is not None and cipher.enabled else None
        if self.cipher is not None and histories.cipher is None:
            histories.cipher = self.cipher
        self.changelog = changelog
        self.dead_letters = dead_letters
        self.ranges = ranges
        self.sink = sink
        self.settings = settings
        self.topic = topic
        self.generation = generation
        self.highwater = highwater
        self.batch_max = batch_max
        self.max_wait_s = max_wait_s
        self.backlog_lag = backlog_lag
        self.project_every = project_every
        self.freeze_gc = freeze_gc
        if freeze_gc:  # the collector is this processor's to tune (the worker process)
            gc.set_threshold(*BULK_GC_THRESHOLD)
        self._generation: int | None = None
        self._partitions: dict[int, _Partition] = {}
        self._pending: list[SourceRecord] = []
        self._pending_since = 0.0
        self._unprojected: set[str] = set()  # touched by applied records, rows not written
        # Events applied as new since the last write, for the SQL event log: they go in
        # that write's transaction (held as long as the rows that cover them, no longer).
        self._unlogged: list[PendingRow] = []
        self._applied_since_write = 0
        self._erased_now: set[str] = set()  # erased since the last write: rows to delete
        self._lock = asyncio.Lock()
        self._arrived = asyncio.Event()  # records were handed over
        self._room = asyncio.Event()  # pending below its bound
        self._room.set()

    async def hand(self, records: Sequence[SourceRecord]) -> None:
        """Hand over a chunk from the consumer; :meth:`run` processes it.

        Returns at once, so the consumer goes on filling the next chunk while this
        one is processed; waits only when ``2 * batch_max`` records are already held.
        """
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend(records)
        self._arrived.set()
        if len(self._pending) >= 2 * self.batch_max:
            self._room.clear()
            await self._room.wait()

    async def run(self) -> None:
        """Process what is handed over, for ever: at once when live, in big batches if behind.

        Rows held back far behind a backlog are written once nothing more arrives
        for ``max_wait_s``, whatever the lag said.
        """
        while True:
            if self._held():
                try:
                    await asyncio.wait_for(self._arrived.wait(), timeout=self.max_wait_s)
                except TimeoutError:
                    await self.write_held_back()
                    continue
            else:
                await self._arrived.wait()
            self._arrived.clear()
            while self._pending:
                wait = self._hold_back()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._arrived.wait(), timeout=wait)
                    self._arrived.clear()
                    continue
                await self.flush()

    async def offer(self, records: Sequence[SourceRecord]) -> BatchStats | None:
        """Hand over a chunk and process what is held unless :meth:`run` would hold it back."""
        await self.hand(records)
        return None if self._hold_back() > 0 else await self.flush()

    def _hold_back(self) -> float:
        """Seconds to wait for more records before processing what is held (0: now).

        Behind by ``backlog_lag`` records or more (the partitions' ends, as the
        consumer last saw them), records are gathered up to ``batch_max`` (or for
        ``max_wait_s``), so each patient is projected and written once for many of
        their events.  Live, what is held is processed at once.
        """
        waited = time.monotonic() - self._pending_since
        if (len(self._pending) >= self.batch_max or waited >= self.max_wait_s
                or self._lag(self._pending) < self.backlog_lag):
            return 0.0
        return self.max_wait_s - waited

    async def process(self, records: Sequence[SourceRecord]) -> BatchStats | None:
        """Process ``records`` (and anything held before) now."""
        self._pending.extend(records)
        return await self.flush()

    async def flush(self) -> BatchStats | None:
        async with self._lock:
            records, self._pending = self._pending, []
            self._room.set()
            return await self._process(records) if records else None

    async def handover(self) -> None:
        """Before partitions move to another worker: process what is held, store it all."""
        await self.flush()
        await self.write_held_back()
        await self.sink.drain()

    async def write_held_back(self) -> BatchStats | None:
        """Project and write the patients whose rows wait (far behind a backlog), now."""
        async with self._lock:
            return await self._process([], write=True) if self._held() else None

    def _held(self) -> bool:
        """Rows or applied events wait for a write (far behind a backlog, or a replay)."""
        return bool(self._unprojected or self._unlogged)

    def _lag(self, records: Sequence[SourceRecord]) -> int:
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = record.offset
        return sum(max(0, (self.highwater(p) or 0) - offset - 1) for p, offset in last.items())

    async def _process(self, records: Sequence[SourceRecord], write: bool = False
                       ) -> BatchStats:
        """Apply one batch; returns once its rows are handed to the sink (see ``drain``).

        Far behind (``backlog_lag`` records or more), the rows wait until
        ``project_every`` records are applied: see :data:`PROJECT_EVERY`.  ``write``
        writes them now, whatever the lag.
        """
        started = time.perf_counter()
        self.histories.begin_batch()
        redecoded = self.histories.redecoded
        by_partition, reread = await self._contiguous(records)
        stats = BatchStats(reread=reread)
        touched = self._unprojected
        deltas: dict[int, _Delta] = {}  # per partition: the events this batch added
        pending: list[Awaitable[Any]] = []

        for partition, batch in by_partition.items():
            state = self._partitions[partition]
            stats.offsets[partition] = (batch[0].offset, batch[-1].offset)
            for record in batch:
                stats.records += 1
                live = record.offset > state.done
                patient_id = self._apply(record, live, stats, deltas, pending)
                if live and patient_id is not None:
                    touched.add(patient_id)
        self._applied_since_write += stats.records

        for partition, delta in deltas.items():
            for value in encode_deltas(delta.offset, delta.bodies,
                                       sealed=self.cipher is not None):
                pending.append(self.changelog.append(partition, delta.offset, value))
        clock = _Clock(started)
        stats.deferred = not write and (
            self._applied_since_write < self.project_every
            and self._lag(records) >= self.backlog_lag)
        journeys: list[Journey] = []
        if not stats.deferred:
            histories = self.histories
            journeys = [project(p, histories.events(p), self.settings)
                        for p in sorted(touched) if histories.get(p) is not None]
            # an erased patient's rows go, whatever this worker wrote before the erasure
            journeys += [project(p, [], self.settings) for p in sorted(self._erased_now)]
            self._erased_now.clear()
        stats.patients = len(journeys)
        stats.redecoded = self.histories.redecoded - redecoded
        clock.lap("project")

        await asyncio.gather(*pending)  # table deltas and dead letters on the broker first
        clock.lap("durable")
        if not stats.deferred:
            # Every record applied since the last write: their patients are in ``journeys``.
            checkpoints = [Checkpoint(self.sink.consumer, partition, state.next - 1)
                           for partition, state in self._partitions.items()
                           if state.next - 1 > state.done]
            # The events applied meanwhile go in the same transaction as those rows.
            events, self._unlogged = self._unlogged, []
            if journeys or checkpoints or events:
                await self.sink.submit(journeys, checkpoints, events)
            for cp in checkpoints:
                self._partitions[cp.partition].done = cp.position
            touched.clear()
            self._applied_since_write = 0
        clock.lap("previous_write")
        if self.freeze_gc:
            # What survives a batch is history (bodies, decoded events: acyclic).  Out of
            # the cyclic collector's sight, a full collection no longer rescans a million
            # objects (1 s pauses at 120k events, measured); the cyclic garbage frozen
            # with them was 360 objects for those 120k events.
            gc.freeze()
        self._log(stats, clock)
        return stats

    async def drain(self) -> None:
        """Wait until every batch handed to the sink is stored."""
        await self.sink.drain()

    def _apply(self, record: SourceRecord, live: bool, stats: BatchStats,
               deltas: dict[int, _Delta],
               pending: list[Awaitable[Any]]) -> str | None:
        """Offer one record to its patient's history; returns the patient when it counts."""
        raw = record.value or b""
        if raw[:ERASURE_MARK_LEN] == ERASURE_MARK:
            self._erase(record)
            return None
        cipher = self.cipher
        try:
            event, body = decode_record(record.value, received_at=record.received_at,
                                        key=record.key,
                                        opener=cipher.open if cipher is not None else None)
            if event.patient_id in self.histories.erased:  # a clear value, after the erasure
                raise refusal(ERASED, event.event_type)
            held = self.histories.get(event.patient_id)
            if held is None or str(event.event_id) not in held.facts:  # a repeat: step 4
                self.histories.births.admit(event)
        except InvalidEvent as error:
            if live:
                stats.rejected += 1
                pending.append(self._dead_letter(record, raw, error))
            return None
        outcome = self.histories.offer(record.partition, event, body)
        if outcome is Offer.NEW:
            stats.new += 1
            self._unlogged.append(pending_row(event, body))
            self.histories.advance(record.partition, record.offset)
            entry = body if cipher is None else sealed_entry(
                event.patient_id, cipher.seal(event.patient_id, body))
            delta = deltas.get(record.partition)
            if delta is None:
                deltas[record.partition] = _Delta(record.offset, [entry])
            else:
                delta.offset = record.offset
                delta.bodies.append(entry)
        elif outcome is Offer.DUPLICATE:
            stats.duplicates += 1
        else:
            if live:
                stats.conflicts += 1
                pending.append(self._dead_letter(record, raw, EventConflict(event.event_type)))
            return None
        return event.patient_id

    def _erase(self, record: SourceRecord) -> None:
        """A ``patient.erased`` record (``journey erase``): forget the patient here.

        ``journey erase`` destroyed the key and removed the stored rows; this worker
        drops the history it holds, its cached key and the rows it has not written.
        """
        patient_id = erased_patient(record.value or b"")
        if not patient_id:
            return
        self.histories.drop_patient(patient_id)
        self._unprojected.discard(patient_id)
        self._unlogged = [row for row in self._unlogged if row.patient_id != patient_id]
        if self.cipher is not None:
            self.cipher.forget([patient_id])
        self._erased_now.add(patient_id)
        log.info("worker.patient_erased", partition=record.partition, offset=record.offset)

    def _dead_letter(self, record: SourceRecord, raw: bytes, error: InvalidEvent
                     ) -> Awaitable[Any]:
        origin = f"{self.topic}/{record.partition}/{record.offset}"
        log.info("event.rejected", origin=origin, event_type=error.event_type,
                 reason=error.reason_code)
        letter = dead_letter_for(record, DeadLetter.of(raw, error, origin, record.received_at))
        return self.dead_letters.send(letter)

    async def _contiguous(self, records: Sequence[SourceRecord]
                          ) -> tuple[dict[int, list[SourceRecord]], int]:
        """Records per partition, with any offsets the consumer skipped read again first."""
        generation = self.generation()
        if generation != self._generation:  # a rebalance: where each partition stands is news
            self._partitions.clear()
            self._generation = generation
        by_partition: dict[int, list[SourceRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        if any(p not in self._partitions for p in by_partition):
            stored = await self.sink.checkpoints()
            for partition in by_partition:
                if partition not in self._partitions:
                    self._partitions[partition] = self._start(partition,
                                                              stored.get(partition, -1))
        reread = 0
        for partition, batch in by_partition.items():
            state = self._partitions[partition]
            filled: list[SourceRecord] = []
            expected = state.next
            for record in batch:
                if record.offset > expected:
                    missing = await self.ranges.read(partition, expected, record.offset)
                    log.warning("worker.offsets_reread", partition=partition, start=expected,
                                end=record.offset, records=len(missing))
                    reread += len(missing)
                    filled.extend(missing)
                filled.append(record)
                expected = max(expected, record.offset + 1)
            state.next = expected
            by_partition[partition] = filled
        return by_partition, reread

    def _start(self, partition: int, done: int) -> _Partition:
        if done >= 0 and self.histories.position(partition) < 0:
            log.warning("worker.table_rebuild", partition=partition, checkpoint=done)
            return _Partition(done=done, next=0)  # the table lost its changelog: replay
        log.info("worker.partition_start", partition=partition, checkpoint=done,
                 table_position=self.histories.position(partition))
        return _Partition(done=done, next=done + 1)

    def _log(self, stats: BatchStats, clock: _Clock) -> None:
        lag = sum(max(0, (self.highwater(p) or 0) - last - 1)
                  for p, (_, last) in stats.offsets.items())
        log.info("worker.batch", records=stats.records, reread=stats.reread, new=stats.new,
                 duplicates=stats.duplicates, conflicts=stats.conflicts,
                 rejected=stats.rejected, patients=stats.patients,
                 redecoded=stats.redecoded, deferred=stats.deferred,
                 offsets={str(p): list(o) for p, o in sorted(stats.offsets.items())},
                 lag=lag, **clock.laps_ms())


class _Clock:
    """Milliseconds spent in each step of a batch, for the batch log line."""

    def __init__(self, started: float) -> None:
        self.started = self.last = started
        self.laps: dict[str, float] = {"apply": time.perf_counter() - started}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now

    def laps_ms(self) -> dict[str, float]:
        total = time.perf_counter() - self.started
        return {f"{k}_ms": round(v * 1000, 1) for k, v in {**self.laps, "total": total}.items()}
