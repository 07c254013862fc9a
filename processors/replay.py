"""Replay: fold any event source into a new, versioned projection, resumably and deterministically.

Why: projections change (new rules, new settings, an analyst's question) and
history is re-read (as known on a past date); the store that readers use must
keep serving meanwhile.  A replay builds a **new version** of a projection in
its own tables, ``p_<name>_v<N>_<table>``, beside the active one; readers keep
seeing the active version until ``activate`` switches it, atomically.

How a build goes::

    register   projection_versions row (status "building"), the version's tables
    stage      Kafka / JSON Lines only: raw records into the build's staging (a file
               beside a SQLite target, a table on PostgreSQL), with the source position,
               in one transaction per batch; each batch is sorted by patient before it
               is written (a "run"), so that the fold merges the runs
               (processors/staging.py)
    fold       patient by patient, in patient-id order: build_history (sorted,
               retractions, --known-at, --cutoff), the projection, rows; each batch
               of patients committed with "last patient done" in the registry row
    finish     content hash over every output table, row counts, status "complete"

A crash or Ctrl-C at any point loses at most the uncommitted batch: running
the same command again finds the unfinished build (same projection code, source
and options) and goes on from its checkpoint; nothing is counted twice.

The registry table ``projection_versions`` lives in the ``--into`` database:
name, version, build id, source, options, status (building, complete, active,
retired), timestamps, content hash, row counts, progress.  At most one version
of a name is active (a partial unique index).  :func:`active_prefix` tells a
reader which tables to read.

A projection that fails (``ProjectionFailed``) leaves the database as it found
it: the build's tables and registry row are removed.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Protocol

import orjson
import structlog
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeEngine

from mbcjourney.events.codec import body_hash
from mbcjourney.events.errors import ConfigurationError, InvalidEvent
from mbcjourney.processors.admission import (
    CONFLICT,
    TOMBSTONE,
    UNKEYED,
    BirthYears,
    Key,
    decode_record,
    is_repeat,
)
from mbcjourney.processors.analyst_loader import load_projection
from mbcjourney.processors.bulk import bulk_allocation
from mbcjourney.processors.db import BulkInsert, bound_memory, patient_key, sqlite_file
from mbcjourney.processors.sources import (
    ArrivalSource,
    JsonlSource,
    KafkaSource,
    PatientEvents,
    RawRecord,
    SqliteLogSource,
    received_at,
)
from mbcjourney.processors.staging import StagedRow, Staging
from mbcjourney.processors.store import Checkpoint, ProjectionStore, journey_rows
from mbcjourney.projections import View, analyst, build_history, project_journey
from mbcjourney.projections.history import PatientHistory
from mbcjourney.projections.journey import Journey
from mbcjourney.projections.settings import ClinicalSettings

log = structlog.get_logger(__name__)

REGISTRY = "projection_versions"
BUILTIN = "journey"
BATCH_PATIENTS = 2000  # patients per committed batch
BATCH_EVENTS = 200_000  # ... or fewer, when patients have long histories
STALE_OWNER_S = 600.0  # a build last touched this long ago by another host may be taken over

Advance = Callable[[int], None]
ProgressFactory = Callable[[int | None, str, str], AbstractContextManager[Advance]]


class Status(StrEnum):
    BUILDING = "building"
    COMPLETE = "complete"
    ACTIVE = "active"
    RETIRED = "retired"


_registry_md = MetaData()
versions_table = Table(
    REGISTRY, _registry_md,
    Column("name", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("build_id", String(32), nullable=False, unique=True),
    Column("build_key", String(64), nullable=False, index=True),
    Column("projection", Text, nullable=False),  # "journey", or the projection file
    Column("source", Text, nullable=False),
    Column("options", Text, nullable=False),  # JSON: view, settings, code fingerprint, snapshot
    Column("table_prefix", String(48), nullable=False),
    Column("tables", Text, nullable=False),  # JSON: every table of the version
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("activated_at", DateTime(timezone=True)),
    Column("content_hash", String(80)),
    Column("row_counts", Text),  # JSON: {table: rows}
    Column("progress", Text, nullable=False),  # JSON: phase, positions, last patient, counts
    Column("owner", String(200)),  # host:pid of the process building it
    Index(f"uq_{REGISTRY}_active", "name", unique=True,
          sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    """One registered version of a projection."""

    name: str
    version: int
    build_id: str
    projection: str
    source: str
    options: dict[str, Any]
    prefix: str
    tables: list[str]
    status: str
    created_at: datetime
    completed_at: datetime | None
    activated_at: datetime | None
    content_hash: str | None
    row_counts: dict[str, int]
    progress: dict[str, Any]
    owner: str | None
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> VersionInfo:
        return cls(row.name, row.version, row.build_id, row.projection, row.source,
                   orjson.loads(row.options), row.table_prefix, orjson.loads(row.tables),
                   row.status, _aware(row.created_at), _maybe_aware(row.completed_at),
                   _maybe_aware(row.activated_at), row.content_hash,
                   orjson.loads(row.row_counts or "{}"), orjson.loads(row.progress), row.owner,
                   _aware(row.updated_at))


def ensure_registry(engine: Engine) -> bool:
    """Create ``projection_versions`` when missing; whether it was created now."""
    if inspect(engine).has_table(REGISTRY):
        return False
    _registry_md.create_all(engine, checkfirst=True)
    return True


def versions(engine: Engine, name: str | None = None) -> list[VersionInfo]:
    """Every registered version (of ``name``), by name then version."""
    if not inspect(engine).has_table(REGISTRY):
        return []
    t = versions_table
    query = select(t).order_by(t.c.name, t.c.version)
    if name is not None:
        query = query.where(t.c.name == name)
    with engine.connect() as conn:
        return [VersionInfo.of(r) for r in conn.execute(query)]


def get_version(engine: Engine, name: str, version: int) -> VersionInfo:
    found = [v for v in versions(engine, name) if v.version == version]
    if not found:
        raise ConfigurationError(f"no version {version} of projection {name!r}")
    return found[0]


def active_prefix(engine: Engine, name: str) -> str:
    """Table prefix of the active version of ``name``; ``""`` (the unversioned tables) if none.

    Readers call this to find the tables to read, e.g.
    ``ProjectionStore(engine, prefix=active_prefix(engine, "journey"))``.
    """
    if not inspect(engine).has_table(REGISTRY):
        return ""
    t = versions_table
    with engine.connect() as conn:
        prefix = conn.execute(select(t.c.table_prefix).where(
            (t.c.name == name) & (t.c.status == Status.ACTIVE.value))).scalar_one_or_none()
    return prefix or ""


def activate(engine: Engine, name: str, version: int) -> VersionInfo:
    """Make ``version`` the one readers see, retiring the previous one, in one transaction."""
    if not inspect(engine).has_table(REGISTRY):
        raise ConfigurationError(f"no version {version} of projection {name!r}")
    with engine.begin() as conn:
        _activate_in(conn, name, version)
    log.info("projection.activated", name=name, version=version)
    return get_version(engine, name, version)


def _activate_in(conn: Connection, name: str, version: int) -> None:
    t = versions_table
    key = (t.c.name == name) & (t.c.version == version)
    query = select(t).where(key)
    if _postgres(conn):
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise ConfigurationError(f"no version {version} of projection {name!r}")
    info = VersionInfo.of(row)
    if info.status == Status.ACTIVE.value:
        return
    if info.status not in (Status.COMPLETE.value, Status.RETIRED.value):
        raise ConfigurationError(f"{name} version {version} is {info.status}: only a complete "
                                 "build can be activated")
    view = info.options.get("view", {})
    if name == BUILTIN and (view.get("known_at") or view.get("cutoff")):
        raise ConfigurationError(
            f"{name} version {version} was built with --known-at/--cutoff: the live journey "
            "tables must hold the whole history (read this version by its tables instead)")
    now = _now()
    conn.execute(update(t).where((t.c.name == name) & (t.c.status == Status.ACTIVE.value))
                 .values(status=Status.RETIRED.value, updated_at=now))
    conn.execute(update(t).where(key).values(status=Status.ACTIVE.value, activated_at=now,
                                             updated_at=now))


def drop_version(engine: Engine, name: str, version: int) -> VersionInfo:
    """Drop a version's tables and forget it; never the active one, nor a running build."""
    info = get_version(engine, name, version)
    if info.status == Status.ACTIVE.value:
        raise ConfigurationError(f"{name} version {version} is active: activate another "
                                 "version first")
    if info.status == Status.BUILDING.value:
        _check_owner(info)
    with engine.begin() as conn:
        conn.execute(delete(versions_table).where(versions_table.c.build_id == info.build_id))
        _drop_tables(conn, info.tables)
    Staging(engine, info.prefix).remove()
    log.info("projection.dropped", name=name, version=version)
    return info


