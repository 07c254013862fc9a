"""Open alerts read the short way (one schedule) are the open alerts of the whole timeline.

``any_open`` stands for the last state of ``alert_timeline``: on a simulated cohort,
on days across its whole span, the alerts listed with ``open_only`` are exactly the
open ones of the full listing, and patients skipped by it have none open.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.projections.alerts import alert_states, alert_timeline, any_open
from mbcjourney.projections.settings import DEFAULT_CLINICAL
from tests.support.cohorts import embedded_log, simulated_cohort

DAYS = [date(2022, 6, 1), date(2023, 1, 15), date(2023, 11, 30), date(2024, 8, 1),
        date(2025, 5, 20), date(2026, 12, 1)]


def test_open_only_is_the_open_part_of_every_alert(tmp_path: Path) -> None:
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=60, seed=21)
    db = embedded_log(cohort, tmp_path / "study.db", received_at=datetime(2026, 12, 1, tzinfo=UTC))
    engine = EmbeddedEngine(f"sqlite:///{db}")
    try:
        seen_open = seen_skipped = 0
        for day in DAYS:
            every = engine.alerts(day)
            assert engine.alerts(day, open_only=True) == [r for r in every if r.status == "open"]
            for patient_id, events in engine.log.histories():
                states = alert_states(alert_timeline(patient_id, events, day, DEFAULT_CLINICAL))
                is_open = any(s.is_open for s in states)
                assert any_open(patient_id, events, day, DEFAULT_CLINICAL) == is_open, (
                    patient_id, day)
                seen_open += is_open
                seen_skipped += not is_open
        assert seen_open > 20
        assert seen_skipped > 20
    finally:
        engine.close()
