"""Helpers for the alert tests: a fake clock, a recording emitter, and a live replay in time.

:func:`replay_live` drives the live worker's own processing
(:class:`~mbcjourney.processors.worker.BatchProcessor` writing through
:meth:`~mbcjourney.processors.alerting.LiveAlerts.write`) with an injected clock:
each record reaches it at its event's ``recorded_at`` (the clock is set to that
instant first), and the alert timer ticks at the start of every day (UTC).  No
real waiting: the clock only moves when the test moves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from itertools import groupby

import orjson

from mbcjourney.engine import AlertRow
from mbcjourney.errors import ServiceUnavailable
from mbcjourney.processors.admission import BirthYears
from mbcjourney.processors.alerting import AlertMessage, AlertRecord, LiveAlerts
from mbcjourney.processors.ingest import validate_lines
from mbcjourney.processors.kafkaio import SourceRecord
from mbcjourney.processors.worker import BatchProcessor
from mbcjourney.projections.alerts import day_start, utc_day
from tests.support.fakes import FakeTopic
from tests.support.polling import eventually


class FakeClock:
    """A clock that stands still until told to move."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

    def day(self, day: date | str, hour: int = 0) -> datetime:
        """Move to ``hour`` o'clock (UTC) of ``day``; returns the new now."""
        on = date.fromisoformat(day) if isinstance(day, str) else day
        self.at = day_start(on) + timedelta(hours=hour)
        return self.at


class RecordingEmitter:
    """Keeps what it was asked to publish; fails the first ``failures`` times."""

    def __init__(self, failures: int = 0) -> None:
        self.messages: list[AlertMessage] = []
        self.failures = failures

    def emit(self, messages: Sequence[AlertMessage]) -> None:
        if self.failures:
            self.failures -= 1
            raise ServiceUnavailable("broker down (test)")
        self.messages.extend(messages)

    def kinds(self) -> dict[str, list[str]]:
        """Per alert id, the event types published, in order."""
        found: dict[str, list[str]] = {}
        for m in self.messages:
            found.setdefault(str(m.alert_id), []).append(m.event_type)
        return found


# --- a cohort in recorded_at order ------------------------------------------------------------


def validated_bodies(lines: Iterable[bytes], received_at: datetime) -> list[bytes]:
    """The accepted events of a file as published (``recorded_at`` filled), in recorded order.

    Sorted by ``recorded_at`` (stable): the order a live system receives facts in
    when each reaches it when recorded.
    """
    bodies = [item.row.body.encode()
              for checked in validate_lines(enumerate(lines, start=1), BirthYears(),
                                            received_at=received_at)
              for item in checked.valid]
    return sorted(bodies, key=recorded_at)


def recorded_at(body: bytes | None) -> datetime:
    return datetime.fromisoformat(orjson.loads(body or b"{}")["recorded_at"]).astimezone(UTC)


def as_records(bodies: Iterable[bytes], partitions: int) -> list[SourceRecord]:
    """Records as Kafka would hand them over: keyed and partitioned by patient, in order."""
    topic = FakeTopic(partitions)
    return [topic.publish(orjson.loads(body)["patient_id"].encode(), body) for body in bodies]


# --- driving the live path in time --------------------------------------------------------------


Snapshot = Callable[[date], None]


async def replay_live(records: Sequence[SourceRecord], processor: BatchProcessor,
                      alerts: LiveAlerts, clock: FakeClock, executor: ThreadPoolExecutor,
                      until: date, *, at_end_of: Snapshot | None = None) -> int:
    """Feed ``records`` (in recorded_at order) at their instants; tick at each day's start.

    Records recorded at the same instant are one batch.  The timer's tick for a
    day runs on the worker's write thread, as the faust timer does.  ``at_end_of``
    is called after the last moment of each day.  Returns the number of ticks.
    """
    loop = asyncio.get_running_loop()
    end = day_start(until + timedelta(days=1))
    groups = [(at, list(batch)) for at, batch in groupby(records, key=lambda r: recorded_at(
        r.value))]
    groups = [(at, batch) for at, batch in groups if at < end]
    if not groups:
        return 0
    next_tick = day_start(utc_day(groups[0][0]))
    ticks = 0

    async def tick_until(limit: datetime, inclusive: bool) -> None:
        nonlocal next_tick, ticks
        while next_tick < limit or (inclusive and next_tick == limit):
            if at_end_of is not None:
                at_end_of(utc_day(next_tick) - timedelta(days=1))
            clock.set(next_tick)
            await loop.run_in_executor(executor, alerts.tick)
            ticks += 1
            next_tick += timedelta(days=1)

    for at, batch in groups:
        await tick_until(at, inclusive=False)  # a tick at the same instant comes after
        clock.set(at)
        await processor.process(batch)
        await processor.drain()
    await tick_until(end, inclusive=False)
    if at_end_of is not None:
        at_end_of(until)
    return ticks


# --- comparing ---------------------------------------------------------------------------------

Summary = tuple[str, str, str | None, date, date | None, str]


def live_summary(records: Iterable[AlertRecord]) -> set[Summary]:
    """(alert id, patient, centre, raised on, resolved on, state) of the live table."""
    return {(r.alert_id, r.patient_id, r.centre, r.raised_on, r.resolved_on, r.state)
            for r in records}


def embedded_summary(rows: Iterable[AlertRow]) -> set[Summary]:
    """The same for ``journey alerts --as-of`` rows (no snoozes in these tests)."""
    return {(r.alert_id, r.patient_id, r.centre, r.raised_on, r.resolved_on,
             "resolved" if r.status == "resolved" else "open") for r in rows}


# --- Kafka ---------------------------------------------------------------------------------------


def read_records(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[SourceRecord]:
    """Every record of ``topic``, from the beginning to the end offsets as of now."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = consumer.end_offsets(partitions)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[SourceRecord] = []

        def at_the_ends() -> bool:
            return all(consumer.position(tp) >= end for tp, end in ends.items())

        def read_to_the_ends() -> bool:
            if at_the_ends():
                return True
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(SourceRecord(r.partition, r.offset, r.key, r.value,
                                            int(r.timestamp)) for r in batch)
            return at_the_ends()

        eventually(read_to_the_ends, timeout=timeout_s, interval=0,
                   what=f"reading {topic} to its end offsets {ends}",
                   detail=lambda: f"{len(records)} records read")
        return records
    finally:
        consumer.close()


def kinds_by_alert(records: Iterable[SourceRecord]) -> dict[str, list[str]]:
    """Per alert id, the event types on the alert topic, in partition order."""
    found: dict[str, list[str]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        body = orjson.loads(record.value or b"{}")
        found.setdefault(body["alert_id"], []).append(body["event_type"])
    return found
