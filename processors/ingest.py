"""Ingest: raw lines in, validated events into the log, bad input into the dead-letter store.

Line by line: a bad line never stops the run and never costs a good line.  The
summary counts accepted events, duplicates and rejections by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

import structlog

from mbcjourney.errors import InvalidEvent
from mbcjourney.events import ClinicalEvent
from mbcjourney.events.catalogue import PatientIncluded
from mbcjourney.events.codec import decode_with_body
from mbcjourney.processors.eventlog import DeadLetter, SqlEventLog

log = structlog.get_logger(__name__)

BATCH_SIZE = 5000


@dataclass
class IngestSummary:
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    patients: set[str] = field(default_factory=set)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

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
    """(line number, bytes) for every non-blank line of a JSON Lines stream."""
    for number, line in enumerate(stream, start=1):
        stripped = line.strip()
        if stripped:
            yield number, stripped


BirthYearLookup = Callable[[set[str]], dict[str, int]]


class BirthYearCheck:
    """Rejects facts dated before the patient's birth year, when the inclusion is known.

    Inclusions seen so far are remembered; others are asked of ``lookup`` (the event
    log) once per patient.  A fact that arrives before its patient's inclusion
    cannot be checked here; the projection reports it as a finding instead.
    """

    def __init__(self, lookup: BirthYearLookup | None = None) -> None:
        self._lookup = lookup
        self._years: dict[str, int] = {}
        self._looked_up: set[str] = set()

    def prepare(self, events: Iterable[ClinicalEvent]) -> None:
        batch = list(events)
        for e in batch:
            if isinstance(e, PatientIncluded):
                self._years.setdefault(e.patient_id, e.payload.birth_year)
        unknown = {e.patient_id for e in batch} - self._looked_up - self._years.keys()
        if unknown and self._lookup is not None:
            self._years.update(self._lookup(unknown))
            self._looked_up |= unknown

    def check(self, event: ClinicalEvent) -> None:
        year = self._years.get(event.patient_id)
        if year is not None and event.occurred_on.year < year:
            raise InvalidEvent.single("occurred_at", "before the patient's birth year",
                                      event_type=event.event_type)


def ingest_lines(
    lines: Iterable[tuple[int, bytes]],
    event_log: SqlEventLog,
    *,
    origin: str,
    received_at: datetime,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Validate and append every line; dead-letter the bad ones with their original bytes."""
    summary = IngestSummary()
    births = BirthYearCheck(event_log.birth_years)
    batch: list[tuple[int, bytes]] = []

    def flush() -> None:
        decoded: list[tuple[int, bytes, ClinicalEvent, bytes]] = []
        letters: list[DeadLetter] = []

        def reject(number: int, raw: bytes, error: InvalidEvent) -> None:
            summary.rejected[error.reason_code] += 1
            letters.append(DeadLetter.of(raw, error, f"{origin}:{number}", received_at))
            log.debug("event.rejected", origin=origin, line=number, event_type=error.event_type,
                     reason=error.reason_code)

        for number, raw in batch:
            try:
                decoded.append((number, raw, *decode_with_body(raw, received_at=received_at)))
            except InvalidEvent as error:
                reject(number, raw, error)
        births.prepare(e for _, _, e, _ in decoded)
        valid: list[tuple[int, bytes, ClinicalEvent, bytes]] = []
        for item in decoded:
            try:
                births.check(item[2])
                valid.append(item)
            except InvalidEvent as error:
                reject(item[0], item[1], error)
        outcome = event_log.append([v[2] for v in valid], [v[3] for v in valid])
        conflicts = {id(e) for e in outcome.conflicts}
        for number, raw, event, _ in valid:
            if id(event) in conflicts:
                reject(number, raw, InvalidEvent.single(
                    "event_id", "already stored with different content",
                    event_type=event.event_type))
        summary.accepted += len(outcome.accepted)
        summary.duplicates += outcome.duplicates
        summary.patients.update(e.patient_id for e in outcome.accepted)
        event_log.dead_letter(letters)
        if on_batch is not None:
            on_batch(len(batch))
        batch.clear()

    for item in lines:
        summary.read += 1
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    log.info("ingest.done", origin=origin, **{k: v for k, v in summary.as_dict().items()
                                              if k != "rejected_by_reason"})
    return summary
