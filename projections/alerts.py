"""Overdue-assessment alerts as the live system raises them, derived purely from history.

An alert is raised for one assessment window (patient, assessment, due date) the
first moment "now" is past the window end with the assessment still missing, and
resolved the first moment it no longer is: the assessment arrived (even late), the
patient left follow-up (death, loss, withdrawal), or a corrected fact moved the
window.  The alert id is derived from (patient, assessment, due date), so
re-evaluating never makes a second alert for the same window; a window that comes
back after being resolved (its assessment was retracted) reopens the same alert.

:func:`alert_timeline` replays one patient's history the way the live system sees
it.  The live workers evaluate a patient each time they project one of its facts
(with every fact received so far), and a timer evaluates every window when a day
begins (UTC).  So the timeline evaluates at each instant a fact was recorded, with
the facts recorded by then, and at the start of each day after a window end:
``journey alerts --as-of D`` is exactly what the live system had raised by the end
of day D, when each fact reached it at its ``recorded_at``.  Evaluating per instant,
not per day, matters: a window that passes at midnight and is satisfied by a report
recorded that afternoon was raised (and resolved) live, and is here too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from mbcjourney.events.catalogue import (
    BiomarkerRecorded,
    ClinicalEvent,
    ClinicalExamRecorded,
    LabRecorded,
    QuestionnaireRecorded,
)
from mbcjourney.projections.history import (
    Keyed,
    View,
    build_history,
    history_of_sorted,
    sort_events,
)
from mbcjourney.projections.journey import schedule_only
from mbcjourney.projections.schedule import Assessment, DueAssessment
from mbcjourney.projections.settings import ClinicalSettings

ALERT_NAMESPACE = uuid.UUID("5b0c7a52-3c1e-4d0e-9a7e-2f6d3b8e1a10")


class Transition(StrEnum):
    RAISED = "raised"
    RESOLVED = "resolved"


def alert_id(patient_id: str, assessment: Assessment | str, due_date: date) -> uuid.UUID:
    """The same window always has the same id: the idempotency key of alerts."""
    return uuid.uuid5(ALERT_NAMESPACE, f"{patient_id}/{assessment}/{due_date.isoformat()}")


@dataclass(frozen=True)
class AlertChange:
    """One transition of one alert, at the instant it happened (``on`` is its UTC day)."""

    alert_id: uuid.UUID
    patient_id: str
    assessment: Assessment
    due_date: date
    window_end: date
    transition: Transition
    on: date
    at: datetime


def day_start(day: date) -> datetime:
    """Midnight (UTC) opening ``day``: when the windows that ended the day before pass."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def utc_day(moment: datetime) -> date:
    """The UTC calendar day of an aware instant: alert days are UTC days."""
    return moment.astimezone(UTC).date()


def overdue_on(due: Iterable[DueAssessment], day: date) -> dict[uuid.UUID, DueAssessment]:
    """The windows overdue when "now" is ``day``, keyed by alert id."""
    return {alert_id(d.patient_id, d.assessment, d.due_date): d
            for d in due if d.days_overdue(day) > 0}


def due_known_at(patient_id: str, events: Iterable[ClinicalEvent], known_at: datetime,
                 settings: ClinicalSettings) -> tuple[DueAssessment, ...]:
    """The schedule a live worker had at ``known_at``: every fact recorded by then."""
    return schedule_only(build_history(patient_id, events, View(known_at=known_at)), settings)


# Facts that can move a window; labs, exams, questionnaires and biomarkers cannot.
_SCHEDULE_INERT = (LabRecorded, ClinicalExamRecorded, QuestionnaireRecorded, BiomarkerRecorded)


def alert_timeline(patient_id: str, events: list[ClinicalEvent], until: date,
                   settings: ClinicalSettings) -> list[AlertChange]:
    """Every alert transition of one patient up to the end of day ``until`` (UTC)."""
    relevant = [e for e in events if not isinstance(e, _SCHEDULE_INERT)]
    if not relevant:
        return []
    known = sorted({e.recorded_at.astimezone(UTC) for e in relevant})
    keyed: Keyed = sort_events(events)  # sorted once, then filtered at each moment
    last = day_start(until + timedelta(days=1))
    changes: list[AlertChange] = []
    open_alerts: dict[uuid.UUID, DueAssessment] = {}
    at, step = known[0], 0
    while at < last:
        day = utc_day(at)
        due = schedule_only(history_of_sorted(patient_id, keyed, View(known_at=at)), settings)
        now_overdue = overdue_on(due, day)
        for key, d in sorted(now_overdue.items(), key=lambda kv: kv[1]):
            if key not in open_alerts:
                changes.append(AlertChange(key, patient_id, d.assessment, d.due_date,
                                           d.window_end, Transition.RAISED, day, at))
        for key, d in sorted(open_alerts.items(), key=lambda kv: kv[1]):
            if key not in now_overdue:
                changes.append(AlertChange(key, patient_id, d.assessment, d.due_date,
                                           d.window_end, Transition.RESOLVED, day, at))
        open_alerts = now_overdue
        # Next moment anything can change: a fact becomes known, or a window passes.
        while step < len(known) and known[step] <= at:
            step += 1
        candidates = [day_start(d.window_end + timedelta(days=1)) for d in due
                      if d.window_end >= day]
        if step < len(known):
            candidates.append(known[step])
        if not candidates:
            break
        at = min(candidates)
    return changes


def any_open(patient_id: str, events: list[ClinicalEvent], until: date,
             settings: ClinicalSettings) -> bool:
    """Whether any alert of the patient is open at the end of day ``until``.

    The last state of :func:`alert_timeline`, computed once: after the timeline's
    last step nothing becomes known and no window passes, so what is overdue on
    ``until`` by the schedule known at its end is what is open.  One schedule
    instead of one per step: reading one patient skips the timeline when nothing
    is open.
    """
    if not any(not isinstance(e, _SCHEDULE_INERT) for e in events):
        return False
    known_at = day_start(until + timedelta(days=1)) - timedelta(microseconds=1)
    return bool(overdue_on(due_known_at(patient_id, events, known_at, settings), until))


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
    """Fold transitions (in time order) into one state per alert.

    An alert is raised once: a window that comes back after being resolved reopens
    it (``resolved_on`` cleared) but keeps the day people were first told.
    """
    states: dict[uuid.UUID, AlertState] = {}
    for c in changes:
        previous = states.get(c.alert_id)
        if c.transition is Transition.RAISED:
            raised_on = c.on if previous is None else previous.raised_on
            states[c.alert_id] = AlertState(c.alert_id, c.patient_id, c.assessment, c.due_date,
                                            c.window_end, raised_on, None)
        elif previous is not None:
            states[c.alert_id] = replace(previous, resolved_on=c.on)
    return sorted(states.values(), key=lambda a: (a.patient_id, a.assessment, a.due_date))
