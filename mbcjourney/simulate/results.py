"""What a run gives back: the drawn truth per patient, and counts of what was written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal


@dataclass(frozen=True)
class LineTruth:
    """A line's true log relative hazard of progression (known effects only; for tests)."""

    patient_id: str
    line_number: int
    start_date: str  # ISO
    linear_predictor: float


@dataclass(frozen=True)
class PatientTruth:
    """What the simulator drew for one patient: the answer the engine should find.

    ``pfs_drawn_days`` is the latent first-line draw (uncensored, for checking the
    published medians).  ``pfs_days`` / ``pfs_event`` follow the DESIGN section 8
    rules on the facts actually sent (after corrections): event at the first
    progression, or at death before any next line; otherwise censored at the last
    tumour assessment within the line, or its start.  ``her2_pending`` is true
    when the IHC the engine takes as the inclusion IHC is HER2 2+ with no ISH
    result, so the engine should report the group as ``unknown`` (and the
    first-line concordance as ``unknown``, while ``first_line_concordant`` keeps
    the drawn answer).  ``first_line_concordant`` says which mix the regimen was
    drawn from.  ``receptor_conversion`` compares later IHC with the drawn
    inclusion status.
    """

    patient_id: str
    inclusion_date: date
    group: int  # 1, 2 or 3 (protocol phenotype groups)
    visceral_crisis: bool
    her2_pending: bool
    first_line_regimen_key: str | None
    first_line_regimen: str | None  # generic names, sorted, joined by "+"
    first_line_concordant: bool | None
    first_line_start: date | None
    first_line_misspelt: bool  # a first-line drug name was sent unrecognisable
    pfs_drawn_days: int | None
    pfs_days: int | None
    pfs_event: bool | None
    lines: int
    receptor_conversion: bool
    end_date: date  # death, loss, withdrawal or the data cut-off
    end_reason: Literal["death", "lost", "withdrawn", "cutoff"]
    withdrawal_scope: Literal["stop_followup", "erase"] | None


@dataclass(frozen=True)
class SimulationSummary:
    """Counts of what was written (a malformed or duplicate line is not an event)."""

    patients: int
    lines: int  # every line written
    events: int  # distinct well-formed events, wrong facts and retractions included
    events_by_type: Mapping[str, int]
    duplicates: int  # byte-identical repeats of an event line
    malformed: int
    malformed_by_kind: Mapping[str, int]
    corrections: int  # facts sent wrong, then retracted and sent corrected
    missing_recorded_at: int
    late_arrivals: int
    out_of_order: int
    missed_imaging: int
    deaths: int
    lost_to_followup: int
    withdrawals: int
