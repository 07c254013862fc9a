"""What a build folds into: the built-in journey, or an analyst's projection file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Double,
    Engine,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.analyst_loader import load_projection
from mbcjourney.processors.db import BulkInsert, patient_key
from mbcjourney.processors.replay.versions import BUILTIN
from mbcjourney.processors.sql import UtcDateTime
from mbcjourney.processors.store import Checkpoint, ProjectionStore, journey_rows
from mbcjourney.projections import analyst, project_journey
from mbcjourney.projections.history import PatientHistory
from mbcjourney.projections.journey import Journey
from mbcjourney.projections.settings import ClinicalSettings


class Sink(Protocol):
    """The tables of one version, and how a batch of folded patients is written to them."""

    tables: tuple[Table, ...]  # every table of the version
    outputs: tuple[tuple[str, Table], ...]  # (logical name, table): what the content hash covers

    def write(self, conn: Connection, results: list[Any]) -> None: ...
    def checkpoint(self, conn: Connection, checkpoints: Sequence[Checkpoint]) -> None: ...


class Target(Protocol):
    """A projection replay can build: a name, an identity for resuming, a fold and a sink."""

    name: str
    spec: str  # what the user named: "journey" or the projection file
    fingerprint: str  # the code: a change means a different build

    def fold(self, history: PatientHistory, settings: ClinicalSettings) -> Any | None: ...
    def sink(self, engine: Engine, prefix: str) -> Sink: ...


def _fingerprint(*folders: Path) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.suffix in (".py", ".csv")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _JourneySink:
    def __init__(self, store: ProjectionStore) -> None:
        self.store = store
        self.tables: tuple[Table, ...] = (store.patients, store.lines, store.due,
                                          store.findings, store.centres, store.checkpoints)
        self.outputs: tuple[tuple[str, Table], ...] = (
            ("patients", store.patients), ("lines", store.lines),
                        ("due_assessments", store.due), ("findings", store.findings))

    def write(self, conn: Connection, results: list[Any]) -> None:
        """Insert the batch's rows: a new version's tables hold no row of these patients."""
        self.store.insert_in(conn, journey_rows(results))

    def checkpoint(self, conn: Connection, checkpoints: Sequence[Checkpoint]) -> None:
        self.store.write_in(conn, [], checkpoints, replace=False)


class JourneyTarget:
    """The built-in projection: patients, lines, due assessments and findings tables."""

    name = BUILTIN
    spec = BUILTIN

    def __init__(self) -> None:
        import mbcjourney.events as events_pkg
        import mbcjourney.projections as projections_pkg

        self.fingerprint = _fingerprint(Path(projections_pkg.__file__).parent,
                                        Path(events_pkg.__file__).parent)

    def fold(self, history: PatientHistory, settings: ClinicalSettings) -> Journey | None:
        journey = project_journey(history, settings)
        return journey if journey.reportable else None

    def sink(self, engine: Engine, prefix: str) -> _JourneySink:
        return _JourneySink(ProjectionStore(engine, prefix))


_SQL_TYPES: dict[type, Callable[[], TypeEngine[Any]]] = {
    str: Text, int: BigInteger, float: Double, bool: Boolean, date: Date,
    datetime: UtcDateTime,
}


class _AnalystSink:
    def __init__(self, projection: analyst.Projection, engine: Engine, prefix: str) -> None:
        md = MetaData()
        columns = [Column(analyst.PATIENT_ID, patient_key(), primary_key=True)]
        columns += [Column(c.name, _SQL_TYPES[c.type](), primary_key=c.key,
                           nullable=c.allows_none) for c in projection.columns]
        self.table = Table(f"{prefix}rows", md, *columns)
        self.names = projection.column_names
        self._insert = BulkInsert(self.table, engine.dialect)
        self.tables: tuple[Table, ...] = (self.table,)
        self.outputs: tuple[tuple[str, Table], ...] = (("rows", self.table),)

    def write(self, conn: Connection, results: list[Any]) -> None:
        width = len(self.names)
        rows = [tuple(row) for rows in results for row in rows]
        for row in rows:
            if len(row) != width:  # the check zip(strict=True) made of a row of dicts
                raise ValueError(f"a row of {self.table.name} has {len(row)} values, "
                                 f"not {width}")
        self._insert.run(conn, rows)

    def checkpoint(self, conn: Connection, checkpoints: Sequence[Checkpoint]) -> None:
        """Analyst tables carry no live-reader checkpoints."""


class AnalystTarget:
    """An analyst's projection file (see :mod:`mbcjourney.analyst`)."""

    def __init__(self, projection: analyst.Projection) -> None:
        if projection.name == BUILTIN:
            raise ConfigurationError(f"projection name {BUILTIN!r} is the built-in one: "
                                     "choose another name")
        self.projection = projection
        self.name = projection.name
        source = Path(projection.source_file or "")
        self.spec = str(source)
        self.fingerprint = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() \
            else projection.name

    def fold(self, history: PatientHistory, settings: ClinicalSettings
             ) -> list[tuple[object, ...]] | None:
        if not history.events or analyst.erased(history):
            return None
        return self.projection.rows(history, settings) or None

    def sink(self, engine: Engine, prefix: str) -> _AnalystSink:
        return _AnalystSink(self.projection, engine, prefix)


def resolve_target(spec: str) -> JourneyTarget | AnalystTarget:
    """``journey`` or ``path/to/module.py[:object]``; fails before anything is touched."""
    if spec == BUILTIN:
        return JourneyTarget()
    if spec.endswith(".py") or ".py:" in spec or "/" in spec:
        return AnalystTarget(load_projection(spec))
    raise ConfigurationError(f"--projection {spec!r}: not a built-in projection ({BUILTIN}) "
                             "nor a Python file (path/to/module.py[:object])")
