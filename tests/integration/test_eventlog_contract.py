"""The event log contract, run against every log the engine keeps events in.

Three logs hold the accepted events: the SQL event log (``SqlEventLog``) on SQLite
and on real PostgreSQL, and the live worker's in-memory patient histories
(``Histories``, made durable by its changelog).  Each is adapted here to one small
interface (:class:`ContractLog`) and one parametrised suite runs against all three:

* an event is appended once (its ``event_id``), and a patient's history is every
  accepted event in arrival order;
* the same ``event_id`` again is a **duplicate** when it is the same content or only
  ``recorded_at`` differs (a resend stamped at a new ingest time), a **conflict**
  otherwise; the first one kept wins, a batch's repeats are judged against it;
* appending again, in any order, changes nothing (idempotency);
* arrival order never matters: a history projects in clinical order
  (``occurred_at``, then ``recorded_at``, then ``event_id``).

What only the SQL log has (positions, birth years, dead letters) is tested on it alone.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from mbcjourney.errors import InvalidEvent
from mbcjourney.events import ClinicalEvent, decode_event, encode_event
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.eventlog import (
    AppendOutcome,
    SqlEventLog,
    event_row,
    patients_after,
)
from mbcjourney.processors.histories import Histories, Offer
from mbcjourney.processors.store import Checkpoint, ProjectionStore
from mbcjourney.projections.history import build_history
from tests.support.builders import RECEIVED, PatientBuilder, dumps

pytestmark = pytest.mark.integration

PARTITIONS = 3  # the worker's histories are held per source partition


class ContractLog(Protocol):
    """What the contract needs of a log."""

    def append(self, events: Sequence[ClinicalEvent]) -> AppendOutcome: ...

    def histories(self) -> dict[str, list[ClinicalEvent]]:
        """Each patient's accepted events, in arrival order."""
        ...

    def count(self) -> int: ...


class SqlLog:
    """The SQL event log (ingest, the embedded engine, replay from the log)."""

    def __init__(self, log: SqlEventLog) -> None:
        self.log = log

    def append(self, events: Sequence[ClinicalEvent]) -> AppendOutcome:
        return self.log.append(events)

    def histories(self) -> dict[str, list[ClinicalEvent]]:
        return dict(self.log.histories())

    def count(self) -> int:
        return self.log.count()


class MemoryLog:
    """The live worker's histories, offered one event at a time as the worker does."""

    def __init__(self) -> None:
        self.memory = Histories()

    def append(self, events: Sequence[ClinicalEvent]) -> AppendOutcome:
        outcome = AppendOutcome()
        for event in events:
            partition = zlib.crc32(event.patient_id.encode()) % PARTITIONS
            offered = self.memory.offer(partition, event, encode_event(event))
            if offered is Offer.NEW:
                outcome.accepted.append(event)
            elif offered is Offer.DUPLICATE:
                outcome.duplicates += 1
            else:
                outcome.conflicts.append(event)
        return outcome

    def histories(self) -> dict[str, list[ClinicalEvent]]:
        return {patient: list(self.memory.events(patient)) for patient in sorted(self.memory.logs)}

    def count(self) -> int:
        return self.memory.event_count()


