"""The embedded event log: an append-only SQL table, idempotent on ``event_id``.

One port, :class:`EventLog`; this SQL adapter backs both the embedded default
(SQLite) and a PostgreSQL deployment, and one contract test suite runs against
both.  Events are stored in their validated, canonical wire form; reading goes
back through the codec, so an older stored version is upcast on read.

Idempotency: the same ``event_id`` with the same content is a duplicate (stored
and counted once); with different content it is a conflict, refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    func,
    select,
    update,
)

from mbcjourney.events import ClinicalEvent, encode_event
from mbcjourney.events.catalogue import PatientIncluded
from mbcjourney.events.codec import body_hash, decode_stored_row
from mbcjourney.events.limits import OCCURRED_AFTER_RECORDED_SLACK_DAYS
from mbcjourney.processors import watermarks
from mbcjourney.processors.admission import is_repeat
from mbcjourney.processors.db import placeholder
from mbcjourney.processors.deadletters import DeadLetter, DeadLetterStore
from mbcjourney.processors.erasures import ErasureLog
from mbcjourney.processors.keys import KeyDestroyed
from mbcjourney.processors.sealing import Cipher
from mbcjourney.processors.sql import chunked_in, create_tables, utc_text

metadata = MetaData()

_Position = BigInteger().with_variant(Integer(), "sqlite")

events_table = Table(
    "events",
    metadata,
    Column("position", _Position, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("occurred_on", String(10), nullable=False),  # ISO date: sorts as it reads
    Column("recorded_at", String(32), nullable=False),  # ISO UTC instant, fixed width: sorts
    Column("content_hash", String(32), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_events_patient_position", "patient_id", "position"),
)

_FETCH = 5_000  # rows per fetch when streaming the log
_MMAP_BYTES = 1 << 40  # as much of the file as SQLite allows (it caps this at its own limit)


def lock_for_append(conn: Connection) -> None:
    """Make ``conn``'s transaction the only appender until it ends.

    Classifying a batch (accepted, duplicate, conflict) reads the log's last position
    and then inserts: another writer committing in between would have its rows taken
    for this batch's, over-counting "accepted" and losing this batch's conflicts
    (issue 19: two ``journey ingest`` into one SQLite file).  SQLite: ``BEGIN
    IMMEDIATE`` takes the write lock before that read (the driver would begin only at
    the insert); a second writer waits for it (``busy_timeout``), then sees the
    first's rows.  PostgreSQL: an exclusive table lock, which readers do not wait for.
    """
    if conn.dialect.name == "sqlite":
        driver: Any = conn.connection.driver_connection
        # pysqlite begins a transaction at its first write: one under way already holds
        # SQLite's write lock (a caller's transaction that wrote before appending).
        if not driver.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")


class EventRow(NamedTuple):
    """One row of the events table, in column order (built where the event is decoded)."""

    event_id: str
    event_type: str
    schema_version: int
    patient_id: str
    occurred_on: str
    recorded_at: str
    content_hash: str
    body: str


def event_row(event: ClinicalEvent, body: bytes) -> EventRow:
    return EventRow(
        str(event.event_id), event.event_type, event.schema_version, event.patient_id,
        event.occurred_on.isoformat(), utc_text(event.recorded_at), body_hash(body),
        body.decode(),
    )


@dataclass
class AppendOutcome:
    accepted: list[ClinicalEvent] = field(default_factory=list)
    duplicates: int = 0
    conflicts: list[ClinicalEvent] = field(default_factory=list)


@dataclass(frozen=True)
class StoredEvent:
    position: int
    event: ClinicalEvent


def occurred_by(recorded_at: str) -> str:
    """The latest day an event recorded at ``recorded_at`` (UTC text) can have occurred.

    What a sealed row keeps in ``occurred_on``: its clinical date is inside the
    seal, and this bound (from ``recorded_at``, which is clear) still tells the
    watermarks when a patient's history is settled.
    """
    day = date.fromisoformat(recorded_at[:10])
    if day >= date.max - timedelta(days=OCCURRED_AFTER_RECORDED_SLACK_DAYS):
        return date.max.isoformat()
    return (day + timedelta(days=OCCURRED_AFTER_RECORDED_SLACK_DAYS)).isoformat()


class SqlEventLog:
    """The event log on SQLite or PostgreSQL through SQLAlchemy Core.

    Bodies are sealed with each patient's data key (:mod:`.sealing`) unless the
    log is given :class:`~mbcjourney.processors.sealing.PlainText`; by default
    the keys are found from settings (:func:`~mbcjourney.processors.keyring.sealer_for`).
    Rows of erased patients (their key destroyed) are skipped by every reader
    and counted in :attr:`erased_rows`.
    """

    def __init__(self, engine: Engine, cipher: Cipher | None = None) -> None:
        self.engine = engine
        self._cipher = cipher
        self.erasures = ErasureLog(engine)
        self.letters = DeadLetterStore(engine, self)  # rejected input, beside the log
        self.erased_rows = 0

    @property
    def cipher(self) -> Cipher:
        """The sealer, found from settings on first use (commands that never read bodies
        need no keys)."""
        if self._cipher is None:
            from mbcjourney.processors.keyring import sealer_for
            self._cipher = sealer_for(self.engine)
        return self._cipher

    def create(self) -> None:
        create_tables(metadata, self.engine)
        watermarks.create(self.engine)
        self.erasures.create()
        self.letters.create()

    def open_body(self, patient_id: str, body: str | bytes) -> bytes | None:
        """The clear bytes of a stored body; None (counted) for an erased patient's."""
        try:
            return self.cipher.open(patient_id, body)
        except KeyDestroyed:
            self.erased_rows += 1
            return None

    def sealed_rows(self, rows: Sequence[EventRow]) -> list[EventRow]:
        """``rows`` as stored: bodies sealed, a keyed content hash, no clinical date.

        Keys of new patients are created here, committed before the rows are.
        """
        cipher = self.cipher
        if not cipher.enabled:
            return list(rows)
        erased = cipher.prepare({row.patient_id for row in rows})
        if erased:
            raise KeyDestroyed(f"{len(erased)} patient(s) erased")
        seal, digest = cipher.seal, cipher.content_hash
        sealed: list[EventRow] = []
        for row in rows:
            body = row.body.encode()
            sealed.append(EventRow(
                row.event_id, row.event_type, row.schema_version, row.patient_id,
                occurred_by(row.recorded_at), row.recorded_at,
                digest(row.patient_id, body), seal(row.patient_id, body)))
        return sealed

    # --- writing ---------------------------------------------------------------

    def append(self, events: Sequence[ClinicalEvent], bodies: Sequence[bytes] | None = None
               ) -> AppendOutcome:
        """Store new events in one transaction; classify repeats as duplicates or conflicts.

        ``bodies`` are the validated JSON bytes of each event as received (see
        ``decode_with_body``); without them the canonical encoding is stored.
        """
        if bodies is None:
            bodies = [encode_event(e) for e in events]
        rows = [event_row(e, b) for e, b in zip(events, bodies, strict=True)]
        accepted, duplicates, conflicts = self.append_rows(rows)
        taken = set(accepted)
        return AppendOutcome(
            accepted=[e for i, e in enumerate(events) if i in taken],
            duplicates=duplicates,
            conflicts=[events[i] for i in conflicts],
        )

    def append_rows(self, rows: Sequence[EventRow]) -> tuple[list[int], int, list[int]]:
        """Append prepared rows in a transaction of their own; see :meth:`append_rows_in`."""
        first = _first_rows(rows)
        if not first:
            return [], 0, []
        stored = self.sealed_rows(rows)
        with self.engine.begin() as conn:
            inserted, known = self._insert_in(conn, stored, first)
        return _classified(stored, rows, first, inserted, known, self.open_body)

    def append_rows_in(self, conn: Connection, rows: Sequence[EventRow]
                       ) -> tuple[list[int], int, list[int]]:
        """Append prepared rows in the caller's transaction (committed with its other writes).

        Returns (accepted indices, duplicate count, conflict indices).  The live
        workers append the events they applied in the transaction of their rows and
        checkpoints.  Appending takes the log's lock (:func:`lock_for_append`) until
        that transaction ends: append last.

        The insert itself finds the repeats: each id's first row in the batch is
        inserted with ``ON CONFLICT (event_id) DO NOTHING``, so the unique index is
        probed once per row (a separate existence query cost as much again).  What
        was inserted is then read back by position, which only this transaction
        can have added: appends are serialised (SQLite has one writer; PostgreSQL
        takes a table lock), which also keeps positions in commit order for readers
        that follow the log by position.  Only the (rare) refused ids are looked up.
        The lock is taken before the last position is read (:func:`lock_for_append`),
        so a concurrent writer's rows can never be counted as this one's.
        """
        first = _first_rows(rows)
        if not first:
            return [], 0, []
        stored = self.sealed_rows(rows)
        inserted, known = self._insert_in(conn, stored, first)
        return _classified(stored, rows, first, inserted, known, self.open_body)

    def _insert_in(self, conn: Connection, rows: Sequence[EventRow], first: dict[str, int]
                   ) -> tuple[AbstractSet[str], dict[str, tuple[str, str, str]]]:
        """Insert each id's first row; (ids inserted, stored (hash, body) of the others)."""
        candidates = [rows[i] for i in first.values()]  # batch order = log order
        lock_for_append(conn)
        before = conn.execute(select(func.max(events_table.c.position))).scalar_one()
        result = conn.exec_driver_sql(self._insert_sql, candidates)
        if result.rowcount == len(candidates):  # the common case: nothing stored before
            watermarks.note(conn, candidates)
            return first.keys(), {}
        inserted = self._inserted_after(conn, before or 0)
        watermarks.note(conn, [row for row in candidates if row.event_id in inserted])
        return inserted, self._stored([e for e in first if e not in inserted], conn)

    def _inserted_after(self, conn: Connection, position: int) -> set[str]:
        """Ids of the events after ``position`` (this append's), read on the driver's cursor.

        A whole commit group's ids come back here whenever it held one repeat;
        SQLAlchemy's per-row result processing cost more than the reading.
        """
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            marker = placeholder(self.engine.dialect)
            cursor.execute(f"SELECT event_id FROM events WHERE position > {marker}", (position,))
            return {event_id for (event_id,) in cursor.fetchall()}
        finally:
            cursor.close()

    def stored_ids(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids the log holds (admission: a repeat is judged as one)."""
        with self.engine.connect() as conn:
            return set(self._stored(event_ids, conn))

    def _stored(self, event_ids: list[str], conn: Connection
                ) -> dict[str, tuple[str, str, str]]:
        """(content hash, stored body, patient id) of stored events, by id."""
        known: dict[str, tuple[str, str, str]] = {}
        for among_ids in chunked_in(conn, events_table.c.event_id, event_ids):
            found = conn.execute(
                select(events_table.c.event_id, events_table.c.content_hash,
                       events_table.c.body, events_table.c.patient_id)
                .where(among_ids))
            known.update({r.event_id: (r.content_hash, r.body, r.patient_id) for r in found})
        return known

    @property
    def _insert_sql(self) -> str:
        columns = EventRow._fields
        return (f"INSERT INTO events ({', '.join(columns)}) "
                f"VALUES ({', '.join([placeholder(self.engine.dialect)] * len(columns))}) "
                "ON CONFLICT (event_id) DO NOTHING")

    def dead_letter(self, letters: Iterable[DeadLetter]) -> int:
        """Store dead letters once each (see :class:`DeadLetterStore`)."""
        return self.letters.write(letters)

    # --- reading ---------------------------------------------------------------

    def read(self, after: int = 0) -> Iterator[StoredEvent]:
        """Every event in log order, from the position after ``after``."""
        query = (
            select(events_table.c.position, events_table.c.event_type,
                   events_table.c.schema_version, events_table.c.body,
                   events_table.c.patient_id)
            .where(events_table.c.position > after)
            .order_by(events_table.c.position)
        )
        opened = self.open_body
        with self.engine.connect() as conn:
            for position, event_type, version, body, patient_id in _streamed(conn, query):
                clear = opened(patient_id, body)
                if clear is not None:
                    yield StoredEvent(position, decode_stored_row(event_type, version, clear))

    def histories(self, patient_ids: Iterable[str] | None = None, *,
                  between: tuple[str, str] | None = None
                  ) -> Iterator[tuple[str, list[ClinicalEvent]]]:
        """Each patient's events (log order), one patient at a time; memory stays per-patient.

        ``between`` = (first, last) restricts to patient ids in that inclusive range.
        """
        columns = (events_table.c.patient_id, events_table.c.event_type,
                   events_table.c.schema_version, events_table.c.body)
        if between is not None:
            query = (
                select(*columns)
                .where(events_table.c.patient_id.between(*between))
                .order_by(events_table.c.patient_id, events_table.c.position)
            )
            yield from self._grouped(query)
            return
        if patient_ids is not None:
            wanted = sorted(set(patient_ids))
            for among_ids in chunked_in(self.engine, events_table.c.patient_id, wanted):
                query = (
                    select(*columns)
                    .where(among_ids)
                    .order_by(events_table.c.patient_id, events_table.c.position)
                )
                yield from self._grouped(query)
            return
        query = select(*columns).order_by(events_table.c.patient_id, events_table.c.position)
        yield from self._grouped(query)

    def _grouped(self, query: Select[Any]) -> Iterator[tuple[str, list[ClinicalEvent]]]:
        current: str | None = None
        batch: list[ClinicalEvent] = []
        opened = self.cipher.open  # once per stored event: no wrapper in between
        erased: str | None = None
        with self.engine.connect() as conn:
            for patient_id, event_type, version, body in _streamed(conn, query):
                if patient_id != current:
                    if current is not None and batch:
                        yield current, batch
                    current, batch = patient_id, []
                if patient_id == erased:
                    self.erased_rows += 1
                    continue
                try:
                    clear = opened(patient_id, body)
                except KeyDestroyed:  # an erased patient's rows are skipped, the patient too
                    erased = patient_id
                    self.erased_rows += 1
                    continue
                batch.append(decode_stored_row(event_type, version, clear))
        if current is not None and batch:
            yield current, batch

    def birth_years(self, patient_ids: Iterable[str]) -> dict[str, int]:
        """Birth year of each included patient among ``patient_ids`` (for date sanity checks)."""
        years: dict[str, int] = {}
        wanted = list(set(patient_ids))
        with self.engine.connect() as conn:
            for among_ids in chunked_in(conn, events_table.c.patient_id, wanted):
                rows = conn.execute(
                    select(events_table.c.event_type, events_table.c.schema_version,
                           events_table.c.body, events_table.c.patient_id)
                    .where(among_ids)
                    .where(events_table.c.event_type == PatientIncluded.EVENT_TYPE)
                    .order_by(events_table.c.position)
                )
                for event_type, version, body, patient_id in rows:
                    clear = self.open_body(patient_id, body)
                    if clear is None:
                        continue
                    event = decode_stored_row(event_type, version, clear)
                    assert isinstance(event, PatientIncluded)
                    years.setdefault(event.patient_id, event.payload.birth_year)
        return years

    def settled(self, on: date, patient_ids: Iterable[str] | None = None) -> set[str]:
        """Whose whole history lies on or before day ``on`` (:mod:`.watermarks`)."""
        return watermarks.settled(self.engine, on, patient_ids)

    def patient_ids(self) -> list[str]:
        """Every patient with an event, sorted."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(events_table.c.patient_id).distinct().order_by(events_table.c.patient_id)
            ).scalars())

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())

    def count_of(self, patient_id: str) -> int:
        """How many events of ``patient_id`` the log holds (sealed or not)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table).where(
                events_table.c.patient_id == patient_id)).scalar_one())

    def seal_clear_rows(self, batch: int = 5_000,
                        on_batch: Callable[[int], None] | None = None) -> int:
        """The migration of a log written before encryption: every clear body sealed in
        place (content hash keyed, clinical date replaced by its bound), in batches by
        position; returns how many rows were sealed.  Rows of erased patients stay as
        they are (their key is gone): erase them again after the migration."""
        cipher = self.cipher
        if not cipher.enabled:
            raise KeyDestroyed("no key store: nothing to seal with")
        t = events_table
        sealed = 0
        after = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(t.c.position, t.c.event_id, t.c.event_type, t.c.schema_version,
                           t.c.patient_id, t.c.occurred_on, t.c.recorded_at,
                           t.c.content_hash, t.c.body)
                    .where(t.c.position > after).order_by(t.c.position).limit(batch)).all()
                if not rows:
                    break
                after = rows[-1].position
                clear = [r for r in rows if not r.body.startswith("~")]
                erased = cipher.prepare({r.patient_id for r in clear})
                clear = [r for r in clear if r.patient_id not in erased]
                for r, new in zip(clear, self.sealed_rows(
                        [EventRow(*r[1:]) for r in clear]), strict=True):
                    conn.execute(update(t).where(t.c.position == r.position).values(
                        occurred_on=new.occurred_on, content_hash=new.content_hash,
                        body=new.body))
                sealed += len(clear)
            if on_batch is not None:
                on_batch(len(rows))
        watermarks.refill(self.engine)  # they held the clinical dates
        self.letters.seal_clear()
        return sealed

    def dead_letters(self) -> list[DeadLetter]:
        return self.letters.all()

    def last_position(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(events_table.c.position))).scalar_one()
        return int(value or 0)

def _first_rows(rows: Sequence[EventRow]) -> dict[str, int]:
    """event_id -> index of its first row in ``rows``."""
    first: dict[str, int] = {}
    for index, row in enumerate(rows):
        first.setdefault(row.event_id, index)
    return first


def _classified(rows: Sequence[EventRow], clear: Sequence[EventRow], first: dict[str, int],
                inserted: AbstractSet[str], known: dict[str, tuple[str, str, str]],
                opened: Callable[[str, str], bytes | None]) -> tuple[list[int], int, list[int]]:
    """(accepted indices, duplicate count, conflict indices) once the insert is done.

    ``rows`` are as stored (sealed), ``clear`` the same rows before sealing: equal
    keyed hashes are the same bytes; otherwise the clear bodies are compared.
    """
    accepted = [i for i in first.values() if rows[i].event_id in inserted]
    if len(accepted) == len(rows):
        return accepted, 0, []
    conflicts: list[int] = []
    duplicates = 0
    taken = set(accepted)
    for index, row in enumerate(rows):
        if index in taken:
            continue
        kept = known.get(row.event_id)
        if kept is None:  # a repeat of a row inserted just now
            kept_index = first[row.event_id]
            kept = (rows[kept_index].content_hash, clear[kept_index].body, row.patient_id)
        elif kept[0] != row.content_hash:
            kept_body = opened(kept[2], kept[1])
            kept = (kept[0], kept_body.decode() if kept_body is not None else "{}", kept[2])
        if kept[0] == row.content_hash or is_repeat(kept[0], kept[1], row.content_hash,
                                                    clear[index].body):
            duplicates += 1
        else:
            conflicts.append(index)
    return accepted, duplicates, conflicts


def _streamed(conn: Connection, query: Select[Any]) -> Iterator[Sequence[Any]]:
    """The rows of ``query``, streamed a batch at a time.

    SQLite: straight from the driver's cursor, over a memory-mapped file.  A
    rebuild reads the whole log, and SQLAlchemy's per-row result processing plus
    copying every page into SQLite's (large) page cache added ~70 % to the
    reading (1.7 µs per event on top of 2.3).  Elsewhere: server-side streaming.
    """
    if conn.dialect.name != "sqlite":
        result = conn.execution_options(stream_results=True, yield_per=_FETCH).execute(query)
        for rows in result.partitions():
            yield from rows
        return
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    # The log's queries bind plain strings and integers: no bind processing to apply.
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
    cursor = driver.execute(str(compiled), params)
    try:
        while rows := cursor.fetchmany(_FETCH):
            yield from rows
    finally:
        cursor.close()


def patients_after(engine: Engine, position: int) -> tuple[list[str], int]:
    """Patients with events after ``position``, and the log's last position.

    Called before every read of the embedded service, so the usual answer (nothing
    new) costs one lookup of the last position.  The ids are read from the range of
    positions and made distinct here: with ``SELECT DISTINCT`` SQLite scans the whole
    (patient_id, position) index instead (48 ms on a 1.2-million-event log).
    """
    with engine.connect() as conn:
        last = int(conn.execute(select(func.max(events_table.c.position))).scalar_one() or 0)
        if last <= position:
            return [], last
        ids = conn.execute(
            select(events_table.c.patient_id).where(events_table.c.position > position)
        ).scalars()
        return sorted(set(ids)), last
