"""One patient's effective history: the input of every projection.

Projections are defined over the history sorted by clinical time, so the order
in which facts *arrived* never changes a result.  Three views are applied here,
once, before any projection runs:

* ``known_at``  -- bitemporal: only facts recorded at or before that instant;
* retractions   -- a retracted event is as if it had never been sent;
* ``cutoff``    -- the data cut-off: facts that occurred after that date are ignored;
* birth year    -- a fact dated before the patient's birth year (per the first
  inclusion) is set aside in ``before_birth``, as admission would have refused it
  had the inclusion arrived first: results never depend on arrival order.

A retraction corrects the record rather than stating a clinical fact, so it is
honoured whatever its own ``occurred_at``; it does respect ``known_at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from operator import itemgetter

from mbcjourney.events.catalogue import (
    EVENT_CLASSES,
    ClinicalEvent,
    EventRetracted,
    PatientIncluded,
)
from mbcjourney.events.envelope import Envelope

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
# The same ranks keyed by catalogue class (whose ``event_type`` is fixed): an event's
# class is at hand, its ``event_type`` string is one more object to fetch per event.
_RANK_BY_CLASS: dict[type[Envelope], int] = {
    cls: _SAME_DAY_RANK.get(cls.EVENT_TYPE, _OTHER_RANK) for cls in EVENT_CLASSES
}
_FIRST = itemgetter(0)

SortKey = tuple[date, time, int, datetime, int]


def clinical_sort_key(event: ClinicalEvent) -> SortKey:
    """Total order: clinical date, time of day (date-only first), order of care, recording, id.

    The id comes last as its 128-bit integer, which orders exactly as the UUID
    does but compares in C; ``occurred_at`` is read once rather than through
    ``occurred_on`` (this runs once per event on every rebuild).
    """
    occurred = event.occurred_at
    rank = _RANK_BY_CLASS.get(type(event))
    if rank is None:  # not a catalogue class
        rank = _SAME_DAY_RANK.get(event.event_type, _OTHER_RANK)
    if isinstance(occurred, datetime):
        return (occurred.date(), occurred.time(), rank, event.recorded_at, event.event_id.int)
    return (occurred, time.min, rank, event.recorded_at, event.event_id.int)


@dataclass(frozen=True)
class PatientHistory:
    patient_id: str
    events: tuple[ClinicalEvent, ...]  # clinical order, retracted and retraction events removed
    unknown_retractions: tuple[EventRetracted, ...] = ()  # retractions of events never seen
    before_birth: tuple[ClinicalEvent, ...] = ()  # facts dated before the birth year: left out


@dataclass(frozen=True)
class View:
    """Which slice of time a projection looks at (both bounds inclusive)."""

    cutoff: date | None = None
    known_at: datetime | None = None


EVERYTHING = View()


def build_history(patient_id: str, events: Iterable[ClinicalEvent], view: View = EVERYTHING
                  ) -> PatientHistory:
    """Apply ``view`` and retractions, drop repeated event ids, sort by clinical time.

    Each event's sort key is computed once, and sorting comes first: of events
    sharing an id, the one kept is then simply the first (the smallest key, and on
    equal keys the first sent).  The key also carries the clinical date the
    cut-off is tested against.
    """
    known_at = view.known_at
    keyed = [(clinical_sort_key(e), e) for e in events
             if known_at is None or e.recorded_at <= known_at]
    keyed.sort(key=_FIRST)  # stable: on equal keys, the order sent
    return history_of_sorted(patient_id, keyed, View(cutoff=view.cutoff))


Keyed = list[tuple[SortKey, ClinicalEvent]]


def sort_events(events: Iterable[ClinicalEvent]) -> Keyed:
    """Every event with its sort key, sorted (stable): for folding one patient's events
    under several views (:func:`history_of_sorted`) while sorting them once."""
    keyed = [(clinical_sort_key(e), e) for e in events]
    keyed.sort(key=_FIRST)
    return keyed


def history_of_sorted(patient_id: str, keyed: Keyed, view: View = EVERYTHING
                      ) -> PatientHistory:
    """:func:`build_history` of events already keyed and sorted by :func:`sort_events`.

    The same result as ``build_history(patient_id, events, view)``: dropping the
    events recorded after ``known_at`` from a stable sort leaves the others in the
    order sorting them alone gives.  Event classes are the catalogue's own (the
    fold routes them by exact class), so ``type(...) is`` stands for
    ``isinstance``, which is slow on pydantic models.
    """
    known_at, cutoff = view.known_at, view.cutoff
    seen: set[int] = set()  # ids, as the UUID's integer: cheaper to hash
    facts: list[tuple[int, ClinicalEvent]] = []
    retractions: list[EventRetracted] = []  # in clinical order
    for key, event in keyed:
        if known_at is not None and event.recorded_at > known_at:
            continue
        ident = key[-1]
        if ident in seen:
            continue  # the same id twice is one fact: the first in clinical order is kept
        seen.add(ident)
        if type(event) is EventRetracted:
            retractions.append(event)
        elif cutoff is None or key[0] <= cutoff:
            facts.append((ident, event))
    retracted = {r.payload.target_event_id.int for r in retractions}
    unknown = tuple(r for r in retractions if r.payload.target_event_id.int not in seen)
    kept = [e for ident, e in facts if ident not in retracted]
    born = next((e.payload.birth_year for e in kept if type(e) is PatientIncluded), None)
    if born is not None and kept[0].occurred_on.year < born:  # sorted: the first is earliest
        early = tuple(e for e in kept if e.occurred_on.year < born)
        return PatientHistory(patient_id, tuple(e for e in kept if e.occurred_on.year >= born),
                              unknown, early)
    return PatientHistory(patient_id, tuple(kept), unknown)
