"""``journey simulate``, ``ingest``, ``rebuild`` and ``demo``: events into the embedded engine."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import click

from mbcjourney.cli.options import Context, db_option, pass_context
from mbcjourney.cli.output import count_lines, print_rejections
from mbcjourney.engine import EmbeddedEngine, decode_workers
from mbcjourney.processors.ingest import IngestSummary, numbered_lines


@click.command()
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
    click.echo(f"wrote {summary.lines} lines for {summary.patients} patients to {output}",
               err=True)


def _print_summary(summary: IngestSummary) -> None:
    click.echo(f"read {summary.read} lines: {summary.accepted} accepted, "
               f"{summary.duplicates} duplicate, {summary.rejected_total} rejected "
               f"({len(summary.patients)} patients touched)")
    print_rejections(summary)


def _ingest_stream(ctx: Context, engine: EmbeddedEngine, stream: BinaryIO, origin: str,
                   total: int | None) -> IngestSummary:
    with ctx.progress(total, "ev", "ingest") as advance:
        summary = engine.ingest(numbered_lines(stream), origin=origin,
                                received_at=datetime.now(UTC), on_batch=advance,
                                workers=decode_workers(total))
    with ctx.progress(len(summary.patients), "pt", "project") as advance:
        engine.catch_up(on_patients=advance)
    return summary


@click.command()
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
    with ctx.engine(db, create=True) as engine:
        if str(file) == "-":
            summary = _ingest_stream(ctx, engine, sys.stdin.buffer, "stdin", None)
        else:
            if not file.exists():
                raise click.BadParameter(f"{file} does not exist", param_hint="FILE")
            with file.open("rb") as stream:
                summary = _ingest_stream(ctx, engine, stream, file.name, count_lines(file))
    _print_summary(summary)
    if summary.rejected_total:
        sys.exit(1)


@click.command()
@db_option
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Processes folding patients in parallel (default: one per CPU for large "
                   "logs, none for small ones).")
@pass_context
def rebuild(ctx: Context, db: str | None, workers: int | None) -> None:
    """Rebuild every projection row from the event log.

    Example: journey rebuild --db sqlite:///study.db
    """
    with ctx.engine(db) as engine:
        if workers is None:
            workers = decode_workers(engine.log.count()) and (os.cpu_count() or 1)
        with ctx.progress(len(engine.log.patient_ids()), "pt", "rebuild") as advance:
            count = engine.rebuild(on_patients=advance, workers=workers)
        erased = len(engine.log.erasures.all())
    click.echo(f"rebuilt projections of {count} patients"
               + (f" ({erased} erased patients skipped)" if erased else ""))


@click.command()
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
