"""The projection store: the output contract's rows in SQL, written idempotently.

Rows are keyed by patient: writing a patient replaces all of that patient's rows
in one transaction, together with the checkpoint of how far the writer has read
(``consumer``, ``partition``, ``position``).  A redelivered or replayed event
therefore changes nothing, and a crash between the two is impossible.

A store can live under a table prefix, so replay builds new versions
(``v2_patients`` ...) beside the active ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    text,
)

from mbcjourney.processors.db import BulkInsert
from mbcjourney.processors.sql import chunked_in, create_tables
from mbcjourney.projections.findings import Finding, FindingKind
from mbcjourney.projections.journey import Journey, LineRow, PatientRow
from mbcjourney.projections.schedule import Assessment, DueAssessment

T = TypeVar("T")

Row = tuple[Any, ...]
Rows = tuple[list[Row], list[Row], list[Row], list[Row], list[Row]]
"""Journeys' rows as plain tuples, per patient table: patients, lines, due, findings, centres."""


@dataclass(frozen=True)
class PatientCentre:
    """Which centre a patient belongs to: what the service's centre restrictions filter on.

    Not part of the output contract (the exports are pseudonymised tables without
    it); kept beside the patient rows so a centre's patients are one indexed query.
    """

    patient_id: str
    centre: str | None


# The row type of each patient table, in the order of :data:`Rows`.
_ROW_TYPES: tuple[type[Any], ...] = (PatientRow, LineRow, DueAssessment, Finding, PatientCentre)


def journey_rows(journeys: Iterable[Journey]) -> Rows:
    """The rows of the reportable ``journeys``, each a tuple of its fields in order.

    Plain tuples rather than the row objects: a rebuild worker sends them to the
    one process that writes, and they pickle compactly.
    """
    kept = [j for j in journeys if j.reportable]
    patient, line, due, finding, centre = (_values(cls) for cls in _ROW_TYPES)
    return ([patient(j.patient) for j in kept],
            [line(r) for j in kept for r in j.lines],
            [due(d) for j in kept for d in j.due],
            [finding(f) for j in kept for f in j.findings],
            [centre(j) for j in kept])  # a journey has the PatientCentre fields


def _values(cls: type[Any]) -> Callable[[Any], Row]:
    """A function returning a ``cls`` row's field values as a tuple."""
    names = _names(cls)
    if len(names) == 1:
        return lambda row: (getattr(row, names[0]),)
    return attrgetter(*names)


@dataclass(frozen=True)
class Checkpoint:
    consumer: str
    partition: int
    position: int


