"""Projection store contract, run against SQLite and real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.exc import IntegrityError

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.store import Checkpoint, ProjectionStore
from mbcjourney.projections import build_history, project_journey
from mbcjourney.projections.journey import Journey
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.builders import PatientBuilder

pytestmark = pytest.mark.integration


@pytest.fixture
def store(db_url: str) -> Iterator[ProjectionStore]:
    engine = make_engine(db_url)
    store = ProjectionStore(engine)
    store.create()
    yield store
    engine.dispose()


def journey(patient_id: str, with_death: bool = False) -> Journey:
    b = PatientBuilder(patient_id)
    events = [b.included("2024-01-10", sites=("bone",)), b.ihc("2024-01-05"),
              b.line("2024-01-20", "L1", "Femara", "Ibrance"), b.imaging("2024-04-01", "PR"),
              b.line("2024-10-01", "L2", "Xeloda", "Unknownumab")]
    if with_death:
        events.append(b.death("2025-01-01"))
    return project_journey(build_history(patient_id, events), DEFAULT_CLINICAL)


def test_write_and_read_back_every_table(store: ProjectionStore) -> None:
    j = journey("P-1")
    store.write([j])
    assert store.patient_rows() == [j.patient]
    assert store.line_rows() == list(j.lines)
    assert store.due_rows() == list(j.due)
    assert store.finding_rows() == list(j.findings)
    assert j.findings  # the unknown drug


def test_writing_again_replaces_rows(store: ProjectionStore) -> None:
    store.write([journey("P-1"), journey("P-2")])
    updated = journey("P-1", with_death=True)
    store.write([updated])
    store.write([updated])
    rows = store.patient_rows()
    assert [r.patient_id for r in rows] == ["P-1", "P-2"]
    assert rows[0].status == "deceased"
    assert store.due_rows() == list(journey("P-2").due)  # nothing due after death


def test_checkpoints_move_with_the_rows(store: ProjectionStore) -> None:
    store.write([journey("P-1")], [Checkpoint("worker", 0, 10), Checkpoint("worker", 1, 4)])
    store.write([journey("P-2")], [Checkpoint("worker", 0, 12)])
    assert store.checkpoint("worker") == {0: 12, 1: 4}
    assert store.checkpoint("other") == {}


def test_prefixed_store_is_independent(store: ProjectionStore) -> None:
    other = ProjectionStore(store.engine, prefix="v2_")
    other.create()
    other.write([journey("P-9")])
    store.write([journey("P-1")])
    assert [r.patient_id for r in other.patient_rows()] == ["P-9"]
    assert [r.patient_id for r in store.patient_rows()] == ["P-1"]


def test_a_failed_bulk_write_is_sqlalchemys_error_and_stores_nothing(
        store: ProjectionStore) -> None:
    """PostgreSQL takes rows through COPY: its errors must still be SQLAlchemy's, atomically."""
    store.write([journey("P-1")], [Checkpoint("worker", 0, 10)])
    twice = journey("P-2")
    with pytest.raises(IntegrityError):  # the same patient's rows twice in one write
        store.write([twice, twice], [Checkpoint("worker", 0, 20)])
    assert [r.patient_id for r in store.patient_rows()] == ["P-1"]
    assert store.checkpoint("worker") == {0: 10}
