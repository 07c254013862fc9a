"""How far each patient's history reaches: the latest clinical day and recording instant.

Kept beside the event log, in the transaction of every append (the largest
values only ever grow, so an upsert keeps the maximum).  It answers one
question fast: whose whole history lies on or before a day, so that a view cut
at that day is the whole history and the stored projection rows can be read
instead of folding the log again (``journey overdue``, the worklist).  Reading
the same from the events table took 140 ms for a centre of 2,000 patients.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Protocol

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, inspect, select, text

from mbcjourney.processors.db import placeholder
from mbcjourney.processors.sql import chunked_in, create_tables, utc_text
from mbcjourney.projections.views import end_of_day

metadata = MetaData()

watermarks_table = Table(
    "patient_watermarks",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("occurred_on", String(10), nullable=False),  # the latest, ISO date
    Column("recorded_at", String(32), nullable=False),  # the latest, ISO UTC instant
)


class Appended(Protocol):
    """What an appended row offers (:class:`~mbcjourney.processors.eventlog.EventRow`)."""

    @property
    def patient_id(self) -> str: ...
    @property
    def occurred_on(self) -> str: ...
    @property
    def recorded_at(self) -> str: ...


def create(engine: Engine) -> None:
    """Create the table; on a log that had events before it existed, fill it from them."""
    existed = inspect(engine).has_table(watermarks_table.name)
    create_tables(metadata, engine)
    if existed or not inspect(engine).has_table("events"):
        return
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO patient_watermarks (patient_id, occurred_on, recorded_at) "
            "SELECT patient_id, MAX(occurred_on), MAX(recorded_at) FROM events "
            "GROUP BY patient_id ON CONFLICT (patient_id) DO NOTHING"))


def refill(engine: Engine) -> None:
    """Compute every watermark again from the events (after their rows were rewritten)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM patient_watermarks"))
        conn.execute(text(
            "INSERT INTO patient_watermarks (patient_id, occurred_on, recorded_at) "
            "SELECT patient_id, MAX(occurred_on), MAX(recorded_at) FROM events "
            "GROUP BY patient_id"))


def note(conn: Connection, rows: Sequence[Appended]) -> None:
    """Raise the watermarks of the patients of these newly appended rows."""
    latest: dict[str, tuple[str, str]] = {}
    for row in rows:
        seen = latest.get(row.patient_id)
        if seen is None:
            latest[row.patient_id] = (row.occurred_on, row.recorded_at)
        else:
            latest[row.patient_id] = (max(seen[0], row.occurred_on),
                                      max(seen[1], row.recorded_at))
    if not latest:
        return
    larger = "GREATEST" if conn.dialect.name == "postgresql" else "MAX"
    mark = placeholder(conn.dialect)
    conn.exec_driver_sql(
        "INSERT INTO patient_watermarks (patient_id, occurred_on, recorded_at) "
        f"VALUES ({mark}, {mark}, {mark}) ON CONFLICT (patient_id) DO UPDATE SET "
        f"occurred_on = {larger}(patient_watermarks.occurred_on, excluded.occurred_on), "
        f"recorded_at = {larger}(patient_watermarks.recorded_at, excluded.recorded_at)",
        [(pid, occurred, recorded) for pid, (occurred, recorded) in latest.items()])


def settled(engine: Engine, on: date, patient_ids: Iterable[str] | None = None) -> set[str]:
    """The patients (all, or of ``patient_ids``) whose every event occurred by day ``on``
    and was recorded by its end: for them, a view cut at ``on`` is the whole history."""
    t = watermarks_table
    query = select(t.c.patient_id).where((t.c.occurred_on <= on.isoformat())
                                         & (t.c.recorded_at <= utc_text(end_of_day(on))))
    with engine.connect() as conn:
        if patient_ids is None:
            return {row[0] for row in conn.execute(query)}
        found: set[str] = set()
        for among in chunked_in(conn, t.c.patient_id, sorted(set(patient_ids))):
            found.update(row[0] for row in conn.execute(query.where(among)))
        return found
