"""The JSON shapes of the API, as published in its OpenAPI document.

Row shapes are derived from the output contract's own row types (PatientRow,
LineRow, ...), so the API and the exports can never disagree on a column.
"""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import date
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from mbcjourney.engine import AlertRow
from mbcjourney.projections import LineRow, PatientRow
from mbcjourney.projections.findings import Finding
from mbcjourney.projections.schedule import DueAssessment


def _model_of(cls: type[Any], name: str, **extra: Any) -> type[BaseModel]:
    hints = get_type_hints(cls)
    definitions: dict[str, Any] = {f.name: (hints[f.name], ...) for f in fields(cls)}
    definitions.update(extra)
    return create_model(name, **definitions)


PatientOut = _model_of(PatientRow, "Patient", centre=(str | None, ...))
LineOut = _model_of(LineRow, "Line")
DueOut = _model_of(DueAssessment, "DueAssessment")
FindingOut = _model_of(Finding, "Finding")
AlertOut = _model_of(AlertRow, "Alert")


def iso_day(value: object) -> object:
    """Only ISO dates: pydantic alone reads ``0`` or ``"0"`` as a Unix time (1970-01-01)."""
    if isinstance(value, date) or (isinstance(value, str) and _DAY.fullmatch(value)):
        return value
    raise ValueError("must be a date, YYYY-MM-DD")


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class Problem(BaseModel):
    """Every error answer: a code, a sentence, and the field at fault when there is one."""

    error: str
    detail: str
    field: str | None = None


class ItemOut(BaseModel):
    item: int = Field(description="1-based position of the event in the body")
    outcome: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = None
    field: str | None = Field(None, description="rejected: the field at fault")
    reason: str | None = Field(None, description="rejected: why")


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemOut]


class PatientPage(BaseModel):
    patients: list[PatientOut]  # type: ignore[valid-type]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class PatientDetailOut(BaseModel):
    patient: PatientOut  # type: ignore[valid-type]
    lines: list[LineOut]  # type: ignore[valid-type]
    due_assessments: list[DueOut]  # type: ignore[valid-type]
    findings: list[FindingOut]  # type: ignore[valid-type]
    open_alerts: list[AlertOut]  # type: ignore[valid-type]


class HistoryOut(BaseModel):
    patient_id: str
    known_at: str | None
    events: list[dict[str, Any]]


class OverdueOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient_id: str
    assessment: str
    last_done: date | None
    due_date: date
    window_end: date
    days_overdue: int


class AlertsOut(BaseModel):
    alerts: list[AlertOut]  # type: ignore[valid-type]


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: Annotated[date, BeforeValidator(iso_day)] = Field(
        description="hide the alert from the open list until this day")


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500,
                        description="why (kept in the erasure record, never logged)")


class ErasureOut(BaseModel):
    patient_id: str
    erased_by: str
    newly_recorded: bool
    keys_destroyed: int
    events_sealed: int
    rows_deleted: int
    dead_letters_deleted: int


class AlertActionOut(BaseModel):
    alert_id: str
    action: Literal["acknowledged", "snoozed"]
    by: str
    until: date | None = None


class DeadLetterOut(BaseModel):
    reason: str
    origin: str
    received_at: str
    event_type: str | None
    event_id: str | None
    size: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = {}
