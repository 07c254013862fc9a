"""Publish a JSON Lines file to the event topic: the scale-out twin of ``journey ingest``.

Every line goes through the same edge validation as the embedded ingest
(:func:`~mbcjourney.processors.ingest.validate_lines`: contract, then birth year
against inclusions seen earlier in the file), so the same file yields the same
accepted events in both deployments.  Valid events are produced keyed by
``patient_id`` (one patient, one partition, in file order), the value being the
validated JSON bytes (``recorded_at`` filled in when the line had none).  Invalid
lines go to the dead-letter topic with their original bytes (see
:mod:`~mbcjourney.processors.kafkaio`).

Duplicates and ``event_id`` conflicts are the workers' business: the publisher
does not remember what earlier runs published, so publishing a file twice is
harmless.

Producer: ``acks=all``, idempotence on.  Every send's future is checked, a batch
behind the one being sent and after the final flush, so nothing is lost silently:
a failed send raises :class:`~mbcjourney.errors.ServiceUnavailable`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

from mbcjourney.events.errors import InvalidEvent, ServiceUnavailable
from mbcjourney.processors.admission import BirthYears
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.ingest import (
    ACCEPTED,
    BATCH_SIZE,
    REJECTED,
    ItemOutcome,
    LineSummary,
    validate_lines,
)
from mbcjourney.processors.kafkaio import (
    DEAD_LETTER_TOPIC,
    EVENTS_TOPIC,
    MAX_REQUEST_BYTES,
    connect,
    dead_letter_message,
)
from mbcjourney.processors.sealing import Cipher

log = structlog.get_logger(__name__)

SEND_TIMEOUT_S = 120.0


class SendFuture(Protocol):
    def get(self, timeout: float | None = None) -> Any: ...


class Producer(Protocol):
    """The part of kafka-python's ``KafkaProducer`` the publisher uses."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> SendFuture: ...
    def flush(self, timeout: float | None = None) -> None: ...


@dataclass
class PublishSummary(LineSummary):
    published: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"read": self.read, "published": self.published,
                "rejected": self.rejected_total, "patients": len(self.patients)}


def open_producer(bootstrap: str, *, linger_ms: int = 50, client_id: str = "journey-publish"
                  ) -> Any:
    """A kafka-python producer as the design asks: acks=all, idempotent, never auto-creating."""
    from kafka import KafkaProducer

    return connect(
        KafkaProducer, bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,  # explicit: a conflicting setting raises instead of degrading
        allow_auto_create_topics=False,
        linger_ms=linger_ms,
        batch_size=512 * 1024,
        max_request_size=MAX_REQUEST_BYTES,  # lines over MAX_EVENT_BYTES never get here
        max_block_ms=60_000,
        # bytes in, bytes out: no serializer callables (deprecated in kafka-python 3)
    )


class _Pending:
    """Futures of sends not yet confirmed, checked one batch behind the sender."""

    def __init__(self) -> None:
        self._batches: deque[list[tuple[str, SendFuture]]] = deque([[]])

    def add(self, what: str, future: SendFuture) -> None:
        self._batches[-1].append((what, future))

    def next_batch(self) -> None:
        self._batches.append([])
        while len(self._batches) > 2:
            self._check(self._batches.popleft())

    def check_all(self) -> None:
        while self._batches:
            self._check(self._batches.popleft())

    @staticmethod
    def _check(futures: list[tuple[str, SendFuture]]) -> None:
        for what, future in futures:
            try:
                future.get(timeout=SEND_TIMEOUT_S)
            except Exception as exc:  # kafka-python raises KafkaError subclasses
                raise ServiceUnavailable(f"publishing {what} failed: {exc!r}") from None


