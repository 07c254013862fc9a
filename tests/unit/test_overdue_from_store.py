"""``overdue`` read from the stored rows for patients whose history is all in the past is
what folding every history gives: on every day tried, for every patient or a subset.

Events of the simulated cohort are recorded on arrival: before that day every
patient is folded, from it on none is; a late fact recorded for a few patients
makes a mixed day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from mbcjourney.engine import EmbeddedEngine
from tests.support.builders import PatientBuilder, dumps
from tests.support.cohorts import embedded_log, simulated_cohort

ARRIVAL = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = [date(2023, 6, 1), date(2025, 1, 1), date(2026, 11, 1), date(2026, 11, 20),
        date(2026, 12, 1), date(2027, 6, 30)]


def test_stored_and_folded_overdue_are_the_same(tmp_path: Path) -> None:
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=80, seed=33)
    db = embedded_log(cohort, tmp_path / "study.db", received_at=ARRIVAL)
    engine = EmbeddedEngine(f"sqlite:///{db}")
    try:
        ids = engine.log.patient_ids()
        late = [PatientBuilder(pid).raw("imaging.performed", "2026-11-15", {
            "modality": "CT", "recist_response": "SD"}, recorded="2026-11-16T09:00:00Z")
            for pid in ids[:5]]
        engine.ingest(enumerate((dumps(e) for e in late), start=1), origin="late",
                      received_at=datetime(2026, 11, 16, 10, tzinfo=UTC))
        mixed = engine.log.settled(date(2026, 11, 10))
        assert mixed  # the late patients are folded that day, the others not
        assert len(mixed) < len(ids)
        some = ids[::3]
        nonempty = 0
        for day in [*DAYS, date(2026, 11, 10)]:
            assert engine.overdue(day) == engine.overdue_folded(day), day
            assert engine.overdue(day, patient_ids=some) == engine.overdue_folded(
                day, patient_ids=some), day
            nonempty += bool(engine.overdue(day))
        assert nonempty >= 4
    finally:
        engine.close()
