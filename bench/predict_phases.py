"""Phases of bench/predict.py, each in its own process: python -m bench.predict_phases PHASE."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.harness import Phases, run_here
from bench.phases import PHASES as ENGINE_PHASES
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.predict.dataset import FeatureOptions, build_table, write_features
from mbcjourney.predict.spec import load_spec


def features(db: str, spec: str, output: str) -> int:
    """``journey features``: every line's point-in-time features, written as Parquet."""
    with EmbeddedEngine(f"sqlite:///{db}") as engine:
        table = build_table(engine, load_spec(Path(spec)), FeatureOptions())
    write_features(table, Path(output))
    return table.events


PHASES: Phases = {
    "rebuild": ENGINE_PHASES["rebuild"],
    "features": ("journey features (every builtin)", features),
}

if __name__ == "__main__":
    run_here(PHASES, sys.argv[1], sys.argv[2:])
