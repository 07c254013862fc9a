"""Worked examples of lines derived from drug administrations (Meng et al. 2019 rule set)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from mbcjourney.events import ClinicalEvent
from mbcjourney.projections.findings import FindingKind
from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings
from mbcjourney.projections.views import project
from tests.support.builders import PatientBuilder

START = date(2025, 1, 6)


def _on(day: int) -> str:
    return str(START + timedelta(days=day))


def given(p: PatientBuilder, day: int, drug: str, **payload: Any) -> ClinicalEvent:
    return p.event("drug.administered", _on(day), {"drug": drug, **payload})


def _cycles(p: PatientBuilder, drug: str, first: int, last: int, every: int = 21
            ) -> list[ClinicalEvent]:
    return [given(p, day, drug) for day in range(first, last + 1, every)]


def _lines(events: list[ClinicalEvent], s: ClinicalSettings = DEFAULT_CLINICAL
           ) -> list[tuple[int, str, str, str]]:
    journey = project(events[0].patient_id, events, s)
    return [(r.line_number, r.regimen, str(r.start_date), r.line_source)
            for r in journey.lines]


def test_a_drug_added_on_day_20_joins_the_regimen_on_day_35_starts_line_2() -> None:
    p = PatientBuilder()
    base = [p.included(_on(-10)), *_cycles(p, "letrozole", 0, 200, 28)]
    early = [*base, *_cycles(p, "palbociclib", 20, 200, 28)]
    late = [*base, *_cycles(p, "palbociclib", 35, 200, 28)]
    assert _lines(early) == [(1, "letrozole+palbociclib", _on(0), "derived")]
    # letrozole goes on within line 2's own window, so it joins line 2's regimen
    assert _lines(late) == [(1, "letrozole", _on(0), "derived"),
                            (2, "letrozole+palbociclib", _on(35), "derived")]


def test_the_window_is_a_setting() -> None:
    p = PatientBuilder()
    events = [p.included(_on(-10)), *_cycles(p, "letrozole", 0, 200, 28),
              *_cycles(p, "palbociclib", 35, 200, 28)]
    wider = ClinicalSettings(line_regimen_window_days=42)
    assert _lines(events, wider) == [(1, "letrozole+palbociclib", _on(0), "derived")]


def test_paclitaxel_to_nab_paclitaxel_is_a_swap_not_a_new_line() -> None:
    p = PatientBuilder()
    events = [p.included(_on(-10)), *_cycles(p, "Taxol", 0, 63, 7),
              *_cycles(p, "bevacizumab", 0, 300, 14), *_cycles(p, "Abraxane", 84, 300, 7)]
    journey = project(p.patient_id, events, DEFAULT_CLINICAL)
    assert [(r.line_number, r.regimen) for r in journey.lines] == [
        (1, "bevacizumab+paclitaxel")]
    assert journey.patient.current_regimen == "bevacizumab+nab-paclitaxel"


def test_a_new_drug_that_is_no_substitute_after_the_window_starts_a_line() -> None:
    p = PatientBuilder()
    events = [p.included(_on(-10)), *_cycles(p, "paclitaxel", 0, 63, 7),
              *_cycles(p, "eribulin", 84, 200, 21)]
    assert [r[:2] for r in _lines(events)] == [(1, "paclitaxel"), (2, "eribulin")]


def test_a_gap_over_180_days_starts_a_new_line_with_the_same_drugs() -> None:
    p = PatientBuilder()
    first = _cycles(p, "capecitabine", 0, 84, 21)
    events = [p.included(_on(-10)), *first, *_cycles(p, "capecitabine", 84 + 200, 400, 21)]
    journey = project(p.patient_id, events, DEFAULT_CLINICAL)
    assert [(r.line_number, r.regimen, str(r.start_date)) for r in journey.lines] == [
        (1, "capecitabine", _on(0)), (2, "capecitabine", _on(284))]
    assert journey.lines[0].end_reason == "next_line"
    assert str(journey.lines[0].end_date) == _on(284)
    # a 170-day pause is within the gap: one line
    shorter = [p.included(_on(-10)), *first, *_cycles(p, "capecitabine", 84 + 170, 400, 21)]
    assert len(_lines(shorter)) == 1
    # the variant's 120-day gap splits it again
    assert len(_lines(shorter, ClinicalSettings(line_gap_days=120))) == 2


def test_endocrine_maintenance_after_chemotherapy_stops_stays_in_the_line() -> None:
    p = PatientBuilder()
    events = [p.included(_on(-10)),
              *_cycles(p, "docetaxel", 0, 126), *_cycles(p, "trastuzumab", 0, 400),
              *_cycles(p, "pertuzumab", 0, 400), *_cycles(p, "letrozole", 180, 400, 28)]
    journey = project(p.patient_id, events, DEFAULT_CLINICAL)
    assert [(r.line_number, r.regimen) for r in journey.lines] == [
        (1, "docetaxel+pertuzumab+trastuzumab")]
    assert journey.patient.current_regimen == "letrozole+pertuzumab+trastuzumab"
    # letrozole added while docetaxel still runs is a new line, not maintenance (the
    # drugs going on within its window belong to it)
    early = [p.included(_on(-10)),
             *_cycles(p, "docetaxel", 0, 200), *_cycles(p, "trastuzumab", 0, 400),
             *_cycles(p, "letrozole", 180, 400, 28)]
    assert [r[:2] for r in _lines(early)] == [
        (1, "docetaxel+trastuzumab"), (2, "docetaxel+letrozole+trastuzumab")]


def test_declared_lines_win_and_disagreeing_administrations_are_findings() -> None:
    p = PatientBuilder()
    started = p.line(_on(0), "L1", "paclitaxel")
    events = [p.included(_on(-10)), started,
              *_cycles(p, "paclitaxel", 0, 63, 7), *_cycles(p, "eribulin", 84, 200, 21)]
    journey = project(p.patient_id, events, DEFAULT_CLINICAL)
    assert [(r.regimen, r.line_source) for r in journey.lines] == [("paclitaxel", "declared")]
    disagreements = [f for f in journey.findings
                     if f.finding is FindingKind.DERIVED_LINES_DISAGREE]
    assert [(f.detail, f.event_id) for f in disagreements] == [
        ("declared 1 lines, derived 2", str(started.event_id))]
    shifted = [p.included(_on(-10)), p.line(_on(0), "L1", "paclitaxel"),
               *_cycles(p, "docetaxel", 3, 63, 21)]
    [finding] = [f.detail for f in project(p.patient_id, shifted, DEFAULT_CLINICAL).findings
                 if f.finding is FindingKind.DERIVED_LINES_DISAGREE]
    assert finding == f"line 1: declared paclitaxel from {_on(0)}, derived docetaxel from {_on(3)}"
    agreeing = [p.included(_on(-10)), p.line(_on(0), "L1", "paclitaxel"),
                *_cycles(p, "paclitaxel", 0, 63, 7)]
    assert not [f for f in project(p.patient_id, agreeing, DEFAULT_CLINICAL).findings
                if f.finding is FindingKind.DERIVED_LINES_DISAGREE]


def test_arrival_order_does_not_change_derived_lines() -> None:
    p = PatientBuilder()
    events = [p.included(_on(-10)), *_cycles(p, "paclitaxel", 0, 63, 7),
              *_cycles(p, "eribulin", 84, 200, 21), p.death(_on(300))]
    forward = project(p.patient_id, events, DEFAULT_CLINICAL)
    backward = project(p.patient_id, list(reversed(events)), DEFAULT_CLINICAL)
    assert forward.lines == backward.lines
    assert forward.lines[-1].end_reason == "death"


def test_a_store_from_before_line_source_gains_the_column(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, inspect, text

    from mbcjourney.processors.store import ProjectionStore

    database = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with database.begin() as conn:  # the lines table as it was before derived lines
        conn.execute(text(
            "CREATE TABLE lines (patient_id VARCHAR(64), line_number INTEGER, regimen TEXT "
            "NOT NULL, start_date DATE NOT NULL, end_date DATE, end_reason VARCHAR(24), "
            "progression_date DATE, ttp_days INTEGER NOT NULL, ttp_event BOOLEAN NOT NULL, "
            "pfs_days INTEGER NOT NULL, pfs_event BOOLEAN NOT NULL, ttnt_days INTEGER NOT "
            "NULL, ttnt_event BOOLEAN NOT NULL, best_response VARCHAR(4), "
            "PRIMARY KEY (patient_id, line_number))"))
        conn.execute(text("INSERT INTO lines VALUES ('P-1', 1, 'paclitaxel', '2025-01-06', "
                          "NULL, NULL, NULL, 10, 0, 10, 0, 10, 0, NULL)"))
    store = ProjectionStore(database)
    store.create()
    assert "line_source" in {c["name"] for c in inspect(database).get_columns("lines")}
    assert [r.line_source for r in store.line_rows()] == ["declared"]
    store.create()  # and opening it again changes nothing
    database.dispose()
