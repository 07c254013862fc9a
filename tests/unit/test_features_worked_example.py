"""Features of three patients of the demo cohort (``journey demo``: 2,000 patients, seed
2026), derived by hand from their events and checked against ``journey features``.

Spec: docs/examples/features.toml (every built-in, ``pik3ca`` = the latest PIK3CA
``result`` within 3,650 days, ``ca153`` = the latest CA 15-3 ``value`` within 60 days).
t0 = the line's start; "known" = occurred on or before t0 and recorded by 23:59:59 UTC
of t0's day.

P-000054 (triple negative, two lines).  IHC of 2022-01-02 (recorded 01-05): ER 0, PR 0,
HER2 0, Ki-67 30 -> group 3, HER2 not low; inclusion 01-21 (recorded 01-23): born 1955,
recurrent, bone only.
* Line 1, t0 = 2022-02-08, Taxol (paclitaxel): age 2022 - 1955 = 67; one site, bone only,
  not visceral; no crisis assessment -> missing; the exam and CA 15-3 of 02-08 were
  recorded on 02-09 -> ECOG, weight, ca153 missing (the line.started itself was recorded
  on 02-09: the row exists, but nothing it implies is a feature); paclitaxel for group 3
  -> concordant.  Labels: CT PD on 02-21 -> PFS = TTP = 13 days, event; next line 03-09
  -> TTNT 29; best response PD.
* Line 2, t0 = 2022-03-09, sacituzumab govitecan (ADC): exam (ECOG 1, 64.0 kg) and CA
  15-3 76 recorded the same day -> known; one previous line (taxane), 29 days ago, whose
  PFS as known then was 13 days; concordance applies to first lines only -> missing.
  Labels: no progression, death 2022-09-27 -> PFS 202 days, event; TTP censored at the
  last CT (08-15) -> 159; TTNT 202 (death); best response SD.

P-000224 (HER2-positive, one line).  IHC of 2022-03-22 (recorded 03-25): ER 0, PR 0,
HER2 3+, Ki-67 36 -> group 2; inclusion 03-24 (recorded 03-25): born 1986, recurrent,
bone + lung + lymph node.  t0 = 2022-04-02, paclitaxel + trastuzumab + pertuzumab:
age 36; 3 sites, visceral (lung), not liver, not brain, not bone only; concordant;
CA 15-3 42 (recorded 17:09 the same day) known; the exam of 04-02 recorded 04-06 ->
ECOG missing (as occurred: 1); PIK3CA wild type sequenced 03-22 but recorded 05-22 ->
missing (as occurred: wild_type).  Labels: death 07-02 without progression -> PFS 91
days, event; TTP censored at the CT of 06-30 -> 89; TTNT 91; best response SD.

P-000262 (HR-positive, ER-low).  IHC 2022-03-13 (recorded 03-15): ER 1 %, PR 75 %,
HER2 1+, no Ki-67 -> group 1, HER2-low; visceral crisis assessed absent on 04-03
(recorded 04-08) -> known, False.  The inclusion (04-03) was recorded 04-12, after
t0 = 2022-04-09 -> age, presentation and every site feature missing.  Letrozole +
palbociclib, no crisis -> concordant.  Labels: PRs to the end, death 2025-04-27 ->
PFS 1,114 days, event; TTP censored at the last CT (2025-04-15) -> 1,102; best PR.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.predict.dataset import FeatureOptions, FeatureTable, build_table
from mbcjourney.predict.spec import load_spec
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.simulate import SimulationSettings, iter_cohort

SPEC = Path(__file__).resolve().parents[2] / "docs" / "examples" / "features.toml"
CHOSEN = {"P-000054", "P-000224", "P-000262"}


def _patient(line: bytes) -> str | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value.get("patient_id") if isinstance(value, dict) else None


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The three patients' lines of the demo cohort, ingested as ``journey demo`` does."""
    lines = [line for line in iter_cohort(SimulationSettings(patients=2000, seed=2026))
             if _patient(line) in CHOSEN]
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'journey.db'}"
    engine = EmbeddedEngine(url)
    engine.ingest(numbered_lines(io.BytesIO(b"".join(line + b"\n" for line in lines))),
                  origin="demo",
                  received_at=datetime(2030, 1, 1, tzinfo=UTC))
    engine.close()
    return url


