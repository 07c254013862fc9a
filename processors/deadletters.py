"""The dead-letter store: rejected input with its original bytes, the reason and its origin.

The original bytes are sealed (:mod:`.sealing`): with the patient's data key when
the line names a patient who has one, else with the dead-letter key of the month
it was received (destroyed once the retention period has passed).  A line refused
because its patient was erased is kept without its bytes.  The identity hash is
keyed too (a plain hash of a short line could be tested against guesses).

Nothing is lost: every refused line or record is kept here, exactly as received, so it
can be fixed and re-submitted.  A dead letter's identity is (origin, sha256 of the
bytes), so a rerun after a kill, or of the same file, stores each rejected line once.
Its text columns only describe it (reason, ids read best-effort): they never carry
U+0000, which PostgreSQL text cannot hold.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from mbcjourney.events.errors import InvalidEvent
from mbcjourney.processors.keys import DEAD_LETTER_PREFIX, KeyDestroyed, dead_letter_key_name
from mbcjourney.processors.sealing import Cipher, Unopenable
from mbcjourney.processors.sql import create_tables

ERASED_REASON = "patient_id: the patient was erased (consent withdrawn); payload not kept"
_HASH_KEY_NAME = DEAD_LETTER_PREFIX + "identity"
_NAMED = b"~k"  # sealed with a named key: b"~k" + name + b"\n" + sealed text


def sealed_original(cipher: Cipher, letter: DeadLetter) -> bytes:
    """A letter's original as kept (SQL store, dead-letter topic): sealed with the
    patient's key when the letter names a patient who has one, else with the month's
    dead-letter key; ``~k<name>\n`` in front says which."""
    if not letter.original or not cipher.enabled:
        return letter.original
    named = letter.patient_id or ""  # as the refused line says: anything, NUL included
    usable = bool(named) and named.isprintable() and not named.startswith("#")
    name = named if usable and cipher.has_key(named) \
        else dead_letter_key_name(letter.received_at.date())
    sealed = cipher.seal(name, letter.original)
    return _NAMED + name.encode() + b"\n" + sealed.encode()


def opened_original(cipher: Cipher, stored: bytes) -> bytes:
    """The original bytes of :func:`sealed_original`'s output; b"" once its key is gone."""
    if not stored.startswith(_NAMED):
        return stored
    name, _, sealed = stored[len(_NAMED):].partition(b"\n")
    try:
        return cipher.open(name.decode(), sealed)
    except (KeyDestroyed, Unopenable):
        return b""


class HasCipher(Protocol):
    @property
    def cipher(self) -> Cipher: ...

metadata = MetaData()

_Position = BigInteger().with_variant(Integer(), "sqlite")

