"""Decode at the edge: bytes in, a typed event out, or ``InvalidEvent`` naming field and reason.

Every source (JSON Lines file, Kafka message, HTTP body, stored log row) goes
through :func:`decode_event`; past this point code routes on event classes,
never on raw dicts.  Older schema versions are upcast here, on read.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import jiter
import orjson
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from mbcjourney.events.catalogue import (
    EVENT_CLASSES,
    ClinicalEvent,
    QuestionnaireRecordedPayload,
)
from mbcjourney.events.envelope import Envelope
from mbcjourney.events.errors import FieldError, InvalidEvent
from mbcjourney.events.limits import (
    EARLIEST_CLINICAL_YEAR,
    EARLIEST_RECORDED_YEAR,
    LATEST_CLINICAL_YEAR,
    MAX_EVENT_BYTES,
    OCCURRED_AFTER_RECORDED_SLACK_DAYS,
    RECORDED_AT_SLACK,
)
from mbcjourney.events.registry import CURRENT_VERSION, REGISTRY
from mbcjourney.events.upcasters import upcast

ENVELOPE_FIELDS = (
    "event_id", "event_type", "schema_version", "patient_id",
    "occurred_at", "recorded_at", "source", "payload",
)


def _contract_names() -> frozenset[str]:
    """Every field name of the contract (envelope and payloads, nested models too)."""
    names: set[str] = set()
    todo: list[type[BaseModel]] = list(EVENT_CLASSES)
    while todo:
        model = todo.pop()
        for name, info in model.model_fields.items():
            names.add(name)
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                todo.append(annotation)
    return frozenset(names)


_CONTRACT_NAMES = _contract_names()
# Fields whose keys are the sender's own (questionnaire item codes): never echoed.
_FREE_KEYED = frozenset({"items"})
# What pydantic itself puts in a location: union members and wrappers, e.g. "float",
# "function-after[...]", "literal['a']"; never input text.
_TAG = re.compile(r"[a-z][a-z0-9_-]*(\[[^\]]{0,200}\])?")


def _key_label(key: str) -> str:
    """A sender's key, named without its text: a short hash, stable for counting."""
    return "#" + hashlib.blake2b(key.encode(errors="replace"), digest_size=4).hexdigest()


