"""The fold: one patient's sorted history into the clinical facts every projection reads.

One handler per event class (a dict keyed by class, as in an event-sourced
``mutate``); no raw dicts, no I/O.  Later projections (lines, outcomes,
schedule) derive everything from :class:`PatientFacts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mbcjourney.events.catalogue import (
    BiomarkerRecorded,
    BiopsyPerformed,
    ClinicalEvent,
    ClinicalExamRecorded,
    ConsentWithdrawn,
    DeathRecorded,
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


@dataclass
class PatientFacts:
    """Everything a patient's history says, in clinical order within each list."""

    patient_id: str
    inclusion: PatientIncluded | None = None
    repeated_inclusions: list[PatientIncluded] = field(default_factory=list)
    ihcs: list[IhcRecorded] = field(default_factory=list)
    crisis_assessments: list[VisceralCrisisAssessed] = field(default_factory=list)
    line_events: list[LineStarted | LineModified | LineEnded] = field(default_factory=list)
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
    # progressions: progression.documented and any imaging with RECIST PD, sorted.
    progression_dates: list[date] = field(default_factory=list)


def _included(f: PatientFacts, e: PatientIncluded) -> None:
    if f.inclusion is None:
        f.inclusion = e
    else:
        f.repeated_inclusions.append(e)


def _death(f: PatientFacts, e: DeathRecorded) -> None:
    if f.death is None:
        f.death = e


def _lost(f: PatientFacts, e: FollowupLost) -> None:
    if f.lost is None:
        f.lost = e


def _withdrawn(f: PatientFacts, e: ConsentWithdrawn) -> None:
    if f.withdrawn is None:
        f.withdrawn = e


def _ignore(f: PatientFacts, e: Any) -> None:
    """Collected by other projections (labs, exams, questionnaires, biomarkers)."""


_HANDLERS: dict[type[Any], Callable[[PatientFacts, Any], None]] = {
    PatientIncluded: _included,
    IhcRecorded: lambda f, e: f.ihcs.append(e),
    VisceralCrisisAssessed: lambda f, e: f.crisis_assessments.append(e),
    LineStarted: lambda f, e: f.line_events.append(e),
    LineModified: lambda f, e: f.line_events.append(e),
    LineEnded: lambda f, e: f.line_events.append(e),
    ImagingPerformed: lambda f, e: f.imaging.append(e),
    ProgressionDocumented: lambda f, e: f.progressions.append(e),
    BiopsyPerformed: lambda f, e: f.biopsies.append(e),
    DeathRecorded: _death,
    FollowupLost: _lost,
    ConsentWithdrawn: _withdrawn,
    LabRecorded: _ignore,
    ClinicalExamRecorded: _ignore,
    QuestionnaireRecorded: _ignore,
    BiomarkerRecorded: _ignore,
}


def collect_facts(history: PatientHistory) -> PatientFacts:
    facts = PatientFacts(history.patient_id)
    for event in history.events:
        if facts.first_event is None:
            facts.first_event = event
        if facts.death is not None and event.occurred_on > facts.death.occurred_on:
            facts.after_death.append(event)
        _HANDLERS[type(event)](facts, event)
        facts.last_fact_date = event.occurred_on  # history is sorted: the last is the latest
    bone_scan, pd = Modality.BONE_SCAN, RecistResponse.PD
    for image in facts.imaging:
        (facts.bone_scans if image.payload.modality is bone_scan
         else facts.tumour_assessments).append(image)
    dates = [p.occurred_on for p in facts.progressions]
    dates += [i.occurred_on for i in facts.imaging if i.payload.recist_response is pd]
    facts.progression_dates = sorted(dates)
    return facts
