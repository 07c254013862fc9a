"""API tokens of the HTTP service: scoped, optionally limited to centres, stored as hashes.

A token is ``mbcj_<id>_<secret>``: the id finds the row, the secret proves the
holder.  Only the SHA-256 of the whole token is stored (a token is 256 random
bits, so a fast hash is enough; a password hash would only slow every request),
and it is compared in constant time.  The token itself is shown once, when it is
created, and never again: a lost token is revoked and replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Date, Engine, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.sql import create_tables, utc_text

metadata = MetaData()

tokens_table = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(16), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated
    Column("centres", Text, nullable=False),  # space-separated; empty: every centre
    Column("created_at", String(32), nullable=False),
    Column("expires_on", Date),  # last day the token is valid
    Column("revoked_at", String(32)),
)

PREFIX = "mbcj"


class Scope(StrEnum):
    """What a token may do (DESIGN section 11)."""

    EVENTS_WRITE = "events:write"  # source systems publish events
    PATIENTS_READ = "patients:read"  # coordinators read patients, overdue, alerts
    ALERTS_WRITE = "alerts:write"  # coordinators acknowledge and snooze alerts
    EXPORTS_READ = "exports:read"  # analysts read the pseudonymised tables
    ADMIN = "admin"  # tokens, dead letters, audit, metrics


@dataclass(frozen=True)
class Token:
    """A token as stored (never its secret)."""

    name: str
    scopes: frozenset[Scope]
    centres: frozenset[str]  # empty: every centre
    created_at: str
    expires_on: date | None
    revoked_at: str | None

    def allows_centre(self, centre: str | None) -> bool:
        return not self.centres or centre in self.centres

    def usable_on(self, today: date) -> bool:
        return self.revoked_at is None and (self.expires_on is None or today <= self.expires_on)


def secret_hash(secret: str) -> str:
    """What is stored of a random secret (a token, a page session's id): its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        create_tables(metadata, self.engine)

    def issue(self, name: str, scopes: Iterable[Scope], *, centres: Iterable[str] = (),
              expires_on: date | None = None, now: datetime) -> tuple[Token, str]:
        """Store a new token named ``name``; returns it with its secret (shown once)."""
        scope_set = frozenset(Scope(s) for s in scopes)
        if not scope_set:
            raise ConfigurationError("a token needs at least one --scope")
        if not name.strip() or len(name) > 100:
            raise ConfigurationError("--name must be 1 to 100 characters")
        token_id = secrets.token_hex(8)
        secret = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        centre_set = frozenset(c.strip() for c in centres if c.strip())
        created = utc_text(now)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(tokens_table).values(
                    token_id=token_id, name=name, token_hash=secret_hash(secret),
                    scopes=" ".join(sorted(s.value for s in scope_set)),
                    centres=" ".join(sorted(centre_set)), created_at=created,
                    expires_on=expires_on, revoked_at=None))
        except IntegrityError:
            raise ConfigurationError(f"a token named {name!r} exists already "
                                     "(revoke it, or choose another --name)") from None
        return Token(name, scope_set, centre_set, created, expires_on, None), secret

    def revoke(self, name: str, *, now: datetime) -> bool:
        """Revoke the token ``name``; False when there is no such unrevoked token."""
        t = tokens_table
        with self.engine.begin() as conn:
            done = conn.execute(update(t).where((t.c.name == name) & t.c.revoked_at.is_(None))
                                .values(revoked_at=utc_text(now)))
        return bool(done.rowcount)

    def list(self) -> list[Token]:
        t = tokens_table
        with self.engine.connect() as conn:
            return [_token(row) for row in conn.execute(select(t).order_by(t.c.name))]

    def verify(self, presented: str, today: date) -> Token | None:
        """The usable token ``presented`` is, or None (unknown, wrong secret, expired, revoked)."""
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 16:
            return None
        t = tokens_table
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.token_id == parts[1])).first()
        if row is None or not hmac.compare_digest(row.token_hash, secret_hash(presented)):
            return None
        token = _token(row)
        return token if token.usable_on(today) else None

    def usable(self, name: str, today: date) -> Token | None:
        """The token named ``name`` if it is still usable (a page session re-checks it)."""
        t = tokens_table
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.name == name)).first()
        token = _token(row) if row is not None else None
        return token if token is not None and token.usable_on(today) else None


def _token(row: object) -> Token:
    scopes = frozenset(Scope(s) for s in row.scopes.split())  # type: ignore[attr-defined]
    centres = frozenset(row.centres.split())  # type: ignore[attr-defined]
    return Token(row.name, scopes, centres, row.created_at,  # type: ignore[attr-defined]
                 row.expires_on, row.revoked_at)  # type: ignore[attr-defined]