def _drop_tables(conn: Connection, names: Sequence[str]) -> None:
    md = MetaData()
    for table_name in names:
        Table(table_name, md).drop(conn, checkfirst=True)


def _check_owner(info: VersionInfo) -> None:
    """Refuse to touch a build that another live process is running."""
    if not info.owner or info.owner == _owner():
        return
    host, _, pid_text = info.owner.rpartition(":")
    if host == socket.gethostname():
        try:
            os.kill(int(pid_text), 0)
        except (OSError, ValueError):
            return  # that process is gone
    elif (_now() - _aware(info.updated_at)).total_seconds() > STALE_OWNER_S:
        return
    raise ConfigurationError(
        f"{info.name} version {info.version} is being built by {info.owner}; "
        "wait for it to finish or stop it first")


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _maybe_aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)


# --- content hash -------------------------------------------------------------------------------


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        return _aware(value).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _row_encoder(table: Table) -> Callable[[Sequence[object]], bytes]:
    """How one row of ``table`` becomes its canonical JSON line (without the newline).

    Only a date-time needs Python to canonicalise it (UTC, aware); dates, enums,
    booleans, numbers and text come out of orjson exactly as :func:`_canonical`
    would make them, so a table without date-time columns is dumped as a tuple.
    """
    if any(isinstance(c.type, DateTime) for c in table.columns):
        return lambda row: orjson.dumps([_canonical(v) for v in row])
    return lambda row: orjson.dumps(tuple(row))