def _suggestion(loc: tuple[int | str, ...]) -> str:
    """For an unknown field, the contract field it most likely meant (a name of ours)."""
    last = loc[-1] if loc else None
    if not isinstance(last, str) or len(last) > 64 or (len(loc) > 1 and loc[-2] in _FREE_KEYED):
        return ""
    close = difflib.get_close_matches(last, _CONTRACT_NAMES, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _location(loc: tuple[int | str, ...], *, unknown_last: bool = False) -> str:
    """The dotted path of an error, naming fields of the contract only.

    Input-controlled text (an unknown key, a questionnaire item code) becomes a
    hash label, so no patient free text reaches a reason, a log line or a count.
    """
    parts: list[str] = []
    previous: int | str | None = None
    for index, part in enumerate(loc):
        if isinstance(part, int):
            parts.append(str(part))
        elif (previous in _FREE_KEYED or (unknown_last and index == len(loc) - 1)
              or not (part in _CONTRACT_NAMES or _TAG.fullmatch(part))):
            parts.append(_key_label(part))
        else:
            parts.append(part)
        previous = part
    return ".".join(parts) or "$"


_CLINICAL_TIME_REASON = "must be an ISO date YYYY-MM-DD or an ISO date-time"
_YEAR_REASON = f"year must be between {EARLIEST_CLINICAL_YEAR} and {LATEST_CLINICAL_YEAR}"


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    raw = exc.errors(include_url=False, include_input=False, include_context=False)
    # occurred_at is a date-or-date-time union: report one error for it, not one per member.
    clinical = [e for e in raw if e["loc"][:1] == ("occurred_at",)]
    if clinical:
        out_of_range = any(
            e["type"] in ("less_than_equal", "greater_than_equal")
            or (e["type"] == "value_error" and "year must be" in e["msg"])
            for e in clinical
        )
        errors.append(FieldError("occurred_at", _YEAR_REASON if out_of_range
                                 else _CLINICAL_TIME_REASON))
    for err in raw:
        if err["loc"][:1] == ("occurred_at",):
            continue
        reason = "required field is missing" if err["type"] == "missing" else err["msg"]
        unknown = err["type"] == "extra_forbidden"
        if unknown:
            reason = "unknown field" + _suggestion(err["loc"])
        errors.append(FieldError(_location(err["loc"], unknown_last=unknown),
                                 reason.removeprefix("Value error, ")))
    return errors


NOT_JSON_REASON = "not valid JSON"
DUPLICATE_KEY_REASON = "an object repeats a key"
TOO_DEEP_REASON = "nested too deeply"
NUL_REASON = "a NUL character (U+0000) is not allowed"
BIG_INTEGER_REASON = "an integer does not fit in 64 bits"
TOO_LONG_REASON = f"longer than {MAX_EVENT_BYTES} bytes"
ISO_DATE_TIME_REASON = "must be an ISO date-time with zone (YYYY-MM-DDTHH:MM...)"
RECORDED_YEAR_REASON = f"year must be between {EARLIEST_RECORDED_YEAR} and {LATEST_CLINICAL_YEAR}"
RECORDED_AFTER_RECEIVED_REASON = (
    f"must not be more than {RECORDED_AT_SLACK.days} day after the event was received")


def parse_json(raw: bytes | str) -> dict[str, Any]:
    """Parse one JSON object strictly, or raise InvalidEvent on field ``$``.

    Strict: a repeated key in any object is refused (parsers disagree on which
    value counts: the engine's took the last, SQL's ``json_extract`` the first),
    and so are ``NaN``/``Infinity`` and nesting beyond the parser's limit.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent.single("$", TOO_LONG_REASON)
    try:
        data = jiter.from_json(raw.encode() if isinstance(raw, str) else raw,
                               allow_inf_nan=False, cache_mode=False,
                               catch_duplicate_keys=True)
    except ValueError as exc:  # jiter's message may quote a key: never passed on
        text = str(exc)
        reason = (DUPLICATE_KEY_REASON if text.startswith("Detected duplicate key")
                  else TOO_DEEP_REASON if text.startswith("recursion limit")
                  else NOT_JSON_REASON)
        raise InvalidEvent.single("$", reason) from None
    if not isinstance(data, dict):
        raise InvalidEvent.single("$", "must be a JSON object")
    # JSON can carry U+0000 only escaped; no text column of PostgreSQL can hold it, and
    # no field of the contract needs it.  (A literal backslash before "u0000" is refused
    # too: rarer than rare, and never meaningful.)
    if b"\\u0000" in (raw.encode() if isinstance(raw, str) else raw):
        raise InvalidEvent.single("$", NUL_REASON)
    return data


# ISO text only: pydantic would also read numbers and numeric text as Unix times
# ("20240115" became 1970-08-23).  Checked on the parsed JSON, before the model.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


# --- the fast path: a complete current event, written plainly ---------------------------
#
# Most input is a complete, current-version event with every key written ``"key":``.
# For such a line the strict parse of :func:`parse_json` (which costs as much as the
# validation) can be skipped without losing its guarantees:
#
# * a repeated key: each key token is ``"key":`` (no space before the colon), so the
#   line holds at least as many ``":`` as keys; the validated event counts its keys
#   (every key is a field, ``extra`` being forbidden, or a questionnaire item).  Equal
#   counts leave no room for a repeat; anything else takes the strict path;
# * ``NaN``/``Infinity``: refused by the models (``allow_inf_nan=False``);
# * numbers or numeric text as times: both times must start as ISO text;
# * size and U+0000: checked on the bytes first.
_SPACED_KEY = re.compile(rb'"\s+:')
_ISO_OCCURRED = re.compile(rb'"occurred_at":\s*"\d{4}-\d\d-\d\d')
_ISO_RECORDED = re.compile(rb'"recorded_at":\s*"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d')


def _decode_plain(raw: bytes, received_at: datetime) -> ClinicalEvent | None:
    """The event, if ``raw`` is a plainly written complete current event; else None."""
    if (len(raw) > MAX_EVENT_BYTES or b"\\u0000" in raw or _SPACED_KEY.search(raw)
            or not _ISO_OCCURRED.search(raw) or not _ISO_RECORDED.search(raw)):
        return None
    event = decode_current(raw, received_at)
    if event is None or raw.count(b'":') != _key_count(event):
        return None
    return event


def _key_count(event: ClinicalEvent) -> int:
    """How many keys the JSON of ``event`` had: its fields, its parts' fields, its items."""
    payload = event.payload
    count = (len(event.__pydantic_fields_set__) + len(event.source.__pydantic_fields_set__)
             + len(payload.__pydantic_fields_set__))
    if type(payload) is QuestionnaireRecordedPayload:
        count += len(payload.items)
    return count


def _check_time_text(data: dict[str, Any], event_type: str) -> None:
    occurred = data.get("occurred_at")
    if occurred is not None and not (
            isinstance(occurred, str)
            and (_ISO_DATE.fullmatch(occurred) or _ISO_DATE_TIME.match(occurred))):
        raise InvalidEvent.single("occurred_at", _CLINICAL_TIME_REASON, event_type=event_type)
    recorded = data.get("recorded_at")
    if recorded is not None and not isinstance(recorded, datetime) and not (
            isinstance(recorded, str) and _ISO_DATE_TIME.match(recorded)):
        raise InvalidEvent.single("recorded_at", ISO_DATE_TIME_REASON, event_type=event_type)


def decode_event(raw: bytes | str | dict[str, Any], *, received_at: datetime) -> ClinicalEvent:
    """Validate one event of the wire format; ``received_at`` fills a missing ``recorded_at``."""
    return decode_with_body(raw, received_at=received_at)[0]


def decode_with_body(raw: bytes | str | dict[str, Any], *, received_at: datetime
                     ) -> tuple[ClinicalEvent, bytes]:
    """:func:`decode_event`, plus the exact JSON bytes that were validated (for storing).

    Validation always runs on JSON (pydantic-core's JSON mode), whatever the input
    type, so a date is a date whether it came from a file, Kafka or a dict.
    """
    body: bytes | str | None
    if isinstance(raw, bytes):
        event = _decode_plain(raw, received_at)
        if event is not None:
            return event, raw
    if isinstance(raw, bytes | str):
        data, body = parse_json(raw), raw  # strict JSON: the careful path validates below
    else:
        data, body = raw, None
    event_type = data.get("event_type")
    if not isinstance(event_type, str):
        raise InvalidEvent.single("event_type", "required string field is missing")
    current = CURRENT_VERSION.get(event_type)
    if current is None:
        raise InvalidEvent.single("event_type", "unknown event type")
    version = data.get("schema_version")
    if type(version) is not int:
        raise InvalidEvent.single("schema_version", "required integer field", event_type=event_type)
    if version > current:
        raise InvalidEvent.single(
            "schema_version", f"newer than supported version {current}", event_type=event_type
        )
    _check_time_text(data, event_type)
    if version < current:
        data, body = upcast(data, event_type, version, current), None
    if data.get("recorded_at") is None:
        data, body = {**data, "recorded_at": received_at}, None
    if body is None:
        try:
            body = orjson.dumps(data)
        except TypeError:  # an integer beyond 64 bits, which no field of the contract takes
            raise InvalidEvent.single("$", BIG_INTEGER_REASON, event_type=event_type) from None
    elif isinstance(body, str):
        body = body.encode()
    cls = REGISTRY[(event_type, current)]
    try:
        validated = cls.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidEvent(_field_errors(exc), event_type=event_type) from None
    return _checked_order(validated, received_at), body  # type: ignore[arg-type]  # registry


def decode_current(raw: bytes, received_at: datetime) -> ClinicalEvent | None:
    """The fast path of :func:`decode_with_body`: None unless ``raw`` is a complete event.

    A complete, current-version event validates in one pydantic-core call;
    anything else (old version, missing ``recorded_at``, invalid) gets None and
    takes the careful path, which also produces the field-level error.  The
    caller has checked that ``raw`` is strict JSON (:func:`parse_json`).
    """
    try:
        event = _validate_current(raw)
    except ValidationError:
        return None
    return _checked_order(event, received_at)


def _checked_order(event: ClinicalEvent, received_at: datetime) -> ClinicalEvent:
    """The rules between an event's times and the moment it was received."""
    recorded = event.recorded_at
    if (event.occurred_on - recorded.date()).days > OCCURRED_AFTER_RECORDED_SLACK_DAYS:
        raise InvalidEvent.single(
            "occurred_at", "must not be after recorded_at", event_type=event.event_type
        )
    # As POSIX seconds: one zone conversion, then float comparisons (an aware datetime
    # compared across zones converts on every comparison).  ``timestamp()`` never
    # builds a datetime, so 9999-12-31T23:00-05:00 (past year 9999 in UTC) is fine.
    seconds = recorded.timestamp()
    if seconds > _latest_recorded(received_at):
        reason = (RECORDED_YEAR_REASON if seconds > _LATEST_RECORDED
                  else RECORDED_AFTER_RECEIVED_REASON)
        raise InvalidEvent.single("recorded_at", reason, event_type=event.event_type)
    if seconds < _EARLIEST_RECORDED:
        raise InvalidEvent.single("recorded_at", RECORDED_YEAR_REASON,
                                  event_type=event.event_type)
    return event


_EARLIEST_RECORDED = datetime(EARLIEST_RECORDED_YEAR, 1, 1, tzinfo=UTC).timestamp()
_LATEST_RECORDED = datetime(LATEST_CLINICAL_YEAR, 12, 31, 23, 59, 59, 999999,
                            tzinfo=UTC).timestamp()


@functools.lru_cache(maxsize=8)
def _latest_recorded(received_at: datetime) -> float:
    """The latest acceptable recorded_at (POSIX seconds) for events received then."""
    return min((received_at + RECORDED_AT_SLACK).timestamp(), _LATEST_RECORDED)


_CURRENT_EVENT: TypeAdapter[ClinicalEvent] = TypeAdapter(
    Annotated[ClinicalEvent, Field(discriminator="event_type")]
)
# pydantic-core's own validator: TypeAdapter.validate_json adds 0.4 us of keyword
# handling per call, once per event on every path that reads events.
_validate_current: Callable[[bytes | str], ClinicalEvent] = _CURRENT_EVENT.validator.validate_json
# The same for one known current (type, version), as read back from a log's row.
_VALIDATE_CURRENT_TYPE: dict[tuple[str, int], Callable[[bytes | str], ClinicalEvent]] = {
    (event_type, version): cls.__pydantic_validator__.validate_json
    for (event_type, version), cls in REGISTRY.items() if CURRENT_VERSION[event_type] == version
}


def decode_stored(body: bytes | str) -> ClinicalEvent:
    """Decode an event read back from a log that only holds validated events.

    A current-version body (the usual case) takes one pydantic-core call; an older
    one fails that (``schema_version`` is a literal) and is upcast.
    """
    try:
        return _validate_current(body)
    except ValidationError:
        pass
    data = parse_json(body)
    return decode_stored_row(str(data.get("event_type")), int(data.get("schema_version", 0)), body)


def decode_stored_row(event_type: str, schema_version: int, body: bytes | str) -> ClinicalEvent:
    """Fast path for stored events whose type and version are known from their row.

    Current-version bodies are validated straight from JSON in pydantic-core;
    older ones take the upcasting path of :func:`decode_event`.
    """
    validate = _VALIDATE_CURRENT_TYPE.get((event_type, schema_version))
    if validate is not None:
        try:
            return validate(body)
        except ValidationError as exc:
            raise InvalidEvent(_field_errors(exc), event_type=event_type) from None
    data = parse_json(body)
    return decode_event(data, received_at=datetime.fromisoformat(str(data["recorded_at"])))


def encode_event(event: Envelope) -> bytes:
    """The canonical wire form (v1 JSON) of a validated event."""
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


def body_hash(body: bytes) -> str:
    """Fingerprint of stored bytes: equal bytes are certainly the same event."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def same_fact(a: Envelope, b: Envelope) -> bool:
    """Same content apart from ``recorded_at``, which records knowing, not the fact.

    The same event resent without ``recorded_at`` (so stamped at a new ingest time)
    is therefore a duplicate, not a conflict.
    """
    return a.model_dump(exclude={"recorded_at"}) == b.model_dump(exclude={"recorded_at"})
