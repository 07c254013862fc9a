"""Live alerting on a real Apache Kafka broker and a real PostgreSQL.

1. Equivalence: a simulated cohort is published to a real event topic, read back,
   and fed -- each record at its ``recorded_at``, an injected clock, the alert timer
   ticking at the start of every day -- through the live worker's own processing
   (:class:`BatchProcessor` writing rows and alerts in one PostgreSQL transaction),
   publishing to a real alert topic.  The alerts table at the end of several days
   equals ``journey alerts --as-of`` on the embedded engine for the same events.
   (The real ``journey worker`` reads the real clock, so it cannot be driven
   through two simulated years; test 3 runs it with the real clock.)
2. Concurrency: evaluators ticking at once on PostgreSQL while a worker writes the
   same patients raise, resolve and publish each alert exactly once.
3. Real worker processes: two ``journey worker --alerts --webhooks`` share the
   partitions; only the leader ticks; each open alert is in the table once, on
   the topic, and at a real HTTP receiver (failing its first requests); then one
   is SIGKILLed and restarted, and nothing is lost or repeated.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

import orjson
import pytest
import sqlalchemy as sa

from mbcjourney.engine import EmbeddedEngine, project
from mbcjourney.processors.alerting import OPEN, RESOLVED, AlertRecord, KafkaEmitter, LiveAlerts
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.processors.kafkaio import end_offsets
from mbcjourney.processors.publisher import open_producer
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.settings import DEFAULT_CLINICAL
from mbcjourney.simulate import SimulationSettings, iter_cohort, write_cohort
from tests.support.alerting import (
    FakeClock,
    RecordingEmitter,
    embedded_summary,
    kinds_by_alert,
    live_summary,
    read_records,
    recorded_at,
    replay_live,
    validated_bodies,
)
from tests.support.builders import PatientBuilder
from tests.support.fakes import worker_rig
from tests.support.live import (
    Checkpoints,
    Worker,
    drop_worker_app,
    journey,
    kill_part_way,
    partitions_split,
    wait_until,
    worker_args,
)
from tests.support.webhooks import webhook_receiver

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 7, 1, tzinfo=UTC)
COHORT = SimulationSettings(patients=24, seed=2027, start=date(2023, 1, 1), accrual_days=150,
                            data_cutoff=date(2024, 12, 31))


@pytest.fixture
def stores(postgres_db_url: str) -> Iterator[Callable[[], ProjectionStore]]:
    """Projection stores on the test's database, one engine (pool) each, disposed after."""
    made: list[ProjectionStore] = []

    def make() -> ProjectionStore:
        made.append(ProjectionStore(make_engine(postgres_db_url)))
        return made[-1]

    yield make
    for store in made:
        store.engine.dispose()


def publish(bootstrap: str, topic: str, bodies: list[bytes]) -> None:
    producer = open_producer(bootstrap, linger_ms=5)
    try:
        futures = [producer.send(topic, key=orjson.loads(b)["patient_id"].encode(), value=b)
                   for b in bodies]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)


def alternates(kinds: list[str]) -> bool:
    """raised, resolved, raised, ...: every transition once, none repeated."""
    return all(kind == ("alert.raised" if i % 2 == 0 else "alert.resolved")
               for i, kind in enumerate(kinds))


