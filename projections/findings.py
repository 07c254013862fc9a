"""Data-quality findings: what the history says that a coordinator should look at.

Findings carry ids and a short, value-free detail (a drug name as sent, a line
reference), never free text from the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FindingKind(StrEnum):
    NEVER_INCLUDED = "never_included"
    REPEATED_INCLUSION = "repeated_inclusion"
    NO_INCLUSION_IHC = "no_inclusion_ihc"
    HER2_PENDING = "her2_pending"
    ISH_DISAGREES_WITH_RATIO = "ish_disagrees_with_ratio"
    DECLARED_LINE_NUMBER_MISMATCH = "declared_line_number_mismatch"
    UNKNOWN_DRUG = "unknown_drug"
    FACT_AFTER_DEATH = "fact_after_death"
    FACT_BEFORE_BIRTH = "fact_before_birth"
    UNKNOWN_RETRACTION_TARGET = "unknown_retraction_target"
    LINE_ENDED_NOT_STARTED = "line_ended_not_started"
    LINE_MODIFIED_NOT_STARTED = "line_modified_not_started"
    REPEATED_LINE_REF = "repeated_line_ref"
    # a source declares lines and also sends administrations, whose derived lines differ
    DERIVED_LINES_DISAGREE = "derived_lines_disagree"


@dataclass(frozen=True, order=True)
class Finding:
    patient_id: str
    finding: FindingKind
    event_id: str
    detail: str = ""
