"""What coordinators did with alerts (acknowledge, snooze), kept as facts in the database.

The alerts themselves are derived from the clinical history; only the human
actions need storing.  Each action is appended, never updated: the latest
acknowledgement and snooze of an alert win.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import (
    Column,
    Date,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)

from mbcjourney.events.alerts import AlertAcknowledged, AlertSnoozed
from mbcjourney.processors.sql import create_tables, utc_text

metadata = MetaData()

alert_actions_table = Table(
    "alert_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(36), nullable=False, index=True),
    Column("patient_id", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # acknowledged | snoozed
    Column("by", String(100), nullable=False),
    Column("at", String(32), nullable=False),  # ISO instant (sql.utc_text; older rows: any offset)
    Column("until", Date),
    Index("ix_alert_actions_patient", "patient_id"),
)


@dataclass(frozen=True)
class AlertActions:
    acknowledged_by: str | None = None
    snoozed_until: date | None = None


class AlertActionLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        create_tables(metadata, self.engine)

    def record(self, action: AlertAcknowledged | AlertSnoozed) -> None:
        until = action.until if isinstance(action, AlertSnoozed) else None
        kind = "acknowledged" if isinstance(action, AlertAcknowledged) else "snoozed"
        with self.engine.begin() as conn:
            conn.execute(insert(alert_actions_table).values(
                alert_id=str(action.alert_id), patient_id=action.patient_id, action=kind,
                by=action.by, at=utc_text(action.at), until=until))

    def latest(self, known_at: datetime | None = None,
               patient_ids: Iterable[str] | None = None) -> dict[UUID, AlertActions]:
        """The latest acknowledgement and snooze per alert (actions up to ``known_at``),
        of every patient's alerts or of ``patient_ids``'."""
        t = alert_actions_table
        found: dict[UUID, AlertActions] = {}
        query = select(t).order_by(t.c.id)
        if patient_ids is not None:
            query = query.where(t.c.patient_id.in_(sorted(set(patient_ids))))
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                if known_at is not None and datetime.fromisoformat(row.at) > known_at:
                    continue
                key = UUID(row.alert_id)
                current = found.get(key, AlertActions())
                if row.action == "acknowledged":
                    found[key] = AlertActions(row.by, current.snoozed_until)
                else:
                    found[key] = AlertActions(current.acknowledged_by, row.until)
        return found