@pytest.mark.slow  # about 15 s
def test_live_alerts_on_kafka_and_postgres_are_the_embedded_alerts_as_of(
        kafka_bootstrap: str, kafka_topic_factory: Callable[..., str],
        stores: Callable[[], ProjectionStore], tmp_path: Path) -> None:
    bodies = validated_bodies(iter_cohort(COHORT), RECEIVED)
    events_topic = kafka_topic_factory(4, prefix="test.alerts-events",
                                       configs={"retention.ms": "-1"})
    alerts_topic = kafka_topic_factory(4, prefix="test.alerts")
    publish(kafka_bootstrap, events_topic, bodies)
    consumed = read_records(kafka_bootstrap, events_topic)
    assert len(consumed) == len(bodies)
    # each record reaches the worker when it was recorded (per partition: topic order)
    arriving = sorted(consumed, key=lambda r: (recorded_at(r.value), r.partition, r.offset))

    until = COHORT.data_cutoff
    checkpoints = (date(2023, 8, 31), date(2024, 2, 29), until)
    store = stores()
    store.create()
    clock = FakeClock(RECEIVED)
    emitter = KafkaEmitter(open_producer(kafka_bootstrap, linger_ms=5), alerts_topic)
    alerts = LiveAlerts(store, clock=clock, emitter=emitter)
    alerts.create()
    seen = {}

    def snapshot(day: date) -> None:
        if day in checkpoints:
            seen[day] = live_summary(alerts.records())

    try:
        with ThreadPoolExecutor(max_workers=1) as executor:
            processor = worker_rig(store, executor, consumer=f"worker:{events_topic}",
                                   write=alerts.write, topic=events_topic).processor
            asyncio.run(replay_live(arriving, processor, alerts, clock, executor, until,
                                    at_end_of=snapshot))
    finally:
        emitter.close()

    embedded = EmbeddedEngine(f"sqlite:///{tmp_path / 'embedded.db'}")
    try:
        assert embedded.ingest(enumerate(bodies, start=1), origin="cohort",
                               received_at=RECEIVED).rejected_total == 0
        for day in checkpoints:
            assert seen[day] == embedded_summary(embedded.alerts(day)), day
    finally:
        embedded.close()
    final = seen[until]
    assert len(final) >= 25
    assert {state for *_, state in final} == {OPEN, RESOLVED}

    published = kinds_by_alert(read_records(kafka_bootstrap, alerts_topic))
    assert set(published) == {row[0] for row in final}
    for alert_id, _pid, _centre, _raised, _resolved, state in final:
        kinds = published[alert_id]
        assert alternates(kinds), (alert_id, kinds)
        assert kinds[-1] == ("alert.raised" if state == OPEN else "alert.resolved")


