"""Database engines, built in one place from a URL (SQLite embedded, PostgreSQL scale-out)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    String,
    Table,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.types import TypeEngine

from mbcjourney.events.errors import ConfigurationError


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # The log's event_id index is keyed by random UUIDs: without a large page cache
    # every insert and every per-patient read misses it (up to 256 MiB).
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``; clear error otherwise."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"--db {url!r} is not a database URL (e.g. sqlite:///journey.db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(f"--db: unsupported database {backend!r} (sqlite or postgresql)")
    if backend == "sqlite":
        _require_sqlite_file(url, parsed)
    # hide_parameters: a database error's message then never carries row values
    # (patient ids, event bodies), which would reach a terminal or a log.
    engine = create_engine(parsed, future=True, hide_parameters=True)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


_SQLITE_HEADER = b"SQLite format 3\x00"


def _require_sqlite_file(url: str, parsed: URL) -> None:
    """Refuse a SQLite URL that would store nothing, or a file that is not a SQLite database.

    ``sqlite://``, ``sqlite:///`` and ``sqlite:///:memory:`` open a database that
    vanishes with the process: an ingest into one would report events accepted and
    keep none.  Every command opens its database here, so each refuses them.
    """
    database = parsed.database or ""
    if not database or database == ":memory:" or "mode=memory" in database:
        raise ConfigurationError(
            f"--db {url}: an in-memory SQLite database keeps nothing; name a file, "
            "e.g. sqlite:///journey.db")
    path = sqlite_file(parsed)
    if path is None or not path.is_file():
        return
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise ConfigurationError(f"--db {url}: cannot read the file ({exc.strerror})") from None
    if header and header != _SQLITE_HEADER:
        raise ConfigurationError(f"--db {url}: the file is not a SQLite database")


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL names; None for another database, in-memory or a ``file:`` URI."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" \
            or database.startswith("file:"):
        return None
    return Path(database)


def existing_database(url: str) -> str:
    """``url``, unless it names an embedded database file that does not exist.

    SQLite creates a missing file on connect: a mistyped ``--db`` would otherwise
    give an empty export or an empty overdue list, silently.
    """
    try:
        path = sqlite_file(url)
    except ArgumentError:
        return url  # make_engine names the problem
    if path is not None and not path.exists():
        raise ConfigurationError(
            f"--db {url}: no such database; `journey ingest FILE --db {url}` creates one")
    return url


def placeholder(dialect: Dialect) -> str:
    """The driver's parameter placeholder in hand-written SQL (SQLite ``?``, psycopg ``%s``)."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def database_failure(exc: DBAPIError) -> str:
    """What a user should read when the database itself fails (no traceback, no password).

    The driver's own first line names the host and port (PostgreSQL) or the cause
    (SQLite); a server that does not answer gets the way to start one.
    """
    detail = (str(exc.orig).strip().splitlines() or ["(no detail)"])[0]
    text = f"the database failed: {detail}"
    if "Connection refused" in detail or "timeout expired" in detail:
        text += "; is PostgreSQL running? (bash infra/postgres/start.sh starts one)"
    elif detail == "unable to open database file":  # SQLite
        text += "; does the database's folder exist, and may this user write there?"
    return text


_SQLITE_BOUNDED = (
    "PRAGMA cache_size=-32768",  # 32 MiB of page cache, whatever the database weighs
    "PRAGMA mmap_size=0",  # mapped pages would count as resident, up to the file's size
    "PRAGMA temp_store=FILE",  # temporary B-trees sort on disk, not in memory
)


def _bounded_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in _SQLITE_BOUNDED:
        cursor.execute(pragma)
    cursor.close()


def bound_memory(engine: Engine) -> None:
    """Keep a SQLite database's memory flat while millions of rows stream through it (replay).

    The engine's own settings favour random reads of the event log (a large page cache,
    memory-mapped reads, in-memory temporary B-trees); there they would make peak memory
    grow with the number of events.  Pooled connections reopen with these settings.
    """
    if engine.dialect.name != "sqlite" or event.contains(engine, "connect", _bounded_pragmas):
        return
    event.listen(engine, "connect", _bounded_pragmas)
    engine.dispose()


def patient_key() -> TypeEngine[str]:
    """A patient id column sorted by code point everywhere.

    The fold order and the content-hash order then never depend on a server's locale.
    """
    return String(64).with_variant(String(64, collation="C"), "postgresql")


def copy_rows(conn: Connection, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """``COPY ... FROM STDIN`` on a psycopg connection, in its transaction; rows formatted in C.

    Errors come out as SQLAlchemy's (``IntegrityError``, ``OperationalError``, ...),
    as they would from ``conn.execute``.
    """
    import psycopg

    driver: Any = conn.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


class BulkInsert:
    """Row tuples into one table in bulk, converted as SQLAlchemy does.

    ``insert(table)`` with a dict per row spent more time building parameters than
    the database spent inserting them (a rebuild or a replay writes hundreds of
    thousands of rows).  Each column's own bind processor still converts its values,
    so what is stored is identical (SQLite: dates as ISO text, booleans 0/1;
    PostgreSQL: native types).

    On PostgreSQL (psycopg) the rows go in with ``COPY ... FROM STDIN``: psycopg
    formats each row in C, with the same adapters as for parameters, where
    ``executemany`` ran a Python round of its pipeline per row (a quarter of a
    live worker's CPU time, measured).  Elsewhere, the driver's ``executemany``.
    """

    def __init__(self, table: Table, dialect: Dialect, names: Sequence[str] | None = None
                 ) -> None:
        self.names = tuple(names) if names is not None else tuple(c.name for c in table.columns)
        preparer = dialect.identifier_preparer
        marker = placeholder(dialect)
        columns = ", ".join(preparer.quote(n) for n in self.names)
        self.sql = (f"INSERT INTO {preparer.format_table(table)} ({columns}) "
                    f"VALUES ({', '.join([marker] * len(self.names))})")
        self.copy_sql = (f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN"
                         if dialect.driver == "psycopg" else None)
        self._processors = [
            (index, process) for index, name in enumerate(self.names)
            if (process := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
            is not None]

    def run(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self._processors:
            rows = [self._bound(row) for row in rows]
        if self.copy_sql is None:
            conn.exec_driver_sql(self.sql, list(rows))
            return
        copy_rows(conn, self.copy_sql, rows)

    def _bound(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index, process in self._processors:
            values[index] = process(values[index])
        return tuple(values)