def table_hash(engine: Engine, tables: Sequence[tuple[str, Table]]
               ) -> tuple[str, dict[str, int]]:
    """sha256 over every table's rows sorted by key, in a canonical text form; and row counts.

    Per table: ``table NAME``, the column names, then one JSON array per row (dates
    ISO, booleans true/false, missing values null), rows in primary-key order by code
    point.  Independent of the table prefix and of the database (SQLite or PostgreSQL).
    """
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    postgres = _postgres(engine)
    with engine.connect() as conn:
        for logical, table in tables:
            digest.update(f"table {logical}\n".encode())
            digest.update(orjson.dumps([c.name for c in table.columns]) + b"\n")
            order = [c.collate("C") if postgres and isinstance(c.type, String) else c
                     for c in table.primary_key.columns]
            encode = _row_encoder(table)
            count = 0
            with conn.execution_options(stream_results=True, yield_per=5000).execute(
                    select(table).order_by(*order)) as result:
                for rows in result.partitions():
                    # One update per partition: hashing is incremental, the bytes are equal.
                    digest.update(b"".join([encode(row) + b"\n" for row in rows]))
                    count += len(rows)
            counts[logical] = count
    return f"sha256:{digest.hexdigest()}", counts


# --- what a build folds into: the built-in journey, or an analyst's projection ------------------


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
                                          store.findings, store.checkpoints)
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
    datetime: lambda: DateTime(timezone=True),
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


# --- one build ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOptions:
    view: View = field(default_factory=View)
    batch_patients: int = BATCH_PATIENTS
    activate: bool = False


