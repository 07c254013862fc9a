"""``kill -9`` of ``journey ingest`` at random points, then a rerun: the same store.

Exactly once: every event stored once, every rejected line dead-lettered once,
whatever commit group the kill interrupted (issue #19: dead letters were
duplicated on every rerun after a kill).  The CLI runs with commit groups of
2,000 lines (:mod:`tests.support.small_commit_groups`): a 36,000-event cohort then
spans 18 groups, as a 1.8-million-event file would at the production size.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog
from tests.support.cohorts import simulated_cohort
from tests.support.hostile import corpus
from tests.support.polling import eventually
from tests.support.small_commit_groups import GROUP_LINES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]  # where ``tests.support`` is importable from

KILL_POINTS = 3
POLL_S = 0.01  # how often the store is looked at while waiting to kill


def _ingest(cwd: Path, db: Path, cohort: Path) -> subprocess.Popen[bytes]:
    with (cwd / f"{db.name}.stderr").open("ab") as stderr:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.small_commit_groups", "--quiet", "ingest",
             str(cohort),
             "--db", f"sqlite:///{db}"], cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _stderr(cwd: Path, db: Path) -> str:
    return (cwd / f"{db.name}.stderr").read_text()[-3000:]


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


def _stored_or_done(process: subprocess.Popen[bytes], db: Path, target: int) -> bool:
    return process.poll() is not None or _count(db, "events") >= target


def _store(db: Path) -> tuple[set[str], list[tuple[str, bytes]]]:
    """Event ids, and each dead letter's (origin, original bytes) -- opened: sealed at rest
    with a fresh nonce each time, so the stored bytes differ from store to store."""
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    engine = make_engine(f"sqlite:///{db}")
    try:
        letters = sorted((d.origin, d.original) for d in SqlEventLog(engine).letters.all())
    finally:
        engine.dispose()
    return ids, letters


def _hostile_cohort(folder: Path) -> Path:
    cohort = simulated_cohort(folder / "valid.jsonl", patients=600, seed=23)
    lines = cohort.read_bytes().splitlines()
    bad = [line.replace(b"\n", b" ") for line in corpus()]
    mixed: list[bytes] = []
    for index, line in enumerate(lines):
        mixed.append(line)
        if index % 50 == 0:
            mixed.append(bad[(index // 50) % len(bad)])
    path = folder / "cohort.jsonl"
    path.write_bytes(b"\n".join(mixed) + b"\n")
    return path


def test_kill_9_at_random_points_then_rerun_gives_the_reference_store(tmp_path: Path) -> None:
    cohort = _hostile_cohort(tmp_path)
    reference = tmp_path / "reference.db"
    done = _ingest(tmp_path, reference, cohort)
    assert done.wait(timeout=600) == 1, _stderr(tmp_path, reference)  # 1: lines were rejected
    expected = _store(reference)
    assert len(expected[0]) > 10 * GROUP_LINES  # a kill lands between many commit groups
    assert len(expected[1]) > 500

    rng = random.Random(19)
    killed = 0
    for trial in range(KILL_POINTS):
        db = tmp_path / f"killed-{trial}.db"
        target = rng.randrange(1, len(expected[0]))  # kill once this many events are stored
        process = _ingest(tmp_path, db, cohort)
        eventually(partial(_stored_or_done, process, db, target), timeout=600,
                   what=f"ingest to store {target} events", interval=POLL_S)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            killed += 1
        process.wait(timeout=60)
        rerun = _ingest(tmp_path, db, cohort)
        assert rerun.wait(timeout=600) == 1, _stderr(tmp_path, db)
        ids, letters = _store(db)
        assert ids == expected[0], f"trial {trial}: events differ after a kill at {target}"
        assert letters == expected[1], f"trial {trial}: dead letters not exactly once"
    assert killed, "every ingest ended before its kill point: nothing was interrupted"
