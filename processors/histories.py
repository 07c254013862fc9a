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
number of cached events (see :class:`Histories`; an evicted patient's bodies stay
and are decoded again when needed).
"""

from __future__ import annotations

import struct
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from enum import Enum

import orjson

from mbcjourney.events import ClinicalEvent
from mbcjourney.events.catalogue import PatientIncluded
from mbcjourney.events.codec import body_hash, decode_stored
from mbcjourney.processors.admission import BirthYears, is_repeat
from mbcjourney.processors.keys import KeyDestroyed
from mbcjourney.processors.sealing import Cipher

DELTA_FORMAT = 1
# Entries of a sealed delta: patient id, NUL, the body sealed with that patient's key
# (processors/sealing.py); a worker with a key store writes these.
SEALED_DELTA_FORMAT = 2
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
                  max_bytes: int = MAX_DELTA_BYTES, *, sealed: bool = False) -> Iterator[bytes]:
    """Changelog values for ``bodies`` (in order), each below ``max_bytes`` when it can be.

    ``sealed``: the bodies are :func:`sealed_entry` values.
    """
    fmt = SEALED_DELTA_FORMAT if sealed else DELTA_FORMAT
    chunk: list[bytes] = []
    size = _HEADER.size
    for body in bodies:
        if chunk and size + _LENGTH.size + len(body) > max_bytes:
            yield _delta(offset, chunk, fmt)
            chunk, size = [], _HEADER.size
        chunk.append(body)
        size += _LENGTH.size + len(body)
    if chunk:
        yield _delta(offset, chunk, fmt)


def sealed_entry(patient_id: str, sealed: str) -> bytes:
    """A sealed delta's entry: whose key opens it, then the sealed body."""
    return patient_id.encode() + b"\0" + sealed.encode()


def _delta(offset: int, bodies: list[bytes], fmt: int = DELTA_FORMAT) -> bytes:
    parts = [_HEADER.pack(fmt, offset)]
    for body in bodies:
        parts.append(_LENGTH.pack(len(body)))
        parts.append(body)
    return b"".join(parts)


