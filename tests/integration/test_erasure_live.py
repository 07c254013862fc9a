"""Crypto-shredding on the scale-out deployment: real Kafka (KRaft) and real PostgreSQL.

A canary patient, whose events carry strings found nowhere else, is published
(one line refused: dead-lettered), processed by a worker, replayed from the topic
into a new projection version and reported.  Before the erasure no Kafka log
segment of any topic (the workers' changelog included), no dead letter and no
``pg_dump`` of the database holds a canary string in clear; ``journey erase
--bootstrap`` then destroys the key and tells the worker, after which the patient
has no row anywhere, its key is gone, still nothing holds a canary, and every
other patient's exports are what they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import text

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.kafkaio import end_offsets
from mbcjourney.simulate import SimulationSettings, write_cohort
from tests.support.canary import CANARY, MARKS, canary_lines
from tests.support.live import (
    Checkpoints,
    Worker,
    drop_worker_app,
    journey,
    wait_until,
    worker_args,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DONE_TIMEOUT_S = 240.0
KAFKA_DIR = Path(os.environ.get("JOURNEY_KAFKA_DIR", "/tmp/mbc-kafka"))


def segment_bytes(topics: list[str]) -> dict[str, bytes]:
    """Every log segment of these topics' partitions, as the broker wrote them."""
    found: dict[str, bytes] = {}
    for folder in KAFKA_DIR.rglob("*"):
        if folder.is_dir() and any(folder.name.rsplit("-", 1)[0] == t for t in topics):
            for segment in folder.glob("*.log"):
                found[f"{folder.name}/{segment.name}"] = segment.read_bytes()
    return found


def pg_dump(db_url: str) -> bytes:
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    dumped = subprocess.run(
        [shutil.which("pg_dump") or "pg_dump", "-h", url.host or "127.0.0.1",
         "-p", str(url.port or 5432), "-U", url.username or "journey", url.database or ""],
        capture_output=True, timeout=300, check=True)
    return dumped.stdout


def holding(blobs: dict[str, bytes], marks: list[bytes]) -> dict[str, list[bytes]]:
    return {name: hits for name, data in blobs.items()
            if (hits := [m for m in marks if m in data])}


def others(csv_text: str) -> list[str]:
    return [line for line in csv_text.splitlines() if not line.startswith(CANARY)]


@pytest.fixture
def deployment(kafka_bootstrap: str, kafka_topic_factory: Callable[..., str],
               kafka_ctl: ModuleType, postgres_db_url: str, tmp_path: Path
               ) -> Iterator[dict[str, str]]:
    if not KAFKA_DIR.is_dir():
        pytest.skip(f"the broker's log dirs are not on this machine ({KAFKA_DIR})")
    app_id = f"test-erase-{uuid.uuid4().hex[:10]}"
    yield {"bootstrap": kafka_bootstrap, "db": postgres_db_url, "app_id": app_id,
           "topic": kafka_topic_factory(2, prefix="test.erase",
                                        configs={"retention.ms": "-1"}),
           "dead": kafka_topic_factory(1, prefix="test.erase-dl")}
    drop_worker_app(kafka_ctl, kafka_bootstrap, app_id)


