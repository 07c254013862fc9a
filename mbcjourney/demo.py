"""``journey demo``: simulate a cohort, ingest it into an embedded database, summarise.

No servers: SQLite files in a working folder.  The printed summary is what a
study coordinator sees first: patients per group and status, current lines,
overdue assessments, and what was rejected and why.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from mbcjourney.bootstrap import open_engine
from mbcjourney.engine import decode_workers
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.settings import ClinicalSettings
from mbcjourney.simulate import SimulationSettings, write_cohort

ProgressFactory = Callable[[int | None, str, str], AbstractContextManager[Callable[[int], None]]]

GROUPS = ("1", "2", "3", "unknown")
STATUSES = ("not_started", "on_treatment", "between_lines", "deceased", "lost_to_followup",
            "withdrawn")


def _table(title: str, header: list[str], rows: list[list[str]]) -> Iterator[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    yield title
    yield "  " + "  ".join(h.rjust(w) if i else h.ljust(w)
                           for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    for row in rows:
        yield "  " + "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True)))
    yield ""


def run_demo(workdir: Path, *, patients: int, seed: int, settings: ClinicalSettings,
             progress: ProgressFactory, echo: Callable[[str], None]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    cohort = workdir / "cohort.jsonl"
    db_path = workdir / "journey.db"
    for stale in workdir.glob("journey.db*"):
        stale.unlink()
    shutil.rmtree(workdir / "exports", ignore_errors=True)

    sim = SimulationSettings(patients=patients, seed=seed)
    with cohort.open("wb") as out:
        simulated = write_cohort(sim, out)
    echo(f"simulated {simulated.lines} input lines for {simulated.patients} patients "
         f"-> {cohort}")

    with open_engine(f"sqlite:///{db_path}", settings, create=True) as engine:
        with cohort.open("rb") as stream, progress(simulated.lines, "ev", "ingest") as advance:
            summary = engine.ingest(numbered_lines(stream), origin=cohort.name,
                                    received_at=datetime.now(UTC), on_batch=advance,
                                    workers=decode_workers(simulated.lines))
        with progress(len(summary.patients), "pt", "project") as advance:
            engine.catch_up(on_patients=advance)
        patient_rows = engine.patient_rows()
        line_rows = engine.line_rows()
        overdue = engine.overdue(sim.data_cutoff)
        findings = engine.finding_rows()

    echo(f"ingested: {summary.accepted} accepted, {summary.duplicates} duplicates, "
         f"{summary.rejected_total} rejected (dead-lettered with their original bytes)")
    echo("")
    by = Counter((p.group, p.status) for p in patient_rows)
    rows = [[f"group {g}" if g != "unknown" else "unknown", *(str(by[(g, s)]) for s in STATUSES),
             str(sum(by[(g, s)] for s in STATUSES))] for g in GROUPS]
    for line in _table("Patients by phenotype group and status", ["", *STATUSES, "total"], rows):
        echo(line)

    current = Counter(p.current_line for p in patient_rows if p.current_line)
    regimens = Counter(p.current_regimen for p in patient_rows if p.current_regimen)
    rows = [[f"line {n}", str(c)] for n, c in sorted(current.items())]
    for line in _table("Patients on treatment by current line", ["", "patients"], rows):
        echo(line)
    rows = [[r, str(c)] for r, c in regimens.most_common(8)]
    for line in _table("Most common current regimens", ["regimen", "patients"], rows):
        echo(line)

    concordance = Counter(p.first_line_concordant for p in patient_rows)
    echo(f"First-line concordance with the protocol: {concordance['true']} concordant, "
         f"{concordance['false']} not concordant, {concordance['unknown']} unknown")
    progressed = sum(1 for r in line_rows if r.line_number == 1 and r.ttp_event)
    echo(f"Lines of therapy: {len(line_rows)}; first-line progressions: {progressed}")
    late = Counter(d.assessment.value for d, _ in overdue)
    echo(f"Overdue as of {sim.data_cutoff}: " + (", ".join(
        f"{n} {a}" for a, n in sorted(late.items())) or "none"))
    kinds = Counter(f.finding.value for f in findings)
    echo("Data-quality findings: " + (", ".join(f"{n} {k}" for k, n in kinds.most_common()) or
                                      "none"))
    echo("")
    rows = [[reason, str(n)] for reason, n in summary.by_reason()]
    for line in _table("Rejected input by reason", ["reason", "lines"], rows or [["none", "0"]]):
        echo(line)
    echo(f"Database: sqlite:///{db_path}")
    echo(f"Next: journey export lines --db sqlite:///{db_path}")
    return db_path
