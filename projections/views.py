"""Folding a patient's events into a journey, and the views the commands ask for.

:func:`project` is the one way every deployment (the embedded engine, a replay,
the live worker) turns a patient's events into a :class:`Journey`; the views
say which facts it sees ("as of DATE": occurred and recorded by the end of that
day, in UTC).  Pure: the dates are arguments, no clock is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from mbcjourney.events.catalogue import ClinicalEvent
from mbcjourney.projections.history import EVERYTHING, View, build_history
from mbcjourney.projections.journey import Journey, project_journey
from mbcjourney.projections.settings import ClinicalSettings

__all__ = ["end_of_day", "overdue_view", "project"]


def end_of_day(day: date) -> datetime:
    """The last instant of ``day`` in UTC: "recorded on or before DATE"."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) - timedelta(
        microseconds=1)


def overdue_view(as_of: date, view: View = EVERYTHING) -> View:
    """Facts that occurred and were recorded on or before ``as_of`` (within ``view``)."""
    cutoff = as_of if view.cutoff is None else min(view.cutoff, as_of)
    known = end_of_day(as_of) if view.known_at is None else min(view.known_at, end_of_day(as_of))
    return View(cutoff=cutoff, known_at=known)


def project(patient_id: str, events: Iterable[ClinicalEvent], settings: ClinicalSettings,
            view: View = EVERYTHING) -> Journey:
    """The one way every deployment turns a patient's events into a journey."""
    return project_journey(build_history(patient_id, events, view), settings)
