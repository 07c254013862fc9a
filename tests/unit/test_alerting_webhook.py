"""Webhook delivery to a real HTTP receiver on 127.0.0.1: retries, at least once, dedupe by id.

The sender's sleep is injected (the backoff is recorded, never waited for).
"""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from mbcjourney.engine import project
from mbcjourney.errors import ConfigurationError
from mbcjourney.events.alerts import AlertRaised
from mbcjourney.processors.alerting import LiveAlerts
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.webhook import (
    Attempt,
    DeliveryLog,
    LiveDelivery,
    WebhookRoutes,
    WebhookSender,
    deliver,
    load_webhooks,
)
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.alerting import FakeClock, RecordingEmitter
from tests.support.builders import PatientBuilder
from tests.support.webhooks import webhook_receiver

NOW = datetime(2024, 4, 18, tzinfo=UTC)


def alert(n: int, centre: str | None = "C01") -> AlertRaised:
    return AlertRaised(alert_id=uuid4(), patient_id=f"P-{n:06d}", at=NOW, centre=centre,
                       assessment="imaging", due_date=date(2024, 4, 3),
                       window_end=date(2024, 4, 17), on=date(2024, 4, 18))


@pytest.fixture
def deliveries(tmp_path: Path) -> DeliveryLog:
    log = DeliveryLog(make_engine(f"sqlite:///{tmp_path / 'deliveries.db'}"))
    log.create()
    return log


def test_every_alert_arrives_at_least_once_and_the_receiver_keeps_one_each(
        deliveries: DeliveryLog) -> None:
    alerts = [alert(n) for n in range(1, 6)]
    delays: list[float] = []
    with webhook_receiver(fail_first=3) as receiver:
        sender = WebhookSender(WebhookRoutes({"*": f"{receiver.url}/alerts"}),
                               sleep=delays.append)
        first = deliver(alerts, sender, deliveries, clock=lambda: NOW)
        again = deliver(alerts, sender, deliveries, clock=lambda: NOW)  # nothing new

    assert (first.delivered, first.failed, again.delivered, again.already) == (5, 0, 0, 5)
    assert delays == [0.5, 1.0, 2.0]  # the first alert: three 503s, then a 200
    assert len(receiver.requests) == 8
    assert set(receiver.alerts) == {str(a.alert_id) for a in alerts}
    assert receiver.alerts[str(alerts[0].alert_id)] == alerts[0].model_dump(mode="json")
    assert {r.idempotency_key for r in receiver.requests} == set(receiver.alerts)
    assert deliveries.delivered(receiver.alerts) == set(receiver.alerts)


def test_a_crash_after_the_post_delivers_again_and_the_receiver_deduplicates(
        deliveries: DeliveryLog) -> None:
    """The delivery record is lost (a crash before it): the next run sends it again."""
    message = alert(1)
    with webhook_receiver() as receiver:
        sender = WebhookSender(WebhookRoutes({"*": receiver.url}), sleep=lambda _s: None)
        sent = sender.send(message, receiver.url)  # POSTed, never recorded
        summary = deliver([message], sender, deliveries)
    assert sent.delivered
    assert summary.delivered == 1
    assert len(receiver.requests) == 2
    assert list(receiver.alerts) == [str(message.alert_id)]


def test_routes_by_centre_with_a_default(deliveries: DeliveryLog) -> None:
    with webhook_receiver() as receiver:
        routes = WebhookRoutes({"C01": f"{receiver.url}/c01", "*": f"{receiver.url}/all"})
        deliver([alert(1, "C01"), alert(2, "C02"), alert(3, None)],
                WebhookSender(routes, sleep=lambda _s: None), deliveries)
        only_c01 = deliver([alert(4, "C02")], WebhookSender(
            WebhookRoutes({"C01": receiver.url}), sleep=lambda _s: None), deliveries)
    assert [(r.body["patient_id"], r.path) for r in receiver.requests] == [
        ("P-000001", "/c01"), ("P-000002", "/all"), ("P-000003", "/all")]
    assert (only_c01.unrouted, only_c01.delivered) == (1, 0)


def test_bounded_attempts_then_the_next_run_retries(deliveries: DeliveryLog) -> None:
    messages = [alert(1), alert(2)]
    with webhook_receiver(fail_first=10) as receiver:
        sender = WebhookSender(WebhookRoutes({"*": receiver.url}), attempts=3,
                               sleep=lambda _s: None)
        failed = deliver(messages, sender, deliveries)
        receiver.fail_first = 0
        retried = deliver(messages, sender, deliveries)
    assert (failed.failed, failed.delivered, retried.delivered) == (2, 0, 2)
    assert len(receiver.requests) == 3 + 2  # down after 3 attempts: the 2nd alert waited


