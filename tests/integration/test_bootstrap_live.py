"""The live alerting the composition root builds: every part passed to LiveAlerts at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mbcjourney.bootstrap import open_live_alerting
from mbcjourney.processors.alerting import AlertConfig, KafkaEmitter
from mbcjourney.processors.alerting_live import LogProgress
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.webhook import LiveDelivery


def test_live_alerting_is_wired_at_construction_and_closed_in_reverse(
        kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], postgres_db_url: str,
        tmp_path: Path) -> None:
    events_topic = kafka_topic_factory(2, prefix="test.bootstrap-events")
    alerts_topic = kafka_topic_factory(2, prefix="test.bootstrap-alerts")
    webhooks = tmp_path / "webhooks.json"
    webhooks.write_text(json.dumps({"centres": {"*": "http://127.0.0.1:9/alerts"}}))
    store = ProjectionStore(make_engine(postgres_db_url))
    store.create()
    try:
        live = open_live_alerting(AlertConfig(topic=alerts_topic, webhooks=webhooks), store,
                                  bootstrap=kafka_bootstrap, topic=events_topic,
                                  consumer=f"worker:{events_topic}")
        alerts = live.alerts
        try:
            assert isinstance(alerts.emitter, KafkaEmitter)
            assert alerts.emitter.topic == alerts_topic
            assert isinstance(alerts.progress, LogProgress)
            assert isinstance(alerts.delivery, LiveDelivery)
            assert alerts.delivery.tables is alerts.tables  # one set of alert tables
            assert alerts.progress.ends().keys() == {0, 1}  # the event topic's partitions
            assert len(live.closers) == 3
        finally:
            live.close()
        assert not live.closers
        assert alerts.delivery._thread is not None
        assert not alerts.delivery._thread.is_alive()  # the webhook thread was stopped
    finally:
        store.engine.dispose()
