"""``journey features``: the point-in-time feature table of a cohort, from its event log.

Each patient's events are read through the log's public reader
(:meth:`~mbcjourney.processors.eventlog.SqlEventLog.histories`) and folded by
:func:`~mbcjourney.projections.features.feature_rows`; nothing here reads SQL
columns.  The output format follows the file's suffix (``.parquet`` or ``.csv``).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.errors import ConfigurationError
from mbcjourney.exports import render, write_table
from mbcjourney.processors.bulk import bulk_allocation
from mbcjourney.projections.features import FeatureRow, FeatureSpec, Value, feature_rows

LINES = ("first", "all")
SUFFIXES = {".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class FeatureOptions:
    lines: str = "all"  # "first" or "all"
    as_occurred: bool = False  # drop the "recorded by the end of t0's day" condition
    cutoff: date | None = None  # the data cut-off of the labels (and of everything)
    known_at: datetime | None = None  # only what was recorded by then (journey predict score)


@dataclass(frozen=True)
class FeatureTable:
    """The rows of a cohort and how they were made."""

    spec: FeatureSpec
    rows: list[FeatureRow]
    events: int  # events read from the log
    patients: int

    @property
    def columns(self) -> tuple[str, ...]:
        return self.spec.columns

    def values(self) -> list[tuple[Value, ...]]:
        return [row.values(self.spec) for row in self.rows]

    def content_hash(self) -> str:
        """SHA-256 of the table's CSV: the same data and spec, the same hash."""
        return hashlib.sha256(render(self.columns, self.values(), "csv")).hexdigest()

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [v[index] for v in self.values()]


def build_table(engine: EmbeddedEngine, spec: FeatureSpec,
                options: FeatureOptions = FeatureOptions(),
                on_patients: Callable[[int], None] | None = None) -> FeatureTable:
    """One row per (patient, line) of every patient in the log."""
    if options.lines not in LINES:
        raise ConfigurationError(f"--lines must be one of {', '.join(LINES)}")
    rows: list[FeatureRow] = []
    events = patients = 0
    with bulk_allocation():
        for patient_id, history in engine.log.histories():
            events += len(history)
            patients += 1
            rows += feature_rows(patient_id, history, spec, engine.settings,
                                 cutoff=options.cutoff, lines=options.lines,
                                 as_occurred=options.as_occurred, known_at=options.known_at)
            if on_patients is not None:
                on_patients(1)
    return FeatureTable(spec, rows, events, patients)


def output_format(path: Path) -> str:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ConfigurationError(f"--output must end in {' or '.join(SUFFIXES)} "
                                 f"(got {path.name!r})")
    return fmt


def write_features(table: FeatureTable, output: Path) -> None:
    write_table(table.columns, table.values(), output_format(output), output, sys.stdout.buffer)


def describe(table: FeatureTable) -> bytes:
    """A one-line JSON summary (rows, patients, events, content hash) for the CLI."""
    return orjson.dumps({"rows": len(table.rows), "patients": table.patients,
                         "events": table.events, "content_hash": table.content_hash()})
