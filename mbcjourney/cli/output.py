"""What several ``journey`` commands print: tables of rows, rejection counts, line counts."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from mbcjourney.exports import write_table
from mbcjourney.processors.ingest import LineSummary


def export_rows(rows: list[Any], cls: type[Any], fmt: str, output: Path | None) -> None:
    """Rows of a dataclass ``cls`` as a table, its fields as the columns, in their order."""
    names = tuple(f.name for f in fields(cls))
    write_table(names, [tuple(getattr(r, n) for n in names) for r in rows], fmt, output,
                sys.stdout.buffer)


def print_rejections(summary: LineSummary) -> None:
    for reason, count in summary.by_reason():
        click.echo(f"  rejected {count:>6}  {reason}")


def count_lines(path: Path) -> int | None:
    """The line count for the progress bar; None for a pipe, which can be read only once."""
    if not path.is_file():  # a named pipe, a process substitution (/dev/fd/N), a device
        return None
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def print_table(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Rows as CSV on stdout, a header first (the CLI's listings: tokens, audit)."""
    write_table(columns, rows, "csv", None, sys.stdout.buffer)
