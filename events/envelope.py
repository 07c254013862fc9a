"""The envelope every event carries, and the time types it uses.

``occurred_at`` is clinical time: a date (``YYYY-MM-DD``) or an ISO date-time,
kept exactly as sent.  ``recorded_at`` is when the source learnt the fact, a
zone-aware instant (kept in the zone it was sent in); it is what "as known on date T" filters.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
)

from mbcjourney.events.limits import EARLIEST_CLINICAL_YEAR, LATEST_CLINICAL_YEAR


def _check_clinical_year(value: datetime) -> datetime:
    if not EARLIEST_CLINICAL_YEAR <= value.year <= LATEST_CLINICAL_YEAR:
        raise ValueError(
            f"year must be between {EARLIEST_CLINICAL_YEAR} and {LATEST_CLINICAL_YEAR}"
        )
    return value


# Validated natively by pydantic-core (no Python call on the hot path): a strict
# date, else an ISO date-time.  pydantic also reads numeric text ("20240115") as a
# Unix time; the codec refuses anything but ISO text before the model sees it.
ClinicalDate = Annotated[
    date,
    Strict(),
    Field(ge=date(EARLIEST_CLINICAL_YEAR, 1, 1), le=date(LATEST_CLINICAL_YEAR, 12, 31)),
    WithJsonSchema({"format": "date", "type": "string"}),
]
ClinicalDateTime = Annotated[datetime, AfterValidator(_check_clinical_year)]
ClinicalTime = Annotated[ClinicalDate | ClinicalDateTime, Field(union_mode="left_to_right")]


# Also checked where wire text is decoded (events/codec.py): ISO text only, and the
# range of recorded_at against the moment the event was received.
RecordedTime = AwareDatetime
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
