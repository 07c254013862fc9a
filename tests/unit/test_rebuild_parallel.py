"""A parallel rebuild is an optimisation only: same rows as folding in one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbcjourney import engine as engine_module
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.events import encode_event
from tests.support.builders import RECEIVED, PatientBuilder


@pytest.mark.slow  # spawns processes
def test_parallel_rebuild_equals_single_process(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "REBUILD_SHARD", 7)  # several shards for 30 patients
    lines = []
    for n in range(30):
        b = PatientBuilder(f"P-{n:03d}")
        lines += [b.included("2024-01-01", sites=("bone",)), b.ihc("2024-01-01", er=n % 3 * 40),
                  b.line("2024-01-10", "L1", "Taxol"), b.imaging("2024-03-10", "PD"),
                  b.line("2024-04-01", "L2", "Xeloda")]
    engine = EmbeddedEngine(f"sqlite:///{tmp_path / 'x.db'}")
    engine.ingest(enumerate((encode_event(e) for e in lines), 1), origin="t",
                  received_at=RECEIVED)
    assert engine.rebuild(workers=0) == 30
    single = (engine.store.patient_rows(), engine.store.line_rows(), engine.store.due_rows())
    assert engine.rebuild(workers=2) == 30
    parallel = (engine.store.patient_rows(), engine.store.line_rows(), engine.store.due_rows())
    assert parallel == single
    assert engine.store.checkpoint("embedded") == {0: engine.log.last_position()}
    engine.close()
