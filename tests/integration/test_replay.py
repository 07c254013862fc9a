"""Replay into versioned tables, on SQLite and real PostgreSQL: equal to the live projection,
as known on a date, resumable, switched atomically, and harmless when a projection breaks."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from mbcjourney.analyst import ProjectionFailed, ProjectionLoadError, erased, load_projection
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.errors import ConfigurationError
from mbcjourney.processors import sources
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.replay import (
    JourneyTarget,
    Replay,
    ReplayOptions,
    ReplayResult,
    activate,
    active_prefix,
    drop_version,
    resolve_target,
    table_hash,
    versions,
)
from mbcjourney.processors.sources import JsonlSource, SqliteLogSource
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.projections import EVERYTHING, View, build_history
from mbcjourney.settings import DEFAULT_CLINICAL, ClinicalSettings
from tests.support.cohorts import embedded_log, simulated_cohort

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECEIVED = datetime(2026, 7, 1, tzinfo=UTC)  # ingest time: stamps lines without recorded_at
KNOWN_AT = datetime(2024, 6, 30, 23, 59, 59, tzinfo=UTC)


@dataclass(frozen=True)
class Cohort:
    jsonl: Path
    db: Path  # embedded engine: the log and the live (unversioned) projection tables

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    folder = tmp_path_factory.mktemp("cohort")
    jsonl = simulated_cohort(folder / "cohort.jsonl", patients=400, seed=11)
    return Cohort(jsonl, embedded_log(jsonl, folder / "live.db", received_at=RECEIVED))


@pytest.fixture
def into(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_into(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'into.db'}")
    yield engine
    engine.dispose()


def replay(engine: Engine, source: Any, projection: str = "journey", *,
           view: View = EVERYTHING, settings: ClinicalSettings = DEFAULT_CLINICAL,
           batch_patients: int = 2000, on_commit: Callable[[str, int], None] | None = None,
           activate_now: bool = False) -> ReplayResult:
    return Replay(engine, source, resolve_target(projection), settings,
                  ReplayOptions(view, batch_patients, activate_now), on_commit=on_commit).run()


def live_hash(cohort: Cohort) -> str:
    engine = make_engine(cohort.url)
    try:
        return table_hash(engine, JourneyTarget().sink(engine, "").outputs)[0]
    finally:
        engine.dispose()


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table and every row: to prove that nothing changed."""
    md = MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        return {name: sorted(map(tuple, conn.execute(select(table))), key=repr)
                for name, table in sorted(md.tables.items())}


# --- equal to the live projection ------------------------------------------------------------


def test_replay_from_the_log_equals_the_live_projection(cohort: Cohort, into: Engine) -> None:
    result = replay(into, SqliteLogSource(cohort.db))
    info = result.info
    assert (info.name, info.version, info.status) == ("journey", 1, "complete")
    live_engine = make_engine(cohort.url)
    live, built = ProjectionStore(live_engine), ProjectionStore(into, info.prefix)
    assert built.patient_rows() == live.patient_rows()
    assert built.line_rows() == live.line_rows()
    assert built.due_rows() == live.due_rows()
    assert built.finding_rows() == live.finding_rows()
    assert len(live.patient_rows()) > 350
    live_engine.dispose()
    assert info.content_hash == live_hash(cohort)
    assert result.counts.events == SqlEventLog(make_engine(cohort.url)).count()
    assert result.counts.patients == 400
    assert result.counts.rejected_total == result.counts.duplicates == 0
    assert info.row_counts["patients"] == len(built.patient_rows())
    assert active_prefix(into, "journey") == ""  # built, not active: readers unchanged


