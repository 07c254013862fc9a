"""SQL helpers shared by every store: creating tables, UTC instants, chunked ``IN``, upserts.

One way to do each, on SQLite and PostgreSQL alike:

* :func:`create_tables` -- ``create_all``, tolerant of two processes racing to do it;
* :func:`chunked_in` -- ``column IN values`` for any number of values, as conditions
  over at most :data:`IN_CHUNK` values each (SQLite bounds a statement's parameters;
  on PostgreSQL each is one array parameter);
* UTC instants, stored in one of two on-disk forms, each with its one encoder:
  :class:`UtcDateTime` for a date-time column (``timestamptz`` on PostgreSQL; SQLite's
  naive ``YYYY-MM-DD HH:MM:SS.ffffff`` text, read back as UTC), and :func:`utc_text`
  for an instant kept as fixed-width ISO text (``...T...+00:00``) that sorts as it
  reads (the event log's ``recorded_at``, compared as text in hand-written SQL, and
  the alert actions' ``at``).  A column keeps the form it was created with:
  existing databases read as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Insert,
    MetaData,
    String,
    Table,
    TypeDecorator,
    any_,
    bindparam,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

IN_CHUNK = 500  # values per IN (...): far below SQLite's bound-parameter limit


def on_postgres(bind: Connection | Engine) -> bool:
    return bind.dialect.name == "postgresql"


def create_tables(metadata: MetaData, engine: Engine) -> None:
    """``create_all``, tolerant of another process creating the same tables at the same moment.

    PostgreSQL reports the loser of that race as a duplicate relation or type, SQLite
    as "table ... already exists"; the tables then exist, so checking again is all
    that is needed.
    """
    try:
        metadata.create_all(engine)
    except (IntegrityError, ProgrammingError):
        metadata.create_all(engine)
    except OperationalError as exc:
        if "already exists" not in str(exc.orig):
            raise
        metadata.create_all(engine)


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect."""
    dialect = postgresql if on_postgres(conn) else sqlite
    return dialect.insert(table).on_conflict_do_nothing()  # type: ignore[no-any-return]


def among(bind: Connection | Engine, column: ColumnElement[str], values: Sequence[str]
          ) -> ColumnElement[bool]:
    """``column IN values``: one array parameter on PostgreSQL (cheap however many)."""
    if on_postgres(bind):
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(String)))
    return column.in_(list(values))


def chunked_in(bind: Connection | Engine, column: ColumnElement[str], values: Sequence[str],
               size: int = IN_CHUNK) -> Iterator[ColumnElement[bool]]:
    """``column IN values`` as one condition per ``size`` values, in the order given.

    Run one statement per condition; together they cover ``values`` exactly once.
    """
    for start in range(0, len(values), size):
        yield among(bind, column, values[start : start + size])


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC instant on PostgreSQL (timestamptz) and SQLite (naive, read back as UTC).

    On SQLite the text stored for a UTC value is exactly what ``DateTime(timezone=True)``
    stores; the difference is that any aware value is converted to UTC first, and
    values come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect
                             ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """An aware instant as fixed-width ISO text in UTC, to the microsecond: sorts as it reads."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def assume_utc(moment: datetime) -> datetime:
    """A date-time read back from SQLite is naive for what was written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
