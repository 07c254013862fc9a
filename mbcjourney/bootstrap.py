"""The composition root: every deployment is built here, from settings, and nowhere else.

Each builder takes settings (a URL, :class:`ClinicalSettings`, a
:class:`WorkerConfig`), opens the infrastructure (database engines, Kafka
producers and consumers, the faust app), and passes it to the constructors of
the objects that use it; nothing is set on an object after it is built, and
nothing is built at import time.  What a builder opens, it closes: the embedded
engine is a context manager, the worker closes everything when it stops.

    embedded engine   :func:`open_engine`          every ``journey`` command on ``--db``
    a database        :func:`open_database`        ``journey replay``, ``journey projections``
    a publisher       :func:`open_publisher`       ``journey publish``
    live worker       :func:`run_worker`           ``journey worker``
    live alerting     :func:`open_live_alerting`   ``journey worker --alerts``
    HTTP service      :func:`open_service`         ``journey serve``
    tokens, audit     :func:`open_access`          ``journey tokens``, ``journey audit``

Adding a deployment: give it a settings object (like :class:`WorkerConfig` or
:class:`ServiceConfig`), write one builder here that opens what it needs with
the same pieces and passes them to its constructor; its entry point only
parses options into the settings and calls the builder.  The layering contract
in pyproject.toml keeps this module above the processors: they never import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import structlog
from sqlalchemy.engine import Engine

from mbcjourney.engine import EmbeddedEngine, EmbeddedStorage
from mbcjourney.processors.alerting import AlertConfig, AlertTables, KafkaEmitter, LiveAlerts
from mbcjourney.processors.alerting_live import LiveAlerting, LogProgress
from mbcjourney.processors.audit import AuditLog
from mbcjourney.processors.db import existing_database, make_engine
from mbcjourney.processors.erasing import ErasureResult, erase_patient
from mbcjourney.processors.erasures import erasure_record
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.kafkaio import broker_reachable, require_topics
from mbcjourney.processors.keyring import key_store
from mbcjourney.processors.publisher import open_producer
from mbcjourney.processors.sealing import Sealer
from mbcjourney.processors.sessions import SessionStore
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.tokens import TokenStore
from mbcjourney.processors.webhook import DeliveryLog, LiveDelivery, WebhookSender, load_webhooks
from mbcjourney.processors.worker import ProjectionSink, WorkerConfig
from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings
from mbcjourney.settings import database_url

if TYPE_CHECKING:  # FastAPI is imported only by the commands that serve
    from fastapi import FastAPI

    from mbcjourney.service import ServiceConfig

__all__ = ["erase_everywhere", "open_access", "open_database", "open_engine", "open_event_log",
           "open_live_alerting", "open_publisher", "open_sealer", "open_service", "run_worker"]

log = structlog.get_logger(__name__)


# --- embedded engine -------------------------------------------------------------------


def open_engine(db: str | None = None, settings: ClinicalSettings = DEFAULT_CLINICAL, *,
                create: bool = False) -> EmbeddedEngine:
    """The embedded engine on ``db`` (else ``JOURNEY_DB``, else ``sqlite:///journey.db``).

    Only commands that write events may ``create`` a missing database file; any
    other command names the mistyped URL instead of reading an empty database.
    Use it as a context manager: ``with open_engine(url) as engine: ...``.
    """
    url = database_url(db)
    return EmbeddedEngine(EmbeddedStorage.open(url if create else existing_database(url)),
                          settings)


@contextmanager
def open_database(db: str | None = None, *, create: bool = False) -> Iterator[Engine]:
    """A SQLAlchemy engine on ``db`` (as :func:`open_engine` finds it), disposed on exit."""
    url = database_url(db)
    engine = make_engine(url if create else existing_database(url))
    try:
        yield engine
    finally:
        engine.dispose()


# --- keys and erasure --------------------------------------------------------------------


@contextmanager
def open_event_log(db: str | None = None, keys_url: str | None = None,
                   *, create: bool = False) -> Iterator[SqlEventLog]:
    """The SQL event log on ``db`` (embedded SQLite or the workers' PostgreSQL) with its
    key store (``keys_url``, else ``JOURNEY_KEYS_URL``, else the log's own)."""
    url = database_url(db)
    with open_database(url, create=create) as engine:
        cipher = Sealer(key_store(url, keys_url=keys_url))
        event_log = SqlEventLog(engine, cipher)
        event_log.create()
        yield event_log


def erase_everywhere(event_log: SqlEventLog, patient_id: str, *, reason: str, by: str,
                     at: datetime, bootstrap: str | None = None,
                     topic: str = "mbc.clinical-events") -> ErasureResult:
    """``journey erase``: the patient erased from the log's stores and, with
    ``bootstrap``, a ``patient.erased`` record on the event topic for the workers."""
    result = erase_patient(event_log, patient_id, reason=reason, by=by, at=at)
    if bootstrap is not None:
        with open_publisher(bootstrap, (topic,)) as producer:
            producer.send(topic, key=patient_id.encode(),
                          value=erasure_record(patient_id)).get(timeout=120)
            producer.flush(timeout=120)
    return result


# --- the HTTP service -----------------------------------------------------------------


@contextmanager
def open_access(db: str | None = None, *, create: bool = False
                ) -> Iterator[tuple[TokenStore, AuditLog]]:
    """The service's token store and audit log on ``db`` (tables created if missing)."""
    with open_database(db, create=create) as engine:
        tokens, audit = TokenStore(engine), AuditLog(engine)
        tokens.create()
        audit.create()
        yield tokens, audit


@contextmanager
def open_service(config: ServiceConfig, settings: ClinicalSettings = DEFAULT_CLINICAL, *,
                 clock: Callable[[], datetime] | None = None) -> Iterator[FastAPI]:
    """The app over ``config.db_url`` (created if missing) and, with ``config.bootstrap``,
    a producer to the events topic; everything closed on exit.

    ``clock`` (default: the UTC wall clock) stamps received events, audit records and
    alert actions, and is "today" for the overdue and alert views.
    """
    from mbcjourney.service import Backend, create_app

    engine = open_engine(config.db_url, settings, create=True)
    producer = None
    try:
        # the key store and master key now: one clear line at start, not a 500 later
        engine.log.cipher.prepare(())
        tokens, audit = TokenStore(engine.engine), AuditLog(engine.engine)
        sessions = SessionStore(engine.engine)
        tokens.create()
        audit.create()
        sessions.create()
        checks: list[tuple[str, Callable[[], bool]]] = []
        if config.bootstrap is None and engine.store.lacks_centres():
            log.warning("service.rebuilding", reason="rows without their centre")
            engine.rebuild()  # an embedded store from before the service: centres for all
        if config.bootstrap is not None:
            require_topics(config.bootstrap, {config.topic: None,
                                              config.dead_letter_topic: None})
            producer = open_producer(config.bootstrap, linger_ms=5, client_id="journey-serve")
            bootstrap = config.bootstrap
            checks.append(("kafka", lambda: broker_reachable(bootstrap)))
        backend = Backend(config, engine, tokens, audit,
                          clock=clock or (lambda: datetime.now(UTC)), producer=producer,
                          ready_checks=checks, sessions=sessions)
        log.info("service.start", deployment="scale-out" if producer else "embedded")
        yield create_app(backend)
    finally:
        if producer is not None:
            producer.close(timeout=30)
        engine.close()


# --- publishing ------------------------------------------------------------------------


def open_sealer(db_url: str | None = None, keys_url: str | None = None) -> Sealer:
    """The sealer of a deployment: the key store at ``keys_url`` (else ``JOURNEY_KEYS_URL``,
    else the one of the log at ``db_url``), opened with the configured master key."""
    return Sealer(key_store(db_url, keys_url=keys_url))


@contextmanager
def open_publisher(bootstrap: str, topics: Iterable[str]) -> Iterator[Any]:
    """A Kafka producer (acks=all, idempotent) once ``topics`` exist; flushed and closed on exit."""
    require_topics(bootstrap, dict.fromkeys(topics))
    producer = open_producer(bootstrap)
    try:
        yield producer
    finally:
        producer.close(timeout=30)


# --- live worker -----------------------------------------------------------------------


def run_worker(config: WorkerConfig) -> NoReturn:
    """Check the topics, open PostgreSQL, build the faust app and run it until stopped.

    The worker writes the projection store and appends the events it applies to the
    SQL event log beside it, in one transaction per write (``LoggedStore``).
    """
    from mbcjourney.processors.faust_app import create_app, run_app, use_uvloop

    use_uvloop()  # before the app exists: the app binds the event loop policy
    require_topics(config.bootstrap, {config.topic: config.partitions,
                                      config.dead_letter_topic: None})
    engine = make_engine(config.db_url)
    try:
        store = ProjectionStore(engine)
        store.create()
        event_log = SqlEventLog(engine)
        event_log.create()
        cipher = event_log.cipher  # no master key, no worker: one clear line now
        alerting = None
        if config.alerts is not None:
            alerting = open_live_alerting(config.alerts, store, bootstrap=config.bootstrap,
                                          topic=config.topic, consumer=config.consumer)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journey-sink")
        try:
            alerts = alerting.alerts if alerting is not None else None
            write = alerts.write if alerts is not None else None

            def sink(on_failure: Callable[[BaseException], None]) -> ProjectionSink:
                """The store's writer; ``on_failure`` (stop the app) is the app's to give."""
                return ProjectionSink(store, config.consumer, executor, on_failure=on_failure,
                                      write=write, event_log=event_log)

            run_app(create_app(config, sink, alerts, cipher), config)
        finally:
            executor.shutdown(wait=True)
            if alerting is not None:
                alerting.close()
    finally:
        engine.dispose()


# --- live alerting ---------------------------------------------------------------------


def open_live_alerting(config: AlertConfig, store: ProjectionStore, *, bootstrap: str,
                       topic: str, consumer: str) -> LiveAlerting:
    """Tables, the alert topic's producer (acks=all, idempotent), the webhook delivery.

    ``topic`` is the event topic and ``consumer`` the owner of the store's
    checkpoints on it: together, how far the store has read.
    """
    routes = load_webhooks(config.webhooks) if config.webhooks is not None else None
    require_topics(bootstrap, {config.topic: None})
    tables = AlertTables(store.prefix)
    tables.create(store.engine)
    closers: list[Callable[[], None]] = []
    try:
        emitter = KafkaEmitter(open_producer(bootstrap, linger_ms=5,
                                             client_id="journey-alerts"), config.topic)
        closers.append(emitter.close)
        progress = delivery = None
        if routes is not None:
            progress = LogProgress(bootstrap, topic, store, consumer)
            closers.append(progress.close)
            deliveries = DeliveryLog(store.engine, store.prefix)
            deliveries.create()
            delivery = LiveDelivery(store.engine, tables, deliveries, WebhookSender(routes),
                                    clock=config.clock)
            closers.append(delivery.close)
        alerts = LiveAlerts(store, clock=config.clock, emitter=emitter, delivery=delivery,
                            progress=progress, tables=tables, interval_s=config.interval_s)
    except BaseException:
        while closers:
            closers.pop()()
        raise
    log.info("alerts.start", topic=config.topic, interval_s=config.interval_s,
             webhooks=routes is not None)
    return LiveAlerting(alerts, closers)