def test_known_at_and_cutoff_replays_equal_the_embedded_export(cohort: Cohort,
                                                               sqlite_into: Engine) -> None:
    embedded = EmbeddedEngine(cohort.url)
    try:
        for view in (View(known_at=KNOWN_AT), View(cutoff=date(2024, 1, 31)),
                     View(cutoff=date(2025, 3, 1), known_at=KNOWN_AT)):
            info = replay(sqlite_into, SqliteLogSource(cohort.db), view=view).info
            built = ProjectionStore(sqlite_into, info.prefix)
            patients = embedded.patient_rows(view)
            assert built.patient_rows() == patients
            assert built.line_rows() == embedded.line_rows(view)
            assert built.finding_rows() == embedded.finding_rows(view)
            assert 0 < len(patients) < 400  # the view does cut the cohort
            assert info.options["view"]["known_at"] == (
                view.known_at.isoformat() if view.known_at else None)
    finally:
        embedded.close()


def test_the_same_source_and_options_give_the_same_hash_from_any_source(
        cohort: Cohort, sqlite_into: Engine) -> None:
    log_first = replay(sqlite_into, SqliteLogSource(cohort.db)).info
    log_again = replay(sqlite_into, SqliteLogSource(cohort.db)).info
    from_file = replay(sqlite_into, JsonlSource(cohort.jsonl, RECEIVED))
    assert log_again.version == log_first.version + 1
    assert log_first.content_hash == log_again.content_hash == from_file.info.content_hash
    counts = from_file.counts  # the file holds the duplicates and the malformed lines
    assert counts.duplicates > 0
    assert counts.rejected_total > 0
    assert counts.read == counts.events + counts.duplicates + counts.rejected_total
    assert counts.rejected["$: not valid JSON"] > 0
    other = replay(sqlite_into, SqliteLogSource(cohort.db),
                   settings=DEFAULT_CLINICAL.model_copy(update={"grace_days": 3})).info
    assert other.content_hash != log_first.content_hash
    with sqlite_into.connect() as conn:  # no staging in the target, and none left beside it
        names = sqlite_into.dialect.get_table_names(conn)
        free_pages = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
    assert not [n for n in names if "staging" in n]
    assert free_pages < 100, "the staged records' pages were left behind in the target"
    target = Path(str(sqlite_into.url.database))
    assert sorted(p.name for p in target.parent.iterdir() if "staging" in p.name) == []


# --- interrupted, then resumed --------------------------------------------------------------------


class Interrupted(Exception):
    """Stands for a crash after some committed batches."""


def interrupt_after(phase: str, batches: int) -> Callable[[str, int], None]:
    def on_commit(current: str, committed: int) -> None:
        if current == phase and committed >= batches:
            raise Interrupted

    return on_commit


@pytest.mark.parametrize(("source_kind", "phase"), [("log", "fold"), ("file", "stage"),
                                                    ("file", "fold")])
def test_an_interrupted_replay_resumes_to_the_same_tables(
        cohort: Cohort, into: Engine, source_kind: str, phase: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "STAGE_BATCH", 3000)  # several staging batches

    def source() -> SqliteLogSource | JsonlSource:
        return SqliteLogSource(cohort.db) if source_kind == "log" else \
            JsonlSource(cohort.jsonl, RECEIVED)

    whole = replay(into, source(), batch_patients=40)
    with pytest.raises(Interrupted):
        replay(into, source(), batch_patients=40, on_commit=interrupt_after(phase, 3))
    unfinished = versions(into, "journey")[-1]
    assert unfinished.status == "building"
    assert unfinished.progress["phase"] == phase
    resumed = replay(into, source(), batch_patients=40)
    assert resumed.resumed_from == phase
    assert resumed.info.version == unfinished.version  # the same build went on
    assert resumed.info.content_hash == whole.info.content_hash == live_hash(cohort)
    assert resumed.counts == whole.counts  # nothing counted twice
    assert [v.status for v in versions(into, "journey")] == ["complete", "complete"]


