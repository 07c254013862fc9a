"""One admission path: the same hostile input gets the same verdict on every path.

The corpus (``tests/support/hostile.py``: named cases for each defect class of
issue #19, plus seeded mutations of valid events) goes through

1. ``journey ingest`` (the SQL log, SQLite and PostgreSQL);
2. ``journey publish`` to a real Kafka topic, then the worker's batch processor;
3. replay from the JSON Lines file;
4. replay from a real Kafka topic holding the raw lines (a producer that skipped
   ``journey publish``), and the worker over that same topic.

Every path must accept the same events (compared after the history view, the
input of every projection) and refuse the same lines for the same reasons.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from mbcjourney.events import ClinicalEvent
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.histories import Histories
from mbcjourney.processors.ingest import ingest_lines, numbered_lines
from mbcjourney.processors.kafkaio import SourceRecord
from mbcjourney.processors.publisher import open_producer, publish_lines
from mbcjourney.processors.replay import Replay, ReplayOptions, resolve_target
from mbcjourney.processors.sources import JsonlSource, KafkaSource
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.worker import BatchProcessor, ProjectionSink
from mbcjourney.projections.history import EVERYTHING, build_history
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.alerting import read_records
from tests.support.fakes import FakeChangelog, FakeDeadLetters, NoRereads
from tests.support.hostile import corpus

pytestmark = pytest.mark.integration

RECEIVED = datetime.now(UTC)

ADMITTED = '''
from mbcjourney.analyst import Column, projection

@projection("admitted", columns=[Column("event_id", str, key=True), Column("event_type", str)])
def admitted(history, settings):
    for event in history.events:
        yield {"event_id": str(event.event_id), "event_type": event.event_type}
'''


@dataclass(frozen=True)
class Verdicts:
    """What one path made of the corpus."""

    accepted: dict[str, list[str]]  # patient -> event ids in the history view
    reasons: Counter[str]  # reason -> lines refused for it

    @staticmethod
    def of(histories: Iterable[tuple[str, list[ClinicalEvent]]], reasons: Counter[str]
           ) -> Verdicts:
        accepted = {}
        for patient_id, events in histories:
            view = build_history(patient_id, events, EVERYTHING).events
            if view:
                accepted[patient_id] = sorted(str(e.event_id) for e in view)
        return Verdicts(accepted, reasons)


def first_reason(reason: str) -> str:
    """A dead letter's reason names every broken field; counts use the first."""
    return reason.split("; ")[0]


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return corpus()


@pytest.fixture
def corpus_file(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def via_ingest(url: str, path: Path) -> Verdicts:
    engine = make_engine(url)
    try:
        log = SqlEventLog(engine)
        log.create()
        with path.open("rb") as stream:
            summary = ingest_lines(numbered_lines(stream), log, origin=path.name,
                                   received_at=RECEIVED)
        letters = log.dead_letters()
        assert Counter(first_reason(d.reason) for d in letters) == summary.rejected
        return Verdicts.of(log.histories(), Counter(summary.rejected))
    finally:
        engine.dispose()


def via_worker(records: list[SourceRecord], tmp_path: Path) -> tuple[Verdicts, Histories]:
    histories, dead = Histories(), FakeDeadLetters()
    store = ProjectionStore(make_engine(f"sqlite:///{tmp_path / 'worker-rows.db'}"))
    store.create()
    SqlEventLog(store.engine).create()  # the worker appends what it applies
    with ThreadPoolExecutor(max_workers=1) as pool:
        processor = BatchProcessor(
            histories=histories, changelog=FakeChangelog(), dead_letters=dead,
            ranges=NoRereads(), sink=ProjectionSink(store, "worker:test", pool), topic="test")

        async def run() -> None:
            for start in range(0, len(records), 97):  # several batches
                await processor.process(records[start:start + 97])
            await processor.drain()

        asyncio.run(run())
    reasons = Counter(first_reason(d.reason) for d in dead.letters)
    return Verdicts.of(((p, histories.events(p)) for p in histories.logs), reasons), histories


def via_replay(source: JsonlSource | KafkaSource, tmp_path: Path) -> Verdicts:
    projection = tmp_path / "admitted.py"
    projection.write_text(ADMITTED)
    engine = make_engine(f"sqlite:///{tmp_path / f'replay-{uuid_hex()}.db'}")
    try:
        result = Replay(engine, source, resolve_target(str(projection)), DEFAULT_CLINICAL,
                        ReplayOptions(EVERYTHING, 2000, True)).run()
        (name,) = result.info.tables
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                f'SELECT patient_id, event_id FROM "{name}"').fetchall()
        accepted: dict[str, list[str]] = {}
        for patient_id, event_id in rows:
            accepted.setdefault(patient_id, []).append(event_id)
        return Verdicts({p: sorted(ids) for p, ids in accepted.items()},
                        Counter(result.counts.rejected))
    finally:
        engine.dispose()


