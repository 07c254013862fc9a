"""The alert tables: ``alerts`` (one row per alert id: state and outbox) and ``alert_patients``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Boolean, Column, Date, Engine, Index, MetaData, String, Table

from mbcjourney.events.alerts import AlertRaised, AlertResolved, Assessment
from mbcjourney.processors.sql import UtcDateTime, create_tables

OPEN = "open"
RESOLVED = "resolved"

AlertMessage = AlertRaised | AlertResolved


class AlertTables:
    """``alerts`` (one row per alert id) and ``alert_patients`` (where to route them)."""

    def __init__(self, prefix: str = "") -> None:
        md = self.metadata = MetaData()
        self.alerts = Table(
            f"{prefix}alerts", md,
            Column("alert_id", String(36), primary_key=True),
            Column("patient_id", String(64), nullable=False),
            Column("centre", String(64)),
            Column("assessment", String(16), nullable=False),
            Column("due_date", Date, nullable=False),
            Column("window_end", Date, nullable=False),
            Column("state", String(8), nullable=False),  # open | resolved
            Column("raised_on", Date, nullable=False),  # first raised: when people were told
            Column("raised_at", UtcDateTime(), nullable=False),
            Column("resolved_on", Date),
            Column("resolved_at", UtcDateTime()),
            Column("emitted", String(8)),  # the state last published on the topic
            Column("pending", Boolean, nullable=False),  # a transition awaits publishing
        )
        Index(f"{prefix}alerts_window", self.alerts.c.patient_id, self.alerts.c.assessment,
              self.alerts.c.due_date, unique=True)
        Index(f"{prefix}alerts_pending", self.alerts.c.pending,
              postgresql_where=self.alerts.c.pending, sqlite_where=self.alerts.c.pending)
        self.patients = Table(
            f"{prefix}alert_patients", md,
            Column("patient_id", String(64), primary_key=True),
            Column("centre", String(64)),
        )

    def create(self, engine: Engine) -> None:
        create_tables(self.metadata, engine)


@dataclass(frozen=True)
class AlertRecord:
    """One row of the ``alerts`` table."""

    alert_id: str
    patient_id: str
    centre: str | None
    assessment: Assessment  # the stored text; raised() makes it the enum
    due_date: date
    window_end: date
    state: str
    raised_on: date
    raised_at: datetime
    resolved_on: date | None
    resolved_at: datetime | None
    emitted: str | None = None
    pending: bool = True

    # Built without validation (model_construct): the row was valid when it was written.

    def raised(self) -> AlertRaised:
        return AlertRaised.model_construct(
            alert_id=uuid.UUID(self.alert_id), patient_id=self.patient_id, at=self.raised_at,
            event_type="alert.raised", centre=self.centre, assessment=Assessment(self.assessment),
            due_date=self.due_date, window_end=self.window_end, on=self.raised_on)

    def resolved(self) -> AlertResolved:
        if self.resolved_on is None or self.resolved_at is None:
            raise ValueError(f"alert {self.alert_id} is not resolved")
        return AlertResolved.model_construct(
            alert_id=uuid.UUID(self.alert_id), patient_id=self.patient_id, at=self.resolved_at,
            event_type="alert.resolved", on=self.resolved_on)

    def unpublished(self) -> list[AlertMessage]:
        """The messages that bring the topic from ``emitted`` to ``state``."""
        if self.emitted == self.state:
            return []
        if self.state == OPEN:
            return [self.raised()]
        if self.emitted == OPEN:
            return [self.resolved()]
        return [self.raised(), self.resolved()]  # raised and resolved before publishing


_RECORD_COLUMNS = tuple(f for f in AlertRecord.__dataclass_fields__)