@pytest.fixture
def sql_log(db_url: str) -> Iterator[SqlEventLog]:
    engine = make_engine(db_url)
    log = SqlEventLog(engine)
    log.create()
    yield log
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def contract_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContractLog]:
    if request.param == "memory":
        yield MemoryLog()
        return
    url = (f"sqlite:///{tmp_path / 'journey.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("postgres_db_url")))
    engine = make_engine(url)
    log = SqlEventLog(engine)
    log.create()
    yield SqlLog(log)
    engine.dispose()


def outcome_of(outcome: AppendOutcome) -> tuple[list[ClinicalEvent], int, list[ClinicalEvent]]:
    return outcome.accepted, outcome.duplicates, outcome.conflicts


# --- the contract, on every log ---------------------------------------------------------------


def test_append_then_each_history_in_arrival_order(contract_log: ContractLog) -> None:
    a, b = PatientBuilder("P-A"), PatientBuilder("P-B")
    events = [a.included("2024-01-01"), b.included("2024-02-01"), a.death("2024-06-01")]
    outcome = contract_log.append(events)
    assert outcome_of(outcome) == (events, 0, [])
    assert contract_log.histories() == {"P-A": [events[0], events[2]], "P-B": [events[1]]}
    assert contract_log.count() == 3


def test_same_event_twice_is_a_duplicate(contract_log: ContractLog) -> None:
    event = PatientBuilder().included("2024-01-01")
    contract_log.append([event])
    again = contract_log.append([event, event])
    assert (len(again.accepted), again.duplicates, again.conflicts) == (0, 2, [])
    assert contract_log.count() == 1


def test_resent_without_recorded_at_is_still_a_duplicate(contract_log: ContractLog) -> None:
    raw = PatientBuilder().raw("death.recorded", "2024-01-01", {"cause": "disease"})
    first = decode_event(dumps(raw), received_at=RECEIVED)
    contract_log.append([first])
    del raw["recorded_at"]
    resent = decode_event(dumps(raw), received_at=datetime(2031, 1, 1, tzinfo=UTC))
    assert contract_log.append([resent]).duplicates == 1
    assert contract_log.histories() == {first.patient_id: [first]}  # the first one stays


@pytest.mark.parametrize(("changed", "kept_as"), [
    ({"recorded_at": "2029-06-30T12:00:00Z"}, "duplicate"),
    ({"occurred_at": "2024-01-02"}, "conflict"),
    ({"source": {"system": "other-system", "reference": "ref-1"}}, "conflict"),
    ({"payload": {"cause": "other"}}, "conflict"),
])
def test_only_a_recorded_at_that_differs_is_the_same_fact(
        contract_log: ContractLog, changed: dict[str, Any], kept_as: str) -> None:
    raw = PatientBuilder().raw("death.recorded", "2024-01-01", {"cause": "disease"})
    first = decode_event(dumps(raw), received_at=RECEIVED)
    contract_log.append([first])
    repeat = decode_event(dumps({**raw, **changed}), received_at=RECEIVED)
    outcome = contract_log.append([repeat])
    assert outcome_of(outcome) == (([], 1, []) if kept_as == "duplicate" else ([], 0, [repeat]))
    assert contract_log.histories() == {first.patient_id: [first]}


def test_reused_event_id_with_other_content_is_a_conflict(contract_log: ContractLog) -> None:
    b = PatientBuilder()
    raw = b.raw("death.recorded", "2024-01-01", {"cause": "disease"})
    contract_log.append([decode_event(dumps(raw), received_at=RECEIVED)])
    raw["payload"]["cause"] = "other"
    changed = decode_event(dumps(raw), received_at=RECEIVED)
    outcome = contract_log.append([changed])
    assert outcome.conflicts == [changed]
    assert contract_log.count() == 1
    [stored] = contract_log.histories()[b.patient_id]
    assert stored.payload.cause == "disease"  # type: ignore[union-attr]
    if isinstance(contract_log, SqlLog):
        [stored_event] = list(contract_log.log.read())
        assert stored_event.event.payload.cause == "disease"  # type: ignore[union-attr]


def test_repeats_within_one_append_are_judged_against_what_is_kept(
        contract_log: ContractLog) -> None:
    """The stored version wins over a batch's first sending; a new id's first sending is kept."""
    b = PatientBuilder()
    stored_raw = b.raw("death.recorded", "2024-01-01", {"cause": "disease"})
    stored = decode_event(dumps(stored_raw), received_at=RECEIVED)
    contract_log.append([stored])
    changed = decode_event(dumps({**stored_raw, "payload": {"cause": "other"}}),
                           received_at=RECEIVED)
    new = b.included("2023-01-01")
    new_changed = decode_event(
        dumps({**new.model_dump(mode="json"), "source": {"system": "other-system"}}),
        received_at=RECEIVED)
    outcome = contract_log.append([changed, stored, new, new_changed, new])
    assert outcome.accepted == [new]
    assert outcome.duplicates == 2  # ``stored`` again, ``new`` again
    assert outcome.conflicts == [changed, new_changed]
    assert contract_log.count() == 2
    assert contract_log.histories() == {b.patient_id: [stored, new]}
    if isinstance(contract_log, SqlLog):
        assert [s.event for s in contract_log.log.read()] == [stored, new]


def test_appending_again_in_any_order_changes_nothing(contract_log: ContractLog) -> None:
    a, b = PatientBuilder("P-A"), PatientBuilder("P-B")
    events = [a.included("2024-01-01"), b.included("2024-01-01"), a.imaging("2024-03-01"),
              b.death("2024-06-01"), a.progression("2024-04-01")]
    contract_log.append(events)
    before = contract_log.histories()
    for again in (events, list(reversed(events)), events[2:] + events[:2]):
        assert outcome_of(contract_log.append(again)) == ([], len(events), [])
    assert contract_log.histories() == before
    assert contract_log.count() == len(events)


def _id(n: int) -> str:
    return str(uuid.UUID(int=n))


def test_arrival_order_is_kept_and_the_history_projects_in_clinical_order(
        contract_log: ContractLog) -> None:
    """Same type (same order of care) throughout, so only occurred, recorded and id decide."""
    p = PatientBuilder("P-A")
    last = p.imaging("2024-03-01", event_id=_id(1))
    recorded_later = p.imaging("2024-02-01", recorded="2029-02-01T00:00:00Z", event_id=_id(2))
    tie_b = p.imaging("2024-02-01", recorded="2029-01-15T00:00:00Z", event_id=_id(9))
    first = p.imaging("2024-01-01", event_id=_id(8))
    tie_a = p.imaging("2024-02-01", recorded="2029-01-15T00:00:00Z", event_id=_id(7))
    sent = [last, recorded_later, tie_b, first, tie_a]
    contract_log.append(sent)
    [(patient, history)] = contract_log.histories().items()
    assert history == sent  # as they arrived
    assert list(build_history(patient, history).events) == [
        first, tie_a, tie_b, recorded_later, last]
    assert sorted(sent, key=lambda e: (e.occurred_on, e.recorded_at, e.event_id)) == [
        first, tie_a, tie_b, recorded_later, last]


# --- the SQL log's own ------------------------------------------------------------------------


def test_append_then_read_in_log_order(sql_log: SqlEventLog) -> None:
    a, b = PatientBuilder("P-A"), PatientBuilder("P-B")
    events = [a.included("2024-01-01"), b.included("2024-02-01"), a.death("2024-06-01")]
    outcome = sql_log.append(events)
    assert len(outcome.accepted) == 3
    stored = list(sql_log.read())
    assert [s.event for s in stored] == events
    assert [s.position for s in stored] == sorted(s.position for s in stored)
    assert [s.event for s in sql_log.read(after=stored[0].position)] == events[1:]
    assert sql_log.last_position() == stored[-1].position


def test_patients_after_a_position_each_once_sorted(sql_log: SqlEventLog) -> None:
    """What catch-up re-projects: the patients with events past its checkpoint."""
    a, b, c = PatientBuilder("P-A"), PatientBuilder("P-B"), PatientBuilder("P-C")
    assert patients_after(sql_log.engine, 0) == ([], 0)  # an empty log
    sql_log.append([c.included("2024-01-01"), a.included("2024-01-01")])
    first = sql_log.last_position()
    sql_log.append([b.included("2024-02-01"), c.death("2024-06-01"), b.death("2024-07-01")])
    last = sql_log.last_position()
    assert patients_after(sql_log.engine, 0) == (["P-A", "P-B", "P-C"], last)
    assert patients_after(sql_log.engine, first) == (["P-B", "P-C"], last)
    assert patients_after(sql_log.engine, last) == ([], last)  # nothing new: no scan


def test_histories_group_events_per_patient(sql_log: SqlEventLog) -> None:
    a, b = PatientBuilder("P-A"), PatientBuilder("P-B")
    events = [b.included("2024-01-01"), a.included("2024-01-01"), b.death("2024-06-01")]
    sql_log.append(events)
    grouped = dict(sql_log.histories())
    assert grouped == {"P-A": [events[1]], "P-B": [events[0], events[2]]}
    assert dict(sql_log.histories(["P-B"])) == {"P-B": [events[0], events[2]]}
    assert sql_log.birth_years(["P-A", "P-B", "P-C"]) == {"P-A": 1960, "P-B": 1960}


def test_an_append_in_a_callers_transaction_commits_or_rolls_back_with_its_writes(
        sql_log: SqlEventLog) -> None:
    """The live workers' write: their checkpoint first, then the events (the lock, last)."""
    store = ProjectionStore(sql_log.engine)
    store.create()
    a = PatientBuilder("P-A")
    events = [a.included("2024-01-01"), a.death("2024-06-01")]
    rows = [event_row(e, encode_event(e)) for e in events]
    with sql_log.engine.connect() as conn:
        transaction = conn.begin()
        store.write_in(conn, [], [Checkpoint("worker:t", 0, 1)])
        assert sql_log.append_rows_in(conn, rows) == ([0, 1], 0, [])
        transaction.rollback()  # a crash before the commit
    assert sql_log.count() == 0
    assert store.checkpoint("worker:t") == {}

    with sql_log.engine.begin() as conn:
        store.write_in(conn, [], [Checkpoint("worker:t", 0, 1)])
        assert sql_log.append_rows_in(conn, rows) == ([0, 1], 0, [])
    changed = a.death("2024-07-01", event_id=str(events[1].event_id))
    with sql_log.engine.begin() as conn:  # redelivered: nothing new, the conflict refused
        assert sql_log.append_rows_in(conn, [*rows, event_row(changed, encode_event(changed))]
                                      ) == ([], 2, [2])
    assert [s.event for s in sql_log.read()] == events
    assert store.checkpoint("worker:t") == {0: 1}


def test_dead_letters_keep_original_bytes(sql_log: SqlEventLog) -> None:
    original = b'{"event_id": "x", "event_type": "ihc.recorded", "patient_id": "P-1", \xff'
    letter = DeadLetter.of(original, InvalidEvent.single("$", "not valid JSON"), "f.jsonl:3",
                           RECEIVED)
    sql_log.dead_letter([letter])
    [stored] = sql_log.dead_letters()
    assert stored.original == original
    assert (stored.reason, stored.origin) == ("$: not valid JSON", "f.jsonl:3")
