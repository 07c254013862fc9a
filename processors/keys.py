"""Per-patient data keys, wrapped by a master key, in a key store of their own.

Crypto-shredding: every fact about a patient is stored encrypted with that
patient's **data key** (AES-256-GCM, :mod:`.sealing`), so destroying one key
row makes every copy of the patient's events unreadable -- in the SQL log, on
Kafka, in changelogs, staging, dead letters and every backup of them -- without
rewriting an immutable log.

* The **master key** (key-encryption key) wraps the data keys.  It comes from a
  provider (:class:`KeyEncryptionKey`, KMS-like: wrap and unwrap, never handing
  out its own bytes); :class:`FileMasterKey` ships, a 32-byte key in a file
  (``journey keys init``, mode 0600; ``JOURNEY_MASTER_KEY_FILE``).
* The **key store** (:class:`KeyStore`, SQLite beside the log or PostgreSQL) holds
  the wrapped data keys, a check value that tells a wrong master key at start,
  and a tombstone for every destroyed key: a destroyed key is never created again.
  Tombstones live in the key store *and* as erasure records beside the events
  (:mod:`.erasures`), so a key store restored from a backup taken before an
  erasure is put right by ``journey keys reconcile``.
* Dead letters of an unknown patient are sealed with a **dead-letter key** per
  calendar month (:func:`dead_letter_key_name`), destroyed once the retention
  period has passed (:meth:`KeyStore.expire_dead_letter_keys`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Protocol

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.sql import chunked_in, create_tables, utc_text

log = structlog.get_logger(__name__)

MASTER_KEY_ENV = "JOURNEY_MASTER_KEY_FILE"
KEYS_URL_ENV = "JOURNEY_KEYS_URL"
KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12
_CHECK_NAME = "#check"
_CHECK_VALUE = b"mbc-journey key store check v1"
DEAD_LETTER_PREFIX = "#dead-letters:"
# How long a dead letter of an unknown patient stays readable (to be fixed and sent
# again) before ``journey keys reconcile`` destroys its month's key: a year covers a
# study's slowest correction cycle; a data-protection officer may set less.
DEAD_LETTER_RETENTION_DAYS = 365

metadata = MetaData()

patient_keys_table = Table(
    "patient_keys",
    metadata,
    Column("name", String(80), primary_key=True),  # pseudonymous patient id, or #dead-letters:M
    Column("kek_id", String(32), nullable=False),  # which master key wraps it
    Column("wrapped", LargeBinary, nullable=False),
    Column("created_at", String(32), nullable=False),
)

destroyed_keys_table = Table(
    "destroyed_keys",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("destroyed_at", String(32), nullable=False),
)

key_check_table = Table(
    "key_store_check",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("kek_id", String(32), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),  # _CHECK_VALUE wrapped by the master key
)


class KeyEncryptionKey(Protocol):
    """A master key provider: wraps and unwraps data keys (a KMS would do it remotely)."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, name: str) -> bytes: ...

    def unwrap(self, wrapped: bytes, name: str) -> bytes: ...


class WrongMasterKey(ConfigurationError):
    """The master key does not open what it is asked to open."""


class FileMasterKey:
    """A 32-byte master key read from a file (base64 text, as ``journey keys init`` writes)."""

    def __init__(self, key: bytes, origin: str = "the master key") -> None:
        if len(key) != KEY_BYTES:
            raise ConfigurationError(f"{origin}: a master key is {KEY_BYTES} bytes of base64 text")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"mbcj-kek\x00" + key).hexdigest()[:16]
        self.origin = origin

    @classmethod
    def read(cls, path: Path) -> FileMasterKey:
        origin = f"{MASTER_KEY_ENV}={path}"
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            raise ConfigurationError(f"{origin}: no such file (create one with "
                                     "`journey keys init --output FILE`)") from None
        except OSError as exc:
            raise ConfigurationError(f"{origin}: cannot be read ({exc.strerror})") from None
        try:
            key = base64.b64decode(text, validate=True)
        except ValueError:
            raise ConfigurationError(f"{origin}: not a master key (base64 text)") from None
        return cls(key, origin)

    def wrap(self, data_key: bytes, name: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, name.encode())

    def unwrap(self, wrapped: bytes, name: str) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], name.encode())
        except InvalidTag:
            raise WrongMasterKey(f"{self.origin}: is not the master key these data keys "
                                 "were wrapped with") from None


