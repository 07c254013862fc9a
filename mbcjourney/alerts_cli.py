"""``journey alerts deliver``: the embedded engine's open alerts to the centres' webhooks.

A thin shell over :mod:`mbcjourney.processors.webhook`; registers on the
``journey alerts`` group when :mod:`mbcjourney.cli` imports this module.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

import click

from mbcjourney.cli import Context, _date, _today, alerts, db_option, pass_context
from mbcjourney.engine import AlertRow
from mbcjourney.events.alerts import AlertRaised
from mbcjourney.processors.webhook import DeliveryLog, WebhookSender, deliver, load_webhooks


def raised_message(row: AlertRow, at: datetime) -> AlertRaised:
    """The ``alert.raised`` JSON of one ``journey alerts`` row, as the live topic carries it."""
    return AlertRaised(alert_id=UUID(row.alert_id), patient_id=row.patient_id, at=at,
                       centre=row.centre, assessment=row.assessment,
                       due_date=row.due_date, window_end=row.window_end, on=row.raised_on)


@alerts.command("deliver")
@click.option("--webhooks", required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='Centre -> URL, JSON or TOML: {"centres": {"C01": URL, "*": URL}}.')
@click.option("--as-of", "as_of", callback=_date, metavar="DATE",
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
    engine = ctx.engine(db)
    try:
        deliveries = DeliveryLog(engine.engine)
        deliveries.create()
        with ctx.progress(None, "pt", "alerts") as advance:
            rows = engine.alerts(as_of or _today(), on_patients=advance)
        now = datetime.now(UTC)
        messages = [raised_message(r, now) for r in rows if r.status == "open"]
        summary = deliver(messages, WebhookSender(routes, attempts=attempts), deliveries)
    finally:
        engine.close()
    click.echo(f"delivered {summary.delivered} alerts ({summary.already} delivered before, "
               f"{summary.failed} failed, {summary.unrouted} without a webhook)")
    if summary.failed or summary.unrouted:
        sys.exit(1)
