"""Properties of the journey projection over random, valid patient histories.

DESIGN section 2 and 9: projections are defined over the history sorted by
clinical time, so arrival order never changes a result; "as known at T" is the
export made at T; the data cut-off ignores what occurred after it; a duplicate
event changes nothing; a correction (retraction + right fact) equals the right
fact alone.

Histories are drawn with the test builder: an inclusion (usually), a few IHCs,
up to three lines (brand and unknown drug names, modifications, ends), imaging
of every modality and response, progressions (some adding bone), biopsies, a
death / loss / withdrawal now and then, retractions (some of events never
received) and late recordings.  Clinical days are drawn from spans as short as a
week so that same-day facts -- where order bugs hide -- are common.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mbcjourney.engine import project
from mbcjourney.events import ClinicalEvent
from mbcjourney.projections import EVERYTHING, Journey, View
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.support.builders import PatientBuilder

PID = "P-000042"
BASE = date(2025, 1, 6)
SPAN = 150  # clinical days drawn in [0, SPAN]

DRUGS = ("paclitaxel", "Taxol", "docetaxel", "nab-paclitaxel", "trastuzumab", "Perjeta",
         "letrozole", "palbociclib", "capecitabine", "epirubicin", "bevacizumab",
         "denosumab", "Xyzzimab")
RESPONSES = (None, "CR", "PR", "SD", "PD", "NE")
MODALITIES = ("CT", "PET-CT", "MRI", "other", "bone_scan")
FACT_KINDS = ("ihc", "ihc", "crisis", "imaging", "imaging", "imaging", "progression", "biopsy",
              "death", "lost", "withdrawn")

PROPERTY = settings(max_examples=150, deadline=None)

@dataclass
class History:
    """A drawn history and the builder that made it (to add more facts with fresh ids)."""

    builder: PatientBuilder
    events: list[ClinicalEvent] = field(default_factory=list)
    line_refs: list[str] = field(default_factory=list)


def journey(events: list[ClinicalEvent], view: View = EVERYTHING) -> Journey:
    return project(PID, events, DEFAULT_CLINICAL, view)


def _day(offset: int) -> date:
    return BASE + timedelta(days=offset)


def _occurred(draw: st.DrawFn, offset: int) -> str:
    """A clinical date, or now and then a date-time on that date."""
    day = _day(offset).isoformat()
    hour = draw(st.sampled_from((None, None, None, 0, 9, 23)))
    return day if hour is None else f"{day}T{hour:02d}:30:00"


def _record(draw: st.DrawFn, p: PatientBuilder, offset: int) -> None:
    """Set when the next fact is recorded: mostly the same day, sometimes weeks late."""
    lag = draw(st.sampled_from((0, 0, 0, 1, 7, 30, 90)))
    hour = draw(st.sampled_from((0, 12, 23)))
    p.recorded = f"{_day(offset + lag).isoformat()}T{hour:02d}:00:00Z"


def draw_fact(draw: st.DrawFn, p: PatientBuilder, kind: str, offset: int,
              line_refs: list[str]) -> ClinicalEvent:
    """One clinical fact of ``kind`` on day ``offset`` (line events use ``line_refs``)."""
    _record(draw, p, offset)
    on = _occurred(draw, offset)
    if kind == "ihc":
        return p.ihc(on, er=draw(st.sampled_from((0, 0.5, 1, 5, 90))),
                     pr=draw(st.sampled_from((0, 50))),
                     her2=draw(st.sampled_from(("0", "1+", "2+", "3+"))),
                     ish=draw(st.sampled_from(("not_done", "amplified", "not_amplified",
                                               "equivocal"))))
    if kind == "crisis":
        return p.crisis(on, draw(st.booleans()))
    if kind == "imaging":
        return p.imaging(on, draw(st.sampled_from(RESPONSES)),
                         modality=draw(st.sampled_from(MODALITIES)))
    if kind == "progression":
        return p.progression(on, new_sites=draw(st.sampled_from(((), ("bone",), ("liver",)))))
    if kind == "biopsy":
        return p.biopsy(on, reason=draw(st.sampled_from(("baseline", "progression", "other"))))
    if kind == "death":
        return p.death(on)
    if kind == "lost":
        return p.lost(on)
    if kind == "withdrawn":
        return p.withdrawn(on, scope=draw(st.sampled_from(("stop_followup", "erase"))))
    if kind == "line":
        ref = f"L{len(line_refs) + 1}"
        line_refs.append(ref)
        drugs = draw(st.lists(st.sampled_from(DRUGS), min_size=1, max_size=3, unique=True))
        declared = draw(st.sampled_from((None, None, 1, 2, 3)))
        return p.line(on, ref, *drugs, declared=declared)
    if kind == "modified":
        ref = draw(st.sampled_from([*line_refs, "L9"]))
        stopped = draw(st.lists(st.sampled_from(DRUGS), max_size=1))
        added = draw(st.lists(st.sampled_from(DRUGS), min_size=0 if stopped else 1, max_size=1))
        return p.modified(on, ref, added=tuple(added), stopped=tuple(stopped))
    if kind == "ended":
        ref = draw(st.sampled_from([*line_refs, "L9"]))
        reason = draw(st.sampled_from(("progression", "toxicity", "completed", "patient_choice",
                                       "death", "other")))
        return p.ended(on, ref, reason)
    raise AssertionError(kind)


@st.composite
def histories(draw: st.DrawFn) -> History:
    p = PatientBuilder(PID)
    h = History(p)
    offsets = st.integers(0, draw(st.sampled_from((7, 45, SPAN))))  # short spans: many ties
    if draw(st.integers(0, 9)) > 0:  # one in ten patients is never included
        _record(draw, p, 0)
        sites = draw(st.sampled_from((("liver",), ("bone",), ("bone", "lung"), ("brain",))))
        h.events.append(p.included(_day(0).isoformat(), sites=sites))
    for _ in range(draw(st.integers(0, 3))):
        h.events.append(draw_fact(draw, p, "line", draw(offsets), h.line_refs))
    line_kinds = ("modified", "ended") if h.line_refs else ()
    kinds = draw(st.lists(st.sampled_from(FACT_KINDS + line_kinds * 2), max_size=10))
    for kind in kinds:
        h.events.append(draw_fact(draw, p, kind, draw(offsets), h.line_refs))
    for target in draw(st.lists(st.sampled_from(h.events), max_size=2, unique_by=id)
                       if h.events else st.just([])):
        offset = draw(offsets)
        _record(draw, p, offset)
        h.events.append(p.retract(_day(offset).isoformat(), target))
    if draw(st.integers(0, 9)) == 0:  # a retraction of an event the engine never received
        _record(draw, p, SPAN)
        ghost = p.imaging(_day(draw(offsets)).isoformat())
        h.events.append(p.retract(_day(SPAN).isoformat(), ghost))
    return h


views = st.builds(
    View,
    cutoff=st.one_of(st.none(), st.integers(0, SPAN).map(_day)),
    known_at=st.one_of(st.none(), st.integers(0, SPAN + 100).map(
        lambda n: datetime.combine(_day(n), time(12), tzinfo=UTC))),
)


# --- (1) arrival order ------------------------------------------------------------------


@PROPERTY
@given(h=histories(), view=views, data=st.data())
def test_any_arrival_order_gives_the_same_journey(h: History, view: View,
                                                  data: st.DataObject) -> None:
    """Patient row, lines, due assessments and findings do not depend on arrival order."""
    shuffled = data.draw(st.permutations(h.events))
    assert journey(shuffled, view) == journey(h.events, view)


# --- (2) known at T is the export made at T ---------------------------------------------


@PROPERTY
@given(h=histories(), day=st.integers(0, SPAN + 100), hour=st.sampled_from((0, 12, 23)),
       cutoff=st.one_of(st.none(), st.integers(0, SPAN).map(_day)))
def test_known_at_equals_the_events_recorded_by_then(h: History, day: int, hour: int,
                                                     cutoff: date | None) -> None:
    """Projecting with known_at=T == projecting only what had been recorded at T."""
    known_at = datetime.combine(_day(day), time(hour), tzinfo=UTC)
    exported = [e for e in h.events if e.recorded_at <= known_at]
    assert (journey(h.events, View(cutoff=cutoff, known_at=known_at))
            == journey(exported, View(cutoff=cutoff)))


@PROPERTY
@given(h=histories())
def test_known_at_a_recording_instant_includes_that_fact(h: History) -> None:
    """known_at is inclusive: at each event's own recorded_at the export holds it."""
    for instant in {e.recorded_at for e in h.events}:
        exported = [e for e in h.events if e.recorded_at <= instant]
        assert journey(h.events, View(known_at=instant)) == journey(exported)


