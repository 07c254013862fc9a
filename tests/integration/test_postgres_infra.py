"""The PostgreSQL test infrastructure works: server, driver, upsert, per-test databases.

Needs the plugin ``tests.fixtures.postgres`` (registered from the root conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url

from tests.fixtures.postgres import fresh_database

pytestmark = pytest.mark.integration

# ON CONFLICT needs 9.5; DROP DATABASE ... WITH (FORCE), used by the fixtures, needs 13.
MIN_SERVER_VERSION = (13,)


@pytest.fixture
def engine(postgres_db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres_db_url)
    yield engine
    engine.dispose()


def test_url_uses_psycopg3_driver(postgres_url: str, postgres_db_url: str) -> None:
    for url in (postgres_url, postgres_db_url):
        assert make_url(url).drivername == "postgresql+psycopg"


def test_server_version(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        version_num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
        banner = conn.execute(sa.text("SELECT version()")).scalar_one()
    assert banner.startswith("PostgreSQL ")
    assert engine.dialect.server_version_info is not None
    assert engine.dialect.server_version_info[:1] >= MIN_SERVER_VERSION
    assert version_num >= MIN_SERVER_VERSION[0] * 10_000
    assert engine.dialect.driver == "psycopg"


def test_upsert_on_conflict_do_update_keeps_one_row(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    projection = sa.Table(
        "patient_line",
        metadata,
        sa.Column("patient_id", sa.String(32), primary_key=True),
        sa.Column("line_number", sa.Integer, primary_key=True),
        sa.Column("regimen", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    metadata.create_all(engine)

    def upsert(regimen: str, version: int) -> None:
        stmt = pg_insert(projection).values(
            patient_id="P-0001", line_number=1, regimen=regimen, version=version
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[projection.c.patient_id, projection.c.line_number],
            set_={"regimen": stmt.excluded.regimen, "version": stmt.excluded.version},
        )
        with engine.begin() as conn:
            conn.execute(stmt)

    upsert("letrozole", 1)
    upsert("letrozole + palbociclib", 2)

    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(projection.c.patient_id, projection.c.regimen, projection.c.version)
        ).all()
    assert [tuple(row) for row in rows] == [("P-0001", "letrozole + palbociclib", 2)]


def test_each_database_is_distinct_and_isolated(
    postgres_db_url: str, postgres_database_factory: Callable[[], str]
) -> None:
    other_url = postgres_database_factory()
    assert make_url(postgres_db_url).database != make_url(other_url).database

    first = sa.create_engine(postgres_db_url)
    second = sa.create_engine(other_url)
    try:
        with first.begin() as conn:
            conn.execute(sa.text("CREATE TABLE only_here (id integer PRIMARY KEY)"))
            first_name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        with second.connect() as conn:
            second_name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            visible = conn.execute(sa.text("SELECT to_regclass('only_here')")).scalar_one()
    finally:
        first.dispose()
        second.dispose()
    assert first_name == make_url(postgres_db_url).database
    assert second_name == make_url(other_url).database
    assert visible is None


def test_fresh_database_is_dropped_afterwards(postgres_url: str) -> None:
    # Leave a connection open on purpose: the drop must not depend on the test's manners.
    with fresh_database(postgres_url, "drop-check") as url:
        name = make_url(url).database
        leaked = sa.create_engine(url)
        leaked_conn = leaked.connect()
        leaked_conn.execute(sa.text("SELECT 1"))

    admin = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT count(*) FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar_one()
    finally:
        admin.dispose()
        leaked_conn.invalidate()
        leaked.dispose()
    assert exists == 0


def test_the_role_may_end_any_session_in_a_database_it_drops(engine: sa.Engine) -> None:
    """``DROP DATABASE ... WITH (FORCE)`` also ends an autovacuum worker (no role) in it.

    Without pg_signal_backend (or superuser) that drop failed at a test's teardown,
    when a bulk COPY had set autoanalyze going (infra/postgres/start.sh grants it).
    """
    with engine.connect() as conn:
        allowed = conn.execute(sa.text(
            "SELECT rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'member') "
            "FROM pg_roles WHERE rolname = current_user")).scalar_one()
    assert allowed
