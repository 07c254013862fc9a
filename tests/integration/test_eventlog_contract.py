"""Event log contract, run against SQLite and real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from mbcjourney.errors import InvalidEvent
from mbcjourney.events import decode_event
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import DeadLetter, SqlEventLog
from tests.support.builders import RECEIVED, PatientBuilder, dumps

pytestmark = pytest.mark.integration


@pytest.fixture
def event_log(db_url: str) -> Iterator[SqlEventLog]:
    engine = make_engine(db_url)
    log = SqlEventLog(engine)
    log.create()
    yield log
    engine.dispose()


def test_append_then_read_in_log_order(event_log: SqlEventLog) -> None:
    a, b = PatientBuilder("P-A"), PatientBuilder("P-B")
    events = [a.included("2024-01-01"), b.included("2024-02-01"), a.death("2024-06-01")]
    outcome = event_log.append(events)
    assert len(outcome.accepted) == 3
    stored = list(event_log.read())
    assert [s.event for s in stored] == events
    assert [s.position for s in stored] == sorted(s.position for s in stored)
    assert [s.event for s in event_log.read(after=stored[0].position)] == events[1:]
    assert event_log.last_position() == stored[-1].position


def test_same_event_twice_is_a_duplicate(event_log: SqlEventLog) -> None:
    event = PatientBuilder().included("2024-01-01")
    event_log.append([event])
    again = event_log.append([event, event])
    assert (len(again.accepted), again.duplicates, again.conflicts) == (0, 2, [])
    assert event_log.count() == 1


def test_resent_without_recorded_at_is_still_a_duplicate(event_log: SqlEventLog) -> None:
    raw = PatientBuilder().raw("death.recorded", "2024-01-01", {"cause": "disease"})
    event_log.append([decode_event(dumps(raw), received_at=RECEIVED)])
    del raw["recorded_at"]
    resent = decode_event(dumps(raw), received_at=datetime(2031, 1, 1, tzinfo=UTC))
    assert event_log.append([resent]).duplicates == 1


def test_reused_event_id_with_other_content_is_a_conflict(event_log: SqlEventLog) -> None:
    b = PatientBuilder()
    raw = b.raw("death.recorded", "2024-01-01", {"cause": "disease"})
    event_log.append([decode_event(dumps(raw), received_at=RECEIVED)])
    raw["payload"]["cause"] = "other"
    changed = decode_event(dumps(raw), received_at=RECEIVED)
    outcome = event_log.append([changed])
    assert outcome.conflicts == [changed]
    assert event_log.count() == 1
    [stored_event] = list(event_log.read())
    stored = stored_event.event
    assert stored.payload.cause == "disease"  # type: ignore[union-attr]


def test_repeats_within_one_append_are_judged_against_what_is_kept(
        event_log: SqlEventLog) -> None:
    """The stored version wins over a batch's first sending; a new id's first sending is kept."""
    b = PatientBuilder()
    stored_raw = b.raw("death.recorded", "2024-01-01", {"cause": "disease"})
    stored = decode_event(dumps(stored_raw), received_at=RECEIVED)
    event_log.append([stored])
    changed = decode_event(dumps({**stored_raw, "payload": {"cause": "other"}}),
                           received_at=RECEIVED)
    new = b.included("2023-01-01")
    new_changed = decode_event(
        dumps({**new.model_dump(mode="json"), "source": {"system": "other-system"}}),
        received_at=RECEIVED)
    outcome = event_log.append([changed, stored, new, new_changed, new])
    assert outcome.accepted == [new]
    assert outcome.duplicates == 2  # ``stored`` again, ``new`` again
    assert outcome.conflicts == [changed, new_changed]
    assert event_log.count() == 2
    assert [s.event for s in event_log.read()] == [stored, new]


def test_histories_group_events_per_patient(event_log: SqlEventLog) -> None:
    a, b = PatientBuilder("P-A"), PatientBuilder("P-B")
    events = [b.included("2024-01-01"), a.included("2024-01-01"), b.death("2024-06-01")]
    event_log.append(events)
    grouped = dict(event_log.histories())
    assert grouped == {"P-A": [events[1]], "P-B": [events[0], events[2]]}
    assert dict(event_log.histories(["P-B"])) == {"P-B": [events[0], events[2]]}
    assert event_log.birth_years(["P-A", "P-B", "P-C"]) == {"P-A": 1960, "P-B": 1960}


def test_dead_letters_keep_original_bytes(event_log: SqlEventLog) -> None:
    original = b'{"event_id": "x", "event_type": "ihc.recorded", "patient_id": "P-1", \xff'
    letter = DeadLetter.of(original, InvalidEvent.single("$", "not valid JSON"), "f.jsonl:3",
                           RECEIVED)
    event_log.dead_letter([letter])
    [stored] = event_log.dead_letters()
    assert stored.original == original
    assert (stored.reason, stored.origin) == ("$: not valid JSON", "f.jsonl:3")