@dataclass
class Counts:
    """What a build has read and folded; committed with its rows, so never counted twice."""

    read: int = 0  # records read from the source
    events: int = 0  # valid, distinct events folded
    patients: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_json(self) -> dict[str, Any]:
        return {"read": self.read, "events": self.events, "patients": self.patients,
                "duplicates": self.duplicates, "rejected": dict(sorted(self.rejected.items()))}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Counts:
        return cls(data.get("read", 0), data.get("events", 0), data.get("patients", 0),
                   data.get("duplicates", 0), Counter(data.get("rejected", {})))


@dataclass
class _Progress:
    phase: str = "stage"
    staged: dict[str, int] | None = None
    folded_through: str | None = None
    counts: Counts = field(default_factory=Counts)

    def as_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "staged": self.staged, "folded_through": self.folded_through,
                "counts": self.counts.as_json()}

    @classmethod
    def of(cls, data: dict[str, Any]) -> _Progress:
        return cls(data["phase"], data.get("staged"), data.get("folded_through"),
                   Counts.of(data.get("counts", {})))


@dataclass(frozen=True)
class ReplayResult:
    info: VersionInfo
    counts: Counts
    resumed_from: str | None  # the phase a resumed build went on from, None for a fresh one
    seconds: float


Source = SqliteLogSource | KafkaSource | JsonlSource


