"""The live worker's alerting, assembled: ``journey worker --alerts [--webhooks FILE]``.

Builds, from :class:`~mbcjourney.processors.alerting.AlertConfig`, the alert
tables beside the projection store, the producer of the alert topic (checked to
exist first), how far the store has read the event topic (for settling alerts
before they reach people), and, with a webhook file, the background webhook
delivery.  The worker then writes through :meth:`LiveAlerts.write` and runs
:meth:`LiveAlerts.timer_tick` on the leader's timer (``processors/faust_app.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from mbcjourney.processors.alerting import AlertConfig, KafkaEmitter, LiveAlerts
from mbcjourney.processors.kafkaio import connect, require_topics
from mbcjourney.processors.publisher import open_producer
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.webhook import DeliveryLog, LiveDelivery, WebhookSender, load_webhooks

log = structlog.get_logger(__name__)


class LogProgress:
    """End offsets of the event topic (one metadata consumer, kept open) and the checkpoints."""

    def __init__(self, bootstrap: str, topic: str, store: ProjectionStore, consumer: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.store = store
        self.consumer = consumer
        self._kafka: Any = connect(KafkaConsumer, bootstrap, group_id=None,
                                   enable_auto_commit=False, client_id="journey-alerts-progress")
        self._partitions = [TopicPartition(topic, p)
                            for p in sorted(self._kafka.partitions_for_topic(topic) or ())]

    def ends(self) -> dict[int, int]:
        ends = self._kafka.end_offsets(self._partitions)
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def done(self) -> dict[int, int]:
        return self.store.checkpoint(self.consumer)

    def close(self) -> None:
        self._kafka.close()


@dataclass
class LiveAlerting:
    """The worker's alert evaluation, and what to close when the worker stops."""

    alerts: LiveAlerts
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


def open_live_alerting(config: AlertConfig, store: ProjectionStore, *, bootstrap: str,
                       topic: str, consumer: str) -> LiveAlerting:
    """Tables, the alert topic's producer (acks=all, idempotent), the webhook delivery.

    ``topic`` is the event topic and ``consumer`` the owner of the store's
    checkpoints on it: together, how far the store has read.
    """
    routes = load_webhooks(config.webhooks) if config.webhooks is not None else None
    require_topics(bootstrap, {config.topic: None})
    alerts = LiveAlerts(store, clock=config.clock, interval_s=config.interval_s)
    alerts.create()
    live = LiveAlerting(alerts)
    try:
        emitter = KafkaEmitter(open_producer(bootstrap, linger_ms=5,
                                             client_id="journey-alerts"), config.topic)
        alerts.emitter = emitter
        live.closers.append(emitter.close)
        if routes is not None:
            progress = LogProgress(bootstrap, topic, store, consumer)
            live.closers.append(progress.close)
            deliveries = DeliveryLog(store.engine, store.prefix)
            deliveries.create()
            delivery = LiveDelivery(store.engine, alerts.tables, deliveries,
                                    WebhookSender(routes), clock=config.clock)
            live.closers.append(delivery.close)
            alerts.progress, alerts.delivery = progress, delivery
    except BaseException:
        live.close()
        raise
    log.info("alerts.start", topic=config.topic, interval_s=config.interval_s,
             webhooks=routes is not None)
    return live
