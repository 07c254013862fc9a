"""Live alerting against a real SQL store (SQLite here), with an injected clock.

The worker writes a patient (:meth:`LiveAlerts.write`) when one of its facts
arrives; the leader's timer ticks (:meth:`LiveAlerts.tick`).  The clock only moves
when the test moves it.  The same scenarios as ``test_alerts.py`` (the pure rule),
now through the table and the topic; then restarts and two evaluators; then a
small simulated cohort fed in time through the worker's own processing, compared
with ``journey alerts --as-of`` on the embedded engine.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mbcjourney.engine import EmbeddedEngine, project
from mbcjourney.events import ClinicalEvent
from mbcjourney.processors.alerting import OPEN, RESOLVED, LiveAlerts
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.projections.alerts import Transition, alert_id, alert_states, alert_timeline
from mbcjourney.settings import DEFAULT_CLINICAL
from mbcjourney.simulate import SimulationSettings, iter_cohort
from tests.support.alerting import (
    FakeClock,
    RecordingEmitter,
    as_records,
    embedded_summary,
    live_summary,
    replay_live,
    validated_bodies,
)
from tests.support.builders import PatientBuilder
from tests.support.fakes import worker_rig


@pytest.fixture
def store(tmp_path: Path) -> ProjectionStore:
    projection_store = ProjectionStore(make_engine(f"sqlite:///{tmp_path / 'rows.db'}"))
    projection_store.create()
    return projection_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 1, 1, tzinfo=UTC))


def evaluator(store: ProjectionStore, clock: FakeClock, emitter: RecordingEmitter
              ) -> LiveAlerts:
    alerts = LiveAlerts(store, clock=clock, emitter=emitter)
    alerts.create()
    return alerts


def arrive(alerts: LiveAlerts, clock: FakeClock, events: list[ClinicalEvent]) -> None:
    """The newest fact reaches the worker at its recorded_at: re-project, write."""
    clock.set(max(e.recorded_at for e in events))
    alerts.write([project(events[0].patient_id, events, DEFAULT_CLINICAL)])


def tick_days(alerts: LiveAlerts, clock: FakeClock, first: str, last: str) -> None:
    day = date.fromisoformat(first)
    while day <= date.fromisoformat(last):
        clock.day(day)
        alerts.tick()
        day += timedelta(days=1)


def her2_patient(b: PatientBuilder) -> list[ClinicalEvent]:
    """Group 2 (12-week imaging) from 2024-01-10: imaging due 2024-04-03, window end 04-17."""
    return [b.included("2024-01-10", recorded="2024-01-10T10:00:00Z"),
            b.ihc("2024-01-05", her2="3+", recorded="2024-01-10T10:00:00Z"),
            b.line("2024-01-20", "L1", "Taxotere", "Herceptin", "Perjeta",
                   recorded="2024-01-20T10:00:00Z")]


IMAGING_DUE = date(2024, 4, 3)


def test_a_window_passing_raises_exactly_one_alert(store: ProjectionStore,
                                                   clock: FakeClock) -> None:
    emitter = RecordingEmitter()
    alerts = evaluator(store, clock, emitter)
    b = PatientBuilder()
    arrive(alerts, clock, her2_patient(b))
    tick_days(alerts, clock, "2024-04-10", "2024-05-31")  # a tick every day: raised once

    [record] = alerts.records()
    key = str(alert_id(b.patient_id, "imaging", IMAGING_DUE))
    assert (record.alert_id, record.state, record.raised_on, record.centre) == (
        key, OPEN, date(2024, 4, 18), "C01")
    assert record.raised_at == datetime(2024, 4, 18, tzinfo=UTC)  # the day's first tick
    assert emitter.kinds() == {key: ["alert.raised"]}
    assert not record.pending
    message = emitter.messages[0]
    assert (message.on, message.window_end) == (  # type: ignore[union-attr]
        date(2024, 4, 18), date(2024, 4, 17))


def test_the_late_imaging_resolves_the_alert(store: ProjectionStore, clock: FakeClock) -> None:
    emitter = RecordingEmitter()
    alerts = evaluator(store, clock, emitter)
    b = PatientBuilder()
    events = her2_patient(b)
    arrive(alerts, clock, events)
    tick_days(alerts, clock, "2024-04-17", "2024-05-05")
    events.append(b.imaging("2024-05-02", "PR", recorded="2024-05-06T09:00:00Z"))
    arrive(alerts, clock, events)
    tick_days(alerts, clock, "2024-05-07", "2024-08-01")  # next window ends 2024-08-08

    [record] = alerts.records()
    assert (record.state, record.raised_on, record.resolved_on) == (
        RESOLVED, date(2024, 4, 18), date(2024, 5, 6))
    assert record.resolved_at == datetime(2024, 5, 6, 9, tzinfo=UTC)
    assert emitter.kinds() == {record.alert_id: ["alert.raised", "alert.resolved"]}


def test_death_resolves_every_open_alert_of_the_patient(store: ProjectionStore,
                                                        clock: FakeClock) -> None:
    emitter = RecordingEmitter()
    alerts = evaluator(store, clock, emitter)
    b = PatientBuilder()
    events = [b.included("2024-01-10", sites=("bone",), recorded="2024-01-10T10:00:00Z"),
              b.ihc("2024-01-05", her2="3+", recorded="2024-01-10T10:00:00Z")]
    arrive(alerts, clock, events)
    tick_days(alerts, clock, "2024-04-17", "2024-07-19")
    assert {(r.assessment, r.state) for r in alerts.records()} == {
        ("imaging", OPEN), ("bone_scan", OPEN)}

    events.append(b.death("2024-07-19", recorded="2024-07-20T08:00:00Z"))
    arrive(alerts, clock, events)
    tick_days(alerts, clock, "2024-07-21", "2024-12-31")
    assert {(r.assessment, r.state, r.resolved_on) for r in alerts.records()} == {
        ("imaging", RESOLVED, date(2024, 7, 20)), ("bone_scan", RESOLVED, date(2024, 7, 20))}
    assert sorted(emitter.kinds().values()) == [["alert.raised", "alert.resolved"]] * 2


def test_a_report_recorded_the_day_the_window_passes_raises_then_resolves_that_day(
        store: ProjectionStore, clock: FakeClock) -> None:
    """Live, the midnight tick raises it and the afternoon's report resolves it: the
    embedded replay, evaluated per instant, says the same (per day it would say nothing)."""
    b = PatientBuilder()
    events = [*her2_patient(b), b.imaging("2024-04-15", "SD", recorded="2024-04-18T14:00:00Z")]
    changes = alert_timeline(b.patient_id, events, date(2024, 5, 1), DEFAULT_CLINICAL)
    assert [(c.transition, c.at) for c in changes] == [
        (Transition.RAISED, datetime(2024, 4, 18, tzinfo=UTC)),
        (Transition.RESOLVED, datetime(2024, 4, 18, 14, tzinfo=UTC))]

    emitter = RecordingEmitter()
    alerts = evaluator(store, clock, emitter)
    arrive(alerts, clock, events[:-1])
    tick_days(alerts, clock, "2024-04-17", "2024-04-18")
    arrive(alerts, clock, events)
    [record] = alerts.records()
    assert (record.raised_at, record.resolved_at) == (changes[0].at, changes[1].at)
    assert [state.resolved_on for state in alert_states(changes)] == [record.resolved_on]


def test_a_retracted_imaging_reopens_the_same_alert(store: ProjectionStore,
                                                    clock: FakeClock) -> None:
    emitter = RecordingEmitter()
    alerts = evaluator(store, clock, emitter)
    b = PatientBuilder()
    events = her2_patient(b)
    imaging = b.imaging("2024-05-02", "PR", recorded="2024-05-06T09:00:00Z")
    arrive(alerts, clock, events)
    tick_days(alerts, clock, "2024-04-18", "2024-04-18")
    arrive(alerts, clock, [*events, imaging])
    arrive(alerts, clock, [*events, imaging,
                           b.retract("2024-05-02", imaging, recorded="2024-05-09T11:00:00Z")])

    [record] = alerts.records()
    assert (record.state, record.raised_on, record.resolved_on) == (OPEN, date(2024, 4, 18), None)
    assert emitter.kinds() == {record.alert_id: ["alert.raised", "alert.resolved",
                                                 "alert.raised"]}


def test_a_restart_mid_stream_raises_no_duplicate(store: ProjectionStore,
                                                  clock: FakeClock) -> None:
    """Commit, then the broker fails before publishing; the worker restarts; events redeliver."""
    down = RecordingEmitter(failures=1)
    first = evaluator(store, clock, down)
    b = PatientBuilder()
    events = her2_patient(b)
    clock.day("2024-05-01", hour=8)  # the patient reaches the worker after the window end
    first.write([project(b.patient_id, events, DEFAULT_CLINICAL)])
    [recorded] = first.records()
    assert (recorded.state, recorded.pending, down.messages) == (OPEN, True, [])

    up = RecordingEmitter()
    second = evaluator(store, clock, up)  # restarted: new process, same database
    clock.day("2024-05-01", hour=9)
    second.write([project(b.patient_id, events, DEFAULT_CLINICAL)])  # redelivered batch
    second.tick()
    tick_days(second, clock, "2024-05-02", "2024-05-10")

    [record] = second.records()
    assert (record.alert_id, record.raised_on, record.pending) == (
        recorded.alert_id, date(2024, 5, 1), False)
    assert record.raised_at == datetime(2024, 5, 1, 8, tzinfo=UTC)  # the first raise
    assert up.kinds() == {record.alert_id: ["alert.raised"]}


def test_two_evaluators_raise_and_publish_each_alert_once(store: ProjectionStore,
                                                          clock: FakeClock) -> None:
    a_out, b_out = RecordingEmitter(), RecordingEmitter()
    a, b = evaluator(store, clock, a_out), evaluator(store, clock, b_out)
    histories = [her2_patient(PatientBuilder(f"P-00000{n}")) for n in range(1, 4)]
    for events in histories:
        arrive(a, clock, events)
    for day in ("2024-04-17", "2024-04-18", "2024-04-19"):
        clock.day(day)
        b.tick()
        a.tick()
        a.write([project("P-000001", histories[0], DEFAULT_CLINICAL)])  # a redelivery

    records = a.records()
    assert len(records) == 3
    assert {r.raised_on for r in records} == {date(2024, 4, 18)}
    published = RecordingEmitter()
    published.messages = a_out.messages + b_out.messages
    assert published.kinds() == {r.alert_id: ["alert.raised"] for r in records}


def test_leaving_follow_up_and_erasure_resolve_open_alerts(store: ProjectionStore,
                                                           clock: FakeClock) -> None:
    alerts = evaluator(store, clock, RecordingEmitter())
    lost, erased = PatientBuilder("P-000001"), PatientBuilder("P-000002")
    lost_events, erased_events = her2_patient(lost), her2_patient(erased)
    arrive(alerts, clock, lost_events)
    arrive(alerts, clock, erased_events)
    tick_days(alerts, clock, "2024-04-18", "2024-04-18")
    arrive(alerts, clock, [*lost_events, lost.lost("2024-04-20",
                                                   recorded="2024-04-21T10:00:00Z")])
    arrive(alerts, clock, [*erased_events, erased.withdrawn(
        "2024-04-20", scope="erase", recorded="2024-04-22T10:00:00Z")])
    assert [(r.patient_id, r.state, r.resolved_on) for r in alerts.records()] == [
        ("P-000001", RESOLVED, date(2024, 4, 21)), ("P-000002", RESOLVED, date(2024, 4, 22))]


# --- the worker's processing, in time, against journey alerts --as-of --------------------------


RECEIVED = datetime(2026, 7, 1, tzinfo=UTC)
COHORT = SimulationSettings(patients=12, seed=41, start=date(2023, 1, 1), accrual_days=120,
                            data_cutoff=date(2024, 12, 31))


def test_live_alerts_in_time_are_the_embedded_alerts_as_of_each_day(
        store: ProjectionStore, clock: FakeClock, tmp_path: Path) -> None:
    bodies = validated_bodies(iter_cohort(COHORT), RECEIVED)
    until = date(2024, 12, 31)
    checkpoints = (date(2023, 9, 30), date(2024, 3, 31), until)
    emitter = RecordingEmitter()
    alerts = evaluator(store, clock, emitter)
    seen = {}

    def snapshot(day: date) -> None:
        if day in checkpoints:
            seen[day] = live_summary(alerts.records())

    with ThreadPoolExecutor(max_workers=1) as executor:
        processor = worker_rig(store, executor, consumer="worker:events",
                               write=alerts.write).processor
        asyncio.run(replay_live(as_records(bodies, 3), processor, alerts, clock, executor,
                                until, at_end_of=snapshot))

    engine = EmbeddedEngine(f"sqlite:///{tmp_path / 'embedded.db'}")
    try:
        summary = engine.ingest(enumerate(bodies, start=1), origin="cohort",
                                received_at=RECEIVED)
        assert summary.rejected_total == 0
        for day in checkpoints:
            assert seen[day] == embedded_summary(engine.alerts(day)), day
    finally:
        engine.close()
    final = seen[until]
    assert len(final) >= 10
    assert {state for *_, state in final} == {OPEN, RESOLVED}
    assert store.patient_rows()  # the worker's rows were written too
    assert set(emitter.kinds()) == {row[0] for row in final}
