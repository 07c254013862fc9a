"""Time from progression to biopsy: one row per progression.

Study question.  The protocol asks for a metastasis biopsy "at baseline and at
each progression" (biobank and omics).  How soon after each progression is the
patient biopsied, and how often not at all?

A progression is what the engine counts as one (``progression.documented``, or
imaging with RECIST PD), one per day.  Its biopsy is the first
``biopsy.performed`` dated on or after it and before the next progression.
``followup_days`` (progression to the patient's last fact) tells a missing biopsy
from one that could not have been seen yet: use it to censor.

    journey replay --source cohort.jsonl --into sqlite:///analysis.db \\
        --projection docs/examples/progression_to_biopsy.py
    journey projections export progression_to_biopsy 1 --db sqlite:///analysis.db
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from mbcjourney.analyst import ClinicalSettings, Column, PatientHistory, facts, projection


@projection("progression_to_biopsy", columns=[
    Column("progression_date", date, key=True),
    Column("basis", str, nullable=False),  # radiological | clinical | biological | imaging
    Column("biopsy_found", bool, nullable=False),
    Column("biopsy_date", date),
    Column("days_to_biopsy", int),
    Column("within_due_window", bool, nullable=False),  # settings.biopsy_due_days_after_...
    Column("followup_days", int, nullable=False),
])
def progression_to_biopsy(history: PatientHistory, settings: ClinicalSettings
                          ) -> Iterator[dict[str, object]]:
    f = facts(history)
    if f.last_fact_date is None:
        return
    basis: dict[date, str] = {}
    for progression in f.progressions:  # documented progressions name their basis
        basis.setdefault(progression.occurred_on, progression.payload.basis.value)
    days = sorted(set(f.progression_dates))
    biopsies = [b.occurred_on for b in f.biopsies]
    for i, day in enumerate(days):
        following = days[i + 1] if i + 1 < len(days) else None
        biopsy = next((b for b in biopsies
                       if b >= day and (following is None or b < following)), None)
        waited = (biopsy - day).days if biopsy is not None else None
        yield {
            "progression_date": day,
            "basis": basis.get(day, "imaging"),
            "biopsy_found": biopsy is not None,
            "biopsy_date": biopsy,
            "days_to_biopsy": waited,
            "within_due_window": waited is not None
            and waited <= settings.biopsy_due_days_after_progression,
            "followup_days": (f.last_fact_date - day).days,
        }
