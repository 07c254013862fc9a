"""Ingest: raw lines in, validated events into the log, bad input into the dead-letter store.

Line by line: a bad line never stops the run and never costs a good line.  The
summary counts accepted events, duplicates and rejections by reason.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count, islice
from operator import itemgetter
from typing import BinaryIO, NamedTuple

import structlog

from mbcjourney.events.errors import EventConflict, InvalidEvent
from mbcjourney.processors.admission import (
    ERASED,
    BirthYears,
    birth_year_of,
    decode_record,
    refusal,
)
from mbcjourney.processors.bulk import bulk_allocation, process_pool
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.eventlog import EventRow, SqlEventLog, event_row

log = structlog.get_logger(__name__)

BATCH_SIZE = 20_000  # lines validated together (in a decode process for big inputs)
# Rows appended per transaction.  The event_id index is keyed by random UUIDs, so
# every commit rewrites most of its pages: at 20,000 rows a commit wrote ~3.5 KB of
# index per row on a 1M-event log; fewer, bigger commits write far less.
COMMIT_ROWS = 100_000
# A commit group also ends after this many lines read, or bytes of them, valid or not:
# counting only valid rows let a file of rejected lines gather in memory, all of it
# (900,000 rejected lines took 2.1 GB).  A rejected line held until its commit weighs
# about as much as a valid row, so the same bound.
COMMIT_LINES = COMMIT_ROWS
COMMIT_BYTES = 256 << 20
# Batches decoded ahead of the writer: enough to keep the decode processes busy while
# a whole commit group is being written (else they idle, and then the writer waits).
READ_AHEAD = COMMIT_ROWS // BATCH_SIZE
# Decode processes run this much below the writer's priority: the single writer is
# the critical path, and at equal priority one decode process per CPU slowed it by
# a third; below it, they only take the CPU the writer leaves idle.
DECODE_NICENESS = 10


@dataclass
class LineSummary:
    """What became of the lines of one input (``journey ingest``, ``journey publish``)."""

    read: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    patients: set[str] = field(default_factory=set)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def by_reason(self) -> list[tuple[str, int]]:
        """(reason, count) of the rejections, the most frequent first."""
        return sorted(self.rejected.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass
class IngestSummary(LineSummary):
    accepted: int = 0
    duplicates: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "patients": len(self.patients),
        }


def numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) for every non-blank line of a JSON Lines stream.

    Read in blocks and split in C: line-by-line iteration cost about as much as
    everything else the ingest's writing process does per line.
    """
    number = 1  # of the first line in ``lines``
    tail = b""
    while block := stream.read(_READ_BYTES):
        lines = (tail + block).split(b"\n")
        tail = lines.pop()  # an unfinished line, completed by the next block
        yield from filter(itemgetter(1), zip(count(number), map(bytes.strip, lines)))
        number += len(lines)
    if stripped := tail.strip():
        yield number, stripped


_READ_BYTES = 1 << 20


# --- decoding, possibly in worker processes ---------------------------------------


class Prepared(NamedTuple):
    """A decoded line, reduced to what the writer needs (cheap to send between processes)."""

    at: int  # index of the line in its batch
    row: EventRow
    birth_year: int | None  # of an inclusion, for the writer's birth-year rule


@dataclass(frozen=True)
class Refused:
    index: int
    error: InvalidEvent


class Decoded(NamedTuple):
    """One batch of lines, decoded: what passed, what was refused, and whose events they are."""

    prepared: list[Prepared]
    refused: list[Refused]
    patients: set[str]  # whose birth years the writer may have to look up


def prepare_batch(batch: list[tuple[int, bytes]], received_at: datetime) -> Decoded:
    """Validate a batch of lines into event rows (pure; runs in a worker process for big inputs)."""
    prepared: list[Prepared] = []
    refused: list[Refused] = []
    patients: set[str] = set()
    for index, (_, raw) in enumerate(batch):
        try:
            event, body = decode_record(raw, received_at=received_at)
        except InvalidEvent as error:
            refused.append(Refused(index, error.detached()))
            continue
        prepared.append(Prepared(index, event_row(event, body), birth_year_of(event)))
        patients.add(event.patient_id)
    return Decoded(prepared, refused, patients)


# What a decode process sends back: rows as plain tuples, which pickle about twenty
# times faster than objects (that cost more than the writing).
Packed = tuple[list[tuple[int, tuple[object, ...], int | None]], list[Refused], set[str]]


def _prepare_packed(batch: list[tuple[int, bytes]], received_at: datetime) -> Packed:
    with bulk_allocation():  # else the cycle collector walks the batch every 700 objects
        prepared, refused, patients = prepare_batch(batch, received_at)
    return [(p.at, tuple(p.row), p.birth_year) for p in prepared], refused, patients


