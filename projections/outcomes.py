"""Outcomes per line (DESIGN section 8): TTP, PFS, TTNT and best overall response.

Day counts are calendar-date differences.  A progression belongs to line k when
``start_k <= date <= start_(k+1)`` -- a tie with the next line's start goes to
the earlier line -- and the first one counts.

* TTP: event at that progression; otherwise censored at the last tumour
  assessment within the line, or at the line start (0 days) when there is none.
  Death is censored.
* PFS: as TTP, but death before the next line's start with no progression on
  the line is an event at the death date.
* TTNT: event at the next line's start or death, whichever is first; otherwise
  censored at the patient's last fact date.
The data cut-off is applied to the history before this runs.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import date

from mbcjourney.events.vocabulary import RecistResponse
from mbcjourney.projections.facts import PatientFacts
from mbcjourney.projections.lines import Line

# Best response ranking, best first: CR > PR > SD > PD > NE (unconfirmed).
RESPONSE_RANK = {r: i for i, r in enumerate(
    (RecistResponse.CR, RecistResponse.PR, RecistResponse.SD, RecistResponse.PD, RecistResponse.NE)
)}


@dataclass(frozen=True)
class TimeToEvent:
    days: int
    event: bool


@dataclass(frozen=True)
class LineOutcome:
    progression_date: date | None
    ttp: TimeToEvent
    pfs: TimeToEvent
    ttnt: TimeToEvent
    best_response: RecistResponse | None


def first_progression(line: Line, progression_dates: list[date]) -> date | None:
    """First progression with ``start <= date <= next start``, not taken by the line before."""
    claimed_by_previous = line.number > 1  # a progression on this start day is the previous line's
    for day in progression_dates:  # sorted
        if day == line.start and claimed_by_previous:
            continue
        if line.start <= day and (line.next_start is None or day <= line.next_start):
            return day
    return None


def assessments_within(line: Line, facts: PatientFacts) -> slice:
    """The tumour assessments :meth:`Line.within` the line, as a slice of ``facts``.

    The history is sorted, so their dates are: two bisections replace a scan
    of every assessment for every line.
    """
    dates = facts.tumour_assessment_dates
    first = bisect_left(dates, line.start)
    stop = len(dates) if line.next_start is None else bisect_left(dates, line.next_start)
    return slice(first, max(first, stop))


def line_outcome(line: Line, facts: PatientFacts) -> LineOutcome:
    start = line.start
    progression = first_progression(line, facts.progression_dates)
    within = assessments_within(line, facts)

    if progression is not None:
        ttp = TimeToEvent((progression - start).days, True)
    else:
        empty = within.stop == within.start
        last = start if empty else facts.tumour_assessment_dates[within.stop - 1]
        ttp = TimeToEvent((last - start).days, False)

    pfs = ttp
    death = facts.death.occurred_on if facts.death else None
    if (
        progression is None
        and death is not None
        and death >= start
        and (line.next_start is None or death < line.next_start)
    ):
        pfs = TimeToEvent((death - start).days, True)

    ends = [d for d in (line.next_start, death) if d is not None and d >= start]
    if ends:
        ttnt = TimeToEvent((min(ends) - start).days, True)
    else:
        last_fact = facts.last_fact_date or start
        ttnt = TimeToEvent((last_fact - start).days, False)

    responses = [r for r in facts.tumour_assessment_responses[within] if r]
    best = min(responses, key=RESPONSE_RANK.__getitem__) if responses else None
    return LineOutcome(progression, ttp, pfs, ttnt, best)
