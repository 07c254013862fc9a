"""``journey erase`` and ``journey keys``: the patient data keys, and erasure by destroying one.

See README, "Encryption at rest and erasure": every fact is sealed with its
patient's data key; erasing destroys the key (every copy of the events turns to
noise) and deletes the rows derived from them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from mbcjourney.bootstrap import erase_everywhere, open_event_log, open_publisher, open_sealer
from mbcjourney.cli.options import (
    Context,
    bootstrap_option,
    db_option,
    pass_context,
    topic_option,
)
from mbcjourney.processors.keys import DEAD_LETTER_RETENTION_DAYS, FileMasterKey, write_master_key
from mbcjourney.processors.sealing import Sealer

keys_option = click.option(
    "--keys", "keys_url", envvar="JOURNEY_KEYS_URL", default=None, metavar="URL",
    help="Key store (or JOURNEY_KEYS_URL; default: DB.keys beside an embedded log, the "
         "log's own PostgreSQL database otherwise).")


@click.command()
@click.argument("patient")
@click.option("--reason", required=True, metavar="TEXT",
              help="Why (kept in the erasure record, e.g. 'consent withdrawn 2026-11-30').")
@click.option("--by", "by", required=True, metavar="NAME", help="Who asked for it or did it.")
@db_option
@keys_option
@click.option("--bootstrap", envvar="JOURNEY_KAFKA_BOOTSTRAP", default=None, metavar="HOST:PORT",
              help="Scale-out: also put a patient.erased record on the event topic, so the "
                   "workers drop the patient's history, rows and alerts.")
@topic_option
def erase(patient: str, reason: str, by: str, db: str | None, keys_url: str | None,
          bootstrap: str | None, topic: str) -> None:
    """Erase PATIENT for good (consent withdrawn): key destroyed, derived rows deleted.

    An append-only erasure record is written first; the patient's data key is
    destroyed (its events, wherever copied, can no longer be read); projection
    rows of every version, watermarks, alert actions and dead letters are
    deleted.  Later events of the patient are refused; rebuilds and replays
    count them as erased.  Running it again is harmless.

    Example: journey erase P-000042 --reason "consent withdrawn" --by "J. Doe" --db sqlite:///study.db
    """
    with open_event_log(db, keys_url) as event_log:
        result = erase_everywhere(event_log, patient, reason=reason, by=by,
                                  at=datetime.now(UTC), bootstrap=bootstrap, topic=topic)
    state = "erased" if result.newly_recorded else "was already erased; erased again"
    click.echo(f"{patient} {state}: {result.keys_destroyed} key destroyed, "
               f"{result.events_sealed} events now unreadable, "
               f"{sum(result.rows_deleted.values())} derived rows and "
               f"{result.dead_letters_deleted} dead letters deleted"
               + ("; patient.erased published" if bootstrap else ""))


@click.group()
def keys() -> None:
    """The master key and the patients' data keys (see README, "Encryption at rest")."""


@keys.command("init")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write the new master key to (mode 0600; never overwritten).")
def keys_init(output: Path) -> None:
    """Write a new master key (key-encryption key) to a file.

    Point JOURNEY_MASTER_KEY_FILE at it, and keep a copy apart from the data:
    without it nothing can be read.

    Example: journey keys init --output /secure/journey-master.key
    """
    key = write_master_key(output)
    click.echo(f"wrote master key {key.key_id} to {output} (mode 0600); "
               f"export JOURNEY_MASTER_KEY_FILE={output}")


@keys.command("status")
@db_option
@keys_option
def keys_status(db: str | None, keys_url: str | None) -> None:
    """How many data keys are live and destroyed, and the master key in use."""
    with open_event_log(db, keys_url) as event_log:
        cipher = event_log.cipher
        assert isinstance(cipher, Sealer)
        live, dead = cipher.keys.count()
        erased = len(event_log.erasures.all())
        click.echo(f"master key {cipher.keys.master.key_id}: {live} live keys, {dead} destroyed; "
                   f"{erased} erasure records in the log")


