"""Sign-in sessions of the coordinators' pages, kept on the server.

A browser holds a random session id (256 bits) in an HttpOnly cookie; the table
holds only its SHA-256, the name of the token that opened it, a CSRF secret for
the session's forms and its expiry.  A stolen table therefore opens nothing, and
ending a session is deleting its row.  The token itself is not kept: each
request re-checks the named token (revoked or expired -> the session is over).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Engine, MetaData, String, Table, delete, insert, select

from mbcjourney.processors.sql import create_tables, utc_text
from mbcjourney.processors.tokens import secret_hash

metadata = MetaData()

sessions_table = Table(
    "web_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("token_name", String(100), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False, index=True),  # ISO UTC, sorts as text
)


@dataclass(frozen=True)
class Session:
    """A live session (never its id: only the browser has that)."""

    token_name: str
    csrf: str
    expires_at: str


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        create_tables(metadata, self.engine)

    def open(self, token_name: str, *, now: datetime, until: datetime) -> tuple[str, Session]:
        """A new session for ``token_name`` until ``until``; returns its id (for the cookie)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(token_name, secrets.token_urlsafe(32), utc_text(until))
        with self.engine.begin() as conn:
            conn.execute(delete(sessions_table)  # expired ones, as a new one comes
                         .where(sessions_table.c.expires_at < utc_text(now)))
            conn.execute(insert(sessions_table).values(
                session_hash=secret_hash(session_id), token_name=token_name, csrf=session.csrf,
                created_at=utc_text(now), expires_at=session.expires_at))
        return session_id, session

    def find(self, session_id: str, *, now: datetime) -> Session | None:
        """The session ``session_id`` names, if it exists and has not expired."""
        if not session_id or len(session_id) > 128:
            return None
        t = sessions_table
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.token_name, t.c.csrf, t.c.expires_at)
                               .where(t.c.session_hash == secret_hash(session_id))).first()
        if row is None or row.expires_at <= utc_text(now):
            return None
        return Session(row.token_name, row.csrf, row.expires_at)

    def close(self, session_id: str) -> None:
        """End the session (signing out); a no-op for an unknown id."""
        with self.engine.begin() as conn:
            conn.execute(delete(sessions_table)
                         .where(sessions_table.c.session_hash == secret_hash(session_id)))