def decode_delta(value: bytes) -> tuple[int, list[bytes]]:
    """(highest source offset, bodies) of a changelog value written by :func:`encode_deltas`."""
    version, offset = _HEADER.unpack_from(value, 0)
    if version not in (DELTA_FORMAT, SEALED_DELTA_FORMAT):
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
    """One patient's accepted events: ``event_id`` -> validated body (the worker adds
    through :meth:`Histories.offer`, which keeps the decoded-event cache's count).

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
    """Every patient history this worker holds, and how far each partition's table got.

    Decoded events are cached per patient, at most ``max_cached_events`` in all,
    counted as they are added.  When full, the least recently used patient gives
    way, unless it was used by this batch or the previous one: then the history
    that needed room is not kept decoded.  Catching up on a backlog touches most
    patients in every batch, always in the same order; plain LRU then evicted,
    each time, the very patient needed next, and every batch decoded every history
    again (a 10,000-patient backlog ran at half speed).  This way what is cached
    stays cached, and only the rest is decoded again.
    """

    def __init__(self, max_cached_events: int = DEFAULT_CACHED_EVENTS,
                 cipher: Cipher | None = None) -> None:
        self.cipher = cipher  # opens sealed changelog deltas
        self.erased: set[str] = set()  # patients dropped for good (patient.erased)
        self.logs: dict[str, PatientLog] = {}
        self.positions: dict[int, int] = {}  # partition -> highest source offset restored/added
        self.max_cached_events = max_cached_events
        # patients whose decoded events are cached -> batch that last used them, least
        # recent first; a log's events are cached exactly when it is in here
        self._used: OrderedDict[str, int] = OrderedDict()
        self._cached = 0  # decoded events held, over every cached patient
        self._batch = 0
        self.redecoded = 0  # events decoded again from their bodies (not in the cache)
        # admission's birth-year rule, over the events of these histories in arrival order
        self.births = BirthYears()

    def get(self, patient_id: str) -> PatientLog | None:
        return self.logs.get(patient_id)

    def log_for(self, patient_id: str, partition: int) -> PatientLog:
        log = self.logs.get(patient_id)
        if log is None:
            log = self.logs[patient_id] = PatientLog(patient_id, partition)
            self._used[patient_id] = self._batch  # a new history is cached (empty)
        return log

    def offer(self, partition: int, event: ClinicalEvent, body: bytes) -> Offer:
        """Offer ``event`` to its patient's history, counting the decoded event it keeps."""
        log = self.log_for(event.patient_id, partition)
        outcome = log.offer(event, body)
        if outcome is Offer.NEW and log._events is not None:
            self._cached += 1
            self._used[log.patient_id] = self._batch
            self._used.move_to_end(log.patient_id)
            if self._cached > self.max_cached_events:
                self._make_room(log)
        return outcome

    def position(self, partition: int) -> int:
        """Highest source offset whose new events this table holds (-1: none)."""
        return self.positions.get(partition, -1)

    def advance(self, partition: int, offset: int) -> None:
        if offset > self.positions.get(partition, -1):
            self.positions[partition] = offset

    def restore(self, partition: int, value: bytes) -> int:
        """Apply one changelog delta of ``partition``; returns how many events were new."""
        offset, bodies = decode_delta(value)
        sealed = value[0] == SEALED_DELTA_FORMAT
        added = 0
        for entry in bodies:
            body = self._opened(entry) if sealed else entry
            if body is None:  # an erased patient's: the key is gone
                continue
            ids = orjson.loads(body)
            # The key :meth:`PatientLog.offer` uses: the normalised UUID, not the text as
            # sent (an upper-case id restored as sent made its conflicting twin look new).
            event_id = str(uuid.UUID(ids["event_id"]))
            patient_id = ids["patient_id"]
            log = self.log_for(patient_id, partition)
            if event_id in log.facts:
                continue
            if log._events is not None:
                self._uncache(log)
            log.restore(event_id, body)
            if ids.get("event_type") == PatientIncluded.EVENT_TYPE:
                self.births.learn(patient_id, ids["payload"]["birth_year"])
            added += 1
        self.advance(partition, offset)
        return added

    def begin_batch(self) -> None:
        """A batch starts: what this batch and the previous one use is not evicted."""
        self._batch += 1

    def events(self, patient_id: str) -> list[ClinicalEvent]:
        """The patient's decoded events (arrival order), from the cache when possible."""
        log = self.logs[patient_id]
        events = log._events
        if events is not None:
            self._used[patient_id] = self._batch
            self._used.move_to_end(patient_id)
            return events
        events = log._events = [decode_stored(body) for body in log.facts.values()]
        self.redecoded += len(events)
        self._used[patient_id] = self._batch
        self._cached += len(events)
        if self._cached > self.max_cached_events:
            self._make_room(log)
        return events

    def _make_room(self, needing: PatientLog) -> None:
        """Evict down to the bound, or else stop caching ``needing`` (see the class)."""
        used = self._used
        while self._cached > self.max_cached_events and used:
            oldest, batch = next(iter(used.items()))
            if batch >= self._batch - 1:
                break
            self._uncache(self.logs[oldest])
        if self._cached > self.max_cached_events and len(used) > 1 and needing._events is not None:
            self._uncache(needing)

    def _uncache(self, log: PatientLog) -> None:
        del self._used[log.patient_id]
        self._cached -= len(log._events or ())
        log._events = None

    def _opened(self, entry: bytes) -> bytes | None:
        patient_id, _, sealed = entry.partition(b"\0")
        if self.cipher is None:
            raise ValueError("a sealed history delta, and no key store to open it")
        name = patient_id.decode()
        if name in self.erased:
            return None
        try:
            return self.cipher.open(name, sealed)
        except KeyDestroyed:
            self.erased.add(name)
            return None

    def drop_patient(self, patient_id: str) -> bool:
        """Forget an erased patient's history for good; True when this worker held it."""
        self.erased.add(patient_id)
        log = self.logs.pop(patient_id, None)
        if log is None:
            return False
        if log._events is not None:
            self._uncache(log)
        self.births.forget([patient_id])
        return True

    def drop_partitions(self, keep: set[int]) -> int:
        """Forget the histories of partitions not in ``keep`` (revoked); returns how many."""
        gone = [log for log in self.logs.values() if log.partition not in keep]
        for log in gone:
            if log._events is not None:
                self._uncache(log)
            del self.logs[log.patient_id]
        self.births.forget(log.patient_id for log in gone)
        for partition in [p for p in self.positions if p not in keep]:
            del self.positions[partition]
        return len(gone)

    def event_count(self) -> int:
        return sum(len(log) for log in self.logs.values())
