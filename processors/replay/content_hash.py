"""The content hash of a built version: every output table's rows, in a canonical form."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from enum import Enum

import orjson
from sqlalchemy import DateTime, Engine, String, Table, select

from mbcjourney.processors.sql import UtcDateTime, assume_utc, on_postgres


def _canonical(value: object) -> object:
    if isinstance(value, datetime):
        return assume_utc(value).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _row_encoder(table: Table) -> Callable[[Sequence[object]], bytes]:
    """How one row of ``table`` becomes its canonical JSON line (without the newline).

    Only a date-time needs Python to canonicalise it (UTC, aware); dates, enums,
    booleans, numbers and text come out of orjson exactly as :func:`_canonical`
    would make them, so a table without date-time columns is dumped as a tuple.
    """
    if any(isinstance(c.type, DateTime | UtcDateTime) for c in table.columns):
        return lambda row: orjson.dumps([_canonical(v) for v in row])
    return lambda row: orjson.dumps(tuple(row))


def table_hash(engine: Engine, tables: Sequence[tuple[str, Table]]
               ) -> tuple[str, dict[str, int]]:
    """sha256 over every table's rows sorted by key, in a canonical text form; and row counts.

    Per table: ``table NAME``, the column names, then one JSON array per row (dates
    ISO, booleans true/false, missing values null), rows in primary-key order by code
    point.  Independent of the table prefix and of the database (SQLite or PostgreSQL).
    """
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    postgres = on_postgres(engine)
    with engine.connect() as conn:
        for logical, table in tables:
            digest.update(f"table {logical}\n".encode())
            digest.update(orjson.dumps([c.name for c in table.columns]) + b"\n")
            order = [c.collate("C") if postgres and isinstance(c.type, String) else c
                     for c in table.primary_key.columns]
            encode = _row_encoder(table)
            count = 0
            with conn.execution_options(stream_results=True, yield_per=5000).execute(
                    select(table).order_by(*order)) as result:
                for rows in result.partitions():
                    # One update per partition: hashing is incremental, the bytes are equal.
                    digest.update(b"".join([encode(row) + b"\n" for row in rows]))
                    count += len(rows)
            counts[logical] = count
    return f"sha256:{digest.hexdigest()}", counts