def _unpacked(packed: Packed) -> Decoded:
    rows, refused, patients = packed
    new = tuple.__new__  # the named tuples' own constructors, minus a Python call each
    return Decoded([new(Prepared, (at, new(EventRow, row), year)) for at, row, year in rows],
                   refused, patients)


def _batches(lines: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    items = iter(lines)
    while batch := list(islice(items, size)):
        yield batch


PreparedBatch = tuple[list[tuple[int, bytes]], Decoded]


def _prepared_batches(batches: Iterator[list[tuple[int, bytes]]], received_at: datetime,
                      workers: int) -> Iterator[PreparedBatch]:
    """Decode batches in order, inline or in ``workers`` processes with bounded read-ahead."""
    if workers <= 0:
        for batch in batches:
            yield batch, prepare_batch(batch, received_at)
        return
    pool = process_pool(workers, niceness=DECODE_NICENESS)
    try:
        pending: deque[tuple[list[tuple[int, bytes]], Future[Packed]]] = deque()
        for batch in batches:
            pending.append((batch, pool.submit(_prepare_packed, batch, received_at)))
            if len(pending) > READ_AHEAD + 2 * workers:
                done, future = pending.popleft()
                yield done, _unpacked(future.result())
        while pending:
            done, future = pending.popleft()
            yield done, _unpacked(future.result())
    finally:
        # Not waiting: a decode process takes a second or two to exit, time in which
        # the last commit group can be written.
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class ValidatedBatch:
    """One batch of lines after edge validation: what passed, and what was refused and why."""

    lines: list[tuple[int, bytes]]  # (line number, bytes) as read
    valid: list[Prepared]
    rejected: list[tuple[int, InvalidEvent]]  # (index in ``lines``, error), in reporting order
    # dated before the birth year, unless a repeat of an event stored or earlier in the
    # input: the writer decides (:func:`resolve_repeats`); empty unless asked for
    suspects: list[tuple[Prepared, InvalidEvent]] = field(default_factory=list)


def validate_lines(
    lines: Iterable[tuple[int, bytes]],
    births: BirthYears,
    *,
    received_at: datetime,
    batch_size: int = BATCH_SIZE,
    workers: int = 0,
    defer_repeats: bool = False,
    erased: Callable[[set[str]], set[str]] | None = None,
) -> Iterator[ValidatedBatch]:
    """The edge validation of every entry point (``journey ingest``, ``journey publish``).

    Each line is admitted (:mod:`~mbcjourney.processors.admission`): decoded against
    the contract, then, in line order, refused if dated before its patient's birth
    year as known from earlier lines and the log (``births``), and refused if its
    patient was erased (``erased`` names those among a batch's patients).  With
    ``defer_repeats`` such a line is a suspect, settled by the writer
    (:func:`resolve_repeats`): a repeat of an event is judged as one.
    """
    for batch, (prepared, refused, patients) in _prepared_batches(
            _batches(lines, batch_size), received_at, workers):
        rejected = [(r.index, r.error) for r in refused]
        gone = erased(patients) if erased is not None and patients else set()
        if gone:
            kept: list[Prepared] = []
            for item in prepared:
                if item.row.patient_id in gone:
                    rejected.append((item.at, refusal(ERASED, item.row.event_type)))
                else:
                    kept.append(item)
            prepared = kept
        births.preload(patients)
        known = births.known()
        valid: list[Prepared] = []
        before_birth: list[tuple[Prepared, InvalidEvent]] = []
        for item in prepared:
            row = item.row
            year = known.get(row.patient_id)
            if year is None and item.birth_year is None:  # no birth year yet: nothing to judge
                if not defer_repeats:  # no log will recognise its repeats: remember it here
                    births.unjudged(row.patient_id, row.event_id)
                valid.append(item)
                continue
            if year is not None and item.birth_year is None and int(row.occurred_on[:4]) >= year:
                valid.append(item)  # the common case, without a call
                continue
            try:
                births.admit_row(row.patient_id, int(row.occurred_on[:4]), item.birth_year,
                                 row.event_type, row.event_id)
            except InvalidEvent as error:
                before_birth.append((item, error.detached()))
            else:
                valid.append(item)
        if defer_repeats:
            yield ValidatedBatch(batch, valid, rejected, before_birth)
        else:
            rejected += [(item.at, refused_for) for item, refused_for in before_birth]
            yield ValidatedBatch(batch, valid, rejected)


def resolve_repeats(group: list[ValidatedBatch], stored: Callable[[list[str]], set[str]]
                    ) -> list[ValidatedBatch]:
    """Settle the suspects of a commit group: a repeat goes on to the append (a duplicate
    or a conflict there), anything else is refused for the birth year.

    A repeat is an id the log holds (``stored``) or one that an earlier line of the
    group carries, which the log will hold once the group is appended.
    """
    suspects = [item.row.event_id for checked in group for item, _ in checked.suspects]
    if not suspects:
        return group
    known = stored(suspects)
    settled: list[ValidatedBatch] = []
    for checked in group:
        valid, rejected = list(checked.valid), list(checked.rejected)
        if checked.suspects:
            pending = sorted(checked.suspects, key=lambda s: s[0].at)
            earlier = iter(sorted(checked.valid, key=lambda item: item.at))
            nxt = next(earlier, None)
            for item, refused_for in pending:
                while nxt is not None and nxt.at < item.at:
                    known.add(nxt.row.event_id)
                    nxt = next(earlier, None)
                if item.row.event_id in known:
                    valid.append(item)
                else:
                    rejected.append((item.at, refused_for))
            valid.sort(key=lambda item: item.at)  # arrival order, for the append
        known.update(item.row.event_id for item in checked.valid)
        settled.append(ValidatedBatch(checked.lines, valid, rejected))
    return settled


ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"

ItemOutcome = Callable[[int, str, str | None, InvalidEvent | None], None]
"""Told (line number, outcome, event id if admitted, error if rejected) for each line, once."""


def _tell_appended(group: list[ValidatedBatch], accepted: set[int], conflicts: set[int],
                   on_item: ItemOutcome) -> None:
    """Accepted or duplicate, for each appended row that was not a conflict."""
    index = 0
    for checked in group:
        for item in checked.valid:
            if index not in conflicts:
                on_item(checked.lines[item.at][0], ACCEPTED if index in accepted else DUPLICATE,
                        item.row.event_id, None)
            index += 1


def ingest_lines(
    lines: Iterable[tuple[int, bytes]],
    event_log: SqlEventLog,
    *,
    origin: str,
    received_at: datetime,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    workers: int = 0,
    on_item: ItemOutcome | None = None,
) -> IngestSummary:
    """Validate and append every line; dead-letter the bad ones with their original bytes.

    ``workers`` > 0 decodes in that many processes while this one writes: worth it
    for large files (start-up costs about a second), never needed for correctness.
    ``on_item(line number, outcome, event id, error)`` hears what became of each line (the
    HTTP service answers per item): ``accepted``, ``duplicate`` or ``rejected``.
    """
    summary = IngestSummary()
    births = BirthYears(event_log.birth_years)

    def write(group: list[ValidatedBatch]) -> None:
        """Append a group of batches in one transaction; dead-letter their rejected lines."""
        group = resolve_repeats(group, event_log.stored_ids)
        rows = [v.row for checked in group for v in checked.valid]
        log.debug("ingest.appending", origin=origin, rows=len(rows))
        accepted, duplicates, conflicts = event_log.append_rows(rows)
        if on_item is not None:
            _tell_appended(group, set(accepted), set(conflicts), on_item)
        summary.accepted += len(accepted)
        summary.duplicates += duplicates
        summary.patients.update(rows[i].patient_id for i in accepted)
        conflicting = set(conflicts)
        offset = 0
        for checked in group:  # dead letters a batch at a time: their rows weigh ~2 KB each
            letters: list[DeadLetter] = []
            rejected = list(checked.rejected)
            rejected += [(v.at, EventConflict(v.row.event_type))
                for i, v in enumerate(checked.valid, start=offset) if i in conflicting]
            offset += len(checked.valid)
            for index, error in rejected:
                number, raw = checked.lines[index]
                summary.rejected[error.reason_code] += 1
                if on_item is not None:
                    on_item(number, REJECTED, None, error)
                letters.append(DeadLetter.of(raw, error, f"{origin}:{number}", received_at))
                log.debug("event.rejected", origin=origin, line=number,
                          event_type=error.event_type, reason=error.reason_code)
            summary.read += len(checked.lines)
            event_log.dead_letter(letters)
        if on_batch is not None:
            for checked in group:
                on_batch(len(checked.lines))

    with bulk_allocation():
        group: list[ValidatedBatch] = []
        held_rows = held_lines = held_bytes = 0
        for checked in validate_lines(lines, births, received_at=received_at,
                                      batch_size=batch_size, workers=workers,
                                      defer_repeats=True, erased=event_log.erasures.erased):
            group.append(checked)
            held_rows += len(checked.valid)
            held_lines += len(checked.lines)
            held_bytes += sum(len(raw) for _, raw in checked.lines)
            if (held_rows >= COMMIT_ROWS or held_lines >= COMMIT_LINES
                    or held_bytes >= COMMIT_BYTES):
                write(group)
                group = []
                held_rows = held_lines = held_bytes = 0
        if group:
            write(group)
    log.info("ingest.done", origin=origin, **{k: v for k, v in summary.as_dict().items()
                                              if k != "rejected_by_reason"})
    return summary
