"""Overdue-assessment alerts as the live system raises them, derived purely from history.

An alert is raised for one assessment window (patient, assessment, due date) the
first day "now" is past the window end with the assessment still missing, and
resolved the first day it no longer is: the assessment arrived (even late), the
patient left follow-up (death, loss, withdrawal), or a corrected fact moved the
window.  The alert id is derived from (patient, assessment, due date), so
re-evaluating never makes a second alert for the same window.

:func:`alert_timeline` replays one patient's history the way a live worker saw
it: at each day something could change -- a fact recorded, a window passing --
it evaluates the schedule with the facts recorded by then.  ``journey alerts
--as-of D`` is therefore exactly what the live system had raised by day D.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from mbcjourney.events.catalogue import (
    BiomarkerRecorded,
    ClinicalEvent,
    ClinicalExamRecorded,
    LabRecorded,
    QuestionnaireRecorded,
)
from mbcjourney.projections.history import View, build_history
from mbcjourney.projections.journey import schedule_only
from mbcjourney.projections.schedule import Assessment, DueAssessment
from mbcjourney.settings import ClinicalSettings

ALERT_NAMESPACE = uuid.UUID("5b0c7a52-3c1e-4d0e-9a7e-2f6d3b8e1a10")


class Transition(StrEnum):
    RAISED = "raised"
    RESOLVED = "resolved"


def alert_id(patient_id: str, assessment: Assessment | str, due_date: date) -> uuid.UUID:
    """The same window always has the same id: the idempotency key of alerts."""
    return uuid.uuid5(ALERT_NAMESPACE, f"{patient_id}/{assessment}/{due_date.isoformat()}")


@dataclass(frozen=True)
class AlertChange:
    """One transition of one alert, on the day it happened."""

    alert_id: uuid.UUID
    patient_id: str
    assessment: Assessment
    due_date: date
    window_end: date
    transition: Transition
    on: date


def _end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) - timedelta(
        microseconds=1)


def overdue_on(due: Iterable[DueAssessment], day: date) -> dict[uuid.UUID, DueAssessment]:
    """The windows overdue when "now" is ``day``, keyed by alert id."""
    return {alert_id(d.patient_id, d.assessment, d.due_date): d
            for d in due if d.days_overdue(day) > 0}


def due_as_of(patient_id: str, events: Iterable[ClinicalEvent], day: date,
              settings: ClinicalSettings) -> tuple[DueAssessment, ...]:
    """The schedule with now = ``day``: facts that occurred and were recorded by then."""
    history = build_history(patient_id, events, View(cutoff=day, known_at=_end_of(day)))
    return schedule_only(history, settings)


# Facts that can move a window; labs, exams, questionnaires and biomarkers cannot.
_SCHEDULE_INERT = (LabRecorded, ClinicalExamRecorded, QuestionnaireRecorded, BiomarkerRecorded)


def alert_timeline(patient_id: str, events: list[ClinicalEvent], until: date,
                   settings: ClinicalSettings) -> list[AlertChange]:
    """Every alert transition of one patient up to and including day ``until``."""
    if not events:
        return []
    relevant = [e for e in events if not isinstance(e, _SCHEDULE_INERT)]
    if not relevant:
        return []
    known_days = sorted({e.recorded_at.astimezone(UTC).date() for e in relevant}
                        | {e.occurred_on for e in relevant})
    day = known_days[0]
    changes: list[AlertChange] = []
    open_alerts: dict[uuid.UUID, DueAssessment] = {}
    while day <= until:
        due = due_as_of(patient_id, events, day, settings)
        now_overdue = overdue_on(due, day)
        for key, d in sorted(now_overdue.items(), key=lambda kv: kv[1]):
            if key not in open_alerts:
                changes.append(AlertChange(key, patient_id, d.assessment, d.due_date,
                                           d.window_end, Transition.RAISED, day))
        for key, d in sorted(open_alerts.items(), key=lambda kv: kv[1]):
            if key not in now_overdue:
                changes.append(AlertChange(key, patient_id, d.assessment, d.due_date,
                                           d.window_end, Transition.RESOLVED, day))
        open_alerts = now_overdue
        # Next day anything can change: a fact becomes known or occurs, or a window passes.
        candidates = [k for k in known_days if k > day]
        candidates += [d.window_end + timedelta(days=1) for d in due if d.window_end >= day]
        if not candidates:
            break
        day = min(candidates)
    return changes


@dataclass(frozen=True)
class AlertState:
    """Where one alert stands after its transitions."""

    alert_id: uuid.UUID
    patient_id: str
    assessment: Assessment
    due_date: date
    window_end: date
    raised_on: date
    resolved_on: date | None

    @property
    def is_open(self) -> bool:
        return self.resolved_on is None


def alert_states(changes: Iterable[AlertChange]) -> list[AlertState]:
    """Fold transitions (in day order) into one state per alert."""
    states: dict[uuid.UUID, AlertState] = {}
    for c in changes:
        if c.transition is Transition.RAISED:
            states[c.alert_id] = AlertState(c.alert_id, c.patient_id, c.assessment, c.due_date,
                                            c.window_end, c.on, None)
        elif c.alert_id in states:
            previous = states[c.alert_id]
            states[c.alert_id] = AlertState(previous.alert_id, previous.patient_id,
                                            previous.assessment, previous.due_date,
                                            previous.window_end, previous.raised_on, c.on)
    return sorted(states.values(), key=lambda a: (a.patient_id, a.assessment, a.due_date))
