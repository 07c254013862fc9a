"""python -m bench.service: the HTTP service (``journey serve``) under wrk, beside baselines.

Load comes from wrk (C, driven by the Lua scripts beside this module; installed
from Debian by ``infra/wrk/ensure.sh`` when missing), so the load generator is
not what is measured.  ``journey serve`` runs on the embedded SQLite engine with
``--rate-limit none``; on a 2-core machine wrk shares the CPUs with it.

* **ingest**: a simulated cohort (``--ingest-patients``) split into NDJSON bodies
  of ``--batch`` lines, each posted once to ``POST /v1/events`` at each of
  ``--connections``, every run on a fresh SQLite database; events/s is lines
  posted over the time from the first request to the last answer.  Baseline,
  same run: ``journey ingest``'s ingest of the same file into a fresh database
  (the call the command makes, in a fresh process, its projection step left out:
  the service projects on the first read).  Afterwards the events in each
  database are counted: they must equal the answers' accepted items and the
  baseline's stored events.
* **read**: ``GET /v1/patients/{id}`` of random existing patients of a
  ``--store-patients`` store (built once by ``journey simulate`` + ``journey
  ingest``, cached in the work directory, copied afresh for each run since the
  service appends audit records), at ``--read-connections``, for ``--seconds``
  after a warm-up; baseline, same run and server: ``GET /livez``, which returns a
  constant.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import Measurement, run_phase
from bench.service_procs import ROOT, create_token, ensure_wrk, serve, wrk_get, wrk_post_all
from mbcjourney.simulate import SimulationSettings, write_cohort

INGEST_TARGET = 0.50  # of the baseline's events/s
READ_RATIO_TARGET = 0.40  # of /livez's requests/s
READ_P99_TARGET_MS = 50.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("ingest", "read"), default=None)
    parser.add_argument("--ingest-patients", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000, help="NDJSON lines per body")
    parser.add_argument("--connections", default="1,4,8", help="ingest: wrk -c, each in turn")
    parser.add_argument("--store-patients", type=int, default=20_000)
    parser.add_argument("--read-connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0, help="read: each measured run")
    parser.add_argument("--ingest-workers", default="1,2",
                        help="ingest: journey serve --workers, each in turn")
    parser.add_argument("--workers", type=int, default=1, help="read: journey serve --workers")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench/service"))
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    wrk = ensure_wrk()
    print(f"{os.cpu_count()} CPUs shared by wrk ({args.wrk_threads} thread) and journey "
          "serve (SQLite, --rate-limit none)")
    if args.only in (None, "ingest"):
        ingest_bench(wrk, workdir, args)
    if args.only in (None, "read"):
        read_bench(wrk, workdir, args)


# --- ingest ----------------------------------------------------------------------------


def ingest_bench(wrk: str, workdir: Path, args: argparse.Namespace) -> None:
    cohort = _cohort(workdir, args.ingest_patients, args.seed)
    bodies, count, lines = _bodies(workdir, cohort, args.batch)
    print(f"\ningest: {lines:,} lines of {args.ingest_patients:,} patients in {count} NDJSON "
          f"bodies of {args.batch:,} lines")
    base_db = _fresh(workdir / "ingest-baseline.db")
    baseline = run_phase("bench.phases", "ingest", str(cohort), str(base_db))
    stored_base = _count_events(base_db)
    rows: list[tuple[Measurement, str, str]] = []
    runs = [(int(w), int(c)) for w in args.ingest_workers.split(",")
            for c in args.connections.split(",")]
    for workers, connections in runs:
        db = _fresh(workdir / f"ingest-http-w{workers}-c{connections}.db")
        token = create_token(db, "bench-ingest", "events:write")
        limit_s = max(120.0, 20 * lines / max(baseline.rate, 1.0))
        with serve(db, workers) as server:
            got = wrk_post_all(wrk, server.url, bodies, count, token, connections=connections,
                               threads=args.wrk_threads, limit_s=limit_s)
        stored = _count_events(db)
        seconds = got["finished"] - got["started"]
        posted = got["accepted"] + got["duplicates"] + got["rejected"]
        check = _ingest_check(got, count, lines, posted, stored, stored_base)
        rows.append((Measurement(f"POST /v1/events, -w {workers} -c {connections}", posted,
                                 seconds, server.peak_rss_mib), check,
                     f"{got['accepted']:,} accepted, {got['rejected']:,} rejected"))
    # The baseline again after the service's runs: the faster of the two is the one
    # compared against (on a shared machine, load varies over a run).
    again = run_phase("bench.phases", "ingest", str(cohort), str(_fresh(base_db)))
    # For reading the figures: the same ingest with no decode processes, as a
    # POST's items are validated (in the request's thread, then written).
    serial = run_phase("bench.phases", "ingest-serial", str(cohort), str(_fresh(base_db)), "0")
    _ingest_table(baseline, again, stored_base, rows)
    print(f"{'ingest, validated in the writer':<36}{serial.events:>10,}{serial.seconds:>9.2f}"
          f"{serial.rate:>11,.0f}{serial.peak_rss_mib:>10.0f}  (no decode processes, as the "
          "service validates a body's items: for reading the figures, not a target)")


def _ingest_check(got: dict[str, Any], count: int, lines: int, posted: int, stored: int,
                  stored_base: int) -> str:
    """'ok' (every body and item answered, the accepted ones stored), or what differs.

    The number stored may differ a little from the baseline's: bodies posted
    concurrently arrive out of the file's order, and a few admission rules depend
    on what came before (an event before the birth year an inclusion gives).
    """
    problems = []
    if got["bodies"] != count or got["failures"]:
        problems.append(f"{got['bodies']}/{count} bodies answered, {got['failures']} not 200")
    if posted != lines:
        problems.append(f"{posted:,} items answered of {lines:,}")
    if stored != got["accepted"]:
        problems.append(f"{stored:,} events stored, {got['accepted']:,} accepted")
    order = f" ({stored - stored_base:+,} vs the file in order)" if stored != stored_base else ""
    return ("ok" if not problems else "; ".join(problems)) + order


def _ingest_table(before: Measurement, after: Measurement, stored_base: int,
                  rows: list[tuple[Measurement, str, str]]) -> None:
    print(f"{'measure':<36}{'events':>10}{'seconds':>9}{'events/s':>11}{'peak MiB':>10}"
          f"{'vs baseline':>13}  {'target':<14}  check (events in the database)")
    for label, m in (("before", before), ("after", after)):
        print(f"{'journey ingest (baseline, ' + label + ')':<36}{m.events:>10,}"
              f"{m.seconds:>9.2f}{m.rate:>11,.0f}{m.peak_rss_mib:>10.0f}{'':>13}  {'':<14}  "
              f"{stored_base:,} stored")
    baseline = max(before, after, key=lambda m: m.rate)
    for m, check, answers in rows:
        ratio = m.rate / baseline.rate
        met = "met" if ratio >= INGEST_TARGET else "MISSED"
        print(f"{m.name:<36}{m.events:>10,}{m.seconds:>9.2f}{m.rate:>11,.0f}"
              f"{m.peak_rss_mib:>10.0f}{ratio:>13.0%}  {'>= 50 % ' + met:<14}  "
              f"{check} ({answers})")
    print("baseline: the ingest of `journey ingest` (decode processes, one per CPU, beside "
          "the writer), projection left out, run before and after the service's runs; "
          "the faster is compared against.  -w: journey serve --workers; -c: wrk's "
          "connections; peak MiB: the process (the server: the largest of its processes).")


def _cohort(workdir: Path, patients: int, seed: int) -> Path:
    cohort = workdir / f"cohort-{patients}-{seed}.jsonl"
    if not cohort.exists():
        partial = cohort.with_suffix(".partial")
        with partial.open("wb") as out:
            write_cohort(SimulationSettings(patients=patients, seed=seed), out)
        partial.rename(cohort)
    return cohort


def _bodies(workdir: Path, cohort: Path, batch: int) -> tuple[Path, int, int]:
    """(directory, bodies, lines): the cohort's lines cut into bodies of ``batch`` lines."""
    folder = workdir / f"{cohort.stem}-bodies-{batch}"
    marker = folder / "complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        count = lines = 0
        chunk: list[bytes] = []
        with cohort.open("rb") as stream:
            for line in stream:
                if not line.strip():
                    continue
                chunk.append(line if line.endswith(b"\n") else line + b"\n")
                if len(chunk) == batch:
                    count, lines = count + 1, lines + len(chunk)
                    (folder / f"body-{count}.ndjson").write_bytes(b"".join(chunk))
                    chunk = []
        if chunk:
            count, lines = count + 1, lines + len(chunk)
            (folder / f"body-{count}.ndjson").write_bytes(b"".join(chunk))
        marker.write_text(f"{count} {lines}\n")
    count, lines = (int(n) for n in marker.read_text().split())
    return folder, count, lines


