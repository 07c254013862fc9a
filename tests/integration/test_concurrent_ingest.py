"""Issue 19 item 1: concurrent ``journey ingest`` into one database count every line once.

Two real processes ingest overlapping files (the same events, the same ids with other
content, new events, junk) into one SQLite file or one PostgreSQL database.  The
test holds the log's write lock until both have validated their file and are about
to append, so their appends meet head-on every run; then it lets them go.  Across
both runs: stored events = accepted, and every line read is stored, a duplicate, a
conflict or rejected, each exactly once and dead-lettered once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from mbcjourney.processors.db import make_engine
from tests.support.builders import PatientBuilder

PATIENTS = 60
CONFLICT = "event_id: already stored with different content"


def _files(tmp_path: Path) -> tuple[Path, Path, int]:
    """Two files over one cohort; returns them and the number of ids B reuses with new content.

    B holds every third event of A unchanged (a duplicate), every third with the same
    event_id and another source reference (a conflict), the rest under new ids, and
    junk lines; A holds junk lines too.
    """
    a_lines: list[str] = []
    b_lines: list[str] = []
    conflicts = 0
    for n in range(PATIENTS):
        p = PatientBuilder(f"P-{n:06d}", recorded="2025-06-01T00:00:00Z")
        events = [
            p.raw("patient.included", "2025-01-06", {
                "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
                "presentation": "de_novo", "metastatic_sites": ["liver"]}),
            *(p.raw("lab.recorded", f"2025-02-{day:02d}",
                    {"test": "hemoglobin", "value": 12 + day / 10, "unit": "g/dL"})
              for day in range(1, 28)),
        ]
        for i, event in enumerate(events):
            a_lines.append(json.dumps(event))
            if i % 3 == 1:
                event = {**event, "source": {"system": "test", "reference": f"other-{i}"}}
                conflicts += 1
            elif i % 3 == 2:
                event = {**event, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                             f"b/{n}/{i}"))}
            b_lines.append(json.dumps(event))
        a_lines.append('{"not": "an event"}')
        b_lines.append("not json at all")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(a_lines) + "\n")
    b.write_text("\n".join(b_lines) + "\n")
    return a, b, conflicts


@contextmanager
def _write_lock(url: str) -> Iterator[None]:
    """Hold the event log's write lock (as a writer would) until the block ends."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.begin()
                conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def _wait_for(stream: IO[bytes], marker: bytes) -> None:
    """Read ``stream`` until a line holds ``marker`` (the process reached that point)."""
    for line in stream:
        if marker in line:
            return
    raise AssertionError(f"the process ended before {marker!r}")


def _summary(stdout: str) -> tuple[int, int, int, int, int]:
    """(read, accepted, duplicates, rejected, conflicts) from an ingest's summary."""
    found = re.search(r"read (\d+) lines: (\d+) accepted, (\d+) duplicate, (\d+) rejected",
                      stdout)
    assert found, stdout
    conflicts = re.search(rf"rejected\s+(\d+)\s+{re.escape(CONFLICT)}", stdout)
    read, accepted, duplicates, rejected = (int(g) for g in found.groups())
    return read, accepted, duplicates, rejected, int(conflicts.group(1)) if conflicts else 0


def _journey(*args: str) -> list[str]:
    return [sys.executable, "-m", "mbcjourney", "--quiet", *args]


def test_issue19_item1_concurrent_ingests_count_every_line_exactly_once(
        db_url: str, tmp_path: Path) -> None:
    a, b, reused = _files(tmp_path)
    # The tables exist (and hold an event) before the writers start.
    seed = PatientBuilder("P-999999", recorded="2025-06-01T00:00:00Z")
    (tmp_path / "seed.jsonl").write_text(json.dumps(seed.raw("patient.included", "2025-01-06", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["bone"]})) + "\n")
    subprocess.run(_journey("ingest", str(tmp_path / "seed.jsonl"), "--db", db_url),
                   check=True, capture_output=True, timeout=300)

    with _write_lock(db_url):
        runs = [subprocess.Popen(_journey("--log-level", "debug", "ingest", str(f),
                                          "--db", db_url),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
                for f in (a, b)]
        for run in runs:
            assert run.stderr is not None
            _wait_for(run.stderr, b'"ingest.appending"')
    results = [run.communicate(timeout=600) for run in runs]
    for run, (_, stderr) in zip(runs, results, strict=True):
        assert run.returncode == 1, stderr.decode()[-3000:]  # junk lines were rejected
        assert b"Traceback" not in stderr
    summaries = [_summary(out.decode()) for out, _ in results]

    lines_read = sum(s[0] for s in summaries)
    accepted = sum(s[1] for s in summaries)
    duplicates = sum(s[2] for s in summaries)
    rejected = sum(s[3] for s in summaries)
    conflicts = sum(s[4] for s in summaries)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() - 1
            letters = conn.execute(sa.text("SELECT count(*) FROM dead_letters")).scalar_one()
            conflict_letters = conn.execute(sa.text(
                "SELECT count(*) FROM dead_letters WHERE reason = :r"), {"r": CONFLICT}
            ).scalar_one()
    finally:
        engine.dispose()

    assert lines_read == 2 * PATIENTS * 29
    assert accepted == stored == PATIENTS * (28 + 9)  # A's events + B's new ids
    assert stored + duplicates + rejected == lines_read
    # whichever file won, the other's reused ids are conflicts:
    assert conflicts == reused == conflict_letters == PATIENTS * 9
    assert letters == rejected == conflicts + 2 * PATIENTS
