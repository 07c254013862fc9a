"""The embedded round trip as a user runs it: ingest FILE, export, overdue, dead letters."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Journey
from tests.support.builders import PatientBuilder, to_jsonl

pytestmark = pytest.mark.slow  # each test spawns journey processes


def _cohort(path: Path) -> Path:
    a, b = PatientBuilder("P-000001"), PatientBuilder("P-000002")
    events = [
        a.included("2024-01-10", sites=("bone", "liver")), a.ihc("2024-01-05", her2="3+"),
        a.line("2024-01-20", "L1", "Taxotere", "Herceptin", "Perjeta"),
        a.imaging("2024-03-20", "PR"), a.progression("2024-09-01"),
        a.line("2024-09-20", "L2", "Enhertu"),
        b.included("2024-02-01"), b.ihc("2024-02-01", er=0, pr=0, her2="0"),
        b.line("2024-02-10", "T1", "Taxol"), b.death("2024-05-01"),
    ]
    path.write_bytes(to_jsonl(events))
    return path


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_ingest_then_export(journey: Journey, tmp_path: Path) -> None:
    cohort = _cohort(tmp_path / "cohort.jsonl")
    out = journey("ingest", str(cohort), "--db", "sqlite:///x.db")
    assert "10 accepted, 0 duplicate, 0 rejected" in out.stdout

    patients = _csv(journey("export", "patients", "--db", "sqlite:///x.db").stdout)
    assert [p["patient_id"] for p in patients] == ["P-000001", "P-000002"]
    assert patients[0] | {} == {
        "patient_id": "P-000001", "inclusion_date": "2024-01-10", "group": "2",
        "hr_status": "positive", "her2_status": "positive", "her2_low": "false",
        "receptor_conversion": "false", "current_line": "2",
        "current_regimen": "trastuzumab deruxtecan", "status": "on_treatment",
        "first_line_concordant": "true"}
    assert patients[1]["status"] == "deceased"
    assert patients[1]["group"] == "3"
    assert patients[1]["current_line"] == ""

    lines = _csv(journey("export", "lines", "--db", "sqlite:///x.db").stdout)
    assert [(r["patient_id"], r["line_number"]) for r in lines] == [
        ("P-000001", "1"), ("P-000001", "2"), ("P-000002", "1")]
    assert lines[0]["regimen"] == "docetaxel+pertuzumab+trastuzumab"
    assert (lines[0]["progression_date"], lines[0]["ttp_days"], lines[0]["ttp_event"]) == (
        "2024-09-01", "225", "true")
    # P-000002: death on 2024-05-01 without progression, 81 days after the start.
    assert (lines[2]["pfs_days"], lines[2]["pfs_event"], lines[2]["ttp_event"]) == (
        "81", "true", "false")

    again = journey("ingest", str(cohort), "--db", "sqlite:///x.db")
    assert "0 accepted, 10 duplicate, 0 rejected" in again.stdout
    assert _csv(journey("export", "lines", "--db", "sqlite:///x.db").stdout) == lines


def test_db_from_environment_and_json_format(journey: Journey, tmp_path: Path) -> None:
    cohort = _cohort(tmp_path / "cohort.jsonl")
    env = {"JOURNEY_DB": "sqlite:///env.db"}
    journey("ingest", str(cohort), env=env)
    assert (tmp_path / "env.db").exists()
    rows = json.loads(journey("export", "patients", "--format", "json", env=env).stdout)
    assert rows[1]["her2_low"] is False
    assert rows[1]["current_line"] is None


def test_cutoff_and_known_at(journey: Journey, tmp_path: Path) -> None:
    cohort = _cohort(tmp_path / "cohort.jsonl")
    journey("ingest", str(cohort), "--db", "sqlite:///x.db")
    cut = _csv(journey("export", "lines", "--db", "sqlite:///x.db",
                       "--cutoff", "2024-06-30").stdout)
    assert [(r["patient_id"], r["line_number"]) for r in cut] == [
        ("P-000001", "1"), ("P-000002", "1")]
    assert cut[0]["end_date"] == ""
    # Everything in the cohort was recorded on 2026-11-30: nothing was known before.
    before = journey("export", "patients", "--db", "sqlite:///x.db", "--known-at",
                     "2026-11-29T23:59:59Z").stdout
    assert before.strip().splitlines() == [before.splitlines()[0]]


def test_overdue(journey: Journey, tmp_path: Path) -> None:
    cohort = _cohort(tmp_path / "cohort.jsonl")
    journey("ingest", str(cohort), "--db", "sqlite:///x.db")
    rows = _csv(journey("overdue", "--as-of", "2029-06-01", "--db", "sqlite:///x.db").stdout)
    assert {(r["patient_id"], r["assessment"]) for r in rows} == {
        ("P-000001", "imaging"), ("P-000001", "bone_scan"), ("P-000001", "biopsy")}
    biopsy = next(r for r in rows if r["assessment"] == "biopsy")
    # progression 2024-09-01 + 42 days = 2024-10-13, no grace; 2029-06-01 - 2024-10-13 = 1692
    assert (biopsy["due_date"], biopsy["window_end"], biopsy["days_overdue"]) == (
        "2024-10-13", "2024-10-13", "1692")


def test_bad_lines_are_dead_lettered_and_good_ones_kept(journey: Journey, tmp_path: Path
                                                        ) -> None:
    cohort = _cohort(tmp_path / "cohort.jsonl")
    bad = b'{"event_type": "ihc.recorded", "truncated\n'
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(bad + cohort.read_bytes() + b'{"event_type": "nope.happened"}\n')
    result = journey("ingest", str(mixed), "--db", "sqlite:///x.db", check=False)
    assert result.returncode == 1
    assert "10 accepted, 0 duplicate, 2 rejected" in result.stdout
    assert "$: not valid JSON" in result.stdout
    assert "event_type: unknown event type" in result.stdout

    listed = _csv(journey("dead-letters", "list", "--db", "sqlite:///x.db").stdout)
    assert [r["origin"] for r in listed] == ["mixed.jsonl:1", "mixed.jsonl:12"]
    journey("dead-letters", "export", "--db", "sqlite:///x.db", "--output", "dl.jsonl")
    assert (tmp_path / "dl.jsonl").read_bytes().splitlines()[0] == bad.strip()


def test_stdin_and_clear_errors(journey: Journey, tmp_path: Path) -> None:
    cohort = _cohort(tmp_path / "cohort.jsonl")
    out = journey("ingest", "-", "--db", "sqlite:///x.db", stdin=cohort.read_text())
    assert "10 accepted" in out.stdout
    missing = journey("ingest", "nope.jsonl", "--db", "sqlite:///x.db", check=False)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    bad_db = journey("export", "patients", "--db", "mysql://x/y", check=False)
    assert bad_db.returncode == 2
    assert "unsupported database" in bad_db.stderr
    bad_date = journey("export", "lines", "--db", "sqlite:///x.db", "--cutoff", "31/12/2024",
                       check=False)
    assert bad_date.returncode == 2
    assert "YYYY-MM-DD" in bad_date.stderr
