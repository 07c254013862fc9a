"""The envelope every event carries, and the time types it uses.

``occurred_at`` is clinical time: a date (``YYYY-MM-DD``) or an ISO date-time,
kept exactly as sent.  ``recorded_at`` is when the source learnt the fact, a
zone-aware instant normalised to UTC; it is what "as known on date T" filters.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

EARLIEST_CLINICAL_YEAR = 1900
LATEST_CLINICAL_YEAR = 2100


def _parse_clinical_time(value: Any) -> date | datetime:
    if isinstance(value, date):  # includes datetime
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO date YYYY-MM-DD or an ISO date-time")
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO date YYYY-MM-DD or an ISO date-time") from None


def _check_clinical_year(value: date | datetime) -> date | datetime:
    if not EARLIEST_CLINICAL_YEAR <= value.year <= LATEST_CLINICAL_YEAR:
        raise ValueError(
            f"year must be between {EARLIEST_CLINICAL_YEAR} and {LATEST_CLINICAL_YEAR}"
        )
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


ClinicalTime = Annotated[
    date | datetime,
    BeforeValidator(_parse_clinical_time),
    AfterValidator(_check_clinical_year),
]
RecordedTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


def clinical_date(value: date | datetime) -> date:
    """The calendar date of a clinical time, as the source stated it."""
    return value.date() if isinstance(value, datetime) else value


class Source(BaseModel):
    """The emitting system and its own reference for the fact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: Identifier
    reference: ShortText | None = None


class Payload(BaseModel):
    """Base of every payload: immutable, and unknown fields are refused by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(BaseModel):
    """Fields common to every event (DESIGN section 4, wire format v1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
        return clinical_date(self.occurred_at)
