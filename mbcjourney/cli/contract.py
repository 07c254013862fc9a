"""``journey schemas`` and ``journey dead-letters``: the input contract, and what broke it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mbcjourney.cli.options import Context, db_option, output_options, pass_context
from mbcjourney.exports import write_table


@click.group()
def schemas() -> None:
    """The JSON Schema contract source systems code against."""


@click.command("export")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Target folder (default: the package's schemas/ folder).")
def schemas_export(directory: Path | None) -> None:
    """Write one JSON Schema per event type and version."""
    from mbcjourney.schemas.generate import default_directory, export_schemas

    written = export_schemas(directory or default_directory())
    click.echo(f"wrote {len(written)} schemas to {directory or default_directory()}")


@click.group("dead-letters")
def dead_letters() -> None:
    """Rejected input, kept with its original bytes and reason."""


@click.command("list")
@db_option
@output_options
@pass_context
def dead_letters_list(ctx: Context, db: str | None, fmt: str, output: Path | None) -> None:
    """One row per rejected input: where it came from, ids, and why."""
    with ctx.engine(db) as engine:
        letters = engine.log.dead_letters()
    write_table(("origin", "received_at", "event_id", "event_type", "patient_id", "reason"),
                [(d.origin, d.received_at, d.event_id, d.event_type, d.patient_id, d.reason)
                 for d in letters], fmt, output, sys.stdout.buffer)


@click.command("export")
@db_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="JSON Lines file of the original bytes, to fix and re-ingest.")
@pass_context
def dead_letters_export(ctx: Context, db: str | None, output: Path) -> None:
    """Write the original bytes of every dead letter, one per line, for fixing."""
    with ctx.engine(db) as engine:
        letters = engine.log.dead_letters()
    with output.open("wb") as out:
        for letter in letters:
            out.write(letter.original.replace(b"\n", b" ") + b"\n")
    click.echo(f"wrote {len(letters)} dead letters to {output}")
