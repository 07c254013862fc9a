"""The Kafka broker used by the integration tests is real (DESIGN.md section 6).

Produces keyed messages with kafka-python the way the engine's producers must (acks=all,
idempotence on, per-patient key), consumes them with aiokafka (the client under
faust-streaming) and checks counts and per-key order; checks the standard topics of
``infra/topics.txt`` exist with the expected partitions and cleanup policy.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer, TopicPartition

from tests.support.polling import eventually_async

# Fixtures come from the plugin tests.fixtures.kafka (registered in tests/conftest.py).
# Do not import from it here: importing it before pytest registers it defeats assertion
# rewriting (PytestAssertRewriteWarning, an error under filterwarnings=error).

pytestmark = pytest.mark.integration

PARTITIONS = 4
KEYS = [f"patient-{i:03d}" for i in range(12)]
PER_KEY = 50
CONSUME_TIMEOUT_S = 60.0


def _encode(key: str, seq: int) -> bytes:
    return json.dumps({"key": key, "seq": seq}).encode()


def _produce(bootstrap: str, topic: str) -> dict[str, int]:
    """Send PER_KEY messages per key, interleaved across keys; return key -> partition."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,  # explicit: a conflicting setting raises instead of degrading
        linger_ms=5,
        # No key_/value_serializer callables: kafka-python 3 deprecates plain callables
        # (DeprecationWarning attributed to the caller); send bytes instead.
    )
    partition_of: dict[str, int] = {}
    try:
        futures = [
            (key, producer.send(topic, key=key.encode(), value=_encode(key, seq)))
            for seq in range(PER_KEY)
            for key in KEYS
        ]
        producer.flush(timeout=30)
        for key, future in futures:
            meta = future.get(timeout=30)
            # one key, one partition: the basis of per-patient ordering
            assert partition_of.setdefault(key, meta.partition) == meta.partition
    finally:
        producer.close(timeout=10)
    return partition_of


async def _consume(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-kafka-infra-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list[Any] = []
    try:

        async def consumed_enough() -> bool:
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                records.extend(batch)
            return len(records) >= expected

        await eventually_async(consumed_enough, timeout=CONSUME_TIMEOUT_S, interval=0,
                               what=f"{expected} records on {topic}",
                               detail=lambda: f"{len(records)} consumed")
        # Nothing beyond what was produced (no duplicates from retries).
        extra = await consumer.getmany(timeout_ms=500)
        records.extend(r for batch in extra.values() for r in batch)
        await consumer.commit()
    finally:
        await consumer.stop()
    return records


def test_keyed_messages_round_trip_in_order(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_ctl: ModuleType
) -> None:
    topic = kafka_topic_factory(PARTITIONS, prefix="test.kafka-infra")

    partition_of = _produce(kafka_bootstrap, topic)
    records = asyncio.run(_consume(kafka_bootstrap, topic, len(KEYS) * PER_KEY))

    assert len(records) == len(KEYS) * PER_KEY
    seqs: dict[str, list[int]] = defaultdict(list)
    for record in records:
        key = record.key.decode()
        value = json.loads(record.value)
        assert value["key"] == key
        assert record.partition == partition_of[key]
        seqs[key].append(value["seq"])
    # Every key complete, exactly once, in the order sent.
    assert {key: seqs[key] for key in KEYS} == {key: list(range(PER_KEY)) for key in KEYS}
    # The keys really were spread over the partitions (murmur2 of these keys: all 4).
    assert len(set(partition_of.values())) > 1

    # The broker saw an idempotent producer: it tracks a producer id per partition.
    admin = kafka_ctl.admin_client(kafka_bootstrap)
    try:
        if hasattr(admin, "describe_producers"):  # kafka-python >= 3
            states = admin.describe_producers(
                [TopicPartition(topic, p) for p in sorted(set(partition_of.values()))]
            )
            for tp, state in states.items():
                assert state.active_producers, f"no idempotent producer state on {tp}"
                assert all(p.producer_id >= 0 for p in state.active_producers)
    finally:
        admin.close()


def test_standard_topics_exist(kafka_bootstrap: str, kafka_ctl: ModuleType) -> None:
    ctl = kafka_ctl
    specs = ctl.load_topics()  # infra/topics.txt
    assert {s.name for s in specs} >= {"mbc.clinical-events", "mbc.dead-letter", "mbc.alerts"}

    admin = ctl.admin_client(kafka_bootstrap)
    try:
        partitions = ctl.describe_partitions(admin, [s.name for s in specs])
        assert partitions == {s.name: s.partitions for s in specs}

        if hasattr(admin, "describe_configs"):
            from kafka.admin import ConfigResource, ConfigResourceType

            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
            )
            topic_configs = configs.get("topic") if isinstance(configs, dict) else None
            if topic_configs is not None:  # kafka-python >= 3 result shape
                for spec in specs:
                    actual = topic_configs[spec.name]
                    for key, value in spec.topic_configs().items():
                        assert actual[key]["value"] == value, (spec.name, key)
    finally:
        admin.close()