def uuid_hex() -> str:
    import uuid

    return uuid.uuid4().hex[:8]


def produce_raw(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    """The lines as a producer that skipped ``journey publish`` would send them."""
    producer = open_producer(bootstrap, client_id="hostile-test")
    try:
        for raw in lines:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                data = None
            pid = data.get("patient_id") if isinstance(data, dict) else None
            key = pid.encode() if isinstance(pid, str) and pid else None
            producer.send(topic, key=key, value=raw)
        producer.flush(timeout=60)
    finally:
        producer.close()


@pytest.fixture
def reference(corpus_file: Path, tmp_path: Path) -> Verdicts:
    return via_ingest(f"sqlite:///{tmp_path / 'ingest.db'}", corpus_file)


def test_the_corpus_exercises_both_verdicts(reference: Verdicts, lines: list[bytes]) -> None:
    accepted = sum(len(ids) for ids in reference.accepted.values())
    assert accepted >= 20
    assert sum(reference.reasons.values()) >= 300
    assert len(reference.reasons) >= 25  # many distinct reasons, not one catch-all


def test_no_reason_quotes_input_text(reference: Verdicts) -> None:
    for reason in reference.reasons:
        for text in ("husband", "Smith", "HYPERLINK", "ER %", "Ünïcødé", "\x00", "free text"):
            assert text not in reason, reason


def test_ingest_on_postgresql_agrees(reference: Verdicts, corpus_file: Path,
                                     postgres_db_url: str) -> None:
    assert via_ingest(postgres_db_url, corpus_file) == reference


def test_replay_from_the_file_agrees(reference: Verdicts, corpus_file: Path,
                                     tmp_path: Path) -> None:
    assert via_replay(JsonlSource(corpus_file, RECEIVED), tmp_path) == reference


def test_publish_then_worker_agrees(reference: Verdicts, corpus_file: Path, tmp_path: Path,
                                    kafka_bootstrap: str,
                                    kafka_topic_factory: Callable[..., str]) -> None:
    topic = kafka_topic_factory(3)
    producer = open_producer(kafka_bootstrap, client_id="hostile-test")
    try:
        with corpus_file.open("rb") as stream:
            summary = publish_lines(numbered_lines(stream), producer, origin="hostile",
                                    received_at=RECEIVED, topic=topic,
                                    dead_letter_topic=kafka_topic_factory(1))
    finally:
        producer.close()
    worker, _ = via_worker(read_records(kafka_bootstrap, topic), tmp_path)
    reasons = Counter(summary.rejected) + worker.reasons
    assert Verdicts(worker.accepted, reasons) == reference


def test_raw_topic_worker_and_kafka_replay_agree(
        reference: Verdicts, lines: list[bytes], tmp_path: Path, kafka_bootstrap: str,
        kafka_topic_factory: Callable[..., str]) -> None:
    topic = kafka_topic_factory(3)
    produce_raw(kafka_bootstrap, topic, lines)
    worker, _ = via_worker(read_records(kafka_bootstrap, topic), tmp_path)
    assert worker == reference
    assert via_replay(KafkaSource(kafka_bootstrap, topic), tmp_path) == reference


def test_a_keyless_record_is_refused_by_the_worker_and_by_kafka_replay(
        lines: list[bytes], tmp_path: Path, kafka_bootstrap: str,
        kafka_topic_factory: Callable[..., str]) -> None:
    """Issue #19 item 12: a Kafka replay accepted what the worker dead-lettered."""
    topic = kafka_topic_factory(1)
    valid = lines[0]  # a valid inclusion
    producer = open_producer(kafka_bootstrap, client_id="hostile-test")
    try:
        producer.send(topic, key=None, value=valid)
        producer.send(topic, key=b"P-H0001", value=None)  # a tombstone
        producer.flush(timeout=60)
    finally:
        producer.close()
    worker, _ = via_worker(read_records(kafka_bootstrap, topic), tmp_path)
    replayed = via_replay(KafkaSource(kafka_bootstrap, topic), tmp_path)
    expected = Counter({"key: required: a record's key is its patient_id": 1,
                        "$: tombstone (a record without a value)": 1})
    assert worker == replayed == Verdicts({}, expected)

