"""``journey features`` and ``journey predict``: point-in-time feature tables and models.

The model commands need the optional ``predict`` extra (scikit-survival); it is
imported only when one of them runs.  See docs/prediction.md.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from mbcjourney.cli.options import Context, db_option, output_options, parse_date, pass_context
from mbcjourney.events.errors import JourneyError
from mbcjourney.exports import write_table
from mbcjourney.predict.dataset import (
    LINES,
    FeatureOptions,
    build_table,
    describe,
    output_format,
    write_features,
)
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
    output_format(output)  # a wrong suffix fails before any work
    spec = load_spec(spec_file)
    with ctx.engine(db) as engine, ctx.progress(None, "pt", "features") as advance:
        table = build_table(engine, spec, FeatureOptions(lines, as_occurred, cutoff), advance)
    write_features(table, output)
    click.echo(describe(table).decode(), err=True)


def _predict_extra() -> None:
    try:
        import sksurv  # noqa: F401
    except ImportError as exc:
        raise JourneyError("journey predict needs the 'predict' extra (scikit-survival, "
                           f"matplotlib): pip install 'mbc-journey[predict]' ({exc})") from None


target_option = click.option("--target", default="pfs", show_default=True,
                             type=click.Choice(("pfs", "ttp", "ttnt")),
                             help="Outcome: progression-free survival, time to progression or "
                                  "time to next treatment.")
seed_option = click.option("--seed", default=0, show_default=True, type=int,
                           help="Seed of the folds, the bootstrap and the models.")


@click.group()
def predict() -> None:
    """Survival models on point-in-time features: evaluate, train, score (docs/prediction.md)."""


@click.command("evaluate")
@db_option
@spec_option
@target_option
@lines_option
@cutoff_option
@click.option("--models", "model_names", default="km,cox,coxnet,gbsa", show_default=True,
              metavar="LIST", help="Comma-separated: km (always included: the null model), "
                                   "cox, coxnet, gbsa.")
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2),
              help="Cross-validation folds, grouped by patient.")
@seed_option
@click.option("--temporal-split", callback=parse_date, metavar="DATE",
              help="Instead of cross-validation: train on lines started before DATE, test on "
                   "the others.")
@click.option("--bootstrap", default=100, show_default=True, type=click.IntRange(0),
              help="Patient-bootstrap replicates of the 95 % intervals.")
@click.option("--json", "json_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), metavar="METRICS.json")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.html", help="Self-contained HTML report with the model card.")
@pass_context
def predict_evaluate(ctx: Context, db: str | None, spec_file: Path, target: str, lines: str,
                     cutoff: date | None, model_names: str, folds: int, seed: int,
                     temporal_split: date | None, bootstrap: int, json_path: Path,
                     report_path: Path | None) -> None:
    """Cross-validated metrics of the models, with bootstrap intervals, overall and by group.

    Example: journey predict evaluate --db sqlite:///study.db --spec features.toml
    --json metrics.json --report prediction.html
    """
    _predict_extra()
    from mbcjourney.predict.commands import metrics_json, run_evaluate
    from mbcjourney.predict.evaluate import EvaluateOptions
    from mbcjourney.predict.models import parse_models

    spec = load_spec(spec_file)
    options = EvaluateOptions(parse_models(model_names), folds, seed, temporal_split, bootstrap)
    with ctx.engine(db) as engine:
        result = run_evaluate(engine, spec, target, FeatureOptions(lines, False, cutoff),
                              options)
    json_path.write_bytes(metrics_json(result.metrics))
    if report_path is not None:
        report_path.write_text(result.html, "utf-8")
    for name, entry in result.metrics["models"].items():
        c, ibs = entry["c_harrell"], entry["ibs"]
        click.echo(f"{name:<7} C {c['value']}  IBS {ibs['value']}", err=True)


@click.command("train")
@db_option
@spec_option
@target_option
@lines_option
@cutoff_option
@click.option("--model", "model_name", default="cox", show_default=True,
              type=click.Choice(("cox", "coxnet", "gbsa")))
@seed_option
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="MODEL", help="The model file to write.")
@pass_context
def predict_train(ctx: Context, db: str | None, spec_file: Path, target: str, lines: str,
                  cutoff: date | None, model_name: str, seed: int, output: Path) -> None:
    """Fit a model on every line and save it with its spec, data hash and library versions.

    Example: journey predict train --db sqlite:///study.db --spec features.toml -o pfs.model
    """
    _predict_extra()
    from mbcjourney.predict.commands import save_model, train

    spec = load_spec(spec_file)
    with ctx.engine(db) as engine:
        artefact = train(engine, spec, target, model_name, FeatureOptions(lines, False, cutoff),
                         seed)
    save_model(artefact, output)
    click.echo(f"wrote {output}: {model_name} on {artefact['rows']} lines "
               f"({artefact['events']} events), data {artefact['data_sha256'][:12]}", err=True)


@click.command("score")
@click.option("--model", "model_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="MODEL")
@db_option
@click.option("--as-of", "as_of", callback=parse_date, metavar="DATE",
              help="Score the lines in progress on DATE, from what was recorded by its end "
                   "(default: everything).")
@output_options
@pass_context
def predict_score(ctx: Context, model_path: Path, db: str | None, as_of: date | None, fmt: str,
                  output: Path | None) -> None:
    """Each patient's current line: probability of being event-free 6 and 12 months after
    its start.

    Example: journey predict score --model pfs.model --db sqlite:///study.db --as-of 2026-06-30
    """
    _predict_extra()
    from mbcjourney.predict.commands import SCORE_COLUMNS, load_model, score

    artefact = load_model(model_path)
    with ctx.engine(db) as engine:
        rows = score(engine, artefact, model_path, as_of)
    write_table(SCORE_COLUMNS, rows, fmt, output, sys.stdout.buffer)
