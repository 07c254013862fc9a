"""Issue 19 item 18: the bone-scan window starts when bone metastases are first documented."""

from __future__ import annotations

from datetime import date

from mbcjourney.engine import overdue_rows, overdue_view, project
from mbcjourney.events import ClinicalEvent
from mbcjourney.projections.schedule import Assessment
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.builders import PatientBuilder

PID = "P-000001"


class Patient(PatientBuilder):
    """Facts recorded at noon UTC on the day they occurred."""

    def __init__(self) -> None:
        super().__init__(PID)

    def event(self, event_type: str, occurred: str | date, payload: dict[str, object],
              **kw: object) -> ClinicalEvent:
        kw.setdefault("recorded", f"{str(occurred)[:10]}T12:00:00Z")
        return super().event(event_type, occurred, payload, **kw)


def _bone_overdue(events: list[ClinicalEvent], as_of: str) -> list[tuple[date, date, int]]:
    """(due date, window end, days overdue) of the bone scan listed by ``journey overdue``."""
    day = date.fromisoformat(as_of)
    rows = overdue_rows([project(PID, events, DEFAULT_CLINICAL, overdue_view(day))], day)
    return [(a.due_date, a.window_end, n) for a, n in rows if a.assessment is Assessment.BONE_SCAN]


def _bone_found_at_progression() -> list[ClinicalEvent]:
    """Included 2024-01-10 with liver metastases; a progression adds bone on 2024-07-10."""
    p = Patient()
    return [p.included("2024-01-10", sites=("liver",)), p.ihc("2024-01-10", her2="3+"),
            p.line("2024-01-20", "L1", "Taxotere", "Herceptin", "Perjeta"),
            p.progression("2024-07-10", new_sites=("bone",))]


def test_issue19_item18_bone_found_at_progression_is_not_overdue_ten_days_later() -> None:
    assert _bone_overdue(_bone_found_at_progression(), "2024-07-20") == []


def test_issue19_item18_bone_scan_window_counts_from_the_progression_that_found_bone() -> None:
    """2024-07-10 + 24 weeks (168 days) = 2024-12-25 due; + 14 days grace = 2025-01-08."""
    events = _bone_found_at_progression()
    assert _bone_overdue(events, "2025-01-08") == []
    assert _bone_overdue(events, "2025-01-09") == [(date(2024, 12, 25), date(2025, 1, 8), 1)]


def test_bone_at_inclusion_still_counts_from_the_inclusion_then_from_the_last_scan() -> None:
    """Included 2024-01-10 with bone: due 2024-06-26, window end 2024-07-10.  A bone scan
    on 2024-07-01 moves it to 2024-12-16 (+ 14 = 2024-12-30)."""
    p = Patient()
    events = [p.included("2024-01-10", sites=("bone",)), p.ihc("2024-01-10", her2="3+")]
    assert _bone_overdue(events, "2024-07-11") == [(date(2024, 6, 26), date(2024, 7, 10), 1)]
    events.append(p.imaging("2024-07-01", None, modality="bone_scan"))
    assert _bone_overdue(events, "2024-12-30") == []
    assert _bone_overdue(events, "2024-12-31") == [(date(2024, 12, 16), date(2024, 12, 30), 1)]
