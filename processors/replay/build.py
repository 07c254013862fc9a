"""One build of a projection version: register, stage, fold, finish (see the package)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Generator
from contextlib import closing, nullcontext
from functools import partial
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, delete, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.admission import TOMBSTONE
from mbcjourney.processors.bulk import bulk_allocation
from mbcjourney.processors.db import bound_memory, sqlite_file
from mbcjourney.processors.keyring import key_store
from mbcjourney.processors.replay.admit import _admit, _patient_of, _refused, _usable_id
from mbcjourney.processors.replay.content_hash import table_hash
from mbcjourney.processors.replay.state import (
    DEFAULT_OPTIONS,
    ProgressFactory,
    ReplayOptions,
    ReplayResult,
    _Progress,
)
from mbcjourney.processors.replay.targets import Target
from mbcjourney.processors.replay.versions import (
    REGISTRY,
    Status,
    VersionInfo,
    _activate_in,
    _check_owner,
    _drop_tables,
    _json,
    _now,
    _owner,
    ensure_registry,
    get_version,
    versions_table,
)
from mbcjourney.processors.sealing import Cipher, Sealer
from mbcjourney.processors.sources import (
    ArrivalSource,
    JsonlSource,
    KafkaSource,
    PatientEvents,
    SqliteLogSource,
)
from mbcjourney.processors.staging import StagedRow, Staging
from mbcjourney.processors.store import Checkpoint
from mbcjourney.projections import analyst, build_history
from mbcjourney.projections.history import PatientHistory
from mbcjourney.projections.settings import ClinicalSettings

log = structlog.get_logger(__name__)

BATCH_EVENTS = 200_000  # a batch holds fewer than BATCH_PATIENTS patients once this many events

Source = SqliteLogSource | KafkaSource | JsonlSource


class Replay:
    """One build of ``target`` from ``source`` into ``engine``; :meth:`run` it.

    ``progress`` is a factory of progress bars (``Context.progress`` of the CLI);
    ``on_commit(phase, batches)`` is called after every committed batch.
    """

    def __init__(self, engine: Engine, source: Source, target: Target,
                 settings: ClinicalSettings, options: ReplayOptions = DEFAULT_OPTIONS, *,
                 progress: ProgressFactory | None = None,
                 on_commit: Callable[[str, int], None] | None = None,
                 cipher: Cipher | None = None) -> None:
        self.engine = engine
        self._given_cipher = cipher
        self.source = source
        self.target = target
        self.settings = settings
        self.options = options
        self.progress: ProgressFactory = progress or (lambda _t, _u, _d: nullcontext(_ignore))
        self.on_commit = on_commit
        self._batches = 0
        bound_memory(engine)

    def _cipher(self) -> Cipher:
        """The keys that open the source: as given (``--keys``), the log's own, or those
        of the target's key store."""
        if self._given_cipher is not None:
            return self._given_cipher
        if isinstance(self.source, SqliteLogSource):
            return self.source.cipher
        return Sealer(key_store(self.engine.url.render_as_string(hide_password=False)))

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
        self.cipher = self._cipher()
        self.erased = self.cipher.erased_names()
        if not isinstance(self.source, SqliteLogSource):
            self.staging = Staging(self.engine, info.prefix, self.cipher)
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
        admit = partial(_admit, keyed=keyed, cipher=self.cipher, erased=self.erased,
                        unstage=self.staging.unstage)
        return self.staging.count(after), (admit(patient_id, rows)
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
                if group.erased:  # consent withdrawn: counted, never folded
                    counts.erased += group.read
                    state.folded_through = group.patient_id
                    advance(group.read)
                    continue
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
