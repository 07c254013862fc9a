"""Where a replay from an arrival-order source (Kafka, JSON Lines) puts records before the fold.

The fold needs each patient's records together, the source has them in arrival
order, and memory must not grow with the number of events: so the records are
spilled in **runs**, one per committed batch, each sorted by (patient,
partition, offset) and stored under ids ``run << RUN_BITS | i``.  On SQLite the
fold merges the runs, reading each one sequentially (a run is a contiguous
stretch of the table), instead of sorting every row through an index and
reading them back in random order; PostgreSQL reads them through an index.

**Where.** On a SQLite target the staging table lives in a file of its own
beside the target database, ``<target>.<prefix>staging``, deleted when the
build ends.  Inside the target, dropping it would take seconds and leave its
pages behind as free space: a 1,000,000-event replay left a 400 MB file
holding 9 MB of projection rows.  On PostgreSQL it is a table of the target
database (dropping a table gives its space back).

**Resuming.** Each run is committed together with the build's progress
(``<prefix>staging_progress``), so the records staged and the source position
they reach never disagree, even when the staging store is a different file
from the registry's: after a crash, the staging store's own progress says
where to go on.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Generator, Iterator
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    insert,
    inspect,
    select,
)

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.db import (
    bound_memory,
    copy_rows,
    make_engine,
    patient_key,
    sqlite_file,
)
from mbcjourney.processors.sealing import Cipher

RUN_BITS = 32  # staging ids: run number << RUN_BITS | row number in the (sorted) run
MERGE_BUFFER = 20_000  # staged rows read ahead, over all runs, while merging them

StagedRow = tuple[str, int, int, int, bytes]  # (patient, partition, seq, received_us, body)
# A staged clear body (a JSON Lines line) is sealed with the build's staging key:
# ``~s`` + the sealed text.  Kafka values come sealed with their patient's key already.
STAGED_PREFIX = b"~s"


class Staging:
    """The staged records of one build (table prefix ``prefix``) of a target database."""

    def __init__(self, target: Engine, prefix: str, cipher: Cipher | None = None) -> None:
        self.path = staging_file(target, prefix)
        self.engine = target
        self.cipher = cipher
        # One key per build, destroyed with the staging: a crash leaves nothing readable
        # once the build is dropped, and a resumed build still opens what it staged.
        self._key_name = f"#staging:{prefix}"
        if self.path is not None:
            self.engine = make_engine(f"sqlite:///{self.path}")
            bound_memory(self.engine)
        metadata = MetaData()
        self.table = Table(
            f"{prefix}staging", metadata,
            # INTEGER on SQLite: the rowid itself, so a run is a contiguous stretch of the table.
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                   autoincrement=False),
            Column("patient_id", patient_key(), nullable=False),
            Column("part", Integer, nullable=False),
            Column("seq", BigInteger, nullable=False),
            Column("received_us", BigInteger, nullable=False),
            Column("body", LargeBinary, nullable=False),
        )
        self.progress = Table(f"{prefix}staging_progress", metadata,
                              Column("id", Integer, primary_key=True, autoincrement=False),
                              Column("progress", Text, nullable=False))
        self._postgres = self.engine.dialect.name == "postgresql"

    # --- lifecycle ---------------------------------------------------------------------------

    def create(self) -> None:
        """Fresh, empty staging for a new build (whatever a dropped build of the same name left)."""
        self.remove()
        with self.engine.begin() as conn:
            self.table.create(conn)
            self.progress.create(conn)

    def check(self, name: str, version: int, *, staged_anything: bool) -> None:
        """Resuming: the staging must be there, in this format (else the build cannot go on)."""
        tables = set(inspect(self.engine).get_table_names()) if self._exists() else set()
        if self.table.name not in tables and not staged_anything:
            self.create()  # the build stopped before its first run: start staging afresh
            return
        if self.table.name not in tables or self.progress.name not in tables:
            raise ConfigurationError(
                f"{name} version {version}: its staged records are missing, or were staged by "
                f"an older version of replay; drop it (journey projections drop {name} "
                f"{version}) and replay again")

    def seal(self, body: bytes) -> bytes:
        """``body`` as staged: sealed with the staging key unless sealed already."""
        if self.cipher is None or not self.cipher.enabled or body[:2] == b"~1":
            return body
        return STAGED_PREFIX + self.cipher.seal(self._key_name, body).encode()

    def unstage(self, body: bytes) -> bytes:
        """The bytes that were staged (see :meth:`seal`)."""
        if body[:2] != STAGED_PREFIX or self.cipher is None:
            return body
        return self.cipher.open(self._key_name, body[2:])

    def remove(self) -> None:
        """Delete the staged records (the file, on SQLite) and the staging key."""
        if self.cipher is not None:
            self.cipher.discard(self._key_name)
        if self.path is None:
            with self.engine.begin() as conn:
                self.table.drop(conn, checkfirst=True)
                self.progress.drop(conn, checkfirst=True)
            return
        self.engine.dispose()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _exists(self) -> bool:
        return self.path is None or self.path.exists()

    # --- writing -----------------------------------------------------------------------------

    def append(self, run: int, rows: list[StagedRow], progress: dict[str, Any]) -> None:
        """Stage one run (``rows`` sorted) and the build's progress, in one transaction."""
        base = run << RUN_BITS
        seal = self.seal
        numbered = [(base + i, *row[:4], seal(row[4])) for i, row in enumerate(rows)]
        columns = "id, patient_id, part, seq, received_us, body"
        with self.engine.begin() as conn:
            if numbered and self._postgres:
                copy_rows(conn, f'COPY "{self.table.name}" ({columns}) FROM STDIN', numbered)
            elif numbered:
                conn.exec_driver_sql(
                    f'INSERT INTO "{self.table.name}" ({columns}) VALUES (?, ?, ?, ?, ?, ?)',
                    numbered)
            conn.execute(delete(self.progress))
            conn.execute(insert(self.progress).values(id=1, progress=orjson.dumps(
                progress).decode()))

    def saved_progress(self) -> dict[str, Any] | None:
        """The build's progress as of its last staged run, if any run was staged."""
        with self.engine.connect() as conn:
            saved = conn.execute(select(self.progress.c.progress)).scalar_one_or_none()
        return None if saved is None else dict(orjson.loads(saved))

    def finish(self) -> None:
        """Every record is staged: PostgreSQL reads them back through an index."""
        if self._postgres:
            with self.engine.begin() as conn:
                Index(f"{self.table.name}_by_patient", self.table.c.patient_id,
                      self.table.c.part, self.table.c.seq).create(conn, checkfirst=True)

    # --- reading -----------------------------------------------------------------------------

    def next_run(self) -> int:
        """How many runs are staged (the number of the next one)."""
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(self.table.c.id))).scalar_one()
        return 0 if last is None else (int(last) >> RUN_BITS) + 1

    def count(self, after: str) -> int:
        """Staged records of the patients after ``after`` (by id)."""
        st = self.table
        with self.engine.connect() as conn:
            if after or self._postgres:
                return int(conn.execute(select(func.count()).select_from(st)
                                        .where(st.c.patient_id > after)).scalar_one())
            total = 0  # every row: the runs' sizes, from their last ids (no scan)
            for run in range(self.next_run()):
                last = conn.execute(select(func.max(st.c.id)).where(
                    (st.c.id >= run << RUN_BITS) & (st.c.id < (run + 1) << RUN_BITS))
                ).scalar_one()
                total += 0 if last is None else int(last) - (run << RUN_BITS) + 1
            return total

    def by_patient(self, after: str) -> Generator[tuple[str, Iterator[StagedRow]], None, None]:
        """Each staged patient after ``after``, with its rows in (partition, seq) order."""
        st = self.table
        columns = (st.c.patient_id, st.c.part, st.c.seq, st.c.received_us, st.c.body)
        with self.engine.connect() as conn:
            if self._postgres:
                query = (select(*columns).where(st.c.patient_id > after)
                         .order_by(st.c.patient_id, st.c.part, st.c.seq))
                with conn.execution_options(stream_results=True, yield_per=5000).execute(
                        query) as result:
                    yield from itertools.groupby(result, key=itemgetter(0))
                return
            raw = conn.connection.driver_connection
            assert raw is not None
            sql = (f'SELECT patient_id, part, seq, received_us, body FROM "{st.name}" '
                   "WHERE id >= ? AND id < ? AND patient_id > ? ORDER BY id")
            runs = [raw.execute(sql, (run << RUN_BITS, (run + 1) << RUN_BITS, after))
                    for run in range(self.next_run())]
            # Each run is read in blocks (faster than row by row), all of them together
            # holding about MERGE_BUFFER rows whatever the number of runs.
            size = max(16, MERGE_BUFFER // max(len(runs), 1))
            blocks = [itertools.chain.from_iterable(iter(partial(cursor.fetchmany, size), []))
                      for cursor in runs]
            try:
                # Rows compare by (patient, partition, seq), unique: a total order.
                yield from itertools.groupby(heapq.merge(*blocks), key=itemgetter(0))
            finally:
                for cursor in runs:
                    cursor.close()


def staging_file(target: Engine, prefix: str) -> Path | None:
    """The file of a build's staging beside a SQLite target database; None elsewhere."""
    database = sqlite_file(target.url)
    if database is None:
        return None
    path = database.resolve()
    return path.with_name(f"{path.name}.{prefix}staging")
