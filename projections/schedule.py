"""Assessment schedule (DESIGN sections 5 and 8): what is due, and when it becomes overdue.

* Imaging: last tumour assessment (else the inclusion date) + the interval for
  the patient's group and current treatment; window end = due + grace.
* Bone scan: patients with bone metastases (at inclusion or in a progression's
  new sites), from the last bone scan, else from the first documentation of bone
  metastases (the inclusion, or the progression that added bone); same grace.
* Biopsy: latest progression + 42 days, no grace; satisfied by a biopsy on or
  after that progression.
Nothing is due after death, loss to follow-up or withdrawal.  "Now" is an
argument (``as_of``); this module never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from mbcjourney.events.alerts import Assessment as Assessment  # re-exported: declared there
from mbcjourney.events.vocabulary import MetastaticSite
from mbcjourney.projections.facts import PatientFacts
from mbcjourney.projections.lines import Line, line_in_progress
from mbcjourney.projections.receptors import Group
from mbcjourney.projections.settings import ClinicalSettings


@dataclass(frozen=True, order=True)
class DueAssessment:
    patient_id: str
    assessment: Assessment
    last_done: date | None
    due_date: date
    window_end: date

    def days_overdue(self, as_of: date) -> int:
        """Positive once ``as_of`` is past the window end; 0 or less means not overdue."""
        return (as_of - self.window_end).days


def imaging_interval_weeks(group: Group, current: Line | None, s: ClinicalSettings) -> int:
    on_chemotherapy = current is not None and any(
        d.drug_class.value in s.cytotoxic_classes for d in current.drugs_now
    )
    if group is Group.TRIPLE_NEGATIVE:
        return s.imaging_interval_weeks_group3
    if group is Group.HER2_POSITIVE:
        return s.imaging_interval_weeks_group2
    if group is Group.HR_POSITIVE_HER2_NEGATIVE:
        return (s.imaging_interval_weeks_group1_chemotherapy if on_chemotherapy
                else s.imaging_interval_weeks_group1_endocrine)
    return s.imaging_interval_weeks_unknown_group


def bone_documented(facts: PatientFacts) -> date | None:
    """The first documentation of bone metastases: the inclusion (bone among its sites) or
    the earliest progression whose ``new_sites`` hold bone; None without bone metastases.

    The bone-scan window starts here when no bone scan was done yet (DESIGN section 8):
    counting from the inclusion made a patient overdue the day bone was found.
    """
    inclusion = facts.inclusion
    found = [p.occurred_on for p in facts.progressions
             if MetastaticSite.BONE in p.payload.new_sites]
    if inclusion is not None and MetastaticSite.BONE in inclusion.payload.metastatic_sites:
        found.append(inclusion.occurred_on)
    return min(found, default=None)


def due_assessments(facts: PatientFacts, group: Group, lines: list[Line],
                    s: ClinicalSettings) -> list[DueAssessment]:
    """Assessments with a due date, given everything the history holds."""
    inclusion = facts.inclusion
    if inclusion is None or facts.death or facts.lost or facts.withdrawn:
        return []
    pid = facts.patient_id
    grace = timedelta(days=s.grace_days)
    due: list[DueAssessment] = []

    tumour = facts.tumour_assessments
    last_imaging = tumour[-1].occurred_on if tumour else None
    weeks = imaging_interval_weeks(group, line_in_progress(lines), s)
    imaging_due = (last_imaging or inclusion.occurred_on) + timedelta(weeks=weeks)
    due.append(DueAssessment(pid, Assessment.IMAGING, last_imaging, imaging_due,
                             imaging_due + grace))

    bone_found = bone_documented(facts)
    if bone_found is not None:
        scans = facts.bone_scans
        last_scan = scans[-1].occurred_on if scans else None
        scan_due = (last_scan or bone_found) + timedelta(weeks=s.bone_scan_interval_weeks)
        due.append(DueAssessment(pid, Assessment.BONE_SCAN, last_scan, scan_due,
                                 scan_due + grace))

    progressions = facts.progression_dates
    if progressions:
        latest = progressions[-1]
        biopsies = [b.occurred_on for b in facts.biopsies]
        if not any(b >= latest for b in biopsies):
            biopsy_due = latest + timedelta(days=s.biopsy_due_days_after_progression)
            due.append(DueAssessment(pid, Assessment.BIOPSY, biopsies[-1] if biopsies else None,
                                     biopsy_due, biopsy_due))
    return sorted(due)
