"""Sealing: a patient's event bytes encrypted with that patient's data key, and opened again.

One sealed form for every store -- the SQL log's ``body``, Kafka values, the
workers' changelog, replay staging, dead letters: the text ``~1`` followed by
base64 of (12-byte nonce, AES-256-GCM ciphertext and tag) of the bytes as
admitted.  What routing, arrival order and idempotency need (event id, type,
version, patient id, ``recorded_at``) is kept in clear *beside* it (columns,
the Kafka key and headers); everything else, the clinical date and the source
reference included, is inside.  A body that starts with ``{`` is clear JSON,
from before encryption (or a store built without it, e.g. a benchmark's
baseline); it reads as before.

Duplicate and conflict detection compares a **keyed** hash of the clear bytes
(BLAKE2b keyed with the data key): equal hashes mean equal bytes, and without
the key the hash says nothing (a plain hash would let anyone test guesses of a
birth year or a date).  Once a key is destroyed, the patient's ciphertexts and
hashes are noise.
"""

from __future__ import annotations

import base64
import hashlib
import os
from binascii import a2b_base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mbcjourney.processors.keys import KeyDestroyed, KeyStore

SEALED_PREFIX = "~1"
_SEALED_BYTES = SEALED_PREFIX.encode()
_NONCE_BYTES = 12
_HASH_PERSON = b"mbcj-content"


class Unopenable(ValueError):
    """Sealed text that is not ours or was tampered with (never shows the bytes)."""


def is_sealed(body: str | bytes) -> bool:
    if isinstance(body, str):
        return body.startswith(SEALED_PREFIX)
    return body.startswith(_SEALED_BYTES)


@dataclass
class _PatientKey:
    aead: AESGCM
    hash_key: bytes


def _patient_key(key: bytes) -> _PatientKey:
    return _PatientKey(AESGCM(key), hashlib.blake2b(key, digest_size=32,
                                                    person=b"mbcj-hashkey").digest())


@dataclass
class Sealer:
    """Seals and opens bytes by patient, with the keys of ``keys`` (cached, unwrapped)."""

    keys: KeyStore
    _open: dict[str, _PatientKey] = field(default_factory=dict)
    _wrapped: dict[str, bytes] | None = None  # every live wrapped key, fetched once

    enabled = True

    def prepare(self, patient_ids: Iterable[str]) -> set[str]:
        """Make sure these patients have keys (created when new); returns those erased."""
        wanted = set(patient_ids) - self._open.keys()
        if not wanted:
            return set()
        found = self.keys.keys_for(wanted, create=True)
        for name, key in found.items():
            self._open[name] = _patient_key(key)
        return wanted - found.keys()

    def _key(self, patient_id: str, *, create: bool) -> _PatientKey:
        key = self._open.get(patient_id)
        if key is None:
            if create:
                self.prepare([patient_id])
            else:
                found = self._stored_key(patient_id)
                if found is not None:
                    self._open[patient_id] = _patient_key(found)
            key = self._open.get(patient_id)
            if key is None:
                if self.keys.destroyed([patient_id]):
                    raise KeyDestroyed("the patient was erased")
                raise Unopenable("no data key for this patient in this key store "
                                 "(is it the deployment's? see --keys)")
        return key

    def _stored_key(self, name: str) -> bytes | None:
        """A live key, for reading: every wrapped key is fetched in one query on the first
        miss (a query per patient cost 2 ms each, most of a rebuild's time), then each is
        unwrapped when first needed; a key made since is looked up on its own."""
        if self._wrapped is None:
            self._wrapped = self.keys.wrapped_keys()
        wrapped = self._wrapped.pop(name, None)
        if wrapped is not None:
            return self.keys.unwrap(name, wrapped)
        return self.keys.keys_for([name], create=False).get(name)

    def seal(self, patient_id: str, body: bytes) -> str:
        """``body`` sealed with the patient's key (created on first use)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._key(patient_id, create=True).aead.encrypt(nonce, body, None)
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, patient_id: str, body: str | bytes) -> bytes:
        """The clear bytes of a sealed ``body``; clear JSON as it is.

        Raises :class:`KeyDestroyed` for an erased patient, :class:`Unopenable` for
        text that does not open with the patient's key.  Runs once per event read:
        kept to one dictionary lookup, one base64 decode and one AEAD call.
        """
        if body[:2] != (SEALED_PREFIX if type(body) is str else _SEALED_BYTES):
            return body.encode() if isinstance(body, str) else body
        key = self._open.get(patient_id) or self._key(patient_id, create=False)
        try:
            raw = memoryview(a2b_base64(body[2:], strict_mode=True))
            return key.aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None)
        except (ValueError, InvalidTag):
            raise Unopenable("a sealed value that does not open with its patient's key") from None

    def content_hash(self, patient_id: str, body: bytes) -> str:
        """A keyed fingerprint of clear bytes: equal bytes, equal hash; noise without the key."""
        key = self._key(patient_id, create=True).hash_key
        return hashlib.blake2b(body, key=key, digest_size=16, person=_HASH_PERSON).hexdigest()

    def has_key(self, name: str) -> bool:
        """Whether ``name`` has a live key (never creates one)."""
        try:
            self._key(name, create=False)
        except (KeyDestroyed, Unopenable):
            return False
        return True

    def key_bytes(self, name: str) -> bytes:
        """A derived secret of ``name``'s key, for keyed hashes of other stores."""
        return self._key(name, create=True).hash_key

    def forget(self, patient_ids: Iterable[str]) -> None:
        """Drop the cached keys of erased patients, here and in the key store's cache."""
        ids = list(patient_ids)
        for patient_id in ids:
            self._open.pop(patient_id, None)
            if self._wrapped is not None:
                self._wrapped.pop(patient_id, None)
        self.keys.forget(ids)

    def erased_names(self) -> set[str]:
        """Every patient (and dead-letter month) whose key was destroyed."""
        return self.keys.destroyed_names()

    def discard(self, name: str) -> None:
        """Destroy a working key (a replay's staging key) without a tombstone."""
        self._open.pop(name, None)
        if self._wrapped is not None:
            self._wrapped.pop(name, None)
        self.keys.destroy([name], datetime.now().astimezone(), tombstone=False)


class PlainText:
    """No encryption: what a store built before encryption, or a benchmark's baseline, uses."""

    enabled = False

    def prepare(self, patient_ids: Iterable[str]) -> set[str]:
        return set()

    def seal(self, patient_id: str, body: bytes) -> str:
        return body.decode()

    def open(self, patient_id: str, body: str | bytes) -> bytes:
        if is_sealed(body):
            raise Unopenable("a sealed value, and no key store to open it with")
        return body.encode() if isinstance(body, str) else body

    def content_hash(self, patient_id: str, body: bytes) -> str:
        return hashlib.blake2b(body, digest_size=16).hexdigest()

    def has_key(self, name: str) -> bool:
        return False

    def key_bytes(self, name: str) -> bytes:
        return b""

    def forget(self, patient_ids: Iterable[str]) -> None:
        return None

    def erased_names(self) -> set[str]:
        return set()

    def discard(self, name: str) -> None:
        return None


Cipher = Sealer | PlainText
