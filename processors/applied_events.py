"""The events a live worker applied, on their way into the SQL event log with its rows.

The workers' histories (a faust table) are their own record of the events; the SQL
event log (:mod:`~mbcjourney.processors.eventlog`) is what the readers of a
PostgreSQL store fold (``--cutoff``, ``--known-at``, ``overdue --as-of``, a
patient's history, ``journey alerts``).  So every event a worker applies to a
history as new is appended to the log **in the transaction of the rows and
checkpoints that cover it** (:func:`append_applied_in`): a crash leaves both or
neither, and a redelivery or replay appends nothing (``ON CONFLICT DO NOTHING``
on ``event_id``: a duplicate).

Until that write, a worker holds a :class:`PendingRow` per event: the row's
small columns and the body bytes its history already holds (the same object),
so events deferred far behind a backlog cost little more than a reference.

**Conflicts.**  On Kafka an ``event_id`` is unique per patient (each history
decides alone), in the SQL log globally.  An event the worker applied but the log
refuses as a conflict (the same id under another patient, or stored earlier with
other content, e.g. by ``journey ingest`` into the same database) stays out of the
log; the worker's histories remain the truth for its rows.  Each such write logs
one warning with the ids and the count (:data:`CONFLICTS_LOGGED` ids at most).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import structlog
from sqlalchemy import Connection

from mbcjourney.events import ClinicalEvent
from mbcjourney.events.codec import body_hash
from mbcjourney.processors.eventlog import EventRow, SqlEventLog
from mbcjourney.processors.sql import utc_text

log = structlog.get_logger(__name__)

CONFLICTS_LOGGED = 20  # ids named in one warning


class PendingRow(NamedTuple):
    """An applied event's log row before its write: the body still as the history's bytes."""

    event_id: str
    event_type: str
    schema_version: int
    patient_id: str
    occurred_on: str
    recorded_at: str
    body: bytes

    def row(self) -> EventRow:
        """The events-table row, as :func:`~mbcjourney.processors.eventlog.event_row` makes it."""
        body = self.body
        return EventRow(self.event_id, self.event_type, self.schema_version, self.patient_id,
                        self.occurred_on, self.recorded_at, body_hash(body), body.decode())


def pending_row(event: ClinicalEvent, body: bytes) -> PendingRow:
    """``body`` is the validated bytes admission returned (what ingest would store)."""
    return PendingRow(str(event.event_id), event.event_type, event.schema_version,
                      event.patient_id, event.occurred_on.isoformat(),
                      utc_text(event.recorded_at), body)


def append_applied_in(event_log: SqlEventLog, conn: Connection, pending: Sequence[PendingRow]
                      ) -> int:
    """Append applied events in ``conn``'s transaction; returns how many the log refused.

    Call it last in the transaction: it holds the log's lock until the commit.
    """
    if not pending:
        return 0
    rows = [p.row() for p in pending]
    accepted, duplicates, conflicts = event_log.append_rows_in(conn, rows)
    if conflicts:
        log.warning("worker.log_conflicts", conflicts=len(conflicts),
                    event_ids=[rows[i].event_id for i in conflicts[:CONFLICTS_LOGGED]],
                    patient_ids=sorted({rows[i].patient_id
                                        for i in conflicts[:CONFLICTS_LOGGED]}))
    if duplicates:
        log.info("worker.log_duplicates", duplicates=duplicates, appended=len(accepted))
    return len(conflicts)
