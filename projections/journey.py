"""The patient-journey projection: one patient's history in, the output contract's rows out.

This is the built-in projection that every deployment runs with the same code:
the embedded engine, the faust workers, replay and the tests.  It is a pure
function of a :class:`PatientHistory` and the clinical settings.

Rules not spelled out elsewhere (DESIGN section 8):
* The inclusion IHC is the last ``ihc.recorded`` dated on or before the first
  line's start (no line yet: the last so far); when none, the first one after.
* Receptor conversion: an IHC dated after the inclusion IHC gives a different
  HR status or a different definitive (positive/negative) HER2 status.
* Visceral crisis: the last assessment dated on or before the first line's
  start, else the first after; no assessment means no crisis.
* A ``consent.withdrawn`` with scope ``erase`` removes the patient from every
  analytic output (``Journey.erased``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from mbcjourney.events.catalogue import IhcRecorded
from mbcjourney.events.envelope import Envelope
from mbcjourney.events.vocabulary import RecistResponse, WithdrawalScope
from mbcjourney.projections.concordance import first_line_concordant
from mbcjourney.projections.facts import PatientFacts, collect_facts
from mbcjourney.projections.findings import Finding, FindingKind
from mbcjourney.projections.history import PatientHistory
from mbcjourney.projections.lines import Line, derive_lines, line_in_progress
from mbcjourney.projections.outcomes import line_outcome
from mbcjourney.projections.receptors import (
    Group,
    Her2Status,
    HrStatus,
    ReceptorProfile,
    classify,
)
from mbcjourney.projections.schedule import DueAssessment, due_assessments
from mbcjourney.projections.settings import ClinicalSettings


class PatientStatus(StrEnum):
    NOT_STARTED = "not_started"
    ON_TREATMENT = "on_treatment"
    BETWEEN_LINES = "between_lines"
    DECEASED = "deceased"
    LOST_TO_FOLLOWUP = "lost_to_followup"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class PatientRow:
    """One row of ``journey export patients`` (column order is the contract)."""

    patient_id: str
    inclusion_date: date | None
    group: str
    hr_status: str
    her2_status: str
    her2_low: bool | None
    receptor_conversion: bool
    current_line: int | None
    current_regimen: str | None
    status: str
    first_line_concordant: str  # "true", "false", "unknown"


@dataclass(frozen=True)
class LineRow:
    """One row of ``journey export lines`` (column order is the contract)."""

    patient_id: str
    line_number: int
    regimen: str
    start_date: date
    end_date: date | None
    end_reason: str | None
    progression_date: date | None
    ttp_days: int
    ttp_event: bool
    pfs_days: int
    pfs_event: bool
    ttnt_days: int
    ttnt_event: bool
    best_response: str | None
    line_source: str = "declared"  # "derived" when built from drug.administered


@dataclass(frozen=True)
class Journey:
    patient_id: str
    erased: bool
    patient: PatientRow
    lines: tuple[LineRow, ...]
    due: tuple[DueAssessment, ...]
    findings: tuple[Finding, ...]
    profile: ReceptorProfile | None  # of the inclusion IHC
    empty: bool = False  # no fact in view (all retracted, or recorded after known_at)
    centre: str | None = None  # of the inclusion: where the patient's alerts are routed

    @property
    def reportable(self) -> bool:
        """Whether the patient appears in the analytic outputs at all."""
        return not (self.erased or self.empty)


def _anchor(items: Sequence[Envelope], first_start: date | None) -> int | None:
    """Index of the last item on or before the first line's start (or the last so far),
    else of the first after; None when there is no item."""
    if not items:
        return None
    if first_start is None:
        return len(items) - 1
    last_before = 0
    for index, item in enumerate(items):
        if item.occurred_on <= first_start:
            last_before = index
    return last_before


def inclusion_profile(facts: PatientFacts, lines: list[Line], s: ClinicalSettings
                      ) -> tuple[IhcRecorded | None, ReceptorProfile | None]:
    """The inclusion IHC and its receptor profile (None when no IHC is known)."""
    index = _anchor(facts.ihcs, lines[0].start if lines else None)
    if index is None:
        return None, None
    anchor = facts.ihcs[index]
    return anchor, classify(anchor.payload, s)


def is_erased(facts: PatientFacts) -> bool:
    """Consent withdrawn with scope ``erase``: the patient leaves every analytic output."""
    return facts.withdrawn is not None and facts.withdrawn.payload.scope is WithdrawalScope.ERASE


def centre_of(facts: PatientFacts) -> str | None:
    """The patient's centre: the one named by the (first) inclusion."""
    return facts.inclusion.payload.centre if facts.inclusion is not None else None


def schedule_only(history: PatientHistory, s: ClinicalSettings) -> tuple[DueAssessment, ...]:
    """Just the assessment schedule of :func:`project_journey` (cheaper, for alert replay)."""
    facts = collect_facts(history)
    lines, _ = derive_lines(facts, s)
    _, profile = inclusion_profile(facts, lines, s)
    if is_erased(facts) or not history.events:
        return ()
    return tuple(due_assessments(facts, profile.group if profile else Group.UNKNOWN, lines, s))