# --- read ------------------------------------------------------------------------------


def read_bench(wrk: str, workdir: Path, args: argparse.Namespace) -> None:
    store = _store(workdir, args.store_patients, args.seed)
    db = workdir / "read.db"
    _fresh(db)
    shutil.copyfile(store, db)  # the service appends audit records: the cache stays as built
    ids = workdir / "read-ids.txt"
    patient_ids = _patient_ids(db)
    ids.write_text("".join(f"{p}\n" for p in patient_ids))
    token = create_token(db, "bench-read", "patients:read")
    c, t = args.read_connections, args.wrk_threads
    print(f"\nread: a store of {len(patient_ids):,} patients, journey serve --workers "
          f"{args.workers}, wrk -c {c}, {args.seconds:g} s each after a warm-up")
    with serve(db, args.workers) as server:
        for script_args in (["/livez"], [str(ids), token]):  # warm-up: caches, first sync
            wrk_get(wrk, server.url, script_args, connections=c, threads=t, seconds=3)
        livez = wrk_get(wrk, server.url, ["/livez"], connections=c, threads=t,
                        seconds=args.seconds)
        patient = wrk_get(wrk, server.url, [str(ids), token], connections=c, threads=t,
                          seconds=args.seconds)
    _read_table(livez, patient)


def _read_table(livez: dict[str, Any], patient: dict[str, Any]) -> None:
    print(f"{'measure':<36}{'requests':>10}{'seconds':>9}{'req/s':>9}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'vs baseline':>13}  {'target':<32}  errors")
    base_rate = livez["requests"] / livez["seconds"]
    for name, got in (("GET /livez (baseline)", livez), ("GET /v1/patients/{id}", patient)):
        rate = got["requests"] / got["seconds"]
        ratio = target = ""
        if got is patient:
            ratio = f"{rate / base_rate:.0%}"
            met = rate / base_rate >= READ_RATIO_TARGET and got["p99_ms"] < READ_P99_TARGET_MS
            target = f"p99 < 50 ms, >= 40 % {'met' if met else 'MISSED'}"
        print(f"{name:<36}{got['requests']:>10,}{got['seconds']:>9.2f}{rate:>9,.0f}"
              f"{got['p50_ms']:>9.2f}{got['p99_ms']:>9.2f}{ratio:>13}  {target:<32}  "
              f"{got['non_2xx']} non-2xx, {got['socket_errors']} socket")