# --- (3) facts after the cut-off ----------------------------------------------------------


@st.composite
def facts_between(draw: st.DrawFn, h: History, first: int, last: int,
                  kinds: tuple[str, ...] = (*FACT_KINDS, "line", "modified", "ended"),
                  min_size: int = 1, max_size: int = 6) -> list[ClinicalEvent]:
    """New facts (fresh ids from the history's builder) dated in [first, last]."""
    facts = []
    for kind in draw(st.lists(st.sampled_from(kinds), min_size=min_size, max_size=max_size)):
        chosen = "line" if kind in ("modified", "ended") and not h.line_refs else kind
        facts.append(draw_fact(draw, h.builder, chosen, draw(st.integers(first, last)),
                               h.line_refs))
    return facts


@PROPERTY
@given(h=histories(), cutoff=st.integers(0, SPAN), data=st.data())
def test_facts_after_the_cutoff_never_change_the_cutoff_projection(
        h: History, cutoff: int, data: st.DataObject) -> None:
    """Adding clinical facts that occurred after the cut-off (new lines, line ends and
    modifications, imaging, progressions, IHCs, death...) in any arrival order leaves
    the cut-off projection unchanged.

    Retractions are corrections of the record, not clinical facts: they are not added
    here (a retraction is honoured whatever its own date).
    """
    view = View(cutoff=_day(cutoff))
    before = journey(h.events, view)
    added = data.draw(facts_between(h, cutoff + 1, cutoff + 300))
    combined = data.draw(st.permutations(h.events + added))
    assert journey(combined, view) == before


