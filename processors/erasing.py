"""Erasing a patient (consent withdrawn, right to erasure): every store, one operation.

The log is immutable and copied everywhere (Kafka, changelogs, backups), so a
patient's events are never rewritten: they are sealed with the patient's data
key (:mod:`.sealing`), and destroying that key makes every copy unreadable.
What is not sealed by design -- the projection rows derived from the events
(patients, lines, due assessments, findings, centres, watermarks, alert actions,
every replayed projection version) and the dead letters -- is deleted here.

Order matters: the erasure record first (so a crash half-way is finished by
``journey keys reconcile``, and no new key can be made meanwhile), then the key,
then the derived rows.  On SQLite the database is vacuumed and its write-ahead
log truncated afterwards, so no deleted page is left behind in either file.

Kept: the audit trail (who read which pseudonymous id, when: an obligation of
its own) and the erasure record itself (pseudonymous id, date, the operator's
reason and name).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Engine, MetaData, Table, delete, inspect
from sqlalchemy.exc import OperationalError

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.sealing import Sealer

log = structlog.get_logger(__name__)

# Tables with a patient_id column that erasure keeps: the sealed log itself (noise once
# the key is gone), the erasure records, the audit trail.
KEPT_TABLES = frozenset({"events", "erasures", "audit_log"})


@dataclass(frozen=True)
class ErasureResult:
    """What one erasure did (counts only: never a patient value)."""

    newly_recorded: bool  # False: the patient had been erased before (done again, harmlessly)
    keys_destroyed: int
    events_sealed: int  # the patient's events in the log, unreadable from now on
    rows_deleted: dict[str, int]  # table -> rows removed
    dead_letters_deleted: int


def erase_patient(event_log: SqlEventLog, patient_id: str, *, reason: str, by: str,
                  at: datetime) -> ErasureResult:
    """Erase ``patient_id`` from the log's database and its key store (see the module)."""
    cipher = event_log.cipher
    if not isinstance(cipher, Sealer):
        raise ConfigurationError("this log is not encrypted, so erasure cannot shred it: "
                                 "run `journey keys encrypt-log` first")
    if not reason.strip() or not by.strip():
        raise ConfigurationError("an erasure needs --reason and --by (kept in its record)")
    event_log.create()
    newly = event_log.erasures.record(patient_id, at, reason, by)
    destroyed = cipher.keys.destroy([patient_id], at)
    cipher.forget([patient_id])
    events = event_log.count_of(patient_id)
    letters = event_log.letters.remove_patient(patient_id)
    rows = remove_derived_rows(event_log.engine, patient_id)
    scrub(event_log.engine)
    log.info("patient.erased", keys_destroyed=destroyed, events_sealed=events,
             rows_deleted=sum(rows.values()), dead_letters_deleted=letters)
    return ErasureResult(newly, destroyed, events, rows, letters)


def remove_derived_rows(engine: Engine, patient_id: str) -> dict[str, int]:
    """Delete the patient's rows from every table with a ``patient_id`` column but the
    kept ones: the projection tables of every version and prefix, watermarks, alert
    actions, staging.  Returns the count per table (those with any)."""
    metadata = MetaData()
    removed: dict[str, int] = {}
    names = [name for name in inspect(engine).get_table_names() if name not in KEPT_TABLES]
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
        for name in names:
            table = Table(name, metadata, autoload_with=conn)
            if "patient_id" not in table.c:
                continue
            count = conn.execute(delete(table).where(table.c.patient_id == patient_id)).rowcount
            if count:
                removed[name] = int(count)
    return removed


def scrub(engine: Engine) -> None:
    """SQLite: rewrite the file without free pages and empty the write-ahead log, so the
    bytes of deleted rows are nowhere in either file.  (PostgreSQL keeps dead tuples until
    its vacuum; ``pg_dump`` and readers never see them.)"""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except OperationalError:  # busy (a reader in the service): the rows are gone already,
        # zeroed by secure_delete; older free pages wait for the next `journey erase`
        log.warning("erasure.vacuum_deferred")
