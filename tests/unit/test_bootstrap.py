"""The composition root: what it builds is wired at construction, and closed by its owner."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from mbcjourney.bootstrap import open_database, open_engine
from mbcjourney.engine import EmbeddedEngine, EmbeddedStorage
from mbcjourney.errors import ConfigurationError
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.faust_app import create_app
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.worker import ProjectionSink, WorkerConfig
from mbcjourney.settings import ClinicalSettings


def test_the_engine_is_a_context_manager_that_closes_its_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journey.db'}"
    settings = ClinicalSettings(grace_days=3)
    with open_engine(url, settings, create=True) as engine:
        pool = engine.engine.pool
        assert engine.settings is settings
        assert engine.db_url == url
        assert engine.log.count() == 0  # the tables exist: the storage created them
    assert engine.engine.pool is not pool  # disposed: the connections it held are closed


def test_the_engine_is_closed_when_the_block_raises(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journey.db'}"
    engine = open_engine(url, create=True)
    pool = engine.engine.pool

    def fail() -> None:
        with engine:
            raise RuntimeError("the command failed")

    with pytest.raises(RuntimeError):
        fail()
    assert engine.engine.pool is not pool


def test_only_writing_commands_create_the_database(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(ConfigurationError, match="no such database"):
        open_engine(f"sqlite:///{missing}")
    assert not missing.exists()


def test_the_engine_uses_the_storage_it_is_given(tmp_path: Path) -> None:
    storage = EmbeddedStorage.open(f"sqlite:///{tmp_path / 'journey.db'}")
    with EmbeddedEngine(storage) as engine:
        assert (engine.engine, engine.log, engine.store, engine.actions) == (
            storage.database, storage.log, storage.store, storage.actions)


def test_a_url_still_opens_an_engine_for_the_python_api(tmp_path: Path) -> None:
    with EmbeddedEngine(f"sqlite:///{tmp_path / 'study.db'}") as engine:
        assert engine.log.count() == 0
    assert (tmp_path / "study.db").exists()


def test_a_database_is_disposed_on_exit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'journey.db'}"
    with open_database(url, create=True) as engine:
        pool = engine.pool
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar() == 1
    assert engine.pool is not pool


def test_the_worker_app_gives_the_sink_its_failure_handler_at_construction(
        tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'rows.db'}"
    store = ProjectionStore(make_engine(db_url))
    built: list[ProjectionSink] = []
    with ThreadPoolExecutor(1) as executor:

        def sink(on_failure: Callable[[BaseException], None]) -> ProjectionSink:
            built.append(ProjectionSink(store, "worker:test", executor, on_failure=on_failure))
            return built[-1]

        create_app(WorkerConfig(bootstrap="127.0.0.1:9", db_url=db_url), sink)
    assert len(built) == 1
    assert built[0].on_failure.__name__ == "stop_on_failure"  # the app's, not the default