def write_master_key(path: Path) -> FileMasterKey:
    """A new random master key in ``path`` (mode 0600); refuses to overwrite a file."""
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigurationError(f"{path}: exists already; a master key is never "
                                 "overwritten (rotate with `journey keys rotate`)") from None
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key).decode() + "\n")
    return FileMasterKey(key, f"{MASTER_KEY_ENV}={path}")


def dead_letter_key_name(on: date) -> str:
    """The key that seals dead letters of unknown patients received in ``on``'s month."""
    return f"{DEAD_LETTER_PREFIX}{on:%Y-%m}"


class KeyDestroyed(Exception):
    """The data key was destroyed (the patient was erased): the data cannot be opened."""


def _insert_ignore(dialect: str, table: Table):  # type: ignore[no-untyped-def]
    statement = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    return statement.on_conflict_do_nothing()


class KeyStore:
    """The wrapped data keys, on SQLite or PostgreSQL; unwrapped keys are cached in memory."""

    def __init__(self, engine: Engine, master: KeyEncryptionKey, *, url: str = "") -> None:
        self.engine = engine
        self.master = master
        self.url = url
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def create(self) -> KeyStore:
        """Create the tables; tell a wrong master key now, in one line, not at the first event."""
        create_tables(metadata, self.engine)
        with self.engine.begin() as conn:
            row = conn.execute(select(key_check_table)).first()
            if row is None:
                conn.execute(_insert_ignore(conn.dialect.name, key_check_table).values(
                    id=1, kek_id=self.master.key_id,
                    wrapped=self.master.wrap(_CHECK_VALUE, _CHECK_NAME)))
                return self
        try:
            opened = self.master.unwrap(bytes(row.wrapped), _CHECK_NAME)
        except WrongMasterKey:
            opened = b""
        if opened != _CHECK_VALUE:
            raise WrongMasterKey(
                f"{getattr(self.master, 'origin', 'the master key')} is not the master key of "
                f"the key store {self.url or ''} (it was made with key {row.kek_id}); "
                "use the master key it was created with".replace("  ", " "))
        return self

    # --- data keys --------------------------------------------------------------------------

    def keys_for(self, names: Iterable[str], *, create: bool) -> dict[str, bytes]:
        """The data keys of these names; with ``create``, new ones for names never seen.

        A destroyed key is absent from the answer, and never created again.
        """
        wanted = set(names)
        found = {name: self._keys[name] for name in wanted if name in self._keys}
        missing = sorted(wanted - found.keys())
        if not missing:
            return found
        with self._lock:
            stored = self._read(missing)
            if create:
                new = [name for name in missing if name not in stored]
                if new:
                    self._add(new)
                    stored.update(self._read(new))
            for name, wrapped in stored.items():
                key = self.master.unwrap(wrapped, name)
                self._keys[name] = found[name] = key
        return found

    def _read(self, names: list[str]) -> dict[str, bytes]:
        """Wrapped keys of these names (destroyed ones are simply not there)."""
        t = patient_keys_table
        wrapped: dict[str, bytes] = {}
        with self.engine.connect() as conn:
            for among in chunked_in(conn, t.c.name, names):
                wrapped.update((r.name, bytes(r.wrapped))
                               for r in conn.execute(select(t.c.name, t.c.wrapped).where(among)))
        return wrapped

    def _add(self, names: list[str]) -> None:
        """New keys for ``names``, except those with a tombstone; a racing creator wins."""
        now = utc_text(datetime.now().astimezone())
        with self.engine.begin() as conn:
            dead: set[str] = set()
            for among in chunked_in(conn, destroyed_keys_table.c.name, names):
                dead.update(conn.execute(
                    select(destroyed_keys_table.c.name).where(among)).scalars())
            rows = [{"name": name, "kek_id": self.master.key_id, "created_at": now,
                     "wrapped": self.master.wrap(secrets.token_bytes(KEY_BYTES), name)}
                    for name in names if name not in dead]
            if rows:
                conn.execute(_insert_ignore(conn.dialect.name, patient_keys_table), rows)
        self._checkpoint()

    def _checkpoint(self) -> None:
        """SQLite: new keys into the main file now, so a copy of the file alone (a backup
        taken while the engine runs) holds every key committed so far."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def destroyed(self, names: Iterable[str]) -> set[str]:
        """Which of these names have a tombstone."""
        t = destroyed_keys_table
        dead: set[str] = set()
        with self.engine.connect() as conn:
            for among in chunked_in(conn, t.c.name, sorted(set(names))):
                dead.update(conn.execute(select(t.c.name).where(among)).scalars())
        return dead

    def destroy(self, names: Iterable[str], at: datetime, *, tombstone: bool = True) -> int:
        """Destroy these keys for good (tombstone first); returns how many keys were removed.

        On SQLite the deleted row's bytes are overwritten (``secure_delete``) and the
        write-ahead log is truncated, so the key is not left behind in the file.
        Without ``tombstone`` (a replay's staging key) the name may get a new key later.
        """
        names = sorted(set(names))
        removed = 0
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA secure_delete = ON")
            for name in names:
                if tombstone:
                    conn.execute(_insert_ignore(conn.dialect.name, destroyed_keys_table)
                                 .values(name=name, destroyed_at=utc_text(at)))
                removed += conn.execute(
                    delete(patient_keys_table).where(patient_keys_table.c.name == name)
                ).rowcount
        with self._lock:
            for name in names:
                self._keys.pop(name, None)
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    def wrapped_keys(self) -> dict[str, bytes]:
        """Every live wrapped key by name (one query; unwrap with :meth:`unwrap`)."""
        t = patient_keys_table
        with self.engine.connect() as conn:
            return {r.name: bytes(r.wrapped)
                    for r in conn.execute(select(t.c.name, t.c.wrapped))}

    def unwrap(self, name: str, wrapped: bytes) -> bytes:
        """The data key of ``name`` from its wrapped form (cached)."""
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = self.master.unwrap(wrapped, name)
        return key

    def destroyed_names(self) -> set[str]:
        """Every name with a tombstone (erased patients, expired dead-letter months)."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(destroyed_keys_table.c.name)).scalars())

    def forget(self, names: Iterable[str]) -> None:
        """Drop cached keys (a worker told that a patient was erased elsewhere)."""
        with self._lock:
            for name in names:
                self._keys.pop(name, None)

    def expire_dead_letter_keys(self, before: date, at: datetime) -> list[str]:
        """Destroy the dead-letter keys of months before ``before``'s (retention passed)."""
        t = patient_keys_table
        with self.engine.connect() as conn:
            names = list(conn.execute(select(t.c.name).where(
                t.c.name.startswith(DEAD_LETTER_PREFIX, autoescape=True))).scalars())
        old = [n for n in names if n < dead_letter_key_name(before)]
        if old:
            self.destroy(old, at)
        return old

    def rotate(self, new_master: KeyEncryptionKey) -> int:
        """Re-wrap every data key with ``new_master``; the events are not touched."""
        t = patient_keys_table
        count = 0
        with self.engine.begin() as conn:
            rows = conn.execute(select(t.c.name, t.c.wrapped)).all()
            for name, wrapped in rows:
                key = self.master.unwrap(bytes(wrapped), name)
                conn.execute(update(t).where(t.c.name == name).values(
                    kek_id=new_master.key_id, wrapped=new_master.wrap(key, name)))
                count += 1
            conn.execute(delete(key_check_table))
            conn.execute(insert(key_check_table).values(
                id=1, kek_id=new_master.key_id,
                wrapped=new_master.wrap(_CHECK_VALUE, _CHECK_NAME)))
        self.master = new_master
        self._checkpoint()
        return count

    def count(self) -> tuple[int, int]:
        """(live keys, destroyed keys)."""
        with self.engine.connect() as conn:
            live = len(conn.execute(select(patient_keys_table.c.name)).all())
            dead = len(conn.execute(select(destroyed_keys_table.c.name)).all())
        return live, dead
