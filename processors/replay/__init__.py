"""Replay: fold any event source into a new, versioned projection, resumably and deterministically.

Why: projections change (new rules, new settings, an analyst's question) and
history is re-read (as known on a past date); the store that readers use must
keep serving meanwhile.  A replay builds a **new version** of a projection in
its own tables, ``p_<name>_v<N>_<table>``, beside the active one; readers keep
seeing the active version until ``activate`` switches it, atomically.

How a build goes::

    register   projection_versions row (status "building"), the version's tables
    stage      Kafka / JSON Lines only: raw records into the build's staging (a file
               beside a SQLite target, a table on PostgreSQL), with the source position,
               in one transaction per batch; each batch is sorted by patient before it
               is written (a "run"), so that the fold merges the runs
               (processors/staging.py)
    fold       patient by patient, in patient-id order: build_history (sorted,
               retractions, --known-at, --cutoff), the projection, rows; each batch
               of patients committed with "last patient done" in the registry row
    finish     content hash over every output table, row counts, status "complete"

A crash or Ctrl-C at any point loses at most the uncommitted batch: running
the same command again finds the unfinished build (same projection code, source
and options) and goes on from its checkpoint; nothing is counted twice.

The registry table ``projection_versions`` lives in the ``--into`` database:
name, version, build id, source, options, status (building, complete, active,
retired), timestamps, content hash, row counts, progress.  At most one version
of a name is active (a partial unique index).  :func:`active_prefix` tells a
reader which tables to read.

A projection that fails (``ProjectionFailed``) leaves the database as it found
it: the build's tables and registry row are removed.

The package, one job per module: :mod:`.versions` (the registry), :mod:`.targets`
(what a build folds into), :mod:`.admit` (staged records to valid events),
:mod:`.state` (options, counts, progress), :mod:`.build` (one build),
:mod:`.content_hash` (the hash of a finished version).
"""

from mbcjourney.processors.replay.build import BATCH_EVENTS, Replay, Source
from mbcjourney.processors.replay.content_hash import table_hash
from mbcjourney.processors.replay.state import (
    BATCH_PATIENTS,
    Advance,
    Counts,
    ProgressFactory,
    ReplayOptions,
    ReplayResult,
)
from mbcjourney.processors.replay.targets import (
    AnalystTarget,
    JourneyTarget,
    Sink,
    Target,
    resolve_target,
)
from mbcjourney.processors.replay.versions import (
    BUILTIN,
    REGISTRY,
    STALE_OWNER_S,
    Status,
    VersionInfo,
    activate,
    active_prefix,
    drop_version,
    ensure_registry,
    get_version,
    versions,
    versions_table,
)

__all__ = [
    "BATCH_EVENTS", "BATCH_PATIENTS", "BUILTIN", "REGISTRY", "STALE_OWNER_S", "Advance",
    "AnalystTarget", "Counts", "JourneyTarget", "ProgressFactory", "Replay", "ReplayOptions",
    "ReplayResult", "Sink", "Source", "Status", "Target", "VersionInfo", "activate",
    "active_prefix", "drop_version", "ensure_registry", "get_version", "resolve_target",
    "table_hash", "versions", "versions_table",
]
