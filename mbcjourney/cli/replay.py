"""``journey replay`` and ``journey projections``: versioned rebuilds and analyst projections.

A thin shell over :mod:`mbcjourney.processors.replay`.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import MetaData, String, Table, select
from sqlalchemy.engine import make_url

from mbcjourney.bootstrap import open_database, open_sealer
from mbcjourney.cli.options import (
    Context,
    db_option,
    output_options,
    parse_instant,
    pass_context,
    view_options,
)
from mbcjourney.events.errors import ConfigurationError
from mbcjourney.exports import write_table
from mbcjourney.processors.replay import (
    BATCH_PATIENTS,
    Replay,
    ReplayOptions,
    ReplayResult,
    VersionInfo,
    activate,
    drop_version,
    get_version,
    resolve_target,
    versions,
)
from mbcjourney.processors.sources import JsonlSource, open_source
from mbcjourney.projections import View
from mbcjourney.settings import database_url

LIST_COLUMNS = ("name", "version", "status", "created_at", "completed_at", "activated_at",
                "source", "known_at", "cutoff", "events", "patients", "rows", "content_hash",
                "build_id", "progress")


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@click.command()
@click.option("--source", "source_spec", required=True, metavar="SOURCE",
              help="kafka://HOST:PORT/TOPIC, sqlite:///PATH (an embedded event log, read-only) "
                   "or a JSON Lines FILE.")
@click.option("--projection", "projection_spec", default="journey", show_default=True,
              metavar="NAME|FILE.py[:OBJECT]",
              help="The built-in 'journey' projection, or an analyst projection file.")
@click.option("--into", envvar="JOURNEY_DB", default=None, metavar="URL",
              help="Database receiving the new version (default: JOURNEY_DB, else "
                   "sqlite:///journey.db).")
@view_options
@click.option("--received-at", "received", callback=parse_instant, metavar="DATE-TIME",
              help="JSON Lines only: the instant stamped on lines without recorded_at "
                   "(default: the file's modification time).")
@click.option("--activate", "activate_now", is_flag=True,
              help="Make the new version the active one as soon as it is complete.")
@click.option("--batch-patients", default=BATCH_PATIENTS, show_default=True,
              type=click.IntRange(1), help="Patients per committed batch (checkpoint interval).")
@click.option("--keys", "keys_url", envvar="JOURNEY_KEYS_URL", default=None, metavar="URL",
              help="Key store that opens the source's sealed events (or JOURNEY_KEYS_URL; "
                   "default: beside a SQLite source, else the --into database's).")
@pass_context
def replay(ctx: Context, source_spec: str, projection_spec: str, into: str | None,
           cutoff: date | None, known_at: datetime | None, received: datetime | None,
           activate_now: bool, batch_patients: int, keys_url: str | None) -> None:
    """Fold SOURCE into a NEW version of a projection, in its own tables.

    Readers keep the active version until `journey projections activate`.  An
    interrupted replay resumes where it stopped when run again with the same
    arguments.  Ends by printing the content hash of the new tables: the same
    source and options always give the same hash.

    \b
    Examples:
      journey replay --source sqlite:///study.db --into sqlite:///study.db
      journey replay --source cohort.jsonl --projection docs/examples/treatment_free_interval.py \\
          --into sqlite:///analysis.db --known-at 2025-06-30
      journey replay --source kafka://127.0.0.1:9092/mbc.clinical-events \\
          --into postgresql+psycopg://journey@db/journey
    """
    target = resolve_target(projection_spec)  # an unusable projection fails before anything
    source = open_source(source_spec, received=received)
    if received is not None and not isinstance(source, JsonlSource):
        raise click.BadParameter("only applies to a JSON Lines source",
                                 param_hint="--received-at")
    url = database_url(into)
    with open_database(url, create=True) as engine:
        runner = Replay(engine, source, target, ctx.settings,
                        ReplayOptions(View(cutoff, known_at), batch_patients, activate_now),
                        progress=ctx.progress,
                        cipher=open_sealer(keys_url=keys_url) if keys_url else None)
        try:
            result = runner.run()
        except KeyboardInterrupt:
            info = getattr(runner, "info", None)
            which = f"{info.name} version {info.version}" if info else "the build"
            click.echo(f"interrupted: {which} is unfinished; run the same command again to "
                       "resume it", err=True)
            sys.exit(130)
    _print_result(result, _safe(url))


def _print_result(result: ReplayResult, url: str) -> None:
    info, counts = result.info, result.counts
    if result.resumed_from:
        click.echo(f"resumed an interrupted build (phase {result.resumed_from})")
    rate = counts.read / result.seconds if result.seconds else 0.0
    click.echo(f"built {info.name} version {info.version} (build {info.build_id[:12]}) from "
               f"{info.source}: {counts.read:,} read, {counts.events:,} events, "
               f"{counts.patients:,} patients, {counts.duplicates:,} duplicate, "
               f"{counts.rejected_total:,} rejected, {counts.erased:,} of erased patients; "
               f"{result.seconds:.1f} s "
               f"({rate:,.0f} events/s)")
    for reason, count in sorted(counts.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  rejected {count:>6}  {reason}")
    for logical, rows in info.row_counts.items():
        click.echo(f"  {info.prefix}{logical:<24} {rows:>10,} rows")
    if info.status == "active":
        click.echo(f"{info.name} version {info.version} is now active")
    else:
        click.echo(f"activate it with: journey projections activate {info.name} "
                   f"{info.version} --db {url}")
    click.echo(f"content hash {info.content_hash}")


# --- journey projections ---------------------------------------------------------------


@click.group()
def projections() -> None:
    """Versions of projections built by `journey replay`: list, activate, export, drop."""


def _row(v: VersionInfo) -> tuple[object, ...]:
    counts = v.progress.get("counts", {})
    view = v.options.get("view", {})
    progress = ""
    if v.status == "building":
        progress = f"{v.progress.get('phase')}: {counts.get('read', 0)} read"
        if v.progress.get("folded_through"):
            progress += f", through {v.progress['folded_through']}"
    return (v.name, v.version, v.status, v.created_at, v.completed_at, v.activated_at, v.source,
            view.get("known_at"), view.get("cutoff"), counts.get("events"),
            counts.get("patients"), sum(v.row_counts.values()) if v.row_counts else None,
            v.content_hash, v.build_id, progress)


@click.command("list")
@click.option("--name", default=None, help="Only this projection.")
@db_option
@output_options
def projections_list(name: str | None, db: str | None, fmt: str, output: Path | None) -> None:
    """Every version: status (building, complete, active, retired), source, options, hash."""
    with open_database(db) as engine:
        found = versions(engine, name)
    write_table(LIST_COLUMNS, [_row(v) for v in found], fmt, output, sys.stdout.buffer)


@click.command("activate")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@db_option
def projections_activate(name: str, version: int, db: str | None) -> None:
    """Make VERSION the one readers see (the previous one is retired), atomically."""
    with open_database(db) as engine:
        info = activate(engine, name, version)
    click.echo(f"{info.name} version {info.version} is active (tables {info.prefix}*)")


@click.command("drop")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@db_option
def projections_drop(name: str, version: int, db: str | None) -> None:
    """Drop VERSION's tables and forget it (never the active version)."""
    with open_database(db) as engine:
        info = drop_version(engine, name, version)
    click.echo(f"dropped {info.name} version {info.version} ({len(info.tables)} tables)")


