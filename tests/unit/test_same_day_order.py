"""Same-day facts follow the order of care, whatever order the sources recorded them in."""

from __future__ import annotations

from mbcjourney.projections import build_history, project_journey
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.builders import PatientBuilder


def test_modification_recorded_before_its_line_start_on_the_same_day() -> None:
    """line.modified (recorded 10:43) and line.started (recorded 12:18), both 2022-05-11:
    one line, with zoledronic acid added, and no 'line modified not started' finding."""
    b = PatientBuilder()
    events = [b.included("2022-05-01"), b.ihc("2022-05-01"),
              b.modified("2022-05-11", "RX-1", added=("Zoledronic acid",),
                         recorded="2022-05-12T10:43:12Z"),
              b.line("2022-05-11", "RX-1", "Femara", "Palbociclib",
                     recorded="2022-05-12T12:18:09Z")]
    journey = project_journey(build_history(b.patient_id, events), DEFAULT_CLINICAL)
    assert journey.findings == ()
    assert journey.patient.current_regimen == "letrozole+palbociclib+zoledronic acid"
    assert journey.lines[0].regimen == "letrozole+palbociclib"
