"""python -m bench.live: the scale-out pipeline on a real Kafka broker and PostgreSQL.

Two figures, each beside a baseline measured in the same run, on the same topic:

* **Throughput** of one ``journey worker`` process on a pre-published backlog (a
  simulated cohort), from its partitions being ready to its last checkpoint, beside
  aiokafka reading the same topic and doing nothing with it.  A faust agent that
  only counts is shown too, with faust's own consumer and with the worker's (eager
  delivery, larger fetches: processors/faust_consumer.py): what faust itself costs
  per record.
* **Latency** publish -> projection row visible in PostgreSQL (the checkpoint is
  committed with the rows, so "visible" is "checkpoint covers the offset"), p50
  and p99, publishing at a steady rate (default 1,000 events/s for 30 s) to a
  worker that already holds the cohort's earlier history; beside the latency of
  an aiokafka consumer of the same records.

Needs the services of infra/ (or ``--bootstrap`` / ``--pg-url``); creates its own
topics and databases and removes them afterwards (``--keep`` leaves them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.harness import ROOT, Measurement, run_phase
from bench.harness import report as print_report
from mbcjourney.processors.admission import BirthYears
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.ingest import validate_lines
from mbcjourney.processors.kafkaio import end_offsets
from mbcjourney.processors.publisher import open_producer
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.simulate import SimulationSettings, write_cohort

PARTITIONS = 4
DONE_TIMEOUT_S = 900.0
POLL_S = 0.02


@dataclass
class Run:
    """Topics and databases of one benchmark run (removed at the end unless kept)."""

    bootstrap: str
    server_url: str
    tag: str
    topics: list[str]
    databases: list[str]

    def topic(self, name: str, partitions: int = PARTITIONS) -> str:
        from kafka.admin import KafkaAdminClient, NewTopic

        full = f"bench.live.{self.tag}.{name}"
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(full, partitions, 1,
                                          topic_configs={"retention.ms": "-1"})])
        finally:
            admin.close()
        self.topics.append(full)
        return full

    def database(self, name: str) -> str:
        full = f"bench_live_{self.tag}_{name}"
        admin = sa.create_engine(self.server_url, isolation_level="AUTOCOMMIT",
                                 poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{full}"'))
        admin.dispose()
        self.databases.append(full)
        return make_url(self.server_url).set(database=full).render_as_string(
            hide_password=False)

    def clean(self) -> None:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            owned = [t for t in admin.list_topics()
                     if t in self.topics or t.startswith(f"bench-live-{self.tag}")]
            if owned:
                admin.delete_topics(owned)
        finally:
            admin.close()
        engine = sa.create_engine(self.server_url, isolation_level="AUTOCOMMIT",
                                  poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            for name in self.databases:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def valid_events(path: Path) -> list[tuple[bytes, bytes]]:
    """(key, value) of every event ``journey publish`` would publish, in file order."""
    with path.open("rb") as f:
        lines = list(enumerate((line.strip() for line in f), start=1))
    out: list[tuple[bytes, bytes]] = []
    for checked in validate_lines(((n, b) for n, b in lines if b), BirthYears(),
                                  received_at=datetime.now(UTC)):
        out.extend((v.row.patient_id.encode(), v.row.body.encode()) for v in checked.valid)
    return out


def publish(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> Measurement:
    producer = open_producer(bootstrap, client_id="bench-live")
    start = time.perf_counter()
    futures = [producer.send(topic, key=k, value=v) for k, v in events]
    producer.flush(timeout=600)
    for future in futures:
        future.get(timeout=60)
    seconds = time.perf_counter() - start
    producer.close(timeout=30)
    return Measurement("publish (kafka-python, acks=all)", len(events), seconds, 0.0)


class Worker:
    """A ``journey worker`` subprocess."""

    def __init__(self, run_dir: Path, name: str, bootstrap: str, db_url: str, app_id: str,
                 topic: str, dead_letter_topic: str) -> None:
        self.log_path = run_dir / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mbcjourney", "--quiet", "--log-level", "info",
                 "worker", "--bootstrap", bootstrap, "--db", db_url, "--app-id", app_id,
                 "--topic", topic, "--dead-letter-topic", dead_letter_topic],
                cwd=run_dir, stdout=subprocess.DEVNULL, stderr=log)

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError("worker exited {}:\n{}".format(self.proc.returncode,
                                                               "\n".join(tail)))

    def ready_at(self) -> float:
        """Epoch seconds at which the worker logged its partitions ready (table recovered)."""
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{") and b'"worker.table_recovered"' in line:
                stamp = json.loads(line)["timestamp"].replace("Z", "+00:00")
                return datetime.fromisoformat(stamp).timestamp()
        raise RuntimeError(f"no worker.table_recovered in {self.log_path}")

    def peak_rss_mib(self) -> float:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def checkpoints(store: ProjectionStore, consumer: str) -> dict[int, int]:
    try:
        return store.checkpoint(consumer)
    except sa.exc.ProgrammingError:  # tables not created yet
        return {}


def reached(done: dict[int, int], ends: dict[int, int]) -> bool:
    return all(done.get(p, -1) >= end - 1 for p, end in ends.items() if end)


def worker_throughput(run: Run, run_dir: Path, topic: str, dead: str, total: int
                      ) -> Measurement:
    """From the worker's partitions being ready (its log) to every checkpoint at the end."""
    db = run.database("throughput")
    ends = end_offsets(run.bootstrap, topic)
    store = ProjectionStore(make_engine(db))
    consumer = f"worker:{topic}"
    worker = Worker(run_dir, "throughput", run.bootstrap, db, f"bench-live-{run.tag}-t",
                    topic, dead)
    deadline = time.monotonic() + DONE_TIMEOUT_S
    try:
        while not reached(checkpoints(store, consumer), ends):
            worker.check()
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not reach the end of the backlog")
            time.sleep(0.05)
        done = time.time()
        peak = worker.peak_rss_mib()
    finally:
        worker.stop()
        store.engine.dispose()
    return Measurement("journey worker -> PostgreSQL", total, done - worker.ready_at(), peak)


