"""Shared harness: run a phase in a fresh subprocess, report rate and peak memory.

Each phase runs in its own interpreter so that its peak resident memory
(``ru_maxrss``) is its own, not the maximum of everything measured before it.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measurement:
    name: str
    events: int
    seconds: float
    peak_rss_mib: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")


def measure_here(name: str, work: Callable[[], int]) -> Measurement:
    """Time ``work`` (which returns the number of events it handled) in this process."""
    start = time.perf_counter()
    events = work()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Measurement(name, events, seconds, peak)


Phases = dict[str, tuple[str, Callable[..., int]]]
"""A benchmark module's phases: name -> (label printed in the report, work returning events)."""


def run_here(phases: Phases, name: str, args: list[str]) -> None:
    """A phase's process: run ``phases[name]`` with ``args`` and emit its measurement.

    Logs go at warning, as the CLI's default: no per-event debug records in the timing.
    """
    from mbcjourney import logs

    logs.configure("warning")
    label, work = phases[name]
    emit(measure_here(label, lambda: work(*args)))  # peak memory: this process only


def emit(m: Measurement) -> None:
    """Print a measurement as the last line, for :func:`run_phase` to read."""
    sys.stdout.write(json.dumps(m.__dict__) + "\n")


def run_phase(module: str, *args: str) -> Measurement:
    """Run ``python -m <module> <args>`` and read its measurement."""
    out = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return Measurement(**json.loads(out.stdout.strip().splitlines()[-1]))


def report(title: str, rows: list[tuple[Measurement, Measurement]],
           targets: dict[str, str]) -> None:
    """A table: each measurement beside its baseline, with the ratio and the target."""
    print(f"\n{title}")
    header = f"{'measure':<34}{'events':>10}{'seconds':>9}{'events/s':>12}{'peak MiB':>10}"
    print(header + f"{'vs baseline':>13}  target")
    for measured, baseline in rows:
        for m, ratio in ((baseline, ""), (measured, f"{measured.rate / baseline.rate:>12.0%}")):
            print(f"{m.name:<34}{m.events:>10,}{m.seconds:>9.2f}{m.rate:>12,.0f}"
                  f"{m.peak_rss_mib:>10.0f}{ratio:>13}  {targets.get(m.name, '') if ratio else ''}")
