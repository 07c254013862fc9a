"""Patient histories of the Kafka workers: append-only, deduplicated by ``event_id``.

The live counterpart of the embedded event log (``processors/eventlog.py``): each
patient's validated event bodies, kept in memory and made durable as a faust
table whose changelog records are **deltas**: the events one batch added, per
source partition, never whole histories, so a changelog write costs what the
events cost, not what the histories weigh, and a batch costs a handful of records.
Each body names its patient; a delta carries the highest source offset of its
events, so a restored table knows how far it got per partition.

Idempotency is the event log's, decided by the same function
(:func:`~mbcjourney.processors.eventlog.is_repeat`): the same ``event_id`` again is
a duplicate when it is the same fact, a conflict otherwise, and the first one
wins.  Replaying a changelog twice adds nothing.

Decoded events are cached per patient for re-projection, within a bound on the
number of cached events (least recently used patients are dropped first; their
bodies stay and are decoded again when needed).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from enum import Enum

import orjson

from mbcjourney.events import ClinicalEvent
from mbcjourney.events.codec import body_hash, decode_stored
from mbcjourney.processors.eventlog import is_repeat

DELTA_FORMAT = 1
MAX_DELTA_BYTES = 512 * 1024  # stays well below Kafka's default 1 MiB request size
DEFAULT_CACHED_EVENTS = 250_000

_HEADER = struct.Struct(">Bq")  # format, highest source offset of the delta's events
_LENGTH = struct.Struct(">I")


class Offer(Enum):
    """What a history made of an event it was offered."""

    NEW = "new"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def encode_deltas(offset: int, bodies: Sequence[bytes],
                  max_bytes: int = MAX_DELTA_BYTES) -> Iterator[bytes]:
    """Changelog values for ``bodies`` (in order), each below ``max_bytes`` when it can be."""
    chunk: list[bytes] = []
    size = _HEADER.size
    for body in bodies:
        if chunk and size + _LENGTH.size + len(body) > max_bytes:
            yield _delta(offset, chunk)
            chunk, size = [], _HEADER.size
        chunk.append(body)
        size += _LENGTH.size + len(body)
    if chunk:
        yield _delta(offset, chunk)


def _delta(offset: int, bodies: list[bytes]) -> bytes:
    parts = [_HEADER.pack(DELTA_FORMAT, offset)]
    for body in bodies:
        parts.append(_LENGTH.pack(len(body)))
        parts.append(body)
    return b"".join(parts)


def decode_delta(value: bytes) -> tuple[int, list[bytes]]:
    """(highest source offset, bodies) of a changelog value written by :func:`encode_deltas`."""
    version, offset = _HEADER.unpack_from(value, 0)
    if version != DELTA_FORMAT:
        raise ValueError(f"unknown history delta format {version}")
    bodies: list[bytes] = []
    at = _HEADER.size
    while at < len(value):
        (length,) = _LENGTH.unpack_from(value, at)
        at += _LENGTH.size
        bodies.append(value[at : at + length])
        at += length
    if at != len(value):
        raise ValueError("truncated history delta")
    return offset, bodies


class PatientLog:
    """One patient's accepted events: ``event_id`` -> validated body.

    Content hashes are computed only for a repeated ``event_id`` (rare), not kept
    for every event.
    """

    __slots__ = ("_events", "facts", "partition", "patient_id")

    def __init__(self, patient_id: str, partition: int) -> None:
        self.patient_id = patient_id
        self.partition = partition
        self.facts: dict[str, bytes] = {}
        self._events: list[ClinicalEvent] | None = []

    def __len__(self) -> int:
        return len(self.facts)

    def offer(self, event: ClinicalEvent, body: bytes) -> Offer:
        """Keep ``event`` if its id is new; otherwise classify the repeat as the log does."""
        event_id = str(event.event_id)
        known = self.facts.get(event_id)
        if known is None:
            self.facts[event_id] = body
            if self._events is not None:
                self._events.append(event)
            return Offer.NEW
        if is_repeat(body_hash(known), known, body_hash(body), body):
            return Offer.DUPLICATE
        return Offer.CONFLICT

    def restore(self, event_id: str, body: bytes) -> bool:
        """Add a body read back from the changelog (trusted); False when already there."""
        if event_id in self.facts:
            return False
        self.facts[event_id] = body
        self._events = None  # decoded again on next use
        return True


class Histories:
    """Every patient history this worker holds, and how far each partition's table got."""

    def __init__(self, max_cached_events: int = DEFAULT_CACHED_EVENTS) -> None:
        self.logs: dict[str, PatientLog] = {}
        self.positions: dict[int, int] = {}  # partition -> highest source offset restored/added
        self.max_cached_events = max_cached_events
        self._decoded: OrderedDict[str, int] = OrderedDict()  # patient -> cached event count
        self._cached = 0

    def get(self, patient_id: str) -> PatientLog | None:
        return self.logs.get(patient_id)

    def log_for(self, patient_id: str, partition: int) -> PatientLog:
        log = self.logs.get(patient_id)
        if log is None:
            log = self.logs[patient_id] = PatientLog(patient_id, partition)
        return log

    def position(self, partition: int) -> int:
        """Highest source offset whose new events this table holds (-1: none)."""
        return self.positions.get(partition, -1)

    def advance(self, partition: int, offset: int) -> None:
        if offset > self.positions.get(partition, -1):
            self.positions[partition] = offset

    def restore(self, partition: int, value: bytes) -> int:
        """Apply one changelog delta of ``partition``; returns how many events were new."""
        offset, bodies = decode_delta(value)
        added = 0
        for body in bodies:
            ids = orjson.loads(body)
            patient_id = ids["patient_id"]
            if self.log_for(patient_id, partition).restore(ids["event_id"], body):
                self._forget(patient_id)
                added += 1
        self.advance(partition, offset)
        return added

    def events(self, patient_id: str) -> list[ClinicalEvent]:
        """The patient's decoded events (arrival order), from the cache when possible."""
        log = self.logs[patient_id]
        if log._events is None:
            log._events = [decode_stored(body) for body in log.facts.values()]
        self._cached += len(log._events) - self._decoded.pop(patient_id, 0)
        self._decoded[patient_id] = len(log._events)
        while self._cached > self.max_cached_events and len(self._decoded) > 1:
            oldest, count = self._decoded.popitem(last=False)
            self._cached -= count
            self.logs[oldest]._events = None
        return log._events

    def _forget(self, patient_id: str) -> None:
        self._cached -= self._decoded.pop(patient_id, 0)

    def drop_partitions(self, keep: set[int]) -> int:
        """Forget the histories of partitions not in ``keep`` (revoked); returns how many."""
        gone = [pid for pid, log in self.logs.items() if log.partition not in keep]
        for pid in gone:
            self._forget(pid)
            del self.logs[pid]
        for partition in [p for p in self.positions if p not in keep]:
            del self.positions[partition]
        return len(gone)

    def event_count(self) -> int:
        return sum(len(log) for log in self.logs.values())
