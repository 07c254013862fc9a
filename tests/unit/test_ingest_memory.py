"""Issue 19 item 14: commit groups end after so many lines read, valid or not.

Groups counted only valid rows, so a file of rejected lines was held in memory
whole before anything was written (900,000 junk lines: 2.1 GB).  ``python -m
bench.rejects`` measures the memory; this test pins the rule on a small scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from mbcjourney.processors import ingest
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.eventlog import EventRow, SqlEventLog

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)


class CountingLog(SqlEventLog):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.letter_groups: list[int] = []
        self.appends = 0

    def append_rows(self, rows: Sequence[EventRow]) -> tuple[list[int], int, list[int]]:
        self.appends += 1  # once per commit group
        return super().append_rows(rows)

    def dead_letter(self, letters: Iterable[DeadLetter]) -> int:
        letters = list(letters)
        self.letter_groups.append(len(letters))
        return super().dead_letter(letters)


@pytest.mark.parametrize("limit", ["COMMIT_LINES", "COMMIT_BYTES"])
def test_issue19_item14_rejected_lines_are_written_in_bounded_groups(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    monkeypatch.setattr(ingest, limit, 1_000 if limit == "COMMIT_LINES" else 20_000,
                        raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        log = CountingLog(engine)
        log.create()
        lines = [(n, b'{"event_type": "nope", "n": %d}' % n) for n in range(1, 5_001)]
        summary = ingest.ingest_lines(lines, log, origin="junk.jsonl", received_at=RECEIVED,
                                      batch_size=500)
        assert summary.read == summary.rejected_total == 5_000
        assert sum(log.letter_groups) == 5_000
        assert max(log.letter_groups) <= 1_000, log.letter_groups
        assert log.appends >= 5  # commit groups of at most 1,000 lines
    finally:
        engine.dispose()
