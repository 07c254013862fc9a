"""`journey report` as a user runs it, on a small simulated cohort."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import Journey

pytestmark = pytest.mark.slow  # each test spawns journey processes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = (
    'id="cohort"', "Patients by group and status",
    "First-line concordance with the protocol by group", "Receptor conversion by group",
    'id="pfs"', "First-line median PFS by group",
    'id="validation"', "Validation against published trials", "CLEOPATRA (N=808)",
    'id="swimmer"', 'id="quality"', "Overdue assessments", "Data-quality findings by kind",
)


def test_report_writes_one_self_contained_html_and_the_pictures_beside_it(
        journey: Journey, tmp_path: Path) -> None:
    journey("simulate", "--patients", "150", "--seed", "5", "--output", "cohort.jsonl")
    journey("ingest", "cohort.jsonl", "--db", "sqlite:///x.db", check=False)  # some lines are bad
    out = journey("report", "--db", "sqlite:///x.db", "--output", "out/report.html",
                  "--panel-size", "25", "--as-of", "2026-06-30")
    assert "pictures in report_files/" in out.stderr

    page = (tmp_path / "out" / "report.html").read_text("utf-8")
    for section in SECTIONS:
        assert section in page, section
    assert "src=\"http" not in page
    assert "<script" not in page
    assert "<dt>Overdue as of</dt><dd>2026-06-30</dd>" in page
    # Group 1 holds about 70 % of the 150 patients: its panel is a sample of 25.
    assert re.search(r"a random sample of 25 of the \d+ patients of this group", page)

    embedded = [base64.b64decode(data) for data in
                re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
    files = sorted((tmp_path / "out" / "report_files").glob("*.png"))
    names = [f.name for f in files]
    assert "km_first_line_pfs.png" in names
    assert "swimmer_group_1.png" in names
    assert len(embedded) == len(files) >= 4  # KM + one swimmer panel per group present
    assert all(image.startswith(PNG_SIGNATURE) for image in embedded)
    assert sorted(embedded) == sorted(f.read_bytes() for f in files)


def test_report_honours_the_cutoff(journey: Journey, tmp_path: Path) -> None:
    journey("simulate", "--patients", "60", "--seed", "2", "--output", "cohort.jsonl")
    journey("ingest", "cohort.jsonl", "--db", "sqlite:///x.db", check=False)
    journey("report", "--db", "sqlite:///x.db", "--output", "r.html", "--cutoff", "2023-12-31")
    page = (tmp_path / "r.html").read_text("utf-8")
    assert "<dt>Data cut-off</dt><dd>2023-12-31</dd>" in page
    assert "<dt>Overdue as of</dt><dd>2023-12-" in page  # the latest fact date within the view
