"""``journey publish`` and ``journey worker``: the scale-out deployment (Kafka + PostgreSQL)."""

from __future__ import annotations

import logging
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import click

from mbcjourney.bootstrap import open_publisher, open_sealer, run_worker
from mbcjourney.cli.options import (
    Context,
    bootstrap_option,
    dead_letter_topic_option,
    pass_context,
    publish_keys_option,
    topic_option,
)
from mbcjourney.cli.output import count_lines, print_rejections
from mbcjourney.processors.alerting import (
    ALERTS_TOPIC,
    DEFAULT_INTERVAL_S,
    AlertConfig,
    system_clock,
)
from mbcjourney.processors.histories import DEFAULT_CACHED_EVENTS
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.processors.publisher import publish_lines
from mbcjourney.processors.worker import BATCH_MAX, PROJECT_EVERY, WorkerConfig


@click.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@bootstrap_option
@topic_option
@dead_letter_topic_option
@publish_keys_option
@pass_context
def publish(ctx: Context, file: Path, bootstrap: str, topic: str, dead_letter_topic: str,
            keys_url: str | None) -> None:
    """Validate a JSON Lines FILE ('-' for stdin) and publish it to Kafka.

    The same validation as `journey ingest`; good events go to the event topic
    keyed by patient_id (acks=all, idempotent producer), bad lines to the
    dead-letter topic with their original bytes and reason.  Exit status 1 when
    any line was rejected.

    Every value is sealed with its patient's data key (needs JOURNEY_MASTER_KEY_FILE
    and the key store: --keys or JOURNEY_KEYS_URL).

    Example: journey publish cohort.jsonl --bootstrap 127.0.0.1:19092 --keys "$JOURNEY_PG_URL"
    """
    if str(file) != "-" and not file.exists():
        raise click.BadParameter(f"{file} does not exist", param_hint="FILE")

    # kafka-python's I/O thread warns whenever validation holds the GIL for 0.1 s: noise,
    # since every send's acknowledgement is checked.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    with open_publisher(bootstrap, (topic, dead_letter_topic)) as producer, ExitStack() as stack:
        if keys_url is None:
            raise click.UsageError("journey publish seals every event with its patient's key: "
                                   "pass --keys URL (the workers' PostgreSQL database) or set "
                                   "JOURNEY_KEYS_URL")
        cipher = open_sealer(keys_url=keys_url)
        if str(file) == "-":
            stream, origin, total = sys.stdin.buffer, "stdin", None
        else:
            stream = stack.enter_context(file.open("rb"))
            origin, total = file.name, count_lines(file)
        with ctx.progress(total, "ev", "publish") as advance:
            summary = publish_lines(numbered_lines(stream), producer, origin=origin,
                                    received_at=datetime.now(UTC), topic=topic,
                                    dead_letter_topic=dead_letter_topic, on_batch=advance,
                                    cipher=cipher)
    click.echo(f"read {summary.read} lines: {summary.published} published, "
               f"{summary.rejected_total} rejected ({len(summary.patients)} patients)")
    print_rejections(summary)
    if summary.rejected_total:
        sys.exit(1)


@click.command()
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
