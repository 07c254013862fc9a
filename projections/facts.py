"""The fold: one patient's sorted history into the clinical facts every projection reads.

Each event class is routed to its list (a dict keyed by class, as in an
event-sourced ``mutate``); no raw dicts, no I/O.  Later projections (lines, outcomes,
schedule) derive everything from :class:`PatientFacts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from mbcjourney.events.catalogue import (
    BiomarkerRecorded,
    BiopsyPerformed,
    ClinicalEvent,
    ClinicalExamRecorded,
    ConsentWithdrawn,
    DeathRecorded,
    DrugAdministered,
    FollowupLost,
    IhcRecorded,
    ImagingPerformed,
    LabRecorded,
    LineEnded,
    LineModified,
    LineStarted,
    PatientIncluded,
    ProgressionDocumented,
    QuestionnaireRecorded,
    VisceralCrisisAssessed,
)
from mbcjourney.events.vocabulary import Modality, RecistResponse
from mbcjourney.projections.history import PatientHistory

T = TypeVar("T")


@dataclass
class PatientFacts:
    """Everything a patient's history says, in clinical order within each list."""

    patient_id: str
    inclusion: PatientIncluded | None = None
    repeated_inclusions: list[PatientIncluded] = field(default_factory=list)
    ihcs: list[IhcRecorded] = field(default_factory=list)
    crisis_assessments: list[VisceralCrisisAssessed] = field(default_factory=list)
    line_events: list[LineStarted | LineModified | LineEnded] = field(default_factory=list)
    administrations: list[DrugAdministered] = field(default_factory=list)
    imaging: list[ImagingPerformed] = field(default_factory=list)
    progressions: list[ProgressionDocumented] = field(default_factory=list)
    biopsies: list[BiopsyPerformed] = field(default_factory=list)
    death: DeathRecorded | None = None
    lost: FollowupLost | None = None
    withdrawn: ConsentWithdrawn | None = None
    last_fact_date: date | None = None
    first_event: ClinicalEvent | None = None
    after_death: list[ClinicalEvent] = field(default_factory=list)
    # Derived once the fold is complete (see collect_facts):
    # imaging other than bone scans, which drives censoring, best response and the schedule;
    tumour_assessments: list[ImagingPerformed] = field(default_factory=list)
    bone_scans: list[ImagingPerformed] = field(default_factory=list)
    # ... their dates and RECIST responses, read once for every line's outcome;
    tumour_assessment_dates: list[date] = field(default_factory=list)
    tumour_assessment_responses: list[RecistResponse | None] = field(default_factory=list)
    # progressions: progression.documented and any imaging with RECIST PD, sorted.
    progression_dates: list[date] = field(default_factory=list)


def _first(items: list[T]) -> T | None:
    return items[0] if items else None


def collect_facts(history: PatientHistory) -> PatientFacts:
    """Route every event to its list in one pass, then derive the first-of and sorted views.

    The routing table maps each class to a bound ``list.append`` (a C call, no
    Python frame per event): this loop runs once per event on every rebuild.
    """
    facts = PatientFacts(history.patient_id)
    events = history.events
    inclusions: list[PatientIncluded] = []
    deaths: list[DeathRecorded] = []
    losses: list[FollowupLost] = []
    withdrawals: list[ConsentWithdrawn] = []
    ignored: list[ClinicalEvent] = []  # collected by other projections (labs, exams, ...)
    route: dict[type[Any], Callable[[Any], None]] = {
        PatientIncluded: inclusions.append,
        IhcRecorded: facts.ihcs.append,
        VisceralCrisisAssessed: facts.crisis_assessments.append,
        LineStarted: facts.line_events.append,
        LineModified: facts.line_events.append,
        LineEnded: facts.line_events.append,
        DrugAdministered: facts.administrations.append,
        ImagingPerformed: facts.imaging.append,
        ProgressionDocumented: facts.progressions.append,
        BiopsyPerformed: facts.biopsies.append,
        DeathRecorded: deaths.append,
        FollowupLost: losses.append,
        ConsentWithdrawn: withdrawals.append,
        LabRecorded: ignored.append,
        ClinicalExamRecorded: ignored.append,
        QuestionnaireRecorded: ignored.append,
        BiomarkerRecorded: ignored.append,
    }
    for event in events:
        route[type(event)](event)

    if inclusions:
        facts.inclusion = inclusions[0]
        facts.repeated_inclusions = inclusions[1:]
    facts.death = _first(deaths)
    facts.lost = _first(losses)
    facts.withdrawn = _first(withdrawals)
    if events:
        facts.first_event = events[0]
        facts.last_fact_date = events[-1].occurred_on  # history is sorted: the last is the latest
    if facts.death is not None:
        facts.after_death = _after(events, facts.death)

    pd_dates = _split_imaging(facts)
    dates = [p.occurred_on for p in facts.progressions]
    dates += pd_dates
    facts.progression_dates = sorted(dates)
    return facts


def _split_imaging(facts: PatientFacts) -> list[date]:
    """Separate bone scans from tumour assessments, reading each image's fields once.

    Returns the dates of images with a RECIST PD (bone scans included).
    """
    bone_scan, pd = Modality.BONE_SCAN, RecistResponse.PD
    pd_dates: list[date] = []
    for image in facts.imaging:
        payload, day = image.payload, image.occurred_on
        response = payload.recist_response
        if payload.modality is bone_scan:
            facts.bone_scans.append(image)
        else:
            facts.tumour_assessments.append(image)
            facts.tumour_assessment_dates.append(day)
            facts.tumour_assessment_responses.append(response)
        if response is pd:
            pd_dates.append(day)
    return pd_dates


def _after(events: tuple[ClinicalEvent, ...], death: DeathRecorded) -> list[ClinicalEvent]:
    """Events after the (first) death that occurred on a later day.

    The history is sorted, so the death sits near the end: it is looked for from there.
    """
    position = len(events) - 1
    while events[position] is not death:
        position -= 1
    died_on = death.occurred_on
    return [e for e in events[position + 1:] if e.occurred_on > died_on]
