"""The audit trail: who read or changed which patients' data, appended and never altered.

The service appends one record per request that returns or changes
patient-level data, before the response is sent; a request whose record cannot
be written fails.  The table refuses ``UPDATE`` and ``DELETE`` (a trigger on
SQLite and PostgreSQL alike), so even the service's own database role cannot
rewrite history through it.  Records hold ids, counts and filter names, never
payload values or free text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, insert, select, text

from mbcjourney.processors.sql import create_tables, utc_text

metadata = MetaData()

audit_table = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False, index=True),  # ISO UTC instant, sorts as text
    Column("request_id", String(64), nullable=False),
    Column("token_name", String(100), nullable=False),
    Column("scope", String(32), nullable=False),
    Column("method", String(8), nullable=False),
    Column("route", String(100), nullable=False),  # the route template, not the URL
    Column("status", Integer, nullable=False),
    Column("patient_ids", Text, nullable=False),  # space-separated; "" for none
    Column("row_count", Integer),  # exports and lists: rows returned
    Column("filters", Text, nullable=False),  # "name=value" pairs of the query, space-separated
)

_GUARDS = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$",
        "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    ],
}


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    request_id: str
    token_name: str
    scope: str
    method: str
    route: str
    status: int
    patient_ids: tuple[str, ...] = ()
    row_count: int | None = None
    filters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AuditRow:
    """One row of ``journey audit`` (column order is the contract)."""

    at: str
    request_id: str
    token_name: str
    scope: str
    method: str
    route: str
    status: int
    patient_ids: str
    row_count: int | None
    filters: str


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # One append at a time in this process: concurrent request threads would
        # otherwise meet at SQLite's write lock, whose busy handler sleeps in steps
        # of up to 100 ms (p50 of a patient read was 384 ms at 32 connections).
        self._appending = threading.Lock()

    def create(self) -> None:
        create_tables(metadata, self.engine)
        guards = _GUARDS.get(self.engine.dialect.name, [])
        if guards:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # one creator at a time
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7316001)")
                for statement in guards:
                    conn.execute(text(statement))

    def append(self, record: AuditRecord) -> None:
        """Append ``record`` and commit; raises if it cannot be written."""
        with self._appending, self.engine.begin() as conn:
            conn.execute(insert(audit_table).values(
                at=utc_text(record.at), request_id=record.request_id,
                token_name=record.token_name, scope=record.scope, method=record.method,
                route=record.route, status=record.status,
                patient_ids=" ".join(record.patient_ids), row_count=record.row_count,
                filters=" ".join(f"{k}={v}" for k, v in record.filters)))

    def rows(self, *, patient: str | None = None, token: str | None = None,
             since: datetime | None = None) -> list[AuditRow]:
        """The records, oldest first; those naming ``patient``, by ``token``, from ``since``."""
        t = audit_table
        query = select(*(t.c[name] for name in _COLUMNS)).order_by(t.c.id)
        if token is not None:
            query = query.where(t.c.token_name == token)
        if since is not None:
            query = query.where(t.c.at >= utc_text(since))
        if patient is not None:  # a coarse filter in SQL, exact below
            query = query.where(t.c.patient_ids.contains(patient))
        with self.engine.connect() as conn:
            found = [AuditRow(*row) for row in conn.execute(query)]
        if patient is not None:
            found = [r for r in found if patient in r.patient_ids.split()]
        return found


_COLUMNS: Sequence[str] = tuple(AuditRow.__dataclass_fields__)


def filters_of(params: Iterable[tuple[str, str]], allowed: Iterable[str]) -> tuple[
        tuple[str, str], ...]:
    """The query's filters worth recording: only known parameter names, values clipped."""
    names = set(allowed)
    return tuple((k, v[:64]) for k, v in params if k in names)
