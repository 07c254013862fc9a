"""The envelope every event carries, and the time types it uses.

``occurred_at`` is clinical time: a date (``YYYY-MM-DD``) or an ISO date-time,
kept exactly as sent.  ``recorded_at`` is when the source learnt the fact, a
zone-aware instant (kept in the zone it was sent in); it is what "as known on date T" filters.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
)

from mbcjourney.events.limits import (
    EARLIEST_CLINICAL_YEAR,
    EARLIEST_RECORDED_YEAR,
    LATEST_CLINICAL_YEAR,
)

# An ISO 8601 date-time: ``YYYY-MM-DD`` then ``T`` (or a space) and ``HH:MM``.
# pydantic alone also reads numbers and numeric strings as Unix timestamps, so
# ``"20240115"`` would become 1970-08-23: the contract says ISO, and nothing else.
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
ISO_DATE_TIME_REASON = "must be an ISO date-time (YYYY-MM-DDTHH:MM...)"


def _iso_date_time(value: object) -> object:
    if isinstance(value, str) and _ISO_DATE_TIME.match(value):
        return value
    if isinstance(value, datetime):  # a dict built in Python (tests, upcasters)
        return value
    raise ValueError(ISO_DATE_TIME_REASON)


def _check_clinical_year(value: datetime) -> datetime:
    if not EARLIEST_CLINICAL_YEAR <= value.year <= LATEST_CLINICAL_YEAR:
        raise ValueError(
            f"year must be between {EARLIEST_CLINICAL_YEAR} and {LATEST_CLINICAL_YEAR}"
        )
    return value


# Validated natively by pydantic-core (no Python call on the hot path): a strict
# date accepts exactly ``YYYY-MM-DD``; anything else must be an ISO date-time.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    # A strict date still reads "1705276800" (a Unix time at midnight) as 2024-01-15.
    # (The inner strict validator then sees Python values, so the text is parsed here.)
    if isinstance(value, str):
        if not _ISO_DATE.fullmatch(value):
            raise ValueError("must be an ISO date YYYY-MM-DD")
        return date.fromisoformat(value)
    return value


ClinicalDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    Strict(),
    Field(ge=date(EARLIEST_CLINICAL_YEAR, 1, 1), le=date(LATEST_CLINICAL_YEAR, 12, 31)),
    WithJsonSchema({"format": "date", "type": "string"}),
]
ClinicalDateTime = Annotated[
    datetime, BeforeValidator(_iso_date_time), AfterValidator(_check_clinical_year)
]
ClinicalTime = Annotated[ClinicalDate | ClinicalDateTime, Field(union_mode="left_to_right")]


def _check_recorded_year(value: datetime) -> datetime:
    # Checked in UTC, where the log stores it: 9999-12-31T23:00-05:00 is year 10000 there,
    # which no datetime can hold (OverflowError on conversion).
    try:
        year = value.astimezone(UTC).year
    except OverflowError:
        year = 10_000
    if not EARLIEST_RECORDED_YEAR <= year <= LATEST_CLINICAL_YEAR:
        raise ValueError(f"year must be between {EARLIEST_RECORDED_YEAR} and "
                         f"{LATEST_CLINICAL_YEAR} (UTC)")
    return value


RecordedTime = Annotated[
    AwareDatetime, BeforeValidator(_iso_date_time), AfterValidator(_check_recorded_year)
]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


def clinical_date(value: date | datetime) -> date:
    """The calendar date of a clinical time, as the source stated it."""
    return value.date() if isinstance(value, datetime) else value


class Source(BaseModel):
    """The emitting system and its own reference for the fact."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    system: Identifier
    reference: ShortText | None = None


class Payload(BaseModel):
    """Base of every payload: immutable, unknown fields refused by name, numbers finite."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Envelope(BaseModel):
    """Fields common to every event (DESIGN section 4, wire format v1)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # The stable identity of an event class; never a module path.
    EVENT_TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: UUID
    event_type: str
    schema_version: int
    patient_id: Identifier
    occurred_at: ClinicalTime
    recorded_at: RecordedTime
    source: Source

    @property
    def occurred_on(self) -> date:
        occurred = self.occurred_at  # inlined clinical_date(): this is the hottest accessor
        return occurred.date() if isinstance(occurred, datetime) else occurred
