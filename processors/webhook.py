"""Alerts to people: an HTTP POST of each raised alert to its centre's webhook.

Configuration, a small JSON or TOML file mapping centres to URLs, ``*`` for every
other centre::

    {"centres": {"C01": "https://c01.example.org/alerts", "*": "https://study.example.org/alerts"}}

Each alert that is **open** when its turn comes, and was never delivered, is
POSTed once as the ``alert.raised`` JSON the alert topic carries
(:class:`~mbcjourney.events.alerts.AlertRaised`), with an ``Idempotency-Key``
header holding its ``alert_id``.  A connection error, a timeout, HTTP 408, 429 or
5xx is retried with exponential backoff, a bounded number of times; any other
4xx is a refusal, not retried.  A delivery is recorded (table
``alert_deliveries``) only after a 2xx, so it is **at least once**: a crash
between the POST and the record sends it again, and receivers deduplicate on
``alert_id``.  Alerts resolved before their turn are not sent: nobody needs to
hear about a window the assessment already closed.

Used by ``journey alerts deliver`` (embedded: alerts computed from the log) and by
the live worker (``--webhooks``: alerts as they open, on a background thread so
retries never hold up projection, plus a catch-up on each timer tick).  Only the
standard library's ``urllib`` is used.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select

from mbcjourney.events.alerts import AlertRaised
from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.alerting import OPEN, AlertRecord, AlertTables, Clock, system_clock
from mbcjourney.processors.sql import (
    UtcDateTime,
    chunked_in,
    create_tables,
    insert_ignoring_conflicts,
)

log = structlog.get_logger(__name__)

DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
TIMEOUT_S = 10.0
_RETRIED_STATUS = frozenset({408, 429})


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRoutes:
    """Centre -> URL; ``*`` is the URL of every centre not named."""

    centres: Mapping[str, str]

    def url_for(self, centre: str | None) -> str | None:
        if centre is not None and centre in self.centres:
            return self.centres[centre]
        return self.centres.get("*")


def load_webhooks(path: Path) -> WebhookRoutes:
    """Read a webhook file (``.toml``, else JSON): ``{"centres": {"C01": URL, "*": URL}}``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read webhook file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"webhook file {path} is not valid: {exc}") from None
    centres = data.get("centres") if isinstance(data, dict) else None
    if not isinstance(centres, dict) or not centres:
        raise ConfigurationError(f"webhook file {path}: expected a non-empty 'centres' table "
                                 f"of centre -> URL")
    for centre, url in centres.items():
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"webhook file {path}: centres.{centre}: expected an "
                                     f"http:// or https:// URL")
    return WebhookRoutes(dict(centres))


# --- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one POST gave: an HTTP status, or None when no answer came."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retry(self) -> bool:
        return self.status is None or self.status in _RETRIED_STATUS or self.status >= 500


Post = Callable[[str, bytes, Mapping[str, str], float], Attempt]


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
                ) -> Attempt:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
            return Attempt(int(response.status))
    except urllib.error.HTTPError as exc:
        exc.close()
        return Attempt(exc.code, "http")
    except (urllib.error.URLError, OSError) as exc:  # refused, unreachable, timed out
        return Attempt(None, type(exc).__name__)


@dataclass(frozen=True)
class Sent:
    alert_id: str
    delivered: bool
    attempts: int
    status: int | None
    retryable: bool = False  # failed on an outage (no answer, 408, 429, 5xx), not a refusal


class WebhookSender:
    """POSTs one alert to its centre's URL, retrying with exponential backoff."""

    def __init__(self, routes: WebhookRoutes, *, attempts: int = DEFAULT_ATTEMPTS,
                 backoff_s: float = DEFAULT_BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 timeout_s: float = TIMEOUT_S, sleep: Callable[[float], None] = time.sleep,
                 post: Post = urllib_post) -> None:
        if attempts < 1:
            raise ConfigurationError("webhook attempts must be at least 1")
        self.routes = routes
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.post = post

    def send(self, alert: AlertRaised, url: str) -> Sent:
        body = alert.model_dump_json().encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": str(alert.alert_id),
                   "User-Agent": "mbc-journey-alerts"}
        attempt = Attempt(None)
        for number in range(1, self.attempts + 1):
            attempt = self.post(url, body, headers, self.timeout_s)
            if attempt.ok:
                log.info("webhook.delivered", alert_id=str(alert.alert_id), attempts=number,
                         status=attempt.status)
                return Sent(str(alert.alert_id), True, number, attempt.status)
            if not attempt.retry or number == self.attempts:
                break
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** (number - 1))
            log.info("webhook.retry", alert_id=str(alert.alert_id), attempt=number,
                     status=attempt.status, error=attempt.error, delay_s=delay)
            self.sleep(delay)
        log.warning("webhook.failed", alert_id=str(alert.alert_id), attempts=number,
                    status=attempt.status, error=attempt.error)
        return Sent(str(alert.alert_id), False, number, attempt.status, attempt.retry)


# --- what was delivered --------------------------------------------------------------------