# --- (4) duplicates --------------------------------------------------------------------


@PROPERTY
@given(h=histories(), view=views, data=st.data())
def test_a_duplicated_event_changes_nothing(h: History, view: View,
                                           data: st.DataObject) -> None:
    """The same event delivered twice (same id) is one fact; so is the same event
    re-sent later and stamped with a new recorded_at (a fact's identity excludes
    recorded_at), under any view."""
    if not h.events:
        return
    original = data.draw(st.sampled_from(h.events))
    lag = data.draw(st.sampled_from((timedelta(0), timedelta(hours=1), timedelta(days=40))))
    resent = original.model_copy(update={"recorded_at": original.recorded_at + lag})
    duplicated = data.draw(st.permutations([*h.events, original, resent]))
    assert journey(duplicated, view) == journey(h.events, view)


@PROPERTY
@given(h=histories())
def test_replaying_twice_gives_the_same_journey(h: History) -> None:
    """The whole log delivered twice over (a full redelivery) changes nothing."""
    assert journey(h.events + h.events) == journey(h.events)


# --- (5) a correction ------------------------------------------------------------------


@PROPERTY
@given(h=histories(), data=st.data())
def test_retraction_plus_corrected_fact_equals_the_correct_fact_alone(
        h: History, data: st.DataObject) -> None:
    """History + wrong fact + its retraction + the right fact == history + the right fact,
    in any arrival order (the retraction is dated and recorded on or after the wrong
    fact, as a correction would be)."""
    kinds = (*FACT_KINDS, "line", "modified", "ended")
    (wrong,) = data.draw(facts_between(h, 0, SPAN, kinds, 1, 1), label="wrong")
    offset = data.draw(st.integers((wrong.occurred_on - BASE).days, SPAN + 30))
    h.builder.recorded = max(wrong.recorded_at,
                             datetime.combine(_day(offset), time(12), tzinfo=UTC)
                             ).strftime("%Y-%m-%dT%H:%M:%SZ")
    retraction = h.builder.retract(_day(offset).isoformat(), wrong)
    right = data.draw(facts_between(h, 0, SPAN, kinds, 1, 1), label="right")
    corrected = data.draw(st.permutations([*h.events, wrong, retraction, *right]))
    assert journey(corrected) == journey([*h.events, *right])
