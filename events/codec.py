"""Decode at the edge: bytes in, a typed event out, or ``InvalidEvent`` naming field and reason.

Every source (JSON Lines file, Kafka message, HTTP body, stored log row) goes
through :func:`decode_event`; past this point code routes on event classes,
never on raw dicts.  Older schema versions are upcast here, on read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from mbcjourney.events.catalogue import ClinicalEvent
from mbcjourney.events.envelope import EARLIEST_CLINICAL_YEAR, LATEST_CLINICAL_YEAR, Envelope
from mbcjourney.events.errors import FieldError, InvalidEvent
from mbcjourney.events.registry import CURRENT_VERSION, REGISTRY
from mbcjourney.events.upcasters import upcast

ENVELOPE_FIELDS = (
    "event_id", "event_type", "schema_version", "patient_id",
    "occurred_at", "recorded_at", "source", "payload",
)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "$"


_CLINICAL_TIME_REASON = "must be an ISO date YYYY-MM-DD or an ISO date-time"
_YEAR_REASON = f"year must be between {EARLIEST_CLINICAL_YEAR} and {LATEST_CLINICAL_YEAR}"


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    raw = exc.errors(include_url=False, include_input=False, include_context=False)
    # occurred_at is a date-or-date-time union: report one error for it, not one per member.
    clinical = [e for e in raw if e["loc"][:1] == ("occurred_at",)]
    if clinical:
        out_of_range = any(
            e["type"] in ("less_than_equal", "greater_than_equal", "value_error")
            for e in clinical
        )
        errors.append(FieldError("occurred_at", _YEAR_REASON if out_of_range
                                 else _CLINICAL_TIME_REASON))
    for err in raw:
        if err["loc"][:1] == ("occurred_at",):
            continue
        reason = "required field is missing" if err["type"] == "missing" else err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        errors.append(FieldError(_location(err["loc"]), reason.removeprefix("Value error, ")))
    return errors


def parse_json(raw: bytes | str) -> dict[str, Any]:
    """Parse one JSON object, or raise InvalidEvent on field ``$``."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidEvent.single("$", "not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidEvent.single("$", "must be a JSON object")
    return data


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
        event = decode_current(raw)
        if event is not None:
            return event, raw
    if isinstance(raw, bytes | str):
        data, body = parse_json(raw), raw
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
    if version < current:
        data, body = upcast(data, event_type, version, current), None
    if data.get("recorded_at") is None:
        data, body = {**data, "recorded_at": received_at}, None
    if body is None:
        body = orjson.dumps(data)
    elif isinstance(body, str):
        body = body.encode()
    cls = REGISTRY[(event_type, current)]
    try:
        validated = cls.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidEvent(_field_errors(exc), event_type=event_type) from None
    return _checked_order(validated), body  # type: ignore[arg-type]  # registry: type -> class


def decode_current(raw: bytes) -> ClinicalEvent | None:
    """The fast path of :func:`decode_with_body`: None unless ``raw`` is a complete event.

    A complete, current-version event validates in one pydantic-core call;
    anything else (old version, missing ``recorded_at``, invalid) gets None and
    takes the careful path, which also produces the field-level error.
    """
    try:
        event = _validate_current(raw)
    except ValidationError:
        return None
    return _checked_order(event)


def _checked_order(event: ClinicalEvent) -> ClinicalEvent:
    # A day of slack: a local clinical date may fall on the next UTC day.
    if (event.occurred_on - event.recorded_at.date()).days > 1:
        raise InvalidEvent.single(
            "occurred_at", "must not be after recorded_at", event_type=event.event_type
        )
    return event


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