def table(url: str, *, as_occurred: bool = False) -> FeatureTable:
    with EmbeddedEngine(url) as engine:
        return build_table(engine, load_spec(SPEC), FeatureOptions(as_occurred=as_occurred))


def row(t: FeatureTable, patient_id: str, line_number: int) -> dict[str, Any]:
    for values in t.values():
        record = dict(zip(t.columns, values, strict=True))
        if record["patient_id"] == patient_id and record["line_number"] == line_number:
            return record
    raise AssertionError(f"no row {patient_id} line {line_number}")


def subset(record: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in expected}


def test_triple_negative_two_lines(demo_log: str) -> None:
    t = table(demo_log)
    first = {"start_date": date(2022, 2, 8), "pfs_days": 13, "pfs_event": True, "ttp_days": 13,
             "ttnt_days": 29, "best_response": "PD", "age": 67, "group": "3",
             "her2_low": False, "ki67_percent": 30.0, "presentation": "recurrent",
             "metastatic_sites": 1, "bone_only": True, "visceral": False,
             "visceral_crisis_missing": True, "ecog_missing": True, "weight_kg_missing": True,
             "ca153_missing": True, "line_taxane": True, "concordant": True,
             "line_number_at_t0": 1, "previous_lines": 0,
             "days_since_previous_line_missing": True}
    assert subset(row(t, "P-000054", 1), first) == first
    second = {"start_date": date(2022, 3, 9), "pfs_days": 202, "pfs_event": True,
              "ttp_days": 159, "ttp_event": False, "ttnt_days": 202, "best_response": "SD",
              "ecog": 1, "weight_kg": 64.0, "ca153": 76.0, "previous_lines": 1,
              "line_number_at_t0": 2, "prior_taxane": True, "line_adc": True,
              "line_taxane": False, "concordant_missing": True, "days_since_previous_line": 29,
              "previous_line_pfs_days": 13}
    assert subset(row(t, "P-000054", 2), second) == second


def test_her2_positive_late_exam_and_late_biomarker(demo_log: str) -> None:
    expected = {"start_date": date(2022, 4, 2), "pfs_days": 91, "pfs_event": True,
                "ttp_days": 89, "ttp_event": False, "ttnt_days": 91, "best_response": "SD",
                "age": 36, "group": "2", "her2_status": "positive", "metastatic_sites": 3,
                "visceral": True, "liver": False, "brain": False, "bone_only": False,
                "concordant": True, "ca153": 42.0, "ecog": None, "ecog_missing": True,
                "pik3ca": None, "pik3ca_missing": True}
    assert subset(row(table(demo_log), "P-000224", 1), expected) == expected
    occurred = row(table(demo_log, as_occurred=True), "P-000224", 1)
    assert (occurred["ecog"], occurred["pik3ca"]) == (1, "wild_type")


def test_er_low_inclusion_recorded_after_t0(demo_log: str) -> None:
    expected = {"start_date": date(2022, 4, 9), "pfs_days": 1114, "pfs_event": True,
                "ttp_days": 1102, "ttp_event": False, "best_response": "PR", "group": "1",
                "er_percent": 1.0, "pr_percent": 75.0, "her2_low": True,
                "ki67_percent_missing": True, "age_missing": True, "presentation_missing": True,
                "metastatic_sites_missing": True, "liver_missing": True,
                "visceral_crisis": False, "line_endocrine": True, "line_cdk46_inhibitor": True,
                "concordant": True}
    assert subset(row(table(demo_log), "P-000262", 1), expected) == expected


def test_labels_are_those_of_export_lines(demo_log: str) -> None:
    """The labels are the engine's own outcomes: the rows of ``journey export lines``."""
    t = table(demo_log)
    with EmbeddedEngine(demo_log) as engine:
        exported = {(r.patient_id, r.line_number): r for r in engine.line_rows()}
    assert len(exported) == len(t.rows) == 4
    for values in t.values():
        record: dict[str, Any] = dict(zip(t.columns, values, strict=True))
        line = exported[(record["patient_id"], record["line_number"])]
        assert record["start_date"] == line.start_date
        for label in ("pfs_days", "pfs_event", "ttp_days", "ttp_event", "ttnt_days",
                      "ttnt_event", "best_response"):
            assert record[label] == getattr(line, label), label
