"""``journey features`` and ``journey predict``: point-in-time feature tables and models.

The model commands need the optional ``predict`` extra (scikit-survival); it is
imported only when one of them runs.  See docs/prediction.md.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from mbcjourney.cli.options import Context, db_option, parse_date, pass_context
from mbcjourney.predict.dataset import LINES, FeatureOptions, build_table, describe, write_features
from mbcjourney.predict.spec import load_spec

spec_option = click.option(
    "--spec", "spec_file", required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE.toml",
    help="Feature spec: builtin = [...] and [[feature]] tables (docs/prediction.md).")
lines_option = click.option(
    "--lines", default="all", show_default=True, type=click.Choice(LINES),
    help="Every line of therapy, or only the first.")
cutoff_option = click.option(
    "--cutoff", callback=parse_date, metavar="DATE",
    help="Data cut-off: ignore facts that occurred after DATE (labels and features).")


@click.command()
@db_option
@spec_option
@lines_option
@click.option("--as-occurred", "as_occurred", is_flag=True,
              help="Features from every fact occurred by t0, however late it was recorded "
                   "(leaks the future; for comparison only).")
@cutoff_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE(.parquet|.csv)", help="Feature table to write.")
@pass_context
def features(ctx: Context, db: str | None, spec_file: Path, lines: str, as_occurred: bool,
             cutoff: date | None, output: Path) -> None:
    """One row per (patient, line): labels from the cut-off, features as known at its start.

    A line's features use only facts that occurred on or before its start (t0)
    and were recorded by the end of t0's day.

    Example: journey features --db sqlite:///study.db --spec features.toml -o features.parquet
    """
    spec = load_spec(spec_file)
    with ctx.engine(db) as engine, ctx.progress(None, "pt", "features") as advance:
        table = build_table(engine, spec, FeatureOptions(lines, as_occurred, cutoff), advance)
    write_features(table, output)
    click.echo(describe(table).decode(), err=True)