dead_letters_table = Table(
    "dead_letters",
    metadata,
    Column("id", _Position, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("origin", String(300), nullable=False),  # file:line, topic/partition/offset, http
    Column("event_id", String(64)),
    Column("event_type", String(64)),
    Column("patient_id", String(64)),
    Column("reason", Text, nullable=False),  # field: reason; ... (no payload values)
    Column("original", LargeBinary, nullable=False),  # the bytes exactly as received
    # sha256 of ``original``: with ``origin`` the dead letter's identity, so a rerun
    # (after a kill, or of the same file) records each rejected line once.  Empty
    # (NULL) on rows stored before the key existed.
    Column("original_sha256", String(64)),
    Index("ux_dead_letters_origin_original", "origin", "original_sha256", unique=True),
)


@dataclass(frozen=True)
class DeadLetter:
    """Rejected input, kept with its original bytes so it can be fixed and re-submitted."""

    original: bytes
    reason: str
    origin: str
    received_at: datetime
    event_id: str | None = None
    event_type: str | None = None
    patient_id: str | None = None
    # A Kafka tombstone (a record without a value), as opposed to an empty value: both
    # have ``original == b""``; the dead-letter topic says which in a header.
    tombstone: bool = False

    @classmethod
    def of(cls, original: bytes, error: InvalidEvent, origin: str, received_at: datetime
           ) -> DeadLetter:
        """A dead letter for ``original``; ids are read from it best-effort, for routing."""
        ids: dict[str, str | None] = {"event_id": None, "event_type": None, "patient_id": None}
        try:
            data = orjson.loads(original)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            for key in ids:
                value = data.get(key)
                ids[key] = value[:64] if isinstance(value, str) else None
        reason = str(error)
        if reason == ERASED_REASON:
            original = b""
        return cls(original, reason, origin, received_at, event_id=ids["event_id"],
                   event_type=ids["event_type"], patient_id=ids["patient_id"])


class DeadLetterStore:
    """The dead-letter table on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine, keys: HasCipher | None = None) -> None:
        self.engine = engine
        self._keys = keys

    def _sealed(self, letter: DeadLetter) -> tuple[bytes, str]:
        """(stored bytes, identity hash) of a letter's original."""
        cipher = self._keys.cipher if self._keys is not None else None
        if cipher is None or not cipher.enabled:
            return letter.original, hashlib.sha256(letter.original).hexdigest()
        cipher.prepare([_HASH_KEY_NAME])
        identity = hmac.new(cipher.key_bytes(_HASH_KEY_NAME), letter.original,
                            hashlib.sha256).hexdigest()
        return sealed_original(cipher, letter), identity

    def _opened(self, stored: bytes) -> bytes:
        """The original bytes of a stored letter; b"" once its key is destroyed."""
        if self._keys is None:
            return stored
        return opened_original(self._keys.cipher, stored)

    def create(self) -> None:
        create_tables(metadata, self.engine)
        _add_dead_letter_key(self.engine)

    def write(self, letters: Iterable[DeadLetter]) -> int:
        """Store dead letters once each: one already stored (same origin, same bytes) is skipped.

        Returns how many were offered.
        """
        rows = []
        for d in letters:
            stored, identity = self._sealed(d)
            rows.append({
                "received_at": d.received_at, "origin": _text(d.origin[:300]),
                "event_id": _text(d.event_id), "event_type": _text(d.event_type),
                "patient_id": _text(d.patient_id), "reason": _text(d.reason),
                "original": stored, "original_sha256": identity,
            })
        if rows:
            with self.engine.begin() as conn:
                conn.execute(_insert_new_letters(conn.dialect.name), rows)
        return len(rows)

    def all(self) -> list[DeadLetter]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(dead_letters_table).order_by(dead_letters_table.c.id))
            return [
                DeadLetter(self._opened(bytes(r.original)), r.reason, r.origin, r.received_at,
                           r.event_id, r.event_type, r.patient_id)
                for r in rows
            ]

    def seal_clear(self) -> int:
        """Seal the originals kept in clear (a store from before encryption)."""
        t = dead_letters_table
        done = 0
        with self.engine.begin() as conn:
            for r in conn.execute(select(t)).all():
                original = bytes(r.original)
                if not original or original.startswith(_NAMED):
                    continue
                letter = DeadLetter(original, r.reason, r.origin, r.received_at, r.event_id,
                                    r.event_type, r.patient_id)
                stored, identity = self._sealed(letter)
                conn.execute(update(t).where(t.c.id == r.id).values(
                    original=stored, original_sha256=identity))
                done += 1
        return done

    def remove_patient(self, patient_id: str) -> int:
        """Delete an erased patient's dead letters (a work queue, not the immutable log)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            return int(conn.execute(dead_letters_table.delete().where(
                dead_letters_table.c.patient_id == patient_id)).rowcount)


def _text(value: str | None) -> str | None:
    """``value`` storable in any text column: PostgreSQL text cannot hold U+0000.

    A dead letter's text (reason, ids read best-effort from the input) only describes
    it; the original bytes, exact, are in a binary column.  Without this, one NUL in
    a rejected line's event id failed the whole batch's dead letters on PostgreSQL.
    """
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


def _insert_new_letters(dialect: str) -> Insert:
    """INSERT into dead_letters that skips a row whose (origin, sha256) is already stored."""
    if dialect == "postgresql":
        return pg_insert(dead_letters_table).on_conflict_do_nothing(
            index_elements=["origin", "original_sha256"])
    return sqlite_insert(dead_letters_table).on_conflict_do_nothing(
        index_elements=["origin", "original_sha256"])


def _add_dead_letter_key(engine: Engine) -> None:
    """Give a dead-letter table made before its idempotency key the column and unique index.

    Older rows keep an empty hash (the index allows any number of those); only new
    dead letters are deduplicated.  Safe to run by several processes at once.
    """
    inspector = inspect(engine)
    columns = {c["name"] for c in inspector.get_columns("dead_letters")}
    indexes = {i["name"] for i in inspector.get_indexes("dead_letters")}
    if "original_sha256" in columns and "ux_dead_letters_origin_original" in indexes:
        return  # the usual case: nothing to write, no lock to wait for
    try:
        _add_dead_letter_column_and_index(engine, columns)
    except (IntegrityError, ProgrammingError):  # PostgreSQL: another process, same moment
        _add_dead_letter_column_and_index(engine, {"original_sha256"})


def _add_dead_letter_column_and_index(engine: Engine, columns: AbstractSet[str]) -> None:
    with engine.begin() as conn:
        if "original_sha256" not in columns:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    "ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS original_sha256 "
                    "VARCHAR(64)")
            else:
                try:
                    conn.exec_driver_sql(
                        "ALTER TABLE dead_letters ADD COLUMN original_sha256 VARCHAR(64)")
                except OperationalError as exc:  # another process added it just now
                    if "duplicate column" not in str(exc.orig):
                        raise
        conn.exec_driver_sql(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_dead_letters_origin_original "
            "ON dead_letters (origin, original_sha256)")


