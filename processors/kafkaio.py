"""Kafka plumbing shared by the publisher and the workers: records, dead letters, topic checks.

* :class:`SourceRecord` is a consumed record reduced to what processing needs,
  whichever client read it (faust in the worker, aiokafka when a gap is re-read).
* Dead letters on ``mbc.dead-letter``: the original bytes as the value, the
  patient id as the key when it could be read (else none), and the reason, the
  origin (``file:line`` or ``topic/partition/offset``) and the ids in headers --
  never payload values.
* Topics are checked before anything is produced or consumed, because a broker
  that auto-creates topics would otherwise create a one-partition event log.

Clients are created by the functions that use them, never at import time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from mbcjourney.errors import ConfigurationError, ServiceUnavailable
from mbcjourney.processors.eventlog import DeadLetter

log = structlog.get_logger(__name__)

EVENTS_TOPIC = "mbc.clinical-events"
DEAD_LETTER_TOPIC = "mbc.dead-letter"
METADATA_TIMEOUT_S = 20.0
RANGE_READ_TIMEOUT_S = 120.0

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of the event topic, as processing sees it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @property
    def received_at(self) -> datetime:
        """The broker timestamp: fills a missing ``recorded_at`` the same way on every replay."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


def dead_letter_message(letter: DeadLetter) -> tuple[bytes | None, bytes, Headers]:
    """(key, value, headers) of a dead letter on the dead-letter topic."""
    headers: Headers = [
        ("reason", letter.reason.encode()),
        ("origin", letter.origin.encode()),
        ("received_at", letter.received_at.astimezone(UTC).isoformat().encode()),
    ]
    for name in ("event_id", "event_type"):
        value = getattr(letter, name)
        if value is not None:
            headers.append((name, value.encode()))
    key = letter.patient_id.encode() if letter.patient_id else None
    return key, letter.original, headers


def header(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    """The text of header ``name`` (first occurrence), or None."""
    for key, value in headers:
        if key == name:
            return value.decode()
    return None


# --- topics ------------------------------------------------------------------------


def _metadata_consumer(bootstrap: str) -> Any:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None,
                             enable_auto_commit=False, client_id="journey-metadata",
                             request_timeout_ms=int(METADATA_TIMEOUT_S * 1000) + 1000)
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka at {bootstrap} does not answer: {exc}") from None


def topic_partitions(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Partition counts of those ``topics`` that exist (never creates one)."""
    consumer = _metadata_consumer(bootstrap)
    try:
        known = consumer.topics()  # metadata of all topics: no auto-creation
        counts: dict[str, int] = {}
        for topic in topics:
            if topic in known:
                counts[topic] = len(consumer.partitions_for_topic(topic) or ())
        return counts
    finally:
        consumer.close()


def require_topics(bootstrap: str, expected: Mapping[str, int | None]) -> dict[str, int]:
    """Check each topic exists (with the expected partition count when given)."""
    counts = topic_partitions(bootstrap, expected)
    for topic, partitions in expected.items():
        if topic not in counts:
            raise ConfigurationError(
                f"Kafka topic {topic!r} does not exist on {bootstrap}; create the topics of "
                f"infra/topics.txt first (bash infra/kafka/start.sh does)")
        if partitions is not None and counts[topic] != partitions:
            raise ConfigurationError(
                f"Kafka topic {topic!r} has {counts[topic]} partitions, expected {partitions} "
                f"(--partitions)")
    return counts


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Next offset to be written, per partition of ``topic``."""
    from kafka import TopicPartition

    consumer = _metadata_consumer(bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        consumer.close()


# --- reading a range again ---------------------------------------------------------


class RangeReader:
    """Re-reads ``[start, end)`` of one partition with aiokafka, outside any consumer group.

    Used by a worker that finds offsets it never projected before the first one it
    was handed (a crash after the offsets were committed, but before the
    projection), or a table that lost its changelog.  Rare, so one short-lived
    consumer per read.
    """

    def __init__(self, bootstrap: str, topic: str,
                 timeout_s: float = RANGE_READ_TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s

    async def read(self, partition: int, start: int, end: int) -> list[SourceRecord]:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.errors import KafkaError

        if start >= end:
            return []
        tp = TopicPartition(self.topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="none",
                                    client_id="journey-worker-range")
        records: list[SourceRecord] = []
        deadline = time.monotonic() + self.timeout_s
        try:
            await consumer.start()
            consumer.assign([tp])
            first = (await consumer.beginning_offsets([tp]))[tp]
            if first > start:
                raise ServiceUnavailable(
                    f"{self.topic}[{partition}] offsets {start}..{first - 1} were deleted "
                    f"(retention); the event log must keep every record (retention.ms=-1)")
            consumer.seek(tp, start)
            at = start
            while at < end:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(
                        f"re-reading {self.topic}[{partition}] {start}..{end - 1} timed out "
                        f"at offset {at}")
                batches = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                for record in batches.get(tp, ()):
                    if record.offset >= end:
                        at = end
                        break
                    records.append(SourceRecord(partition, record.offset, record.key,
                                                record.value, int(record.timestamp)))
                    at = record.offset + 1
                else:
                    if not batches:
                        # transaction markers leave holes: stop at the partition's end
                        position = await consumer.position(tp)
                        at = max(at, position)
        except KafkaError as exc:
            raise ServiceUnavailable(f"re-reading {self.topic}[{partition}]: {exc}") from None
        finally:
            await asyncio.shield(consumer.stop())
        log.info("worker.range_read", topic=self.topic, partition=partition, start=start,
                 end=end, records=len(records))
        return records