def test_concurrent_evaluators_on_postgres_raise_and_publish_each_alert_once(
        stores: Callable[[], ProjectionStore]) -> None:
    """Three leaders (a rebalance gone wrong) tick while a worker writes the same patients."""
    patients = 120
    histories = {}
    for n in range(1, patients + 1):
        b = PatientBuilder(f"P-{n:06d}")
        histories[b.patient_id] = (b, [
            b.included("2024-01-10", recorded="2024-01-10T10:00:00Z"),
            b.ihc("2024-01-05", her2="3+", recorded="2024-01-10T10:00:00Z")])
    clock = FakeClock(datetime(2024, 4, 1, tzinfo=UTC))
    published = RecordingEmitter()  # shared: messages in the order they were published

    def evaluator() -> LiveAlerts:
        return LiveAlerts(stores(), clock=clock, emitter=published)

    setup = evaluator()
    setup.store.create()
    setup.create()
    setup.write([project(pid, events, DEFAULT_CLINICAL) for pid, (_, events) in
                 histories.items()])  # before the window end (2024-04-17): nothing yet
    assert setup.records() == []

    clock.day("2024-04-18")
    imaged = {pid: project(pid, [*events, b.imaging("2024-04-15",
                                                    recorded="2024-04-18T00:00:00Z")],
                           DEFAULT_CLINICAL)
              for pid, (b, events) in list(histories.items())[: patients // 2]}
    leaders = [evaluator() for _ in range(3)]
    worker = evaluator()
    start = threading.Barrier(len(leaders) + 1)
    errors: list[BaseException] = []

    def run(work: Callable[[], object]) -> None:
        try:
            start.wait(timeout=30)
            work()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def ticks(alerts: LiveAlerts) -> Callable[[], None]:
        def tick_four_times() -> None:
            for _ in range(4):
                alerts.tick()

        return tick_four_times

    def writes() -> None:
        ids = sorted(imaged)
        for i in range(0, len(ids), 5):
            worker.write([imaged[pid] for pid in ids[i : i + 5]])

    threads = [threading.Thread(target=run, args=(ticks(a),)) for a in leaders]
    threads.append(threading.Thread(target=run, args=(writes,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    setup.tick()  # anything still pending is published

    records = setup.records()
    by_patient = {r.patient_id: r for r in records}
    assert len(by_patient) == len(records)  # one imaging window each: one alert at most
    assert all(by_patient[pid].state == RESOLVED for pid in imaged if pid in by_patient)
    still = [pid for pid in histories if pid not in imaged]
    assert all(by_patient[pid].state == OPEN and by_patient[pid].raised_on == date(2024, 4, 18)
               for pid in still)
    kinds = published.kinds()
    assert set(kinds) == {r.alert_id for r in records}
    for record in records:
        assert alternates(kinds[record.alert_id]), kinds[record.alert_id]
        assert kinds[record.alert_id][-1] == (
            "alert.raised" if record.state == OPEN else "alert.resolved")


# --- real worker processes, real clock ---------------------------------------------------------


PARTITIONS = 4
DONE_TIMEOUT_S = 180.0
START_TIMEOUT_S = 60.0


@dataclass
class LiveAlerting:
    bootstrap: str
    topic: str
    dead_letter_topic: str
    alert_topic: str
    db_url: str
    app_id: str
    tmp: Path

    def worker(self, name: str, *extra: str) -> Worker:
        return Worker(self.tmp, name, worker_args(
            self.bootstrap, self.db_url, self.app_id, self.topic, self.dead_letter_topic,
            "--alerts", "--alert-interval", "1", "--alert-topic", self.alert_topic, *extra))

    def publish(self, path: Path) -> None:
        journey("publish", str(path), "--bootstrap", self.bootstrap, "--topic", self.topic,
                "--dead-letter-topic", self.dead_letter_topic, "--keys", self.db_url,
                cwd=self.tmp, ok=(0, 1))

    def wait_done(self, workers: list[Worker]) -> None:
        ends = end_offsets(self.bootstrap, self.topic)
        checkpoints = Checkpoints(self.db_url, self.topic)
        try:
            wait_until(lambda: checkpoints.reached(ends), timeout=DONE_TIMEOUT_S,
                       what=f"checkpoints at the end offsets {ends}", workers=workers)
        finally:
            checkpoints.close()


@pytest.fixture
def alerting(kafka_bootstrap: str, kafka_topic_factory: Callable[..., str],
             kafka_ctl: ModuleType, postgres_db_url: str, tmp_path: Path
             ) -> Iterator[LiveAlerting]:
    app_id = f"test-alerts-{uuid.uuid4().hex[:10]}"
    yield LiveAlerting(
        bootstrap=kafka_bootstrap,
        topic=kafka_topic_factory(PARTITIONS, prefix="test.alerting",
                                  configs={"retention.ms": "-1"}),
        dead_letter_topic=kafka_topic_factory(1, prefix="test.alerting-dl"),
        alert_topic=kafka_topic_factory(PARTITIONS, prefix="test.alerting-alerts"),
        db_url=postgres_db_url, app_id=app_id, tmp=tmp_path)
    drop_worker_app(kafka_ctl, kafka_bootstrap, app_id)


def open_alerts_now(path: Path, tmp: Path) -> set[str]:
    """``journey alerts --open`` today, embedded, for the same file: what must be open live."""
    engine = EmbeddedEngine(f"sqlite:///{tmp / 'embedded.db'}")
    try:
        with path.open("rb") as lines:
            engine.ingest(numbered_lines(lines), origin=path.name, received_at=datetime.now(UTC))
        return {r.alert_id for r in engine.alerts(datetime.now(UTC).date())
                if r.status == "open"}
    finally:
        engine.close()


def table(store: ProjectionStore) -> Callable[[], list[AlertRecord]]:
    """The live alerts table (empty until a worker created it)."""

    def read() -> list[AlertRecord]:
        try:
            return LiveAlerts(store).records()
        except sa.exc.ProgrammingError:
            return []

    return read


@pytest.mark.slow  # journey worker processes
def test_two_workers_raise_each_alert_once_the_leader_ticks_and_webhooks_get_them(
        alerting: LiveAlerting, stores: Callable[[], ProjectionStore]) -> None:
    path = alerting.tmp / "cohort.jsonl"
    with path.open("wb") as out:
        write_cohort(SimulationSettings(patients=150, seed=13), out)
    expected = open_alerts_now(path, alerting.tmp)
    assert len(expected) > 50
    read = table(stores())
    alerting.publish(path)  # a backlog: alerts from half-read histories must not reach people
    with webhook_receiver(fail_first=3) as receiver:
        hooks = alerting.tmp / "webhooks.json"
        hooks.write_text(orjson.dumps({"centres": {"*": f"{receiver.url}/alerts"}}).decode())
        with alerting.worker("a", "--webhooks", str(hooks)) as a:
            # one after the other: two workers creating the projection tables at the same
            # instant can collide in PostgreSQL's catalogue (ProjectionStore.create); and b
            # joins once a's table is recovered, since a rebalance in the middle of a
            # recovery is where faust once stalled (see RecoveryWatch).  Starting together
            # is test_live_pipeline's two-worker test.
            wait_until(lambda: bool(a.events("worker.table_recovered")),
                       timeout=START_TIMEOUT_S, what="worker a recovered", workers=[a])
            with alerting.worker("b", "--webhooks", str(hooks)) as b:

                wait_until(lambda: partitions_split([a, b], PARTITIONS), timeout=START_TIMEOUT_S,
                           what="two workers with 2+2 partitions",
                           workers=[a, b])
                settled_at = max(r["timestamp"] for w in (a, b)
                                 for r in w.events("worker.table_recovered"))
                alerting.wait_done([a, b])
                wait_until(lambda: {r.alert_id for r in read() if r.state == OPEN} == expected
                           and not any(r.pending for r in read()), timeout=60,
                           what="the expected open alerts, all published", workers=[a, b])
                receiver.wait_for(len(expected))
                wait_until(lambda: sum(1 for w in (a, b) for r in w.events("alerts.tick")
                                       if r["timestamp"] > settled_at) >= 3,
                           timeout=30, what="three timer ticks", workers=[a, b])
                ticks = {w.name: [r for r in w.events("alerts.tick") if r["timestamp"] > settled_at]
                         for w in (a, b)}

    records = read()
    assert len({r.alert_id for r in records}) == len(records)
    assert {r.alert_id for r in records if r.state == OPEN} == expected
    assert [name for name, found in ticks.items() if found] in (["a"], ["b"])  # the leader only
    published = kinds_by_alert(read_records(alerting.bootstrap, alerting.alert_topic))
    assert {k for k, kinds in published.items() if kinds[-1] == "alert.raised"} == expected
    assert set(receiver.alerts) == expected  # deduplicated by id: exactly one each
    assert len(receiver.requests) >= len(expected) + 3  # the three failures were retried
    assert {body["centre"] for body in receiver.alerts.values()} <= {
        "C01", "C02", "C03", "C04", "C05"}


@pytest.mark.slow  # journey worker processes
def test_a_worker_killed_mid_stream_and_restarted_loses_and_repeats_no_alert(
        alerting: LiveAlerting, stores: Callable[[], ProjectionStore]) -> None:
    path = alerting.tmp / "cohort.jsonl"
    with path.open("wb") as out:
        write_cohort(SimulationSettings(patients=300, seed=31), out)
    expected = open_alerts_now(path, alerting.tmp)
    read = table(stores())
    alerting.publish(path)
    total = sum(end_offsets(alerting.bootstrap, alerting.topic).values())
    kill_part_way(lambda: alerting.worker("first", "--batch-max", "300"), alerting.db_url,
                  alerting.topic, total,
                  ready=lambda c: c.processed() >= total // 3 and bool(read()),
                  what="a third projected, alerts raised", timeout=START_TIMEOUT_S)
    raised_before = {r.alert_id: r.raised_at for r in read()}

    with alerting.worker("second") as second:
        alerting.wait_done([second])
        wait_until(lambda: {r.alert_id for r in read() if r.state == OPEN} == expected
                   and not any(r.pending for r in read()),
                   timeout=60, what="the expected open alerts, all published", workers=[second])

    records = read()
    assert len({r.alert_id for r in records}) == len(records)
    assert {r.alert_id for r in records if r.state == OPEN} == expected
    assert all(r.raised_at == raised_before[r.alert_id] for r in records
               if r.alert_id in raised_before)  # raised once, before the kill
    published = kinds_by_alert(read_records(alerting.bootstrap, alerting.alert_topic))
    assert set(published) == {r.alert_id for r in records}
    assert {k for k, kinds in published.items() if kinds[-1] == "alert.raised"} == expected
