"""Replay from a real Kafka topic: the tables of the log, live consumer groups untouched."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mbcjourney.processors import sources
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.keyring import key_store
from mbcjourney.processors.replay import (
    JourneyTarget,
    Replay,
    ReplayOptions,
    table_hash,
    versions,
)
from mbcjourney.processors.sealing import Sealer
from mbcjourney.processors.sources import KafkaSource, open_source
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.cohorts import embedded_log, simulated_cohort

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 7, 1, tzinfo=UTC)


def _live_db(folder: Path) -> Path:
    jsonl = simulated_cohort(folder / "cohort.jsonl", patients=300, seed=5)
    return embedded_log(jsonl, folder / "live.db", received_at=RECEIVED)


def _publish(bootstrap: str, topic: str, db: Path) -> int:
    """The log's validated events, in log order, keyed by patient id (as the publisher does)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    conn = sqlite3.connect(db)
    count = 0
    try:
        for patient_id, body in conn.execute(
                "SELECT patient_id, body FROM events ORDER BY position"):
            producer.send(topic, value=body.encode(), key=patient_id.encode())
            count += 1
        producer.flush()
    finally:
        conn.close()
        producer.close()
    return count


def _group_ids(admin: Any) -> set[str]:
    listing = getattr(admin, "list_groups", None) or admin.list_consumer_groups
    ids: set[str] = set()
    for group in listing():  # kafka-python 3: dicts; 2: (group id, protocol type) tuples
        ids.add(str(group["group_id"] if isinstance(group, dict) else group[0]))
    return ids


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        consumer.close(autocommit=False)


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """A live worker's progress: offsets committed for its group."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        tps = {p: TopicPartition(topic, p) for p in offsets}
        consumer.assign(list(tps.values()))
        consumer.commit({tps[p]: OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    finally:
        consumer.close(autocommit=False)


def test_replay_from_kafka_equals_the_log_and_leaves_live_groups_alone(
        kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_ctl: ModuleType,
        tmp_path: Path) -> None:
    db = _live_db(tmp_path)
    topic = kafka_topic_factory(3, prefix="replay")
    published = _publish(kafka_bootstrap, topic, db)
    group = f"journey-live-{uuid.uuid4().hex[:8]}"
    _commit(kafka_bootstrap, group, topic, {0: 5, 1: 17, 2: 1})
    committed_before = _committed(kafka_bootstrap, group, topic, 3)
    assert committed_before == {0: 5, 1: 17, 2: 1}
    admin = kafka_ctl.admin_client(kafka_bootstrap)
    groups_before = _group_ids(admin)
    assert group in groups_before

    source = open_source(f"kafka://{kafka_bootstrap}/{topic}")
    assert isinstance(source, KafkaSource)
    into = make_engine(f"sqlite:///{tmp_path / 'into.db'}")
    keys = Sealer(key_store(f"sqlite:///{db}"))  # the values are sealed with the log's keys
    result = Replay(into, source, JourneyTarget(), DEFAULT_CLINICAL,
                    ReplayOptions(batch_patients=50), cipher=keys).run()

    live = make_engine(f"sqlite:///{db}")
    assert result.info.content_hash == table_hash(live, JourneyTarget().sink(live, "").outputs)[0]
    live.dispose()
    assert result.counts.read == result.counts.events == published
    assert result.info.options["snapshot"]["end_offsets"].keys() == {"0", "1", "2"}
    assert sum(result.info.options["snapshot"]["end_offsets"].values()) == published
    # where a live worker could go on from: the end offsets that were read
    ends = {int(p): e for p, e in result.info.options["snapshot"]["end_offsets"].items()}
    assert ProjectionStore(into, result.info.prefix).checkpoint("replay") == ends
    into.dispose()

    assert _committed(kafka_bootstrap, group, topic, 3) == committed_before
    # The replay joined no group: no group that appeared meanwhile (other tests may make
    # some) holds an offset of this topic.
    for other in _group_ids(admin) - groups_before:
        assert set(_committed(kafka_bootstrap, other, topic, 3).values()) == {None}
    admin.close()


class Interrupted(Exception):
    """Stands for a crash after some committed staging batches."""


def test_a_replay_interrupted_while_staging_resumes_to_its_snapshot(
        kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "STAGE_BATCH", 1000)  # several staging batches
    db = _live_db(tmp_path)
    topic = kafka_topic_factory(3, prefix="replay")
    published = _publish(kafka_bootstrap, topic, db)

    def replay(into: Any, on_commit: Callable[[str, int], None] | None = None) -> Any:
        source = open_source(f"kafka://{kafka_bootstrap}/{topic}")
        return Replay(into, source, JourneyTarget(), DEFAULT_CLINICAL,
                      ReplayOptions(batch_patients=50), on_commit=on_commit).run()

    def interrupt(phase: str, committed: int) -> None:
        if phase == "stage" and committed >= 3:
            raise Interrupted

    whole_db = make_engine(f"sqlite:///{tmp_path / 'whole.db'}")
    whole = replay(whole_db)
    whole_db.dispose()
    into = make_engine(f"sqlite:///{tmp_path / 'into.db'}")
    with pytest.raises(Interrupted):
        replay(into, interrupt)
    unfinished = versions(into, "journey")[-1]
    assert unfinished.status == "building"
    assert unfinished.progress["phase"] == "stage"
    staged = unfinished.progress["staged"]
    assert 0 < sum(staged.values()) < published
    _publish(kafka_bootstrap, topic, db)  # after the snapshot: the resumed build ignores it

    resumed = replay(into)
    assert resumed.resumed_from == "stage"
    assert resumed.info.version == unfinished.version
    assert resumed.counts == whole.counts  # nothing read twice, nothing past the snapshot
    assert resumed.counts.read == published
    assert resumed.info.content_hash == whole.info.content_hash
    into.dispose()


def test_a_missing_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    from mbcjourney.errors import ConfigurationError

    source = open_source(f"kafka://{kafka_bootstrap}/no.such.topic.{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError, match="no such topic"):
        source.snapshot()