def publish_lines(
    lines: Iterable[tuple[int, bytes]],
    producer: Producer,
    *,
    origin: str,
    received_at: datetime,
    topic: str = EVENTS_TOPIC,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    on_item: ItemOutcome | None = None,
    cipher: Cipher | None = None,
) -> PublishSummary:
    """Validate every line; produce the good ones, dead-letter the others; confirm every send.

    With ``cipher`` (every deployment but a benchmark's baseline) each value is sealed
    with its patient's data key, dead letters as the dead-letter store seals them: the
    topics hold no clinical fact in clear (the key, the patient id, routes them).

    ``on_item`` (as for :func:`~mbcjourney.processors.ingest.ingest_lines`) hears each
    line's outcome once every send is confirmed: ``accepted`` means published (the
    workers recognise a repeat of a stored event), ``rejected`` dead-lettered.
    """
    summary = PublishSummary()
    told: list[tuple[int, str, str | None, InvalidEvent | None]] = []
    pending = _Pending()
    births = BirthYears()  # inclusions seen earlier in this file only
    sealing = cipher is not None and cipher.enabled
    gone = cipher.erased_names() if sealing and cipher is not None else set()

    def erased(patients: set[str]) -> set[str]:
        return patients & gone

    for checked in validate_lines(lines, births, received_at=received_at,
                                  batch_size=batch_size, erased=erased):
        summary.read += len(checked.lines)
        if sealing and cipher is not None:
            cipher.prepare({item.row.patient_id for item in checked.valid})
        for item in checked.valid:
            row = item.row
            number = checked.lines[item.at][0]
            value = (cipher.seal(row.patient_id, row.body.encode()).encode()
                     if sealing and cipher is not None else row.body.encode())
            pending.add(f"{origin}:{number}", producer.send(
                topic, key=row.patient_id.encode(), value=value))
            summary.patients.add(row.patient_id)
            if on_item is not None:
                told.append((number, ACCEPTED, row.event_id, None))
        summary.published += len(checked.valid)
        for index, error in checked.rejected:
            number, raw = checked.lines[index]
            _dead_letter(producer, pending, dead_letter_topic, raw, error,
                         f"{origin}:{number}", received_at, cipher)
            summary.rejected[error.reason_code] += 1
            if on_item is not None:
                told.append((number, REJECTED, None, error))
        pending.next_batch()
        if on_batch is not None:
            on_batch(len(checked.lines))
    producer.flush(timeout=SEND_TIMEOUT_S)
    pending.check_all()
    if on_item is not None:
        for outcome in told:
            on_item(*outcome)
    log.info("publish.done", origin=origin, topic=topic, **summary.as_dict())
    return summary


def _dead_letter(producer: Producer, pending: _Pending, topic: str, raw: bytes,
                 error: InvalidEvent, origin: str, received_at: datetime,
                 cipher: Cipher | None) -> None:
    key, value, headers = dead_letter_message(DeadLetter.of(raw, error, origin, received_at),
                                              cipher)
    pending.add(f"dead letter {origin}", producer.send(topic, key=key, value=value,
                                                       headers=headers))
    log.debug("event.rejected", origin=origin, event_type=error.event_type,
              reason=error.reason_code)


@dataclass
class CopySummary:
    read: int = 0
    sealed: int = 0  # clear values sealed on the way
    copied: int = 0  # already sealed, or not an event (kept as they were: the workers judge)
    dropped: int = 0  # tombstones, and clear values of erased patients


def copy_topic_sealed(source: Any, producer: Producer, target_topic: str, cipher: Cipher,
                      on_batch: Callable[[int], None] | None = None) -> CopySummary:
    """The migration of a topic written before encryption: every record of ``source``
    (a :class:`~mbcjourney.processors.sources.KafkaSource`) produced to ``target_topic``
    with the same key, in the same order per key, clear values sealed with their
    patient's key; an erased patient's clear values are not copied."""
    summary = CopySummary()
    pending = _Pending()
    erased = cipher.erased_names()
    snapshot = source.snapshot()
    for records, _positions in source.read(snapshot, source.start(snapshot)):
        cipher.prepare({r.key for r in records if r.key and r.key not in erased})
        for record in records:
            summary.read += 1
            value, key = record.raw, record.key
            if value is None or (key in erased and value[:1] == b"{"):
                summary.dropped += 1
                continue
            if key and value[:1] == b"{":
                value = cipher.seal(key, value).encode()
                summary.sealed += 1
            else:
                summary.copied += 1
            pending.add(f"{source.topic}/{record.partition}/{record.seq}", producer.send(
                target_topic, key=key.encode() if key is not None else None, value=value))
        pending.next_batch()
        if on_batch is not None:
            on_batch(len(records))
    producer.flush(timeout=SEND_TIMEOUT_S)
    pending.check_all()
    log.info("publish.topic_copied", **summary.__dict__)
    return summary
