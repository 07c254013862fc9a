"""``journey fhir import|export`` and ``journey export omop``: hospital interoperability."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from mbcjourney.bootstrap import open_publisher, open_sealer
from mbcjourney.cli.options import (
    Context,
    db_option,
    dead_letter_topic_option,
    pass_context,
    publish_keys_option,
    topic_option,
)
from mbcjourney.cli.output import print_rejections
from mbcjourney.errors import ConfigurationError
from mbcjourney.interop.fhir_import import Prepared, import_into, publish_import


@click.group()
def fhir() -> None:
    """FHIR R4B / mCODE STU4: import a Bulk Data export or Bundles, export Bundles."""


def _print_mapping(prepared: Prepared) -> None:
    read = len(prepared.read.resources) + len(prepared.read.unmapped)
    click.echo(f"read {read} resources: {len(prepared.mapping.events)} events mapped, "
               f"{len(prepared.unmapped)} resources unmapped, "
               f"{prepared.mapping.superseded} older versions skipped, "
               f"{prepared.retractions} retractions")
    for reason, count in prepared.unmapped_by_reason():
        click.echo(f"  unmapped {count:>6}  {reason}")


@click.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@db_option
@click.option("--bootstrap", default=None, metavar="HOST:PORT",
              help="Publish to Kafka (as `journey publish`) instead of the embedded --db.")
@topic_option
@dead_letter_topic_option
@publish_keys_option
@pass_context
def fhir_import(ctx: Context, path: Path, db: str | None, bootstrap: str | None, topic: str,
                dead_letter_topic: str, keys_url: str | None) -> None:
    """Import FHIR resources from PATH (a Bulk Data folder or manifest, NDJSON or Bundle JSON).

    Each resource is validated with the fhir.resources R4B models and mapped to
    events with ids derived from (type, id, version); the events go through the
    same admission as `journey ingest` (a re-import adds only duplicates).  Unmapped
    resources are counted by reason and kept in the dead-letter store.  Exit
    status 1 when any resource was unmapped or any event rejected.

    With --bootstrap every event is sealed with its patient's key (as `journey
    publish`: --keys, and JOURNEY_MASTER_KEY_FILE).

    Example: journey fhir import export/ --db sqlite:///study.db
    """
    received_at = datetime.now(UTC)
    if path.name == "manifest.json":
        path = path.parent
    if bootstrap is not None:
        logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
        if keys_url is None:
            raise click.UsageError("--bootstrap seals every event with its patient's key: "
                                   "pass --keys URL (the workers' PostgreSQL database) or set "
                                   "JOURNEY_KEYS_URL")
        with open_publisher(bootstrap, (topic, dead_letter_topic)) as producer:
            prepared, published = publish_import(producer, path, received_at=received_at,
                                                 topic=topic,
                                                 dead_letter_topic=dead_letter_topic,
                                                 cipher=open_sealer(keys_url=keys_url))
        _print_mapping(prepared)
        click.echo(f"{published.read} events: {published.published} published, "
                   f"{published.rejected_total} rejected")
        print_rejections(published)
        rejected = published.rejected_total
    else:
        with ctx.engine(db, create=True) as engine, \
                ctx.progress(None, "ev", "ingest") as advance:
            prepared, summary = import_into(engine, path, received_at=received_at,
                                            on_batch=advance)
        _print_mapping(prepared)
        click.echo(f"{summary.read} events: {summary.accepted} accepted, "
                   f"{summary.duplicates} duplicate, {summary.rejected_total} rejected "
                   f"({len(summary.patients)} patients touched)")
        print_rejections(summary)
        rejected = summary.rejected_total
    if rejected or prepared.unmapped:
        sys.exit(1)


@click.command("export")
@db_option
@click.option("--patient", "patients", multiple=True, metavar="ID",
              help="Only this patient (repeatable); default: every patient.")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for one <patient>.json collection Bundle per patient.")
@click.option("--ndjson", is_flag=True,
              help="Write a Bulk Data style folder instead (<Type>.ndjson + manifest.json).")
@pass_context
def fhir_export(ctx: Context, db: str | None, patients: tuple[str, ...], output: Path,
                ndjson: bool) -> None:
    """One mCODE collection Bundle per patient, valid for the fhir.resources R4B models.

    Example: journey fhir export --db sqlite:///study.db --output bundles/
    """
    from mbcjourney.interop.fhir_export import patient_bundle, validate_bundle, write_bundles
    from mbcjourney.projections import build_history

    with ctx.engine(db) as engine:
        wanted = list(patients) or None
        bundles = []
        for patient_id, events in engine.log.histories(wanted):
            history = build_history(patient_id, events)
            if not history.events:
                continue
            bundle = patient_bundle(patient_id, history.events)
            validate_bundle(bundle)
            bundles.append(bundle)
    if patients and not bundles:
        raise ConfigurationError("no such patient in the log")
    count, resources = write_bundles(bundles, output, ndjson=ndjson)
    click.echo(f"wrote {resources} resources for {count} patients to {output}", err=True)


@click.command("omop")
@db_option
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for person.csv, drug_exposure.csv, episode.csv, episode_event.csv.")
@pass_context
def export_omop(ctx: Context, db: str | None, output: Path) -> None:
    """OMOP CDM v5.4 tables: person, drug_exposure, episode (lines), episode_event.

    Example: journey export omop --db sqlite:///study.db --output omop/
    """
    from mbcjourney.interop.omop import omop_tables, write_omop

    with ctx.engine(db) as engine:
        tables = omop_tables(engine.log.histories(), ctx.settings)
    counts = write_omop(tables, output)
    click.echo(", ".join(f"{n} {name}" for name, n in counts.items()) + f" in {output}",
               err=True)
