"""Parallel decoding is an optimisation only: it must give exactly the inline result."""

from __future__ import annotations

import gc
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.errors import FieldError, InvalidEvent
from mbcjourney.events import encode_event
from mbcjourney.processors import ingest
from tests.support.builders import RECEIVED, PatientBuilder
from tests.support.polling import eventually


def _lines() -> list[tuple[int, bytes]]:
    lines: list[bytes] = []
    for n in range(30):
        b = PatientBuilder(f"P-{n:03d}")
        events = [b.included("2024-01-01"), b.ihc("2024-01-01", her2="3+"),
                  b.line("2024-01-10", "L1", "Taxol", "Herceptin", "Perjeta"),
                  b.imaging("2024-03-10", "PR")]
        lines += [encode_event(e) for e in events]
        lines.append(b'{"broken": ')
        lines.append(encode_event(events[0]))  # duplicate
    return list(enumerate(lines, start=1))


def test_invalid_event_survives_pickling() -> None:
    error = InvalidEvent([FieldError("payload.er_percent", "too high")], event_type="ihc.recorded")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.errors, copy.event_type, str(copy)) == (error.errors, error.event_type,
                                                          str(error))


@pytest.mark.slow  # spawns processes
def test_parallel_decode_equals_inline(tmp_path: Path) -> None:
    results = []
    for workers in (0, 1, 2):
        engine = EmbeddedEngine(f"sqlite:///{tmp_path / f'w{workers}.db'}")
        summary = engine.ingest(_lines(), origin="t", received_at=RECEIVED, workers=workers)
        engine.catch_up()
        results.append((summary.as_dict(), engine.patient_rows(), engine.line_rows(),
                        [(d.origin, d.reason, d.original) for d in engine.log.dead_letters()]))
        engine.close()
    assert results[0] == results[1] == results[2]
    assert results[0][0]["accepted"] == 120
    assert results[0][0]["duplicates"] == 30
    assert results[0][0]["rejected"] == 30


def test_commit_groups_keep_every_line_accounted_for(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches written together in one transaction: same summary, same dead letters, same log."""
    b = PatientBuilder("P-X")
    stored = b.included("2024-01-01")
    conflicting = encode_event(stored).replace(b'"centre":"C01"', b'"centre":"C02"')
    lines = [*_lines(), (1000, conflicting), (1001, b"[]"), (1002, encode_event(stored))]
    results = []
    for commit_rows in (ingest.COMMIT_ROWS, 7):
        monkeypatch.setattr(ingest, "COMMIT_ROWS", commit_rows)
        engine = EmbeddedEngine(f"sqlite:///{tmp_path / f'c{commit_rows}.db'}")
        engine.log.append([stored])
        summary = ingest.ingest_lines(lines, engine.log, origin="t", received_at=RECEIVED,
                                      batch_size=5)
        results.append((summary.as_dict(), [e.event for e in engine.log.read()],
                        [(d.origin, d.reason, d.original) for d in engine.log.dead_letters()]))
        engine.close()
    assert results[0] == results[1]
    counts, _, letters = results[0]
    assert (counts["read"], counts["accepted"], counts["duplicates"]) == (183, 120, 31)
    assert ("t:1000", "event_id: already stored with different content",
            conflicting) in letters
    assert ("t:1001", "$: must be a JSON object", b"[]") in letters


def test_refused_lines_do_not_keep_their_batch_alive() -> None:
    """A kept error holds no frames: else every batch with a bad line stays in memory until
    the cycle collector runs (with bulk settings, almost never)."""
    lines = _lines()
    decoded = ingest.prepare_batch(lines, RECEIVED)
    assert len(decoded.refused) == 30
    for refused in decoded.refused:
        error = refused.error
        assert error.__traceback__ is None
        assert error.__context__ is None
        assert error.__cause__ is None
        assert str(error) == "$: not valid JSON"
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(3):
            ingest.prepare_batch(lines, RECEIVED)
        assert len(gc.get_objects()) < before + 1000  # nothing left behind in cycles
    finally:
        gc.enable()


_STUCK_WRITER = """
import sys, time
from datetime import UTC, datetime
from mbcjourney.processors.admission import BirthYears
from mbcjourney.processors.ingest import validate_lines

def lines():
    yield from ((n, b"{}") for n in range(1, 400))
    print("submitted", flush=True)
    time.sleep(600)  # the writer hangs here, its decode processes idle: until it is killed

for _ in validate_lines(lines(), BirthYears(), received_at=datetime.now(UTC),
                        batch_size=100, workers=2):
    pass
"""


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.slow  # spawns processes
def test_decode_processes_end_with_a_killed_writer() -> None:
    """SIGKILL reaches only the writer: its decode processes must not live on, orphaned."""
    with subprocess.Popen([sys.executable, "-c", _STUCK_WRITER], stdout=subprocess.PIPE,
                          text=True) as writer:
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "submitted"
            decoders: set[int] = set()

            def started() -> bool:
                nonlocal decoders
                decoders = {pid for pid in _children(writer.pid)
                            if b"spawn_main" in _cmdline(pid)}
                return len(decoders) == 2

            eventually(started, timeout=60.0, what="two decode processes")
            writer.kill()
            writer.wait()
            eventually(lambda: not any(_alive(pid) for pid in decoders), timeout=60.0,
                       what="the decode processes to end")
        finally:
            writer.kill()
