"""The HTTP service's settings: what ``journey serve`` parses and the composition root reads."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BODY_BYTES = 16 << 20  # a POST /v1/events body: ~30,000 typical events
DEFAULT_RATE_LIMIT = "100/second"  # per token (the ``limits`` library's notation)
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class ServiceConfig:
    """Where the service keeps and sends things, and its limits.

    ``db_url`` is the embedded database (SQLite or PostgreSQL) or, with
    ``bootstrap``, the workers' PostgreSQL the service reads; with ``bootstrap``
    accepted events are published to ``topic`` for the workers instead of
    appended to the log by the service itself.
    """

    db_url: str
    bootstrap: str | None = None
    topic: str = "mbc.clinical-events"
    dead_letter_topic: str = "mbc.dead-letter"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rate_limit: str | None = DEFAULT_RATE_LIMIT  # None: no limit
    rate_limit_storage: str = "memory://"  # per process; e.g. redis://host:6379 across them
    secure_cookies: bool = False  # the pages' session cookie (behind a TLS proxy: True)
