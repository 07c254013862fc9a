"""Helpers for the live-pipeline tests and benchmark: `journey` subprocesses, polling, rows.

Workers run as real ``journey worker`` processes (their logs are JSON lines, parsed
here); every wait is bounded and polls an observable condition (checkpoints in
PostgreSQL, a worker's log), and fails early, with the worker's log, when a
worker died.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import sqlalchemy as sa

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.store import ProjectionStore
from tests.support.polling import eventually

JOURNEY = [sys.executable, "-m", "mbcjourney", "--quiet"]
POLL_S = 0.1
STOP_TIMEOUT_S = 60.0

Rows = tuple[list[Any], list[Any], list[Any], list[Any]]


def drop_worker_app(kafka_ctl: ModuleType, bootstrap: str, app_id: str) -> None:
    """Remove what a test's workers made for themselves: their app's own topics (changelog,
    assignor; best effort) and their local state folder."""
    admin = kafka_ctl.admin_client(bootstrap)
    try:
        with contextlib.suppress(Exception):
            owned = [t for t in admin.list_topics() if t.startswith(f"{app_id}-")]
            if owned:
                admin.delete_topics(owned, timeout_ms=30_000)
    finally:
        admin.close()
    shutil.rmtree(Path(tempfile.gettempdir()) / f"mbc-journey-{app_id}", ignore_errors=True)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from the beginning; waits (bounded) for ``expected`` of them."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []

        def read_enough() -> bool:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            return len(records) >= expected

        if expected > 0:
            eventually(read_enough, timeout=timeout, interval=0,
                       what=f"{expected} records on {topic}",
                       detail=lambda: f"{len(records)} read")
        return records
    finally:
        consumer.close()


def journey(*args: str, cwd: Path, timeout: float = 600, ok: Iterable[int] = (0,),
            unset: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``journey ARGS`` to completion (without the environment variables ``unset``);
    fail with its stderr unless the exit status is ok."""
    env = {k: v for k, v in os.environ.items() if k not in set(unset)}
    result = subprocess.run([*JOURNEY, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env, check=False)
    if result.returncode not in set(ok):
        raise AssertionError(f"journey {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stderr[-4000:]}")
    return result


class Worker:
    """A ``journey worker`` subprocess with its log in ``cwd/<name>.log``."""

    def __init__(self, cwd: Path, name: str, args: Sequence[str]) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*JOURNEY, "--log-level", "info", "worker", *args], cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                env=dict(os.environ))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no commit."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int:
        """SIGTERM and wait (SIGKILL if it does not stop in time); returns the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The worker's structured log records (optionally only those named ``name``)."""
        records = []
        for line in self.log_path.read_bytes().splitlines():
            if line.startswith(b"{"):
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if name is None or record.get("event") == name:
                    records.append(record)
        return records

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str,
               workers: Sequence[Worker] = ()) -> None:
    """:func:`~tests.support.polling.eventually` ``condition``, failing at once when a
    worker died; either failure shows the workers' logs."""

    def ready() -> bool:
        if condition():
            return True
        for worker in workers:
            if not worker.alive():
                raise AssertionError(f"worker {worker.name} exited {worker.proc.returncode} "
                                     f"while waiting for {what}:\n{worker.tail()}")
        return False

    eventually(ready, timeout=timeout, what=what, interval=POLL_S,
               detail=lambda: "".join(f"\n--- {w.name}:\n{w.tail()}" for w in workers))


def partitions_split(workers: Sequence[Worker], partitions: int) -> bool:
    """Every worker has recovered its table and together they cover each partition once."""
    latest = [w.events("worker.table_recovered") for w in workers]
    if not all(latest):
        return False
    mine = [set(records[-1]["partitions"]) for records in latest]
    covered: set[int] = set()
    for assigned in mine:
        if not assigned or assigned & covered:
            return False
        covered |= assigned
    return covered == set(range(partitions))


class Checkpoints:
    """The worker's checkpoints in its PostgreSQL database (empty before it created them)."""

    def __init__(self, db_url: str, topic: str) -> None:
        self.store = ProjectionStore(make_engine(db_url))
        self.consumer = f"worker:{topic}"

    def read(self) -> dict[int, int]:
        try:
            return self.store.checkpoint(self.consumer)
        except sa.exc.ProgrammingError:  # tables not created yet
            return {}

    def processed(self) -> int:
        return sum(position + 1 for position in self.read().values())

    def reached(self, ends: Mapping[int, int]) -> bool:
        done = self.read()
        return all(done.get(p, -1) >= end - 1 for p, end in ends.items() if end > 0)

    def close(self) -> None:
        self.store.engine.dispose()


def kill_part_way(start: Callable[[], Worker], db_url: str, topic: str, total: int, *,
                  ready: Callable[[Checkpoints], bool], what: str, timeout: float) -> int:
    """Start a worker and SIGKILL it once ``ready``; returns how many records it had processed.

    Fails when the worker had already processed all ``total`` records: the kill
    would then test nothing.
    """
    checkpoints = Checkpoints(db_url, topic)
    try:
        with start() as worker:
            wait_until(lambda: ready(checkpoints), timeout=timeout, what=what, workers=[worker])
            worker.kill()
        at_kill = checkpoints.processed()
    finally:
        checkpoints.close()
    assert at_kill < total, "the worker finished before the kill: nothing was tested"
    return at_kill


def store_rows(db_url: str) -> Rows:
    """Every row of the four projection tables, in their stable order."""
    engine = make_engine(db_url)
    try:
        store = ProjectionStore(engine)
        return store.patient_rows(), store.line_rows(), store.due_rows(), store.finding_rows()
    finally:
        engine.dispose()


def summary_counts(output: str) -> dict[str, int]:
    """``rejected N  reason`` lines of an ingest/publish summary, as {reason: N}."""
    counts: dict[str, int] = {}
    for line in output.splitlines():
        parts = line.strip().split(None, 2)
        if len(parts) == 3 and parts[0] == "rejected" and parts[1].isdigit():
            counts[parts[2]] = int(parts[1])
    return counts


def worker_args(bootstrap: str, db_url: str, app_id: str, topic: str, dead_letter_topic: str,
                *extra: str) -> list[str]:
    return ["--bootstrap", bootstrap, "--db", db_url, "--app-id", app_id, "--topic", topic,
            "--dead-letter-topic", dead_letter_topic, *extra]
