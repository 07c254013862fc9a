"""Event sources that replay can fold: the embedded SQLite log, a Kafka topic, a JSON Lines file.

Why two shapes: projections fold one patient's whole history, so replay needs
events grouped per patient.

* The SQL log is indexed by patient: :class:`SqliteLogSource` hands out each
  patient's events directly, in patient-id order, and a replay checkpoints the
  last patient it completed.  It opens the file read-only.
* A Kafka topic and a JSON Lines file are in arrival order:
  :class:`KafkaSource` and :class:`JsonlSource` hand out raw records in batches,
  each with the position to resume from; replay spills them into a staging
  table and folds them per patient from there, so memory never grows with the
  number of events.

Every source is read up to a **snapshot** taken when a build starts (the log's
last position, the topic's end offsets, the file's size), so a resumed build
reads exactly what the interrupted one would have, whatever arrived since.

The Kafka topic is read with :class:`~mbcjourney.processors.kafkaread.TopicReader`,
which never joins a consumer group (``group_id=None``, partitions assigned by
hand, nothing committed): live workers and their committed offsets are undisturbed.

Use :func:`open_source` to get one from a ``--source`` string.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import chain, groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

import structlog
from sqlalchemy.engine import make_url

from mbcjourney.events import ClinicalEvent
from mbcjourney.events.codec import decode_stored_row
from mbcjourney.events.errors import ConfigurationError, InvalidEvent, ServiceUnavailable
from mbcjourney.processors.kafkaread import Chunk, RangeDeleted, TopicReader
from mbcjourney.processors.keyring import key_store
from mbcjourney.processors.keys import KeyDestroyed
from mbcjourney.processors.sealing import Cipher, Sealer, Unopenable
from mbcjourney.processors.sql import utc_text as _utc_text

log = structlog.get_logger(__name__)

Positions = dict[str, int]  # where to resume: {"<partition>": next offset} or {"offset", "line"}
Snapshot = dict[str, Any]  # JSON-able: what "the whole source" means for one build

# Why a stored body that does not open is not folded (tampered with, or another key store's).
UNOPENABLE_REASON = "$: sealed, and does not open with its patient's key"
STAGE_BATCH = 20_000  # records per yielded batch
_SQL_FETCH = 5_000


class RawRecord(NamedTuple):
    """One record as it arrived: bytes, where it came from, and when it was received.

    A named tuple, not a frozen dataclass: one is built per record read, and a frozen
    dataclass costs several times more to construct.
    """

    partition: int
    seq: int  # Kafka offset, or JSON Lines line number
    received_us: int  # epoch microseconds (UTC): fills a missing recorded_at, deterministically
    raw: bytes | None  # None: a Kafka tombstone
    key: str | None = None  # the Kafka key: the patient id, checked against the event later


@dataclass
class PatientEvents:
    """One patient's decodable events from a patient-ordered source, and what was not."""

    patient_id: str
    events: list[ClinicalEvent]
    read: int
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    erased: bool = False  # the patient was erased: ``events`` is empty, ``read`` counts the rest


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def received_at(us: int) -> datetime:
    """The instant of ``us`` epoch microseconds, exactly (no float rounding)."""
    return _EPOCH + timedelta(microseconds=us)


def epoch_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class ArrivalSource(Protocol):
    """A source in arrival order (Kafka, JSON Lines): replay stages it, then folds it."""

    uri: str

    def snapshot(self) -> Snapshot: ...
    def start(self, snapshot: Snapshot) -> Positions: ...
    def remaining(self, snapshot: Snapshot, positions: Positions) -> int | None: ...
    def read(self, snapshot: Snapshot, positions: Positions
             ) -> Iterator[tuple[list[RawRecord], Positions]]: ...


# --- the embedded SQLite log ------------------------------------------------------------------