def _status(facts: PatientFacts, lines: list[Line]) -> PatientStatus:
    if facts.death:
        return PatientStatus.DECEASED
    if facts.withdrawn:
        return PatientStatus.WITHDRAWN
    if facts.lost:
        return PatientStatus.LOST_TO_FOLLOWUP
    if line_in_progress(lines):
        return PatientStatus.ON_TREATMENT
    return PatientStatus.BETWEEN_LINES if lines else PatientStatus.NOT_STARTED


def _converted(ihcs: list[IhcRecorded], profiles: list[ReceptorProfile], inclusion: int
               ) -> bool:
    """Whether an IHC dated after the inclusion one (``ihcs[inclusion]``) changes the status."""
    definitive = (Her2Status.POSITIVE, Her2Status.NEGATIVE)
    included_on, profile = ihcs[inclusion].occurred_on, profiles[inclusion]
    for ihc, other in zip(ihcs, profiles, strict=True):
        if ihc.occurred_on <= included_on:
            continue
        if other.hr_status is not profile.hr_status:
            return True
        if (other.her2_status in definitive and profile.her2_status in definitive
                and other.her2_status is not profile.her2_status):
            return True
    return False


def _text(flag: bool | None) -> str:
    return "unknown" if flag is None else ("true" if flag else "false")


def project_journey(history: PatientHistory, s: ClinicalSettings) -> Journey:
    facts = collect_facts(history)
    pid = history.patient_id
    lines, findings = derive_lines(facts, s)
    first_start = lines[0].start if lines else None

    # Each IHC is classified once: for the inclusion profile, conversion and ISH findings.
    profiles = [classify(ihc.payload, s) for ihc in facts.ihcs]
    inclusion = _anchor(facts.ihcs, first_start)
    profile: ReceptorProfile | None = None
    conversion = False
    if inclusion is not None:
        profile = profiles[inclusion]
        conversion = _converted(facts.ihcs, profiles, inclusion)
        if profile.her2_status is Her2Status.PENDING:
            findings.append(Finding(pid, FindingKind.HER2_PENDING,
                                    str(facts.ihcs[inclusion].event_id)))
    elif facts.inclusion is not None:
        findings.append(Finding(pid, FindingKind.NO_INCLUSION_IHC, str(facts.inclusion.event_id)))
    for ihc, ihc_profile in zip(facts.ihcs, profiles, strict=True):
        if ihc_profile.ish_disagrees:
            findings.append(Finding(pid, FindingKind.ISH_DISAGREES_WITH_RATIO, str(ihc.event_id)))
    group = profile.group if profile else Group.UNKNOWN

    crisis = _anchor(facts.crisis_assessments, first_start)
    visceral_crisis = crisis is not None and facts.crisis_assessments[crisis].payload.present
    concordant = (first_line_concordant(group, visceral_crisis, lines[0].drugs_at_start)
                  if lines else None)

    if facts.inclusion is None and facts.first_event is not None:
        findings.append(Finding(pid, FindingKind.NEVER_INCLUDED, str(facts.first_event.event_id)))
    findings += [Finding(pid, FindingKind.REPEATED_INCLUSION, str(e.event_id))
                 for e in facts.repeated_inclusions]
    findings += [Finding(pid, FindingKind.FACT_AFTER_DEATH, str(e.event_id), e.event_type)
                 for e in facts.after_death]
    findings += [Finding(pid, FindingKind.UNKNOWN_RETRACTION_TARGET, str(r.event_id))
                 for r in history.unknown_retractions]
    findings += [Finding(pid, FindingKind.FACT_BEFORE_BIRTH, str(e.event_id), e.event_type)
                 for e in history.before_birth]

    current = line_in_progress(lines)
    patient = PatientRow(
        patient_id=pid,
        inclusion_date=facts.inclusion.occurred_on if facts.inclusion else None,
        group=group.value,
        hr_status=profile.hr_status.value if profile else HrStatus.UNKNOWN.value,
        her2_status=profile.her2_status.value if profile else Her2Status.UNKNOWN.value,
        her2_low=profile.her2_low if profile else None,
        receptor_conversion=conversion,
        current_line=current.number if current else None,
        current_regimen=current.current_regimen if current else None,
        status=_status(facts, lines).value,
        first_line_concordant=_text(concordant),
    )
    line_rows = []
    for line in lines:
        outcome = line_outcome(line, facts)
        best: RecistResponse | None = outcome.best_response
        line_rows.append(
            LineRow(
                patient_id=pid,
                line_number=line.number,
                regimen=line.regimen,
                start_date=line.start,
                end_date=line.end,
                end_reason=line.end_reason,
                progression_date=outcome.progression_date,
                ttp_days=outcome.ttp.days,
                ttp_event=outcome.ttp.event,
                pfs_days=outcome.pfs.days,
                pfs_event=outcome.pfs.event,
                ttnt_days=outcome.ttnt.days,
                ttnt_event=outcome.ttnt.event,
                best_response=best.value if best else None,
                line_source=line.source,
            )
        )
    return Journey(
        patient_id=pid,
        erased=is_erased(facts),
        patient=patient,
        lines=tuple(line_rows),
        due=tuple(due_assessments(facts, group, lines, s)),
        findings=tuple(sorted(set(findings))),
        profile=profile,
        empty=not history.events,
        centre=centre_of(facts),
    )
