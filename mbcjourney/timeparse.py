"""Dates and instants named on the command line, parsed and range-checked in one place.

A date outside ``EARLIEST_DATE``..``LATEST_DATE`` (``events/limits.py``) is refused
with the range, rather than overflowing later in date arithmetic (a due date, the
end of a day) with a traceback.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from mbcjourney.events.limits import EARLIEST_DATE, LATEST_DATE


class BadTime(ValueError):
    """A date or date-time option that cannot be used; the message says why."""


def _in_range(day: date) -> None:
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise BadTime(f"out of range: dates from {EARLIEST_DATE} to {LATEST_DATE}")


def parse_date(value: str) -> date:
    """``YYYY-MM-DD`` within the supported range."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise BadTime("expected a date YYYY-MM-DD") from None
    _in_range(day)
    return day


def parse_instant(value: str) -> datetime:
    """An ISO date-time (UTC when it has no zone); a bare date means the end of that day."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadTime("expected an ISO date-time, e.g. 2026-01-31T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # a date or naive time is read as UTC
    try:
        _in_range(moment.astimezone(UTC).date())
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is past year 9999 in UTC
        raise BadTime(f"out of range: dates from {EARLIEST_DATE} to {LATEST_DATE}") from None
    _in_range(moment.date())
    if len(value) == 10:  # a bare date means the end of that day
        from mbcjourney.engine import end_of_day

        moment = end_of_day(moment.date())
    return moment
