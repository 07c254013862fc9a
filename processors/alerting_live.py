"""The live worker's alerting, as assembled for ``journey worker --alerts [--webhooks FILE]``.

The composition root (:func:`mbcjourney.bootstrap.open_live_alerting`) builds,
from :class:`~mbcjourney.processors.alerting.AlertConfig`, the alert tables
beside the projection store, the producer of the alert topic (checked to exist
first), how far the store has read the event topic (:class:`LogProgress`, for
settling alerts before they reach people), and, with a webhook file, the
background webhook delivery; :class:`LiveAlerting` holds the result and what to
close.  The worker then writes through :meth:`LiveAlerts.write` and runs
:meth:`LiveAlerts.timer_tick` on the leader's timer (``processors/faust_app.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mbcjourney.processors.alerting import LiveAlerts
from mbcjourney.processors.kafkaio import connect
from mbcjourney.processors.store import ProjectionStore


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
