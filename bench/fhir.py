"""python -m bench.fhir [--resources N]: ``journey fhir import`` resources/s on a Bulk Data
NDJSON export, beside reading and JSON-parsing the same files, in the same run.

The export is made once and cached under ``.cache/bench/fhir/`` (keyed by size and
seed): a simulated cohort (``journey simulate``) ingested into SQLite, then
``journey fhir export --ndjson`` (about 61 resources per patient).  Phases, each in
a fresh process (its own peak memory):

* read + JSON-parse every NDJSON line (the baseline);
* read + parse + validate every resource with its ``fhir.resources`` R4B model;
* the whole import into a fresh SQLite database (validate, map, admit, project).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.harness import ROOT, Phases, report, run_here, run_phase

RESOURCES_PER_PATIENT = 61  # of a simulated cohort's export, measured


def read_baseline(folder: str) -> int:
    """Read every NDJSON file and parse each line with orjson; nothing else."""
    count = 0
    for path in sorted(Path(folder).glob("*.ndjson")):
        with path.open("rb") as stream:
            for line in stream:
                if line.strip():
                    orjson.loads(line)
                    count += 1
    return count


def validate(folder: str) -> int:
    """Read, parse and validate with the R4B models (``journey fhir import``'s first step)."""
    from mbcjourney.interop.fhir_import import read_path

    read = read_path(Path(folder))
    return len(read.resources) + len(read.unmapped)


def fhir_import(folder: str, db: str) -> int:
    """``journey fhir import FOLDER --db`` into a fresh database."""
    from mbcjourney.engine import EmbeddedEngine
    from mbcjourney.interop.fhir_import import import_into

    Path(db).unlink(missing_ok=True)
    engine = EmbeddedEngine(f"sqlite:///{db}")
    prepared, summary = import_into(engine, Path(folder), received_at=datetime(2030, 1, 1,
                                                                                tzinfo=UTC))
    engine.close()
    if summary.rejected_total or prepared.unmapped:
        raise SystemExit(f"import rejected {summary.rejected_total}, "
                         f"unmapped {len(prepared.unmapped)}")
    return len(prepared.read.resources)


PHASES: Phases = {
    "read": ("read + JSON-parse NDJSON (baseline)", read_baseline),
    "validate": ("read + parse + R4B validation", validate),
    "import": ("journey fhir import into SQLite", fhir_import),
}


def _export(resources: int, seed: int) -> Path:
    from mbcjourney.engine import EmbeddedEngine
    from mbcjourney.interop.fhir_export import patient_bundle, write_bundles
    from mbcjourney.processors.ingest import numbered_lines
    from mbcjourney.projections import build_history
    from mbcjourney.simulate import SimulationSettings, write_cohort

    cache = ROOT / ".cache" / "bench" / "fhir" / f"{resources}-{seed}"
    folder = cache / "export"
    if (folder / "manifest.json").exists():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    cohort, db = cache / "cohort.jsonl", cache / "source.db"
    patients = max(1, resources // RESOURCES_PER_PATIENT)
    with cohort.open("wb") as out:
        write_cohort(SimulationSettings(patients=patients, seed=seed), out)
    db.unlink(missing_ok=True)
    engine = EmbeddedEngine(f"sqlite:///{db}")
    with cohort.open("rb") as stream:
        engine.ingest(numbered_lines(stream), origin="bench",
                      received_at=datetime(2030, 1, 1, tzinfo=UTC))
    bundles = (patient_bundle(pid, build_history(pid, events).events)
               for pid, events in engine.log.histories())
    write_bundles((b for b in bundles if len(b["entry"]) > 1), folder, ndjson=True)
    engine.close()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    folder = _export(args.resources, args.seed)
    db = folder.parent / "import.db"
    read = run_phase("bench.fhir", "read", str(folder))
    checked = run_phase("bench.fhir", "validate", str(folder))
    imported = run_phase("bench.fhir", "import", str(folder), str(db))
    report(f"journey fhir import: {read.events:,} resources ({folder})",
           [(checked, read), (imported, read)], {})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in PHASES:
        run_here(PHASES, sys.argv[1], sys.argv[2:])
    else:
        main()
