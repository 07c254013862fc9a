"""The ``journey`` group, every command registered on it (here, and only here), and ``main``.

Each command module defines its commands on their own; this module puts them
in the tree with ``add_command``.  A new command group is a new module plus one
entry in :data:`COMMANDS`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mbcjourney import logs
from mbcjourney.cli import (
    alerts,
    contract,
    embedded,
    interop,
    keys,
    live,
    predict,
    reading,
    replay,
    service,
)
from mbcjourney.cli.options import Context
from mbcjourney.events.errors import JourneyError
from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings


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


# group -> the commands registered on it
COMMANDS: dict[click.Group, list[click.Command]] = {
    cli: [
        embedded.simulate, embedded.ingest, embedded.rebuild, embedded.demo,
        live.publish, live.worker,
        reading.export, reading.overdue, reading.report,
        contract.schemas, contract.dead_letters,
        replay.replay, replay.projections,
        alerts.alerts,
        predict.features, predict.predict,
        service.serve, service.tokens, service.audit,
        keys.erase, keys.keys,
        interop.fhir,
    ],
    reading.export: [reading.export_patients, reading.export_lines, reading.export_findings,
                     interop.export_omop],
    interop.fhir: [interop.fhir_import, interop.fhir_export],
    contract.schemas: [contract.schemas_export],
    contract.dead_letters: [contract.dead_letters_list, contract.dead_letters_export],
    replay.projections: [replay.projections_list, replay.projections_activate,
                         replay.projections_drop, replay.projections_export],
    predict.predict: [predict.predict_evaluate, predict.predict_train, predict.predict_score],
    alerts.alerts: [alerts.alerts_ack, alerts.alerts_snooze, alerts.alerts_deliver],
    service.tokens: [service.tokens_create, service.tokens_list, service.tokens_revoke],
}
for group, commands in COMMANDS.items():
    for command in commands:
        group.add_command(command)


def main() -> None:
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError

    from mbcjourney.processors.db import database_failure
    from mbcjourney.projections.settings import problems

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