@click.command("export")
@click.argument("name")
@click.argument("version", type=click.IntRange(1), required=False)
@click.option("--table", "table_name", default=None,
              help="Which table (journey: patients, lines, due_assessments, findings; an "
                   "analyst projection has one, 'rows').")
@db_option
@output_options
def projections_export(name: str, version: int | None, table_name: str | None, db: str | None,
                       fmt: str, output: Path | None) -> None:
    """A version's table (the active version by default), sorted by its key.

    Example: journey projections export progression_to_biopsy --db sqlite:///analysis.db
    """
    with open_database(db) as engine:
        info = _chosen(engine, name, version)
        outputs = list(info.row_counts)
        if table_name is None:
            if len(outputs) != 1:
                raise click.BadParameter(f"{name} has tables {', '.join(outputs)}: pick one",
                                         param_hint="--table")
            table_name = outputs[0]
        if table_name not in outputs:
            raise click.BadParameter(f"{name} has tables {', '.join(outputs)}",
                                     param_hint="--table")
        table = Table(f"{info.prefix}{table_name}", MetaData(), autoload_with=engine)
        postgres = engine.dialect.name == "postgresql"
        order = [c.collate("C") if postgres and isinstance(c.type, String) else c
                 for c in table.primary_key.columns]
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    write_table(tuple(str(c.name) for c in table.columns), rows, fmt, output,
                sys.stdout.buffer)


def _chosen(engine: Any, name: str, version: int | None) -> VersionInfo:
    if version is not None:
        info = get_version(engine, name, version)
    else:
        active = [v for v in versions(engine, name) if v.status == "active"]
        if not active:
            raise ConfigurationError(f"projection {name!r} has no active version: name one "
                                     "(journey projections list)")
        info = active[0]
    if info.status == "building":
        raise ConfigurationError(f"{name} version {info.version} is still building")
    return info
