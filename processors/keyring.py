"""Where a deployment's keys are: the master key file and the key store, from settings.

The embedded default needs no setting: beside ``study.db`` the key store is
``study.db.keys`` and, when no master key is configured, one is created as
``study.db.master-key`` on first use (said once, on stderr's log).  Keeping the
master key beside the data protects a copy of the database file alone, not a
copy of the whole folder: point ``JOURNEY_MASTER_KEY_FILE`` elsewhere (another
disk, a secrets mount) for that.

The scale-out deployment (PostgreSQL, Kafka) refuses to start without a
configured master key: a key made up on one host would not open what the
others sealed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import structlog
from sqlalchemy import Engine

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.db import make_engine, sqlite_file
from mbcjourney.processors.keys import (
    KEYS_URL_ENV,
    MASTER_KEY_ENV,
    FileMasterKey,
    KeyStore,
    write_master_key,
)
from mbcjourney.processors.sealing import Sealer

log = structlog.get_logger(__name__)

_OPEN: dict[tuple[str, str], KeyStore] = {}
_OPEN_LOCK = threading.Lock()


def master_key(path: str | Path | None = None, *, beside: Path | None = None) -> FileMasterKey:
    """The configured master key (``path``, else ``$JOURNEY_MASTER_KEY_FILE``).

    Without either: for an embedded database file (``beside``), the key next to it,
    created on first use; otherwise a clear refusal.
    """
    configured = path or os.environ.get(MASTER_KEY_ENV)
    if configured:
        return FileMasterKey.read(Path(configured))
    if beside is None:
        raise ConfigurationError(
            f"no master key: set {MASTER_KEY_ENV} to a key file made by "
            "`journey keys init --output FILE` (the scale-out deployment never makes one up)")
    default = beside.with_name(beside.name + ".master-key")
    if default.is_file():
        return FileMasterKey.read(default)
    created = write_master_key(default)
    log.warning("keys.master_key_created", file=str(default),
                advice=f"keep a copy apart from the data; or set {MASTER_KEY_ENV}")
    return created


def keys_url_for(db_url: str, keys_url: str | None = None) -> str:
    """The key store of the log at ``db_url``: ``keys_url``, ``$JOURNEY_KEYS_URL``, else
    a SQLite file beside an embedded log, or the log's own PostgreSQL database."""
    chosen = keys_url or os.environ.get(KEYS_URL_ENV)
    if chosen:
        return chosen
    path = sqlite_file(db_url)
    if path is not None:
        return f"sqlite:///{path.with_name(path.name + '.keys')}"
    return db_url


def key_store(db_url: str | None, *, keys_url: str | None = None,
              master_file: str | Path | None = None) -> KeyStore:
    """The key store (created if new, its master key checked) of a log, cached per process."""
    url = keys_url or os.environ.get(KEYS_URL_ENV) or (keys_url_for(db_url) if db_url else None)
    if url is None:
        raise ConfigurationError(f"no key store: pass --keys URL or set {KEYS_URL_ENV}")
    log_file = sqlite_file(db_url) if db_url else None
    master = master_key(master_file, beside=log_file)
    cache_key = (url, master.key_id)
    with _OPEN_LOCK:
        store = _OPEN.get(cache_key)
        if store is None:
            store = KeyStore(make_engine(url), master, url=_redacted(url)).create()
            _OPEN[cache_key] = store
        return store


def sealer_for(engine: Engine) -> Sealer:
    """The sealer of the log on ``engine`` (its key store found as :func:`key_store` says)."""
    url = engine.url.render_as_string(hide_password=False)
    return Sealer(key_store(url))


def forget_open_stores() -> None:
    """Close every cached key store (a test that restores one from a copy, a rotation)."""
    with _OPEN_LOCK:
        for store in _OPEN.values():
            store.engine.dispose()
        _OPEN.clear()


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)
