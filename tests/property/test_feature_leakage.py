"""No leakage: a line's features are what was known at its start, t0 (issue 17).

Property: adding any fact that occurred after t0, or that was recorded after the
end of t0's day, never changes that row's features (its labels may change: they
read the whole history up to the cut-off).  Histories are the projection
properties' (tests/property/test_projection_properties.py) plus clinical exams,
labs and biomarkers, the observations declared features read.

And a deliberately leaky declared feature -- a biomarker that occurred before t0
but was recorded weeks after -- is absent as known, and present ``as_occurred``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import cast

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mbcjourney.events import ClinicalEvent
from mbcjourney.projections.features import (
    BUILTINS,
    DeclaredFeature,
    FeatureRow,
    FeatureSpec,
    feature_rows,
)
from mbcjourney.settings import DEFAULT_CLINICAL
from tests.property.test_projection_properties import (
    BASE,
    FACT_KINDS,
    PID,
    SPAN,
    History,
    draw_fact,
    histories,
)
from tests.support.builders import PatientBuilder

SPEC = FeatureSpec(BUILTINS, (
    DeclaredFeature("pik3ca", "biomarker.recorded", "result", 3650, (("marker", "PIK3CA"),)),
    DeclaredFeature("ca153", "lab.recorded", "value", 60, (("test", "CA 15-3"),)),
))
OBSERVATIONS = ("exam", "lab", "biomarker")


def rows(events: list[ClinicalEvent], *, as_occurred: bool = False
         ) -> dict[tuple[str, date], FeatureRow]:
    """The rows by (line_ref, start): a row's identity, whatever its number."""
    found = feature_rows(PID, events, SPEC, DEFAULT_CLINICAL, as_occurred=as_occurred)
    return {(r.line_ref, r.start_date): r for r in found}


def observation(draw: st.DrawFn, p: PatientBuilder, kind: str, on: str) -> ClinicalEvent:
    if kind == "exam":
        return p.event("clinical_exam.recorded", on, {
            "ecog": draw(st.integers(0, 4)), "weight_kg": draw(st.sampled_from((55.0, 80.5)))})
    if kind == "lab":
        return p.event("lab.recorded", on, {
            "test": draw(st.sampled_from(("CA 15-3", "creatinine"))),
            "value": draw(st.sampled_from((12.0, 80.0))), "unit": "U/mL"})
    return p.event("biomarker.recorded", on, {
        "assay": "NGS", "marker": draw(st.sampled_from(("PIK3CA", "ESR1"))),
        "result": draw(st.sampled_from(("mutated", "wild_type")))})


@st.composite
def with_observations(draw: st.DrawFn) -> History:
    h = draw(histories())
    p = h.builder
    for _ in range(draw(st.integers(0, 6))):
        offset = draw(st.integers(0, SPAN))
        lag = draw(st.sampled_from((0, 0, 3, 40)))
        p.recorded = f"{(BASE + timedelta(days=offset + lag)).isoformat()}T12:00:00Z"
        h.events.append(observation(draw, p, draw(st.sampled_from(OBSERVATIONS)),
                                    (BASE + timedelta(days=offset)).isoformat()))
    return h


@settings(max_examples=200, deadline=None)
@given(h=with_observations(), data=st.data())
def test_a_fact_after_t0_never_changes_the_row(h: History, data: st.DataObject) -> None:
    before = rows(h.events)
    assume(before)
    key = data.draw(st.sampled_from(sorted(before)), label="row")
    t0 = before[key].start_date
    p = h.builder
    late_recording = data.draw(st.booleans(), label="recorded late (else occurred late)")
    if late_recording:  # occurred any time, recorded from the day after t0
        occurred = data.draw(st.integers(-5, SPAN + 30).map(lambda n: BASE + timedelta(n)))
        recorded = max(occurred, t0 + timedelta(days=1)) + timedelta(
            days=data.draw(st.integers(0, 60)))
    else:  # occurred after t0, recorded whenever after that
        occurred = t0 + timedelta(days=data.draw(st.integers(1, 200)))
        recorded = occurred + timedelta(days=data.draw(st.integers(0, 30)))
    kind = data.draw(st.sampled_from((*FACT_KINDS, "line", "modified", "ended", "retraction",
                                      *OBSERVATIONS)), label="kind")
    offset = (occurred - BASE).days
    if kind in OBSERVATIONS:
        p.recorded = f"{recorded.isoformat()}T00:00:00Z"
        extra = observation(cast(st.DrawFn, data.draw), p, kind, occurred.isoformat())
    elif kind == "retraction":
        p.recorded = f"{recorded.isoformat()}T00:00:00Z"
        extra = p.retract(occurred.isoformat(), data.draw(st.sampled_from(h.events)))
    else:
        extra = draw_fact(cast(st.DrawFn, data.draw), p, kind, offset, list(h.line_refs))
        extra = extra.model_copy(update={
            "occurred_at": occurred,
            "recorded_at": extra.recorded_at.replace(
                year=recorded.year, month=recorded.month, day=recorded.day, hour=0)})
    after = rows([*h.events, extra])
    if key in after:  # the row may be gone (its line retracted, the patient erased)
        assert after[key].features == before[key].features


def test_a_value_recorded_after_t0_is_absent_as_known_and_present_as_occurred() -> None:
    """The PIK3CA result was sequenced before line 1 but recorded three weeks after it."""
    p = PatientBuilder(PID, recorded="2025-01-06T10:00:00Z")
    events = [
        p.included("2025-01-06"),
        p.ihc("2025-01-06"),
        p.event("biomarker.recorded", "2025-01-10", {
            "assay": "NGS", "marker": "PIK3CA", "result": "mutated"},
            recorded="2025-02-10T09:00:00Z"),
        p.line("2025-01-20", "L1", "letrozole", "palbociclib", recorded="2025-01-20T18:00:00Z"),
    ]
    known = rows(events)
    occurred = rows(events, as_occurred=True)
    (key,) = known
    assert known[key].features["pik3ca"] is None
    assert known[key].features["pik3ca_missing"] is True
    assert occurred[key].features["pik3ca"] == "mutated"
    assert occurred[key].features["pik3ca_missing"] is False
