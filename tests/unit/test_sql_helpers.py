"""processors/sql.py: the one way to create tables, store UTC instants and chunk ``IN``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select, text

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.sql import (
    IN_CHUNK,
    UtcDateTime,
    chunked_in,
    create_tables,
    insert_ignoring_conflicts,
    utc_text,
)

PARIS_SUMMER = timezone(timedelta(hours=2))


def test_utc_date_time_stores_what_a_plain_date_time_column_stored(tmp_path: Path) -> None:
    """Existing databases keep working: a UTC value is the same text in either column type."""
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    md = MetaData()
    table = Table("t", md, Column("id", Integer, primary_key=True),
                  Column("plain", DateTime(timezone=True)), Column("utc", UtcDateTime()))
    create_tables(md, engine)
    create_tables(md, engine)  # twice: the tables exist, nothing fails
    moment = datetime(2026, 7, 1, 10, 0, 0, 5, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(insert(table).values(id=1, plain=moment, utc=moment))
        conn.execute(insert(table).values(id=2, plain=None, utc=moment.astimezone(PARIS_SUMMER)))
        stored = conn.execute(text("SELECT plain, utc FROM t ORDER BY id")).all()
        read = conn.execute(select(table.c.utc).order_by(table.c.id)).scalars().all()
    assert stored[0][0] == stored[0][1] == "2026-07-01 10:00:00.000005"
    assert stored[1][1] == "2026-07-01 10:00:00.000005"  # the instant, not the wall clock
    assert read == [moment, moment]
    assert all(r.tzinfo is UTC for r in read)


def test_utc_text_is_the_event_logs_fixed_width_text() -> None:
    assert utc_text(datetime(2024, 3, 1, 9, 30, tzinfo=PARIS_SUMMER)) == \
        "2024-03-01T07:30:00.000000+00:00"
    assert utc_text(datetime(2024, 3, 1, 7, 30, 0, 12, tzinfo=UTC)) == \
        "2024-03-01T07:30:00.000012+00:00"
    texts = [utc_text(datetime(2024, 3, 1, tzinfo=UTC) + timedelta(seconds=s))
             for s in (0, 1, 59, 3600, 86_400 * 40)]
    assert len({len(t) for t in texts}) == 1
    assert sorted(texts) == texts  # sorts as it reads


def test_chunked_in_covers_every_value_once_in_bounded_statements(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    md = MetaData()
    table = Table("c", md, Column("key", String(16), primary_key=True))
    create_tables(md, engine)
    keys = [f"K{n:05d}" for n in range(2 * IN_CHUNK + 7)]
    with engine.begin() as conn:
        conn.execute(insert_ignoring_conflicts(conn, table), [{"key": k} for k in keys])
        conn.execute(insert_ignoring_conflicts(conn, table), [{"key": keys[0]}])  # ignored
        wanted = [*keys[::-1], "absent"]
        conditions = list(chunked_in(conn, table.c.key, wanted))
        found = [k for where in conditions
                 for k in conn.execute(select(table.c.key).where(where)).scalars()]
    assert len(conditions) == 3
    assert sorted(found) == keys
