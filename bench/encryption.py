"""python -m bench.encryption [--events N]: the cost of encryption at rest, measured.

On one simulated cohort of about N events, each run in a fresh process:

* ``journey ingest`` into an embedded log whose bodies are sealed with each
  patient's data key (the default), beside the same ingest with no encryption;
* a rebuild of every projection from each of the two logs (1 process);
* ``journey replay`` of the built-in projection from each of the two logs.

Target (issue 16): every encrypted rate >= 80 % of the unencrypted one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import Phases, run_here, run_phase
from bench.harness import report as print_report


def _storage(db: str, sealed: bool):  # type: ignore[no-untyped-def]
    from mbcjourney.engine import EmbeddedEngine, EmbeddedStorage
    from mbcjourney.processors.sealing import PlainText

    url = f"sqlite:///{db}"
    return EmbeddedEngine(EmbeddedStorage.open(url, None if sealed else PlainText()))


def ingest(path: str, db: str, sealed: str) -> int:
    from mbcjourney.engine import decode_workers
    from mbcjourney.processors.ingest import numbered_lines

    engine = _storage(db, sealed == "sealed")
    with open(path, "rb") as stream:
        summary = engine.ingest(numbered_lines(stream), origin="bench",
                                received_at=datetime(2026, 7, 1, tzinfo=UTC),
                                workers=decode_workers(1 << 30))
    engine.close()
    return int(summary.read)


def rebuild(db: str, sealed: str) -> int:
    engine = _storage(db, sealed == "sealed")
    engine.rebuild(workers=0)
    count = int(engine.log.count())
    engine.close()
    return count


def replay(db: str, into: str, sealed: str) -> int:
    from mbcjourney.processors.db import make_engine
    from mbcjourney.processors.replay import JourneyTarget, Replay
    from mbcjourney.processors.sealing import PlainText
    from mbcjourney.processors.sources import SqliteLogSource
    from mbcjourney.settings import DEFAULT_CLINICAL

    target = Path(into)
    for stale in target.parent.glob(target.name + "*"):
        stale.unlink()
    engine = make_engine(f"sqlite:///{target}")
    source = SqliteLogSource(Path(db), None if sealed == "sealed" else PlainText())
    result = Replay(engine, source, JourneyTarget(), DEFAULT_CLINICAL).run()
    engine.dispose()
    return int(result.counts.read)


PHASES: Phases = {
    "ingest-plain": ("ingest, no encryption (baseline)", ingest),
    "ingest-sealed": ("ingest, sealed per patient", ingest),
    "rebuild-plain": ("rebuild, no encryption (baseline)", rebuild),
    "rebuild-sealed": ("rebuild, sealed per patient", rebuild),
    "replay-plain": ("replay, no encryption (baseline)", replay),
    "replay-sealed": ("replay, sealed per patient", replay),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.encryption", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench-encryption"))
    args = parser.parse_args()
    folder = args.workdir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    from mbcjourney.simulate import SimulationSettings, write_cohort

    cohort = folder / f"cohort-{args.events}-{args.seed}.jsonl"
    if not cohort.exists():
        start = time.perf_counter()
        with (folder / "probe.jsonl").open("wb") as out:
            probe = write_cohort(SimulationSettings(patients=500, seed=args.seed), out)
        patients = max(1, round(args.events * 500 / probe.events))
        with cohort.open("wb") as out:
            write_cohort(SimulationSettings(patients=patients, seed=args.seed), out)
        print(f"simulated {patients:,} patients in {time.perf_counter() - start:.1f} s")
    for stale in [*folder.glob("plain.db*"), *folder.glob("sealed.db*")]:
        stale.unlink()
    plain, sealed = str(folder / "plain.db"), str(folder / "sealed.db")
    def args_of(phase: str, db: str) -> list[str]:
        return {"ingest": [str(cohort), db], "rebuild": [db],
                "replay": [db, db + ".replayed"]}[phase]

    rows = []
    for phase in ("ingest", "rebuild", "replay"):
        base = run_phase("bench.encryption", f"{phase}-plain", *args_of(phase, plain), "plain")
        measured = run_phase("bench.encryption", f"{phase}-sealed", *args_of(phase, sealed),
                             "sealed")
        rows.append((measured, base))
    print_report(f"Encryption at rest (AES-256-GCM per patient), {os.cpu_count()} CPUs", rows,
                 {m.name: ">= 80 % of baseline" for m, _ in rows})


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in PHASES:
        run_here(PHASES, sys.argv[1], sys.argv[2:])
    else:
        main()
