"""python -m bench.rejects [--lines N]: peak memory of ingesting N rejected lines, beside N good.

Two files of N lines each: the first N lines of a simulated cohort (good lines,
with the simulator's few deliberate bad ones), and the same lines each broken
(half cut short, so not JSON; half with a text ``schema_version``), so both hold
about the same bytes.  Each is ingested by ``journey ingest`` into a fresh SQLite
file in its own child process; the child's peak resident memory (``ru_maxrss``
from ``os.wait4``, the writing process itself) is printed beside the other's.
Before the commit groups were bounded by lines read, the rejected file's peak
grew with N (900,000 rejected lines: 2.1 GB); now both stay flat.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

from mbcjourney.simulate import SimulationSettings, iter_cohort


def _write(good: Path, bad: Path, lines: int, seed: int) -> None:
    patients = max(1, lines // 40)  # more than enough: the cohort is cut at N lines
    written = 0
    with good.open("wb") as g, bad.open("wb") as b:
        for line in islice(iter_cohort(SimulationSettings(patients=patients, seed=seed)),
                           lines):
            line = line.rstrip(b"\n")
            g.write(line + b"\n")
            if written % 2:
                broken = line[:-1]  # the closing brace gone: not JSON
            else:
                broken = line.replace(b'"schema_version":1', b'"schema_version":"1"', 1)
                broken = broken.replace(b'"schema_version": 1', b'"schema_version": "1"', 1)
            b.write(broken + b"\n")
            written += 1
    if written < lines:
        raise SystemExit(f"the simulated cohort held only {written} lines")


def _ingest(path: Path, db: Path) -> tuple[float, float, str]:
    """(peak RSS MiB, seconds, summary line) of one ``journey ingest`` child."""
    db.unlink(missing_ok=True)
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "mbcjourney", "--quiet", "ingest", str(path),
         "--db", f"sqlite:///{db}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    out = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode not in (0, 1):  # 1: some lines were rejected
        raise SystemExit(f"journey ingest {path} exited {child.returncode}")
    return usage.ru_maxrss / 1024, seconds, out.splitlines()[0] if out else ""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rejects", description=__doc__)
    parser.add_argument("--lines", type=int, default=900_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    good = args.workdir / f"good-{args.lines}-{args.seed}.jsonl"
    bad = args.workdir / f"rejected-{args.lines}-{args.seed}.jsonl"
    if not (good.exists() and bad.exists()):
        _write(good, bad, args.lines, args.seed)
    print(f"{args.lines:,} lines each: {good.stat().st_size / 2**20:,.0f} MiB good, "
          f"{bad.stat().st_size / 2**20:,.0f} MiB rejected")
    rows = [("good lines", *_ingest(good, args.workdir / "good.db")),
            ("rejected lines", *_ingest(bad, args.workdir / "rejected.db"))]
    print(f"{'input':<16} {'peak RSS MiB':>12} {'seconds':>8}  summary")
    for name, peak, seconds, summary in rows:
        print(f"{name:<16} {peak:>12,.0f} {seconds:>8.1f}  {summary}")


if __name__ == "__main__":
    main()
