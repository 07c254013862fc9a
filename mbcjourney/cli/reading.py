"""``journey export``, ``overdue`` and ``report``: the embedded engine's analytic outputs."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import click

from mbcjourney.cli.options import (
    Context,
    db_option,
    output_options,
    parse_date,
    pass_context,
    view_options,
)
from mbcjourney.cli.output import export_rows
from mbcjourney.events.errors import JourneyError
from mbcjourney.exports import write_table
from mbcjourney.projections import LineRow, PatientRow, View
from mbcjourney.projections.findings import Finding

OVERDUE_COLUMNS = ("patient_id", "assessment", "last_done", "due_date", "window_end",
                   "days_overdue")


@click.group()
def export() -> None:
    """Analysis-ready tables (CSV by default): patients, lines, findings."""


@click.command("patients")
@db_option
@view_options
@output_options
@pass_context
def export_patients(ctx: Context, db: str | None, cutoff: date | None,
                    known_at: datetime | None, fmt: str, output: Path | None) -> None:
    """One row per patient: group, receptor status, current line, status, concordance.

    Example: journey export patients --db sqlite:///study.db --cutoff 2025-12-31
    """
    with ctx.engine(db) as engine:
        export_rows(engine.patient_rows(View(cutoff, known_at)), PatientRow, fmt, output)


@click.command("lines")
@db_option
@view_options
@output_options
@pass_context
def export_lines(ctx: Context, db: str | None, cutoff: date | None, known_at: datetime | None,
                 fmt: str, output: Path | None) -> None:
    """One row per patient-line: regimen, dates, TTP / PFS / TTNT, best response.

    Example: journey export lines --db sqlite:///study.db --format parquet -o lines.parquet
    """
    with ctx.engine(db) as engine:
        export_rows(engine.line_rows(View(cutoff, known_at)), LineRow, fmt, output)


@click.command("findings")
@db_option
@view_options
@output_options
@pass_context
def export_findings(ctx: Context, db: str | None, cutoff: date | None,
                    known_at: datetime | None, fmt: str, output: Path | None) -> None:
    """Data-quality findings, one row per finding (ids only, no payload values)."""
    with ctx.engine(db) as engine:
        export_rows(engine.finding_rows(View(cutoff, known_at)), Finding, fmt, output)


@click.command()
@click.option("--as-of", "as_of", callback=parse_date, required=True, metavar="DATE",
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
    with ctx.engine(db) as engine:
        rows = engine.overdue(as_of, View(cutoff, known_at))
    write_table(OVERDUE_COLUMNS, [(d.patient_id, d.assessment, d.last_done, d.due_date,
                                   d.window_end, late) for d, late in rows],
                fmt, output, sys.stdout.buffer)


@click.command()
@db_option
@view_options
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write; the pictures also go to <name>_files/ beside it.")
@click.option("--as-of", "as_of", callback=parse_date, metavar="DATE",
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
    with ctx.engine(db) as engine, ctx.progress(None, "pt", "report") as advance:
        summary = write_report(engine, output, options, on_patients=advance)
    click.echo(f"wrote {summary.html} ({summary.patients} patients) and "
               f"{len(summary.images)} pictures in {summary.html.stem}_files/", err=True)
