"""Every rate and share of the simulation: :class:`SimulationSettings`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from mbcjourney.simulate.regimens import (
    FIRST_LINE_MIX,
    LATER_LINE_MIX,
    NON_CONCORDANT_MIX,
    PUBLISHED_MEDIAN_PFS_MONTHS,
    REGIMENS,
)
from mbcjourney.simulate.tables import PFS_HAZARD_RATIOS, SITE_SHARES, SITES


@dataclass(frozen=True)
class SimulationSettings:
    """Every rate and share of the simulation, with its default and where it comes from.

    Shares are probabilities in [0, 1]; ``*_per_year`` are constant hazards.
    Mappings of regimen mixes are keyed by stratum (``group1``, ``group1_crisis``,
    ``group2``, ``group3``; later lines ``groupG:2`` and ``groupG:3+``) and give
    relative weights of regimen keys of :data:`REGIMENS`.
    """

    # cohort and calendar
    patients: int = 1000
    seed: int = 0
    start: date = date(2022, 1, 1)  # accrual period start
    accrual_days: int = 730  # inclusion dates are uniform over the accrual period
    data_cutoff: date = date(2026, 6, 30)  # no event occurs after this date
    centres: tuple[str, ...] = ("C01", "C02", "C03", "C04", "C05")
    centre_weights: tuple[float, ...] = (0.30, 0.25, 0.20, 0.15, 0.10)

    # population (protocol groups; ESME-like case mix)
    group_shares: tuple[float, float, float] = (0.70, 0.15, 0.15)  # groups 1, 2, 3
    male_share: float = 0.01  # male breast cancer is about 1 %
    de_novo_share: float = 0.30  # de novo vs recurrent metastatic disease
    age_mean: float = 61.0  # age at inclusion, normal, truncated to [age_min, age_max]
    age_sd: float = 12.0
    age_min: int = 30
    age_max: int = 85
    #: Independent probability of each metastatic site at inclusion.
    site_shares: Mapping[str, float] = field(default_factory=lambda: SITE_SHARES)

    # pathology (ASCO/CAP 2018 categories)
    pr_positive_share_hr_positive: float = 0.75  # PR >= 1 % among ER-positive tumours
    hr_positive_share_group2: float = 0.50  # HR+ among HER2+ (group 2)
    er_low_share_group1: float = 0.06  # ER 1-10 % ("ER-low") among group 1
    #: HER2 IHC 0 / 1+ / 2+ (ISH not amplified) among HER2-negative HR+ tumours.
    her2_ihc_mix_hr_positive: tuple[float, float, float] = (0.35, 0.40, 0.25)
    #: The same among triple-negative tumours.
    her2_ihc_mix_triple_negative: tuple[float, float, float] = (0.60, 0.30, 0.10)
    her2_2plus_share_group2: float = 0.20  # HER2+ by IHC 2+ with ISH amplified (rest 3+)
    ish_numbers_share: float = 0.40  # ISH sent with her2_ish_ratio and her2_copy_number
    her2_pending_share: float = 0.10  # inclusion IHC 2+ sent before its ISH result
    her2_pending_resolved_share: float = 0.70  # of those, ISH result sent before line 1
    ki67_share: float = 0.50  # IHC reports with ki67_percent
    specimen_breast_share_de_novo: float = 0.30  # de novo: inclusion IHC on the breast primary
    specimen_local_recurrence_share: float = 0.10  # recurrent: on a local recurrence
    baseline_biopsy_share: float = 0.85  # a biopsy.performed (baseline) is sent with the IHC
    # receptor conversion, primary -> metastasis (Schrijver 2018 meta-analysis), per biopsy
    er_conversion_rate: float = 0.19
    pr_conversion_rate: float = 0.31
    her2_conversion_rate: float = 0.10
    # tumour genomics (biomarker.recorded)
    pik3ca_mutation_share: float = 0.35  # PIK3CA-mutated, HER2+ or HR+ (SOLAR-1 screening)
    esr1_acquired_share: float = 0.30  # ESR1 mutation acquired at a progression, group 1
    brca1_share_group3: float = 0.10  # germline BRCA1 among triple negative
    brca2_share_group3: float = 0.05  # germline BRCA2 among triple negative

    # treatment
    visceral_crisis_share: float = 0.10  # of group 1 patients
    visceral_crisis_assessed_share: float = 0.60  # group 1 without crisis: assessment sent
    non_concordant_share: float = 0.10  # first line not as the protocol recommends
    first_line_mix: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: FIRST_LINE_MIX
    )
    non_concordant_mix: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: NON_CONCORDANT_MIX
    )
    later_line_mix: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: LATER_LINE_MIX
    )
    #: Median PFS (months) per regimen key; keys not given keep the published default.
    medians_months: Mapping[str, float] = field(
        default_factory=lambda: PUBLISHED_MEDIAN_PFS_MONTHS
    )
    #: Known effects on the PFS hazard (tables.PFS_HAZARD_RATIOS, cited there): off by
    #: default, so the default cohort keeps the published medians the report checks.
    #: On: Ki-67 is the patient's own (the same in every report) and each line's true
    #: linear predictor is kept (:func:`mbcjourney.simulate.line_truth`, for tests).
    known_effects: bool = False
    pfs_hazard_ratios: Mapping[str, float] = field(default_factory=lambda: PFS_HAZARD_RATIOS)
    later_line_factor: float = 0.5  # first-line-trial regimens reused in a later line
    later_line_decay: float = 0.85  # per line after the second
    treatment_start_days: tuple[int, int] = (3, 28)  # inclusion -> line 1 start
    next_line_gap_days: tuple[int, int] = (7, 42)  # progression or toxicity -> next line
    same_day_next_line_share: float = 0.05  # next line starts on the progression day
    toxicity_stop_share: float = 0.08  # line ended for toxicity (or patient choice)
    patient_choice_share: float = 0.20  # of early stops: reason patient_choice
    taxane_swap_share: float = 0.05  # taxane swapped by line.modified (not a new line)
    taxane_stop_share_group2: float = 0.80  # taxane stopped, trastuzumab+pertuzumab go on
    taxane_cycles_days: int = 126  # about 6 three-weekly cycles
    maintenance_endocrine_share: float = 0.50  # group 1 chemo -> endocrine maintenance
    paclitaxel_stop_share_bevacizumab: float = 0.30  # bevacizumab continued alone
    bone_agent_share: float = 0.50  # denosumab / zoledronic acid added, bone metastases
    missing_line_end_share: float = 0.10  # no line.ended before the next line
    line_end_on_death_share: float = 0.40  # line.ended reason death sent at death
    declared_line_number_share: float = 0.70  # line.started carries declared_line_number
    declared_line_number_wrong_share: float = 0.05  # ... that disagrees with clinical order
    intent_share: float = 0.50  # line.started carries intent
    brand_name_share: float = 0.25  # drugs sent by brand name (Taxol, Herceptin, ...)
    unknown_drug_share: float = 0.003  # a drug name misspelt beyond recognition
    #: Probability of no further line after progression on line 1, 2, ... (last repeats).
    stop_treatment_after_line: tuple[float, ...] = (0.05, 0.15, 0.25, 0.35, 0.50, 0.65, 0.80)
    max_lines: int = 8

    # assessments (DESIGN section 5 cadence)
    imaging_interval_short_weeks: int = 8  # group 3, group 1 on chemotherapy
    imaging_interval_long_weeks: int = 12  # group 2, group 1 on endocrine therapy
    bone_scan_interval_weeks: int = 24  # patients with bone metastases
    imaging_jitter_days: int = 7  # uniform +/- around the due date
    missed_imaging_share: float = 0.05  # a due imaging is skipped (next one an interval later)
    modality_mix: tuple[float, float, float] = (0.80, 0.15, 0.05)  # CT, PET-CT, MRI
    best_response_first_line: tuple[float, float, float] = (0.08, 0.50, 0.42)  # CR, PR, SD
    best_response_later_lines: tuple[float, float, float] = (0.03, 0.30, 0.67)
    ne_response_share: float = 0.03  # a tumour assessment read NE
    sum_of_diameters_share: float = 0.70  # imaging sent with sum_of_diameters_mm
    new_lesions_field_share: float = 0.60  # imaging sent with new_lesions
    pd_imaging_share: float = 0.85  # progression comes with a PD imaging the same day
    progression_documented_share: float = 0.90  # ... and a progression.documented
    new_sites_at_progression_share: float = 0.35
    missing_biopsy_share: float = 0.20  # no biopsy after a progression
    biopsy_delay_max_days: int = 40  # progression -> biopsy, uniform 0..max
    ihc_on_biopsy_share: float = 0.90  # progression biopsies with an IHC
    omics_share: float = 0.70  # biopsies with samples sent for omics (-> biomarkers)
    exam_at_imaging_share: float = 0.60  # clinical_exam.recorded at an imaging visit
    ca153_at_imaging_share: float = 0.40  # CA 15-3 lab at an imaging visit
    labs_at_line_start_share: float = 0.90  # each test of the line-start panel

    # survival and follow-up
    death_rate_per_year: tuple[float, ...] = (0.03, 0.08, 0.15)  # while on line 1, 2, 3+
    death_hazard_ratio: tuple[float, float, float] = (1.0, 1.0, 2.0)  # by group
    best_supportive_care_median_months: float = 3.0  # survival once treatment stops
    death_cause_mix: tuple[float, float, float, float] = (0.85, 0.04, 0.06, 0.05)
    loss_to_followup_per_year: float = 0.02
    consent_withdrawal_per_year: float = 0.01
    erase_share: float = 0.10  # withdrawals with scope erase (else stop_followup)

    # source-system behaviour (data quality)
    correction_share: float = 0.01  # facts sent wrong, then retracted and corrected
    correction_delay_days: tuple[int, int] = (1, 30)
    late_arrival_share: float = 0.05  # recorded weeks after occurring
    late_arrival_days: tuple[int, int] = (14, 60)
    missing_recorded_at_share: float = 0.02  # lines without recorded_at
    out_of_order_share: float = 0.02  # lines arriving 1-30 days after their recorded_at
    duplicate_share: float = 0.01  # lines sent twice, byte-identical
    malformed_share: float = 0.005  # extra malformed lines, per well-formed line

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.patients < 0:
            problems.append("patients must be >= 0")
        if self.accrual_days < 1:
            problems.append("accrual_days must be >= 1")
        if self.start.toordinal() + self.accrual_days - 1 > self.data_cutoff.toordinal():
            problems.append("the accrual period must end on or before data_cutoff")
        if len(self.centres) != len(self.centre_weights) or not self.centres:
            problems.append("centres and centre_weights must be non-empty and of equal length")
        if not 0 < self.age_min <= self.age_max:
            problems.append("age_min must be positive and <= age_max")
        if self.max_lines < 1 or not self.stop_treatment_after_line:
            problems.append("max_lines must be >= 1 and stop_treatment_after_line non-empty")
        if not all(0 <= v <= 1 for v in self.stop_treatment_after_line):
            problems.append("stop_treatment_after_line must hold probabilities")
        if not self.death_rate_per_year:
            problems.append("death_rate_per_year must not be empty")
        for name in ("treatment_start_days", "next_line_gap_days", "late_arrival_days",
                     "correction_delay_days"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                problems.append(f"{name} must be a range (low, high) with 0 <= low <= high")
        if self.treatment_start_days[0] < 1:
            problems.append("treatment_start_days must start after inclusion (low >= 1)")
        if self.correction_delay_days[0] < 1:
            problems.append("correction_delay_days must be at least one day (low >= 1)")
        if not 0 <= self.imaging_jitter_days < 7 * min(
            self.imaging_interval_short_weeks, self.imaging_interval_long_weeks,
            self.bone_scan_interval_weeks,
        ):
            problems.append("imaging_jitter_days must be >= 0 and shorter than every interval")
        for name in (
            "group_shares", "centre_weights", "her2_ihc_mix_hr_positive",
            "her2_ihc_mix_triple_negative", "modality_mix", "best_response_first_line",
            "best_response_later_lines", "death_cause_mix",
        ):
            weights: tuple[float, ...] = getattr(self, name)
            if any(w < 0 for w in weights) or sum(weights) <= 0:
                problems.append(f"{name} must be non-negative weights with a positive sum")
        for name, value in vars(self).items():
            if (name.endswith("_share") or name.endswith("_rate")) and not 0 <= value <= 1:
                problems.append(f"{name} must be within [0, 1]")
        strata = {
            "first_line_mix": ("group1", "group1_crisis", "group2", "group3"),
            "non_concordant_mix": ("group1", "group1_crisis", "group2", "group3"),
            "later_line_mix": tuple(f"group{g}:{k}" for g in (1, 2, 3) for k in ("2", "3+")),
        }
        for name, needed in strata.items():
            mixes: Mapping[str, Mapping[str, float]] = getattr(self, name)
            missing = [stratum for stratum in needed if stratum not in mixes]
            if missing:
                problems.append(f"{name} lacks strata {missing}")
            for stratum, mix in mixes.items():
                unknown = sorted(set(mix) - set(REGIMENS))
                if unknown:
                    problems.append(f"{name}[{stratum}] names unknown regimens {unknown}")
                if not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
                    problems.append(f"{name}[{stratum}] must have non-negative weights, sum > 0")
        unknown = sorted(set(self.medians_months) - set(REGIMENS))
        if unknown:
            problems.append(f"medians_months names unknown regimens {unknown}")
        unknown_sites = sorted(set(self.site_shares) - set(SITES))
        if unknown_sites or not all(0 <= v <= 1 for v in self.site_shares.values()):
            problems.append(f"site_shares must map metastatic sites to shares in [0, 1] "
                            f"(unknown: {unknown_sites})")
        if set(self.pfs_hazard_ratios) != set(PFS_HAZARD_RATIOS) or any(
                v <= 0 for v in self.pfs_hazard_ratios.values()):
            problems.append(f"pfs_hazard_ratios must give a positive ratio for each of "
                            f"{sorted(PFS_HAZARD_RATIOS)}")
        if any(v <= 0 for v in self.medians_months.values()):
            problems.append("medians_months must be positive")
        if problems:
            raise ValueError("; ".join(problems))
