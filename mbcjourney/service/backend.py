"""What the HTTP service does, without HTTP: admit events, read patients, act on alerts.

Built by the composition root (:func:`mbcjourney.bootstrap.open_service`) over the
same pieces as the CLI: the embedded engine on the database (its event log,
projection store and alert actions), the token store and the audit log, and in
the scale-out deployment a Kafka producer.  Routes (:mod:`.routes`) only turn
HTTP into calls of this class and its answers into JSON.

Two deployments, one behaviour:

* embedded (``journey serve --db sqlite:///study.db``): accepted events are
  appended to the SQL event log by the one admission path of ``journey ingest``;
  the projection store catches up with the log before it is read.
* scale-out (``--bootstrap``): accepted events are published to the events topic
  by the admission path of ``journey publish``; the workers append them to the
  SQL event log and write the rows this service reads.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import text

from mbcjourney.engine import AlertRow, EmbeddedEngine
from mbcjourney.events import ClinicalEvent, encode_event
from mbcjourney.events.alerts import AlertAcknowledged, AlertSnoozed
from mbcjourney.events.errors import InvalidEvent
from mbcjourney.processors.audit import AuditLog
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.erasing import ErasureResult, erase_patient
from mbcjourney.processors.erasures import erasure_record
from mbcjourney.processors.kafkaio import dead_letter_message
from mbcjourney.processors.publisher import SEND_TIMEOUT_S, Producer, publish_lines
from mbcjourney.processors.sessions import Session, SessionStore
from mbcjourney.processors.tokens import Token, TokenStore
from mbcjourney.projections import LineRow, PatientRow, View, build_history
from mbcjourney.projections.facts import PatientFacts, collect_facts
from mbcjourney.projections.findings import Finding
from mbcjourney.projections.schedule import DueAssessment
from mbcjourney.service.config import ServiceConfig

Clock = Callable[[], datetime]
SESSION_HOURS = 8  # a page session lasts a working day at most (and no longer than its token)


@dataclass(frozen=True)
class ItemResult:
    """What became of one item of a POST /v1/events body."""

    item: int
    outcome: str  # accepted | duplicate | rejected
    event_id: str | None = None
    error: InvalidEvent | None = None


@dataclass(frozen=True)
class PatientDetail:
    patient: PatientRow
    centre: str | None
    lines: list[LineRow]
    due: list[DueAssessment]
    findings: list[Finding]
    open_alerts: list[AlertRow]


class Backend:
    """The service's operations on one deployment; thread-safe (routes run in a pool)."""

    def __init__(self, config: ServiceConfig, engine: EmbeddedEngine, tokens: TokenStore,
                 audit: AuditLog, *, clock: Clock, producer: Producer | None = None,
                 ready_checks: Iterable[tuple[str, Callable[[], bool]]] = (),
                 sessions: SessionStore | None = None) -> None:
        self.config = config
        self.engine = engine
        self.tokens = tokens
        self.sessions = sessions or SessionStore(tokens.engine)
        self.audit = audit
        self.clock = clock
        self.producer = producer
        self.ready_checks = list(ready_checks)
        self._catching_up = threading.Lock()
        self._reporting = threading.Lock()
        self._report: tuple[tuple[int, date], str, int] | None = None

    # --- writing ---------------------------------------------------------------

    def admit(self, items: list[tuple[int, bytes]], *, origin: str) -> list[ItemResult]:
        """Admit the items as ``journey ingest`` (or ``publish``) would a file's lines."""
        received_at = self.clock()
        told: dict[int, ItemResult] = {}

        def tell(number: int, outcome: str, event_id: str | None,
                 error: InvalidEvent | None) -> None:
            told[number] = ItemResult(number, outcome, event_id, error)

        if self.producer is None:
            self.engine.ingest(items, origin=origin, received_at=received_at, on_item=tell)
        else:
            publish_lines(items, self.producer, origin=origin, received_at=received_at,
                          topic=self.config.topic,
                          dead_letter_topic=self.config.dead_letter_topic, on_item=tell,
                          cipher=self.engine.log.cipher)
        return [told[n] for n, _ in items if n in told]

    def refuse_body(self, raw: bytes, error: InvalidEvent, *, origin: str) -> None:
        """Dead-letter a body refused as a whole, with its bytes (idempotent on them)."""
        letter = DeadLetter.of(raw, error, f"{origin}:body", self.clock())
        if self.producer is None:
            self.engine.log.dead_letter([letter])
        else:
            key, value, headers = dead_letter_message(letter, self.engine.log.cipher)
            self.producer.send(self.config.dead_letter_topic, key=key, value=value,
                               headers=headers).get(timeout=SEND_TIMEOUT_S)

    def acknowledge(self, alert: AlertRow, by: str) -> None:
        self.engine.actions.record(AlertAcknowledged(
            alert_id=UUID(alert.alert_id), patient_id=alert.patient_id, at=self.clock(), by=by))

    def snooze(self, alert: AlertRow, until: date, by: str) -> None:
        self.engine.actions.record(AlertSnoozed(
            alert_id=UUID(alert.alert_id), patient_id=alert.patient_id, at=self.clock(), by=by,
            until=until))

    # --- page sessions -----------------------------------------------------------

    def sign_in(self, presented: str) -> tuple[str, Session, Token] | None:
        """A session for a usable token (its id for the cookie), or None."""
        now = self.clock()
        token = self.tokens.verify(presented, now.date())
        if token is None:
            return None
        until = now + timedelta(hours=SESSION_HOURS)
        if token.expires_on is not None:  # the token's last day ends at midnight UTC
            until = min(until, datetime.combine(token.expires_on + timedelta(days=1),
                                                datetime.min.time(), now.tzinfo))
        session_id, session = self.sessions.open(token.name, now=now, until=until)
        return session_id, session, token

    def session(self, session_id: str) -> tuple[Session, Token] | None:
        """The live session and its token, re-checked: a revoked token ends the session."""
        now = self.clock()
        session = self.sessions.find(session_id, now=now)
        if session is None:
            return None
        token = self.tokens.usable(session.token_name, now.date())
        if token is None:
            self.sessions.close(session_id)
            return None
        return session, token

    def sign_out(self, session_id: str) -> None:
        self.sessions.close(session_id)

    # --- reading ---------------------------------------------------------------

    def today(self) -> date:
        return self.clock().date()

    def sync(self) -> None:
        """Bring the store up to the log (embedded), one thread at a time; a no-op when
        the workers own the store."""
        with self._catching_up:
            self.engine.catch_up()

    def centre_ids(self, token: Token, centre: str | None) -> list[str] | None:
        """The patients a request may see: None for every patient, else a list of ids."""
        wanted = _centres(token, centre)
        return None if wanted is None else self.engine.store.patient_ids(wanted)

    def visible(self, token: Token, patient_id: str) -> bool:
        """Whether the patient exists and the token may see it (the same False for both)."""
        return self._seen(token, patient_id)[0]

    def _seen(self, token: Token, patient_id: str) -> tuple[bool, str | None]:
        """(:meth:`visible`, the patient's centre), from one lookup."""
        self.sync()
        exists, centre = self.engine.store.centre_of(patient_id)
        return exists and token.allows_centre(centre), centre

    def _events(self, patient_id: str) -> list[ClinicalEvent]:
        """The patient's events in log order (none: an empty list)."""
        for _, events in self.engine.log.histories([patient_id]):
            return events
        return []

    def patients(self, token: Token, *, centre: str | None, group: str | None,
                 status: str | None, after: str | None, limit: int
                 ) -> list[tuple[PatientRow, str | None]]:
        self.sync()
        return self.engine.store.patient_page(centres=_centres(token, centre), group=group,
                                              status=status, after=after, limit=limit)

    def patient(self, token: Token, patient_id: str) -> PatientDetail | None:
        seen, centre = self._seen(token, patient_id)
        if not seen:
            return None
        found = self.engine.store.patient_detail(patient_id)
        if found is None:
            return None
        row, lines, due, findings = found
        alerts = self.engine.alerts(self.today(), patient_ids=[patient_id], open_only=True)
        return PatientDetail(row, centre, lines, due, findings, alerts)

    def history(self, token: Token, patient_id: str, known_at: datetime | None
                ) -> list[dict[str, Any]] | None:
        """The patient's events in log order (those recorded by ``known_at``), or None."""
        if not self.visible(token, patient_id):
            return None
        return [_event_json(e) for e in self._events(patient_id)
                if known_at is None or e.recorded_at <= known_at]

    def facts(self, token: Token, patient_id: str) -> PatientFacts | None:
        """What the patient's history says (the timeline's marks), or None if not visible."""
        if not self.visible(token, patient_id):
            return None
        return collect_facts(build_history(patient_id, self._events(patient_id)))

    def centres(self, token: Token) -> list[str]:
        """The centres the token may choose among (its own, else every stored one)."""
        return sorted(token.centres) if token.centres else self.engine.store.centre_names()

    def roster(self, token: Token, centre: str | None) -> dict[str, tuple[str, str | None]]:
        """Group and centre of each patient the token may see (narrowed to ``centre``)."""
        rows = self.engine.store.patient_page(centres=_centres(token, centre), group=None,
                                              status=None, after=None, limit=1 << 40)
        return {row.patient_id: (row.group, found) for row, found in rows}

    def overdue(self, token: Token, as_of: date, centre: str | None
                ) -> list[tuple[DueAssessment, int]]:
        self.sync()
        return self.engine.overdue(as_of, patient_ids=self.centre_ids(token, centre))

    def alerts(self, token: Token, as_of: date, centre: str | None, *,
               open_only: bool = False) -> list[AlertRow]:
        self.sync()
        return self.engine.alerts(as_of, patient_ids=self.centre_ids(token, centre),
                                  open_only=open_only)

    def alert(self, token: Token, alert_id: str) -> AlertRow | None:
        """The alert (raised by today) if the token may see its patient.

        An open alert belongs to a patient with an assessment past its window: those
        few are searched first; the whole cohort (of the token's centres) only when
        the alert is not among them (resolved, or no such alert).
        """
        self.sync()
        today = self.today()
        allowed = self.centre_ids(token, None)
        likely = self.engine.store.overdue_patient_ids(today)
        if allowed is not None:
            likely = sorted(set(likely) & set(allowed))
        for patient_ids in (likely, allowed):
            for row in self.engine.alerts(today, patient_ids=patient_ids):
                if row.alert_id == alert_id:
                    return row
        return None

    def table(self, token: Token, name: str, view: View) -> list[Any]:
        """An export table's rows under ``view``, of the token's centres' patients."""
        self.sync()
        rows: list[Any]
        if name == "patients":
            rows = self.engine.patient_rows(view)
        elif name == "lines":
            rows = self.engine.line_rows(view)
        else:
            rows = self.engine.finding_rows(view)
        ids = self.centre_ids(token, None)
        if ids is not None:
            keep = set(ids)
            rows = [r for r in rows if r.patient_id in keep]
        return rows

    def report(self) -> tuple[str, int]:
        """The study report (``journey report``) as self-contained HTML, and its patient
        count; written again only when the log has moved or the day has changed."""
        from mbcjourney.report import ReportOptions, write_report

        with self._reporting:
            self.sync()
            # an erasure moves no position: the report of a moment ago may name the patient
            key = (self.engine.log.last_position(), self.today())
            if self._report is None or self._report[0] != key:
                with tempfile.TemporaryDirectory(prefix="journey-report-") as folder:
                    output = Path(folder) / "report.html"
                    summary = write_report(self.engine, output,
                                           ReportOptions(as_of=self.today()))
                    self._report = (key, output.read_text(encoding="utf-8"), summary.patients)
            return self._report[1], self._report[2]

    def erase(self, token: Token, patient_id: str, reason: str) -> ErasureResult | None:
        """``journey erase`` for a patient the token may see (None: not visible); in the
        scale-out deployment the workers are told by a ``patient.erased`` record."""
        known = self.visible(token, patient_id) or (
            not token.centres and self.engine.log.count_of(patient_id) > 0)
        if not known:
            return None
        with self._reporting:
            result = erase_patient(self.engine.log, patient_id, reason=reason, by=token.name,
                                   at=self.clock())
            self._report = None
        if self.producer is not None:
            self.producer.send(self.config.topic, key=patient_id.encode(),
                               value=erasure_record(patient_id)).get(timeout=SEND_TIMEOUT_S)
        return result

    def dead_letters(self, limit: int) -> list[DeadLetter]:
        letters = self.engine.log.dead_letters()
        return letters[-limit:] if limit else []

    def ready(self) -> dict[str, bool]:
        checks = {"database": _database_up(self.engine)}
        for name, check in self.ready_checks:
            try:
                checks[name] = bool(check())
            except Exception:  # a probe answers down, it never fails the request
                checks[name] = False
        return checks


def _centres(token: Token, centre: str | None) -> set[str] | None:
    """The centres a request reads: the token's, narrowed to ``centre`` when asked."""
    if centre is None:
        return set(token.centres) if token.centres else None
    return {centre} if token.allows_centre(centre) else set()


def _event_json(event: ClinicalEvent) -> dict[str, Any]:
    import orjson

    data: dict[str, Any] = orjson.loads(encode_event(event))
    return data


def _database_up(engine: EmbeddedEngine) -> bool:
    try:
        with engine.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any failure to reach it is "not ready"
        return False
    return True

