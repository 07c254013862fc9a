"""The registry of projection versions: ``projection_versions`` and what readers ask of it.

One row per built (or building) version of a projection: name, version, build id,
source, options, status (building, complete, active, retired), timestamps, content
hash, row counts, progress.  At most one version of a name is active (a partial
unique index); :func:`activate` switches it atomically and :func:`active_prefix`
tells a reader which tables to read.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    inspect,
    select,
    text,
    update,
)

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.processors.sql import UtcDateTime, create_tables, on_postgres
from mbcjourney.processors.staging import Staging

log = structlog.get_logger(__name__)

REGISTRY = "projection_versions"
BUILTIN = "journey"
STALE_OWNER_S = 600.0  # a build last touched this long ago by another host may be taken over


class Status(StrEnum):
    BUILDING = "building"
    COMPLETE = "complete"
    ACTIVE = "active"
    RETIRED = "retired"


_registry_md = MetaData()
versions_table = Table(
    REGISTRY, _registry_md,
    Column("name", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("build_id", String(32), nullable=False, unique=True),
    Column("build_key", String(64), nullable=False, index=True),
    Column("projection", Text, nullable=False),  # "journey", or the projection file
    Column("source", Text, nullable=False),
    Column("options", Text, nullable=False),  # JSON: view, settings, code fingerprint, snapshot
    Column("table_prefix", String(48), nullable=False),
    Column("tables", Text, nullable=False),  # JSON: every table of the version
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime()),
    Column("activated_at", UtcDateTime()),
    Column("content_hash", String(80)),
    Column("row_counts", Text),  # JSON: {table: rows}
    Column("progress", Text, nullable=False),  # JSON: phase, positions, last patient, counts
    Column("owner", String(200)),  # host:pid of the process building it
    Index(f"uq_{REGISTRY}_active", "name", unique=True,
          sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    """One registered version of a projection."""

    name: str
    version: int
    build_id: str
    projection: str
    source: str
    options: dict[str, Any]
    prefix: str
    tables: list[str]
    status: str
    created_at: datetime
    completed_at: datetime | None
    activated_at: datetime | None
    content_hash: str | None
    row_counts: dict[str, int]
    progress: dict[str, Any]
    owner: str | None
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> VersionInfo:
        return cls(row.name, row.version, row.build_id, row.projection, row.source,
                   orjson.loads(row.options), row.table_prefix, orjson.loads(row.tables),
                   row.status, row.created_at, row.completed_at, row.activated_at,
                   row.content_hash, orjson.loads(row.row_counts or "{}"),
                   orjson.loads(row.progress), row.owner, row.updated_at)


def ensure_registry(engine: Engine) -> bool:
    """Create ``projection_versions`` when missing; whether it was created now."""
    if inspect(engine).has_table(REGISTRY):
        return False
    create_tables(_registry_md, engine)
    return True


def versions(engine: Engine, name: str | None = None) -> list[VersionInfo]:
    """Every registered version (of ``name``), by name then version."""
    if not inspect(engine).has_table(REGISTRY):
        return []
    t = versions_table
    query = select(t).order_by(t.c.name, t.c.version)
    if name is not None:
        query = query.where(t.c.name == name)
    with engine.connect() as conn:
        return [VersionInfo.of(r) for r in conn.execute(query)]


def get_version(engine: Engine, name: str, version: int) -> VersionInfo:
    found = [v for v in versions(engine, name) if v.version == version]
    if not found:
        raise ConfigurationError(f"no version {version} of projection {name!r}")
    return found[0]


def active_prefix(engine: Engine, name: str) -> str:
    """Table prefix of the active version of ``name``; ``""`` (the unversioned tables) if none.

    Readers call this to find the tables to read, e.g.
    ``ProjectionStore(engine, prefix=active_prefix(engine, "journey"))``.
    """
    if not inspect(engine).has_table(REGISTRY):
        return ""
    t = versions_table
    with engine.connect() as conn:
        prefix = conn.execute(select(t.c.table_prefix).where(
            (t.c.name == name) & (t.c.status == Status.ACTIVE.value))).scalar_one_or_none()
    return prefix or ""


def activate(engine: Engine, name: str, version: int) -> VersionInfo:
    """Make ``version`` the one readers see, retiring the previous one, in one transaction."""
    if not inspect(engine).has_table(REGISTRY):
        raise ConfigurationError(f"no version {version} of projection {name!r}")
    with engine.begin() as conn:
        _activate_in(conn, name, version)
    log.info("projection.activated", name=name, version=version)
    return get_version(engine, name, version)


def _activate_in(conn: Connection, name: str, version: int) -> None:
    t = versions_table
    key = (t.c.name == name) & (t.c.version == version)
    query = select(t).where(key)
    if on_postgres(conn):
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise ConfigurationError(f"no version {version} of projection {name!r}")
    info = VersionInfo.of(row)
    if info.status == Status.ACTIVE.value:
        return
    if info.status not in (Status.COMPLETE.value, Status.RETIRED.value):
        raise ConfigurationError(f"{name} version {version} is {info.status}: only a complete "
                                 "build can be activated")
    view = info.options.get("view", {})
    if name == BUILTIN and (view.get("known_at") or view.get("cutoff")):
        raise ConfigurationError(
            f"{name} version {version} was built with --known-at/--cutoff: the live journey "
            "tables must hold the whole history (read this version by its tables instead)")
    now = _now()
    conn.execute(update(t).where((t.c.name == name) & (t.c.status == Status.ACTIVE.value))
                 .values(status=Status.RETIRED.value, updated_at=now))
    conn.execute(update(t).where(key).values(status=Status.ACTIVE.value, activated_at=now,
                                             updated_at=now))


def drop_version(engine: Engine, name: str, version: int) -> VersionInfo:
    """Drop a version's tables and forget it; never the active one, nor a running build."""
    info = get_version(engine, name, version)
    if info.status == Status.ACTIVE.value:
        raise ConfigurationError(f"{name} version {version} is active: activate another "
                                 "version first")
    if info.status == Status.BUILDING.value:
        _check_owner(info)
    with engine.begin() as conn:
        conn.execute(delete(versions_table).where(versions_table.c.build_id == info.build_id))
        _drop_tables(conn, info.tables)
    Staging(engine, info.prefix).remove()
    log.info("projection.dropped", name=name, version=version)
    return info


def _drop_tables(conn: Connection, names: Sequence[str]) -> None:
    md = MetaData()
    for table_name in names:
        Table(table_name, md).drop(conn, checkfirst=True)


def _check_owner(info: VersionInfo) -> None:
    """Refuse to touch a build that another live process is running."""
    if not info.owner or info.owner == _owner():
        return
    host, _, pid_text = info.owner.rpartition(":")
    if host == socket.gethostname():
        try:
            os.kill(int(pid_text), 0)
        except (OSError, ValueError):
            return  # that process is gone
    elif (_now() - info.updated_at).total_seconds() > STALE_OWNER_S:
        return
    raise ConfigurationError(
        f"{info.name} version {info.version} is being built by {info.owner}; "
        "wait for it to finish or stop it first")
