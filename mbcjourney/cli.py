"""The ``journey`` command: a thin shell over the engine; every command has --help.

Each command that reads or writes the embedded engine takes ``--db URL`` (or the
``JOURNEY_DB`` environment variable; default ``sqlite:///journey.db``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

import click
import structlog
from tqdm import tqdm

from mbcjourney import logs
from mbcjourney.engine import AlertRow, EmbeddedEngine, decode_workers
from mbcjourney.errors import JourneyError
from mbcjourney.events.alerts import AlertAcknowledged, AlertSnoozed
from mbcjourney.exports import FORMATS, write_table
from mbcjourney.processors.db import existing_database
from mbcjourney.processors.histories import DEFAULT_CACHED_EVENTS
from mbcjourney.processors.ingest import IngestSummary, LineSummary, numbered_lines
from mbcjourney.processors.worker import BATCH_MAX, PROJECT_EVERY
from mbcjourney.projections import LineRow, PatientRow, View
from mbcjourney.projections.findings import Finding
from mbcjourney.settings import DEFAULT_CLINICAL, ClinicalSettings, database_url
from mbcjourney.timeparse import BadTime, parse_date, parse_instant

log = structlog.get_logger(__name__)

OVERDUE_COLUMNS = ("patient_id", "assessment", "last_done", "due_date", "window_end",
                   "days_overdue")


class Context:
    def __init__(self, settings: ClinicalSettings, quiet: bool) -> None:
        self.settings = settings
        self.quiet = quiet

    def engine(self, db: str | None, *, create: bool = False) -> EmbeddedEngine:
        """The embedded engine on ``--db``; only commands that write events may create it."""
        url = database_url(db)
        return EmbeddedEngine(url if create else existing_database(url), self.settings)

    @contextmanager
    def progress(self, total: int | None, unit: str, desc: str) -> Iterator[Callable[[int], None]]:
        bar = tqdm(total=total, unit=unit, desc=desc, disable=self.quiet or None,
                   file=sys.stderr, unit_scale=True, dynamic_ncols=True)
        try:
            yield bar.update
        finally:
            bar.close()


pass_context = click.make_pass_decorator(Context)

db_option = click.option(
    "--db", "db", envvar="JOURNEY_DB", default=None, metavar="URL",
    help="Database URL (default: JOURNEY_DB, else sqlite:///journey.db).",
)


def _date(_ctx: Any, _param: Any, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except BadTime as exc:
        raise click.BadParameter(str(exc)) from None


def _instant(_ctx: Any, _param: Any, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except BadTime as exc:
        raise click.BadParameter(str(exc)) from None


def view_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--known-at", callback=_instant, metavar="DATE-TIME",
                        help="Use only facts recorded at or before this instant (UTC if no "
                             "zone; a bare date means the end of that day).")(func)
    func = click.option("--cutoff", callback=_date, metavar="DATE",
                        help="Data cut-off: ignore facts that occurred after DATE.")(func)
    return func


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                        help="Write to FILE instead of standard output.")(func)
    func = click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv",
                        show_default=True, help="Output format.")(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--settings", "settings_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="TOML/JSON file overriding clinical settings ([clinical]).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Structured JSON logs on stderr at this level.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx: click.Context, settings_file: Path | None, log_level: str, quiet: bool) -> None:
    """Patient-journey engine of the metastatic breast cancer cohort study.

    Clinical facts are immutable events; projections (phenotype group, treatment
    lines, outcomes, assessment schedule) are derived from them.  Start with
    `journey demo`.
    """
    logs.configure(log_level)
    settings = ClinicalSettings.from_file(settings_file) if settings_file else DEFAULT_CLINICAL
    ctx.obj = Context(settings, quiet)


# --- simulate / ingest / demo ----------------------------------------------------


@cli.command()
@click.option("--patients", default=1000, show_default=True, type=click.IntRange(1),
              help="Number of patients.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSON Lines file to write ('-' for stdout).")
def simulate(patients: int, seed: int, output: Path) -> None:
    """Write a synthetic cohort as wire-format JSON Lines (deterministic per seed).

    Example: journey simulate --patients 500 --seed 7 --output cohort.jsonl
    """
    from mbcjourney.simulate import SimulationSettings, write_cohort

    settings = SimulationSettings(patients=patients, seed=seed)
    if str(output) == "-":
        summary = write_cohort(settings, sys.stdout.buffer)
    else:
        with output.open("wb") as out:
            summary = write_cohort(settings, out)
    click.echo(f"wrote {summary.events} lines for {summary.patients} patients to {output}",
               err=True)


def _print_summary(summary: IngestSummary) -> None:
    click.echo(f"read {summary.read} lines: {summary.accepted} accepted, "
               f"{summary.duplicates} duplicate, {summary.rejected_total} rejected "
               f"({len(summary.patients)} patients touched)")
    _print_rejections(summary)


def _print_rejections(summary: LineSummary) -> None:
    for reason, count in summary.by_reason():
        click.echo(f"  rejected {count:>6}  {reason}")


def _ingest_stream(ctx: Context, engine: EmbeddedEngine, stream: BinaryIO, origin: str,
                   total: int | None) -> IngestSummary:
    with ctx.progress(total, "ev", "ingest") as advance:
        summary = engine.ingest(numbered_lines(stream), origin=origin,
                                received_at=datetime.now(UTC), on_batch=advance,
                                workers=decode_workers(total))
    with ctx.progress(len(summary.patients), "pt", "project") as advance:
        engine.catch_up(on_patients=advance)
    return summary


def _count_lines(path: Path) -> int | None:
    """The line count for the progress bar; None for a pipe, which can be read only once."""
    if not path.is_file():  # a named pipe, a process substitution (/dev/fd/N), a device
        return None
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


@cli.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@db_option
@pass_context
def ingest(ctx: Context, file: Path, db: str | None) -> None:
    """Validate a JSON Lines FILE ('-' for stdin) into the event log; project it.

    Good lines are stored (idempotent on event_id), bad lines go to the
    dead-letter table with their original bytes and reason.  Exit status 1 when
    any line was rejected.

    Example: journey ingest cohort.jsonl --db sqlite:///study.db
    """
    engine = ctx.engine(db, create=True)
    try:
        if str(file) == "-":
            summary = _ingest_stream(ctx, engine, sys.stdin.buffer, "stdin", None)
        else:
            if not file.exists():
                raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
            with file.open("rb") as stream:
                summary = _ingest_stream(ctx, engine, stream, file.name, _count_lines(file))
    finally:
        engine.close()
    _print_summary(summary)
    if summary.rejected_total:
        sys.exit(1)


# --- scale-out: Kafka + PostgreSQL ---------------------------------------------------

bootstrap_option = click.option(
    "--bootstrap", required=True, envvar="JOURNEY_KAFKA_BOOTSTRAP", metavar="HOST:PORT",
    help="Kafka bootstrap servers, comma separated (or JOURNEY_KAFKA_BOOTSTRAP).")
topic_option = click.option(
    "--topic", default="mbc.clinical-events", show_default=True, metavar="NAME",
    help="Event topic (keyed by patient_id).")
dead_letter_topic_option = click.option(
    "--dead-letter-topic", default="mbc.dead-letter", show_default=True, metavar="NAME",
    help="Topic for rejected input (original bytes, reason in headers).")


@cli.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@bootstrap_option
@topic_option
@dead_letter_topic_option
@pass_context
def publish(ctx: Context, file: Path, bootstrap: str, topic: str, dead_letter_topic: str
            ) -> None:
    """Validate a JSON Lines FILE ('-' for stdin) and publish it to Kafka.

    The same validation as `journey ingest`; good events go to the event topic
    keyed by patient_id (acks=all, idempotent producer), bad lines to the
    dead-letter topic with their original bytes and reason.  Exit status 1 when
    any line was rejected.

    Example: journey publish cohort.jsonl --bootstrap 127.0.0.1:19092
    """
    import logging

    from mbcjourney.processors.kafkaio import require_topics
    from mbcjourney.processors.publisher import open_producer, publish_lines

    if str(file) != "-" and not file.exists():
        raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
    # kafka-python's I/O thread warns whenever validation holds the GIL for 0.1 s: noise,
    # since every send's acknowledgement is checked.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    require_topics(bootstrap, {topic: None, dead_letter_topic: None})
    producer = open_producer(bootstrap)
    try:
        with ExitStack() as stack:
            if str(file) == "-":
                stream, origin, total = sys.stdin.buffer, "stdin", None
            else:
                stream = stack.enter_context(file.open("rb"))
                origin, total = file.name, _count_lines(file)
            with ctx.progress(total, "ev", "publish") as advance:
                summary = publish_lines(numbered_lines(stream), producer, origin=origin,
                                        received_at=datetime.now(UTC), topic=topic,
                                        dead_letter_topic=dead_letter_topic, on_batch=advance)
    finally:
        producer.close(timeout=30)
    click.echo(f"read {summary.read} lines: {summary.published} published, "
               f"{summary.rejected_total} rejected ({len(summary.patients)} patients)")
    _print_rejections(summary)
    if summary.rejected_total:
        sys.exit(1)


@cli.command()
@bootstrap_option
@click.option("--db", "db", required=True, envvar="JOURNEY_DB", metavar="URL",
              help="Projection store, e.g. postgresql+psycopg://journey@127.0.0.1:15432/journey "
                   "(or JOURNEY_DB).")
@click.option("--app-id", default="mbc-journey", show_default=True, metavar="ID",
              help="faust app id: the consumer group, and the prefix of the table's changelog.")
@click.option("--partitions", default=4, show_default=True, type=click.IntRange(1),
              help="Partitions of the event topic (the changelog gets as many).")
@topic_option
@dead_letter_topic_option
@click.option("--batch-max", default=BATCH_MAX, show_default=True, type=click.IntRange(1),
              help="Most records per batch (one transaction) while catching up on a backlog.")
@click.option("--batch-within", default=0.05, show_default=True, type=click.FloatRange(0.01),
              metavar="SECONDS", help="Longest wait for more records before a live batch.")
@click.option("--project-every", default=PROJECT_EVERY, show_default=True,
              type=click.IntRange(1), metavar="RECORDS",
              help="Far behind a backlog, write rows and checkpoints once per this many "
                   "records (each patient is projected once for all of them).")
@click.option("--cached-events", default=DEFAULT_CACHED_EVENTS, show_default=True,
              type=click.IntRange(0), metavar="EVENTS",
              help="Decoded events kept in memory for re-projection (about 2.4 KB each); "
                   "the rest are decoded again from their bodies when needed.")
@click.option("--heartbeat-file", type=click.Path(dir_okay=False, path_type=Path),
              metavar="PATH", help="Touch PATH every 10 s while running (container health).")
@click.option("--alerts", "alerts_on", is_flag=True,
              help="Raise and resolve overdue-assessment alerts live (alerts table, alert "
                   "topic, --webhooks).")
@click.option("--alert-interval", type=click.FloatRange(0.1), default=None, metavar="SECONDS",
              help="How often the leader checks for windows passed with time (default 60; "
                   "implies --alerts).")
@click.option("--alert-topic", default=None, metavar="NAME",
              help="Topic for alert.raised / alert.resolved, keyed by patient_id (default "
                   "mbc.alerts; implies --alerts).")
@click.option("--webhooks", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE", help="POST each raised alert to its centre's URL (JSON or TOML: "
                                   "{\"centres\": {\"C01\": URL, \"*\": URL}}; implies --alerts).")
@pass_context
def worker(ctx: Context, bootstrap: str, db: str, app_id: str, partitions: int, topic: str,
           dead_letter_topic: str, batch_max: int, batch_within: float, project_every: int,
           cached_events: int, heartbeat_file: Path | None, alerts_on: bool,
           alert_interval: float | None, alert_topic: str | None, webhooks: Path | None
           ) -> None:
    """Run a faust worker: events from Kafka, projection rows into PostgreSQL.

    Start one per group of partitions (same --app-id): Kafka shares the
    partitions out.  Stops on SIGTERM / Ctrl-C; restarts resume from the
    checkpoints stored with the rows.  With --alerts, each projected patient's
    overdue windows are raised and resolved, and the leader's timer raises the
    windows that pass with time.

    Example: journey worker --bootstrap 127.0.0.1:19092 --db postgresql+psycopg://journey@127.0.0.1:15432/journey
    """
    import logging

    from mbcjourney.processors.alerting import (
        ALERTS_TOPIC,
        DEFAULT_INTERVAL_S,
        AlertConfig,
        system_clock,
    )
    from mbcjourney.processors.worker import WorkerConfig, run_worker

    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    alert_config = None
    if alerts_on or alert_interval is not None or alert_topic is not None or webhooks:
        alert_config = AlertConfig(interval_s=alert_interval or DEFAULT_INTERVAL_S,
                                   topic=alert_topic or ALERTS_TOPIC, webhooks=webhooks,
                                   clock=system_clock)
    run_worker(WorkerConfig(
        bootstrap=bootstrap, db_url=db, app_id=app_id, topic=topic,
        dead_letter_topic=dead_letter_topic, partitions=partitions, batch_max=batch_max,
        batch_within_s=batch_within, project_every=project_every,
        max_cached_events=cached_events, settings=ctx.settings, log_level=level,
        heartbeat_file=heartbeat_file, alerts=alert_config))


@cli.command()
@click.option("--workdir", default=Path("journey-demo"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder for the demo files.")
@click.option("--patients", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=2026, show_default=True, type=int)
@pass_context
def demo(ctx: Context, workdir: Path, patients: int, seed: int) -> None:
    """Simulate a cohort, ingest it into an embedded database, print a summary. No servers."""
    from mbcjourney.demo import run_demo

    run_demo(workdir, patients=patients, seed=seed, settings=ctx.settings,
             progress=ctx.progress, echo=click.echo)


# --- exports -----------------------------------------------------------------------


@cli.group()
def export() -> None:
    """Analysis-ready tables (CSV by default): patients, lines, findings."""


def _columns(cls: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _export(rows: list[Any], cls: type[Any], fmt: str, output: Path | None) -> None:
    names = _columns(cls)
    write_table(names, [tuple(getattr(r, n) for n in names) for r in rows], fmt, output,
                sys.stdout.buffer)


@export.command("patients")
@db_option
@view_options
@output_options
@pass_context
def export_patients(ctx: Context, db: str | None, cutoff: date | None,
                    known_at: datetime | None, fmt: str, output: Path | None) -> None:
    """One row per patient: group, receptor status, current line, status, concordance.

    Example: journey export patients --db sqlite:///study.db --cutoff 2025-12-31
    """
    engine = ctx.engine(db)
    try:
        _export(engine.patient_rows(View(cutoff, known_at)), PatientRow, fmt, output)
    finally:
        engine.close()


@export.command("lines")
@db_option
@view_options
@output_options
@pass_context
def export_lines(ctx: Context, db: str | None, cutoff: date | None, known_at: datetime | None,
                 fmt: str, output: Path | None) -> None:
    """One row per patient-line: regimen, dates, TTP / PFS / TTNT, best response.

    Example: journey export lines --db sqlite:///study.db --format parquet -o lines.parquet
    """
    engine = ctx.engine(db)
    try:
        _export(engine.line_rows(View(cutoff, known_at)), LineRow, fmt, output)
    finally:
        engine.close()


@export.command("findings")
@db_option
@view_options
@output_options
@pass_context
def export_findings(ctx: Context, db: str | None, cutoff: date | None,
                    known_at: datetime | None, fmt: str, output: Path | None) -> None:
    """Data-quality findings, one row per finding (ids only, no payload values)."""
    engine = ctx.engine(db)
    try:
        _export(engine.finding_rows(View(cutoff, known_at)), Finding, fmt, output)
    finally:
        engine.close()


@cli.command()
@click.option("--as-of", "as_of", callback=_date, required=True, metavar="DATE",
              help="Evaluate the schedule with now = DATE (facts occurred and recorded by then).")
@db_option
@view_options
@output_options
@pass_context
def overdue(ctx: Context, as_of: date, db: str | None, cutoff: date | None,
            known_at: datetime | None, fmt: str, output: Path | None) -> None:
    """Assessments past their window: imaging, bone scans, biopsies after progression.

    Example: journey overdue --as-of 2026-03-01 --db sqlite:///study.db
    """
    engine = ctx.engine(db)
    try:
        rows = engine.overdue(as_of, View(cutoff, known_at))
    finally:
        engine.close()
    write_table(OVERDUE_COLUMNS, [(d.patient_id, d.assessment, d.last_done, d.due_date,
                                   d.window_end, late) for d, late in rows],
                fmt, output, sys.stdout.buffer)


@cli.command()
@db_option
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Processes folding patients in parallel (default: one per CPU for large "
                   "logs, none for small ones).")
@pass_context
def rebuild(ctx: Context, db: str | None, workers: int | None) -> None:
    """Rebuild every projection row from the event log.

    Example: journey rebuild --db sqlite:///study.db
    """
    engine = ctx.engine(db)
    try:
        if workers is None:
            workers = decode_workers(engine.log.count()) and (os.cpu_count() or 1)
        with ctx.progress(len(engine.log.patient_ids()), "pt", "rebuild") as advance:
            count = engine.rebuild(on_patients=advance, workers=workers)
    finally:
        engine.close()
    click.echo(f"rebuilt projections of {count} patients")


# --- contract and dead letters ------------------------------------------------------


@cli.group()
def schemas() -> None:
    """The JSON Schema contract source systems code against."""


@schemas.command("export")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Target folder (default: the package's schemas/ folder).")
def schemas_export(directory: Path | None) -> None:
    """Write one JSON Schema per event type and version."""
    from mbcjourney.schemas.generate import default_directory, export_schemas

    written = export_schemas(directory or default_directory())
    click.echo(f"wrote {len(written)} schemas to {directory or default_directory()}")


@cli.group("dead-letters")
def dead_letters() -> None:
    """Rejected input, kept with its original bytes and reason."""


@dead_letters.command("list")
@db_option
@output_options
@pass_context
def dead_letters_list(ctx: Context, db: str | None, fmt: str, output: Path | None) -> None:
    """One row per rejected input: where it came from, ids, and why."""
    engine = ctx.engine(db)
    try:
        letters = engine.log.dead_letters()
    finally:
        engine.close()
    write_table(("origin", "received_at", "event_id", "event_type", "patient_id", "reason"),
                [(d.origin, d.received_at, d.event_id, d.event_type, d.patient_id, d.reason)
                 for d in letters], fmt, output, sys.stdout.buffer)


@dead_letters.command("export")
@db_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSON Lines file of the original bytes, to fix and re-ingest.")
@pass_context
def dead_letters_export(ctx: Context, db: str | None, output: Path) -> None:
    """Write the original bytes of every dead letter, one per line, for fixing."""
    engine = ctx.engine(db)
    try:
        letters = engine.log.dead_letters()
    finally:
        engine.close()
    with output.open("wb") as out:
        for letter in letters:
            out.write(letter.original.replace(b"\n", b" ") + b"\n")
    click.echo(f"wrote {len(letters)} dead letters to {output}")


import mbcjourney.replay_cli  # noqa: E402, F401  (registers `journey replay`, `projections`)


@cli.command()
@db_option
@view_options
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write; the pictures also go to <name>_files/ beside it.")
@click.option("--as-of", "as_of", callback=_date, metavar="DATE",
              help="Overdue counts as of DATE (default: the latest fact date).")
@click.option("--panel-size", default=60, show_default=True, type=click.IntRange(1),
              help="Patients per swimmer panel (one panel per group, sampled when larger).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the swimmer sample.")
@pass_context
def report(ctx: Context, db: str | None, cutoff: date | None, known_at: datetime | None,
           output: Path, as_of: date | None, panel_size: int, seed: int) -> None:
    """Self-contained HTML report for the study team: KM curves, swimmer plots, tables.

    Example: journey report --db sqlite:///study.db --output report.html --cutoff 2026-06-30
    """
    try:
        from mbcjourney.report import ReportOptions, write_report
    except ImportError as exc:
        raise JourneyError(f"journey report needs the 'report' extra (lifelines, matplotlib): "
                           f"pip install 'mbc-journey[report]' ({exc})") from None
    options = ReportOptions(View(cutoff, known_at), as_of, panel_size, seed)
    engine = ctx.engine(db)
    try:
        with ctx.progress(None, "pt", "report") as advance:
            summary = write_report(engine, output, options, on_patients=advance)
    finally:
        engine.close()
    click.echo(f"wrote {summary.html} ({summary.patients} patients) and "
               f"{len(summary.images)} pictures in {summary.html.stem}_files/", err=True)


# --- alerts ------------------------------------------------------------------------


def _today() -> date:
    return datetime.now(UTC).date()


@cli.group(invoke_without_command=True)
@click.option("--as-of", "as_of", callback=_date, metavar="DATE",
              help="Alerts raised by DATE, with their status then (default: today, UTC).")
@click.option("--open", "only_open", is_flag=True, help="Only alerts open (and not snoozed).")
@click.option("--centre", metavar="C", help="Only patients of centre C.")
@db_option
@output_options
@click.pass_context
def alerts(click_ctx: click.Context, as_of: date | None, only_open: bool, centre: str | None,
           db: str | None, fmt: str, output: Path | None) -> None:
    """Overdue-assessment alerts: raised when a window passes, resolved when done.

    Without a sub-command, lists every alert the live system had raised by
    --as-of, exactly as it would have raised them from the same events.

    Example: journey alerts --open --centre C01 --as-of 2026-03-01 --db sqlite:///study.db
    """
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    engine = ctx.engine(db)
    try:
        with ctx.progress(None, "pt", "alerts") as advance:
            rows = engine.alerts(as_of or _today(), on_patients=advance)
    finally:
        engine.close()
    rows = [r for r in rows if (not only_open or r.status == "open")
            and (centre is None or r.centre == centre)]
    _export(rows, AlertRow, fmt, output)


def _find_alert(engine: EmbeddedEngine, alert_id: str) -> AlertRow:
    for row in engine.alerts(_today()):
        if row.alert_id == alert_id:
            return row
    raise click.BadParameter(f"no alert {alert_id} (see `journey alerts`)", param_hint="ID")


@alerts.command("ack")
@click.argument("alert_id", metavar="ID")
@click.option("--by", required=True, metavar="NAME", help="Who acknowledges.")
@db_option
@pass_context
def alerts_ack(ctx: Context, alert_id: str, by: str, db: str | None) -> None:
    """Acknowledge alert ID (it stays open until the assessment is done).

    Example: journey alerts ack 5e440762-75c2-53ea-a844-ec3aaf79ce29 --by "J. Martin"
    """
    engine = ctx.engine(db)
    try:
        row = _find_alert(engine, alert_id)
        engine.actions.record(AlertAcknowledged(alert_id=UUID(row.alert_id),
                                                patient_id=row.patient_id,
                                                at=datetime.now(UTC), by=by))
    finally:
        engine.close()
    click.echo(f"acknowledged {alert_id}")


@alerts.command("snooze")
@click.argument("alert_id", metavar="ID")
@click.option("--until", "until", callback=_date, required=True, metavar="DATE",
              help="Hide the alert from --open until this date (inclusive).")
@click.option("--by", required=True, metavar="NAME", help="Who snoozes.")
@db_option
@pass_context
def alerts_snooze(ctx: Context, alert_id: str, until: date, by: str, db: str | None) -> None:
    """Snooze alert ID until DATE.

    Example: journey alerts snooze 5e440762-75c2-53ea-a844-ec3aaf79ce29 --until 2026-04-01 --by JM
    """
    engine = ctx.engine(db)
    try:
        row = _find_alert(engine, alert_id)
        engine.actions.record(AlertSnoozed(alert_id=UUID(row.alert_id),
                                           patient_id=row.patient_id, at=datetime.now(UTC),
                                           by=by, until=until))
    finally:
        engine.close()
    click.echo(f"snoozed {alert_id} until {until}")


from mbcjourney import alerts_cli  # noqa: E402, F401  (registers `journey alerts deliver`)


def main() -> None:
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    from mbcjourney.processors.db import database_failure
    from mbcjourney.settings import problems

    try:
        cli(standalone_mode=True)
    except JourneyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except DBAPIError as exc:  # the database is down, unreachable, locked or full, or refused
        click.echo(f"error: {database_failure(exc)}", err=True)
        sys.exit(2)
    except ValidationError as exc:  # an option that breaks a model's rule (e.g. --by too long)
        click.echo(f"error: {problems(exc)}", err=True)
        sys.exit(2)
