"""Alert lifecycle events (topic ``mbc.alerts``): raised, resolved, acknowledged, snoozed.

Alerts are facts about the study's follow-up, not clinical facts, so they live in
their own small catalogue.  Every event names its alert by ``alert_id``, derived
from (patient, assessment, due date): receivers deduplicate on it.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mbcjourney.events.envelope import Identifier


class Assessment(StrEnum):
    """What can be overdue (the projections' schedule and the alerts share this vocabulary)."""

    BIOPSY = "biopsy"
    BONE_SCAN = "bone_scan"
    IMAGING = "imaging"


PersonName = Annotated[str, Field(min_length=1, max_length=100)]


class AlertEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: UUID
    patient_id: Identifier
    at: AwareDatetime  # when the system (or the person) did it


class AlertRaised(AlertEvent):
    """An assessment window passed without the assessment."""

    event_type: Literal["alert.raised"] = "alert.raised"
    centre: Identifier | None = None
    assessment: Assessment
    due_date: date
    window_end: date
    on: date  # the day "now" passed the window end


class AlertResolved(AlertEvent):
    """The assessment arrived (even late), the patient left follow-up, or the window moved."""

    event_type: Literal["alert.resolved"] = "alert.resolved"
    on: date


class AlertAcknowledged(AlertEvent):
    event_type: Literal["alert.acknowledged"] = "alert.acknowledged"
    by: PersonName


class AlertSnoozed(AlertEvent):
    event_type: Literal["alert.snoozed"] = "alert.snoozed"
    by: PersonName
    until: date


AnyAlertEvent = Annotated[
    AlertRaised | AlertResolved | AlertAcknowledged | AlertSnoozed,
    Field(discriminator="event_type"),
]
