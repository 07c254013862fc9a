"""Validation (issue 4, item 5): published first-line median PFS, recovered through the exports.

The simulator draws each first-line regimen's progression time with the
published median of DESIGN section 10.  A 3,400-patient cohort is written as
wire-format JSON Lines, ingested by the embedded engine, and read back with
``line_rows()`` / ``patient_rows()`` -- exactly what ``journey export lines`` and
``journey export patients`` print.  Line-1 rows are grouped by published arm
(the report's :func:`reference_arm`: the trial's group and exactly its drugs) and
a Kaplan-Meier median with its confidence interval is computed by lifelines.

What is asserted, and why:

1. **The engine recovers the simulated facts exactly**: every exported first
   line has the PFS days and event flag of the simulator's ground truth
   (``truth()``, which applies the DESIGN section 8 rules to the facts sent).
   This is deterministic; any difference is an engine (or simulator) bug.
2. **The published medians are recovered**: for every arm with >= 150
   first-line patients, the KM confidence interval from the exported rows
   contains the published median.  The 95 % is *family-wise* over the arms
   tested (Bonferroni: each of the k arms at 1 - 0.05/k).  With 8 arms, eight
   separate 95 % intervals all cover the truth for only about 0.95^8 = 66 % of
   seeds even without bias; measured on 30 seeds of this simulator, only 15 of
   30 passed, so that test would check the seed, not the pipeline.  At this
   seed the plain 95 % intervals also all contain the published medians (shown
   in the failure message and in docs/report.md).

Known simulator-design biases (why an interval may still miss with another
seed, about 2 seeds in 30 at this size): the simulator draws the *time to
progression* with the published PFS median, then lets death on line 1 compete
(0.03 / year, doubled in group 3); PFS counts that death as an event, so the
simulated PFS median is ln 2 / (ln 2 / m + death hazard): 22.8 instead of 24.8
months for letrozole + palbociclib.  Lines stopped for toxicity are censored,
and the toxicity day is drawn before the progression day, which is
informative censoring and pushes the estimate up by 2-4 %.  Regimens given to
too few first-line patients to be judged at this size (docetaxel +
trastuzumab: ~0.9 % of patients, 150 of them need ~17,000 patients; letrozole
alone: ~3.4 %, ~4,500 patients) are shown, not tested.
"""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.projections import LineRow
from mbcjourney.report_stats import (
    REFERENCE_ARMS,
    first_lines,
    pfs_median,
    reference_arm,
)
from mbcjourney.simulate import SimulationSettings, truth, write_cohort

pytestmark = pytest.mark.slow  # each test spawns journey processes

PATIENTS = 3400  # the smallest arm tested (paclitaxel + bevacizumab) gets ~175 patients
SEED = 2026
MIN_PATIENTS = 150
FAMILY_LEVEL = 0.95

#: DESIGN section 10, by the simulator's regimen key (months).
PUBLISHED = {
    "docetaxel+trastuzumab+pertuzumab": 18.5,  # CLEOPATRA
    "paclitaxel+trastuzumab+pertuzumab": 20.7,  # PERUSE
    "docetaxel+trastuzumab": 12.4,  # CLEOPATRA control
    "letrozole+palbociclib": 24.8,  # PALOMA-2
    "letrozole+ribociclib": 25.3,  # MONALEESA-2
    "nsai+abemaciclib": 28.2,  # MONARCH 3
    "letrozole": 14.5,  # PALOMA-2 control
    "combination_chemotherapy": 12.8,  # RIGHT Choice control
    "paclitaxel+bevacizumab": 11.8,  # E2100
    "paclitaxel": 5.6,  # IMpassion131 control
}
#: The report's reference arm for each simulator regimen key.
ARM_OF_KEY = {
    "docetaxel+trastuzumab+pertuzumab": "cleopatra",
    "paclitaxel+trastuzumab+pertuzumab": "peruse",
    "docetaxel+trastuzumab": "cleopatra-control",
    "letrozole+palbociclib": "paloma-2",
    "letrozole+ribociclib": "monaleesa-2",
    "nsai+abemaciclib": "monarch-3",
    "letrozole": "letrozole",
    "combination_chemotherapy": "right-choice-control",
    "paclitaxel+bevacizumab": "e2100",
    "paclitaxel": "paclitaxel",
}
TESTED = {"cleopatra", "peruse", "paloma-2", "monaleesa-2", "monarch-3",
          "right-choice-control", "e2100", "paclitaxel"}


def test_the_report_compares_with_the_medians_the_simulator_is_given() -> None:
    arms = {a.key: a.published_months for a in REFERENCE_ARMS}
    assert {ARM_OF_KEY[key]: months for key, months in PUBLISHED.items()} == arms


def test_published_first_line_medians_are_recovered_through_the_exports(tmp_path: Path) -> None:
    settings = SimulationSettings(patients=PATIENTS, seed=SEED, medians_months=PUBLISHED)
    cohort = io.BytesIO()
    write_cohort(settings, cohort)
    cohort.seek(0)
    engine = EmbeddedEngine(f"sqlite:///{tmp_path / 'journey.db'}")
    try:
        engine.ingest(numbered_lines(cohort), origin="simulated",
                      received_at=datetime(2030, 1, 1, tzinfo=UTC))
        patients = engine.patient_rows()
        exported = {row.patient_id: row for row in first_lines(engine.line_rows())}
    finally:
        engine.close()

    # 1. Every simulated first line comes back with the PFS the facts give.
    expected = {t.patient_id: (t.pfs_days, t.pfs_event) for t in truth(settings)
                if t.first_line_start is not None and t.withdrawal_scope != "erase"}
    recovered = {pid: (row.pfs_days, row.pfs_event) for pid, row in exported.items()}
    assert recovered == expected

    # 2. The published medians lie within the family-wise 95 % intervals.
    group = {p.patient_id: p.group for p in patients}
    by_arm: dict[str, list[LineRow]] = defaultdict(list)
    for row in exported.values():
        arm = reference_arm(group[row.patient_id], row.regimen)
        if arm is not None:
            by_arm[arm.key].append(row)
    tested = {key for key, rows in by_arm.items() if len(rows) >= MIN_PATIENTS}
    assert tested == TESTED, {key: len(rows) for key, rows in by_arm.items()}
    level = 1 - (1 - FAMILY_LEVEL) / len(tested)
    report, missed = [], []
    for arm in REFERENCE_ARMS:
        rows = by_arm[arm.key]
        plain, family = pfs_median(rows), pfs_median(rows, level)
        report.append(f"{arm.regimen:38} n={plain.n:4} published {arm.published_months:4.1f}  "
                      f"95 %: {plain.text():18} family-wise: {family.text()}")
        if arm.key in tested and not family.contains(arm.published_months):
            missed.append(arm.regimen)
    assert not missed, "\n".join(["published median outside the interval:", *report])
