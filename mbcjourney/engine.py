"""The embedded engine: SQLite (or PostgreSQL) event log + projection store, one process.

:class:`EmbeddedEngine` offers the operations the CLI exposes over one database
(:class:`EmbeddedStorage`: the log, the projection store and the alert actions).
It is built by the composition root, :func:`mbcjourney.bootstrap.open_engine`,
and is a context manager: ``with open_engine(url) as engine: ...`` closes it.
The projection store is a consumer of the log like any other: it records the
last log position it has projected, and catches up before it is read -- unless
live workers own the store (a PostgreSQL store the ``journey worker`` processes
write, with checkpoints of a ``worker:`` consumer): their rows are read as they
are, never re-projected here, and the workers append every event they apply to
the same SQL log, in the transaction of their rows, so the views that fold the
log (``--cutoff``, ``--known-at``, ``overdue --as-of``, alerts) read it as usual.

``project``, ``overdue_view`` and ``end_of_day`` live with the projections
(:mod:`mbcjourney.projections.views`) and are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType

import structlog
from sqlalchemy import select
from sqlalchemy.engine import Engine

from mbcjourney.events import ClinicalEvent
from mbcjourney.processors.alert_actions import AlertActionLog, AlertActions
from mbcjourney.processors.bulk import bulk_allocation, process_pool
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog, patients_after
from mbcjourney.processors.ingest import IngestSummary, ItemOutcome, ingest_lines
from mbcjourney.processors.replay import active_prefix
from mbcjourney.processors.sealing import Cipher
from mbcjourney.processors.store import Checkpoint, ProjectionStore, Rows, journey_rows
from mbcjourney.processors.worker import WORKER_CONSUMER_PREFIX
from mbcjourney.projections import EVERYTHING, Journey, LineRow, PatientRow, View, build_history
from mbcjourney.projections.alerts import AlertState, alert_states, alert_timeline, any_open
from mbcjourney.projections.facts import collect_facts
from mbcjourney.projections.findings import Finding
from mbcjourney.projections.journey import centre_of
from mbcjourney.projections.schedule import DueAssessment
from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings
from mbcjourney.projections.views import end_of_day, overdue_view, project

__all__ = [
    "AlertRow",
    "EmbeddedEngine",
    "EmbeddedStorage",
    "decode_workers",
    "end_of_day",
    "overdue_rows",
    "overdue_view",
    "project",
]

log = structlog.get_logger(__name__)

CONSUMER = "embedded"
WRITE_BATCH = 2000  # patients per store transaction
REBUILD_SHARD = 500  # patients per rebuild task: small, so the workers finish together
ACTIONS_BY_PATIENT = 500  # up to this many patients, read only their alerts' actions
PARALLEL_FROM_LINES = 50_000  # below this, starting decode processes costs more than it saves


def decode_workers(lines: int | None) -> int:
    """Decode processes for an input of ``lines`` (unknown size: none).

    One per CPU, beside the writing process: they run at a lower priority, so
    they use what the writer leaves idle and never slow it down.
    """
    if lines is None or lines < PARALLEL_FROM_LINES:
        return 0
    return os.cpu_count() or 1

Progress = Callable[[int], None]


def overdue_rows(journeys: Iterable[Journey], as_of: date) -> list[tuple[DueAssessment, int]]:
    rows = []
    for journey in journeys:
        if not journey.reportable:
            continue
        for due in journey.due:
            late = due.days_overdue(as_of)
            if late > 0:
                rows.append((due, late))
    return sorted(rows, key=lambda r: (r[0].patient_id, r[0].assessment))


@dataclass(frozen=True)
class AlertRow:
    """One row of ``journey alerts`` (column order is the contract)."""

    alert_id: str
    patient_id: str
    centre: str | None
    assessment: str
    due_date: date
    window_end: date
    raised_on: date
    status: str  # open | snoozed | resolved
    resolved_on: date | None
    acknowledged_by: str | None
    snoozed_until: date | None


def patient_alerts(patient_id: str, events: list[ClinicalEvent], as_of: date,
                   settings: ClinicalSettings) -> list[AlertState]:
    return alert_states(alert_timeline(patient_id, events, as_of, settings))


def _centre(patient_id: str, events: list[ClinicalEvent]) -> str | None:
    """As the live workers see it (:attr:`Journey.centre`): retracted inclusions do not count."""
    return centre_of(collect_facts(build_history(patient_id, events)))


def project_range(db_url: str, settings: ClinicalSettings, between: tuple[str, str]
                  ) -> tuple[int, Rows]:
    """A rebuild worker's task: fold the patients whose ids are in ``between`` into rows.

    The rows go back to the rebuilding process, the only writer: SQLite has one
    write lock, and a worker waiting for it sleeps in steps of up to 100 ms.
    """
    engine = make_engine(db_url)
    try:
        with bulk_allocation():
            journeys = [project(patient_id, events, settings) for patient_id, events
                        in SqlEventLog(engine).histories(between=between)]
    finally:
        engine.dispose()
    return len(journeys), journey_rows(journeys)


@dataclass(frozen=True)
class EmbeddedStorage:
    """The one database of the embedded deployment: event log, projection store, alert actions."""

    url: str
    database: Engine
    log: SqlEventLog
    store: ProjectionStore
    actions: AlertActionLog

    @classmethod
    def open(cls, url: str, cipher: Cipher | None = None) -> EmbeddedStorage:
        """Connect to ``url`` and create whatever tables are missing.

        ``cipher``: the log's sealer (default: the key store beside the database);
        :class:`~mbcjourney.processors.sealing.PlainText` only for a benchmark's baseline.
        """
        database = make_engine(url)
        log = SqlEventLog(database, cipher)
        # Readers follow the active version of the built-in projection (journey replay
        # + journey projections activate); the unversioned tables until one is activated.
        store = ProjectionStore(database, prefix=active_prefix(database, "journey"))
        actions = AlertActionLog(database)
        log.create()
        store.create()
        actions.create()
        return cls(url, database, log, store, actions)


class EmbeddedEngine:
    """The embedded engine over ``storage``; a context manager that closes it.

    Built by :func:`mbcjourney.bootstrap.open_engine`.  ``EmbeddedEngine(url)``
    (a URL instead of the storage) still opens the storage itself, for scripts
    written against the Python API before there was a composition root.
    """

    def __init__(self, storage: EmbeddedStorage | str,
                 settings: ClinicalSettings = DEFAULT_CLINICAL) -> None:
        if isinstance(storage, str):
            storage = EmbeddedStorage.open(storage)
        self.db_url = storage.url
        self.settings = settings
        self.engine = storage.database
        self.log = storage.log
        self.store = storage.store
        self.actions = storage.actions
        self._worker_owned = False

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> EmbeddedEngine:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # --- writing ---------------------------------------------------------------

    def ingest(self, lines: Iterable[tuple[int, bytes]], *, origin: str, received_at: datetime,
               on_batch: Progress | None = None, workers: int = 0,
               on_item: ItemOutcome | None = None) -> IngestSummary:
        return ingest_lines(lines, self.log, origin=origin, received_at=received_at,
                            on_batch=on_batch, workers=workers, on_item=on_item)

    def catch_up(self, on_patients: Progress | None = None) -> int:
        """Re-project every patient with events the store has not seen; returns how many.

        Nothing on a store live workers own (:meth:`owned_by_workers`): its rows are
        theirs, and re-projecting here would rewrite them behind the workers' backs.
        """
        if self.owned_by_workers():
            log.info("projections.owned_by_workers", skipped="catch_up")
            return 0
        done = self.store.checkpoint(CONSUMER).get(0, 0)
        patient_ids, last = patients_after(self.engine, done)
        if not patient_ids:
            return 0
        self._project(patient_ids, on_patients, replace=True,
                      checkpoints=[Checkpoint(CONSUMER, 0, last)])
        log.info("projections.caught_up", patients=len(patient_ids), position=last)
        return len(patient_ids)

    def owned_by_workers(self) -> bool:
        """Whether live workers write this store: it holds checkpoints of a worker consumer.

        Known once seen (workers never hand a store back); asked again until then.
        """
        if not self._worker_owned:
            t = self.store.checkpoints
            query = select(t.c.consumer).where(
                t.c.consumer.startswith(WORKER_CONSUMER_PREFIX, autoescape=True)).limit(1)
            with self.engine.connect() as conn:
                self._worker_owned = conn.execute(query).first() is not None
        return self._worker_owned

    def rebuild(self, on_patients: Progress | None = None, workers: int = 0) -> int:
        """Drop and rebuild every projection row from the log.

        With ``workers`` > 0 the patients are split into contiguous id ranges folded
        by that many processes; this process writes the rows they send back, and
        saves the checkpoint once all are written.
        """
        self.store.drop()
        self.store.create()
        last = self.log.last_position()
        if workers <= 0:
            count = self._project(None, on_patients, replace=False)
        else:
            count = self._fold_parallel(workers, on_patients)
        self.store.write([], [Checkpoint(CONSUMER, 0, last)], replace=False)
        log.info("projections.rebuilt", patients=count, position=last, workers=workers)
        return count

    def _project(self, patient_ids: list[str] | None, on_patients: Progress | None, *,
                 replace: bool, checkpoints: Sequence[Checkpoint] = ()) -> int:
        """Fold these patients (every one when None) into the store, WRITE_BATCH at a time.

        ``checkpoints`` are saved with the last batch; ``replace`` first deletes the
        patients' old rows (not needed when the tables were just created).
        """
        count = 0
        batch: list[Journey] = []
        with bulk_allocation():
            for patient_id, events in self.log.histories(patient_ids):
                batch.append(project(patient_id, events, self.settings))
                if len(batch) >= WRITE_BATCH:
                    count += self._write(batch, on_patients, replace)
                    batch = []
            count += self._write(batch, on_patients, replace, checkpoints)
        return count

    def _write(self, journeys: list[Journey], on_patients: Progress | None, replace: bool,
               checkpoints: Sequence[Checkpoint] = ()) -> int:
        self.store.write(journeys, checkpoints, replace=replace)
        if on_patients:
            on_patients(len(journeys))
        return len(journeys)

    def _fold_parallel(self, workers: int, on_patients: Progress | None) -> int:
        ids = self.log.patient_ids()
        shards = [(ids[i], ids[min(i + REBUILD_SHARD, len(ids)) - 1])
                  for i in range(0, len(ids), REBUILD_SHARD)]
        count = 0
        with process_pool(workers) as pool:
            futures = [pool.submit(project_range, self.db_url, self.settings, shard)
                       for shard in shards]
            for future in as_completed(futures):
                done, rows = future.result()
                self.store.insert(rows)
                count += done
                if on_patients:
                    on_patients(done)
        return count

    # --- reading ---------------------------------------------------------------

    def journeys(self, view: View = EVERYTHING, patient_ids: list[str] | None = None
                 ) -> Iterator[Journey]:
        """Fold the log on the fly under ``view`` (cut-off, known-at): every patient or these."""
        for patient_id, events in self.log.histories(patient_ids):
            yield project(patient_id, events, self.settings, view)

    def patient_rows(self, view: View = EVERYTHING) -> list[PatientRow]:
        if view == EVERYTHING:
            self.catch_up()
            return self.store.patient_rows()
        return [j.patient for j in self.journeys(view) if j.reportable]

    def line_rows(self, view: View = EVERYTHING) -> list[LineRow]:
        if view == EVERYTHING:
            self.catch_up()
            return self.store.line_rows()
        return [row for j in self.journeys(view) if j.reportable for row in j.lines]

    def finding_rows(self, view: View = EVERYTHING) -> list[Finding]:
        if view == EVERYTHING:
            self.catch_up()
            return self.store.finding_rows()
        return [f for j in self.journeys(view) if j.reportable for f in j.findings]

    def overdue(self, as_of: date, view: View = EVERYTHING, patient_ids: list[str] | None = None
                ) -> list[tuple[DueAssessment, int]]:
        """What ``journey overdue --as-of`` lists (of every patient, or of ``patient_ids``).

        Without a view, a patient whose whole history lies on or before ``as_of``
        (occurred and recorded: :meth:`SqlEventLog.settled`) is cut by nothing, so
        their stored rows are the projection: only the others are folded.
        """
        if view != EVERYTHING:
            return self.overdue_folded(as_of, view, patient_ids)
        self.catch_up()
        settled = self.log.settled(as_of, patient_ids)
        unsettled = (sorted(set(patient_ids) - settled) if patient_ids is not None
                     else [p for p in self.log.patient_ids() if p not in settled])
        rows = [(due, due.days_overdue(as_of))
                for due in self.store.past_windows(as_of, settled)]
        rows += overdue_rows(self.journeys(overdue_view(as_of), unsettled), as_of)
        return sorted(rows, key=lambda r: (r[0].patient_id, r[0].assessment))

    def overdue_folded(self, as_of: date, view: View = EVERYTHING,
                       patient_ids: list[str] | None = None) -> list[tuple[DueAssessment, int]]:
        """:meth:`overdue` by folding every history under the view (the reference)."""
        return overdue_rows(self.journeys(overdue_view(as_of, view), patient_ids), as_of)

    def alerts(self, as_of: date, on_patients: Progress | None = None,
               patient_ids: list[str] | None = None, *, open_only: bool = False
               ) -> list[AlertRow]:
        """Every alert the live system had raised by day ``as_of``, with its status then
        (of every patient, or of ``patient_ids``); ``open_only``: those open then."""
        few = patient_ids is not None and len(patient_ids) <= ACTIONS_BY_PATIENT
        actions = self.actions.latest(end_of_day(as_of), patient_ids if few else None)
        rows = []
        with bulk_allocation():
            for patient_id, events in self.log.histories(patient_ids):
                if open_only and not any_open(patient_id, events, as_of, self.settings):
                    if on_patients:
                        on_patients(1)
                    continue
                centre = _centre(patient_id, events)
                for alert in patient_alerts(patient_id, events, as_of, self.settings):
                    done = actions.get(alert.alert_id, AlertActions())
                    if not alert.is_open:
                        status = "resolved"
                    elif done.snoozed_until is not None and done.snoozed_until >= as_of:
                        status = "snoozed"
                    else:
                        status = "open"
                    rows.append(AlertRow(
                        str(alert.alert_id), patient_id, centre, alert.assessment.value,
                        alert.due_date, alert.window_end, alert.raised_on, status,
                        alert.resolved_on, done.acknowledged_by, done.snoozed_until))
                if on_patients:
                    on_patients(1)
        return [r for r in rows if r.status == "open"] if open_only else rows
