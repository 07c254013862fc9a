"""Ingest properties: a file ingested twice, or in any order, changes nothing."""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.events import ClinicalEvent, encode_event
from mbcjourney.processors import ingest
from tests.support.builders import PatientBuilder

DAYS = st.integers(min_value=0, max_value=700)


def _day(offset: int) -> str:
    return datetime.fromordinal(datetime(2023, 1, 1).toordinal() + offset).date().isoformat()


@st.composite
def cohorts(draw: st.DrawFn) -> list[ClinicalEvent]:
    events: list[ClinicalEvent] = []
    for n in range(draw(st.integers(1, 4))):
        b = PatientBuilder(f"P-{n:03d}", recorded="2029-06-30T00:00:00Z")  # after any day drawn
        start = draw(DAYS)
        events.append(b.included(_day(start), sites=draw(st.sampled_from([("bone",), ("liver",)]))))
        events.append(b.ihc(_day(start), er=draw(st.sampled_from([0, 5, 80])),
                            her2=draw(st.sampled_from(["0", "1+", "2+", "3+"])),
                            ish=draw(st.sampled_from(["not_done", "amplified", "not_amplified"]))))
        day = start
        for ref in range(draw(st.integers(0, 3))):
            day += draw(st.integers(1, 200))
            regimen = draw(st.sampled_from([
                ("Taxol", "Avastin"), ("Femara", "Ibrance"), ("Herceptin", "Perjeta", "Taxotere"),
            ]))
            events.append(b.line(_day(day), f"L{ref}", *regimen))
            for _ in range(draw(st.integers(0, 3))):
                day += draw(st.integers(1, 90))
                events.append(b.imaging(_day(day), draw(st.sampled_from(["SD", "PR", "PD", None]))))
        if draw(st.booleans()):
            events.append(b.death(_day(day + draw(st.integers(0, 100)))))
        if draw(st.booleans()) and len(events) > 1:
            events.append(b.retract(_day(day), events[-2]))
    return events


def _exports(engine: EmbeddedEngine) -> tuple[object, ...]:
    return (engine.patient_rows(), engine.line_rows(), engine.finding_rows(),
            engine.store.due_rows(), engine.log.count())


def _ingest(engine: EmbeddedEngine, lines: list[bytes]) -> None:
    engine.ingest(enumerate(lines, 1), origin="prop", received_at=datetime(2030, 1, 1, tzinfo=UTC))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cohorts(), st.randoms(use_true_random=False))
def test_ingesting_twice_or_reordered_changes_nothing(events: list[ClinicalEvent],
                                                      rng: object) -> None:
    lines = [encode_event(e) for e in events]
    with tempfile.TemporaryDirectory() as tmp:
        once = EmbeddedEngine(f"sqlite:///{Path(tmp) / 'once.db'}")
        _ingest(once, lines)
        first = _exports(once)
        _ingest(once, lines)
        assert _exports(once) == first

        shuffled = list(lines)
        rng.shuffle(shuffled)  # type: ignore[attr-defined]
        other = EmbeddedEngine(f"sqlite:///{Path(tmp) / 'other.db'}")
        middle = len(shuffled) // 2
        for half in (shuffled[:middle], shuffled[middle:]):
            _ingest(other, half)
            other.catch_up()
        assert _exports(other) == first
        once.close()
        other.close()


LINE_BYTES = st.lists(st.sampled_from([b"{}", b'{"a":1}', b"", b"  ", b"\r", b"x" * 9]),
                      max_size=30)


@settings(max_examples=200, deadline=None)
@given(LINE_BYTES, st.booleans(), st.integers(1, 12))
def test_lines_are_numbered_as_the_file_reads_whatever_the_block_size(
        pieces: list[bytes], final_newline: bool, block: int) -> None:
    """Reading in blocks numbers and strips lines exactly as line-by-line iteration does."""
    data = b"\n".join(pieces) + (b"\n" if final_newline and pieces else b"")
    expected = [(n, line.strip()) for n, line in enumerate(io.BytesIO(data), start=1)
                if line.strip()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest, "_READ_BYTES", block)
        assert list(ingest.numbered_lines(io.BytesIO(data))) == expected