class SqliteLogSource:
    """The embedded event log (``sqlite:///PATH``), opened read-only, read patient by patient."""

    def __init__(self, path: Path, cipher: Cipher | None = None) -> None:
        self.path = path.resolve()
        self.uri = f"sqlite:///{self.path}"
        self._cipher = cipher
        if not self.path.is_file():
            raise ConfigurationError(f"--source {self.uri}: no such file")
        with self._connect() as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone()
        if found is None:
            raise ConfigurationError(f"--source {self.uri}: not an event log (no events table)")

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(f"file:{quote(str(self.path))}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"cannot open {self.uri} read-only: {exc}") from None
        conn.execute("PRAGMA query_only = ON")
        return conn

    @property
    def cipher(self) -> Cipher:
        """The log's sealer (its key store beside it, or as configured)."""
        if self._cipher is None:
            self._cipher = Sealer(key_store(self.uri))
        return self._cipher

    def snapshot(self) -> Snapshot:
        with self._connect() as conn:
            last = conn.execute("SELECT MAX(position) FROM events").fetchone()[0]
        return {"last_position": int(last or 0)}

    def _where(self, snapshot: Snapshot, after: str, known_at: datetime | None
               ) -> tuple[str, list[object]]:
        sql = "WHERE patient_id > ? AND position <= ?"
        params: list[object] = [after, snapshot["last_position"]]
        if known_at is not None:  # the same test as build_history's, done by the index scan
            sql += " AND recorded_at <= ?"
            params.append(_utc_text(known_at))
        return sql, params

    def remaining(self, snapshot: Snapshot, after: str, known_at: datetime | None) -> int:
        where, params = self._where(snapshot, after, known_at)
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM events {where}", params).fetchone()[0])

    def histories(self, snapshot: Snapshot, after: str, known_at: datetime | None = None
                  ) -> Generator[PatientEvents, None, None]:
        """Each patient after ``after`` (by id), events in log order; one patient in memory.

        Rows are fetched in blocks (SQLite's work and Python's, each in one stretch, run
        faster than interleaved row by row), grouped by ``itertools.groupby`` and decoded
        in a tight loop with local names: this loop runs once per stored event.
        """
        where, params = self._where(snapshot, after, known_at)
        conn = self._connect()
        try:
            cursor = conn.execute(
                "SELECT patient_id, event_type, schema_version, body FROM events "
                f"{where} ORDER BY patient_id, position", params)
            decode = decode_stored_row
            opened = self.cipher.open
            blocks = iter(partial(cursor.fetchmany, _SQL_FETCH), [])
            for patient_id, rows in groupby(chain.from_iterable(blocks), key=itemgetter(0)):
                events: list[ClinicalEvent] = []
                append = events.append
                rejected: Counter[str] = Counter()
                read = 0
                erased = False
                for _pid, event_type, version, body in rows:
                    read += 1
                    if erased:
                        continue
                    try:
                        append(decode(event_type, version, opened(patient_id, body)))
                    except KeyDestroyed:
                        erased = True
                    except Unopenable:
                        rejected[UNOPENABLE_REASON] += 1
                    except InvalidEvent as error:
                        rejected[error.reason_code] += 1
                if erased:
                    yield PatientEvents(patient_id, [], read, Counter(), erased=True)
                else:
                    yield PatientEvents(patient_id, events, read, rejected)
        finally:
            conn.close()


# --- a JSON Lines file -------------------------------------------------------------------------


class JsonlSource:
    """A JSON Lines file in the wire format; ``received`` stamps lines without recorded_at."""

    def __init__(self, path: Path, received: datetime | None = None) -> None:
        self.path = path.resolve()
        self.uri = str(self.path)
        if not self.path.is_file():
            raise ConfigurationError(f"--source {path}: no such file")
        stat = self.path.stat()
        # A line without recorded_at is stamped with the file's modification time unless told
        # otherwise, so that replaying the same file always gives the same tables.
        self.received = received or datetime.fromtimestamp(stat.st_mtime, tz=UTC)

    def snapshot(self) -> Snapshot:
        stat = self.path.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def start(self, snapshot: Snapshot) -> Positions:
        return {"offset": 0, "line": 0}

    def _check(self, snapshot: Snapshot) -> None:
        stat = self.path.stat()
        if stat.st_size < snapshot["size"] or stat.st_mtime_ns != snapshot["mtime_ns"]:
            raise ConfigurationError(
                f"{self.path} changed since this build started; drop the unfinished build "
                "(journey projections drop NAME VERSION) and replay again")

    def remaining(self, snapshot: Snapshot, positions: Positions) -> int:
        count = 0
        with self.path.open("rb") as f:
            f.seek(positions["offset"])
            left = snapshot["size"] - positions["offset"]
            while left > 0:
                chunk = f.read(min(1 << 20, left))
                if not chunk:
                    break
                left -= len(chunk)
                count += chunk.count(b"\n")
        return count

    def read(self, snapshot: Snapshot, positions: Positions
             ) -> Iterator[tuple[list[RawRecord], Positions]]:
        self._check(snapshot)
        stamp = epoch_us(self.received)
        offset, number, end = positions["offset"], positions["line"], snapshot["size"]
        batch: list[RawRecord] = []
        with self.path.open("rb") as f:
            f.seek(offset)
            while offset < end:
                line = f.readline()
                if not line:
                    break
                if offset + len(line) > end:  # a line being appended after the snapshot
                    break
                offset += len(line)
                number += 1
                stripped = line.strip()
                if stripped:
                    batch.append(RawRecord(0, number, stamp, stripped))
                if len(batch) >= STAGE_BATCH:
                    yield batch, {"offset": offset, "line": number}
                    batch = []
        yield batch, {"offset": offset, "line": number}


# --- a Kafka topic --------------------------------------------------------------------------------


class KafkaSource:
    """A topic, from the beginning to the end offsets of the snapshot; joins no consumer group.

    Read with :class:`~mbcjourney.processors.kafkaread.TopicReader` (aiokafka), driven
    from an event loop of its own: replay is synchronous.
    """

    def __init__(self, bootstrap: str, topic: str, *, check_crcs: bool = True) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.uri = f"kafka://{bootstrap}/{topic}"
        self.check_crcs = check_crcs

    def _reader(self) -> TopicReader:
        return TopicReader(self.bootstrap, self.topic, client_id="journey-replay",
                           check_crcs=self.check_crcs)

    async def _partitions(self, reader: TopicReader) -> list[int]:
        partitions = await reader.partitions()
        if not partitions:
            raise ConfigurationError(f"--source {self.uri}: no such topic")
        return partitions

    def snapshot(self) -> Snapshot:
        async def ends() -> dict[int, int]:
            async with self._reader() as reader:
                return await reader.end_offsets(await self._partitions(reader))

        return {"end_offsets": {str(p): end for p, end in asyncio.run(ends()).items()}}

    def start(self, snapshot: Snapshot) -> Positions:
        async def begins() -> dict[int, int]:
            async with self._reader() as reader:
                return await reader.beginning_offsets(await self._partitions(reader))

        return {str(p): offset for p, offset in asyncio.run(begins()).items()
                if str(p) in snapshot["end_offsets"]}

    def remaining(self, snapshot: Snapshot, positions: Positions) -> int:
        ends: dict[str, int] = snapshot["end_offsets"]
        return sum(max(0, end - positions.get(p, end)) for p, end in ends.items())

    def read(self, snapshot: Snapshot, positions: Positions
             ) -> Iterator[tuple[list[RawRecord], Positions]]:
        """Batches of about ``STAGE_BATCH`` records, each with where every partition resumes.

        The reader runs on a private event loop, one step per batch: while replay
        stages a batch the loop is still, and the next fetch waits on the socket.
        (Fetching a batch ahead in a thread measured no faster and cost more CPU:
        both threads want the GIL.)
        """
        ends: dict[str, int] = snapshot["end_offsets"]
        loop = asyncio.new_event_loop()
        reader = self._reader()
        try:
            loop.run_until_complete(reader.start())
            begins = loop.run_until_complete(reader.beginning_offsets([int(p) for p in ends]))
            ranges = {int(p): (positions.get(p, begins[int(p)]), end) for p, end in ends.items()}
            log.info("replay.kafka.assigned", topic=self.topic, partitions=len(ends),
                     records=sum(max(0, end - start) for start, end in ranges.values()))
            batches = reader.read(ranges, batch=STAGE_BATCH)
            try:
                while True:
                    try:
                        chunks, at = loop.run_until_complete(anext(batches))
                    except StopAsyncIteration:
                        break
                    yield _raw_records(chunks), {str(p): offset for p, offset in at.items()}
            except RangeDeleted as deleted:
                raise ConfigurationError(
                    f"{self.uri} partition {deleted.partition}: records from offset "
                    f"{deleted.start} were deleted (retention) since this build started; "
                    "drop it and replay") from None
            finally:
                loop.run_until_complete(batches.aclose())
        finally:
            loop.run_until_complete(reader.close())
            loop.close()


def _raw_records(chunks: list[Chunk]) -> list[RawRecord]:
    """aiokafka records as replay stages them (a tombstone's value stays None: admission
    refuses it with its own reason).

    This runs once per record read: keys are decoded inline, and a chunk holding a
    key that is not UTF-8 (checked against the event later) goes the slow way.
    """
    batch: list[RawRecord] = []
    extend = batch.extend
    for partition, records in chunks:
        try:
            extend([RawRecord(partition, r.offset, max(r.timestamp, 0) * 1000, r.value,
                              None if r.key is None else r.key.decode()) for r in records])
        except UnicodeDecodeError:
            extend([RawRecord(partition, r.offset, max(r.timestamp, 0) * 1000, r.value,
                              _key(r.key)) for r in records])
    return batch


def _key(raw: bytes | None) -> str | None:
    # As the worker reads a key (admission compares it with the event's patient id):
    # an empty key is "", a key that is not UTF-8 keeps its replacement characters.
    return None if raw is None else raw.decode(errors="replace")


def open_source(spec: str, *, received: datetime | None = None
                ) -> SqliteLogSource | KafkaSource | JsonlSource:
    """``kafka://HOST:PORT[,HOST:PORT]/TOPIC``, ``sqlite:///PATH`` or a JSON Lines file path."""
    if spec.startswith("kafka://"):
        rest = spec.removeprefix("kafka://")
        bootstrap, _, topic = rest.partition("/")
        if not bootstrap or not topic or "/" in topic:
            raise ConfigurationError(f"--source {spec!r}: expected kafka://HOST:PORT/TOPIC")
        return KafkaSource(bootstrap, topic)
    if spec.startswith("sqlite:"):
        database = make_url(spec).database if spec.startswith("sqlite:///") else None
        if not database or database == ":memory:":
            raise ConfigurationError(f"--source {spec!r}: expected sqlite:///PATH")
        return SqliteLogSource(Path(database))
    if "://" in spec:
        raise ConfigurationError(
            f"--source {spec!r}: expected kafka://HOST:PORT/TOPIC, sqlite:///PATH or a "
            "JSON Lines file")
    return JsonlSource(Path(spec), received)