@dataclass
class Latencies:
    name: str
    values_ms: list[float]

    def pct(self, q: float) -> float:
        ordered = sorted(self.values_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def poll_checkpoints(db_url: str, consumer: str, stop: threading.Event,
                     out: list[tuple[float, dict[int, int]]]) -> None:
    store = ProjectionStore(make_engine(db_url))
    try:
        while not stop.is_set():
            out.append((time.time(), checkpoints(store, consumer)))
            time.sleep(POLL_S)
    finally:
        store.engine.dispose()


def visible_times(sent: list[tuple[int, int, float]],
                  polls: list[tuple[float, dict[int, int]]]) -> list[float]:
    """Latency (ms) of each (partition, offset, sent at): first poll whose checkpoint covers it."""
    latencies = []
    cursor: dict[int, int] = {}
    for partition, offset, at in sorted(sent, key=lambda s: (s[0], s[1])):
        i = cursor.get(partition, 0)
        while i < len(polls) and polls[i][1].get(partition, -1) < offset:
            i += 1
        cursor[partition] = i
        if i < len(polls):
            latencies.append((polls[i][0] - at) * 1000)
    return latencies


def live_latency(run: Run, run_dir: Path, topic: str, dead: str,
                 events: list[tuple[bytes, bytes]], rate: float, seconds: float
                 ) -> tuple[Latencies, Latencies, float]:
    count = min(len(events) // 2, int(rate * seconds))
    history, live = events[:-count], events[-count:]
    db = run.database("latency")
    publish(run.bootstrap, topic, history)
    ends = end_offsets(run.bootstrap, topic)
    consumer = f"worker:{topic}"
    worker = Worker(run_dir, "latency", run.bootstrap, db, f"bench-live-{run.tag}-l", topic,
                    dead)
    store = ProjectionStore(make_engine(db))
    arrivals_file = run_dir / "arrivals.json"
    raw = subprocess.Popen([sys.executable, "-m", "bench.live_phases", "raw-latency",
                            run.bootstrap, topic, str(count), str(arrivals_file)],
                           cwd=ROOT, stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    polls: list[tuple[float, dict[int, int]]] = []
    try:
        deadline = time.monotonic() + DONE_TIMEOUT_S
        while not reached(checkpoints(store, consumer), ends):  # the history is projected
            worker.check()
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not catch up with the history")
            time.sleep(0.1)
        assert raw.stdout is not None
        if raw.stdout.readline().strip() != "ready":
            raise RuntimeError("raw-latency consumer did not start")
        poller = threading.Thread(target=poll_checkpoints, args=(db, consumer, stop, polls))
        poller.start()
        producer = open_producer(run.bootstrap, linger_ms=5, client_id="bench-live-latency")
        futures = []
        start = time.perf_counter()
        for i, (key, value) in enumerate(live):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)  # pacing the publisher at the target rate
            futures.append((time.time(), producer.send(topic, key=key, value=value)))
        achieved = count / (time.perf_counter() - start)
        producer.flush(timeout=60)
        sent = []
        for at, future in futures:
            meta = future.get(timeout=60)
            sent.append((meta.partition, meta.offset, at))
        producer.close(timeout=30)
        ends = end_offsets(run.bootstrap, topic)
        while not (polls and reached(polls[-1][1], ends)):
            worker.check()
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not catch up with the live stream")
            time.sleep(0.1)
        raw.wait(timeout=120)
    finally:
        stop.set()
        worker.stop()
        if raw.poll() is None:
            raw.kill()
        store.engine.dispose()
    arrivals = json.loads(arrivals_file.read_text())
    baseline = [(arrivals[f"{p}:{o}"] - at) * 1000 for p, o, at in sent if f"{p}:{o}" in arrivals]
    return (Latencies("raw aiokafka consume (baseline)", baseline),
            Latencies("journey worker -> PostgreSQL row", visible_times(sent, polls)), achieved)


def print_latency(rate: float, seconds: float, achieved: float,
                  rows: list[Latencies]) -> None:
    print(f"\nEnd-to-end latency, publish -> visible, at {rate:,.0f} events/s for {seconds:.0f} s"
          f" (achieved {achieved:,.0f}/s)")
    print(f"{'measure':<38}{'events':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  target")
    for row, target in zip(rows, ("", "p99 < 1,000 ms"), strict=True):
        print(f"{row.name:<38}{len(row.values_ms):>8,}{row.pct(0.50):>9.0f}"
              f"{row.pct(0.99):>9.0f}{max(row.values_ms):>9.0f}  {target}")


def cohort_file(workdir: Path, patients: int, seed: int) -> Path:
    path = workdir / f"live-cohort-{patients}-{seed}.jsonl"
    if not path.exists():
        with path.open("wb") as out:
            write_cohort(SimulationSettings(patients=patients, seed=seed), out)
    return path


@contextlib.contextmanager
def benchmark_run(bootstrap: str, server_url: str, keep: bool) -> Iterator[Run]:
    run = Run(bootstrap, server_url, uuid.uuid4().hex[:8], [], [])
    try:
        yield run
    finally:
        if not keep:
            run.clean()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s for latency")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--bootstrap",
                        default=os.environ.get("JOURNEY_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--pg-url", default=os.environ.get(
        "JOURNEY_PG_URL", "postgresql+psycopg://journey@127.0.0.1:15432/journey"))
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench"))
    parser.add_argument("--keep", action="store_true", help="keep topics and databases")
    parser.add_argument("--only", choices=("throughput", "latency"), help="run one of the two")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    events = valid_events(cohort_file(args.workdir, args.patients, args.seed))
    with benchmark_run(args.bootstrap, args.pg_url, args.keep) as run:
        run_dir = args.workdir / f"live-{run.tag}"
        run_dir.mkdir()
        dead = run.topic("dead-letter", partitions=1)

        if args.only != "latency":
            backlog = run.topic("backlog")
            published = publish(run.bootstrap, backlog, events)
            print(f"published {published.events:,} events in {published.seconds:.1f} s "
                  f"({published.rate:,.0f}/s) to {backlog}")
            raw = run_phase("bench.live_phases", "raw-consume", run.bootstrap, backlog,
                            str(len(events)))
            noop = run_phase("bench.live_phases", "faust-noop", run.bootstrap, backlog,
                             str(len(events)), f"bench-live-{run.tag}-noop", "stock")
            eager = run_phase("bench.live_phases", "faust-noop", run.bootstrap, backlog,
                              str(len(events)), f"bench-live-{run.tag}-eager", "worker")
            worker = worker_throughput(run, run_dir, backlog, dead, len(events))
            print_report(
                f"Live worker throughput, one process, backlog of {len(events):,} events "
                f"({args.patients:,} patients, {PARTITIONS} partitions)",
                [(worker, raw), (noop, raw), (eager, raw)],
                {worker.name: ">= 10,000 events/s and >= 30 % of baseline"})
        if args.only != "throughput":
            baseline, projected, achieved = live_latency(
                run, run_dir, run.topic("live"), dead, events, args.rate, args.seconds)
            print_latency(args.rate, args.seconds, achieved, [baseline, projected])


if __name__ == "__main__":
    main()
