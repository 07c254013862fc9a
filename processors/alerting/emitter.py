"""Publishing alert messages: the port, and ``mbc.alerts`` on Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from mbcjourney.events.errors import ServiceUnavailable
from mbcjourney.processors.alerting.config import ALERTS_TOPIC
from mbcjourney.processors.alerting.tables import AlertMessage


class Emitter(Protocol):
    """Publishes alert messages; returns once the broker holds them all, else raises."""

    def emit(self, messages: Sequence[AlertMessage]) -> None: ...


class KafkaEmitter:
    """``mbc.alerts``: key = patient_id, value = the message's JSON; acks=all, idempotent."""

    def __init__(self, producer: Any, topic: str = ALERTS_TOPIC, timeout_s: float = 60.0) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    def emit(self, messages: Sequence[AlertMessage]) -> None:
        futures = [self.producer.send(self.topic, key=m.patient_id.encode(),
                                      value=m.model_dump_json().encode()) for m in messages]
        self.producer.flush(timeout=self.timeout_s)
        for future in futures:
            try:
                future.get(timeout=self.timeout_s)
            except Exception as exc:  # kafka-python raises KafkaError subclasses
                raise ServiceUnavailable(f"publishing alerts to {self.topic} failed: "
                                         f"{type(exc).__name__}") from None

    def close(self) -> None:
        self.producer.close(timeout=10)
