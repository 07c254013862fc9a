"""Worked examples of the clinical rules (DESIGN sections 5 and 8), one boundary per test.

Each test states its input as dated facts and derives the expected value by hand
in its docstring; the assertions hold literal values, never a re-computation.
The examples live in 2025 (not a leap year): Jan 31, Feb 28, Mar 31, Apr 30,
May 31, Jun 30, Jul 31, Aug 31 days.  Intervals: 8 weeks = 56 days, 12 weeks =
84 days, 24 weeks = 168 days; grace 14 days; biopsy 42 days, no grace.

Unless a test says otherwise, every fact is recorded at noon UTC on the day it
occurred (so ``overdue_view(as_of)`` and ``known_at`` see it from that day on).

Where the implementation disagrees with the specification a test is marked
``xfail(strict=True)`` and reported to the lead, never fixed here.  None is at
present: the one found (a progression on line k+1's start day also counted for
line k+1) was fixed in dd8fb11.  Tests whose docstring starts "Interpretation"
pin a reading of a point the specification leaves open.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mbcjourney.engine import overdue_rows, overdue_view, project
from mbcjourney.events import ClinicalEvent
from mbcjourney.projections import Journey, LineRow, View, build_history, project_journey
from mbcjourney.projections.findings import Finding, FindingKind
from mbcjourney.projections.schedule import Assessment, DueAssessment
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.builders import PatientBuilder

PID = "P-000001"
INCLUDED = "2025-01-06"
L1 = "2025-01-13"

GROUP1: dict[str, Any] = {"er": 90, "pr": 50, "her2": "0"}  # HR+ HER2-
GROUP1_LOW: dict[str, Any] = {"er": 90, "pr": 50, "her2": "1+"}  # HR+ HER2-low
GROUP2: dict[str, Any] = {"er": 0, "pr": 0, "her2": "3+"}  # HER2+
GROUP3: dict[str, Any] = {"er": 0, "pr": 0, "her2": "0"}  # triple negative
UNKNOWN: dict[str, Any] = {"er": 90, "pr": 50, "her2": "2+", "ish": "not_done"}  # HER2 pending


class Patient(PatientBuilder):
    """A builder whose facts are recorded at noon UTC on the day they occurred, unless told."""

    def __init__(self) -> None:
        super().__init__(PID)

    def event(self, event_type: str, occurred: str | date, payload: dict[str, Any],
              **kw: Any) -> ClinicalEvent:
        if kw.get("recorded") is None:
            kw["recorded"] = f"{str(occurred)[:10]}T12:00:00Z"
        return super().event(event_type, occurred, payload, **kw)


def d(text: str) -> date:
    return date.fromisoformat(text)


def journey(events: list[ClinicalEvent], *, cutoff: str | None = None,
            known_at: datetime | None = None) -> Journey:
    view = View(cutoff=d(cutoff) if cutoff else None, known_at=known_at)
    return project_journey(build_history(PID, events, view), DEFAULT_CLINICAL)


def line(j: Journey, number: int) -> LineRow:
    (row,) = [r for r in j.lines if r.line_number == number]
    return row


def due(j: Journey, assessment: Assessment) -> DueAssessment | None:
    found = [a for a in j.due if a.assessment is assessment]
    assert len(found) <= 1
    return found[0] if found else None


def overdue(events: list[ClinicalEvent], as_of: str) -> list[tuple[DueAssessment, int]]:
    """What ``journey overdue --as-of AS_OF`` lists for this patient."""
    day = d(as_of)
    return overdue_rows([project(PID, events, DEFAULT_CLINICAL, overdue_view(day))], day)


def findings(j: Journey, kind: FindingKind) -> list[Finding]:
    return [f for f in j.findings if f.finding is kind]


def start(p: Patient, ihc: dict[str, Any], sites: tuple[str, ...] = ("liver",)
          ) -> list[ClinicalEvent]:
    """Inclusion on 2025-01-06 with the inclusion IHC the same day."""
    return [p.included(INCLUDED, sites=sites), p.ihc(INCLUDED, **ihc)]


# --- progression: which line it belongs to --------------------------------------------


def _tie_history() -> list[ClinicalEvent]:
    p = Patient()
    return [*start(p, GROUP1), p.line(L1, "L1", "letrozole", "palbociclib"),
            p.progression("2025-04-14"), p.ended("2025-04-14", "L1", "progression"),
            p.line("2025-04-14", "L2", "capecitabine")]


def test_progression_on_next_line_start_day_goes_to_the_earlier_line() -> None:
    """Progression 2025-04-14 = line 2 start 2025-04-14: the tie goes to line 1.

    Line 1 starts 2025-01-13.  Jan 13 -> Feb 13 = 31, -> Mar 13 = 28, -> Apr 13 = 31,
    -> Apr 14 = 1: 91 days.  TTP = PFS = 91 (event).  TTNT = next line start
    2025-04-14: 91 (event).  line.ended 2025-04-14 ties with the next start; the
    explicit end wins: end_date 2025-04-14, end_reason "progression".
    """
    row = line(journey(_tie_history()), 1)
    assert row.progression_date == d("2025-04-14")
    assert (row.ttp_days, row.ttp_event) == (91, True)
    assert (row.pfs_days, row.pfs_event) == (91, True)
    assert (row.ttnt_days, row.ttnt_event) == (91, True)
    assert (row.end_date, row.end_reason) == (d("2025-04-14"), "progression")


def test_progression_on_next_line_start_day_is_not_the_next_lines() -> None:
    """The same tie-day progression must not also count for line 2.

    (Found failing against 49b5497: line 2 had progression 2025-04-14, TTP 0 days
    with an event; fixed in dd8fb11.)

    Line 2 starts 2025-04-14; its only candidate progression (2025-04-14) went to
    line 1.  No tumour assessment within line 2 -> TTP censored at the line start:
    2025-04-14 - 2025-04-14 = 0 days, no event; PFS the same (no death).  TTNT:
    no next line, no death -> censored at the last fact date 2025-04-14: 0 days.
    """
    row = line(journey(_tie_history()), 2)
    assert row.progression_date is None
    assert (row.ttp_days, row.ttp_event) == (0, False)
    assert (row.pfs_days, row.pfs_event) == (0, False)
    assert (row.ttnt_days, row.ttnt_event) == (0, False)


def test_recist_pd_on_next_line_start_day_is_a_progression_of_the_earlier_line() -> None:
    """CT with RECIST PD on 2025-04-14 = line 2's start (line 1 from 2025-01-13).

    As a progression it takes the tie rule: line 1's, 91 days (Jan 13 -> Apr 14),
    event; line 2 has none.  As a tumour assessment it is "within" line 2
    (start_2 <= date), so line 2's best response is PD and line 1 has no best
    response (no other imaging).
    """
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.imaging("2025-04-14", "PD"),
              p.line("2025-04-14", "L2", "capecitabine")]
    j = journey(events)
    first, second = line(j, 1), line(j, 2)
    assert (first.progression_date, first.ttp_days, first.ttp_event) == (d("2025-04-14"), 91, True)
    assert (second.progression_date, second.ttp_days, second.ttp_event) == (None, 0, False)
    assert (first.best_response, second.best_response) == (None, "PD")


def test_progression_before_any_imaging() -> None:
    """Line 1 2025-01-13, clinical progression 2025-02-24, first CT (SD) 2025-03-03.

    TTP event at the progression: Jan 13 -> Feb 13 = 31, -> Feb 24 = 11: 42 days.
    PFS the same.  The later SD scan does not censor anything, but it is the best
    response within the line: SD.
    """
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.progression("2025-02-24"), p.imaging("2025-03-03", "SD")]
    row = line(journey(events), 1)
    assert row.progression_date == d("2025-02-24")
    assert (row.ttp_days, row.ttp_event) == (42, True)
    assert (row.pfs_days, row.pfs_event) == (42, True)
    assert row.best_response == "SD"


def test_first_progression_counts_and_recist_pd_is_a_progression() -> None:
    """CT with RECIST PD 2025-03-10, progression.documented 2025-04-07, both on line 1.

    The first one counts: 2025-03-10.  Jan 13 -> Mar 13 = 31 + 28 = 59, minus 3:
    56 days, event.
    """
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-03-10", "PD"), p.progression("2025-04-07")]
    row = line(journey(events), 1)
    assert row.progression_date == d("2025-03-10")
    assert (row.ttp_days, row.ttp_event) == (56, True)


def test_progression_before_the_first_line_belongs_to_no_line() -> None:
    """Progression 2025-01-08 is before line 1 starts (2025-01-13): not line 1's.

    Line 1 TTP is censored at its last tumour assessment, CT 2025-03-10:
    Jan 13 -> Mar 10 = 56 days, no event.
    """
    p = Patient()
    events = [*start(p, GROUP3), p.progression("2025-01-08"), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-03-10", "SD")]
    row = line(journey(events), 1)
    assert row.progression_date is None
    assert (row.ttp_days, row.ttp_event) == (56, False)


def test_retracted_progression_is_as_if_never_sent() -> None:
    """Progression 2025-03-17 retracted (recorded 2025-03-20); CTs SD 2025-03-10, 2025-05-05.

    Without the progression, TTP is censored at the last tumour assessment,
    2025-05-05: Jan 13 -> May 13 = 31 + 28 + 31 + 30 = 120, minus 8: 112 days, no
    event.  No progression -> no biopsy due.
    """
    p = Patient()
    wrong = p.progression("2025-03-17")
    events = [*start(p, GROUP1), p.line(L1, "L1", "letrozole", "palbociclib"),
              p.imaging("2025-03-10", "SD"), wrong, p.retract("2025-03-20", wrong),
              p.imaging("2025-05-05", "SD")]
    j = journey(events)
    row = line(j, 1)
    assert row.progression_date is None
    assert (row.ttp_days, row.ttp_event) == (112, False)
    assert (row.pfs_days, row.pfs_event) == (112, False)
    assert due(j, Assessment.BIOPSY) is None


def test_retracted_progression_still_counts_as_known_before_the_retraction() -> None:
    """Same history, known at 2025-03-19T00:00Z: the retraction (recorded 2025-03-20) is not
    yet known, nor the 2025-05-05 CT.

    TTP event at 2025-03-17: Jan 13 -> Mar 13 = 59, + 4 = 63 days.  Biopsy due
    2025-03-17 + 42: Mar 17 -> Mar 31 = 14, + 28 = Apr 28.
    """
    p = Patient()
    wrong = p.progression("2025-03-17")
    events = [*start(p, GROUP1), p.line(L1, "L1", "letrozole", "palbociclib"),
              p.imaging("2025-03-10", "SD"), wrong, p.retract("2025-03-20", wrong),
              p.imaging("2025-05-05", "SD")]
    j = journey(events, known_at=datetime(2025, 3, 19, tzinfo=UTC))
    row = line(j, 1)
    assert row.progression_date == d("2025-03-17")
    assert (row.ttp_days, row.ttp_event) == (63, True)
    biopsy = due(j, Assessment.BIOPSY)
    assert biopsy is not None
    assert biopsy.due_date == d("2025-04-28")


def test_recist_pd_on_a_bone_scan_is_a_progression_but_not_a_response() -> None:
    """CT SD 2025-02-10, bone scan with RECIST PD 2025-03-10, on line 1 (2025-01-13).

    "A RECIST PD on any imaging is a progression": progression 2025-03-10, 56 days
    (Jan 13 -> Mar 13 = 59, minus 3).  Bone scans are not tumour assessments, so the
    best response is the CT's SD, not PD.
    """
    p = Patient()
    events = [*start(p, GROUP3, sites=("bone",)), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-02-10", "SD"), p.imaging("2025-03-10", "PD", modality="bone_scan")]
    row = line(journey(events), 1)
    assert row.progression_date == d("2025-03-10")
    assert (row.ttp_days, row.ttp_event) == (56, True)
    assert row.best_response == "SD"


# --- outcomes ------------------------------------------------------------------------


def test_death_without_progression_is_a_pfs_event_and_censors_ttp() -> None:
    """Line 1 2025-01-13, CT SD 2025-03-10, death 2025-04-01, no progression.

    TTP censored at the last tumour assessment 2025-03-10: 56 days, no event.
    PFS event at death: Jan 13 -> Apr 13 = 90, minus 12 = 78 days.  TTNT event at
    death: 78 days.  The line ends at death: end 2025-04-01, reason "death".
    """
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-03-10", "SD"), p.death("2025-04-01")]
    j = journey(events)
    row = line(j, 1)
    assert row.progression_date is None
    assert (row.ttp_days, row.ttp_event) == (56, False)
    assert (row.pfs_days, row.pfs_event) == (78, True)
    assert (row.ttnt_days, row.ttnt_event) == (78, True)
    assert (row.end_date, row.end_reason) == (d("2025-04-01"), "death")
    assert j.patient.status == "deceased"


def test_no_imaging_during_a_line_censors_at_its_start() -> None:
    """Baseline CT 2025-01-08 (before line 1), line 1 2025-01-13, line 2 2025-03-03,
    CT SD 2025-03-03 (the next line's start day: within line 2, not line 1).

    Line 1 has no tumour assessment with start <= date < 2025-03-03: TTP and PFS
    censored at the start, 0 days.  TTNT event at line 2's start: Jan 13 -> Feb 13
    = 31, -> Mar 3 = 18: 49 days.  Best response of line 1 empty, line 2 "SD".
    """
    p = Patient()
    events = [*start(p, GROUP3), p.imaging("2025-01-08", "CR"), p.line(L1, "L1", "paclitaxel"),
              p.line("2025-03-03", "L2", "capecitabine"), p.imaging("2025-03-03", "SD")]
    j = journey(events)
    first = line(j, 1)
    assert (first.ttp_days, first.ttp_event) == (0, False)
    assert (first.pfs_days, first.pfs_event) == (0, False)
    assert (first.ttnt_days, first.ttnt_event) == (49, True)
    assert first.best_response is None
    assert line(j, 2).best_response == "SD"


def test_ttp_is_censored_at_the_last_tumour_assessment_not_a_later_bone_scan() -> None:
    """CT SD 2025-03-10 then a bone scan 2025-04-07 on line 1 (2025-01-13).

    Censoring uses tumour assessments only: 2025-03-10, 56 days, no event (not the
    bone scan's Jan 13 -> Apr 7 = 84 days).
    """
    p = Patient()
    events = [*start(p, GROUP3, sites=("bone",)), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-03-10", "SD"), p.imaging("2025-04-07", None, modality="bone_scan")]
    row = line(journey(events), 1)
    assert (row.ttp_days, row.ttp_event) == (56, False)


def test_ttnt_is_censored_at_the_last_fact_date_retractions_excluded() -> None:
    """Line 1 2025-01-13 ongoing; CT 2025-03-10; biopsy 2025-04-07 (the latest fact);
    a retraction dated 2025-05-05 of a CT entered in error on 2025-02-10.

    No next line, no death: TTNT censored at the last fact date.  Retractions are
    excluded from it (and the retracted CT is gone), so it is 2025-04-07:
    Jan 13 -> Feb 13 = 31, -> Mar 13 = 28, -> Apr 7 = 25: 84 days, no event.
    """
    p = Patient()
    wrong = p.imaging("2025-02-10", "PR")
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), wrong,
              p.imaging("2025-03-10", "SD"), p.biopsy("2025-04-07", reason="other"),
              p.retract("2025-05-05", wrong)]
    row = line(journey(events), 1)
    assert (row.ttnt_days, row.ttnt_event) == (84, False)
    assert row.best_response == "SD"


def _two_lines_then_death() -> list[ClinicalEvent]:
    p = Patient()
    return [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.imaging("2025-03-10", "SD"),
            p.line("2025-04-14", "L2", "capecitabine"), p.death("2025-06-02")]


def test_ttnt_event_at_next_line_start_before_death() -> None:
    """Line 1 2025-01-13, line 2 2025-04-14, death 2025-06-02.

    Line 1: next start (2025-04-14) comes before death: Jan 13 -> Apr 14 = 91
    days, event.  Line 2: death is first: Apr 14 -> Apr 30 = 16, + 31 (May) + 2 =
    49 days, event.
    """
    j = journey(_two_lines_then_death())
    assert (line(j, 1).ttnt_days, line(j, 1).ttnt_event) == (91, True)
    assert (line(j, 2).ttnt_days, line(j, 2).ttnt_event) == (49, True)


def test_death_after_the_next_line_start_is_not_an_earlier_lines_pfs_event() -> None:
    """Same history.  PFS counts death only "before the next line's start".

    Line 1: death 2025-06-02 is after line 2's start: PFS = TTP, censored at CT
    2025-03-10: 56 days, no event.  Line 2: no progression, death within it:
    PFS event at 49 days; TTP censored at the line start (no CT within): 0 days.
    """
    j = journey(_two_lines_then_death())
    assert (line(j, 1).pfs_days, line(j, 1).pfs_event) == (56, False)
    assert (line(j, 2).pfs_days, line(j, 2).pfs_event) == (49, True)
    assert (line(j, 2).ttp_days, line(j, 2).ttp_event) == (0, False)


def test_day_counts_are_calendar_date_differences() -> None:
    """Line start 2025-01-13T23:30, progression 2025-03-10T00:15 (date-times).

    Calendar dates: Jan 13 -> Mar 10 = 56 days, although only 55 days and 45
    minutes elapsed.
    """
    p = Patient()
    events = [*start(p, GROUP3), p.line("2025-01-13T23:30:00", "L1", "paclitaxel"),
              p.progression("2025-03-10T00:15:00")]
    row = line(journey(events), 1)
    assert row.start_date == d("2025-01-13")
    assert (row.ttp_days, row.ttp_event) == (56, True)


# --- line ends --------------------------------------------------------------------------


def test_line_end_reason_comes_from_line_ended() -> None:
    """line.ended 2025-03-03 reason toxicity, no next line: end 2025-03-03 "toxicity";
    the patient is between lines with no current line."""
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.ended("2025-03-03", "L1", "toxicity")]
    j = journey(events)
    assert (line(j, 1).end_date, line(j, 1).end_reason) == (d("2025-03-03"), "toxicity")
    assert (j.patient.status, j.patient.current_line, j.patient.current_regimen) == (
        "between_lines", None, None)


def test_line_without_line_ended_ends_at_next_line_start() -> None:
    """Line 1 2025-01-13, line 2 2025-04-14, no line.ended: line 1 ends 2025-04-14
    "next_line"; line 2 is ongoing (empty end date and reason)."""
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.line("2025-04-14", "L2", "capecitabine")]
    j = journey(events)
    assert (line(j, 1).end_date, line(j, 1).end_reason) == (d("2025-04-14"), "next_line")
    assert (line(j, 2).end_date, line(j, 2).end_reason) == (None, None)
    assert (j.patient.current_line, j.patient.current_regimen) == (2, "capecitabine")


def test_line_ended_after_the_next_start_ends_at_the_next_start() -> None:
    """line.ended 2025-04-20 arrives for line 1, but line 2 started 2025-04-14.

    "A line ends at line.ended, at the start of the next line, or at death": the
    first of these is 2025-04-14, so end 2025-04-14, reason "next_line".
    """
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.line("2025-04-14", "L2", "capecitabine"), p.ended("2025-04-20", "L1", "completed")]
    row = line(journey(events), 1)
    assert (row.end_date, row.end_reason) == (d("2025-04-14"), "next_line")


# --- best response ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("responses", "best"),
    [
        (("PR", "CR", "SD"), "CR"),
        (("SD", "PR"), "PR"),
        (("NE", "SD"), "SD"),
        (("NE", "PD"), "PD"),
        (("NE",), "NE"),
        ((None,), None),
        ((), None),
    ],
    ids=["CR>PR>SD", "PR>SD", "SD>NE", "PD>NE", "NE-only", "no-recist", "no-imaging"],
)
def test_best_response_ranking(responses: tuple[str | None, ...], best: str | None) -> None:
    """CT scans on 2025-02-03, 2025-03-03, 2025-03-31 (in this order) on line 1.

    Ranking CR > PR > SD > PD > NE (unconfirmed); empty when no imaging within the
    line carries a RECIST response.
    """
    p = Patient()
    days = ("2025-02-03", "2025-03-03", "2025-03-31")
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              *(p.imaging(day, r) for day, r in zip(days, responses, strict=False))]
    assert line(journey(events), 1).best_response == best


def test_bone_scans_are_excluded_from_best_response() -> None:
    """Bone scan with a (nonsensical) CR 2025-02-03 and CT SD 2025-03-03 on line 1:
    only tumour assessments count, best response SD."""
    p = Patient()
    events = [*start(p, GROUP3, sites=("bone",)), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-02-03", "CR", modality="bone_scan"), p.imaging("2025-03-03", "SD")]
    assert line(journey(events), 1).best_response == "SD"


def test_best_response_only_counts_imaging_within_the_line() -> None:
    """PR 2025-01-08 (before line 1, 2025-01-13), SD 2025-02-10 (line 1), CR 2025-04-14
    (= line 2 start: within line 2 since start_2 <= date).  Line 1: SD; line 2: CR."""
    p = Patient()
    events = [*start(p, GROUP3), p.imaging("2025-01-08", "PR"), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-02-10", "SD"), p.line("2025-04-14", "L2", "capecitabine"),
              p.imaging("2025-04-14", "CR")]
    j = journey(events)
    assert (line(j, 1).best_response, line(j, 2).best_response) == ("SD", "CR")


# --- regimen and line modifications ------------------------------------------------


def test_brand_names_become_sorted_generic_names() -> None:
    """Drugs sent as "Taxol", "Herceptin", "Perjeta": generic names paclitaxel,
    trastuzumab, pertuzumab; sorted ("pa" < "pe" < "tr") and joined by "+"."""
    p = Patient()
    events = [*start(p, GROUP2), p.line(L1, "L1", "Taxol", "Herceptin", "Perjeta")]
    j = journey(events)
    assert line(j, 1).regimen == "paclitaxel+pertuzumab+trastuzumab"
    assert j.patient.current_regimen == "paclitaxel+pertuzumab+trastuzumab"
    assert findings(j, FindingKind.UNKNOWN_DRUG) == []
    assert j.patient.first_line_concordant == "true"


def _maintenance_history() -> list[ClinicalEvent]:
    p = Patient()
    return [*start(p, GROUP2), p.line(L1, "L1", "Taxotere", "trastuzumab", "pertuzumab"),
            p.modified("2025-06-02", "L1", stopped=("docetaxel",))]


def test_line_modified_stays_one_line() -> None:
    """Line 1 2025-01-13 docetaxel (sent as Taxotere) + trastuzumab + pertuzumab; on
    2025-06-02 the taxane is stopped, anti-HER2 maintenance continues.

    Still one line (line.modified never starts a line), ongoing.  The lines output
    shows drugs at start: "docetaxel+pertuzumab+trastuzumab"; the patient row shows
    drugs now: "pertuzumab+trastuzumab".
    """
    j = journey(_maintenance_history())
    assert [r.line_number for r in j.lines] == [1]
    assert line(j, 1).regimen == "docetaxel+pertuzumab+trastuzumab"
    assert (line(j, 1).end_date, line(j, 1).end_reason) == (None, None)
    assert (j.patient.current_line, j.patient.current_regimen, j.patient.status) == (
        1, "pertuzumab+trastuzumab", "on_treatment")


def test_current_regimen_before_the_modification() -> None:
    """Cut-off 2025-06-01, the day before the taxane stops: current regimen is still
    "docetaxel+pertuzumab+trastuzumab"."""
    j = journey(_maintenance_history(), cutoff="2025-06-01")
    assert j.patient.current_regimen == "docetaxel+pertuzumab+trastuzumab"


# --- inclusion IHC, phenotype group, receptor conversion --------------------------


def _late_ihc_history() -> list[ClinicalEvent]:
    p = Patient()
    return [p.ihc("2024-12-02", **GROUP3), p.included(INCLUDED),
            p.line(L1, "L1", "letrozole", "palbociclib"),
            p.ihc("2025-01-10", er=80, pr=20, her2="1+", recorded="2025-02-14T09:00:00Z")]


def test_late_ihc_before_it_is_known() -> None:
    """Breast IHC 2024-12-02 is triple negative; the metastatic IHC dated 2025-01-10
    (HR+, HER2 1+) is only recorded 2025-02-14T09:00Z.  Known at 2025-02-01:

    The inclusion IHC is the last dated on or before line 1's start (2025-01-13)
    among those known: the 2024-12-02 one -> group 3, HR negative, HER2 negative,
    not HER2-low.  Letrozole + palbociclib is not paclitaxel +/- bevacizumab:
    discordant.  Imaging (group 3: 8 weeks) from the inclusion date, no imaging:
    2025-01-06 + 56 = Jan 31 is +25, Feb 28 is +53, Mar 3 is +56 -> 2025-03-03.
    """
    j = journey(_late_ihc_history(), known_at=datetime(2025, 2, 1, tzinfo=UTC))
    pr = j.patient
    assert (pr.group, pr.hr_status, pr.her2_status, pr.her2_low) == (
        "3", "negative", "negative", False)
    assert pr.first_line_concordant == "false"
    imaging = due(j, Assessment.IMAGING)
    assert imaging is not None
    assert imaging.due_date == d("2025-03-03")


def test_late_ihc_after_it_is_known_changes_the_group() -> None:
    """Same history, known at 2025-02-14T09:00Z (the recording instant: inclusive).

    The 2025-01-10 IHC is now the last on or before 2025-01-13 -> group 1, HR
    positive, HER2 negative (1+), HER2-low.  No IHC dated after it: no conversion.
    Letrozole + palbociclib is endocrine + CDK4/6 without visceral crisis:
    concordant.  Imaging interval group 1 on endocrine therapy = 12 weeks:
    2025-01-06 + 84 -> Jan 31 +25, Feb 28 +53, Mar 31 +84 -> 2025-03-31.
    """
    j = journey(_late_ihc_history(), known_at=datetime(2025, 2, 14, 9, tzinfo=UTC))
    pr = j.patient
    assert (pr.group, pr.hr_status, pr.her2_status, pr.her2_low) == (
        "1", "positive", "negative", True)
    assert pr.receptor_conversion is False
    assert pr.first_line_concordant == "true"
    imaging = due(j, Assessment.IMAGING)
    assert imaging is not None
    assert imaging.due_date == d("2025-03-31")


def test_inclusion_ihc_is_the_first_after_when_none_before_the_first_line() -> None:
    """Line 1 2025-01-13; IHCs dated 2025-01-20 (HER2 3+) and 2025-03-03 (triple negative).

    None dated on or before the first line's start -> the first one after,
    2025-01-20: group 2.  The 2025-03-03 IHC is dated after it with a different
    HER2 status: receptor conversion.
    """
    p = Patient()
    events = [p.included(INCLUDED), p.line(L1, "L1", "paclitaxel"),
              p.ihc("2025-01-20", **GROUP2), p.ihc("2025-03-03", **GROUP3)]
    pr = journey(events).patient
    assert (pr.group, pr.her2_status, pr.receptor_conversion) == ("2", "positive", True)


def test_inclusion_ihc_dated_on_the_first_line_start_counts_as_before() -> None:
    """IHCs 2025-01-06 (triple negative) and 2025-01-13 (HR+), line 1 2025-01-13.

    "On or before" the start includes 2025-01-13, and it is the last such: group 1.
    The 2025-01-06 IHC is dated before it, so no conversion.
    """
    p = Patient()
    events = [p.included(INCLUDED), p.ihc(INCLUDED, **GROUP3), p.ihc(L1, **GROUP1),
              p.line(L1, "L1", "letrozole", "palbociclib")]
    pr = journey(events).patient
    assert (pr.group, pr.receptor_conversion) == ("1", False)


def test_inclusion_ihc_without_any_line_is_the_last_so_far() -> None:
    """No line yet; IHCs 2025-01-06 (HER2 3+) and 2025-02-03 (HR+ HER2 0): the last so
    far, 2025-02-03, gives group 1, status not_started, concordance unknown."""
    p = Patient()
    events = [p.included(INCLUDED), p.ihc(INCLUDED, **GROUP2), p.ihc("2025-02-03", **GROUP1)]
    pr = journey(events).patient
    assert (pr.group, pr.status, pr.first_line_concordant) == ("1", "not_started", "unknown")


def test_no_ihc_at_all_gives_unknown_group_and_the_shortest_interval() -> None:
    """Included 2025-01-06, line 1 letrozole + palbociclib, no ihc.recorded: group,
    HR and HER2 "unknown", HER2-low empty, a no_inclusion_ihc finding, concordance
    unknown; imaging at the shortest interval, 8 weeks from the inclusion date:
    2025-03-03, window end 2025-03-17."""
    p = Patient()
    j = journey([p.included(INCLUDED), p.line(L1, "L1", "letrozole", "palbociclib")])
    pr = j.patient
    assert (pr.group, pr.hr_status, pr.her2_status, pr.her2_low, pr.first_line_concordant) == (
        "unknown", "unknown", "unknown", None, "unknown")
    assert len(findings(j, FindingKind.NO_INCLUSION_IHC)) == 1
    assert due(j, Assessment.IMAGING) == DueAssessment(
        PID, Assessment.IMAGING, None, d("2025-03-03"), d("2025-03-17"))


@pytest.mark.parametrize(
    ("later", "converted"),
    [
        ({"er": 0, "pr": 0, "her2": "0"}, True),  # HR positive -> negative
        ({"er": 90, "pr": 50, "her2": "3+"}, True),  # HER2 negative -> positive
        ({"er": 5, "pr": 0, "her2": "1+"}, False),  # ER-low is still HR+; 0 -> 1+ both negative
    ],
    ids=["hr-changes", "her2-changes", "same-statuses"],
)
def test_receptor_conversion(later: dict[str, Any], converted: bool) -> None:
    """Inclusion IHC 2025-01-06: ER 90 %, PR 50 %, HER2 0 (HR+, HER2-).  Biopsy IHC
    2025-06-02 (after the inclusion IHC):

    * ER 0, PR 0: HR negative != positive -> conversion;
    * HER2 3+: HER2 positive != negative -> conversion;
    * ER 5 % (>= 1 %: positive, ER-low), HER2 1+ (negative, HER2-low): same HR and
      HER2 statuses -> no conversion (HER2-low is not a status).
    The inclusion group stays 1 for analysis in every case.
    """
    p = Patient()
    events = [*start(p, GROUP1), p.line(L1, "L1", "letrozole", "palbociclib"),
              p.ihc("2025-06-02", **later)]
    pr = journey(events).patient
    assert (pr.receptor_conversion, pr.group) == (converted, "1")


def test_receptor_conversion_ignores_ihc_dated_before_the_inclusion_ihc() -> None:
    """An old HER2 3+ IHC dated 2024-06-03 precedes the inclusion IHC (2025-01-06,
    HER2 0): it is not "dated after it", so no conversion."""
    p = Patient()
    events = [p.ihc("2024-06-03", **GROUP2), *start(p, GROUP1),
              p.line(L1, "L1", "letrozole", "palbociclib")]
    pr = journey(events).patient
    assert (pr.group, pr.receptor_conversion) == ("1", False)


def test_pending_her2_later_resolved_is_not_a_conversion() -> None:
    """Interpretation (spec ambiguous): inclusion IHC 2025-01-06 HER2 2+ without ISH
    (pending, group unknown, finding her2_pending); IHC 2025-06-02 ER 90 %, PR 50 %
    (HR unchanged), HER2 3+.

    "Pending" is the absence of a result, not a status one converts from, so no
    conversion; the inclusion group stays unknown.
    """
    p = Patient()
    events = [*start(p, UNKNOWN), p.line(L1, "L1", "letrozole", "palbociclib"),
              p.ihc("2025-06-02", er=90, pr=50, her2="3+")]
    j = journey(events)
    assert (j.patient.group, j.patient.her2_status, j.patient.receptor_conversion) == (
        "unknown", "pending", False)
    assert len(findings(j, FindingKind.HER2_PENDING)) == 1


# --- first-line concordance -----------------------------------------------------------


@pytest.mark.parametrize(
    ("ihc", "crisis", "drugs", "expected"),
    [
        (GROUP1, None, ("letrozole", "palbociclib"), "true"),
        (GROUP1, None, ("letrozole",), "false"),
        (GROUP1, None, ("paclitaxel",), "false"),
        (GROUP1, False, ("anastrozole", "ribociclib"), "true"),
        (GROUP1, False, ("capecitabine",), "false"),
        (GROUP1, True, ("paclitaxel",), "true"),
        (GROUP1, True, ("epirubicin", "cyclophosphamide"), "true"),
        (GROUP1, True, ("letrozole", "palbociclib"), "false"),
        (GROUP1, True, ("capecitabine",), "false"),
        (GROUP2, None, ("docetaxel", "trastuzumab", "pertuzumab"), "true"),
        (GROUP2, None, ("Taxol", "Herceptin", "Perjeta"), "true"),
        (GROUP2, None, ("paclitaxel", "trastuzumab"), "false"),
        (GROUP2, None, ("trastuzumab", "pertuzumab"), "false"),
        (GROUP3, None, ("paclitaxel",), "true"),
        (GROUP3, None, ("paclitaxel", "bevacizumab"), "true"),
        (GROUP3, None, ("docetaxel",), "false"),
        (GROUP3, None, ("paclitaxel", "carboplatin"), "false"),
        (UNKNOWN, None, ("paclitaxel",), "unknown"),
    ],
    ids=[
        "g1-no-crisis-event-endocrine+cdk46", "g1-no-crisis-endocrine-alone",
        "g1-no-crisis-chemo", "g1-crisis-absent-endocrine+cdk46", "g1-crisis-absent-chemo",
        "g1-crisis-taxane", "g1-crisis-anthracycline", "g1-crisis-endocrine+cdk46",
        "g1-crisis-non-taxane-non-anthracycline", "g2-docetaxel+HP", "g2-brands-paclitaxel+HP",
        "g2-no-pertuzumab", "g2-no-taxane", "g3-paclitaxel", "g3-paclitaxel+bev",
        "g3-docetaxel", "g3-paclitaxel+carboplatin", "unknown-group",
    ],
)
def test_first_line_concordance(ihc: dict[str, Any], crisis: bool | None,
                                drugs: tuple[str, ...], expected: str) -> None:
    """Protocol first lines: group 1 with visceral crisis -> taxane or anthracycline
    chemotherapy; without (or no visceral_crisis.assessed event at all) -> endocrine
    + CDK4/6 inhibitor; group 2 -> paclitaxel or docetaxel + trastuzumab +
    pertuzumab; group 3 -> paclitaxel +/- bevacizumab; unknown group -> "unknown".
    Crisis assessed 2025-01-10, before line 1 (2025-01-13).
    """
    p = Patient()
    events = start(p, ihc)
    if crisis is not None:
        events.append(p.crisis("2025-01-10", crisis))
    events.append(p.line(L1, "L1", *drugs))
    assert journey(events).patient.first_line_concordant == expected


def test_concordance_is_unknown_without_a_first_line() -> None:
    """Group 3, no line.started: nothing to judge, "unknown"."""
    assert journey(start(Patient(), GROUP3)).patient.first_line_concordant == "unknown"


def test_concordance_judges_the_first_line_only() -> None:
    """Group 3: line 1 paclitaxel (concordant), line 2 capecitabine: still "true"."""
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.line("2025-04-14", "L2", "capecitabine")]
    assert journey(events).patient.first_line_concordant == "true"


# --- status --------------------------------------------------------------------------


def test_status_not_started() -> None:
    assert journey(start(Patient(), GROUP3)).patient.status == "not_started"


def test_status_on_treatment() -> None:
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel")]
    assert journey(events).patient.status == "on_treatment"


def test_status_lost_to_followup_outranks_the_line_in_progress() -> None:
    """Interpretation: followup.lost 2025-05-05 while line 1 is ongoing: lost_to_followup."""
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.lost("2025-05-05")]
    assert journey(events).patient.status == "lost_to_followup"


def test_status_withdrawn_outranks_the_line_in_progress() -> None:
    """Interpretation: consent.withdrawn (stop_followup) 2025-05-05 during line 1: withdrawn."""
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.withdrawn("2025-05-05")]
    assert journey(events).patient.status == "withdrawn"


def test_status_deceased_outranks_lost_to_followup() -> None:
    """Lost 2025-05-05, death (learnt from a registry) 2025-08-04: deceased."""
    p = Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.lost("2025-05-05"),
              p.death("2025-08-04")]
    assert journey(events).patient.status == "deceased"


# --- data-quality findings ---------------------------------------------------------------


def test_declared_line_number_mismatch_is_a_finding() -> None:
    """Lines arrive out of order: "L2" (2025-04-14, declared 3) before "L1" (2025-01-13,
    declared 1).  The engine numbers in clinical order: L1 -> 1 (matches), L2 -> 2
    (declared 3: one finding "declared 3, derived 2")."""
    p = Patient()
    second = p.line("2025-04-14", "L2", "capecitabine", declared=3)
    first = p.line(L1, "L1", "paclitaxel", declared=1)
    j = journey([*start(p, GROUP3), second, first])
    assert [(r.line_number, r.regimen) for r in j.lines] == [(1, "paclitaxel"), (2, "capecitabine")]
    assert findings(j, FindingKind.DECLARED_LINE_NUMBER_MISMATCH) == [Finding(
        PID, FindingKind.DECLARED_LINE_NUMBER_MISMATCH, str(second.event_id),
        "declared 3, derived 2")]


def test_unknown_drug_is_a_finding_kept_verbatim() -> None:
    """"Xyzzimab" is not in the vocabulary: kept verbatim in the regimen (sorted among
    generic names: "Xyzzimab" < "paclitaxel" in code-point order) and reported."""
    p = Patient()
    started = p.line(L1, "L1", "paclitaxel", "Xyzzimab")
    j = journey([*start(p, GROUP3), started])
    assert line(j, 1).regimen == "Xyzzimab+paclitaxel"
    assert findings(j, FindingKind.UNKNOWN_DRUG) == [
        Finding(PID, FindingKind.UNKNOWN_DRUG, str(started.event_id), "Xyzzimab")]


def test_line_ended_never_started_is_a_finding() -> None:
    """line.ended for "L9", which never started: a finding; no line is invented."""
    p = Patient()
    orphan = p.ended("2025-03-03", "L9", "toxicity")
    j = journey([*start(p, GROUP3), orphan])
    assert j.lines == ()
    assert findings(j, FindingKind.LINE_ENDED_NOT_STARTED) == [
        Finding(PID, FindingKind.LINE_ENDED_NOT_STARTED, str(orphan.event_id), "L9")]


def test_retraction_of_an_unknown_event_is_a_finding() -> None:
    """A retraction whose target the engine never received: finding on the retraction."""
    p = Patient()
    never_sent = p.imaging("2025-02-03", "SD")
    retraction = p.retract("2025-02-10", never_sent)
    j = journey([*start(p, GROUP3), retraction])
    assert findings(j, FindingKind.UNKNOWN_RETRACTION_TARGET) == [
        Finding(PID, FindingKind.UNKNOWN_RETRACTION_TARGET, str(retraction.event_id))]


def test_never_included_is_a_finding() -> None:
    """IHC 2025-01-06 and line 2025-01-13 but no patient.included: finding on the first
    fact in clinical order (the IHC); no inclusion date and nothing is scheduled."""
    p = Patient()
    first = p.ihc(INCLUDED, **GROUP3)
    j = journey([p.line(L1, "L1", "paclitaxel"), first])
    assert findings(j, FindingKind.NEVER_INCLUDED) == [
        Finding(PID, FindingKind.NEVER_INCLUDED, str(first.event_id))]
    assert j.patient.inclusion_date is None
    assert j.due == ()


# --- cut-off and known-at --------------------------------------------------------------


def _cutoff_history() -> list[ClinicalEvent]:
    p = Patient()
    return [*start(p, GROUP1), p.line(L1, "L1", "letrozole", "palbociclib"),
            p.imaging("2025-03-10", "SD"), p.progression("2025-05-05"),
            p.ended("2025-05-05", "L1", "progression"), p.line("2025-05-12", "L2", "capecitabine")]


def test_cutoff_excludes_facts_that_occurred_after_it() -> None:
    """Cut-off 2025-04-30: the progression and line.ended (2025-05-05) and line 2
    (2025-05-12) are ignored.

    Line 1 is ongoing (empty end); no progression; TTP censored at CT 2025-03-10
    (56 days); TTNT censored at the last fact date on or before the cut-off,
    2025-03-10: 56 days, no event.  Patient on line 1.
    """
    j = journey(_cutoff_history(), cutoff="2025-04-30")
    row = line(j, 1)
    assert len(j.lines) == 1
    assert (row.end_date, row.end_reason, row.progression_date) == (None, None, None)
    assert (row.ttp_days, row.ttp_event) == (56, False)
    assert (row.ttnt_days, row.ttnt_event) == (56, False)
    assert (j.patient.status, j.patient.current_line) == ("on_treatment", 1)


def test_cutoff_is_inclusive() -> None:
    """Cut-off 2025-05-05: facts of 2025-05-05 count.  Progression 2025-05-05:
    Jan 13 -> May 13 = 120, minus 8 = 112 days, event; line ended 2025-05-05
    "progression"; line 2 (2025-05-12) not yet: TTNT censored at the last fact date
    2025-05-05 = 112 days, no event."""
    j = journey(_cutoff_history(), cutoff="2025-05-05")
    row = line(j, 1)
    assert len(j.lines) == 1
    assert (row.progression_date, row.ttp_days, row.ttp_event) == (d("2025-05-05"), 112, True)
    assert (row.end_date, row.end_reason) == (d("2025-05-05"), "progression")
    assert (row.ttnt_days, row.ttnt_event) == (112, False)
    assert j.patient.status == "between_lines"


def test_a_retraction_dated_after_the_cutoff_still_corrects_the_record() -> None:
    """Interpretation: progression 2025-03-17 entered in error, retracted on 2025-08-04;
    cut-off 2025-06-30.  The retraction corrects the record rather than observing a
    clinical fact, so it applies whatever its date: no progression; TTP censored at
    the CT 2025-03-10 (56 days).  (What was believed before the correction is
    ``known_at``'s job.)"""
    p = Patient()
    wrong = p.progression("2025-03-17")
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.imaging("2025-03-10", "SD"),
              wrong, p.retract("2025-08-04", wrong)]
    row = line(journey(events, cutoff="2025-06-30"), 1)
    assert (row.progression_date, row.ttp_days, row.ttp_event) == (None, 56, False)


def test_known_at_is_inclusive_of_the_recording_instant() -> None:
    """Progression 2025-03-17 recorded 2025-03-28T08:00Z.  Known at exactly that
    instant it counts (63 days, event); one microsecond earlier it does not."""
    p = Patient()
    recorded = datetime(2025, 3, 28, 8, tzinfo=UTC)
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"),
              p.progression("2025-03-17", recorded="2025-03-28T08:00:00Z")]
    assert line(journey(events, known_at=recorded), 1).ttp_days == 63
    before = line(journey(events, known_at=recorded - timedelta(microseconds=1)), 1)
    assert (before.progression_date, before.ttp_event) == (None, False)


# --- assessment schedule: imaging ------------------------------------------------------


def _overdue_history(p: Patient) -> list[ClinicalEvent]:
    return [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.imaging("2025-03-03", "SD")]


def test_imaging_overdue_exactly_at_window_end_is_not_overdue() -> None:
    """Group 3: 8 weeks.  Last CT 2025-03-03 + 56 = (Mar 31 +28, Apr 28 +56) 2025-04-28;
    window end + 14 = 2025-05-12.  As of 2025-05-12: as-of > window_end is false ->
    not overdue, nothing listed."""
    j = journey(_overdue_history(Patient()))
    assert due(j, Assessment.IMAGING) == DueAssessment(
        PID, Assessment.IMAGING, d("2025-03-03"), d("2025-04-28"), d("2025-05-12"))
    assert overdue(_overdue_history(Patient()), "2025-05-12") == []


def test_imaging_overdue_one_day_after_window_end() -> None:
    """As of 2025-05-13: 2025-05-13 - 2025-05-12 = 1 day overdue."""
    rows = overdue(_overdue_history(Patient()), "2025-05-13")
    assert [(r.assessment, r.last_done, r.due_date, r.window_end, n) for r, n in rows] == [
        (Assessment.IMAGING, d("2025-03-03"), d("2025-04-28"), d("2025-05-12"), 1)]


def test_overdue_ignores_facts_recorded_after_as_of() -> None:
    """A CT dated 2025-04-20 is recorded 2025-05-14T08:00Z.

    As of 2025-05-13 it is unknown: due from the 2025-03-03 CT, window end
    2025-05-12, 1 day overdue.  As of 2025-05-14 it is known: due 2025-04-20 + 56 =
    (Apr 30 +10, May 31 +41, Jun 15 +56) 2025-06-15, not overdue.
    """
    p = Patient()
    events = [*_overdue_history(p), p.imaging("2025-04-20", "SD", recorded="2025-05-14T08:00:00Z")]
    assert [n for _, n in overdue(events, "2025-05-13")] == [1]
    assert overdue(events, "2025-05-14") == []


def test_imaging_due_from_inclusion_date_when_no_tumour_assessment() -> None:
    """Interpretation (s8 over s5): no imaging; inclusion 2025-01-06, line 1 2025-02-03.

    s8: "last tumour assessment (else the inclusion date)" -> 2025-01-06 + 56 =
    2025-03-03 (Jan 31 +25, Feb 28 +53, Mar 3 +56); window end 2025-03-17.
    (s5 says "or line start when none", which would give 2025-03-31.)
    """
    p = Patient()
    events = [*start(p, GROUP3), p.line("2025-02-03", "L1", "paclitaxel")]
    assert due(journey(events), Assessment.IMAGING) == DueAssessment(
        PID, Assessment.IMAGING, None, d("2025-03-03"), d("2025-03-17"))


EIGHT_WEEKS = ("2025-04-28", "2025-05-12")  # 2025-03-03 + 56, + 14
TWELVE_WEEKS = ("2025-05-26", "2025-06-09")  # 2025-03-03 + 84 (Mar 31 +28, Apr 30 +58, May 26 +84)


@pytest.mark.parametrize(
    ("ihc", "drugs", "expected"),
    [
        (GROUP3, ("paclitaxel",), EIGHT_WEEKS),
        (GROUP3, (), EIGHT_WEEKS),
        (GROUP1, ("capecitabine",), EIGHT_WEEKS),
        (GROUP1, ("epirubicin", "cyclophosphamide"), EIGHT_WEEKS),
        (GROUP2, ("docetaxel", "trastuzumab", "pertuzumab"), TWELVE_WEEKS),
        (GROUP1, ("letrozole", "palbociclib"), TWELVE_WEEKS),
        (GROUP1, (), TWELVE_WEEKS),
        (UNKNOWN, ("letrozole", "palbociclib"), EIGHT_WEEKS),
    ],
    ids=["group3", "group3-no-line", "group1-chemo", "group1-anthracycline", "group2-on-chemo",
         "group1-endocrine", "group1-no-line", "unknown-group"],
)
def test_imaging_interval_by_group_and_treatment(ihc: dict[str, Any], drugs: tuple[str, ...],
                                                 expected: tuple[str, str]) -> None:
    """Last CT 2025-03-03.  Group 3: 8 w; group 1 on chemotherapy (a cytotoxic drug in
    the current line): 8 w; group 2: 12 w (chemotherapy or not); group 1 on endocrine
    therapy or with no line yet: 12 w; unknown group: the shortest, 8 w.  Grace 14 d.
    8 w: due 2025-04-28, window 2025-05-12.  12 w: due 2025-05-26, window 2025-06-09.
    """
    p = Patient()
    events = start(p, ihc)
    if drugs:
        events.append(p.line(L1, "L1", *drugs))
    events.append(p.imaging("2025-03-03", "SD"))
    imaging = due(journey(events), Assessment.IMAGING)
    assert imaging is not None
    assert (imaging.due_date, imaging.window_end) == (d(expected[0]), d(expected[1]))


def test_group1_interval_follows_the_drugs_now_after_chemotherapy_stops() -> None:
    """Group 1, line 1 paclitaxel 2025-01-13; on 2025-02-10 paclitaxel stopped, letrozole
    and palbociclib added (same line).  The current line holds no cytotoxic drug:
    12 weeks from the CT 2025-03-03 -> due 2025-05-26, window 2025-06-09."""
    p = Patient()
    events = [*start(p, GROUP1), p.line(L1, "L1", "paclitaxel"),
              p.modified("2025-02-10", "L1", added=("letrozole", "palbociclib"),
                         stopped=("paclitaxel",)),
              p.imaging("2025-03-03", "SD")]
    imaging = due(journey(events), Assessment.IMAGING)
    assert imaging is not None
    assert (imaging.due_date, imaging.window_end) == (d("2025-05-26"), d("2025-06-09"))


def test_group1_interval_between_lines_is_not_chemotherapy() -> None:
    """Group 1, chemotherapy line ended 2025-02-24 (completed), no line in progress:
    not "on chemotherapy" -> 12 weeks from the CT 2025-03-03: due 2025-05-26."""
    p = Patient()
    events = [*start(p, GROUP1), p.line(L1, "L1", "capecitabine"),
              p.ended("2025-02-24", "L1", "completed"), p.imaging("2025-03-03", "SD")]
    imaging = due(journey(events), Assessment.IMAGING)
    assert imaging is not None
    assert imaging.due_date == d("2025-05-26")


def test_bone_scan_is_not_a_tumour_assessment_for_the_imaging_schedule() -> None:
    """CT 2025-03-03, bone scan 2025-03-31 (bone metastases): imaging still runs from
    the CT (last_done 2025-03-03, due 2025-04-28); the bone scan schedule from the scan:
    2025-03-31 + 168 = (Apr 30 +30, May 31 +61, Jun 30 +91, Jul 31 +122, Aug 31 +153,
    Sep 15 +168)
    2025-09-15, window end 2025-09-29."""
    p = Patient()
    events = [*start(p, GROUP3, sites=("bone", "liver")), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-03-03", "SD"), p.imaging("2025-03-31", None, modality="bone_scan")]
    j = journey(events)
    imaging = due(j, Assessment.IMAGING)
    assert imaging is not None
    assert (imaging.last_done, imaging.due_date) == (d("2025-03-03"), d("2025-04-28"))
    assert due(j, Assessment.BONE_SCAN) == DueAssessment(
        PID, Assessment.BONE_SCAN, d("2025-03-31"), d("2025-09-15"), d("2025-09-29"))


# --- assessment schedule: bone scan ----------------------------------------------------


def _bone_progression_history() -> list[ClinicalEvent]:
    p = Patient()
    return [*start(p, GROUP3, sites=("liver",)), p.line(L1, "L1", "paclitaxel"),
            p.imaging("2025-08-25", "SD"), p.progression("2025-09-01", new_sites=("bone",))]


def test_no_bone_scan_due_without_bone_metastases() -> None:
    """Liver metastases only, cut-off 2025-08-31 (before the bone progression): no
    bone scan is due."""
    assert due(journey(_bone_progression_history(), cutoff="2025-08-31"),
               Assessment.BONE_SCAN) is None


def test_bone_scan_due_once_a_progression_adds_bone_metastases() -> None:
    """Progression 2025-09-01 with new site bone: bone scans are now due, from that
    progression, the first documentation of bone (no bone scan yet; DESIGN section 8 as
    corrected in turn 2, issue 19 item 18): 2025-09-01 + 168 = (Oct 1 +30, Nov 1 +61,
    Dec 1 +91, Jan 1 +122, Feb 1 +153, Feb 16 +168) 2026-02-16; window end 2026-03-02;
    last_done empty."""
    assert due(journey(_bone_progression_history()), Assessment.BONE_SCAN) == DueAssessment(
        PID, Assessment.BONE_SCAN, None, d("2026-02-16"), d("2026-03-02"))


def test_bone_scan_due_from_the_last_bone_scan() -> None:
    """Bone metastases at inclusion; bone scan 2025-02-03: due 2025-02-03 + 168 =
    (Feb 28 +25, Mar 31 +56, Apr 30 +86, May 31 +117, Jun 30 +147, Jul 21 +168)
    2025-07-21, window end 2025-08-04."""
    p = Patient()
    events = [*start(p, GROUP1, sites=("bone",)), p.line(L1, "L1", "letrozole", "palbociclib"),
              p.imaging("2025-02-03", None, modality="bone_scan")]
    assert due(journey(events), Assessment.BONE_SCAN) == DueAssessment(
        PID, Assessment.BONE_SCAN, d("2025-02-03"), d("2025-07-21"), d("2025-08-04"))


# --- assessment schedule: biopsy -------------------------------------------------------


def _progressed(*extra: str, p: Patient | None = None) -> list[ClinicalEvent]:
    p = p or Patient()
    events = [*start(p, GROUP3), p.line(L1, "L1", "paclitaxel"), p.imaging("2025-03-03", "SD"),
              p.progression("2025-03-17")]
    events += [p.biopsy(day) for day in extra]
    return events


def test_biopsy_due_42_days_after_progression_without_grace() -> None:
    """Progression 2025-03-17 + 42 = (Mar 31 +14, Apr 28 +42) 2025-04-28; no grace:
    window end = due date = 2025-04-28; no biopsy yet, last_done empty."""
    assert due(journey(_progressed()), Assessment.BIOPSY) == DueAssessment(
        PID, Assessment.BIOPSY, None, d("2025-04-28"), d("2025-04-28"))


def test_biopsy_not_overdue_on_its_due_date() -> None:
    """As of 2025-04-28 = window end: not overdue (imaging's window ends 2025-05-12)."""
    assert overdue(_progressed(), "2025-04-28") == []


def test_biopsy_overdue_the_day_after_its_due_date() -> None:
    """As of 2025-04-29: 2025-04-29 - 2025-04-28 = 1 day overdue, biopsy only."""
    rows = overdue(_progressed(), "2025-04-29")
    assert [(r.assessment, n) for r, n in rows] == [(Assessment.BIOPSY, 1)]


def test_biopsy_on_the_progression_date_satisfies_it() -> None:
    """Biopsy 2025-03-17 = progression date: "on or after" -> nothing due."""
    assert due(journey(_progressed("2025-03-17")), Assessment.BIOPSY) is None


def test_biopsy_before_the_progression_does_not_satisfy_it() -> None:
    """Baseline biopsy 2025-01-08 precedes the progression (2025-03-17): still due
    2025-04-28, last_done 2025-01-08."""
    assert due(journey(_progressed("2025-01-08")), Assessment.BIOPSY) == DueAssessment(
        PID, Assessment.BIOPSY, d("2025-01-08"), d("2025-04-28"), d("2025-04-28"))


def test_biopsy_due_from_the_latest_progression() -> None:
    """Progression 2025-03-17 biopsied 2025-03-20; CT with PD 2025-06-02 (a new
    progression): due 2025-06-02 + 42 = (Jun 30 +28, Jul 14 +42) 2025-07-14,
    last_done 2025-03-20."""
    p = Patient()
    events = [*_progressed("2025-03-20", p=p), p.imaging("2025-06-02", "PD")]
    assert due(journey(events), Assessment.BIOPSY) == DueAssessment(
        PID, Assessment.BIOPSY, d("2025-03-20"), d("2025-07-14"), d("2025-07-14"))


# --- nothing due after death, loss or withdrawal ---------------------------------------


def test_assessments_are_overdue_the_day_before_death() -> None:
    """As of 2025-06-01 (death on 2025-06-02 not yet occurred): the CT of 2025-03-03
    window ended 2025-05-12 -> May 12 -> May 31 = 19, + 1 = 20 days overdue."""
    p = Patient()
    events = [*_overdue_history(p), p.death("2025-06-02")]
    assert [(r.assessment, n) for r, n in overdue(events, "2025-06-01")] == [
        (Assessment.IMAGING, 20)]


@pytest.mark.parametrize("ending", ["death", "lost", "withdrawn", "erased"])
def test_nothing_is_due_after_death_loss_or_withdrawal(ending: str) -> None:
    """Death / followup.lost / consent.withdrawn (stop_followup or erase) on 2025-06-02,
    a bone-metastatic patient with an unbiopsied progression: nothing is due, and
    `journey overdue` lists nothing as of 2025-06-02 or a year later."""
    p = Patient()
    end = {"death": lambda: p.death("2025-06-02"), "lost": lambda: p.lost("2025-06-02"),
           "withdrawn": lambda: p.withdrawn("2025-06-02"),
           "erased": lambda: p.withdrawn("2025-06-02", scope="erase")}[ending]()
    events = [*start(p, GROUP3, sites=("bone",)), p.line(L1, "L1", "paclitaxel"),
              p.imaging("2025-03-03", "SD"), p.progression("2025-03-17"), end]
    assert journey(events).due == ()
    assert overdue(events, "2025-06-02") == []
    assert overdue(events, "2026-06-02") == []