class Replay:
    """One build of ``target`` from ``source`` into ``engine``; :meth:`run` it.

    ``progress`` is a factory of progress bars (``Context.progress`` of the CLI);
    ``on_commit(phase, batches)`` is called after every committed batch.
    """

    def __init__(self, engine: Engine, source: Source, target: Target,
                 settings: ClinicalSettings, options: ReplayOptions = ReplayOptions(), *,
                 progress: ProgressFactory | None = None,
                 on_commit: Callable[[str, int], None] | None = None) -> None:
        self.engine = engine
        self.source = source
        self.target = target
        self.settings = settings
        self.options = options
        self.progress: ProgressFactory = progress or (lambda _t, _u, _d: nullcontext(_ignore))
        self.on_commit = on_commit
        self._batches = 0
        bound_memory(engine)

    # --- identity -----------------------------------------------------------------------------

    def _options_json(self) -> dict[str, Any]:
        view = self.options.view
        options: dict[str, Any] = {
            "view": {"known_at": view.known_at.isoformat() if view.known_at else None,
                     "cutoff": view.cutoff.isoformat() if view.cutoff else None},
            "settings": self.settings.model_dump(mode="json"),
            "code": self.target.fingerprint,
        }
        if isinstance(self.source, JsonlSource):
            options["received_at"] = self.source.received.isoformat()
        return options

    def _build_key(self, options: dict[str, Any]) -> str:
        identity = {"projection": self.target.name, "spec": self.target.spec,
                    "source": self.source.uri, **options}
        return hashlib.sha256(_json(identity).encode()).hexdigest()

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> ReplayResult:
        started = time.perf_counter()
        options = self._options_json()
        key = self._build_key(options)
        info = self._resumable(key)
        resumed_from = None
        created_registry = False
        if info is None:
            options["snapshot"] = self.source.snapshot()  # the source answers before any write
            created_registry = ensure_registry(self.engine)
            info = self._register(key, options)
        else:
            resumed_from = info.progress["phase"]
            self._claim(info)
        self.info = info
        self.snapshot: dict[str, Any] = info.options["snapshot"]
        self.sink = self.target.sink(self.engine, info.prefix)
        self.state = _Progress.of(info.progress)
        self.staging: Staging | None = None
        if not isinstance(self.source, SqliteLogSource):
            self.staging = Staging(self.engine, info.prefix)
            if resumed_from is None:
                self.staging.create()
            elif resumed_from in ("stage", "fold"):
                self.staging.check(info.name, info.version,
                                   staged_anything=self.state.staged is not None)
                saved = self.staging.saved_progress() if resumed_from == "stage" else None
                if saved is not None:  # committed with the staged records: the truth
                    self.state = _Progress.of(saved)
        log.info("replay.started", name=info.name, version=info.version, build=info.build_id,
                 resumed=resumed_from is not None, phase=self.state.phase)
        try:
            with bulk_allocation():
                if self.state.phase == "stage":
                    self._stage()
                if self.state.phase == "fold":
                    self._fold()
            info = self._finish()
        except analyst.ProjectionFailed as failure:
            log.error("replay.failed", name=info.name, version=info.version,
                      build=info.build_id, patient=failure.patient_id, event_id=failure.event_id)
            self._discard(created_registry)
            raise
        seconds = time.perf_counter() - started
        log.info("replay.complete", name=info.name, version=info.version, build=info.build_id,
                 events=self.state.counts.events, seconds=round(seconds, 3))
        return ReplayResult(info, self.state.counts, resumed_from, seconds)

    def _resumable(self, key: str) -> VersionInfo | None:
        t = versions_table
        if not inspect(self.engine).has_table(REGISTRY):
            return None
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(
                (t.c.name == self.target.name) & (t.c.build_key == key)
                & (t.c.status == Status.BUILDING.value)).order_by(t.c.version.desc())).first()
        return None if row is None else VersionInfo.of(row)

    def _claim(self, info: VersionInfo) -> None:
        _check_owner(info)
        with self.engine.begin() as conn:
            conn.execute(update(versions_table).where(versions_table.c.build_id == info.build_id)
                         .values(owner=_owner(), updated_at=_now()))

    def _register(self, key: str, options: dict[str, Any]) -> VersionInfo:
        t = versions_table
        staged = not isinstance(self.source, SqliteLogSource)  # see run(): Staging
        now = _now()
        build_id = hashlib.sha256(f"{key}{now.isoformat()}{os.getpid()}".encode()).hexdigest()[:32]
        try:
            with self.engine.begin() as conn:
                last = conn.execute(select(func.max(t.c.version))
                                    .where(t.c.name == self.target.name)).scalar_one()
                version = int(last or 0) + 1
                prefix = f"p_{self.target.name}_v{version}_"
                sink = self.target.sink(self.engine, prefix)
                tables = list(sink.tables)
                progress = _Progress(phase="stage" if staged else "fold")
                # The row first: on SQLite, DML opens the transaction the DDL then joins.
                conn.execute(insert(t).values(
                    name=self.target.name, version=version, build_id=build_id, build_key=key,
                    projection=self.target.spec, source=self.source.uri, options=_json(options),
                    table_prefix=prefix, tables=_json([x.name for x in tables]),
                    status=Status.BUILDING.value, created_at=now, updated_at=now,
                    progress=_json(progress.as_json()), owner=_owner()))
                for table in tables:
                    table.create(conn)
        except IntegrityError:
            raise ConfigurationError(f"another build of {self.target.name} registered at the "
                                     "same time; run again") from None
        return get_version(self.engine, self.target.name, version)

    def _save(self, conn: Connection) -> None:
        conn.execute(update(versions_table)
                     .where(versions_table.c.build_id == self.info.build_id)
                     .values(progress=_json(self.state.as_json()), updated_at=_now()))

    def _committed(self) -> None:
        self._batches += 1
        if self.on_commit is not None:
            self.on_commit(self.state.phase, self._batches)

    # --- stage (arrival-order sources) ----------------------------------------------------------

    def _stage(self) -> None:
        """Spill the source into the build's staging, one sorted run per committed batch.

        Each run is committed with the progress it reaches, in the staging store (see
        ``processors/staging.py``), then that progress is saved in the registry too.
        """
        source, staging = self.source, self.staging
        assert isinstance(source, KafkaSource | JsonlSource)
        assert staging is not None
        arrival: ArrivalSource = source
        keyed = isinstance(source, KafkaSource)
        positions = self.state.staged or arrival.start(self.snapshot)
        counts = self.state.counts
        run = staging.next_run()
        with self.progress(arrival.remaining(self.snapshot, positions), "ev", "stage") as advance:
            for records, after in arrival.read(self.snapshot, positions):
                rows: list[StagedRow] = []
                for record in records:
                    key = record.key
                    if record.raw is None:  # a tombstone: nothing to stage
                        counts.rejected[str(TOMBSTONE)] += 1
                        continue
                    if keyed:  # a Kafka record is grouped by its key, the patient id
                        if key is not None and _usable_id(key):
                            patient_id = key
                        else:
                            counts.rejected[_refused(record.raw, record, key)] += 1
                            continue
                    else:
                        found, reason = _patient_of(record)
                        if found is None:
                            counts.rejected[reason] += 1
                            continue
                        patient_id = found
                    rows.append((patient_id, record.partition, record.seq, record.received_us,
                                 record.raw))
                rows.sort()  # (patient, partition, seq) is unique: the body is never compared
                counts.read += len(records)
                self.state.staged = after
                staging.append(run, rows, self.state.as_json())
                with self.engine.begin() as conn:
                    self._save(conn)
                run += 1
                advance(len(records))
                self._committed()
        staging.finish()
        with self.engine.begin() as conn:
            self.state.phase = "fold"
            self._save(conn)
        log.info("replay.staged", build=self.info.build_id, read=counts.read,
                 rejected=counts.rejected_total)

    # --- fold -------------------------------------------------------------------------------------

    def _groups(self, after: str) -> tuple[int, Generator[PatientEvents, None, None]]:
        known_at = self.options.view.known_at
        if isinstance(self.source, SqliteLogSource):
            total = self.source.remaining(self.snapshot, after, known_at)
            return total, self.source.histories(self.snapshot, after, known_at)
        assert self.staging is not None
        staged = self.staging.by_patient(after)
        keyed = isinstance(self.source, KafkaSource)
        return self.staging.count(after), (_admit(patient_id, rows, keyed=keyed)
                                           for patient_id, rows in staged)

    def _fold(self) -> None:
        state, counts = self.state, self.state.counts
        view = self.options.view
        total, groups = self._groups(state.folded_through or "")
        batch: list[Any] = []
        pending_patients = pending_events = 0
        sqlite_source = isinstance(self.source, SqliteLogSource)

        def commit() -> None:
            nonlocal batch, pending_patients, pending_events
            with self.engine.begin() as conn:
                self.sink.write(conn, batch)
                self._save(conn)
            batch, pending_patients, pending_events = [], 0, 0
            self._committed()

        with closing(groups), self.progress(
                total, "ev", f"replay {self.info.name} v{self.info.version}") as advance:
            for group in groups:
                history = build_history(group.patient_id, group.events, view)
                batch_item = self._apply(history, group)
                if batch_item is not None:
                    batch.append(batch_item)
                if sqlite_source:
                    counts.read += group.read
                counts.events += len(group.events)
                counts.patients += 1
                if group.rejected:
                    counts.rejected.update(group.rejected)
                counts.duplicates += group.duplicates
                state.folded_through = group.patient_id
                pending_patients += 1
                pending_events += group.read
                advance(group.read)
                if (pending_patients >= self.options.batch_patients
                        or pending_events >= BATCH_EVENTS):
                    commit()
            if pending_patients:
                commit()
        state.phase = "finish"
        with self.engine.begin() as conn:
            self._save(conn)

    def _apply(self, history: PatientHistory, group: PatientEvents) -> Any | None:
        try:
            return self.target.fold(history, self.settings)
        except analyst.ProjectionFailed:
            raise
        except Exception as exc:  # a bug in a built-in projection: name the patient too
            last = history.events[-1] if history.events else (
                group.events[-1] if group.events else None)
            raise analyst.ProjectionFailed(
                self.target.name, group.patient_id, str(last.event_id) if last else None,
                f"{type(exc).__name__}: {exc}") from exc

    # --- finish ---------------------------------------------------------------------------

    def _final_checkpoints(self) -> list[Checkpoint]:
        """Where live readers can go on from: the log position or the topic offsets read."""
        if isinstance(self.source, KafkaSource):
            return [Checkpoint("replay", int(p), int(end))
                    for p, end in self.snapshot["end_offsets"].items()]
        if isinstance(self.source, SqliteLogSource):
            last = int(self.snapshot["last_position"])
            checkpoints = [Checkpoint("replay", 0, last)]
            view = self.options.view
            target = sqlite_file(self.engine.url)
            own_log = target is not None and target.resolve() == self.source.path
            if own_log and view.known_at is None and view.cutoff is None:
                # The embedded engine's catch-up reads its checkpoint from the active tables.
                checkpoints.append(Checkpoint("embedded", 0, last))
            return checkpoints
        return []

    def _finish(self) -> VersionInfo:
        with self.engine.begin() as conn:
            self.sink.checkpoint(conn, self._final_checkpoints())
        digest, rows = table_hash(self.engine, self.sink.outputs)
        t = versions_table
        now = _now()
        with self.engine.begin() as conn:
            self.state.phase = "done"
            conn.execute(update(t).where(t.c.build_id == self.info.build_id).values(
                status=Status.COMPLETE.value, completed_at=now, updated_at=now,
                content_hash=digest, row_counts=orjson.dumps(rows).decode(),
                progress=_json(self.state.as_json()), owner=None))
            if self.options.activate:
                _activate_in(conn, self.info.name, self.info.version)
        if self.staging is not None:
            self.staging.remove()
        return get_version(self.engine, self.info.name, self.info.version)

    def _discard(self, created_registry: bool) -> None:
        """Remove every trace of this build: its tables, its row, a registry made for it."""
        with self.engine.begin() as conn:
            conn.execute(delete(versions_table)
                         .where(versions_table.c.build_id == self.info.build_id))
            _drop_tables(conn, self.info.tables)
        if self.staging is not None:
            self.staging.remove()
        if created_registry:
            with self.engine.begin() as conn:
                left = conn.execute(select(func.count()).select_from(versions_table)).scalar_one()
                if not left:
                    versions_table.drop(conn)


