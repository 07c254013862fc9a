"""Each patient's watermarks are the latest day and recording of their events, on both backends.

Kept in the append's transaction (ingest and the workers' ``append_rows_in`` share
it); filled from the events on a log that predates the table; only ever raised.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from mbcjourney.bootstrap import open_engine
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.processors.eventlog import occurred_by
from tests.support.builders import PatientBuilder, dumps
from tests.support.cohorts import simulated_cohort

RECEIVED = datetime(2026, 11, 30, tzinfo=UTC)
FROM_EVENTS = ("SELECT patient_id, MAX(occurred_on), MAX(recorded_at) FROM events "
               "GROUP BY patient_id ORDER BY patient_id")
KEPT = "SELECT patient_id, occurred_on, recorded_at FROM patient_watermarks ORDER BY patient_id"


def _both(engine: EmbeddedEngine) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    with engine.engine.connect() as conn:
        return ([tuple(r) for r in conn.execute(sa.text(FROM_EVENTS))],
                [tuple(r) for r in conn.execute(sa.text(KEPT))])


def test_watermarks_follow_the_log(db_url: str, tmp_path: Path) -> None:
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=20, seed=6)
    with open_engine(db_url, create=True) as engine:
        with cohort.open("rb") as stream:
            engine.ingest(((n, line.strip()) for n, line in enumerate(stream, 1)
                           if line.strip()), origin="cohort", received_at=RECEIVED)
        expected, kept = _both(engine)
        assert len(kept) >= 18
        assert kept == expected
        p = PatientBuilder(kept[0][0])
        later = p.raw("imaging.performed", "2026-11-20", {"modality": "CT",
                      "recist_response": "SD"}, recorded="2026-11-29T08:00:00Z")
        earlier = p.raw("imaging.performed", "2020-01-02", {"modality": "CT",
                        "recist_response": "SD"}, recorded="2021-01-01T00:00:00Z")
        engine.ingest(enumerate([dumps(later), dumps(earlier), dumps(later)], 1),
                      origin="late", received_at=RECEIVED)
        expected, kept = _both(engine)
        assert kept == expected
        # sealed rows keep a bound, never the clinical date: their recorded day + the slack
        assert kept[0][1] != "2026-11-20"
        assert kept[0][1] >= occurred_by("2026-11-29T08:00:00Z") > "2026-11-20"
        with engine.engine.begin() as conn:  # a log from before the table
            conn.execute(sa.text("DROP TABLE patient_watermarks"))
        engine.log.create()
        assert _both(engine)[1] == expected
