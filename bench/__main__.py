"""python -m bench [--events N] [--seed S] [--workdir DIR]: ingest and rebuild benchmarks.

On a simulated cohort of about N events: ingest throughput into SQLite with full
validation, beside reading and JSON-decoding the same file; projection rebuild
throughput, beside reading and JSON-decoding the same stored events.  Each phase
runs in a fresh process and reports its own peak memory.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.harness import report as print_report
from bench.harness import run_phase
from mbcjourney.simulate import SimulationSettings, write_cohort

EVENTS_PER_PATIENT_GUESS = 20


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    cohort = args.workdir / f"cohort-{args.events}-{args.seed}.jsonl"
    if not cohort.exists():
        # Calibrate patients per event on a small cohort, then write the real one.
        start = time.perf_counter()
        with (args.workdir / "probe.jsonl").open("wb") as out:
            probe = write_cohort(SimulationSettings(patients=500, seed=args.seed), out)
        patients = max(1, round(args.events * 500 / probe.events))
        with cohort.open("wb") as out:
            summary = write_cohort(SimulationSettings(patients=patients, seed=args.seed), out)
        print(f"simulated {summary.lines:,} lines for {patients:,} patients "
              f"in {time.perf_counter() - start:.1f} s -> {cohort}")
    db = args.workdir / "bench.db"
    for stale in args.workdir.glob("bench.db*"):
        stale.unlink()

    read_file = run_phase("bench.phases", "read-file", str(cohort))
    ingest = run_phase("bench.phases", "ingest", str(cohort), str(db))
    read_log = run_phase("bench.phases", "read-log", str(db))
    rebuild = run_phase("bench.phases", "rebuild", str(db), "0")
    parallel = run_phase("bench.phases", "rebuild-parallel", str(db), str(os.cpu_count() or 1))
    print_report(
        f"Embedded engine (SQLite), {os.cpu_count()} CPUs",
        [(ingest, read_file), (rebuild, read_log), (parallel, read_log)],
        {ingest.name: ">= 50,000 events/s",
         rebuild.name: ">= 100,000 events/s and >= 25 % of baseline",
         parallel.name: ">= 100,000 events/s and >= 25 % of baseline"},
    )
    print("ingest validates in one lower-priority process per CPU while the main process "
          "writes; peak MiB is the main process's.")


if __name__ == "__main__":
    main()
