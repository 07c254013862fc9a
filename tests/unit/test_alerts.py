"""Alert lifecycle from history: one alert per window, resolved by the assessment or exit."""

from __future__ import annotations

from datetime import date

from mbcjourney.events import ClinicalEvent
from mbcjourney.projections.alerts import Transition, alert_id, alert_states, alert_timeline
from mbcjourney.projections.schedule import Assessment
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.builders import PatientBuilder


def _her2_patient(b: PatientBuilder) -> list[ClinicalEvent]:
    """Group 2 (12-week imaging), included 2024-01-10, liver only (no bone scans)."""
    return [b.included("2024-01-10", recorded="2024-01-10T10:00:00Z"),
            b.ihc("2024-01-05", her2="3+", recorded="2024-01-10T10:00:00Z"),
            b.line("2024-01-20", "L1", "Taxotere", "Herceptin", "Perjeta",
                   recorded="2024-01-20T10:00:00Z")]


def test_a_passing_window_raises_exactly_one_alert() -> None:
    """Imaging due 2024-01-10 + 12 weeks = 2024-04-03; window end + 14 days = 2024-04-17.

    Overdue from 2024-04-18; re-evaluating every later day never raises it again.
    """
    b = PatientBuilder()
    changes = alert_timeline(b.patient_id, _her2_patient(b), date(2024, 6, 1), DEFAULT_CLINICAL)
    assert [(c.assessment, c.due_date, c.window_end, c.transition, c.on) for c in changes] == [
        (Assessment.IMAGING, date(2024, 4, 3), date(2024, 4, 17), Transition.RAISED,
         date(2024, 4, 18))]
    assert changes[0].alert_id == alert_id(b.patient_id, "imaging", date(2024, 4, 3))


def test_nothing_is_raised_on_the_window_end_itself() -> None:
    b = PatientBuilder()
    assert alert_timeline(b.patient_id, _her2_patient(b), date(2024, 4, 17),
                          DEFAULT_CLINICAL) == []


def test_late_imaging_resolves_the_alert_the_day_it_is_known() -> None:
    """Imaging done 2024-05-02 but recorded 2024-05-06: resolved on 2024-05-06.

    The next window (2024-05-02 + 12 weeks = 2024-07-25, end 2024-08-08) is not yet past
    on 2024-08-01, so no new alert.
    """
    b = PatientBuilder()
    events = [*_her2_patient(b), b.imaging("2024-05-02", "PR", recorded="2024-05-06T09:00:00Z")]
    changes = alert_timeline(b.patient_id, events, date(2024, 8, 1), DEFAULT_CLINICAL)
    assert [(c.transition, c.on) for c in changes] == [
        (Transition.RAISED, date(2024, 4, 18)), (Transition.RESOLVED, date(2024, 5, 6))]
    [state] = alert_states(changes)
    assert (state.raised_on, state.resolved_on, state.is_open) == (
        date(2024, 4, 18), date(2024, 5, 6), False)


def test_death_resolves_every_open_alert_of_the_patient() -> None:
    """Bone metastases: imaging (end 2024-04-17) and bone scan (2024-01-10 + 24 weeks =
    2024-06-26, end 2024-07-10) both overdue by 2024-07-11; death known 2024-07-20."""
    b = PatientBuilder()
    events = [b.included("2024-01-10", sites=("bone",), recorded="2024-01-10T10:00:00Z"),
              b.ihc("2024-01-05", her2="3+", recorded="2024-01-10T10:00:00Z"),
              b.death("2024-07-19", recorded="2024-07-20T08:00:00Z")]
    changes = alert_timeline(b.patient_id, events, date(2024, 12, 31), DEFAULT_CLINICAL)
    raised = [c for c in changes if c.transition is Transition.RAISED]
    resolved = [c for c in changes if c.transition is Transition.RESOLVED]
    assert {(c.assessment, c.on) for c in raised} == {
        (Assessment.IMAGING, date(2024, 4, 18)), (Assessment.BONE_SCAN, date(2024, 7, 11))}
    assert {(c.assessment, c.on) for c in resolved} == {
        (Assessment.IMAGING, date(2024, 7, 20)), (Assessment.BONE_SCAN, date(2024, 7, 20))}
    assert all(not s.is_open for s in alert_states(changes))


def test_arrival_order_does_not_change_alerts() -> None:
    b = PatientBuilder()
    events = [*_her2_patient(b), b.imaging("2024-05-02", "PR", recorded="2024-05-06T09:00:00Z")]
    forward = alert_timeline(b.patient_id, events, date(2024, 12, 31), DEFAULT_CLINICAL)
    backward = alert_timeline(b.patient_id, events[::-1], date(2024, 12, 31), DEFAULT_CLINICAL)
    assert forward == backward
