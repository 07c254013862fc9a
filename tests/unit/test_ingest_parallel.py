"""Parallel decoding is an optimisation only: it must give exactly the inline result."""

from __future__ import annotations

import pickle
from pathlib import Path

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.errors import FieldError, InvalidEvent
from mbcjourney.events import encode_event
from tests.support.builders import RECEIVED, PatientBuilder


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


def test_parallel_decode_equals_inline(tmp_path: Path) -> None:
    results = []
    for workers in (0, 1):
        engine = EmbeddedEngine(f"sqlite:///{tmp_path / f'w{workers}.db'}")
        summary = engine.ingest(_lines(), origin="t", received_at=RECEIVED, workers=workers)
        engine.catch_up()
        results.append((summary.as_dict(), engine.patient_rows(), engine.line_rows(),
                        [(d.origin, d.reason, d.original) for d in engine.log.dead_letters()]))
        engine.close()
    assert results[0] == results[1]
    assert results[0][0]["accepted"] == 120
    assert results[0][0]["duplicates"] == 30
    assert results[0][0]["rejected"] == 30