def _ignore(_n: int) -> None:
    """A progress callback that shows nothing."""


def _patient_of(record: RawRecord) -> tuple[str | None, str]:
    """The patient a file line belongs to (for grouping), or None and why it cannot be an event."""
    assert record.raw is not None
    try:
        data = orjson.loads(record.raw)
    except orjson.JSONDecodeError:
        data = None
    patient_id = data.get("patient_id") if isinstance(data, dict) else None
    if isinstance(patient_id, str) and _usable_id(patient_id):
        return patient_id, ""
    return None, _refused(record.raw, record, UNKEYED)


def _refused(raw: bytes, record: RawRecord, key: Key) -> str:
    """Why admission refuses a record that cannot be grouped by patient."""
    try:
        decode_record(raw, received_at=received_at(record.received_us), key=key)
    except InvalidEvent as error:
        return error.reason_code
    return "patient_id: not a valid identifier"


def _usable_id(text: str) -> bool:
    return 0 < len(text) <= 64 and text.isprintable()


def _admit(patient_id: str, rows: Iterable[tuple[Any, ...]], *, keyed: bool) -> PatientEvents:
    """Admit one patient's staged records in arrival order, as ingest or a worker would.

    ``rows`` are (patient, partition, seq, received_us, body); ``keyed``: they are
    Kafka records, grouped by their key.  Each record goes through admission
    (``processors/admission.py``): decoding, the key, the birth year (in arrival
    order), then duplicate or conflict against the records kept before it.
    """
    rejected: Counter[str] = Counter()
    read = 0
    group = PatientEvents(patient_id, [], read, rejected)
    births = BirthYears()
    key: Key = patient_id if keyed else UNKEYED
    kept: dict[int, bytes] = {}  # event id (as an integer: cheaper to hash) -> first body
    events = group.events
    for _pid, _part, _seq, received_us, body in rows:  # once per staged record: kept lean
        read += 1
        raw = body if type(body) is bytes else bytes(body)
        try:
            event, raw = decode_record(raw, received_at=received_at(received_us), key=key)
            births.admit(event)
        except InvalidEvent as error:
            rejected[error.reason_code] += 1
            continue
        event_key = event.event_id.int
        first = kept.get(event_key)
        if first is None:
            kept[event_key] = raw
            events.append(event)
        elif is_repeat(body_hash(first), first, body_hash(raw), raw):
            group.duplicates += 1
        else:
            rejected[str(CONFLICT)] += 1
    group.read = read
    return group
