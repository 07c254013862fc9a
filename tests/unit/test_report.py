"""The report's pure helpers: regimen families, reference arms, KM medians, sampling, tables.

Expected values are worked out by hand in each test; nothing is re-computed with
the code under test.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.projections import LineRow, PatientRow, View
from mbcjourney.projections.findings import Finding, FindingKind
from mbcjourney.projections.schedule import Assessment, DueAssessment
from mbcjourney.report import ReportOptions, load_report_data, write_report
from mbcjourney.report_stats import (
    DAYS_PER_MONTH,
    REFERENCE_ARMS,
    RegimenClass,
    concordance_table,
    conversion_table,
    findings_table,
    group_status_table,
    km_median,
    overdue_table,
    reference_arm,
    regimen_class,
    sample_patients,
    validation_rows,
)
from tests.support.builders import PatientBuilder, to_jsonl

# --- regimen families ------------------------------------------------------------------


@pytest.mark.parametrize(("regimen", "family"), [
    ("docetaxel+pertuzumab+trastuzumab", RegimenClass.ANTI_HER2),
    ("capecitabine+trastuzumab+tucatinib", RegimenClass.ANTI_HER2),
    ("trastuzumab and pertuzumab subcutaneous", RegimenClass.ANTI_HER2),
    ("trastuzumab deruxtecan", RegimenClass.ADC),  # an ADC beats anti-HER2
    ("sacituzumab govitecan", RegimenClass.ADC),
    ("letrozole+palbociclib", RegimenClass.ENDOCRINE_CDK46),
    ("abemaciclib+anastrozole", RegimenClass.ENDOCRINE_CDK46),
    ("bevacizumab+paclitaxel", RegimenClass.CHEMOTHERAPY),
    ("paclitaxel+pembrolizumab", RegimenClass.CHEMOTHERAPY),
    ("cyclophosphamide+doxorubicin", RegimenClass.CHEMOTHERAPY),
    ("capecitabine", RegimenClass.CHEMOTHERAPY),
    ("everolimus+exemestane", RegimenClass.ENDOCRINE),
    ("fulvestrant", RegimenClass.ENDOCRINE),
    ("denosumab+letrozole", RegimenClass.ENDOCRINE),  # bone-targeted agents are ignored
    ("olaparib", RegimenClass.OTHER),
    ("denosumab", RegimenClass.OTHER),
    ("ETU-4471 (trial drug)", RegimenClass.OTHER),
    ("", RegimenClass.OTHER),
])
def test_regimen_family_comes_from_the_drug_classes(regimen: str, family: RegimenClass) -> None:
    assert regimen_class(regimen) is family


def test_what_counts_as_chemotherapy_follows_the_settings() -> None:
    assert regimen_class("capecitabine", cytotoxic_classes=("taxane",)) is RegimenClass.OTHER
    assert regimen_class("paclitaxel", cytotoxic_classes=("taxane",)) is RegimenClass.CHEMOTHERAPY


# --- reference arms ----------------------------------------------------------------------


@pytest.mark.parametrize(("group", "regimen", "arm"), [
    ("2", "docetaxel+pertuzumab+trastuzumab", "cleopatra"),
    ("2", "docetaxel+trastuzumab and pertuzumab subcutaneous", "cleopatra"),  # Phesgo
    ("2", "paclitaxel+pertuzumab+trastuzumab", "peruse"),
    ("2", "nab-paclitaxel+pertuzumab+trastuzumab", "peruse"),
    ("2", "docetaxel+trastuzumab", "cleopatra-control"),
    ("1", "letrozole+palbociclib", "paloma-2"),
    ("1", "denosumab+letrozole+palbociclib", "paloma-2"),
    ("1", "letrozole+ribociclib", "monaleesa-2"),
    ("1", "abemaciclib+anastrozole", "monarch-3"),
    ("1", "abemaciclib+letrozole", "monarch-3"),
    ("1", "letrozole", "letrozole"),
    ("1", "capecitabine+docetaxel", "right-choice-control"),
    ("1", "cyclophosphamide+doxorubicin", "right-choice-control"),
    ("3", "bevacizumab+paclitaxel", "e2100"),
    ("3", "paclitaxel", "paclitaxel"),
    ("3", "carboplatin+gemcitabine", None),  # combination chemotherapy, but not group 1
    ("1", "paclitaxel", None),  # single agent: not a combination
    ("3", "letrozole+palbociclib", None),  # the trial enrolled group 1 only
    ("unknown", "letrozole+palbociclib", None),
    ("1", "fulvestrant+ribociclib", None),  # not in DESIGN section 10
    ("1", "ETU-4471 (trial drug)+letrozole", None),
])
def test_reference_arm_needs_the_trials_group_and_exactly_its_drugs(
        group: str, regimen: str, arm: str | None) -> None:
    found = reference_arm(group, regimen)
    assert (found.key if found else None) == arm


def test_reference_arms_hold_the_design_section_10_medians() -> None:
    assert {a.key: a.published_months for a in REFERENCE_ARMS} == {
        "cleopatra": 18.5, "peruse": 20.7, "cleopatra-control": 12.4, "paloma-2": 24.8,
        "monaleesa-2": 25.3, "monarch-3": 28.2, "letrozole": 14.5,
        "right-choice-control": 12.8, "e2100": 11.8, "paclitaxel": 5.6}


# --- Kaplan-Meier medians ------------------------------------------------------------------


def test_km_median_without_censoring_is_the_first_time_survival_reaches_half() -> None:
    """Five events at 10..50 days: S = 0.8, 0.6, 0.4 ... reaches <= 0.5 at day 30."""
    estimate = km_median([50, 10, 30, 20, 40], [True] * 5)
    assert (estimate.n, estimate.events) == (5, 5)
    assert estimate.median == pytest.approx(30 / DAYS_PER_MONTH)
    assert estimate.lower is not None
    assert estimate.lower <= 30 / DAYS_PER_MONTH
    assert estimate.max_time == pytest.approx(50 / 30.4375)


def test_km_median_censored_after_an_event_counts_the_censored_at_risk() -> None:
    """Events at 10 and 40 days, censored at 20 and 30: S(10) = 3/4, S(40) = 3/4 * 0 = 0.

    (At day 40 one patient is at risk and fails.)  The median is day 40.
    """
    estimate = km_median([10, 20, 30, 40], [True, False, False, True])
    assert estimate.median == pytest.approx(40 / DAYS_PER_MONTH)
    assert estimate.events == 2


def test_km_median_not_reached_reads_nr() -> None:
    estimate = km_median([100, 200, 300], [False, False, False])
    assert (estimate.median, estimate.lower, estimate.upper) == (None, None, None)
    assert estimate.text() == "NR (NR–NR)"
    # Not reached within 300 days (9.9 months): a published 24 months is consistent,
    # 6 months is not.
    assert estimate.contains(24.0)
    assert not estimate.contains(6.0)


def test_km_median_of_nobody() -> None:
    estimate = km_median([], [])
    assert (estimate.n, estimate.median) == (0, None)
    assert estimate.text() == "–"


def test_a_wider_confidence_level_gives_a_wider_interval() -> None:
    days = [30 * k for k in range(1, 41)]
    events = [k % 3 != 0 for k in range(1, 41)]
    narrow, wide = km_median(days, events, 0.95), km_median(days, events, 0.995)
    assert narrow.median == wide.median
    assert narrow.lower is not None
    assert wide.lower is not None
    assert narrow.upper is not None
    assert wide.upper is not None
    assert wide.lower <= narrow.lower
    assert narrow.upper <= wide.upper


# --- swimmer sample -----------------------------------------------------------------------

IDS = [f"P-{n:06d}" for n in range(1, 201)]


def test_sample_is_deterministic_order_free_and_capped() -> None:
    first = sample_patients({"1": IDS, "2": IDS[:5]}, 20, seed=7)
    again = sample_patients({"2": list(reversed(IDS[:5])), "1": list(reversed(IDS))}, 20, seed=7)
    assert first == again
    assert len(first["1"]) == 20
    assert first["1"] == sorted(first["1"])
    assert set(first["1"]) <= set(IDS)
    assert first["2"] == IDS[:5]  # a small group is drawn whole


def test_another_seed_draws_another_sample() -> None:
    assert sample_patients({"1": IDS}, 20, seed=1) != sample_patients({"1": IDS}, 20, seed=2)


def test_sample_is_stable_as_the_cohort_grows() -> None:
    """A patient sampled from the larger cohort was already sampled from the smaller one."""
    small = set(sample_patients({"1": IDS[:120]}, 30, seed=0)["1"])
    large = set(sample_patients({"1": IDS}, 30, seed=0)["1"])
    assert large & set(IDS[:120]) <= small


# --- tables ---------------------------------------------------------------------------------


def _patient(pid: str, group: str, status: str = "on_treatment", concordant: str = "true",
             conversion: bool = False) -> PatientRow:
    return PatientRow(pid, date(2024, 1, 1), group, "positive", "negative", False, conversion,
                      1, "letrozole+palbociclib", status, concordant)


def _line(pid: str, regimen: str, pfs_days: int, event: bool, number: int = 1) -> LineRow:
    return LineRow(pid, number, regimen, date(2024, 1, 10), None, None, None, pfs_days, event,
                   pfs_days, event, pfs_days, False, None)


PATIENTS = [
    _patient("P1", "1"), _patient("P2", "1", "deceased", "false"),
    _patient("P3", "2", conversion=True), _patient("P4", "3", "not_started", "unknown"),
    _patient("P5", "unknown", concordant="unknown"),
]
LINES = [
    _line("P1", "letrozole+palbociclib", 300, True), _line("P2", "letrozole", 100, True),
    _line("P2", "capecitabine", 50, True, number=2),
    _line("P3", "docetaxel+pertuzumab+trastuzumab", 200, False),
    _line("P5", "letrozole+palbociclib", 30, False),
]


def test_group_status_table_counts_each_patient_once() -> None:
    table = group_status_table(PATIENTS)
    assert table.header == ("group", "not started", "on treatment", "between lines", "deceased",
                            "lost to followup", "withdrawn", "total")
    assert table.rows == (
        ("Group 1 (HR+/HER2−)", "0", "1", "0", "1", "0", "0", "2"),
        ("Group 2 (HER2+)", "0", "1", "0", "0", "0", "0", "1"),
        ("Group 3 (triple negative)", "1", "0", "0", "0", "0", "0", "1"),
        ("Group unknown", "0", "1", "0", "0", "0", "0", "1"),
        ("All patients", "1", "3", "0", "1", "0", "0", "5"),
    )


def test_concordance_table_counts_patients_with_a_first_line() -> None:
    table = concordance_table(PATIENTS, LINES)
    assert table.rows == (
        ("Group 1 (HR+/HER2−)", "2", "1", "1", "0", "50 %"),
        ("Group 2 (HER2+)", "1", "1", "0", "0", "100 %"),
        ("Group 3 (triple negative)", "0", "0", "0", "0", "–"),  # P4 has no line
        ("Group unknown", "1", "0", "0", "1", "–"),
        ("All patients", "4", "2", "1", "1", "67 %"),
    )


def test_conversion_table() -> None:
    table = conversion_table(PATIENTS)
    assert table.rows[1] == ("Group 2 (HER2+)", "1", "1", "100 %")
    assert table.rows[-1] == ("All patients", "5", "1", "20 %")


def test_overdue_table_by_assessment() -> None:
    def due(pid: str, kind: Assessment) -> DueAssessment:
        return DueAssessment(pid, kind, None, date(2025, 1, 1), date(2025, 1, 15))

    overdue = [(due("P1", Assessment.IMAGING), 10), (due("P2", Assessment.IMAGING), 30),
               (due("P3", Assessment.IMAGING), 20), (due("P1", Assessment.BIOPSY), 5)]
    assert overdue_table(overdue).rows == (
        ("biopsy", "1", "1", "5", "5"),
        ("bone scan", "0", "0", "–", "–"),
        ("imaging", "3", "3", "20", "30"),
    )


def test_findings_table_most_frequent_first() -> None:
    findings = [Finding("P1", FindingKind.UNKNOWN_DRUG, "e1", "xyz"),
                Finding("P2", FindingKind.HER2_PENDING, "e2"),
                Finding("P2", FindingKind.UNKNOWN_DRUG, "e3", "abc"),
                Finding("P2", FindingKind.UNKNOWN_DRUG, "e4", "abc")]
    assert findings_table(findings).rows == (
        ("unknown drug", "3", "2"), ("her2 pending", "1", "1"), ("all findings", "4", "2"))


def test_validation_rows_arms_first_then_other_regimens() -> None:
    rows = validation_rows(PATIENTS, LINES)
    keys = [r.arm.key if r.arm else r.regimen for r in rows]
    assert keys[:len(REFERENCE_ARMS)] == [a.key for a in REFERENCE_ARMS]
    # P5's group is unknown, so its letrozole + palbociclib is no trial arm's.
    assert keys[len(REFERENCE_ARMS):] == ["letrozole + palbociclib"]
    paloma = rows[[a.key for a in REFERENCE_ARMS].index("paloma-2")]
    assert (paloma.estimate.n, paloma.estimate.events) == (1, 1)
    assert paloma.within is None  # one patient: shown, not judged
    assert rows[-1].group == "unknown"


# --- reading from the engine --------------------------------------------------------------


def _engine(tmp_path: Path) -> EmbeddedEngine:
    a, b = PatientBuilder("P-000001"), PatientBuilder("P-000002")
    events = [
        a.included("2024-01-10", sites=("bone", "liver")), a.ihc("2024-01-05", her2="3+"),
        a.biopsy("2024-01-04", reason="baseline"),
        a.line("2024-01-20", "L1", "Taxotere", "Herceptin", "Perjeta"),
        a.imaging("2024-03-20", "PR"), a.imaging("2024-06-20", "SD"),
        a.imaging("2024-09-01", "PD"), a.progression("2024-09-01"), a.biopsy("2024-09-10"),
        a.line("2024-09-20", "L2", "Enhertu"), a.death("2025-02-01"),
        b.included("2024-02-01"), b.ihc("2024-02-01", er=0, pr=0, her2="0"),
        b.line("2024-02-10", "T1", "Taxol"), b.imaging("2024-04-01", "SD"),
    ]
    engine = EmbeddedEngine(f"sqlite:///{tmp_path / 'journey.db'}")
    engine.ingest(numbered_lines(io.BytesIO(to_jsonl(events))), origin="test",
                  received_at=datetime(2030, 1, 1, tzinfo=UTC))
    return engine


def test_timelines_carry_lines_and_marks_from_the_facts(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        data = load_report_data(engine, ReportOptions())
    finally:
        engine.close()
    assert data.as_of == date(2025, 2, 1)  # the latest fact date
    a, b = sorted(data.timelines, key=lambda t: t.patient_id)
    assert (a.group, a.inclusion, a.end, a.death) == (
        "2", date(2024, 1, 10), date(2025, 2, 1), date(2025, 2, 1))
    assert [(s.number, s.family, s.start, s.end) for s in a.lines] == [
        (1, RegimenClass.ANTI_HER2, date(2024, 1, 20), date(2024, 9, 20)),
        (2, RegimenClass.ADC, date(2024, 9, 20), date(2025, 2, 1)),  # ended by death
    ]
    assert a.progressions == (date(2024, 9, 1),)  # PD imaging and CRF: one date
    assert a.imaging == (date(2024, 3, 20), date(2024, 6, 20), date(2024, 9, 1))
    assert a.biopsies == (date(2024, 1, 4), date(2024, 9, 10))
    # B is still followed: the bar and the ongoing line end at the last fact.
    assert (b.group, b.end, b.death, b.lines[0].end) == (
        "3", date(2024, 4, 1), None, date(2024, 4, 1))
    assert b.follow_up_months == pytest.approx(60 / DAYS_PER_MONTH)


def test_cutoff_view_applies_to_every_part(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        data = load_report_data(engine, ReportOptions(View(cutoff=date(2024, 6, 30))))
    finally:
        engine.close()
    a = next(t for t in data.timelines if t.patient_id == "P-000001")
    assert (a.end, a.death, a.progressions) == (date(2024, 6, 20), None, ())
    assert [line.line_number for line in data.lines if line.patient_id == "P-000001"] == [1]
    assert data.as_of == date(2024, 6, 20)


def test_an_empty_database_gives_a_report_without_pictures(tmp_path: Path) -> None:
    engine = EmbeddedEngine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        summary = write_report(engine, tmp_path / "report.html")
    finally:
        engine.close()
    assert (summary.patients, summary.images) == (0, [])
    assert "Validation against published trials" in summary.html.read_text("utf-8")