class ProjectionStore:
    """Patients, lines, due assessments and findings tables, plus the read checkpoints."""

    def __init__(self, engine: Engine, prefix: str = "") -> None:
        self.engine = engine
        self.prefix = prefix
        md = self.metadata = MetaData()
        p = prefix
        self.patients = Table(
            f"{p}patients", md,
            Column("patient_id", String(64), primary_key=True),
            Column("inclusion_date", Date),
            Column("group", String(8), nullable=False),
            Column("hr_status", String(16), nullable=False),
            Column("her2_status", String(16), nullable=False),
            Column("her2_low", Boolean),
            Column("receptor_conversion", Boolean, nullable=False),
            Column("current_line", Integer),
            Column("current_regimen", Text),
            Column("status", String(24), nullable=False),
            Column("first_line_concordant", String(8), nullable=False),
        )
        self.lines = Table(
            f"{p}lines", md,
            Column("patient_id", String(64), primary_key=True),
            Column("line_number", Integer, primary_key=True),
            Column("regimen", Text, nullable=False),
            Column("start_date", Date, nullable=False),
            Column("end_date", Date),
            Column("end_reason", String(24)),
            Column("progression_date", Date),
            Column("ttp_days", Integer, nullable=False),
            Column("ttp_event", Boolean, nullable=False),
            Column("pfs_days", Integer, nullable=False),
            Column("pfs_event", Boolean, nullable=False),
            Column("ttnt_days", Integer, nullable=False),
            Column("ttnt_event", Boolean, nullable=False),
            Column("best_response", String(4)),
            Column("line_source", String(8), nullable=False, server_default="declared"),
        )
        self.due = Table(
            f"{p}due_assessments", md,
            Column("patient_id", String(64), primary_key=True),
            Column("assessment", String(16), primary_key=True),
            Column("last_done", Date),
            Column("due_date", Date, nullable=False),
            Column("window_end", Date, nullable=False, index=True),
        )
        self.findings = Table(
            f"{p}findings", md,
            Column("patient_id", String(64), primary_key=True),
            Column("finding", String(48), primary_key=True),
            Column("event_id", String(36), primary_key=True),
            Column("detail", String(200), primary_key=True),
        )
        self.centres = Table(
            f"{p}patient_centres", md,
            Column("patient_id", String(64), primary_key=True),
            Column("centre", String(64), index=True),
        )
        self.checkpoints = Table(
            f"{p}checkpoints", md,
            Column("consumer", String(100), primary_key=True),
            Column("partition", Integer, primary_key=True),
            Column("position", BigInteger, nullable=False),
        )
        self._patient_tables = (self.patients, self.lines, self.due, self.findings,
                                self.centres)
        self._inserts = tuple(BulkInsert(table, engine.dialect, _names(cls))
                              for table, cls in zip(self._patient_tables, _ROW_TYPES, strict=True))

    def create(self) -> None:
        create_tables(self.metadata, self.engine)
        self._add_line_source()

    def _add_line_source(self) -> None:
        """A store from before derived lines (issue 18) gains ``line_source``, 'declared'."""
        held = {c["name"] for c in inspect(self.engine).get_columns(self.lines.name)}
        if "line_source" not in held:
            with self.engine.begin() as conn:
                conn.execute(text(f'ALTER TABLE "{self.lines.name}" ADD COLUMN line_source '
                                  "VARCHAR(8) NOT NULL DEFAULT 'declared'"))

    def drop(self) -> None:
        self.metadata.drop_all(self.engine)

    # --- writing ---------------------------------------------------------------

    def write(self, journeys: Sequence[Journey], checkpoints: Iterable[Checkpoint] = (),
              *, replace: bool = True, erase: Iterable[str] = ()) -> None:
        """Replace these patients' rows and move checkpoints forward, atomically."""
        with self.engine.begin() as conn:
            self.write_in(conn, journeys, checkpoints, replace=replace, erase=erase)

    def write_in(self, conn: Connection, journeys: Sequence[Journey],
                 checkpoints: Iterable[Checkpoint] = (), *, replace: bool = True,
                 erase: Iterable[str] = ()) -> None:
        ids = [j.patient_id for j in journeys] + list(erase)
        if replace:
            for table in self._patient_tables:
                for among_ids in chunked_in(conn, table.c.patient_id, ids):
                    conn.execute(delete(table).where(among_ids))
        self.insert_in(conn, journey_rows(journeys))
        for cp in checkpoints:
            self._save_checkpoint(conn, cp)

    def insert(self, rows: Rows) -> None:
        """Insert rows made by :func:`journey_rows` (of patients with none stored yet)."""
        with self.engine.begin() as conn:
            self.insert_in(conn, rows)

    def insert_in(self, conn: Connection, rows: Rows) -> None:
        """Insert the rows with one driver ``executemany`` per table (:class:`BulkInsert`)."""
        for bulk, table_rows in zip(self._inserts, rows, strict=True):
            bulk.run(conn, table_rows)

    def _save_checkpoint(self, conn: Connection, cp: Checkpoint) -> None:
        t = self.checkpoints
        key = (t.c.consumer == cp.consumer) & (t.c.partition == cp.partition)
        conn.execute(delete(t).where(key))
        conn.execute(insert(t).values(consumer=cp.consumer, partition=cp.partition,
                                      position=cp.position))

    # --- reading ---------------------------------------------------------------

    def checkpoint(self, consumer: str) -> dict[int, int]:
        t = self.checkpoints
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.partition, t.c.position).where(t.c.consumer == consumer))
            return {int(part): int(pos) for part, pos in rows}

    def patient_rows(self) -> list[PatientRow]:
        return self._read(self.patients, PatientRow, self.patients.c.patient_id)

    def line_rows(self) -> list[LineRow]:
        t = self.lines
        return self._read(t, LineRow, t.c.patient_id, t.c.line_number)

    def due_rows(self) -> list[DueAssessment]:
        t = self.due
        rows = self._read(t, DueAssessment, t.c.patient_id, t.c.assessment)
        return [DueAssessment(r.patient_id, Assessment(r.assessment), r.last_done, r.due_date,
                              r.window_end) for r in rows]

    def past_windows(self, before: date, patient_ids: Iterable[str]) -> list[DueAssessment]:
        """These patients' due assessments whose window ended before day ``before``."""
        t = self.due
        names = _names(DueAssessment)
        found: list[DueAssessment] = []
        with self.engine.connect() as conn:
            for among in chunked_in(conn, t.c.patient_id, sorted(set(patient_ids))):
                for r in conn.execute(select(*(t.c[n] for n in names))
                                      .where(among & (t.c.window_end < before))):
                    found.append(DueAssessment(r.patient_id, Assessment(r.assessment),
                                               r.last_done, r.due_date, r.window_end))
        return found

    def finding_rows(self) -> list[Finding]:
        t = self.findings
        rows = self._read(t, Finding, t.c.patient_id, t.c.finding, t.c.event_id, t.c.detail)
        return [Finding(r.patient_id, FindingKind(r.finding), r.event_id, r.detail) for r in rows]

    # --- one patient, one centre (the HTTP service) ------------------------------

    def centre_of(self, patient_id: str) -> tuple[bool, str | None]:
        """(whether the patient has rows, the patient's centre)."""
        t = self.centres
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.centre).where(t.c.patient_id == patient_id)).first()
        return (False, None) if row is None else (True, row[0])

    def lacks_centres(self) -> bool:
        """Whether patient rows exist without their centre (written before the service
        kept centres): such a store is rebuilt before it is served."""
        p, c = self.patients, self.centres
        with self.engine.connect() as conn:
            orphan = conn.execute(select(p.c.patient_id).where(
                ~select(c.c.patient_id).where(c.c.patient_id == p.c.patient_id).exists()
            ).limit(1)).first()
        return orphan is not None

    def overdue_patient_ids(self, today: date) -> list[str]:
        """Patients with an assessment whose window ended before ``today``: those whose
        alerts can be open (a short list to search for one alert)."""
        d = self.due
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(
                select(d.c.patient_id).where(d.c.window_end < today).distinct())]

    def centre_names(self) -> list[str]:
        """The centres the stored patients belong to, sorted (the pages' filter choices)."""
        t = self.centres
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(
                select(t.c.centre).where(t.c.centre.is_not(None)).distinct()
                .order_by(t.c.centre))]

    def patient_ids(self, centres: Iterable[str] | None = None) -> list[str]:
        """Every stored patient's id, or those of ``centres``, sorted."""
        t = self.centres
        query = select(t.c.patient_id).order_by(t.c.patient_id)
        if centres is not None:
            query = query.where(t.c.centre.in_(sorted(centres)))
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def patient_page(self, *, centres: Iterable[str] | None, group: str | None,
                     status: str | None, after: str | None, limit: int
                     ) -> list[tuple[PatientRow, str | None]]:
        """Up to ``limit`` patient rows (with centre) by id after ``after``, filtered."""
        p, c = self.patients, self.centres
        names = _names(PatientRow)
        query = (select(*(p.c[n] for n in names), c.c.centre)
                 .join(c, c.c.patient_id == p.c.patient_id).order_by(p.c.patient_id)
                 .limit(limit))
        if centres is not None:
            query = query.where(c.c.centre.in_(sorted(centres)))
        if group is not None:
            query = query.where(p.c.group == group)
        if status is not None:
            query = query.where(p.c.status == status)
        if after is not None:
            query = query.where(p.c.patient_id > after)
        with self.engine.connect() as conn:
            return [(PatientRow(*row[:-1]), row[-1]) for row in conn.execute(query)]

    def patient_detail(self, patient_id: str
                       ) -> tuple[PatientRow, list[LineRow], list[DueAssessment],
                                  list[Finding]] | None:
        """One patient's rows in every table, or None when the store has no such patient."""
        with self.engine.connect() as conn:
            patient = self._read_in(conn, self.patients, PatientRow, patient_id,
                                    self.patients.c.patient_id)
            if not patient:
                return None
            lines = self._read_in(conn, self.lines, LineRow, patient_id, self.lines.c.line_number)
            due = [DueAssessment(r.patient_id, Assessment(r.assessment), r.last_done, r.due_date,
                                 r.window_end) for r in self._read_in(
                conn, self.due, DueAssessment, patient_id, self.due.c.assessment)]
            findings = [Finding(r.patient_id, FindingKind(r.finding), r.event_id, r.detail)
                        for r in self._read_in(conn, self.findings, Finding, patient_id,
                                               self.findings.c.finding, self.findings.c.event_id)]
        return patient[0], lines, due, findings

    def _read_in(self, conn: Connection, table: Table, cls: type[T], patient_id: str,
                 *order: object) -> list[T]:
        names = _names(cls)
        result = conn.execute(select(*(table.c[n] for n in names))
                              .where(table.c.patient_id == patient_id)
                              .order_by(*order))  # type: ignore[arg-type]
        return [cls(*row) for row in result]

    def _read(self, table: Table, cls: type[T], *order: object) -> list[T]:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        with self.engine.connect() as conn:
            result = conn.execute(select(*(table.c[n] for n in names)).order_by(*order))  # type: ignore[arg-type]
            return [cls(*row) for row in result]


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names