def test_a_refusal_is_not_retried_and_a_dead_url_is_not_hammered(
        deliveries: DeliveryLog) -> None:
    refused = WebhookSender(WebhookRoutes({"*": "http://127.0.0.1:9/a"}), sleep=lambda _s: None,
                            post=lambda *_args: Attempt(404, "http"))
    sent = refused.send(alert(1), "http://127.0.0.1:9/a")
    assert (sent.delivered, sent.attempts, sent.status) == (False, 1, 404)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/alerts"
    delays: list[float] = []
    summary = deliver([alert(n) for n in range(1, 4)],
                      WebhookSender(WebhookRoutes({"*": dead}), attempts=2,
                                    sleep=delays.append), deliveries)
    assert (summary.failed, summary.delivered, delays) == (3, 0, [0.5])


def test_webhook_files(tmp_path: Path) -> None:
    as_json = tmp_path / "hooks.json"
    as_json.write_text('{"centres": {"C01": "http://127.0.0.1:9/a", "*": "https://x.test/b"}}')
    as_toml = tmp_path / "hooks.toml"
    as_toml.write_text('[centres]\nC01 = "http://127.0.0.1:9/a"\n"*" = "https://x.test/b"\n')
    assert load_webhooks(as_json) == load_webhooks(as_toml)
    assert load_webhooks(as_json).url_for("C07") == "https://x.test/b"
    bad = tmp_path / "bad.json"
    bad.write_text('{"centres": {"C01": "ftp://x"}}')
    with pytest.raises(ConfigurationError, match=r"centres\.C01"):
        load_webhooks(bad)
    bad.write_text('{"hooks": {}}')
    with pytest.raises(ConfigurationError, match="centres"):
        load_webhooks(bad)


def test_the_tick_delivers_open_alerts_only(tmp_path: Path) -> None:
    store = ProjectionStore(make_engine(f"sqlite:///{tmp_path / 'rows.db'}"))
    store.create()
    clock = FakeClock(datetime(2024, 4, 18, tzinfo=UTC))
    alerts = LiveAlerts(store, clock=clock, emitter=RecordingEmitter())
    alerts.create()
    deliveries = DeliveryLog(store.engine)
    deliveries.create()
    b1, b2 = PatientBuilder("P-000001"), PatientBuilder("P-000002")
    first = [b1.included("2024-01-10", recorded="2024-01-10T10:00:00Z")]
    second = [b2.included("2024-01-10", recorded="2024-01-10T10:00:00Z")]
    with webhook_receiver() as receiver:
        alerts.delivery = live = LiveDelivery(
            store.engine, alerts.tables, deliveries,
            WebhookSender(WebhookRoutes({"*": receiver.url}), sleep=lambda _s: None),
            clock=clock, background=False)
        alerts.write([project("P-000001", first, DEFAULT_CLINICAL),
                      project("P-000002", second, DEFAULT_CLINICAL)])  # both overdue: raised
        clock.day("2024-04-18", hour=9)
        alerts.write([project("P-000002", [*second, b2.death(
            "2024-04-18", recorded="2024-04-18T09:00:00Z")], DEFAULT_CLINICAL)])
        assert receiver.requests == []  # people hear of alerts at the tick, not at the write
        alerts.tick()
        alerts.tick()
        assert live.undelivered(clock()) == []
    assert [body["patient_id"] for body in receiver.alerts.values()] == ["P-000001"]
    assert len(receiver.requests) == 1


class Behind:
    """A fake :class:`Progress`: the log's end offsets and the store's checkpoints."""

    def __init__(self) -> None:
        self.end = {0: 10, 1: 4}
        self.checkpoints = {0: 2}

    def ends(self) -> dict[int, int]:
        return dict(self.end)

    def done(self) -> dict[int, int]:
        return dict(self.checkpoints)


def test_alerts_reach_people_once_the_store_has_read_what_the_log_held(tmp_path: Path
                                                                         ) -> None:
    """A worker catching up raises alerts from half-read histories: they must settle first."""
    store = ProjectionStore(make_engine(f"sqlite:///{tmp_path / 'rows.db'}"))
    store.create()
    clock = FakeClock(datetime(2024, 4, 18, 8, tzinfo=UTC))
    progress = Behind()
    alerts = LiveAlerts(store, clock=clock, progress=progress)
    assert alerts.settled(clock()) is None  # behind: nothing is settled
    clock.set(datetime(2024, 4, 18, 9, tzinfo=UTC))
    progress.end = {0: 12, 1: 4}  # more arrived meanwhile
    progress.checkpoints = {0: 9, 1: 3}  # what the log held at 08:00 is read, not all of 09:00
    assert alerts.settled(clock()) == datetime(2024, 4, 18, 8, tzinfo=UTC)
    clock.set(datetime(2024, 4, 18, 10, tzinfo=UTC))
    progress.checkpoints = {0: 11, 1: 3}
    assert alerts.settled(clock()) == datetime(2024, 4, 18, 10, tzinfo=UTC)
