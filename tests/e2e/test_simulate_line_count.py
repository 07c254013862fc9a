"""``journey simulate`` and ``journey demo`` say how many lines they wrote, truly.

Issue #19 ("simulate prints a wrong line count"): both printed the number of
distinct well-formed events as the number of lines, leaving out the duplicates and
malformed lines the simulator also writes (29,309 said for a 29,784-line file).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import Journey


def _lines_in(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def test_simulate_reports_the_lines_in_its_file(journey: Journey, tmp_path: Path) -> None:
    result = journey("simulate", "--patients", "300", "--seed", "11", "--output", "c.jsonl")
    said = re.search(r"wrote (\d+) lines for (\d+) patients", result.stderr)
    assert said is not None, result.stderr
    written = _lines_in(tmp_path / "c.jsonl")
    # the cohort has duplicates and malformed lines besides its events, so the two
    # counts can only agree if the line count is the one reported
    assert int(said.group(1)) == written
    assert int(said.group(2)) == 300


def test_demo_reports_the_lines_in_its_cohort(journey: Journey, tmp_path: Path) -> None:
    result = journey("demo", "--patients", "150", "--seed", "5", "--workdir", "demo")
    said = re.search(r"simulated (\d+) input lines for 150 patients", result.stdout)
    assert said is not None, result.stdout
    written = _lines_in(tmp_path / "demo" / "cohort.jsonl")
    assert int(said.group(1)) == written
    ingested = re.search(r"ingested: (\d+) accepted, (\d+) duplicates, (\d+) rejected",
                         result.stdout)
    assert ingested is not None, result.stdout
    # every line read is accepted, a duplicate or rejected (a fresh database: no conflicts)
    assert sum(int(n) for n in ingested.groups()) == written