def test_canary_is_sealed_on_every_topic_and_gone_after_erasure(
        deployment: dict[str, str], tmp_path: Path) -> None:
    d = deployment
    cohort = tmp_path / "cohort.jsonl"
    with cohort.open("wb") as out:
        write_cohort(SimulationSettings(patients=15, seed=9), out)
    cohort.write_bytes(cohort.read_bytes() + b"\n".join(canary_lines()) + b"\n")
    topics = [d["topic"], d["dead"], f"{d['app_id']}-patient-history-changelog"]
    checkpoints = Checkpoints(d["db"], d["topic"])
    args = worker_args(d["bootstrap"], d["db"], d["app_id"], d["topic"], d["dead"],
                       "--partitions", "2")
    try:
        with Worker(tmp_path, "worker", args) as worker:
            journey("publish", str(cohort), "--bootstrap", d["bootstrap"], "--topic",
                    d["topic"], "--dead-letter-topic", d["dead"], "--keys", d["db"],
                    cwd=tmp_path, ok=(1,))
            ends = end_offsets(d["bootstrap"], d["topic"])
            wait_until(lambda: checkpoints.reached(ends), timeout=DONE_TIMEOUT_S,
                       what="the worker at the end of the topic", workers=[worker])
            journey("replay", "--source", f"kafka://{d['bootstrap']}/{d['topic']}",
                    "--into", d["db"], cwd=tmp_path, ok=(0, 1))
            journey("report", "--db", d["db"], "--output", "report.html", cwd=tmp_path)
            patients_before = journey("export", "patients", "--db", d["db"],
                                      cwd=tmp_path).stdout
            lines_before = journey("export", "lines", "--db", d["db"], cwd=tmp_path).stdout
            assert CANARY in patients_before

            segments = segment_bytes(topics)
            assert {name.rsplit("-", 1)[0] for name in
                    (s.split("/")[0] for s in segments)} == set(topics)  # every topic seen
            assert holding(segments, MARKS) == {}
            assert holding({"pg_dump": pg_dump(d["db"]),
                            "report": (tmp_path / "report.html").read_bytes()}, MARKS) == {}

            erased = journey("erase", CANARY, "--reason", "consent withdrawn", "--by", "DPO",
                             "--db", d["db"], "--bootstrap", d["bootstrap"], "--topic",
                             d["topic"], cwd=tmp_path)
            assert "1 key destroyed" in erased.stdout
            assert "patient.erased published" in erased.stdout
            after = end_offsets(d["bootstrap"], d["topic"])
            wait_until(lambda: checkpoints.reached(after), timeout=DONE_TIMEOUT_S,
                       what="the worker past the patient.erased record", workers=[worker])
            worker_log = worker.tail(100_000)
    finally:
        checkpoints.close()

    patients_after = journey("export", "patients", "--db", d["db"], cwd=tmp_path).stdout
    assert CANARY not in patients_after
    assert others(patients_after) == others(patients_before)
    assert others(journey("export", "lines", "--db", d["db"], cwd=tmp_path).stdout) == \
        others(lines_before)
    engine = make_engine(d["db"])
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM patient_keys WHERE name = :p"),
                                {"p": CANARY}).scalar_one() == 0
            assert conn.execute(text("SELECT COUNT(*) FROM patients WHERE patient_id = :p"),
                                {"p": CANARY}).scalar_one() == 0
            assert conn.execute(text("SELECT COUNT(*) FROM erasures WHERE patient_id = :p"),
                                {"p": CANARY}).scalar_one() == 1
    finally:
        engine.dispose()
    blobs = {**segment_bytes(topics), "pg_dump": pg_dump(d["db"]),
             "worker log": worker_log.encode()}
    assert holding(blobs, MARKS) == {}


def test_a_clear_topic_is_copied_sealed_into_a_new_one(
        kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], postgres_db_url: str,
        tmp_path: Path) -> None:
    from mbcjourney.processors.keyring import forget_open_stores, key_store
    from mbcjourney.processors.publisher import open_producer
    from mbcjourney.processors.sealing import Sealer
    from mbcjourney.processors.sources import KafkaSource

    old = kafka_topic_factory(2, prefix="test.clear")
    new = kafka_topic_factory(2, prefix="test.sealed")
    lines = canary_lines()[:4]
    producer = open_producer(kafka_bootstrap, linger_ms=0)
    try:  # as a publisher from before encryption wrote them
        for line in lines:
            producer.send(old, key=CANARY.encode(), value=line).get(timeout=60)
    finally:
        producer.close(timeout=30)

    copied = journey("keys", "encrypt-topic", "--from", old, "--to", new, "--bootstrap",
                     kafka_bootstrap, "--keys", postgres_db_url, cwd=tmp_path)
    assert "read 4 records: 4 sealed" in copied.stdout
    source = KafkaSource(kafka_bootstrap, new)
    snapshot = source.snapshot()
    records = [r for batch, _ in source.read(snapshot, source.start(snapshot)) for r in batch]
    assert [r.key for r in records] == [CANARY] * 4
    assert all(r.raw is not None and r.raw.startswith(b"~1") for r in records)
    try:
        cipher = Sealer(key_store(postgres_db_url))
        assert [cipher.open(CANARY, r.raw or b"") for r in records] == lines  # same order
    finally:
        forget_open_stores()
