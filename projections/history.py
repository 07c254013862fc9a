"""One patient's effective history: the input of every projection.

Projections are defined over the history sorted by clinical time, so the order
in which facts *arrived* never changes a result.  Three views are applied here,
once, before any projection runs:

* ``known_at``  -- bitemporal: only facts recorded at or before that instant;
* retractions   -- a retracted event is as if it had never been sent;
* ``cutoff``    -- the data cut-off: facts that occurred after that date are ignored.

A retraction corrects the record rather than stating a clinical fact, so it is
honoured whatever its own ``occurred_at``; it does respect ``known_at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from uuid import UUID

from mbcjourney.events.catalogue import ClinicalEvent, EventRetracted

# Within one clinical moment, facts follow the order of care: a patient is included
# before a line starts, a line starts before it is modified or ended, death comes last.
# Sources often send same-day facts in another order (a modification recorded first).
_SAME_DAY_RANK: dict[str, int] = {
    "patient.included": 0,
    "ihc.recorded": 1,
    "visceral_crisis.assessed": 1,
    "line.started": 2,
    "line.modified": 3,
    "line.ended": 5,
    "followup.lost": 6,
    "consent.withdrawn": 6,
    "death.recorded": 7,
}
_OTHER_RANK = 4


def clinical_sort_key(event: ClinicalEvent) -> tuple[date, time, int, datetime, UUID]:
    """Total order: clinical date, time of day (date-only first), order of care, recording, id."""
    occurred = event.occurred_at
    moment = occurred.time() if isinstance(occurred, datetime) else time.min
    rank = _SAME_DAY_RANK.get(event.event_type, _OTHER_RANK)
    return (event.occurred_on, moment, rank, event.recorded_at, event.event_id)


@dataclass(frozen=True)
class PatientHistory:
    patient_id: str
    events: tuple[ClinicalEvent, ...]  # clinical order, retracted and retraction events removed
    unknown_retractions: tuple[EventRetracted, ...] = ()  # retractions of events never seen


@dataclass(frozen=True)
class View:
    """Which slice of time a projection looks at (both bounds inclusive)."""

    cutoff: date | None = None
    known_at: datetime | None = None


EVERYTHING = View()


def build_history(patient_id: str, events: Iterable[ClinicalEvent], view: View = EVERYTHING
                  ) -> PatientHistory:
    """Apply ``view`` and retractions, drop repeated event ids, sort by clinical time."""
    unique: dict[int, ClinicalEvent] = {}  # keyed by the UUID's integer: cheaper to hash
    for event in events:
        if view.known_at is not None and event.recorded_at > view.known_at:
            continue
        key = event.event_id.int
        kept = unique.get(key)
        if kept is None or clinical_sort_key(event) < clinical_sort_key(kept):
            unique[key] = event  # the same id twice is one fact; keep a deterministic one
    retractions = [e for e in unique.values() if isinstance(e, EventRetracted)]
    retracted = {r.payload.target_event_id.int for r in retractions}
    facts = [
        e for key, e in unique.items()
        if key not in retracted
        and not isinstance(e, EventRetracted)
        and (view.cutoff is None or e.occurred_on <= view.cutoff)
    ]
    facts.sort(key=clinical_sort_key)
    unknown = tuple(
        sorted(
            (r for r in retractions if r.payload.target_event_id.int not in unique),
            key=clinical_sort_key,
        )
    )
    return PatientHistory(patient_id, tuple(facts), unknown)
