"""Issue 19 (smaller): dead letters are stored once, however often their input is ingested.

A kill mid-ingest and a rerun, or the same file ingested twice, used to store every
rejected line again (1,944 rows for 1,391 lines).  Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from mbcjourney.errors import InvalidEvent
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.ingest import ingest_lines
from tests.support.builders import PatientBuilder, dumps

pytestmark = pytest.mark.integration

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _lines() -> list[tuple[int, bytes]]:
    p = PatientBuilder("P-000001")
    good = dumps(p.raw("patient.included", "2025-01-06", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["liver"]}))
    return [(1, good), (2, b"not json"), (3, b'{"event_type": "nope"}'), (4, b"not json")]


def test_issue19_dead_letters_are_stored_once_per_origin_and_bytes(engine: sa.Engine) -> None:
    log = SqlEventLog(engine)
    log.create()
    for _ in range(3):  # a run, a rerun after a kill, a rerun of the whole file
        summary = ingest_lines(_lines(), log, origin="cohort.jsonl", received_at=RECEIVED)
        assert summary.rejected_total == 3
    letters = log.dead_letters()
    assert sorted(d.origin for d in letters) == [
        "cohort.jsonl:2", "cohort.jsonl:3", "cohort.jsonl:4"]
    # The same bytes from another origin are another dead letter.
    ingest_lines(_lines(), log, origin="other.jsonl", received_at=RECEIVED)
    assert len(log.dead_letters()) == 6


def test_a_database_from_before_the_key_opens_and_dedups_new_letters(engine: sa.Engine
                                                                     ) -> None:
    with engine.begin() as conn:  # the dead-letter table as earlier versions made it
        pg = conn.dialect.name == "postgresql"
        conn.exec_driver_sql(
            f"CREATE TABLE dead_letters (id {'BIGSERIAL' if pg else 'INTEGER'} PRIMARY KEY,"
            " received_at TIMESTAMP NOT NULL, origin VARCHAR(300) NOT NULL,"
            " event_id VARCHAR(64), event_type VARCHAR(64), patient_id VARCHAR(64),"
            f" reason TEXT NOT NULL, original {'BYTEA' if pg else 'BLOB'} NOT NULL)")
    old = DeadLetter(b"old", "x: y", "old.jsonl:1", RECEIVED)
    with engine.begin() as conn:
        for _ in range(2):  # earlier versions stored repeats
            conn.execute(sa.text(
                "INSERT INTO dead_letters (received_at, origin, reason, original) "
                "VALUES (:at, :origin, :reason, :original)"),
                {"at": RECEIVED, "origin": old.origin, "reason": old.reason,
                 "original": old.original})
    log = SqlEventLog(engine)
    log.create()
    log.create()  # idempotent
    letter = DeadLetter.of(b"not json", InvalidEvent.single("body", "not JSON"),
                           "new.jsonl:1", RECEIVED)
    log.dead_letter([letter, letter])
    log.dead_letter([letter])
    assert [d.origin for d in log.dead_letters()] == ["old.jsonl:1", "old.jsonl:1",
                                                      "new.jsonl:1"]