class DeliveryLog:
    """``alert_deliveries``: one row per alert delivered (after its 2xx)."""

    def __init__(self, engine: Engine, prefix: str = "") -> None:
        self.engine = engine
        self.metadata = MetaData()
        self.table = Table(
            f"{prefix}alert_deliveries", self.metadata,
            Column("alert_id", String(36), primary_key=True),
            Column("patient_id", String(64), nullable=False),
            Column("centre", String(64)),
            Column("delivered_at", UtcDateTime(), nullable=False),
            Column("attempts", Integer, nullable=False),
            Column("status", Integer),
        )

    def create(self) -> None:
        create_tables(self.metadata, self.engine)

    def delivered(self, alert_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(alert_ids))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for among_ids in chunked_in(conn, self.table.c.alert_id, ids):
                found.update(conn.execute(select(self.table.c.alert_id).where(among_ids))
                             .scalars())
        return found

    def record(self, alert: AlertRaised, sent: Sent, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert_ignoring_conflicts(conn, self.table), [{
                "alert_id": str(alert.alert_id), "patient_id": alert.patient_id,
                "centre": alert.centre, "delivered_at": at, "attempts": sent.attempts,
                "status": sent.status}])


@dataclass
class DeliverySummary:
    delivered: int = 0
    already: int = 0
    failed: int = 0
    unrouted: int = 0
    failed_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "already": self.already, "failed": self.failed,
                "unrouted": self.unrouted}


def deliver(alerts: Sequence[AlertRaised], sender: WebhookSender, deliveries: DeliveryLog,
            clock: Clock = system_clock) -> DeliverySummary:
    """Deliver each alert not yet delivered; record each success as soon as it happens.

    A URL that is down (every attempt for one alert failed on an outage) is not
    tried again in this run: its other alerts count as failed, for the next run.
    """
    summary = DeliverySummary()
    done = deliveries.delivered(str(a.alert_id) for a in alerts)
    down: set[str] = set()
    for alert in alerts:
        if str(alert.alert_id) in done:
            summary.already += 1
            continue
        url = sender.routes.url_for(alert.centre)
        if url is None:
            summary.unrouted += 1
            log.warning("webhook.no_route", alert_id=str(alert.alert_id), centre=alert.centre)
            continue
        sent = None if url in down else sender.send(alert, url)
        if sent is not None and sent.delivered:
            deliveries.record(alert, sent, clock())
            done.add(str(alert.alert_id))
            summary.delivered += 1
        else:
            if sent is not None and sent.retryable:
                down.add(url)
            summary.failed += 1
            summary.failed_ids.append(str(alert.alert_id))
    log.info("webhook.run", **summary.as_dict())
    return summary


# --- the live worker's delivery ------------------------------------------------------------


class LiveDelivery:
    """The worker's :class:`~mbcjourney.processors.alerting.Delivery`, from the alerts table.

    The leader's tick asks for the settled alerts (open, raised before an
    instant, never delivered); they are sent on a background thread (or at once
    when ``background`` is False, for tests), so retries never hold up the tick.
    """

    def __init__(self, engine: Engine, tables: AlertTables, deliveries: DeliveryLog,
                 sender: WebhookSender, *, clock: Clock = system_clock,
                 background: bool = True) -> None:
        self.engine = engine
        self.tables = tables
        self.deliveries = deliveries
        self.sender = sender
        self.clock = clock
        self._queue: queue.Queue[datetime | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._run, name="journey-webhooks",
                                            daemon=True)
            self._thread.start()

    def deliver_raised_before(self, instant: datetime) -> None:
        if self._thread is None:
            self.deliver(instant)
        else:
            self._queue.put(instant)

    def deliver(self, raised_before: datetime) -> DeliverySummary:
        """Send every open alert raised before that instant and never delivered."""
        return deliver([r.raised() for r in self.undelivered(raised_before)], self.sender,
                       self.deliveries, self.clock)

    def undelivered(self, raised_before: datetime) -> list[AlertRecord]:
        t, d = self.tables.alerts, self.deliveries.table
        query = (select(*(t.c[c] for c in AlertRecord.__dataclass_fields__))
                 .select_from(t.outerjoin(d, d.c.alert_id == t.c.alert_id))
                 .where(t.c.state == OPEN, d.c.alert_id.is_(None),
                        t.c.raised_at < raised_before.astimezone(UTC))
                 .order_by(t.c.patient_id, t.c.alert_id))
        with self.engine.connect() as conn:
            return [AlertRecord(*r) for r in conn.execute(query)]

    def close(self, timeout_s: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while (instant := self._queue.get()) is not None:
            stop = False
            while True:  # only the latest instant matters: it covers the earlier ones
                try:
                    later = self._queue.get_nowait()
                except queue.Empty:
                    break
                if later is None:
                    stop = True
                    break
                instant = max(instant, later)
            try:
                self.deliver(instant)
            except Exception as exc:  # the next tick asks again
                log.warning("webhook.delivery_failed", error=type(exc).__name__)
            if stop:
                return