@keys.command("rotate")
@click.option("--new-key", "new_key", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The new master key file (from `journey keys init`).")
@db_option
@keys_option
def keys_rotate(new_key: Path, db: str | None, keys_url: str | None) -> None:
    """Re-wrap every data key with a new master key; the events are not touched.

    Run with the current key in JOURNEY_MASTER_KEY_FILE, then point it at the new one.

    Example: journey keys rotate --new-key new.key --db sqlite:///study.db
    """
    new = FileMasterKey.read(new_key)
    with open_event_log(db, keys_url) as event_log:
        cipher = event_log.cipher
        assert isinstance(cipher, Sealer)
        count = cipher.keys.rotate(new)
    click.echo(f"{count} data keys re-wrapped with master key {new.key_id}; "
               f"now export JOURNEY_MASTER_KEY_FILE={new_key}")


@keys.command("reconcile")
@db_option
@keys_option
@click.option("--dead-letter-retention-days", default=DEAD_LETTER_RETENTION_DAYS,
              show_default=True, type=click.IntRange(1),
              help="Dead letters of unknown patients are unreadable after this many days.")
def keys_reconcile(db: str | None, keys_url: str | None, dead_letter_retention_days: int
                   ) -> None:
    """Apply the erasure records to the key store again (after restoring it from a
    backup), and destroy expired dead-letter keys.

    Example: journey keys reconcile --db sqlite:///study.db
    """
    now = datetime.now(UTC)
    with open_event_log(db, keys_url) as event_log:
        cipher = event_log.cipher
        assert isinstance(cipher, Sealer)
        names = [record.patient_id for record in event_log.erasures.all()]
        destroyed = cipher.keys.destroy(names, now) if names else 0
        expired = cipher.keys.expire_dead_letter_keys(
            (now - timedelta(days=dead_letter_retention_days)).date(), now)
    click.echo(f"{len(names)} erasure records applied ({destroyed} keys destroyed again); "
               f"{len(expired)} expired dead-letter keys destroyed")


@keys.command("encrypt-log")
@db_option
@keys_option
@pass_context
def keys_encrypt_log(ctx: Context, db: str | None, keys_url: str | None) -> None:
    """Migrate a log written before encryption: seal every clear event and dead letter
    in place, then compact the file so no clear page is left (SQLite).

    Example: journey keys encrypt-log --db sqlite:///study.db
    """
    from mbcjourney.processors.erasing import scrub

    with open_event_log(db, keys_url) as event_log:
        with ctx.progress(event_log.count(), "ev", "seal") as advance:
            sealed = event_log.seal_clear_rows(on_batch=advance)
        scrub(event_log.engine)
    click.echo(f"{sealed} events sealed")



@keys.command("encrypt-topic")
@click.option("--from", "source_topic", required=True, metavar="TOPIC",
              help="The topic written before encryption.")
@click.option("--to", "target_topic", required=True, metavar="TOPIC",
              help="An existing, empty topic with as many partitions (infra/topics.txt).")
@bootstrap_option
@keys_option
@pass_context
def keys_encrypt_topic(ctx: Context, source_topic: str, target_topic: str, bootstrap: str,
                       keys_url: str | None) -> None:
    """Copy a topic written before encryption into a new one, every clear value sealed
    with its patient's key (same keys, same order per patient); then point the workers
    at the new topic and delete the old one.

    Example: journey keys encrypt-topic --from mbc.clinical-events --to mbc.clinical-events.v2 \
        --bootstrap 127.0.0.1:19092 --keys "$PG"
    """
    from mbcjourney.processors.publisher import copy_topic_sealed
    from mbcjourney.processors.sources import KafkaSource

    if keys_url is None:
        raise click.UsageError("pass --keys URL (the workers' PostgreSQL database) or set "
                               "JOURNEY_KEYS_URL")
    source = KafkaSource(bootstrap, source_topic)
    with open_publisher(bootstrap, (target_topic,)) as producer:
        cipher = open_sealer(keys_url=keys_url)
        snapshot_total = source.remaining(source.snapshot(), source.start(source.snapshot()))
        with ctx.progress(snapshot_total, "rec", "copy") as advance:
            summary = copy_topic_sealed(source, producer, target_topic, cipher, on_batch=advance)
    click.echo(f"read {summary.read} records: {summary.sealed} sealed, {summary.copied} copied "
               f"as they were, {summary.dropped} dropped (tombstones, erased patients)")
