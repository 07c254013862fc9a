"""Phases run in their own process by the harness: python -m bench.phases PHASE ARGS."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from datetime import UTC, datetime

import orjson

from bench.harness import Phases, run_here
from mbcjourney.engine import EmbeddedEngine, decode_workers
from mbcjourney.processors.ingest import numbered_lines


def read_file_baseline(path: str) -> int:
    """Read the JSON Lines file and decode every line with orjson; nothing else."""
    count = 0
    with open(path, "rb") as stream:
        for _, line in numbered_lines(stream):
            with contextlib.suppress(orjson.JSONDecodeError):
                orjson.loads(line)
            count += 1
    return count


def ingest(path: str, db: str, workers: str | None = None) -> int:
    """``journey ingest``'s ingest (decode processes: one per CPU, or ``workers``)."""
    engine = EmbeddedEngine(f"sqlite:///{db}")
    with open(path, "rb") as stream:
        summary = engine.ingest(numbered_lines(stream), origin="bench",
                                received_at=datetime.now(UTC),
                                workers=decode_workers(1 << 30) if workers is None
                                else int(workers))
    engine.close()
    return summary.read


def read_log_baseline(db: str) -> int:
    """Read every stored event in patient order (as a rebuild does) and JSON-decode it."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    count = 0
    for (body,) in conn.execute("SELECT body FROM events ORDER BY patient_id, position"):
        orjson.loads(body)
        count += 1
    conn.close()
    return count


def rebuild(db: str, workers: str = "0") -> int:
    engine = EmbeddedEngine(f"sqlite:///{db}")
    engine.rebuild(workers=int(workers))
    count = engine.log.count()
    engine.close()
    return count


PHASES: Phases = {
    "read-file": ("read + JSON-decode file (baseline)", read_file_baseline),
    "ingest": ("ingest into SQLite (validated)", ingest),
    "ingest-serial": ("ingest, validated in the writer", ingest),
    "read-log": ("read + JSON-decode log (baseline)", read_log_baseline),
    "rebuild": ("rebuild projections, 1 process", rebuild),
    "rebuild-parallel": ("rebuild projections, 1 per CPU", rebuild),
}

if __name__ == "__main__":
    run_here(PHASES, sys.argv[1], sys.argv[2:])
