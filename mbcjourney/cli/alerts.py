"""``journey alerts`` (list, ``ack``, ``snooze``, ``deliver``): the embedded engine's alerts.

``deliver`` is a thin shell over :mod:`mbcjourney.processors.webhook`: the open
alerts to the centres' webhooks.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import click

from mbcjourney.cli.options import (
    Context,
    db_option,
    output_options,
    parse_date,
    pass_context,
    today,
)
from mbcjourney.cli.output import export_rows
from mbcjourney.engine import AlertRow, EmbeddedEngine
from mbcjourney.events.alerts import AlertAcknowledged, AlertRaised, AlertSnoozed
from mbcjourney.processors.webhook import DeliveryLog, WebhookSender, deliver, load_webhooks


@click.group(invoke_without_command=True)
@click.option("--as-of", "as_of", callback=parse_date, metavar="DATE",
              help="Alerts raised by DATE, with their status then (default: today, UTC).")
@click.option("--open", "only_open", is_flag=True, help="Only alerts open (and not snoozed).")
@click.option("--centre", metavar="C", help="Only patients of centre C.")
@db_option
@output_options
@click.pass_context
def alerts(click_ctx: click.Context, as_of: date | None, only_open: bool, centre: str | None,
           db: str | None, fmt: str, output: Path | None) -> None:
    """Overdue-assessment alerts: raised when a window passes, resolved when done.

    Without a sub-command, lists every alert the live system had raised by
    --as-of, exactly as it would have raised them from the same events.

    Example: journey alerts --open --centre C01 --as-of 2026-03-01 --db sqlite:///study.db
    """
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Context = click_ctx.obj
    with ctx.engine(db) as engine, ctx.progress(None, "pt", "alerts") as advance:
        rows = engine.alerts(as_of or today(), on_patients=advance)
    rows = [r for r in rows if (not only_open or r.status == "open")
            and (centre is None or r.centre == centre)]
    export_rows(rows, AlertRow, fmt, output)


def _find_alert(engine: EmbeddedEngine, alert_id: str) -> AlertRow:
    for row in engine.alerts(today()):
        if row.alert_id == alert_id:
            return row
    raise click.BadParameter(f"no alert {alert_id} (see `journey alerts`)", param_hint="ID")


@click.command("ack")
@click.argument("alert_id", metavar="ID")
@click.option("--by", required=True, metavar="NAME", help="Who acknowledges.")
@db_option
@pass_context
def alerts_ack(ctx: Context, alert_id: str, by: str, db: str | None) -> None:
    """Acknowledge alert ID (it stays open until the assessment is done).

    Example: journey alerts ack 5e440762-75c2-53ea-a844-ec3aaf79ce29 --by "J. Martin"
    """
    with ctx.engine(db) as engine:
        row = _find_alert(engine, alert_id)
        engine.actions.record(AlertAcknowledged(alert_id=UUID(row.alert_id),
                                                patient_id=row.patient_id,
                                                at=datetime.now(UTC), by=by))
    click.echo(f"acknowledged {alert_id}")


@click.command("snooze")
@click.argument("alert_id", metavar="ID")
@click.option("--until", "until", callback=parse_date, required=True, metavar="DATE",
              help="Hide the alert from --open until this date (inclusive).")
@click.option("--by", required=True, metavar="NAME", help="Who snoozes.")
@db_option
@pass_context
def alerts_snooze(ctx: Context, alert_id: str, until: date, by: str, db: str | None) -> None:
    """Snooze alert ID until DATE.

    Example: journey alerts snooze 5e440762-75c2-53ea-a844-ec3aaf79ce29 --until 2026-04-01 --by JM
    """
    with ctx.engine(db) as engine:
        row = _find_alert(engine, alert_id)
        engine.actions.record(AlertSnoozed(alert_id=UUID(row.alert_id),
                                           patient_id=row.patient_id, at=datetime.now(UTC),
                                           by=by, until=until))
    click.echo(f"snoozed {alert_id} until {until}")


def raised_message(row: AlertRow, at: datetime) -> AlertRaised:
    """The ``alert.raised`` JSON of one ``journey alerts`` row, as the live topic carries it."""
    return AlertRaised(alert_id=UUID(row.alert_id), patient_id=row.patient_id, at=at,
                       centre=row.centre, assessment=row.assessment,
                       due_date=row.due_date, window_end=row.window_end, on=row.raised_on)


@click.command("deliver")
@click.option("--webhooks", required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='Centre -> URL, JSON or TOML: {"centres": {"C01": URL, "*": URL}}.')
@click.option("--as-of", "as_of", callback=parse_date, metavar="DATE",
              help="Deliver the alerts open on DATE (default: today, UTC).")
@click.option("--attempts", default=5, show_default=True, type=click.IntRange(1),
              help="POST attempts per alert (exponential backoff from 0.5 s).")
@db_option
@pass_context
def alerts_deliver(ctx: Context, webhooks: Path, as_of: date | None, attempts: int,
                   db: str | None) -> None:
    """POST every open alert not yet delivered to its centre's webhook; record each delivery.

    At least once: an alert is recorded as delivered after a 2xx answer, and
    receivers deduplicate on alert_id.  Exit status 1 when an alert could not be
    delivered (it is tried again next time).

    Example: journey alerts deliver --webhooks webhooks.json --db sqlite:///study.db
    """
    routes = load_webhooks(webhooks)
    with ctx.engine(db) as engine:
        deliveries = DeliveryLog(engine.engine)
        deliveries.create()
        with ctx.progress(None, "pt", "alerts") as advance:
            rows = engine.alerts(as_of or today(), on_patients=advance)
        now = datetime.now(UTC)
        messages = [raised_message(r, now) for r in rows if r.status == "open"]
        summary = deliver(messages, WebhookSender(routes, attempts=attempts), deliveries)
    click.echo(f"delivered {summary.delivered} alerts ({summary.already} delivered before, "
               f"{summary.failed} failed, {summary.unrouted} without a webhook)")
    if summary.failed or summary.unrouted:
        sys.exit(1)
