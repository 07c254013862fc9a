"""Admission: the one path that decides what may enter any log, and why not.

Every entry point admits through here -- ``journey ingest`` into the SQL log,
``journey publish`` before producing, the Kafka worker before its histories,
replay before it folds a file or a topic -- so the same input gets the same
verdict and the same reason text on every path.  In arrival order:

1. **decode** (:func:`decode_record`): strict JSON within the limits of
   :mod:`~mbcjourney.events.limits`, upcast to the current version, validated
   against the contract (field + reason on failure);
2. **key** (Kafka records only): the record's key is the event's ``patient_id``;
   a keyless record is refused (it would land on an arbitrary partition, away
   from the patient's other events);
3. **birth year** (:class:`BirthYears`): a fact dated before its patient's birth
   year is refused when the patient's inclusion arrived earlier (in this input or
   in the log).  A fact that arrives *before* the inclusion cannot be judged at
   admission; the projection leaves it out and reports it (``projections/history``),
   so results never depend on arrival order.  A repeat of an event already admitted
   (stored, or earlier in the input) is not judged again: it goes on to step 4 and
   is a duplicate, so a rerun after a kill, or a file sent twice, adds nothing;
4. **duplicate or conflict** (:func:`is_repeat`): the same ``event_id`` again is a
   duplicate when it is the same fact (only ``recorded_at`` may differ), a
   conflict (refused, :data:`CONFLICT`) otherwise; the first one stays;
5. **erased** (:data:`ERASED`): nothing more is admitted for a patient who was
   erased (``journey erase``); the refusal is dead-lettered without the payload.

Each log applies step 4 against what it holds (the SQL table, the worker's
histories, replay's folded set) with :func:`is_repeat`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from mbcjourney.events import ClinicalEvent
from mbcjourney.events.catalogue import PatientIncluded
from mbcjourney.events.codec import decode_stored, decode_with_body, same_fact
from mbcjourney.events.errors import EventConflict, FieldError, InvalidEvent
from mbcjourney.processors.keys import KeyDestroyed

# --- the reasons of admission's own rules (decoding names its fields itself) ----------

KEY_MISSING = FieldError("key", "required: a record's key is its patient_id")
KEY_MISMATCH = FieldError("key", "must be the event's patient_id")
BEFORE_BIRTH = FieldError("occurred_at", "before the patient's birth year")
CONFLICT = EventConflict.REASON
EMPTY_RECORD = FieldError("$", "empty message")
TOMBSTONE = FieldError("$", "tombstone (a record without a value)")
SEALED_UNKEYED = FieldError("$", "sealed, and without the record key (the patient id) "
                                "that names its data key")
SEALED_NO_KEYS = FieldError("$", "sealed, and no key store is configured to open it")
SEALED_UNOPENABLE = FieldError("$", "sealed, and does not open with its patient's data key")
# Its text is the dead letters' ERASED_REASON: such a letter keeps no payload.
ERASED = FieldError("patient_id", "the patient was erased (consent withdrawn); payload not kept")


def refusal(reason: FieldError, event_type: str | None = None) -> InvalidEvent:
    """An :class:`InvalidEvent` for one of the reasons above."""
    return InvalidEvent([reason], event_type=event_type)


class _Unkeyed:
    """The key of input that has none by nature (a file line, an HTTP body)."""

    def __repr__(self) -> str:
        return "UNKEYED"


UNKEYED = _Unkeyed()
Key = bytes | str | None | _Unkeyed


def decode_record(raw: bytes | None, *, received_at: datetime, key: Key = UNKEYED,
                  opener: Opener | None = None) -> tuple[ClinicalEvent, bytes]:
    """Steps 1 and 2: the event and the exact bytes to store, or :class:`InvalidEvent`.

    ``key`` is a Kafka record's key (``None`` for a keyless record, and a
    ``None`` value is a tombstone); input without keys passes :data:`UNKEYED`.
    A sealed value (``~1...``, as the publisher writes) is opened first with its
    key's data key by ``opener`` (a sealer's ``open``); the bytes returned are clear.
    """
    if raw is None:
        raise refusal(TOMBSTONE)
    if not raw:
        raise refusal(EMPTY_RECORD)
    if raw[:2] == b"~1":
        raw = _opened(raw, key, opener)
    event, body = decode_with_body(raw, received_at=received_at)
    if key is not UNKEYED:
        if key is None:
            raise refusal(KEY_MISSING, event.event_type)
        given = key.decode(errors="replace") if isinstance(key, bytes) else key
        if given != event.patient_id:
            raise refusal(KEY_MISMATCH, event.event_type)
    return event, body


Opener = Callable[[str, bytes], bytes]


def _opened(raw: bytes, key: Key, opener: Opener | None) -> bytes:
    """The clear bytes of a sealed value, or the reason it cannot be admitted."""
    if key is UNKEYED or key is None:
        raise refusal(SEALED_UNKEYED)
    if opener is None:
        raise refusal(SEALED_NO_KEYS)
    patient_id = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
    try:
        return opener(patient_id, raw)
    except KeyDestroyed:
        raise refusal(ERASED) from None
    except ValueError:  # Unopenable
        raise refusal(SEALED_UNOPENABLE) from None


BirthYearLookup = Callable[[set[str]], dict[str, int]]


def birth_year_of(event: ClinicalEvent) -> int | None:
    return event.payload.birth_year if type(event) is PatientIncluded else None


class BirthYears:
    """Step 3, in arrival order: each patient's birth year, from the first inclusion seen.

    ``lookup`` (the SQL log's :meth:`birth_years`) answers for patients included by
    earlier input; it is asked once per patient.  An inclusion dated before its own
    birth year is refused like any other fact.
    """

    def __init__(self, lookup: BirthYearLookup | None = None) -> None:
        self._lookup = lookup
        self._years: dict[str, int] = {}
        self._looked_up: set[str] = set()
        # ids admitted while their patient's birth year was unknown (see unjudged): their
        # repeats are duplicates, never refused for the birth year learnt since
        self._early: dict[str, set[str]] = {}

    def preload(self, patient_ids: Iterable[str]) -> None:
        """Ask ``lookup`` about these patients (once each), ahead of :meth:`admit`."""
        unknown = set(patient_ids) - self._looked_up - self._years.keys()
        if unknown and self._lookup is not None:
            for patient_id, year in self._lookup(unknown).items():
                self._years.setdefault(patient_id, year)
        self._looked_up |= unknown

    def known(self) -> Mapping[str, int]:
        return self._years

    def admit(self, event: ClinicalEvent) -> None:
        """Refuse ``event`` if dated before its patient's known birth year; learn inclusions."""
        self.admit_row(event.patient_id, event.occurred_on.year, birth_year_of(event),
                       event.event_type, str(event.event_id))

    def admit_row(self, patient_id: str, year: int, birth_year: int | None,
                  event_type: str | None, event_id: str) -> None:
        """:meth:`admit` on an event's parts (ingest checks rows, not events)."""
        known = self._years.get(patient_id)
        if known is None and birth_year is None:
            return
        if known is None:
            known = birth_year  # the inclusion itself must not precede its birth year
        if known is not None and year < known and event_id not in self._early.get(
                patient_id, ()):
            raise refusal(BEFORE_BIRTH, event_type)
        if birth_year is not None:
            self._years.setdefault(patient_id, birth_year)

    def unjudged(self, patient_id: str, event_id: str) -> None:
        """Note an event admitted before its patient's birth year was known.

        Only for a caller that holds no log to recognise a repeat by (``journey
        publish``): the SQL log, the worker's histories and replay's folded set each
        judge a repeat as a repeat before asking this class.
        """
        self._early.setdefault(patient_id, set()).add(event_id)

    def learn(self, patient_id: str, birth_year: int) -> None:
        """Remember an inclusion already admitted (a worker restoring its histories)."""
        self._years.setdefault(patient_id, birth_year)

    def forget(self, patient_ids: Iterable[str]) -> None:
        """Drop what is known of these patients (a worker's revoked partitions)."""
        for patient_id in patient_ids:
            self._years.pop(patient_id, None)
            self._looked_up.discard(patient_id)
            self._early.pop(patient_id, None)


def is_repeat(known_hash: str, known_body: str | bytes, content_hash: str,
              body: str | bytes) -> bool:
    """Step 4 for a stored ``event_id`` sent again: a duplicate (True) or a conflict (False).

    Equal bytes are the same event; otherwise it is the same fact when only
    ``recorded_at`` differs (a resend stamped at a new ingest time).  Every log --
    the SQL table, the Kafka workers' patient histories, replay -- decides with this.
    """
    return known_hash == content_hash or same_fact(decode_stored(known_body),
                                                   decode_stored(body))
