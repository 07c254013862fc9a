"""Replay's admission of staged records: the patient a record belongs to, and one
patient's records validated as ingest into the log would (decode, key, birth year,
duplicates and conflicts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from mbcjourney.errors import InvalidEvent
from mbcjourney.events import ClinicalEvent
from mbcjourney.events.codec import body_hash, decode_current, decode_with_body
from mbcjourney.processors.eventlog import is_repeat
from mbcjourney.processors.ingest import BirthYearCheck
from mbcjourney.processors.sources import PatientEvents, RawRecord, received_at


def _patient_of(record: RawRecord) -> tuple[str | None, str]:
    """The patient a record belongs to (for grouping), or None and why it cannot be an event.

    A Kafka record is keyed by its patient id: the key groups it, and the fold refuses an
    event whose own patient id differs.  A file line is parsed for it.
    """
    if record.key is not None and _usable_id(record.key):
        return record.key, ""
    try:
        data = orjson.loads(record.raw)
    except orjson.JSONDecodeError:
        return None, "$: not valid JSON"
    patient_id = data.get("patient_id") if isinstance(data, dict) else None
    if isinstance(patient_id, str) and _usable_id(patient_id):
        return patient_id, ""
    try:
        decode_with_body(record.raw, received_at=received_at(record.received_us))
    except InvalidEvent as error:
        return None, error.reason_code
    return None, "patient_id: not a valid identifier"


def _usable_id(text: str) -> bool:
    return 0 < len(text) <= 64 and text.isprintable()


def _admit(patient_id: str, rows: Iterable[tuple[Any, ...]]) -> PatientEvents:
    """Validate one patient's staged records in arrival order, as ingest into the log would.

    ``rows`` are (patient, partition, seq, received_us, body).  Invalid records are
    counted by reason; the same event twice is a duplicate; the same id with different
    content is refused; a fact dated before the birth year is refused.
    """
    rejected: Counter[str] = Counter()
    decoded: list[tuple[ClinicalEvent, bytes]] = []
    read = 0
    current, append = decode_current, decoded.append
    for _pid, _part, _seq, received_us, body in rows:  # once per staged record: kept lean
        read += 1
        raw = body if type(body) is bytes else bytes(body)
        try:
            event = current(raw)
            append((event, raw) if event is not None else decode_with_body(
                raw, received_at=received_at(received_us)))
        except InvalidEvent as error:
            rejected[error.reason_code] += 1
    group = PatientEvents(patient_id, [], read, rejected)
    births = BirthYearCheck()
    births.prepare(e for e, _ in decoded)
    kept: dict[int, bytes] = {}  # event id (as an integer: cheaper to hash) -> first body
    events = group.events
    for event, body in decoded:
        try:
            births.check(event)
        except InvalidEvent as error:
            rejected[error.reason_code] += 1
            continue
        if event.patient_id != patient_id:
            rejected["patient_id: does not match the message key"] += 1
            continue
        event_key = event.event_id.int
        first = kept.get(event_key)
        if first is None:
            kept[event_key] = body
            events.append(event)
        elif is_repeat(body_hash(first), first, body_hash(body), body):
            group.duplicates += 1
        else:
            rejected["event_id: already stored with different content"] += 1
    return group
