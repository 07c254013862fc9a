"""Issue 19: hostile command lines get one clear ``error:`` line, never a traceback or a loss."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import Journey
from tests.support.builders import PatientBuilder, to_jsonl


def _small_cohort(path: Path) -> Path:
    a = PatientBuilder("P-000001", recorded="2024-01-25T00:00:00Z")
    path.write_bytes(to_jsonl([
        a.included("2024-01-10", sites=("bone",)), a.ihc("2024-01-05", her2="3+"),
        a.line("2024-01-20", "L1", "Taxotere", "Herceptin", "Perjeta")]))
    return path


def _refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_issue19_item8_an_in_memory_database_is_refused_by_every_command(
        journey: Journey, tmp_path: Path, url: str) -> None:
    cohort = _small_cohort(tmp_path / "c.jsonl")
    for args in (("ingest", str(cohort)), ("export", "patients"),
                 ("overdue", "--as-of", "2024-06-01")):
        result = journey(*args, "--db", url, check=False)
        _refused(result, "error: --db", "in-memory")
        assert "accepted" not in result.stdout


def test_issue19_item15_a_file_that_is_not_sqlite_is_one_error_line(
        journey: Journey, tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")
    for args in (("export", "patients"), ("ingest", str(_small_cohort(tmp_path / "c.jsonl")))):
        result = journey(*args, "--db", "sqlite:///notes.db", check=False)
        _refused(result, "error: --db sqlite:///notes.db: the file is not a SQLite database")
    assert (tmp_path / "notes.db").read_text() == "not a database\n"


@pytest.mark.parametrize("args", [
    ("export", "patients", "--known-at", "9999-12-31"),
    ("export", "lines", "--known-at", "9999-12-31T23:00:00-05:00"),
    ("overdue", "--as-of", "9999-12-31"),
    ("alerts", "--as-of", "9999-12-31"),
    ("export", "patients", "--cutoff", "0001-01-01"),
])
def test_issue19_item15_dates_out_of_range_are_refused_with_the_range(
        journey: Journey, tmp_path: Path, args: tuple[str, ...]) -> None:
    journey("ingest", str(_small_cohort(tmp_path / "c.jsonl")), "--db", "sqlite:///x.db")
    result = journey(*args, "--db", "sqlite:///x.db", check=False)
    _refused(result, "out of range: dates from 1900-01-01 to 2999-12-31")


def test_issue19_item15_settings_out_of_bounds_name_the_field(
        journey: Journey, tmp_path: Path) -> None:
    journey("ingest", str(_small_cohort(tmp_path / "c.jsonl")), "--db", "sqlite:///x.db")
    (tmp_path / "study.toml").write_text("[clinical]\ngrace_days = 100000000\n")
    result = journey("--settings", "study.toml", "overdue", "--as-of", "2024-06-01",
                     "--db", "sqlite:///x.db", check=False)
    _refused(result, "error: settings file study.toml: grace_days: "
                     "Input should be less than or equal to 3650")


def test_issue19_item15_a_snooze_by_over_100_characters_is_one_error_line(
        journey: Journey, tmp_path: Path) -> None:
    journey("ingest", str(_small_cohort(tmp_path / "c.jsonl")), "--db", "sqlite:///x.db")
    listed = journey("alerts", "--as-of", "2025-06-01", "--db", "sqlite:///x.db").stdout
    alert_id = listed.splitlines()[1].split(",")[0]
    result = journey("alerts", "snooze", alert_id, "--until", "2025-07-01", "--by", "x" * 101,
                     "--db", "sqlite:///x.db", check=False)
    _refused(result, "error: by: String should have at most 100 characters")
    assert "x" * 20 not in result.stderr  # the value given is not echoed


FORMULA = '=HYPERLINK("http://example.invalid/x","click")'


def test_issue19_item17_csv_exports_neutralise_formulas_and_keep_rows_whole(
        journey: Journey, tmp_path: Path) -> None:
    """An unknown drug named like a formula reaches ``regimen``, ``current_regimen`` and
    findings as an inert, whole cell; a drug name holding a line feed or a carriage
    return is refused at admission (it would split rows and regimen strings)."""
    a = PatientBuilder("P-000001", recorded="2024-01-25T00:00:00Z")
    cohort = tmp_path / "c.jsonl"
    cohort.write_bytes(to_jsonl([
        a.included("2024-01-10"), a.ihc("2024-01-05", her2="3+"),
        a.line("2024-01-20", "L1", FORMULA, "docetaxel")]))
    journey("ingest", str(cohort), "--db", "sqlite:///x.db")
    broken = a.raw("line.started", "2024-01-21", {"line_ref": "L2",
                                                  "drugs": ["two\nlines\rdrug"]})
    (tmp_path / "broken.jsonl").write_bytes(orjson.dumps(broken) + b"\n")
    refused = journey("ingest", "broken.jsonl", "--db", "sqlite:///x.db", check=False)
    assert refused.returncode == 1
    assert "payload.drugs.0" in refused.stdout
    cells: list[str] = []
    for what in ("patients", "lines", "findings"):
        # To a file: the fixture's text-mode stdout would turn a carriage return into "\n".
        journey("export", what, "--db", "sqlite:///x.db", "--output", f"{what}.csv")
        with (tmp_path / f"{what}.csv").open(newline="") as f:
            rows = list(csv.reader(f))
        assert len({len(r) for r in rows}) == 1, rows  # no row split by the line breaks
        cells += [c for r in rows[1:] for c in r]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))], cells
    regimens = [c for c in cells if "HYPERLINK" in c]
    assert regimens, cells  # regimen, current_regimen (and any finding naming it)
    assert all(c.startswith("'") for c in regimens if c.lstrip("'").startswith("="))


def test_issue19_item2_a_named_pipe_is_read_once_and_ingested(tmp_path: Path) -> None:
    """``journey ingest FIFO`` (or ``<(cat f)``): counting lines first drained the pipe."""
    cohort = _small_cohort(tmp_path / "c.jsonl").read_bytes()
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    run = subprocess.Popen(
        [sys.executable, "-m", "mbcjourney", "--quiet", "ingest", str(fifo),
         "--db", "sqlite:///x.db"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with fifo.open("wb") as pipe:  # blocks until journey opens it: no sleep needed
        pipe.write(cohort)
    out, err = run.communicate(timeout=120)  # before the fix: 0 lines read, or a hang
    assert run.returncode == 0, err[-3000:]
    assert "read 3 lines: 3 accepted, 0 duplicate, 0 rejected" in out