def test_a_crash_between_staging_a_run_and_saving_progress_counts_nothing_twice(
        cohort: Cohort, into: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run and its progress are committed together, wherever the staging lives."""
    monkeypatch.setattr(sources, "STAGE_BATCH", 3000)
    whole = replay(into, JsonlSource(cohort.jsonl, RECEIVED), batch_patients=40)
    saves = 0
    registry_save = Replay._save

    def crash_on_the_third(self: Replay, conn: Any) -> None:
        nonlocal saves
        if self.state.phase == "stage":
            saves += 1
            if saves == 3:  # run 3 is staged; the registry still says run 2
                raise Interrupted
        registry_save(self, conn)

    with monkeypatch.context() as patch:
        patch.setattr(Replay, "_save", crash_on_the_third)
        with pytest.raises(Interrupted):
            replay(into, JsonlSource(cohort.jsonl, RECEIVED), batch_patients=40)
    resumed = replay(into, JsonlSource(cohort.jsonl, RECEIVED), batch_patients=40)
    assert resumed.resumed_from == "stage"
    assert resumed.counts == whole.counts
    assert resumed.info.content_hash == whole.info.content_hash


def test_dropping_an_unfinished_build_removes_its_staged_records(
        cohort: Cohort, sqlite_into: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "STAGE_BATCH", 3000)
    with pytest.raises(Interrupted):
        replay(sqlite_into, JsonlSource(cohort.jsonl, RECEIVED),
               on_commit=interrupt_after("stage", 2))
    target = Path(str(sqlite_into.url.database))
    staged = [p for p in target.parent.iterdir() if "staging" in p.name]
    assert staged, "the interrupted build staged nothing beside its target"
    drop_version(sqlite_into, "journey", 1)
    assert not [p for p in target.parent.iterdir() if "staging" in p.name]
    assert versions(sqlite_into) == []


# --- versions and activation ------------------------------------------------------------------


def test_readers_keep_the_active_version_until_the_switch(cohort: Cohort, tmp_path: Path) -> None:
    db = tmp_path / "own.db"
    shutil.copy(cohort.db, db)  # replay the engine's own log into its own database
    engine = make_engine(f"sqlite:///{db}")
    try:
        v1 = replay(engine, SqliteLogSource(db)).info
        assert active_prefix(engine, "journey") == ""
        assert activate(engine, "journey", 1).status == "active"
        assert active_prefix(engine, "journey") == v1.prefix == "p_journey_v1_"
        last = SqlEventLog(engine).last_position()
        # the embedded engine's catch-up goes on from the version's checkpoint
        assert ProjectionStore(engine, v1.prefix).checkpoint("embedded") == {0: last}

        stricter = DEFAULT_CLINICAL.model_copy(update={"grace_days": 0})
        v2 = replay(engine, SqliteLogSource(db), settings=stricter).info
        assert v2.status == "complete"
        assert active_prefix(engine, "journey") == v1.prefix  # still v1 while v2 waits
        activate(engine, "journey", 2)
        assert active_prefix(engine, "journey") == v2.prefix
        assert [(v.version, v.status) for v in versions(engine)] == [(1, "retired"),
                                                                     (2, "active")]
        with pytest.raises(ConfigurationError, match="is active"):
            drop_version(engine, "journey", 2)
        drop_version(engine, "journey", 1)
        assert [v.version for v in versions(engine)] == [2]
        with engine.connect() as conn:
            assert not [n for n in engine.dialect.get_table_names(conn)
                        if n.startswith("p_journey_v1_")]

        historical = replay(engine, SqliteLogSource(db), view=View(known_at=KNOWN_AT)).info
        with pytest.raises(ConfigurationError, match="--known-at/--cutoff"):
            activate(engine, "journey", historical.version)
        assert ProjectionStore(engine, historical.prefix).checkpoint("embedded") == {}
        assert active_prefix(engine, "journey") == v2.prefix
        replay(engine, SqliteLogSource(db), activate_now=True)
        assert active_prefix(engine, "journey") == "p_journey_v4_"
    finally:
        engine.dispose()


# --- analyst projections ----------------------------------------------------------------------


def test_an_analyst_projection_end_to_end(cohort: Cohort, into: Engine) -> None:
    example = str(ROOT / "docs" / "examples" / "progression_to_biopsy.py")
    info = replay(into, SqliteLogSource(cohort.db), example).info
    assert (info.name, info.prefix) == ("progression_to_biopsy", "p_progression_to_biopsy_v1_")
    projection = load_projection(example)
    expected = []
    for patient_id, events in SqlEventLog(make_engine(cohort.url)).histories():
        history = build_history(patient_id, events)
        if not erased(history):  # consent withdrawn, scope erase: in no analytic output
            expected += projection.rows(history, DEFAULT_CLINICAL)
    md = MetaData()
    md.reflect(into)
    table = md.tables["p_progression_to_biopsy_v1_rows"]
    with into.connect() as conn:
        stored = [tuple(r) for r in conn.execute(select(table).order_by(
            table.c.patient_id, table.c.progression_date))]
    assert stored == sorted(expected, key=lambda row: (str(row[0]), str(row[1])))
    assert len(stored) > 300
    assert info.row_counts == {"rows": len(stored)}


def _file(tmp_path: Path, body: str) -> str:
    path = tmp_path / "broken.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


BROKEN = {
    "import": "import numpy_but_misspelt\n",
    "signature": """
        from mbcjourney.analyst import Column, projection

        @projection("broken", columns=[Column("n", int)])
        def broken(history, settings, extra):
            return []
    """,
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_projection_that_cannot_load_fails_before_touching_anything(
        tmp_path: Path, kind: str) -> None:
    with pytest.raises(ProjectionLoadError, match=r"broken\.py"):
        resolve_target(_file(tmp_path, BROKEN[kind]))


@pytest.mark.parametrize("failure", ["exception", "bad_row"])
def test_a_failing_projection_names_patient_and_event_and_changes_nothing(
        cohort: Cohort, into: Engine, tmp_path: Path, failure: str) -> None:
    replay(into, SqliteLogSource(cohort.db))  # something that must stay as it is
    replay(into, SqliteLogSource(cohort.db), str(ROOT / "docs/examples/treatment_free_interval.py"))
    before = snapshot(into)
    body = """
        from mbcjourney.analyst import Column, projection
        from mbcjourney.events.catalogue import LineStarted

        @projection("broken", columns=[Column("n", int)])
        def broken(history, settings):
            for event in history.events:
                if history.patient_id == "P-000200" and isinstance(event, LineStarted):
                    return [("many",)] if BAD_ROW else [1 / 0]
            return [(len(history.events),)]
    """.replace("BAD_ROW", str(failure == "bad_row"))
    with pytest.raises(ProjectionFailed) as caught:
        replay(into, SqliteLogSource(cohort.db), _file(tmp_path, body), batch_patients=50)
    events = dict(SqlEventLog(make_engine(cohort.url)).histories(["P-000200"]))["P-000200"]
    history = build_history("P-000200", events)
    first_line = next(e for e in history.events if e.event_type == "line.started")
    assert caught.value.patient_id == "P-000200"
    if failure == "exception":
        assert caught.value.event_id == str(first_line.event_id)  # the event being processed
        assert str(caught.value).endswith("ZeroDivisionError: division by zero at broken.py:9")
    else:
        assert caught.value.event_id == str(history.events[-1].event_id)
        assert "row 1, column 'n': expected int, got str" in str(caught.value)
    assert snapshot(into) == before


def test_a_failing_projection_leaves_a_new_database_empty(cohort: Cohort,
                                                          sqlite_into: Engine,
                                                          tmp_path: Path) -> None:
    body = """
        from mbcjourney.analyst import Column, projection

        @projection("broken", columns=[Column("n", int)])
        def broken(history, settings):
            raise RuntimeError("always")
    """
    with pytest.raises(ProjectionFailed, match="RuntimeError: always"):
        replay(sqlite_into, SqliteLogSource(cohort.db), _file(tmp_path, body))
    assert snapshot(sqlite_into) == {}
