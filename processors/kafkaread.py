"""Reading the event topic: one aiokafka reader, for replay and for the worker's re-reads.

:class:`TopicReader` reads ranges of a topic's partitions, ``[start, end)`` each:

* partitions are **assigned by hand**, no consumer group is joined
  (``group_id=None``) and nothing is committed, so live workers and their
  committed offsets are undisturbed;
* it reads up to the ends it is given (a replay's snapshot of the end offsets,
  the first offset a worker was handed) and hands out batches, each with the
  position to resume from in every partition;
* records come through as they are on the topic: a keyless record has key
  ``None``, a tombstone value ``None`` (admission decides what they are worth);
* a range whose first records were deleted (retention) is :class:`RangeDeleted`,
  and no record for ``idle_timeout_s`` while some are still due is one clear
  :class:`~mbcjourney.errors.ServiceUnavailable`;
* the broker is probed first as every client is (:func:`kafkaio.wait_for_broker
  <mbcjourney.processors.kafkaio.wait_for_broker>`): a stopped broker is one error
  after ``CONNECT_TIMEOUT_S``, and aiokafka's own retry lines are held back.

Why aiokafka: it parses record batches (and checks their CRCs) in C; kafka-python,
still used to publish and for topic metadata, parses them in Python.

:class:`RangeReader` is the worker's use: a short-lived reader per gap in the
offsets it was handed.  Replay's :class:`~mbcjourney.processors.sources.KafkaSource`
drives a reader from its own event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import TracebackType
from typing import Any

import structlog

from mbcjourney.events.errors import ServiceUnavailable
from mbcjourney.processors.kafkaio import (
    CONNECT_TIMEOUT_S,
    SourceRecord,
    quiet_logger,
    unavailable,
    wait_for_broker,
)

log = structlog.get_logger(__name__)

READ_BATCH = 20_000  # records per batch handed out
IDLE_TIMEOUT_S = 60.0  # no record for this long while some are still due: give up
RANGE_READ_TIMEOUT_S = 120.0  # the worker's idle timeout while re-reading a gap
POLL_MS = 1000

Ranges = Mapping[int, tuple[int, int]]  # partition -> [start, end)
Positions = dict[int, int]  # partition -> next offset to read
Chunk = tuple[int, Sequence[Any]]  # a partition and aiokafka ConsumerRecords of it, in order


class RangeDeleted(ServiceUnavailable):
    """Records of a range were deleted (retention) before they could be read."""

    def __init__(self, topic: str, partition: int, start: int, first: int) -> None:
        super().__init__(f"{topic}[{partition}] offsets {start}..{first - 1} were deleted "
                         "(retention)")
        self.partition, self.start, self.first = partition, start, first


class TopicReader:
    """An aiokafka consumer of one topic outside any consumer group; use ``async with``."""

    def __init__(self, bootstrap: str, topic: str, *, client_id: str,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, check_crcs: bool = True,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.uri = f"kafka://{bootstrap}/{topic}"
        self.client_id = client_id
        self.idle_timeout_s = idle_timeout_s
        self.check_crcs = check_crcs
        self.connect_timeout_s = connect_timeout_s
        self._consumer: Any = None

    async def __aenter__(self) -> TopicReader:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Probe the broker, then connect (one clear error if it does not answer)."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import KafkaError

        timeout = self.connect_timeout_s
        deadline = await asyncio.to_thread(wait_for_broker, self.bootstrap, timeout)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap.split(","),
            group_id=None,  # no group: nothing joined, nothing rebalanced, nothing committed
            enable_auto_commit=False,
            auto_offset_reset="none",  # every partition is sought to its start
            client_id=self.client_id,
            check_crcs=self.check_crcs,
        )
        try:
            with quiet_logger("aiokafka"):
                await asyncio.wait_for(consumer.start(), max(deadline - time.monotonic(), 1.0))
        except (KafkaError, TimeoutError) as exc:  # a socket answers, but not a Kafka broker
            await asyncio.shield(consumer.stop())
            raise unavailable(self.bootstrap, timeout, str(exc) or type(exc).__name__) from None
        self._consumer = consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await asyncio.shield(consumer.stop())

    def _tps(self, partitions: Sequence[int]) -> list[Any]:
        from aiokafka import TopicPartition

        return [TopicPartition(self.topic, p) for p in partitions]

    async def partitions(self) -> list[int]:
        """The topic's partitions, fresh from the broker; none when it does not exist."""
        # The consumer's own metadata holds only the topics it is assigned; this is the
        # request ``AIOKafkaConsumer.topics()`` makes, which never creates a topic.
        cluster = await self._call(self._consumer._client.fetch_all_metadata())
        return sorted(cluster.partitions_for_topic(self.topic) or ())

    async def end_offsets(self, partitions: Sequence[int]) -> Positions:
        """The next offset to be written, per partition."""
        ends = await self._call(self._consumer.end_offsets(self._tps(partitions)))
        return {tp.partition: int(end) for tp, end in ends.items()}

    async def beginning_offsets(self, partitions: Sequence[int]) -> Positions:
        """The first offset still on the broker, per partition."""
        begins = await self._call(self._consumer.beginning_offsets(self._tps(partitions)))
        return {tp.partition: int(first) for tp, first in begins.items()}

    async def _call(self, work: Any) -> Any:
        from aiokafka.errors import KafkaError

        try:
            return await work
        except KafkaError as exc:
            raise ServiceUnavailable(f"{self.uri}: {exc}") from None

    async def read(self, ranges: Ranges, *, batch: int = READ_BATCH
                   ) -> AsyncGenerator[tuple[list[Chunk], Positions], None]:
        """``[start, end)`` of each partition of ``ranges``: (chunks, positions) batches.

        Each batch holds about ``batch`` records, as (partition, records) chunks in
        offset order per partition; ``positions`` is where each partition of ``ranges``
        resumes after it.  The last batch is the one that reaches every end (it may be
        empty; there is none when no range has a record due).  A record at or beyond
        its partition's end is never handed out.
        """
        from aiokafka.errors import KafkaError

        consumer = self._consumer
        tps = dict(zip(ranges, self._tps(list(ranges)), strict=True))
        try:
            consumer.assign(list(tps.values()))
            firsts = await self.beginning_offsets(list(ranges))
            at: Positions = {}
            due: dict[Any, int] = {}
            for partition, (start, end) in ranges.items():
                if start < firsts[partition] and start < end:
                    raise RangeDeleted(self.topic, partition, start, firsts[partition])
                at[partition] = start
                if start < end:
                    consumer.seek(tps[partition], start)
                    due[tps[partition]] = end
            consumer.pause(*[tp for tp in tps.values() if tp not in due])
            chunks: list[Chunk] = []
            count = 0
            idle_since = time.monotonic()
            while due:
                polled = await consumer.getmany(*due, timeout_ms=POLL_MS,
                                                max_records=max(batch - count, 1))
                progressed = False
                for tp, records in polled.items():
                    end = due[tp]
                    if records and records[-1].offset >= end:
                        records = [r for r in records if r.offset < end]
                    if records:
                        chunks.append((tp.partition, records))
                        count += len(records)
                        at[tp.partition] = records[-1].offset + 1
                        progressed = True
                # A position may pass the last record (transaction markers, compaction).
                for tp, end in list(due.items()):
                    position = min(int(await consumer.position(tp)), end)
                    if position > at[tp.partition]:
                        at[tp.partition] = position
                        progressed = True
                    if position >= end:
                        consumer.pause(tp)
                        del due[tp]
                if progressed:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > self.idle_timeout_s:
                    raise ServiceUnavailable(
                        f"{self.uri}: no record for {self.idle_timeout_s:g} s while "
                        f"{sum(e - at[tp.partition] for tp, e in due.items())} offsets are "
                        "still due")
                if count >= batch or not due:
                    yield chunks, dict(at)
                    chunks, count = [], 0
        except KafkaError as exc:
            raise ServiceUnavailable(f"{self.uri}: {exc}") from None




class RangeReader:
    """Re-reads ``[start, end)`` of one partition, outside any consumer group.

    Used by a worker that finds offsets it never projected before the first one it
    was handed (a crash after the offsets were committed, but before the
    projection), or a table that lost its changelog.  Rare, so one short-lived
    reader per read.
    """

    def __init__(self, bootstrap: str, topic: str,
                 timeout_s: float = RANGE_READ_TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout_s = timeout_s

    async def read(self, partition: int, start: int, end: int) -> list[SourceRecord]:
        if start >= end:
            return []
        records: list[SourceRecord] = []
        reader = TopicReader(self.bootstrap, self.topic, client_id="journey-worker-range",
                             idle_timeout_s=self.timeout_s)
        try:
            async with reader:
                async for chunks, _ in reader.read({partition: (start, end)}):
                    records.extend(SourceRecord(partition, r.offset, r.key, r.value,
                                                int(r.timestamp))
                                   for _, chunk in chunks for r in chunk)
        except RangeDeleted as deleted:
            raise ServiceUnavailable(
                f"{deleted}; the event log must keep every record (retention.ms=-1)") from None
        log.info("worker.range_read", topic=self.topic, partition=partition, start=start,
                 end=end, records=len(records))
        return records