def _store(workdir: Path, patients: int, seed: int) -> Path:
    """The projected store of a simulated cohort: built once by the CLI, then cached."""
    store = workdir / f"store-{patients}-{seed}.db"
    if store.exists():
        return store
    cohort = workdir / f"store-{patients}-{seed}.jsonl"
    building = _fresh(workdir / f"store-{patients}-{seed}.building.db")
    journey = [sys.executable, "-m", "mbcjourney", "--quiet"]
    print(f"building the {patients:,}-patient store (once; cached as {store.name})")
    subprocess.run([*journey, "simulate", "--patients", str(patients), "--seed", str(seed),
                    "-o", str(cohort)], cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
    done = subprocess.run([*journey, "ingest", str(cohort), "--db", f"sqlite:///{building}"],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode not in (0, 1):  # 1: the simulator's deliberate bad lines
        raise SystemExit(f"journey ingest exited {done.returncode}")
    cohort.unlink()
    building.rename(store)  # the engine closed: its WAL is checkpointed into the file
    return store


def _patient_ids(db: Path) -> list[str]:
    """Patients the route answers for: a patient row and a centre row."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT p.patient_id FROM patients p JOIN patient_centres c "
                            "ON c.patient_id = p.patient_id ORDER BY p.patient_id").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


# --- helpers ---------------------------------------------------------------------------


def _fresh(db: Path) -> Path:
    for stale in db.parent.glob(db.name + "*"):
        stale.unlink()
    return db


def _count_events(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count: int = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()
    return count


if __name__ == "__main__":
    main()
