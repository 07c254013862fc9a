"""The one Kafka reader (aiokafka) that replay and the worker share, on a real broker.

A range read up to the ends it is given, in batches with resume positions; reading
again from any batch's positions gives exactly the rest; keyless records and
tombstones come through as they are; deleted records, a range that never arrives
and a broker that does not answer are each one clear error.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from mbcjourney import logs
from mbcjourney.errors import ConfigurationError, ServiceUnavailable
from mbcjourney.processors.kafkaread import (
    Positions,
    RangeDeleted,
    RangeReader,
    Ranges,
    TopicReader,
)
from mbcjourney.processors.sources import KafkaSource

pytestmark = pytest.mark.integration

Row = tuple[int, int, bytes | None, bytes | None]  # partition, offset, key, value
PER_PARTITION = 40
KEYLESS = (0, 3)  # (partition, offset) of the record produced without a key
TOMBSTONE = (1, 5)  # ... and of the one produced without a value


def _produce(bootstrap: str, topic: str, rounds: range) -> list[Row]:
    """Records ``rounds`` of each of two partitions; the offsets are known (one producer)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    rows: list[Row] = []
    try:
        for i, partition in itertools.product(rounds, (0, 1)):
            key: bytes | None = f"P-{i:06d}".encode()
            value: bytes | None = f'{{"n": {i}, "partition": {partition}}}'.encode()
            if (partition, i) == KEYLESS:
                key = None
            if (partition, i) == TOMBSTONE:
                value = None
            producer.send(topic, key=key, value=value, partition=partition).get(timeout=30)
            rows.append((partition, i, key, value))
    finally:
        producer.close()
    return sorted(rows)


@pytest.fixture
def topic(kafka_topic_factory: Callable[..., str]) -> str:
    return kafka_topic_factory(2, prefix="reader")


def _read(bootstrap: str, topic: str, ranges: Ranges, batch: int, **options: Any
          ) -> list[tuple[list[Row], Positions]]:
    async def run() -> list[tuple[list[Row], Positions]]:
        out: list[tuple[list[Row], Positions]] = []
        async with TopicReader(bootstrap, topic, client_id="test-reader", **options) as reader:
            async for chunks, positions in reader.read(ranges, batch=batch):
                out.append(([(p, r.offset, r.key, r.value) for p, chunk in chunks
                             for r in chunk], positions))
        return out

    return asyncio.run(run())


def _ends(bootstrap: str, topic: str) -> Positions:
    async def run() -> Positions:
        async with TopicReader(bootstrap, topic, client_id="test-reader") as reader:
            assert await reader.partitions() == [0, 1]
            return await reader.end_offsets([0, 1])

    return asyncio.run(run())


def test_a_range_is_read_to_its_snapshot_in_batches_that_resume(
        kafka_bootstrap: str, topic: str) -> None:
    produced = _produce(kafka_bootstrap, topic, range(PER_PARTITION))
    snapshot = _ends(kafka_bootstrap, topic)
    assert snapshot == {0: PER_PARTITION, 1: PER_PARTITION}
    later = _produce(kafka_bootstrap, topic, range(PER_PARTITION, PER_PARTITION + 5))
    assert later  # after the snapshot: never read

    ranges = {p: (0, end) for p, end in snapshot.items()}
    batches = _read(kafka_bootstrap, topic, ranges, batch=7)
    read = [row for rows, _ in batches for row in rows]
    assert sorted(read) == produced  # each once, nothing past the snapshot
    assert len(batches) >= len(produced) // 7
    for partition in (0, 1):  # offset order within a partition
        offsets = [o for p, o, _, _ in read if p == partition]
        assert offsets == sorted(offsets)
    by_place = {(p, o): (key, value) for p, o, key, value in read}
    assert by_place[KEYLESS] == (None, b'{"n": 3, "partition": 0}')
    assert by_place[TOMBSTONE] == (b"P-000005", None)
    assert batches[-1][1] == snapshot

    # Each batch's positions say where to resume: reading from them gives exactly the rest.
    seen: list[Row] = []
    for rows, positions in batches[:-1]:
        seen.extend(rows)
        for partition in (0, 1):
            done = [o for p, o, _, _ in seen if p == partition]
            assert positions[partition] == (max(done) + 1 if done else 0)
    middle = len(batches) // 2
    positions = batches[middle - 1][1]
    rest = _read(kafka_bootstrap, topic,
                 {p: (positions[p], end) for p, end in snapshot.items()}, batch=1000)
    assert [row for rows, _ in rest for row in rows] == sorted(
        row for rows, _ in batches[middle:] for row in rows)


