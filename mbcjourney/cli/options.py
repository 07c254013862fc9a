"""What every ``journey`` command shares: the context, the options, and parsing their values.

Command modules import from here (and :mod:`~mbcjourney.cli.output`), never
from each other, so the CLI has no import cycle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from mbcjourney.bootstrap import open_engine
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.events.limits import EARLIEST_DATE, LATEST_DATE
from mbcjourney.exports import FORMATS
from mbcjourney.projections.settings import ClinicalSettings
from mbcjourney.projections.views import end_of_day


class Context:
    """The ``journey`` group's options, handed to every command (``pass_context``)."""

    def __init__(self, settings: ClinicalSettings, quiet: bool) -> None:
        self.settings = settings
        self.quiet = quiet

    def engine(self, db: str | None, *, create: bool = False) -> EmbeddedEngine:
        """The embedded engine on ``--db`` (a context manager); only commands that write
        events may create it."""
        return open_engine(db, self.settings, create=create)

    @contextmanager
    def progress(self, total: int | None, unit: str, desc: str) -> Iterator[Callable[[int], None]]:
        bar = tqdm(total=total, unit=unit, desc=desc, disable=self.quiet or None,
                   file=sys.stderr, unit_scale=True, dynamic_ncols=True)
        try:
            yield bar.update
        finally:
            bar.close()


pass_context = click.make_pass_decorator(Context)

db_option = click.option(
    "--db", "db", envvar="JOURNEY_DB", default=None, metavar="URL",
    help="Database URL (default: JOURNEY_DB, else sqlite:///journey.db).",
)

bootstrap_option = click.option(
    "--bootstrap", required=True, envvar="JOURNEY_KAFKA_BOOTSTRAP", metavar="HOST:PORT",
    help="Kafka bootstrap servers, comma separated (or JOURNEY_KAFKA_BOOTSTRAP).")
topic_option = click.option(
    "--topic", default="mbc.clinical-events", show_default=True, metavar="NAME",
    help="Event topic (keyed by patient_id).")
dead_letter_topic_option = click.option(
    "--dead-letter-topic", default="mbc.dead-letter", show_default=True, metavar="NAME",
    help="Topic for rejected input (original bytes, reason in headers).")
publish_keys_option = click.option(
    "--keys", "keys_url", envvar="JOURNEY_KEYS_URL", default=None, metavar="URL",
    help="Key store of the deployment (or JOURNEY_KEYS_URL), usually the workers' "
         "PostgreSQL database: every value is sealed with its patient's key.")


def _in_range(day: date) -> None:
    # Far from the limits of Python's date, so a due date or the end of a day derived
    # from an option always exists (no OverflowError traceback later).
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise click.BadParameter(f"out of range: dates from {EARLIEST_DATE} to {LATEST_DATE}")


def parse_date(_ctx: Any, _param: Any, value: str | None) -> date | None:
    """``callback=`` of a DATE option: ``YYYY-MM-DD``, within ``events/limits.py``'s range."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected a date YYYY-MM-DD") from None
    _in_range(day)
    return day


def parse_instant(_ctx: Any, _param: Any, value: str | None) -> datetime | None:
    """``callback=`` of a DATE-TIME option: ISO 8601, UTC without a zone, a bare date its end."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO date-time, e.g. 2026-01-31T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a date or naive time is read as UTC
    try:
        _in_range(moment.astimezone(UTC).date())
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
        raise click.BadParameter(
            f"out of range: dates from {EARLIEST_DATE} to {LATEST_DATE}") from None
    _in_range(moment.date())
    if len(value) == 10:  # a bare date means the end of that day
        moment = end_of_day(moment.date())
    return moment


def today() -> date:
    """Today in UTC, the default ``--as-of`` of the alert commands."""
    return datetime.now(UTC).date()


def view_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--cutoff DATE`` and ``--known-at DATE-TIME``: the :class:`View` of a read."""
    func = click.option("--known-at", callback=parse_instant, metavar="DATE-TIME",
                        help="Use only facts recorded at or before this instant (UTC if no "
                             "zone; a bare date means the end of that day).")(func)
    func = click.option("--cutoff", callback=parse_date, metavar="DATE",
                        help="Data cut-off: ignore facts that occurred after DATE.")(func)
    return func


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--format`` and ``--output``: where and how a table is written."""
    func = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                        help="Write to FILE instead of standard output.")(func)
    func = click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv",
                        show_default=True, help="Output format.")(func)
    return func
