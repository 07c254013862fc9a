"""Live alerting: overdue windows raised and resolved as the workers project patients.

The rule is :mod:`mbcjourney.projections.alerts` (one alert per window, keyed by
:func:`~mbcjourney.projections.alerts.alert_id`); this module runs it against the
projection store, at two moments:

* **per patient**, inside the worker's projection transaction
  (:meth:`LiveAlerts.write`): the patient's new due rows are compared with its
  alerts -- new overdue windows are raised, windows no longer overdue resolved
  (the assessment arrived, the patient died, was lost or withdrew, or a correction
  moved the window), a window that came back reopens its alert;
* **on a timer** (:meth:`LiveAlerts.tick`, leader worker only): windows that passed
  with time.  The tick reads only due rows whose window ended since the previous
  tick and that have no open alert (``due_assessments.window_end`` is indexed);
  every 60th tick, and a new leader's first, re-reads every past window.  It never
  re-projects anyone.

"Today" is the UTC day of an injected :data:`Clock`.

**Memory and publishing.**  The ``alerts`` table is the memory of what was raised,
one row per alert id: state (``open``/``resolved``), raised and resolved days and
instants, and the state last published (``emitted``, ``pending``).  A transition is
recorded in the same transaction as the projection rows that caused it (or as the
tick's read of the due rows), then published to ``mbc.alerts`` after the commit,
and marked published: an outbox.  Whatever is recorded but not yet published --
a crash between commit and publish, a broker outage -- is published by the next
flush (after every write, and on every tick).  So a restart never loses an alert,
and never raises one twice: the table holds each alert id exactly once; the topic
gets each transition at least once (receivers deduplicate on ``alert_id``).

**Reaching people.**  The tick hands the webhook delivery the *settled* open
alerts (:meth:`LiveAlerts.settled`): those raised before an instant whose whole
event log the store has read since.  A worker catching up on a backlog sees
half-read histories and raises alerts that later facts resolve a moment after;
those stay on the topic and in the table, resolved, and never reach a person.

**Concurrency** (PostgreSQL, READ COMMITTED).  A worker's write deletes the
patient's due rows before it reads the patient's alerts.  The tick locks the due
rows it acts on (``FOR SHARE ... SKIP LOCKED``): it never acts on a patient a
worker is writing at that moment (that worker evaluates the patient itself), and a
worker's write waits for a tick that holds the patient's rows, then sees its
alerts.  Inserts are ``ON CONFLICT DO NOTHING`` in key order, updates are guarded
by the state read, and the outbox is read ``FOR UPDATE SKIP LOCKED``: two
evaluators (a second leader during a rebalance, a zombie worker) can neither
raise an alert twice nor publish a transition twice, except after a crash.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import (
    Connection,
    CursorResult,
    Table,
    and_,
    bindparam,
    cast,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from mbcjourney.events.alerts import Assessment
from mbcjourney.events.errors import ServiceUnavailable
from mbcjourney.processors.alerting.config import DEFAULT_INTERVAL_S, Clock, system_clock
from mbcjourney.processors.alerting.emitter import Emitter
from mbcjourney.processors.alerting.tables import (
    _RECORD_COLUMNS,
    OPEN,
    RESOLVED,
    AlertRecord,
    AlertTables,
)
from mbcjourney.processors.applied_events import PendingRow, append_applied_in
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.sql import among, chunked_in, insert_ignoring_conflicts
from mbcjourney.processors.store import Checkpoint, ProjectionStore
from mbcjourney.projections import Journey
from mbcjourney.projections.alerts import alert_id, overdue_on, utc_day
from mbcjourney.projections.schedule import DueAssessment

log = structlog.get_logger(__name__)

FLUSH_BATCH = 2_000
FULL_SWEEP_TICKS = 60  # every past window re-read once an hour at the default interval
MAX_MARKS = 512


@dataclass
class Changes:
    """How many alerts one evaluation raised, reopened and resolved."""

    raised: int = 0
    reopened: int = 0
    resolved: int = 0

    def counts(self) -> dict[str, int]:
        return {"raised": self.raised, "reopened": self.reopened, "resolved": self.resolved}


@dataclass(frozen=True)
class TickStats:
    day: date
    candidates: int
    raised: int
    reopened: int
    published: int
    settled_before: datetime | None  # alerts raised before this were handed to delivery
    elapsed_ms: float


class Delivery(Protocol):
    """Where open alerts go to reach people (the webhooks); at least once, by alert id."""

    def deliver_raised_before(self, instant: datetime) -> None:
        """Deliver every alert still open, raised before ``instant``, never delivered.

        May work in the background and return at once.
        """


class Progress(Protocol):
    """How far the projection store has read the event log, per partition."""

    def ends(self) -> Mapping[int, int]:
        """The next offset to be written, per partition of the event topic, now."""

    def done(self) -> Mapping[int, int]:
        """The last offset projected, per partition (the store's checkpoints)."""


class LiveAlerts:
    """Alert evaluation against a projection store (see the module docstring).

    ``emitter`` None records transitions without publishing them (they stay
    pending).  ``delivery`` gets, on each tick, the alerts that are *settled*:
    still open although the store has since caught up with everything the event
    log held after they were raised (``progress``; without it, every open
    alert).  A worker catching up on a backlog raises alerts from half-read
    histories and resolves them a moment later; people never hear of those.
    """

    def __init__(self, store: ProjectionStore, *, clock: Clock = system_clock,
                 emitter: Emitter | None = None, delivery: Delivery | None = None,
                 progress: Progress | None = None, tables: AlertTables | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S, event_log: SqlEventLog | None = None
                 ) -> None:
        self.store = store
        # where the worker's applied events go, in its write (beside the store by default)
        self.event_log = event_log if event_log is not None else SqlEventLog(store.engine)
        self.log_conflicts = 0
        self.engine = store.engine
        self.clock = clock
        self.emitter = emitter
        self.delivery = delivery
        self.progress = progress
        self._marks: list[tuple[datetime, Mapping[int, int]]] = []  # (when, end offsets then)
        self._settled: datetime | None = None
        self._last_day: date | None = None  # "today" of the last tick
        self._ticks = 0
        self.tables = tables or AlertTables(store.prefix)
        self.interval_s = interval_s

    def create(self) -> None:
        self.tables.create(self.engine)

    # --- per patient (the worker's write) ------------------------------------------

    def write(self, journeys: Sequence[Journey], checkpoints: Iterable[Checkpoint] = (),
              events: Sequence[PendingRow] = ()) -> Changes:
        """The worker's write: rows, checkpoints, alert transitions and the applied events
        (into the SQL event log, last: see ``LoggedStore``) in one transaction.

        Then publishes what is pending; a broker failure leaves it pending for the
        next flush (the rows are committed: the worker must not redo them).
        """
        now = self.clock()
        with self.engine.begin() as conn:
            self.store.write_in(conn, journeys, checkpoints)
            changes = self.evaluate_in(conn, journeys, now)
            self.log_conflicts += append_applied_in(self.event_log, conn, events)
        if any(changes.counts().values()):
            log.info("alerts.evaluated", patients=len(journeys), **changes.counts())
        self.after_commit()
        return changes

    def evaluate_in(self, conn: Connection, journeys: Sequence[Journey], now: datetime
                    ) -> Changes:
        """Compare these patients' due rows (as just written) with their alerts."""
        today = utc_day(now)
        t, p = self.tables.alerts, self.tables.patients
        ids = sorted({j.patient_id for j in journeys})
        current: dict[str, dict[str, str]] = {}  # patient -> alert id -> state
        for among_ids in chunked_in(conn, t.c.patient_id, ids):
            for row in conn.execute(select(t.c.alert_id, t.c.patient_id, t.c.state)
                                    .where(among_ids)):
                current.setdefault(row.patient_id, {})[row.alert_id] = row.state
        centres = _centres(conn, p, ids)

        changes = Changes()
        new: list[dict[str, object]] = []
        reopen: list[str] = []
        resolve: list[str] = []
        moved: list[tuple[str, str | None, bool]] = []  # (patient, centre, known before)
        for journey in sorted({j.patient_id: j for j in journeys}.values(),
                              key=lambda j: j.patient_id):
            pid = journey.patient_id
            overdue = overdue_on(journey.due, today) if journey.reportable else {}
            known = current.get(pid, {})
            for key, due in sorted(overdue.items(), key=lambda kv: kv[1]):
                state = known.get(str(key))
                if state is None:
                    new.append(_new_row(key, due, journey.centre, now))
                elif state == RESOLVED:
                    reopen.append(str(key))
            resolve += sorted(k for k, state in known.items()
                              if state == OPEN and uuid.UUID(k) not in overdue)
            if journey.reportable and (pid not in centres or centres[pid] != journey.centre):
                moved.append((pid, journey.centre, pid in centres))

        if new:
            changes.raised = _insert_new(conn, t, new)
        if reopen:
            changes.reopened = _reopen(conn, t, reopen)
        if resolve:
            changes.resolved = _changed(conn.execute(
                update(t).where(among(conn, t.c.alert_id, resolve), t.c.state == OPEN)
                .values(state=RESOLVED, resolved_on=today, resolved_at=now, pending=True)))
        if moved:
            _route(conn, self.tables, moved)
        return changes

    # --- timer -----------------------------------------------------------------------

    def tick(self, *, deliver: bool = True, full: bool | None = None) -> TickStats:
        """Raise the windows that passed with time; publish what is pending; deliver.

        Cheap whatever the cohort size: an indexed read of the due rows whose
        window ended since the previous tick (the day before it, to be safe) and
        have no open alert.  Windows written already past are the writing
        worker's to raise; still, every ``FULL_SWEEP_TICKS``-th tick (and the
        first, e.g. on a new leader) reads every past window (``full``).
        """
        started = time.perf_counter()
        now = self.clock()
        today = utc_day(now)
        if full is None:
            full = self._last_day is None or self._ticks % FULL_SWEEP_TICKS == 0
        since = None if full or self._last_day is None else self._last_day - timedelta(days=1)
        d, t = self.store.due, self.tables.alerts
        window = and_(t.c.patient_id == d.c.patient_id, t.c.assessment == d.c.assessment,
                      t.c.due_date == d.c.due_date)
        query = (select(d.c.patient_id, d.c.assessment, d.c.last_done, d.c.due_date,
                        d.c.window_end, t.c.state)
                 .select_from(d.outerjoin(t, window))
                 .where(d.c.window_end < today, or_(t.c.state.is_(None), t.c.state != OPEN))
                 .order_by(d.c.patient_id, d.c.assessment, d.c.due_date)
                 .with_for_update(read=True, skip_locked=True, of=d))
        if since is not None:
            query = query.where(d.c.window_end >= since)
        changes = Changes()
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
            fresh = [r for r in rows if r.state is None]
            centres = _centres(conn, self.tables.patients, {r.patient_id for r in fresh})
            new = [_new_row(alert_id(r.patient_id, r.assessment, r.due_date),
                            DueAssessment(r.patient_id, Assessment(r.assessment), r.last_done,
                                          r.due_date, r.window_end),
                            centres.get(r.patient_id), now)
                   for r in fresh]
            if new:
                changes.raised = _insert_new(conn, t, new)
            reopen = [str(alert_id(r.patient_id, r.assessment, r.due_date))
                      for r in rows if r.state == RESOLVED]
            if reopen:
                changes.reopened = _reopen(conn, t, reopen)
        self._ticks += 1
        self._last_day = today
        published = self.after_commit()
        settled = self.settled(now) if deliver and self.delivery is not None else None
        if settled is not None and self.delivery is not None:
            self.delivery.deliver_raised_before(settled)
        stats = TickStats(today, len(rows), changes.raised, changes.reopened, published,
                          settled, round((time.perf_counter() - started) * 1000, 1))
        log.info("alerts.tick", day=today.isoformat(), full=full, candidates=stats.candidates,
                 raised=stats.raised, reopened=stats.reopened, published=stats.published,
                 settled_before=settled.isoformat() if settled else None,
                 elapsed_ms=stats.elapsed_ms)
        return stats

    def settled(self, now: datetime) -> datetime | None:
        """The latest tick instant whose log the store has since read entirely.

        An alert raised before it and open now survived every fact the log held
        then: not an artefact of a half-read backlog.  Without ``progress``: now.
        """
        if self.progress is None:
            return now
        self._marks.append((now, dict(self.progress.ends())))
        if len(self._marks) > MAX_MARKS:  # never caught up for long: keep the span, thinned
            self._marks = self._marks[::2]
        done = self.progress.done()
        caught = [at for at, ends in self._marks
                  if all(done.get(p, -1) >= end - 1 for p, end in ends.items())]
        if caught:
            self._settled = max(caught)
            self._marks = [(at, ends) for at, ends in self._marks if at > self._settled]
        return self._settled

    def timer_tick(self) -> None:
        """The faust timer's body: a failed tick is logged and retried at the next one."""
        try:
            self.tick()
        except Exception as exc:  # database or broker trouble: the next tick retries
            log.warning("alerts.tick_failed", error=type(exc).__name__)

    # --- publishing ------------------------------------------------------------------

    def after_commit(self) -> int:
        """Publish what is pending; a broker failure leaves it for the next flush."""
        try:
            return self.flush()
        except ServiceUnavailable as exc:
            log.warning("alerts.publish_deferred", error=str(exc))
            return 0

    def flush(self) -> int:
        """Publish every pending transition, then mark it published; returns messages sent."""
        if self.emitter is None:
            return 0
        t = self.tables.alerts
        published = 0
        while True:
            with self.engine.begin() as conn:
                rows = [AlertRecord(*r) for r in conn.execute(
                    select(*(t.c[c] for c in _RECORD_COLUMNS)).where(t.c.pending)
                    .limit(FLUSH_BATCH).with_for_update(skip_locked=True))]
                if not rows:
                    return published
                messages = [m for r in rows for m in r.unpublished()]
                if messages:
                    self.emitter.emit(messages)
                # the rows are locked (FOR UPDATE): their state is the one just published
                conn.execute(update(t).where(among(conn, t.c.alert_id, [r.alert_id for r in rows]))
                             .values(pending=False, emitted=t.c.state))
            published += len(messages)
            log.info("alerts.published", messages=len(messages), alerts=len(rows))
            if len(rows) < FLUSH_BATCH:
                return published

    # --- reading -------------------------------------------------------------------------

    def records(self, patient_ids: Iterable[str] | None = None) -> list[AlertRecord]:
        """Rows of the alerts table (all, or these patients'), by patient and window."""
        t = self.tables.alerts
        query = select(*(t.c[c] for c in _RECORD_COLUMNS)).order_by(
            t.c.patient_id, t.c.assessment, t.c.due_date)
        if patient_ids is not None:
            query = query.where(t.c.patient_id.in_(sorted(set(patient_ids))))
        with self.engine.connect() as conn:
            return [AlertRecord(*r) for r in conn.execute(query)]


def _new_row(key: uuid.UUID, due: DueAssessment, centre: str | None, now: datetime
             ) -> dict[str, object]:
    return {"alert_id": str(key), "patient_id": due.patient_id, "centre": centre,
            "assessment": due.assessment.value, "due_date": due.due_date,
            "window_end": due.window_end, "state": OPEN, "raised_on": utc_day(now),
            "raised_at": now, "resolved_on": None, "resolved_at": None, "emitted": None,
            "pending": True}


def _insert_new(conn: Connection, t: Table, rows: list[dict[str, object]]) -> int:
    """Insert alerts in key order (two evaluators never deadlock); existing ones stay.

    Returns how many were new.  On PostgreSQL, one statement whatever the number:
    each column's values as one array parameter, unnested.
    """
    rows.sort(key=lambda r: str(r["alert_id"]))
    if conn.dialect.name != "postgresql":
        return _changed(conn.execute(insert_ignoring_conflicts(conn, t), rows))
    names = [n for n in rows[0] if any(r[n] is not None for r in rows)]  # others: NULL
    arrays = [func.unnest(cast(bindparam(None, [r[n] for r in rows],
                                         type_=postgresql.ARRAY(t.c[n].type)),
                               postgresql.ARRAY(t.c[n].type))).label(n) for n in names]
    statement = (postgresql.insert(t).from_select(names, select(*arrays))
                 .on_conflict_do_nothing().returning(t.c.alert_id))
    return len(conn.execute(statement).all())


def _reopen(conn: Connection, t: Table, keys: list[str]) -> int:
    """A resolved window overdue again: the same alert, open again (first raise kept)."""
    return _changed(conn.execute(
        update(t).where(among(conn, t.c.alert_id, sorted(keys)), t.c.state == RESOLVED)
        .values(state=OPEN, resolved_on=None, resolved_at=None, pending=True)))


def _changed(result: CursorResult[Any]) -> int:
    return max(0, result.rowcount)


def _centres(conn: Connection, p: Table, patient_ids: Iterable[str]) -> dict[str, str | None]:
    ids = sorted(set(patient_ids))
    found: dict[str, str | None] = {}
    for among_ids in chunked_in(conn, p.c.patient_id, ids):
        found.update((pid, centre) for pid, centre in conn.execute(
            select(p.c.patient_id, p.c.centre).where(among_ids)))
    return found


def _route(conn: Connection, tables: AlertTables, moved: list[tuple[str, str | None, bool]]
           ) -> None:
    """Remember each patient's centre (the tick routes by it); move their alerts along."""
    p, t = tables.patients, tables.alerts
    fresh = [{"patient_id": pid, "centre": centre} for pid, centre, known in moved if not known]
    if fresh:
        conn.execute(insert_ignoring_conflicts(conn, p), fresh)
    changed = [{"pid": pid, "c": centre} for pid, centre, known in moved if known]
    if changed:
        conn.execute(update(p).where(p.c.patient_id == bindparam("pid"))
                     .values(centre=bindparam("c")), changed)
        conn.execute(update(t).where(t.c.patient_id == bindparam("pid"))
                     .values(centre=bindparam("c")), changed)
