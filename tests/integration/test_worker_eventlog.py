"""A workers' PostgreSQL answers like the embedded engine: the workers fill the SQL event log.

The same simulated cohort, once published to Kafka and processed by a real
``journey worker`` into PostgreSQL, once ingested embedded into SQLite: through
:func:`mbcjourney.bootstrap.open_engine` on each URL, the same histories (every
event id per patient, in order), the same exports now and under ``--cutoff`` and
``--known-at`` views, the same ``overdue --as-of`` rows and the same alerts.  On
PostgreSQL the current export reads the workers' rows: the embedded engine does
not re-project a store the workers own.  Then a second worker (a new consumer
group: an empty table) replays the whole topic: every event is applied again,
and the log stays as it was.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mbcjourney.bootstrap import open_engine
from mbcjourney.engine import CONSUMER, EmbeddedEngine
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.processors.kafkaio import end_offsets
from mbcjourney.projections import EVERYTHING, View
from tests.support.cohorts import simulated_cohort
from tests.support.live import Checkpoints, Worker, journey, wait_until, worker_args

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 3
DONE_TIMEOUT_S = 240.0
PATIENTS = 300
VIEWS = {
    "now": EVERYTHING,
    "cutoff": View(cutoff=date(2023, 6, 30)),
    "known_at": View(known_at=datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)),
    "both": View(cutoff=date(2024, 3, 31), known_at=datetime(2023, 9, 30, tzinfo=UTC)),
}
AS_OF = (date(2023, 3, 1), date(2024, 6, 30))


@dataclass
class Deployment:
    bootstrap: str
    topic: str
    dead_letter_topic: str
    db_url: str
    tmp: Path
    app_ids: list[str]

    def worker(self, name: str) -> Worker:
        app_id = f"test-wlog-{uuid.uuid4().hex[:10]}"  # each its own group and table
        self.app_ids.append(app_id)
        return Worker(self.tmp, name, worker_args(self.bootstrap, self.db_url, app_id,
                                                  self.topic, self.dead_letter_topic,
                                                  "--partitions", str(PARTITIONS)))


@pytest.fixture
def deployment(kafka_bootstrap: str, kafka_topic_factory: Callable[..., str],
               kafka_ctl: ModuleType, postgres_db_url: str, tmp_path: Path
               ) -> Iterator[Deployment]:
    made = Deployment(kafka_bootstrap,
                      kafka_topic_factory(PARTITIONS, prefix="test.wlog",
                                          configs={"retention.ms": "-1"}),
                      kafka_topic_factory(1, prefix="test.wlog-dl"), postgres_db_url,
                      tmp_path, [])
    yield made
    admin = kafka_ctl.admin_client(kafka_bootstrap)
    try:  # the workers' own topics: changelog, assignor
        with contextlib.suppress(Exception):
            owned = [t for t in admin.list_topics()
                     if any(t.startswith(f"{a}-") for a in made.app_ids)]
            if owned:
                admin.delete_topics(owned, timeout_ms=30_000)
    finally:
        admin.close()
    for app_id in made.app_ids:
        shutil.rmtree(Path(tempfile.gettempdir()) / f"mbc-journey-{app_id}",
                      ignore_errors=True)


def histories(engine: EmbeddedEngine) -> dict[str, list[str]]:
    return {patient_id: [str(e.event_id) for e in events]
            for patient_id, events in engine.log.histories()}


def answers(engine: EmbeddedEngine) -> dict[str, Any]:
    """Everything a reader asks of the log and the store, by question."""
    out: dict[str, Any] = {"histories": histories(engine)}
    for name, view in VIEWS.items():
        out[f"patients/{name}"] = engine.patient_rows(view)
        out[f"lines/{name}"] = engine.line_rows(view)
        out[f"findings/{name}"] = engine.finding_rows(view)
    for day in AS_OF:
        out[f"overdue/{day}"] = engine.overdue(day)
        out[f"alerts/{day}"] = engine.alerts(day)
    return out


def log_rows(engine: EmbeddedEngine) -> list[tuple[int, str]]:
    return [(stored.position, str(stored.event.event_id)) for stored in engine.log.read()]


def test_a_workers_store_answers_as_the_embedded_engine_and_a_replay_changes_no_log(
        deployment: Deployment, tmp_path: Path) -> None:
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=PATIENTS, seed=314)
    embedded_url = f"sqlite:///{tmp_path / 'embedded.db'}"
    with open_engine(embedded_url, create=True) as embedded, cohort.open("rb") as stream:
        embedded.ingest(numbered_lines(stream), origin="cohort", received_at=datetime.now(UTC))
        embedded.catch_up()
        expected = answers(embedded)
    checkpoints = Checkpoints(deployment.db_url, deployment.topic)
    try:
        with deployment.worker("worker") as worker:
            journey("publish", str(cohort), "--bootstrap", deployment.bootstrap, "--topic",
                    deployment.topic, "--dead-letter-topic", deployment.dead_letter_topic,
                    "--keys", deployment.db_url, cwd=tmp_path, ok=(0, 1))
            ends = end_offsets(deployment.bootstrap, deployment.topic)
            wait_until(lambda: checkpoints.reached(ends), timeout=DONE_TIMEOUT_S,
                       what=f"checkpoints at the end offsets {ends}", workers=[worker])
        with open_engine(deployment.db_url) as workers:
            assert workers.owned_by_workers()
            got = answers(workers)
            logged = log_rows(workers)
            assert workers.store.checkpoint(CONSUMER) == {}  # read as written, not re-projected
    finally:
        checkpoints.close()

    assert len(expected["histories"]) >= PATIENTS * 0.9
    assert all(expected[f"patients/{name}"] for name in VIEWS)
    assert any(expected[f"overdue/{day}"] for day in AS_OF)
    for question, answer in expected.items():
        assert got[question] == answer, question

    # A second worker with an empty table replays the whole topic: every event applied
    # again, each a duplicate in the log.
    with deployment.worker("replayer") as replayer:
        def replayed() -> bool:
            again = sum(int(r["duplicates"]) for r in replayer.events("worker.log_duplicates"))
            return again >= len(logged)

        wait_until(replayed, timeout=DONE_TIMEOUT_S, what=f"{len(logged)} events re-applied",
                   workers=[replayer])
        assert replayer.events("worker.table_rebuild")
        assert not replayer.events("worker.log_conflicts")
    with open_engine(deployment.db_url) as workers:
        assert log_rows(workers) == logged
        assert answers(workers) == got
