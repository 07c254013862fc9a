"""Erasure records: which patients were erased, when, why and by whom; appended, never altered.

Kept beside the events (not in the key store), so that restoring the key store
from a backup cannot bring a patient back: ``journey keys reconcile`` destroys
again every key these records name.  The table refuses ``UPDATE`` and
``DELETE`` like the audit trail.  A record holds the pseudonymous id and the
operator's words (``--reason``, ``--by``), never patient data; neither is logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Engine, MetaData, String, Table, Text, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mbcjourney.processors.sql import chunked_in, create_tables, utc_text

# The value of a ``patient.erased`` record on the events topic (keyed by the patient,
# so it follows that patient's events in their partition): not JSON, not sealed, so it
# can never be taken for an event; workers drop the patient, replays skip it.
ERASURE_MARK = b"~erased:"
ERASURE_MARK_LEN = len(ERASURE_MARK)


def erasure_record(patient_id: str) -> bytes:
    """The value of the ``patient.erased`` record of ``patient_id``."""
    return ERASURE_MARK + patient_id.encode()


def erased_patient(value: bytes) -> str | None:
    """The patient a ``patient.erased`` record names (None: not one)."""
    if value[:ERASURE_MARK_LEN] != ERASURE_MARK:
        return None
    return value[ERASURE_MARK_LEN:].decode(errors="replace") or None


metadata = MetaData()

erasures_table = Table(
    "erasures",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("erased_at", String(32), nullable=False),  # ISO UTC instant
    Column("reason", Text, nullable=False),
    Column("erased_by", String(200), nullable=False),
)

_GUARDS = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS erasures_no_update BEFORE UPDATE ON erasures "
        "BEGIN SELECT RAISE(ABORT, 'erasures is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS erasures_no_delete BEFORE DELETE ON erasures "
        "BEGIN SELECT RAISE(ABORT, 'erasures is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION erasures_append_only() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'erasures is append-only'; END $$",
        "DROP TRIGGER IF EXISTS erasures_append_only ON erasures",
        "CREATE TRIGGER erasures_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON erasures "
        "FOR EACH STATEMENT EXECUTE FUNCTION erasures_append_only()",
    ],
}


@dataclass(frozen=True)
class Erasure:
    patient_id: str
    erased_at: str
    reason: str
    erased_by: str


class ErasureLog:
    """The erasure records of one log's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._known: set[str] = set()

    def create(self) -> None:
        create_tables(metadata, self.engine)
        with self.engine.begin() as conn:
            for statement in _GUARDS.get(conn.dialect.name, []):
                conn.execute(text(statement))

    def record(self, patient_id: str, at: datetime, reason: str, by: str) -> bool:
        """Append the erasure of ``patient_id``; False if it was erased before (kept as it was)."""
        with self.engine.begin() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            done = conn.execute(insert(erasures_table).values(
                patient_id=patient_id, erased_at=utc_text(at), reason=reason, erased_by=by,
            ).on_conflict_do_nothing()).rowcount
        self._known.add(patient_id)
        return bool(done)

    def erased(self, patient_ids: Iterable[str]) -> set[str]:
        """Which of these patients were erased."""
        wanted = sorted(set(patient_ids) - self._known)
        if wanted:
            t = erasures_table
            with self.engine.connect() as conn:
                for among in chunked_in(conn, t.c.patient_id, wanted):
                    self._known.update(conn.execute(select(t.c.patient_id).where(among)).scalars())
        return self._known.intersection(patient_ids)

    def all(self) -> list[Erasure]:
        with self.engine.connect() as conn:
            return [Erasure(r.patient_id, r.erased_at, r.reason, r.erased_by) for r in
                    conn.execute(select(erasures_table).order_by(erasures_table.c.erased_at))]