def test_replay_source_and_worker_range_reader_keep_keyless_records_and_tombstones(
        kafka_bootstrap: str, topic: str) -> None:
    produced = _produce(kafka_bootstrap, topic, range(PER_PARTITION))

    source = KafkaSource(kafka_bootstrap, topic)
    snapshot = source.snapshot()
    assert snapshot == {"end_offsets": {"0": PER_PARTITION, "1": PER_PARTITION}}
    start = source.start(snapshot)
    assert start == {"0": 0, "1": 0}
    staged = [(batch, after) for batch, after in source.read(snapshot, start)]
    records = {(r.partition, r.seq): r for batch, _ in staged for r in batch}
    assert len(records) == len(produced)
    assert staged[-1][1] == {"0": PER_PARTITION, "1": PER_PARTITION}
    assert records[KEYLESS].key is None
    assert records[TOMBSTONE].raw is None  # admission refuses it with its own reason
    assert records[TOMBSTONE].key == "P-000005"
    assert records[(0, 7)].raw == b'{"n": 7, "partition": 0}'
    # resuming from a position reads the rest only
    after = source.read(snapshot, {"0": PER_PARTITION - 2, "1": PER_PARTITION})
    assert [(r.partition, r.seq) for batch, _ in after for r in batch] == [
        (0, PER_PARTITION - 2), (0, PER_PARTITION - 1)]

    gap = asyncio.run(RangeReader(kafka_bootstrap, topic).read(1, 2, 9))
    assert [(r.partition, r.offset, r.key, r.value) for r in gap] == [
        row for row in produced if row[0] == 1 and 2 <= row[1] < 9]
    tombstone = next(r for r in gap if r.offset == TOMBSTONE[1])
    assert tombstone.value is None
    assert asyncio.run(RangeReader(kafka_bootstrap, topic).read(0, 5, 5)) == []


def test_deleted_records_are_a_clear_error(kafka_bootstrap: str, topic: str,
                                           kafka_ctl: ModuleType) -> None:
    from kafka import TopicPartition

    _produce(kafka_bootstrap, topic, range(10))
    admin = kafka_ctl.admin_client(kafka_bootstrap)
    try:
        admin.delete_records({TopicPartition(topic, 0): 4})  # as retention would
    finally:
        admin.close()

    with pytest.raises(RangeDeleted, match=r"\[0\] offsets 0\.\.3 were deleted"):
        _read(kafka_bootstrap, topic, {0: (0, 10), 1: (0, 10)}, batch=100)
    with pytest.raises(ServiceUnavailable, match=r"retention\.ms=-1"):
        asyncio.run(RangeReader(kafka_bootstrap, topic).read(0, 2, 8))
    source = KafkaSource(kafka_bootstrap, topic)
    snapshot = source.snapshot()
    with pytest.raises(ConfigurationError, match="partition 0: records from offset 0 were "
                                                 "deleted"):
        list(source.read(snapshot, {"0": 0, "1": 0}))
    assert source.start(snapshot) == {"0": 4, "1": 0}  # a new build starts where records are
    assert sum(len(b) for b, _ in source.read(snapshot, source.start(snapshot))) == 16


def test_records_that_never_come_are_an_idle_timeout(kafka_bootstrap: str, topic: str) -> None:
    _produce(kafka_bootstrap, topic, range(3))
    with pytest.raises(ServiceUnavailable,
                       match=r"no record for 0\.5 s while 5 offsets are still due"):
        _read(kafka_bootstrap, topic, {0: (0, 8), 1: (0, 3)}, batch=100, idle_timeout_s=0.5)


def test_a_broker_that_does_not_answer_is_one_quiet_error(closed_port: int) -> None:
    original, stream = sys.stderr, io.StringIO()
    logs.configure("warning", stream=stream)
    bootstrap = f"127.0.0.1:{closed_port}"
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            _read(bootstrap, "any.topic", {0: (0, 1)}, batch=1, connect_timeout_s=0.5)
    finally:
        logs.configure("warning", stream=original)
    assert str(raised.value).startswith(
        f"Kafka at {bootstrap} does not answer within 0.5 s ({bootstrap}: Connection refused)")
    assert stream.getvalue() == ""  # no aiokafka line per attempt
