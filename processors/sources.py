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

The Kafka consumer never joins a consumer group (``group_id=None``, partitions
assigned by hand, nothing committed): live workers and their committed offsets
are undisturbed.

Use :func:`open_source` to get one from a ``--source`` string.
"""

from __future__ import annotations

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

from mbcjourney.errors import ConfigurationError, InvalidEvent, ServiceUnavailable
from mbcjourney.events import ClinicalEvent
from mbcjourney.events.codec import decode_stored_row
from mbcjourney.processors.kafkaio import connect
from mbcjourney.processors.sql import utc_text as _utc_text

log = structlog.get_logger(__name__)

Positions = dict[str, int]  # where to resume: {"<partition>": next offset} or {"offset", "line"}
Snapshot = dict[str, Any]  # JSON-able: what "the whole source" means for one build

STAGE_BATCH = 20_000  # records per yielded batch
KAFKA_IDLE_TIMEOUT_S = 60.0  # no record for this long while some are still due: give up
_SQL_FETCH = 5_000


class RawRecord(NamedTuple):
    """One record as it arrived: bytes, where it came from, and when it was received.

    A named tuple, not a frozen dataclass: one is built per record read, and a frozen
    dataclass costs several times more to construct.
    """

    partition: int
    seq: int  # Kafka offset, or JSON Lines line number
    received_us: int  # epoch microseconds (UTC): fills a missing recorded_at, deterministically
    raw: bytes
    key: str | None = None  # the Kafka key: the patient id, checked against the event later


@dataclass
class PatientEvents:
    """One patient's decodable events from a patient-ordered source, and what was not."""

    patient_id: str
    events: list[ClinicalEvent]
    read: int
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0


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

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.uri = f"sqlite:///{self.path}"
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
            blocks = iter(partial(cursor.fetchmany, _SQL_FETCH), [])
            for patient_id, rows in groupby(chain.from_iterable(blocks), key=itemgetter(0)):
                events: list[ClinicalEvent] = []
                append = events.append
                rejected: Counter[str] = Counter()
                read = 0
                for _pid, event_type, version, body in rows:
                    read += 1
                    try:
                        append(decode(event_type, version, body))
                    except InvalidEvent as error:
                        rejected[error.reason_code] += 1
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
    """A topic, from the beginning to the end offsets of the snapshot; joins no consumer group."""

    def __init__(self, bootstrap: str, topic: str, *, check_crcs: bool = True) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.uri = f"kafka://{bootstrap}/{topic}"
        self.check_crcs = check_crcs

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer

        return connect(
            KafkaConsumer, self.bootstrap,
            group_id=None,  # no group: nothing joined, nothing rebalanced, nothing committed
            enable_auto_commit=False,
            client_id="journey-replay",
            auto_offset_reset="earliest",
            allow_auto_create_topics=False,  # a typo must not create a topic
            check_crcs=self.check_crcs,
            max_partition_fetch_bytes=1 << 20,
            fetch_max_bytes=8 << 20,
        )

    def _partitions(self, consumer: Any) -> list[Any]:
        from kafka import TopicPartition

        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise ConfigurationError(f"--source {self.uri}: no such topic")
        return [TopicPartition(self.topic, p) for p in sorted(partitions)]

    def snapshot(self) -> Snapshot:
        consumer = self._consumer()
        try:
            ends = consumer.end_offsets(self._partitions(consumer))
        finally:
            consumer.close()
        return {"end_offsets": {str(tp.partition): int(end) for tp, end in ends.items()}}

    def start(self, snapshot: Snapshot) -> Positions:
        consumer = self._consumer()
        try:
            begins = consumer.beginning_offsets(self._partitions(consumer))
        finally:
            consumer.close()
        return {str(tp.partition): int(offset) for tp, offset in begins.items()
                if str(tp.partition) in snapshot["end_offsets"]}

    def remaining(self, snapshot: Snapshot, positions: Positions) -> int:
        ends: dict[str, int] = snapshot["end_offsets"]
        return sum(max(0, end - positions.get(p, end)) for p, end in ends.items())

    def read(self, snapshot: Snapshot, positions: Positions
             ) -> Iterator[tuple[list[RawRecord], Positions]]:
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        ends = {TopicPartition(self.topic, int(p)): end
                for p, end in snapshot["end_offsets"].items()}
        consumer = self._consumer()
        try:
            consumer.assign(list(ends))
            begins = consumer.beginning_offsets(list(ends))
            at = dict(positions)
            due: dict[Any, int] = {}
            for tp, end in ends.items():
                start = at.get(str(tp.partition), begins[tp])
                if start < begins[tp]:
                    raise ConfigurationError(
                        f"{self.uri} partition {tp.partition}: records from offset {start} "
                        f"were deleted (retention) since this build started; drop it and replay")
                if start < end:
                    consumer.seek(tp, start)
                    due[tp] = end
            log.info("replay.kafka.assigned", topic=self.topic, partitions=len(ends),
                     records=sum(e - at.get(str(tp.partition), begins[tp])
                                 for tp, e in due.items()))
            consumer.pause(*[tp for tp in ends if tp not in due])
            batch: list[RawRecord] = []
            idle_since: datetime | None = None
            while due:
                polled = consumer.poll(timeout_ms=1000, max_records=STAGE_BATCH)
                if not polled:
                    now = datetime.now(UTC)
                    idle_since = idle_since or now
                    if (now - idle_since).total_seconds() > KAFKA_IDLE_TIMEOUT_S:
                        raise ServiceUnavailable(
                            f"{self.uri}: no record for {KAFKA_IDLE_TIMEOUT_S:.0f} s while "
                            f"{sum(due.values())} offsets are still due")
                    continue
                idle_since = None
                for tp, records in polled.items():
                    end = due.get(tp)
                    if end is None:
                        continue
                    partition, append = tp.partition, batch.append
                    for r in records:
                        if r.offset >= end:
                            break
                        stamp = max(int(r.timestamp), 0) * 1000
                        append(RawRecord(partition, r.offset, stamp, r.value or b"", _key(r.key)))
                    position = min(int(consumer.position(tp)), end)
                    at[str(tp.partition)] = position
                    if position >= end:
                        consumer.pause(tp)
                        del due[tp]
                if len(batch) >= STAGE_BATCH or not due:
                    yield batch, dict(at)
                    batch = []
            if batch:
                yield batch, dict(at)
        except KafkaError as exc:
            raise ServiceUnavailable(f"{self.uri}: {exc}") from None
        finally:
            consumer.close(autocommit=False)


def _key(raw: bytes | None) -> str | None:
    try:
        return raw.decode() if raw else None
    except UnicodeDecodeError:
        return None


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
