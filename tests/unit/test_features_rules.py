"""Rules of the point-in-time features not covered by the worked example."""

from __future__ import annotations

from datetime import date

from mbcjourney.projections.features import BUILTINS, FeatureSpec, feature_rows
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.builders import PatientBuilder

SPEC = FeatureSpec(BUILTINS)


def _day(day: str) -> str:
    return f"{day}T12:00:00Z"  # recorded at noon, the day it occurred


def two_lines(p: PatientBuilder, *, first_recorded: str | None = None
              ) -> list:  # type: ignore[type-arg]
    return [
        p.included("2025-01-06", sites=("bone",), recorded=_day("2025-01-06")),
        p.ihc("2025-01-06", recorded=_day("2025-01-06")),
        p.line("2025-02-01", "L1", "paclitaxel", recorded=first_recorded or _day("2025-02-01")),
        p.modified("2025-04-01", "L1", added=("letrozole",), stopped=("paclitaxel",),
                   recorded=_day("2025-04-01")),
        p.imaging("2025-06-01", "PD", recorded=_day("2025-06-01")),
        p.progression("2025-06-01", new_sites=("liver",), recorded=_day("2025-06-01")),
        p.line("2025-06-20", "L2", "fulvestrant", "abemaciclib", recorded=_day("2025-06-20")),
    ]


def test_lines_first_keeps_only_first_lines() -> None:
    p = PatientBuilder()
    events = two_lines(p)
    assert [r.line_number for r in feature_rows(p.patient_id, events, SPEC,
                                                DEFAULT_CLINICAL)] == [1, 2]
    only = feature_rows(p.patient_id, events, SPEC, DEFAULT_CLINICAL, lines="first")
    assert [r.line_number for r in only] == [1]


def test_second_line_sees_the_first_as_it_ended_and_the_new_site() -> None:
    """Endocrine maintenance added to line 1 counts as a prior class of line 2; the liver
    site documented at the progression is disease at line 2's start."""
    p = PatientBuilder()
    events = two_lines(p)
    for e in events[3:]:
        assert e.recorded_at.date() <= date(2025, 6, 20)
    first, second = feature_rows(p.patient_id, events, SPEC, DEFAULT_CLINICAL)
    assert first.features["liver"] is False
    assert first.features["bone_only"] is True
    f = second.features
    assert (f["prior_taxane"], f["prior_endocrine"], f["prior_cdk46_inhibitor"]) == (
        True, True, False)
    assert (f["line_endocrine"], f["line_cdk46_inhibitor"], f["line_taxane"]) == (
        True, True, False)
    assert (f["liver"], f["visceral"], f["bone_only"], f["metastatic_sites"]) == (
        True, True, False, 2)
    assert f["previous_line_pfs_days"] == (date(2025, 6, 1) - date(2025, 2, 1)).days
    assert f["days_since_previous_line"] == (date(2025, 6, 20) - date(2025, 2, 1)).days


def test_a_previous_line_recorded_late_is_not_known_at_t0() -> None:
    """The row keeps the engine's numbering (2), the feature counts what was known (1)."""
    p = PatientBuilder()
    events = two_lines(p, first_recorded="2025-08-01T12:00:00Z")
    second = feature_rows(p.patient_id, events, SPEC, DEFAULT_CLINICAL)[1]
    assert second.line_number == 2
    assert second.features["line_number_at_t0"] == 1
    assert second.features["previous_lines"] == 0
    assert second.features["prior_taxane"] is False


def test_an_erased_patient_has_no_row() -> None:
    p = PatientBuilder()
    events = [*two_lines(p), p.withdrawn("2025-09-01", scope="erase",
                                         recorded=_day("2025-09-01"))]
    assert feature_rows(p.patient_id, events, SPEC, DEFAULT_CLINICAL) == []
