"""The live pipeline on a real Apache Kafka broker and a real PostgreSQL (DESIGN.md 2, 6).

``journey publish`` + ``journey worker`` (subprocesses, as deployed) must produce
exactly the rows ``journey ingest`` produces embedded, for the same file: every
row of patients, lines, due_assessments and findings.  Also: publishing twice
changes nothing, bad records become dead letters while processing goes on, a
SIGKILL mid-stream loses nothing and duplicates nothing, and two workers share
the partitions, each patient on exactly one of them, in order.

Each test gets its own topics, consumer group (app id) and database.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from mbcjourney.processors.admission import BirthYears
from mbcjourney.processors.deadletters import opened_original
from mbcjourney.processors.ingest import validate_lines
from mbcjourney.processors.kafkaio import end_offsets, header, topic_partitions
from mbcjourney.processors.keyring import forget_open_stores, key_store
from mbcjourney.processors.publisher import open_producer
from mbcjourney.processors.sealing import Sealer
from mbcjourney.simulate import SimulationSettings, write_cohort
from tests.support.live import (
    JOURNEY,
    Checkpoints,
    Rows,
    Worker,
    drop_worker_app,
    journey,
    kill_part_way,
    partitions_split,
    read_topic,
    store_rows,
    summary_counts,
    wait_until,
    worker_args,
)

# slow: journey publish/worker processes, cohorts up to 2,000 patients
pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
CONFLICT_REASON = "event_id: already stored with different content"
DONE_TIMEOUT_S = 240.0
START_TIMEOUT_S = 60.0


@dataclass
class Live:
    bootstrap: str
    topic: str
    dead_letter_topic: str
    db_url: str
    app_id: str
    tmp: Path

    def worker(self, name: str, *extra: str) -> Worker:
        return Worker(self.tmp, name, worker_args(self.bootstrap, self.db_url, self.app_id,
                                                  self.topic, self.dead_letter_topic, *extra))

    def publish(self, path: Path) -> subprocess.CompletedProcess[str]:
        return journey("publish", str(path), "--bootstrap", self.bootstrap, "--topic",
                       self.topic, "--dead-letter-topic", self.dead_letter_topic,
                       "--keys", self.db_url, cwd=self.tmp, ok=(0, 1))

    def ends(self) -> dict[int, int]:
        return end_offsets(self.bootstrap, self.topic)


@pytest.fixture
def live(kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_ctl: ModuleType,
         postgres_db_url: str, tmp_path: Path) -> Iterator[Live]:
    app_id = f"test-live-{uuid.uuid4().hex[:10]}"
    yield Live(
        bootstrap=kafka_bootstrap,
        topic=kafka_topic_factory(PARTITIONS, prefix="test.live",
                                  configs={"retention.ms": "-1"}),
        dead_letter_topic=kafka_topic_factory(1, prefix="test.live-dl"),
        db_url=postgres_db_url, app_id=app_id, tmp=tmp_path)
    drop_worker_app(kafka_ctl, kafka_bootstrap, app_id)


def cohort(tmp: Path, patients: int, seed: int) -> Path:
    path = tmp / "cohort.jsonl"
    with path.open("wb") as out:
        write_cohort(SimulationSettings(patients=patients, seed=seed), out)
    return path


@contextlib.contextmanager
def embedded_ingest(path: Path) -> Iterator[Callable[[], tuple[Rows, str]]]:
    """``journey ingest`` into SQLite in the background; the callable waits for its rows."""
    db = f"sqlite:///{path.parent / 'embedded.db'}"
    proc = subprocess.Popen([*JOURNEY, "ingest", str(path), "--db", db], cwd=path.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def rows() -> tuple[Rows, str]:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode in (0, 1), f"journey ingest failed:\n{err[-3000:]}"
            return store_rows(db), out

        yield rows
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_done(live: Live, workers: list[Worker], ends: dict[int, int]) -> None:
    checkpoints = Checkpoints(live.db_url, live.topic)
    try:
        wait_until(lambda: checkpoints.reached(ends), timeout=DONE_TIMEOUT_S,
                   what=f"checkpoints at the end offsets {ends}", workers=workers)
    finally:
        checkpoints.close()


def accepted_ihc(lines: list[bytes]) -> dict[str, Any]:
    """An IHC event of the file that the edge validation accepts (as published)."""
    checked = validate_lines(enumerate(lines, start=1), BirthYears(),
                             received_at=datetime.now(UTC))
    body = next(item.row.body for batch in checked for item in batch.valid
                if item.row.event_type == "ihc.recorded")
    event: dict[str, Any] = orjson.loads(body)
    return event


def test_publish_and_worker_give_the_embedded_rows_for_2000_patients(live: Live) -> None:
    path = cohort(live.tmp, patients=2000, seed=2026)
    with embedded_ingest(path) as embedded, live.worker("worker") as worker:
        published = live.publish(path)
        ends = live.ends()
        wait_done(live, [worker], ends)
        expected, ingested = embedded()

    assert store_rows(live.db_url) == expected
    assert len(expected[0]) > 1900
    assert len(expected[1]) > 3000
    assert all(expected)
    # the same validation at both edges: the same lines refused for the same reasons
    # (the embedded log also refuses event_id conflicts at ingest; the worker, later)
    refused = summary_counts(ingested)
    refused.pop(CONFLICT_REASON, None)
    assert summary_counts(published.stdout) == refused
    assert sum(ends.values()) == int(published.stdout.split(": ")[1].split(" published")[0])


def test_publishing_twice_changes_nothing_and_bad_records_become_dead_letters(
        live: Live) -> None:
    path = cohort(live.tmp, patients=150, seed=7)
    lines = path.read_bytes().splitlines()
    with live.worker("worker") as worker:
        first = live.publish(path)
        wait_done(live, [worker], live.ends())
        before = store_rows(live.db_url)

        # straight onto the event topic, past the publisher's checks:
        original = accepted_ihc(lines)
        er = 0 if original["payload"]["er_percent"] else 1
        conflicting = {**original, "payload": {**original["payload"], "er_percent": er}}
        newcomer = {**original, "event_id": str(uuid.uuid4()), "patient_id": "P-999999",
                    "event_type": "patient.included", "payload": {
                        "birth_year": 1961, "sex": "female", "centre": "C09",
                        "consent_version": "v1", "presentation": "de_novo",
                        "metastatic_sites": ["bone"]}}
        malformed = b'{"event_type": "ihc.recorded", "patient_id": "P-000001", oops'
        producer = open_producer(live.bootstrap, linger_ms=0)
        try:
            key = original["patient_id"].encode()
            producer.send(live.topic, key=b"P-000001", value=malformed).get(timeout=30)
            producer.send(live.topic, key=key, value=orjson.dumps(conflicting)).get(timeout=30)
            producer.send(live.topic, key=b"P-999999",
                          value=orjson.dumps(newcomer)).get(timeout=30)
        finally:
            producer.close(timeout=10)
        second = live.publish(path)
        wait_done(live, [worker], live.ends())

    after = store_rows(live.db_url)
    assert [[r for r in table if r.patient_id != "P-999999"] for table in after] == list(before)
    assert [r.patient_id for r in after[0] if r.patient_id == "P-999999"] == ["P-999999"]
    assert first.stdout == second.stdout  # same summary: the same lines refused again

    rejected = sum(summary_counts(first.stdout).values())
    letters = read_topic(live.bootstrap, live.dead_letter_topic, 2 * rejected + 2)
    by_origin = defaultdict(list)
    for record in letters:
        origin = header(record.headers, "origin") or ""
        by_origin["file" if origin.startswith("cohort.jsonl:") else "topic"].append(record)
    assert len(by_origin["file"]) == 2 * rejected
    worker_letters = {header(r.headers, "reason"): r for r in by_origin["topic"]}
    assert set(worker_letters) == {"$: not valid JSON", CONFLICT_REASON}
    cipher = Sealer(key_store(live.db_url))  # dead letters are sealed on the topic too
    try:
        opened = {reason: opened_original(cipher, r.value)
                  for reason, r in worker_letters.items()}
    finally:
        forget_open_stores()
    assert all(r.value.startswith(b"~k") for r in worker_letters.values())
    assert opened["$: not valid JSON"] == malformed
    assert worker_letters["$: not valid JSON"].key == b"P-000001"  # read best-effort
    assert orjson.loads(opened[CONFLICT_REASON]) == conflicting
    assert (header(worker_letters[CONFLICT_REASON].headers, "origin") or "").startswith(
        f"{live.topic}/")


def test_sigkill_mid_stream_then_restart_gives_the_embedded_rows(live: Live) -> None:
    path = cohort(live.tmp, patients=600, seed=31)
    with embedded_ingest(path) as embedded:
        live.publish(path)
        ends = live.ends()
        total = sum(ends.values())
        started: list[Worker] = []

        def first() -> Worker:
            started.append(live.worker("first", "--batch-max", "1500", "--project-every",
                                       "6000"))
            return started[0]

        def holding_back() -> bool:  # its last batch was applied, its rows not yet written
            batches = started[0].events("worker.batch")
            return bool(batches) and batches[-1]["deferred"]

        # Killed while rows wait: records past the checkpoint are already in its table.
        kill_part_way(first, live.db_url, live.topic, total,
                      ready=lambda c: c.processed() >= total // 4 and holding_back(),
                      what="a quarter of the records projected, more applied",
                      timeout=START_TIMEOUT_S)

        # A cache far smaller than the histories: projections decode evicted ones again.
        with live.worker("second", "--cached-events", "2000") as second:
            wait_done(live, [second], ends)
        expected, _ = embedded()

    assert store_rows(live.db_url) == expected
    recovered = second.events("worker.table_recovered")
    assert recovered
    assert recovered[0]["events"] > 0
    assert sum(b["redecoded"] for b in second.events("worker.batch")) > 0


def test_two_workers_share_the_partitions_each_patient_on_one_in_order(live: Live) -> None:
    path = cohort(live.tmp, patients=400, seed=5)
    with embedded_ingest(path) as embedded, live.worker("a") as a, live.worker("b") as b:

        wait_until(lambda: partitions_split([a, b], PARTITIONS), timeout=START_TIMEOUT_S,
                   what="two workers with 2+2 partitions",
                   workers=[a, b])
        live.publish(path)
        ends = live.ends()
        wait_done(live, [a, b], ends)
        expected, _ = embedded()
    assert a.proc.returncode == 0
    assert b.proc.returncode == 0

    assert store_rows(live.db_url) == expected
    # each partition handled by exactly one worker, every offset once, in order
    handled: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for worker in (a, b):
        for batch in worker.events("worker.batch"):
            for partition, (first, last) in batch["offsets"].items():
                handled[int(partition)].append((worker.name, first, last))
    assert set(handled) == set(range(PARTITIONS))
    for partition, ranges in handled.items():
        assert len({name for name, _, _ in ranges}) == 1, f"partition {partition}: {ranges}"
        assert ranges[0][1] == 0
        assert ranges[-1][2] == ends[partition] - 1
        assert all(nxt[1] == prev[2] + 1 for prev, nxt in itertools.pairwise(ranges))
    assert {n for r in handled.values() for n, _, _ in r} == {"a", "b"}
    # and a patient's events all sit in one partition
    records = read_topic(live.bootstrap, live.topic, sum(ends.values()))
    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    for record in records:
        partitions_of[record.key].add(record.partition)
    assert all(len(parts) == 1 for parts in partitions_of.values())


def test_missing_topics_are_refused_with_a_clear_message(live: Live) -> None:
    path = cohort(live.tmp, patients=5, seed=1)
    missing = f"test.live.missing-{uuid.uuid4().hex[:8]}"
    published = journey("publish", str(path), "--bootstrap", live.bootstrap, "--topic", missing,
                        cwd=live.tmp, ok=(2,))
    assert f"Kafka topic '{missing}' does not exist" in published.stderr
    worker = journey("worker", *worker_args(live.bootstrap, live.db_url, live.app_id,
                                            live.topic, live.dead_letter_topic,
                                            "--partitions", "8"), cwd=live.tmp, ok=(2,))
    assert "has 4 partitions, expected 8" in worker.stderr
    assert topic_partitions(live.bootstrap, [missing]) == {}  # nothing was auto-created
