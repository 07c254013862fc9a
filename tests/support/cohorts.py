"""Simulated cohorts for tests: a JSON Lines file and, when needed, an embedded log of it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.simulate import SimulationSettings, write_cohort


def simulated_cohort(path: Path, *, patients: int, seed: int) -> Path:
    with path.open("wb") as out:
        write_cohort(SimulationSettings(patients=patients, seed=seed), out)
    return path


def embedded_log(jsonl: Path, db: Path, *, received_at: datetime) -> Path:
    """Ingest ``jsonl`` into an embedded SQLite database with its projections caught up."""
    engine = EmbeddedEngine(f"sqlite:///{db}")
    with jsonl.open("rb") as stream:
        engine.ingest(numbered_lines(stream), origin="cohort", received_at=received_at)
    engine.catch_up()
    engine.close()
    return db
