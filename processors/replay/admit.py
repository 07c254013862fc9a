"""Replay's admission of staged records: the patient a record belongs to, and one
patient's records admitted as ingest or a worker would (``processors/admission.py``:
decode, key, birth year, duplicates and conflicts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from typing import Any

import orjson

from mbcjourney.events.codec import body_hash
from mbcjourney.events.errors import InvalidEvent
from mbcjourney.processors.admission import (
    CONFLICT,
    UNKEYED,
    BirthYears,
    Key,
    decode_record,
    is_repeat,
)
from mbcjourney.processors.erasures import ERASURE_MARK, ERASURE_MARK_LEN
from mbcjourney.processors.sealing import Cipher
from mbcjourney.processors.sources import PatientEvents, RawRecord, received_at
from mbcjourney.processors.staging import STAGED_PREFIX


def _patient_of(record: RawRecord) -> tuple[str | None, str]:
    """The patient a file line belongs to (for grouping), or None and why it cannot be an event."""
    assert record.raw is not None
    try:
        data = orjson.loads(record.raw)
    except orjson.JSONDecodeError:
        data = None
    patient_id = data.get("patient_id") if isinstance(data, dict) else None
    if isinstance(patient_id, str) and _usable_id(patient_id):
        return patient_id, ""
    return None, _refused(record.raw, record, UNKEYED)


def _refused(raw: bytes, record: RawRecord, key: Key) -> str:
    """Why admission refuses a record that cannot be grouped by patient."""
    try:
        decode_record(raw, received_at=received_at(record.received_us), key=key)
    except InvalidEvent as error:
        return error.reason_code
    return "patient_id: not a valid identifier"


def _usable_id(text: str) -> bool:
    return 0 < len(text) <= 64 and text.isprintable()


def _admit(patient_id: str, rows: Iterable[tuple[Any, ...]], *, keyed: bool,
           cipher: Cipher | None = None, erased: AbstractSet[str] = frozenset(),
           unstage: Callable[[bytes], bytes] | None = None) -> PatientEvents:
    """Admit one patient's staged records in arrival order, as ingest or a worker would.

    ``rows`` are (patient, partition, seq, received_us, body); ``keyed``: they are
    Kafka records, grouped by their key.  Each record goes through admission
    (``processors/admission.py``): decoding (a sealed value opened by ``cipher``),
    the key, the birth year (in arrival order), then duplicate or conflict against
    the records kept before it.  A patient in ``erased`` is skipped whole, counted
    as erased; ``unstage`` opens what staging sealed.
    """
    rejected: Counter[str] = Counter()
    read = 0
    if patient_id in erased:
        return PatientEvents(patient_id, [], sum(1 for _ in rows), rejected, erased=True)
    group = PatientEvents(patient_id, [], read, rejected)
    opener = cipher.open if cipher is not None else None
    births = BirthYears()
    key: Key = patient_id if keyed else UNKEYED
    kept: dict[int, bytes] = {}  # event id (as an integer: cheaper to hash) -> first body
    events = group.events
    for _pid, _part, _seq, received_us, body in rows:  # once per staged record: kept lean
        read += 1
        raw = body if type(body) is bytes else bytes(body)
        if raw[:ERASURE_MARK_LEN] == ERASURE_MARK:  # patient.erased: skip the patient whole
            read += sum(1 for _ in rows)
            return PatientEvents(patient_id, [], read, Counter(), erased=True)
        if unstage is not None and raw[:2] == STAGED_PREFIX:
            raw = unstage(raw)
        try:
            event, raw = decode_record(raw, received_at=received_at(received_us), key=key,
                                       opener=opener)
            event_key = event.event_id.int
            first = kept.get(event_key)
            if first is None:  # a repeat is judged as one, not for the birth year again
                births.admit(event)
        except InvalidEvent as error:
            rejected[error.reason_code] += 1
            continue
        if first is None:
            kept[event_key] = raw
            events.append(event)
        elif is_repeat(body_hash(first), first, body_hash(raw), raw):
            group.duplicates += 1
        else:
            rejected[str(CONFLICT)] += 1
    group.read = read
    return group
