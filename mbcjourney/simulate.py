"""Synthetic cohort: realistic MBC patient journeys as wire-format v1 JSON Lines.

Why: the engine needs a large, truthful and *messy* input to be tested and
benchmarked against, and no real patient data may be used for that.  This module
mimics the hospital source systems (pathology, prescribing, radiology, research
CRF, biobank, omics and biology labs): it emits raw wire-format dicts (DESIGN
section 4), never the engine's models, and depends on nothing else in the
package, so it cannot hide a disagreement between the engine and its contract.

Usage::

    from mbcjourney.simulate import SimulationSettings, write_cohort, truth

    settings = SimulationSettings(patients=2_000, seed=7)
    with open("cohort.jsonl", "wb") as out:
        summary = write_cohort(settings, out)
    expected = truth(settings)  # the drawn ground truth, one row per patient

Journeys.  Each patient is included during the accrual period with a baseline
biopsy, IHC and imaging, then goes through lines of therapy: the first line is
concordant with the protocol by phenotype group (or, at a configurable share,
not); its progression-free time is drawn from an exponential with the regimen's
published median PFS (DESIGN section 10); later lines are shorter.  Imaging
follows the group cadence with jitter and missed windows, progressions come with
a PD imaging and usually a biopsy whose IHC may show receptor conversion at the
published rates, and deaths, losses to follow-up and consent withdrawals end
follow-up.  Nothing occurs after ``data_cutoff`` nor after death, loss or
withdrawal.

Source behaviour.  ``recorded_at`` is a few days after ``occurred_at`` (weeks
for late arrivals, sometimes absent so the engine stamps it); lines come out in
``recorded_at`` order across patients (a discrete-event merge, so memory grows
with the number of patients in follow-up, not with the number of events) except
for an out-of-order share; some facts are sent wrong, then retracted
(``event.retracted``) and sent again corrected; some lines are exact duplicates;
some are malformed (kinds in :data:`MALFORMED_KINDS`, counted in the summary).
The same settings always give byte-identical output.

Payload fields, by event type (envelope as in DESIGN section 4; ``?`` = optional)::

    patient.included        birth_year, sex (female|male), centre, consent_version,
                            presentation (de_novo|recurrent), metastatic_sites [site]
    ihc.recorded            specimen_id, specimen_site (breast|local_recurrence|metastasis),
                            er_percent, pr_percent, her2_ihc (0|1+|2+|3+),
                            her2_ish (amplified|not_amplified|equivocal|not_done),
                            her2_ish_ratio?, her2_copy_number?, ki67_percent?
    visceral_crisis.assessed present (bool), criteria? [text]
    line.started            line_ref, drugs [name as sent: generic or brand, any case],
                            declared_line_number?, intent? ("palliative")
    line.modified           line_ref, drugs_added [name], drugs_stopped [name]
    line.ended              line_ref, reason (progression|toxicity|patient_choice|death)
    imaging.performed       modality (CT|PET-CT|MRI|bone_scan), regions [text],
                            recist_response (CR|PR|SD|PD|NE|null), sum_of_diameters_mm?,
                            new_lesions?
    progression.documented  basis (radiological|clinical|biological), new_sites [site]
    biopsy.performed        specimen_id, site (a metastatic site name, breast or
                            local_recurrence), reason (baseline|progression), omics_samples [ref]
    biomarker.recorded      assay, marker (PIK3CA|ESR1|BRCA1|BRCA2|PD-L1 CPS|TMB),
                            result (mutated|wild_type|positive|negative|high|low),
                            value? (number), unit? (CPS|mut/Mb)
    lab.recorded            test, loinc?, value (number), unit (UCUM)
    clinical_exam.recorded  ecog (0-4), weight_kg
    death.recorded          cause (disease|treatment|other|unknown)
    followup.lost           (empty payload)
    consent.withdrawn       scope (stop_followup|erase)
    event.retracted         target_event_id, reason

``source.system`` by family: ``research-crf`` (inclusion, visceral crisis,
progression, clinical exam, death, loss, withdrawal), ``pathology-lis`` (IHC),
``oncology-prescribing`` (lines), ``radiology-ris`` (imaging), ``biobank``
(biopsies), ``omics-lab`` (biomarkers), ``lab-lis`` (labs); a retraction comes
from the system that sent the wrong fact.  An ``event.retracted`` carries the
``occurred_at`` of the fact it retracts (a correction has no clinical time of
its own; its ``recorded_at`` says when it was made), so no event is dated after
the end of follow-up.
"""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from itertools import accumulate, count
from types import MappingProxyType
from typing import Any, BinaryIO, Final, Generic, Literal, TypeVar

import orjson

__all__ = [
    "MALFORMED_KINDS",
    "PUBLISHED_MEDIAN_PFS_MONTHS",
    "REGIMENS",
    "PatientTruth",
    "Regimen",
    "SimulationSettings",
    "SimulationSummary",
    "iter_annotated",
    "iter_cohort",
    "simulate_cohort",
    "truth",
    "write_cohort",
]

DAYS_PER_MONTH: Final = 365.25 / 12
_T = TypeVar("_T")


# --- regimens and their published medians ----------------------------------------


@dataclass(frozen=True)
class Regimen:
    """A treatment a source may prescribe, as alternative generic drug sets.

    ``first_line_trial`` says the median PFS comes from a first-line trial, so
    the regimen's median is scaled by ``later_line_factor`` when used later.
    """

    key: str
    alternatives: tuple[tuple[str, ...], ...]
    first_line_trial: bool


def _regimens(*rows: tuple[str, tuple[tuple[str, ...], ...], bool]) -> Mapping[str, Regimen]:
    return MappingProxyType({key: Regimen(key, alts, first) for key, alts, first in rows})


REGIMENS: Final[Mapping[str, Regimen]] = _regimens(
    # first line, protocol-concordant
    ("docetaxel+trastuzumab+pertuzumab", (("docetaxel", "trastuzumab", "pertuzumab"),), True),
    ("paclitaxel+trastuzumab+pertuzumab", (("paclitaxel", "trastuzumab", "pertuzumab"),), True),
    ("letrozole+palbociclib", (("letrozole", "palbociclib"),), True),
    ("letrozole+ribociclib", (("letrozole", "ribociclib"),), True),
    ("nsai+abemaciclib", (("letrozole", "abemaciclib"), ("anastrozole", "abemaciclib")), True),
    ("fulvestrant+ribociclib", (("fulvestrant", "ribociclib"),), True),
    (
        "combination_chemotherapy",
        (
            ("paclitaxel", "gemcitabine"),
            ("docetaxel", "capecitabine"),
            ("doxorubicin", "cyclophosphamide"),
        ),
        True,
    ),
    ("paclitaxel+bevacizumab", (("paclitaxel", "bevacizumab"),), True),
    ("paclitaxel", (("paclitaxel",),), True),
    # first line, not concordant with the protocol
    ("letrozole", (("letrozole",),), True),
    ("fulvestrant", (("fulvestrant",),), True),
    ("docetaxel+trastuzumab", (("docetaxel", "trastuzumab"),), True),
    ("paclitaxel+pembrolizumab", (("paclitaxel", "pembrolizumab"),), True),
    ("carboplatin+gemcitabine", (("carboplatin", "gemcitabine"),), True),
    # later lines
    ("capecitabine+trastuzumab", (("capecitabine", "trastuzumab"),), False),
    ("exemestane+everolimus", (("exemestane", "everolimus"),), False),
    ("fulvestrant+alpelisib", (("fulvestrant", "alpelisib"),), False),
    ("fulvestrant+capivasertib", (("fulvestrant", "capivasertib"),), False),
    ("fulvestrant+palbociclib", (("fulvestrant", "palbociclib"),), False),
    ("elacestrant", (("elacestrant",),), False),
    ("capecitabine", (("capecitabine",),), False),
    ("eribulin", (("eribulin",),), False),
    ("trastuzumab deruxtecan", (("trastuzumab deruxtecan",),), False),
    ("trastuzumab deruxtecan (her2-low)", (("trastuzumab deruxtecan",),), False),
    ("trastuzumab emtansine", (("trastuzumab emtansine",),), False),
    ("tucatinib+trastuzumab+capecitabine", (("tucatinib", "trastuzumab", "capecitabine"),), False),
    ("sacituzumab govitecan", (("sacituzumab govitecan",),), False),
    ("sacituzumab govitecan (hr+)", (("sacituzumab govitecan",),), False),
    ("olaparib", (("olaparib",),), False),
)

#: Published median PFS in months, per regimen key (DESIGN section 10 and the trials named).
PUBLISHED_MEDIAN_PFS_MONTHS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "docetaxel+trastuzumab+pertuzumab": 18.5,  # CLEOPATRA
        "paclitaxel+trastuzumab+pertuzumab": 20.7,  # PERUSE
        "letrozole+palbociclib": 24.8,  # PALOMA-2
        "letrozole+ribociclib": 25.3,  # MONALEESA-2
        "nsai+abemaciclib": 28.2,  # MONARCH 3
        "fulvestrant+ribociclib": 33.6,  # MONALEESA-3, first-line cohort
        "combination_chemotherapy": 12.8,  # RIGHT Choice control arm (visceral crisis)
        "paclitaxel+bevacizumab": 11.8,  # E2100
        "paclitaxel": 5.6,  # IMpassion131 control arm
        "letrozole": 14.5,  # PALOMA-2 control arm
        "fulvestrant": 16.6,  # FALCON
        "docetaxel+trastuzumab": 12.4,  # CLEOPATRA control arm
        "paclitaxel+pembrolizumab": 9.7,  # KEYNOTE-355, CPS >= 10
        "carboplatin+gemcitabine": 5.6,  # KEYNOTE-355 chemotherapy control, CPS >= 10
        "capecitabine+trastuzumab": 8.2,  # GBG-26
        "exemestane+everolimus": 7.8,  # BOLERO-2
        "fulvestrant+alpelisib": 11.0,  # SOLAR-1, PIK3CA-mutated
        "fulvestrant+capivasertib": 7.2,  # CAPItello-291
        "fulvestrant+palbociclib": 9.5,  # PALOMA-3
        "elacestrant": 3.8,  # EMERALD, ESR1-mutated
        "capecitabine": 4.2,  # AVF2119g control arm
        "eribulin": 3.7,  # EMBRACE
        "trastuzumab deruxtecan": 28.8,  # DESTINY-Breast03
        "trastuzumab deruxtecan (her2-low)": 9.9,  # DESTINY-Breast04
        "trastuzumab emtansine": 9.6,  # EMILIA
        "tucatinib+trastuzumab+capecitabine": 7.8,  # HER2CLIMB
        "sacituzumab govitecan": 5.6,  # ASCENT
        "sacituzumab govitecan (hr+)": 5.5,  # TROPiCS-02
        "olaparib": 7.0,  # OlympiAD
    }
)

_FIRST_LINE_MIX: Final = MappingProxyType(
    {
        "group1": MappingProxyType(
            {
                "letrozole+palbociclib": 0.45,
                "letrozole+ribociclib": 0.25,
                "nsai+abemaciclib": 0.20,
                "fulvestrant+ribociclib": 0.10,
            }
        ),
        "group1_crisis": MappingProxyType({"combination_chemotherapy": 1.0}),
        "group2": MappingProxyType(
            {"paclitaxel+trastuzumab+pertuzumab": 0.5, "docetaxel+trastuzumab+pertuzumab": 0.5}
        ),
        "group3": MappingProxyType({"paclitaxel": 0.6, "paclitaxel+bevacizumab": 0.4}),
    }
)
_NON_CONCORDANT_MIX: Final = MappingProxyType(
    {
        "group1": MappingProxyType(
            {"letrozole": 0.5, "fulvestrant": 0.2, "combination_chemotherapy": 0.3}
        ),
        "group1_crisis": MappingProxyType({"letrozole+ribociclib": 0.7, "letrozole": 0.3}),
        "group2": MappingProxyType({"docetaxel+trastuzumab": 0.6, "capecitabine+trastuzumab": 0.4}),
        "group3": MappingProxyType(
            {"paclitaxel+pembrolizumab": 0.5, "carboplatin+gemcitabine": 0.5}
        ),
    }
)
_LATER_LINE_MIX: Final = MappingProxyType(
    {
        "group1:2": MappingProxyType(
            {
                "exemestane+everolimus": 0.25,
                "fulvestrant+alpelisib": 0.15,
                "fulvestrant+capivasertib": 0.10,
                "fulvestrant+palbociclib": 0.05,
                "elacestrant": 0.05,
                "capecitabine": 0.20,
                "trastuzumab deruxtecan (her2-low)": 0.10,
                "eribulin": 0.10,
            }
        ),
        "group1:3+": MappingProxyType(
            {
                "capecitabine": 0.25,
                "eribulin": 0.25,
                "trastuzumab deruxtecan (her2-low)": 0.20,
                "sacituzumab govitecan (hr+)": 0.15,
                "exemestane+everolimus": 0.15,
            }
        ),
        "group2:2": MappingProxyType(
            {
                "trastuzumab deruxtecan": 0.70,
                "trastuzumab emtansine": 0.15,
                "tucatinib+trastuzumab+capecitabine": 0.15,
            }
        ),
        "group2:3+": MappingProxyType(
            {
                "tucatinib+trastuzumab+capecitabine": 0.40,
                "trastuzumab emtansine": 0.30,
                "capecitabine+trastuzumab": 0.20,
                "eribulin": 0.10,
            }
        ),
        "group3:2": MappingProxyType(
            {
                "sacituzumab govitecan": 0.60,
                "eribulin": 0.15,
                "capecitabine": 0.10,
                "carboplatin+gemcitabine": 0.10,
                "olaparib": 0.05,
            }
        ),
        "group3:3+": MappingProxyType(
            {
                "eribulin": 0.35,
                "capecitabine": 0.35,
                "trastuzumab deruxtecan (her2-low)": 0.15,
                "carboplatin+gemcitabine": 0.15,
            }
        ),
    }
)
_SITE_SHARES: Final = MappingProxyType(
    {
        "bone": 0.70,
        "liver": 0.30,
        "lung": 0.25,
        "pleura": 0.10,
        "brain": 0.06,
        "lymph_node": 0.35,
        "skin": 0.04,
        "peritoneum": 0.03,
        "other": 0.03,
    }
)

#: The kinds of malformed line the simulator sends, each counted in the summary.
MALFORMED_KINDS: Final[tuple[str, ...]] = (
    "truncated_json",
    "unknown_event_type",
    "missing_field",
    "er_out_of_range",
    "her2_ihc_invalid",
    "death_before_birth",
    "bad_date",
    "wrong_type",
)


# --- settings ---------------------------------------------------------------------


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
    site_shares: Mapping[str, float] = field(default_factory=lambda: _SITE_SHARES)

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
        default_factory=lambda: _FIRST_LINE_MIX
    )
    non_concordant_mix: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: _NON_CONCORDANT_MIX
    )
    later_line_mix: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: _LATER_LINE_MIX
    )
    #: Median PFS (months) per regimen key; keys not given keep the published default.
    medians_months: Mapping[str, float] = field(
        default_factory=lambda: PUBLISHED_MEDIAN_PFS_MONTHS
    )
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
        unknown_sites = sorted(set(self.site_shares) - set(_SITES))
        if unknown_sites or not all(0 <= v <= 1 for v in self.site_shares.values()):
            problems.append(f"site_shares must map metastatic sites to shares in [0, 1] "
                            f"(unknown: {unknown_sites})")
        if any(v <= 0 for v in self.medians_months.values()):
            problems.append("medians_months must be positive")
        if problems:
            raise ValueError("; ".join(problems))


# --- results ----------------------------------------------------------------------


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


# --- static tables ----------------------------------------------------------------

_SITES: Final = ("bone", "liver", "lung", "pleura", "brain", "lymph_node", "skin", "peritoneum",
                 "other")
_VISCERAL: Final = frozenset({"liver", "lung", "pleura", "peritoneum"})
_CYTOTOXIC: Final = frozenset({
    "paclitaxel", "nab-paclitaxel", "docetaxel", "doxorubicin", "cyclophosphamide",
    "capecitabine", "eribulin", "gemcitabine", "carboplatin", "trastuzumab deruxtecan",
    "trastuzumab emtansine", "sacituzumab govitecan",
})
_TAXANES: Final = ("paclitaxel", "docetaxel", "nab-paclitaxel")
_BRANDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "paclitaxel": ("Taxol",), "nab-paclitaxel": ("Abraxane",), "docetaxel": ("Taxotere",),
    "doxorubicin": ("Adriamycin",), "cyclophosphamide": ("Endoxan",),
    "capecitabine": ("Xeloda",), "eribulin": ("Halaven",), "gemcitabine": ("Gemzar",),
    "carboplatin": ("Paraplatin",), "trastuzumab": ("Herceptin",), "pertuzumab": ("Perjeta",),
    "trastuzumab deruxtecan": ("Enhertu", "T-DXd"), "trastuzumab emtansine": ("Kadcyla", "T-DM1"),
    "tucatinib": ("Tukysa",), "bevacizumab": ("Avastin",), "pembrolizumab": ("Keytruda",),
    "sacituzumab govitecan": ("Trodelvy",), "olaparib": ("Lynparza",),
    "palbociclib": ("Ibrance",), "ribociclib": ("Kisqali",),
    "abemaciclib": ("Verzenio", "Verzenios"), "letrozole": ("Femara",),
    "anastrozole": ("Arimidex",), "exemestane": ("Aromasin",), "fulvestrant": ("Faslodex",),
    "elacestrant": ("Orserdu",), "alpelisib": ("Piqray",), "capivasertib": ("Truqap",),
    "everolimus": ("Afinitor",), "denosumab": ("Xgeva",), "zoledronic acid": ("Zometa",),
})
#: Names that, sent instead of the right one, make a plausible prescribing error.
_DRUG_SWAPS: Final[Mapping[str, str]] = MappingProxyType({
    "paclitaxel": "docetaxel", "docetaxel": "paclitaxel", "taxol": "Taxotere",
    "taxotere": "Taxol", "letrozole": "anastrozole", "anastrozole": "letrozole",
    "femara": "Arimidex", "arimidex": "Femara", "palbociclib": "ribociclib",
    "ribociclib": "palbociclib", "ibrance": "Kisqali", "kisqali": "Ibrance",
    "capecitabine": "gemcitabine", "xeloda": "Gemzar", "eribulin": "vinorelbine",
})
#: Regimens given only to patients with the marker (a ``_Patient`` attribute).
_TARGETED: Final[Mapping[str, str]] = MappingProxyType({
    "olaparib": "brca", "fulvestrant+alpelisib": "pik3ca",
    "fulvestrant+capivasertib": "pik3ca", "elacestrant": "esr1",
})
_UNKNOWN_DRUGS: Final = ("ETU-4471 (trial drug)", "chimio orale", "protocole local 12")
_REGIONS: Final[Mapping[str, list[str]]] = MappingProxyType({
    "CT": ["chest", "abdomen", "pelvis"], "PET-CT": ["whole_body"], "MRI": ["liver"],
    "bone_scan": ["whole_body"],
})
_CRISIS_CRITERIA: Final = (
    "liver_dysfunction", "lymphangitic_lung_involvement", "bone_marrow_infiltration",
    "symptomatic_visceral_disease",
)
#: (test, LOINC, unit, mean, sd, decimals) of the line-start panel; CA 15-3 is last.
_LABS: Final = (
    ("hemoglobin", "718-7", "g/dL", 12.4, 1.3, 1),
    ("neutrophils", "751-8", "10*9/L", 4.2, 1.4, 1),
    ("alanine aminotransferase", "1742-6", "U/L", 26.0, 9.0, 0),
    ("creatinine", "2160-0", "mg/dL", 0.80, 0.15, 2),
    ("CA 15-3", "6875-9", "U/mL", 45.0, 30.0, 0),
)
#: Consent version in force from each date.
_CONSENT_VERSIONS: Final = ((date(2023, 9, 1), "2.0"), (date(2022, 10, 1), "1.1"),
                            (date(1900, 1, 1), "1.0"))
_SYSTEM_DELAY: Final[Mapping[str, tuple[int, int]]] = MappingProxyType({
    # system -> (minimum days, extra days skewed low) between occurring and recording
    "research-crf": (0, 14), "pathology-lis": (2, 12), "oncology-prescribing": (0, 2),
    "radiology-ris": (0, 3), "biobank": (0, 3), "omics-lab": (21, 25), "lab-lis": (0, 2),
})
_UNKNOWN_TYPES: Final = ("ihc.recieved", "tumour_board.held", "line.paused", "imaging.perfomed",
                         "Patient.Included")
_BAD_DATES: Final = ("2024-02-30", "31/12/2023", "2023-13-01", "yesterday")
#: A required payload field per type, removed by the ``missing_field`` malformation.
_REQUIRED_PAYLOAD_FIELD: Final[Mapping[str, str]] = MappingProxyType({
    "patient.included": "birth_year", "ihc.recorded": "er_percent",
    "visceral_crisis.assessed": "present", "line.started": "drugs",
    "line.modified": "line_ref", "line.ended": "reason", "imaging.performed": "modality",
    "progression.documented": "basis", "biopsy.performed": "specimen_id",
    "biomarker.recorded": "marker", "lab.recorded": "value", "death.recorded": "cause",
    "consent.withdrawn": "scope", "event.retracted": "target_event_id",
})
_REQUIRED_ENVELOPE: Final = ("event_id", "event_type", "schema_version", "patient_id",
                             "occurred_at", "source", "payload")
_RETRACTION_REASONS: Final = ("data entry error", "wrong value transcribed",
                              "result amended by source")

_INF: Final = 1 << 40  # a day that never comes
_DAY: Final = 86_400
_WORKDAY_START: Final = 7 * 3600
_WORKDAY_SECONDS: Final = 12 * 3600
_LOOKBACK_DAYS: Final = 28  # baseline biopsy / imaging precede inclusion by at most this
_UUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)

_TAG_EVENT: Final = 0
_TAG_DUPLICATE: Final = 1
_TAG_MALFORMED: Final = 2  # + index in MALFORMED_KINDS

# phase ends of a journey
_END_START, _END_PROGRESSION, _END_DEATH, _END_TOXICITY, _END_HORIZON = range(5)
# one-off agenda items
(_A_BIOPSY, _A_IHC, _A_IMAGING0, _A_BONE0, _A_INCLUDE, _A_CRISIS, _A_ISH, _A_MOD_STOP,
 _A_MOD_MAINTENANCE, _A_MOD_ADD, _A_MOD_SWAP, _A_PROGRESSION_BIOPSY) = range(12)


@cache
def _clock_strings() -> tuple[str, ...]:
    """``THH:MM:SSZ`` for every second of a day (built once per process)."""
    return tuple(
        f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
    )


def _uuid4(bits: int) -> str:
    """The text of ``uuid.UUID(int=bits, version=4)``, without building the object."""
    h = f"{(bits & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Picker(Generic[_T]):
    """Weighted choice by bisection over cumulative weights."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, items: Sequence[_T], weights: Sequence[float]) -> None:
        self._items = tuple(items)
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1]

    def __call__(self, u: float) -> _T:
        return self._items[bisect_right(self._cum, u * self._total)]


_Payload = dict[str, Any]
_Journey = Generator[int, None, None]
_Agenda = tuple[int, int, int, str, tuple[str, ...], tuple[str, ...]]
_HeapItem = tuple[int, int, int, bytes | _Journey]


class _Patient:
    """The little a journey keeps about its patient between events."""

    __slots__ = ("birth_year", "bone", "bone_agent", "brca", "ecog", "er", "esr1", "group",
                 "her2", "pid", "pik3ca", "pr", "sites", "weight")

    def __init__(self, pid: str) -> None:
        self.pid = pid
        self.birth_year = 1960
        self.group = 1
        self.er = self.pr = self.her2 = False
        self.sites: list[str] = []
        self.bone = self.bone_agent = False
        self.pik3ca = self.esr1 = False
        self.brca = ""  # "BRCA1", "BRCA2" or "" (germline status, drawn once)
        self.ecog = 0
        self.weight = 68.0


class _Simulation:
    """One run: a discrete-event merge of patient journeys into arrival order.

    Each journey is a generator that yields the next day it has something to
    say; the heap holds journeys keyed by that day and lines keyed by arrival
    time, so a line is released once no journey can still produce an earlier one.
    """

    def __init__(self, settings: SimulationSettings, *, collect_truth: bool) -> None:
        st = settings
        self.st = st
        self.rng = random.Random(st.seed)
        self.r = self.rng.random
        self.bits = self.rng.getrandbits
        self.expo = self.rng.expovariate
        self.medians = {**PUBLISHED_MEDIAN_PFS_MONTHS, **st.medians_months}
        self.base = st.start.toordinal() - _LOOKBACK_DAYS - 2
        self.days = [
            date.fromordinal(d).isoformat()
            for d in range(self.base, st.data_cutoff.toordinal() + 400)
        ]
        self.clock = _clock_strings()
        self.cutoff = st.data_cutoff.toordinal()
        self.heap: list[_HeapItem] = []
        self.seq = 0
        self.truths: list[PatientTruth] | None = [] if collect_truth else None
        self.specimens = 0
        self.misspelt = 0
        self.by_type: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.n = Counter[str]()
        self.pick_group = _Picker((1, 2, 3), st.group_shares)
        self.pick_centre = _Picker(st.centres, st.centre_weights)
        self.pick_her2_hr = _Picker(("0", "1+", "2+"), st.her2_ihc_mix_hr_positive)
        self.pick_her2_tn = _Picker(("0", "1+", "2+"), st.her2_ihc_mix_triple_negative)
        self.pick_modality = _Picker(("CT", "PET-CT", "MRI"), st.modality_mix)
        self.pick_best1 = _Picker(("CR", "PR", "SD"), st.best_response_first_line)
        self.pick_best_later = _Picker(("CR", "PR", "SD"), st.best_response_later_lines)
        self.pick_cause = _Picker(("disease", "treatment", "other", "unknown"), st.death_cause_mix)
        self.first_line = {k: _Picker(list(m), list(m.values())) for k, m in
                           st.first_line_mix.items()}
        self.non_concordant = {k: _Picker(list(m), list(m.values())) for k, m in
                               st.non_concordant_mix.items()}
        self.later_line = {k: _Picker(list(m), list(m.values())) for k, m in
                           st.later_line_mix.items()}

    # -- the merge ------------------------------------------------------------------

    def run(self) -> Iterator[tuple[int, bytes]]:
        """(tag, line) in arrival order; tags are ``_TAG_*``."""
        st = self.st
        r = self.r
        start = st.start.toordinal()
        inclusions = sorted(start + int(r() * st.accrual_days) for _ in range(st.patients))
        heap = self.heap
        push = heapq.heappush
        pop = heapq.heappop
        spawned = 0
        total = len(inclusions)
        while True:
            if spawned < total and (
                not heap or (inclusions[spawned] - _LOOKBACK_DAYS) * _DAY <= heap[0][0]
            ):
                journey = self._journey(spawned, inclusions[spawned])
                self.seq += 1
                push(heap, (next(journey) * _DAY, self.seq, 0, journey))
                spawned += 1
                continue
            if not heap:
                return
            _, _, tag, obj = pop(heap)
            if isinstance(obj, bytes):
                yield tag, obj
                continue
            try:
                day = next(obj)
            except StopIteration:
                continue
            self.seq += 1
            push(heap, (day * _DAY, self.seq, 0, obj))

    def summary(self, lines: int) -> SimulationSummary:
        n = self.n
        return SimulationSummary(
            patients=self.st.patients,
            lines=lines,
            events=sum(self.by_type.values()),
            events_by_type=dict(sorted(self.by_type.items())),
            duplicates=n["duplicates"],
            malformed=sum(self.malformed.values()),
            malformed_by_kind={kind: self.malformed[kind] for kind in MALFORMED_KINDS},
            corrections=n["corrections"],
            missing_recorded_at=n["missing_recorded_at"],
            late_arrivals=n["late_arrivals"],
            out_of_order=n["out_of_order"],
            missed_imaging=n["missed_imaging"],
            deaths=n["deaths"],
            lost_to_followup=n["lost"],
            withdrawals=n["withdrawn"],
        )

    # -- sending --------------------------------------------------------------------

    def _emit(self, p: _Patient, day: int, etype: str, system: str, ref: str,
              payload: _Payload, correctable: bool = False) -> None:
        """Send one fact as its source would: delayed, sometimes wrong then corrected."""
        st = self.st
        r = self.r
        low, extra = _SYSTEM_DELAY[system]
        delay = low + int(r() * r() * (extra + 1))
        if r() < st.late_arrival_share:
            late_low, late_high = st.late_arrival_days
            delay += late_low + int(r() * (late_high - late_low + 1))
            self.n["late_arrivals"] += 1
        key = (day + delay) * _DAY + _WORKDAY_START + int(r() * _WORKDAY_SECONDS)
        if correctable and r() < st.correction_share:
            wrong = self._corrupt(etype, payload)
            if wrong is not None:
                wrong_id = self._post(p, day, key, etype, system, ref, wrong, False)
                fix_low, fix_high = st.correction_delay_days
                key += (fix_low + int(r() * (fix_high - fix_low + 1))) * _DAY + int(r() * 7200)
                retraction = {"target_event_id": wrong_id,
                              "reason": _RETRACTION_REASONS[int(r() * len(_RETRACTION_REASONS))]}
                self._post(p, day, key, "event.retracted", system, ref, retraction, False)
                self._post(p, day, key + 60 + int(r() * 600), etype, system, ref, payload, False)
                self.n["corrections"] += 1
                return
        self._post(p, day, key, etype, system, ref, payload, True)

    def _post(self, p: _Patient, day: int, key: int, etype: str, system: str, ref: str,
              payload: _Payload, disorder: bool) -> str:
        """Serialise one event line and queue it (plus any duplicate or malformed twin)."""
        st = self.st
        r = self.r
        event_id = _uuid4(self.bits(128))
        occurred = self.days[day - self.base]
        if r() < st.missing_recorded_at_share:
            self.n["missing_recorded_at"] += 1
            event: _Payload = {
                "event_id": event_id, "event_type": etype, "schema_version": 1,
                "patient_id": p.pid, "occurred_at": occurred,
                "source": {"system": system, "reference": ref}, "payload": payload,
            }
        else:
            event = {
                "event_id": event_id, "event_type": etype, "schema_version": 1,
                "patient_id": p.pid, "occurred_at": occurred,
                "recorded_at": self.days[key // _DAY - self.base] + self.clock[key % _DAY],
                "source": {"system": system, "reference": ref}, "payload": payload,
            }
        # orjson hands back a buffer with spare capacity (about 4 KiB); the copy keeps
        # lines waiting in the heap at their real size.
        line = bytes(memoryview(orjson.dumps(event)))
        self.by_type[etype] += 1
        if disorder and r() < st.out_of_order_share:
            key += _DAY + int(r() * 29 * _DAY)
            self.n["out_of_order"] += 1
        heap = self.heap
        self.seq += 1
        heapq.heappush(heap, (key, self.seq, _TAG_EVENT, line))
        if r() < st.duplicate_share:
            self.n["duplicates"] += 1
            self.seq += 1
            heapq.heappush(heap, (key + 60 + int(r() * 7 * _DAY), self.seq, _TAG_DUPLICATE, line))
        if r() < st.malformed_share:
            self._malformed_twin(p, day, key, event, line)
        return event_id

    def _malformed_twin(self, p: _Patient, day: int, key: int, event: _Payload,
                        line: bytes) -> None:
        """A broken line sent near a good one (it never shares the good one's event id)."""
        r = self.r
        index = int(r() * len(MALFORMED_KINDS))
        kind = MALFORMED_KINDS[index]
        if kind == "truncated_json":
            bad = line[: 1 + int(r() * (len(line) - 2))]
        else:
            twin = dict(event, event_id=_uuid4(self.bits(128)))
            if kind == "unknown_event_type":
                twin["event_type"] = _UNKNOWN_TYPES[int(r() * len(_UNKNOWN_TYPES))]
            elif kind == "missing_field":
                name = _REQUIRED_PAYLOAD_FIELD.get(twin["event_type"])
                if name is not None and r() < 0.5:
                    twin["payload"] = {k: v for k, v in twin["payload"].items() if k != name}
                else:
                    del twin[_REQUIRED_ENVELOPE[int(r() * len(_REQUIRED_ENVELOPE))]]
            elif kind in ("er_out_of_range", "her2_ihc_invalid"):
                specimen = self._specimen_id(day)
                twin["event_type"] = "ihc.recorded"
                twin["source"] = {"system": "pathology-lis", "reference": specimen}
                twin["payload"] = {
                    "specimen_id": specimen, "specimen_site": "metastasis",
                    "er_percent": (150, 101, -5, 1000)[int(r() * 4)]
                    if kind == "er_out_of_range" else 80,
                    "pr_percent": 20,
                    "her2_ihc": ("4+", "++", "positive", "3")[int(r() * 4)]
                    if kind == "her2_ihc_invalid" else "1+",
                    "her2_ish": "not_done",
                }
            elif kind == "death_before_birth":
                year = p.birth_year - 1 - int(r() * 30)
                twin["event_type"] = "death.recorded"
                twin["occurred_at"] = f"{year:04d}-{1 + int(r() * 12):02d}-{1 + int(r() * 28):02d}"
                twin["source"] = {"system": "research-crf", "reference": f"CRF-{p.pid}-DEATH"}
                twin["payload"] = {"cause": "disease"}
            elif kind == "bad_date":
                twin["occurred_at"] = _BAD_DATES[int(r() * len(_BAD_DATES))]
            else:  # wrong_type
                twin["schema_version"] = "1"
            bad = bytes(memoryview(orjson.dumps(twin)))
        self.malformed[kind] += 1
        self.seq += 1
        heapq.heappush(self.heap, (key + 1 + int(r() * 600), self.seq, _TAG_MALFORMED + index, bad))

    def _corrupt(self, etype: str, payload: _Payload) -> _Payload | None:
        """The fact as a source gets it wrong, or None when this kind is never corrected."""
        r = self.r
        wrong = dict(payload)
        if etype == "ihc.recorded":
            if r() < 0.5:
                wrong["er_percent"] = 0 if payload["er_percent"] >= 1 else 90
            else:
                wrong["her2_ihc"] = "3+" if payload["her2_ihc"] in ("0", "1+") else "1+"
        elif etype == "imaging.performed":
            response = payload.get("recist_response")
            if response is None:
                return None
            others = [x for x in ("CR", "PR", "SD", "PD") if x != response]
            wrong["recist_response"] = others[int(r() * len(others))]
        elif etype == "lab.recorded":
            wrong["value"] = round(payload["value"] * 10, 2)
        elif etype == "clinical_exam.recorded":
            if "weight_kg" in payload:
                wrong["weight_kg"] = round(payload["weight_kg"] + 10 + int(r() * 20), 1)
            else:
                wrong["ecog"] = (payload["ecog"] + 1) % 5
        elif etype == "line.started":
            drugs: list[str] = payload["drugs"]
            for i, name in enumerate(drugs):
                swap = _DRUG_SWAPS.get(name.lower())
                if swap is not None:
                    wrong["drugs"] = [*drugs[:i], swap, *drugs[i + 1:]]
                    break
            else:
                return None
        else:
            return None
        return wrong

    # -- clinical content -----------------------------------------------------------

    def _specimen_id(self, day: int) -> str:
        self.specimens += 1
        return f"S{self.days[day - self.base][2:4]}-{self.specimens:06d}"

    def _drug_name(self, generic: str) -> str:
        """A drug as a prescribing system sends it: generic or brand, in varied case."""
        st = self.st
        r = self.r
        u = r()
        if u < st.unknown_drug_share:
            self.misspelt += 1
            if r() < 0.3:
                return _UNKNOWN_DRUGS[int(r() * len(_UNKNOWN_DRUGS))]
            cut = 1 + int(r() * (len(generic) - 2))
            return generic[:cut] + generic[cut] + generic[cut:]  # a doubled letter
        brands = _BRANDS.get(generic)
        if brands is not None and u < st.unknown_drug_share + st.brand_name_share:
            name = brands[int(r() * len(brands))]
            v = r()
            return name if v < 0.6 else name.upper() if v < 0.85 else name.lower()
        v = r()
        return generic if v < 0.8 else generic.capitalize() if v < 0.95 else generic.upper()

    def _percent_high(self) -> int:
        r = self.r
        return 10 * (5 + int(r() * 6)) if r() < 0.8 else 11 + int(r() * 39)

    def _ihc(self, p: _Patient, specimen: str, site: str, er: bool, pr: bool, her2: bool,
             er_low: bool) -> _Payload:
        """An IHC report consistent with the receptor status (ASCO/CAP 2018)."""
        st = self.st
        r = self.r
        if her2:
            if r() < st.her2_2plus_share_group2:
                ihc, ish = "2+", "amplified"
            else:
                ihc, ish = "3+", ("amplified" if r() < 0.3 else "not_done")
        else:
            ihc = (self.pick_her2_hr if er or pr else self.pick_her2_tn)(r())
            ish = "not_amplified" if ihc == "2+" else "not_done"
        payload: _Payload = {
            "specimen_id": specimen,
            "specimen_site": site,
            "er_percent": (1 + int(r() * 10) if er_low else self._percent_high()) if er else 0,
            "pr_percent": 5 * (1 + int(r() * 20)) if pr else 0,
            "her2_ihc": ihc,
            "her2_ish": ish,
        }
        if ish != "not_done" and r() < st.ish_numbers_share:
            ratio, copies = self._ish_numbers(ihc, ish == "amplified")
            payload["her2_ish_ratio"] = ratio
            payload["her2_copy_number"] = copies
        if r() < st.ki67_share:
            low, span = ((5, 30), (15, 45), (30, 60))[p.group - 1]
            payload["ki67_percent"] = low + int(r() * span)
        return payload

    def _ish_numbers(self, ihc: str, amplified: bool) -> tuple[float, float]:
        """HER2/CEP17 ratio and mean HER2 copies, in the ASCO/CAP group that gives the result."""
        r = self.r
        u = r()
        if amplified:
            if ihc == "2+" and u < 0.15:  # group 3: ratio < 2.0, copies >= 6 -> amplified at 2+
                ratio, copies = 1.30 + r() * 0.55, 6.2 + r() * 2.8
            else:  # group 1
                ratio, copies = 2.2 + r() * 3.8, 4.5 + r() * 10.5
        elif ihc == "2+" and u < 0.10:  # group 4: ratio < 2.0, 4 <= copies < 6
            ratio, copies = 1.2 + r() * 0.65, 4.2 + r() * 1.6
        elif ihc == "2+" and u < 0.15:  # group 2: ratio >= 2.0, copies < 4
            ratio, copies = 2.1 + r() * 0.9, 2.5 + r() * 1.2
        else:  # group 5
            ratio, copies = 1.0 + r() * 0.8, 1.5 + r() * 2.2
        return round(ratio, 2), round(copies, 1)

    def _imaging(self, modality: str, response: str | None, sod: int | None,
                 new_lesions: bool | None) -> _Payload:
        payload: _Payload = {"modality": modality, "regions": _REGIONS[modality],
                             "recist_response": response}
        if sod is not None:
            payload["sum_of_diameters_mm"] = sod
        if new_lesions is not None:
            payload["new_lesions"] = new_lesions
        return payload

    def _exam(self, p: _Patient, day: int, line_no: int) -> None:
        r = self.r
        ecog = min(4, p.ecog + max(0, line_no - 1) // 2 + (1 if r() < 0.1 else 0))
        payload: _Payload = {"ecog": ecog}
        if r() < 0.9:
            payload["weight_kg"] = round(p.weight * (1 - 0.015 * line_no) + self.rng.gauss(0, 1), 1)
        self._emit(p, day, "clinical_exam.recorded", "research-crf", f"CRF-{p.pid}-EXAM",
                   payload, True)

    def _lab(self, p: _Patient, day: int, which: int) -> None:
        r = self.r
        test, loinc, unit, mean, sd, decimals = _LABS[which]
        if test == "CA 15-3":
            value = round(mean * math.exp(self.rng.gauss(0, 0.8)), decimals)
        else:
            value = round(max(mean * 0.2, self.rng.gauss(mean, sd)), decimals)
        if r() < 0.9:
            payload: _Payload = {"test": test, "loinc": loinc, "value": float(value), "unit": unit}
        else:
            payload = {"test": test, "value": float(value), "unit": unit}
        self._emit(p, day, "lab.recorded", "lab-lis", f"LAB-{self.bits(32):08X}", payload, True)

    def _biopsy(self, p: _Patient, day: int, reason: str, specimen: str, site: str) -> bool:
        """Send a biopsy (and its omics biomarkers); True when samples went to omics."""
        st = self.st
        r = self.r
        omics = r() < st.omics_share
        samples = [f"OMX-{specimen}-DNA", f"OMX-{specimen}-RNA"] if omics else []
        self._emit(p, day, "biopsy.performed", "biobank", specimen,
                   {"specimen_id": specimen, "site": site, "reason": reason,
                    "omics_samples": samples})
        if omics:
            self._biomarkers(p, day, samples[0], reason == "progression")
        return omics

    def _biomarkers(self, p: _Patient, day: int, sample: str, progression: bool) -> None:
        r = self.r
        emit = self._emit
        panel = "NGS tissue panel"
        if p.group in (1, 2):
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": panel, "marker": "PIK3CA",
                  "result": "mutated" if p.pik3ca else "wild_type"})
        if p.group == 1:
            if progression and not p.esr1 and r() < self.st.esr1_acquired_share:
                p.esr1 = True
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": panel, "marker": "ESR1", "result": "mutated" if p.esr1 else "wild_type"})
        if p.group == 3:
            for marker in ("BRCA1", "BRCA2"):
                emit(p, day, "biomarker.recorded", "omics-lab", sample,
                     {"assay": panel, "marker": marker,
                      "result": "mutated" if p.brca == marker else "wild_type"})
            cps = int(r() * r() * 60)
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": "PD-L1 IHC 22C3", "marker": "PD-L1 CPS",
                  "result": "positive" if cps >= 10 else "negative", "value": cps, "unit": "CPS"})
            tmb = round(math.exp(self.rng.gauss(1.2, 0.7)), 1)
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": panel, "marker": "TMB", "result": "high" if tmb >= 10 else "low",
                  "value": tmb, "unit": "mut/Mb"})

    def _median_days(self, key: str, line_no: int) -> float:
        st = self.st
        months = self.medians[key]
        if line_no >= 2:
            if REGIMENS[key].first_line_trial:
                months *= st.later_line_factor
            months *= st.later_line_decay ** max(0, line_no - 2)
        return months * DAYS_PER_MONTH

    def _later_regimen(self, p: _Patient, line_no: int) -> str:
        """A later-line regimen; targeted ones only for a patient with their marker."""
        pick = self.later_line[f"group{p.group}:{'2' if line_no == 2 else '3+'}"]
        for _ in range(4):
            key = pick(self.r())
            marker = _TARGETED.get(key)
            if marker is None or getattr(p, marker):
                return key
        return "capecitabine"

    def _interval(self, group: int, chemo: bool) -> int:
        st = self.st
        short = group == 3 or (group == 1 and chemo)
        return 7 * (st.imaging_interval_short_weeks if short else st.imaging_interval_long_weeks)

    def _biopsy_site(self, p: _Patient) -> str:
        candidates = [site for site in p.sites if site != "brain"] or p.sites
        return candidates[int(self.r() * len(candidates))]

    def _supportive_care(self, progression: int, stop: int) -> tuple[int, int]:
        """No further line: death after a short survival, unless follow-up ends first."""
        median = self.st.best_supportive_care_median_months * DAYS_PER_MONTH
        death = progression + 1 + int(self.expo(math.log(2) / median))
        return (death, _END_DEATH) if death < stop else (stop, _END_HORIZON)

    # -- one patient ----------------------------------------------------------------

    def _journey(self, idx: int, inc: int) -> _Journey:
        """One patient's life in the study, yielding each next day it has facts for."""
        st = self.st
        r = self.r
        expo = self.expo
        emit = self._emit
        push = heapq.heappush
        ticket = count().__next__
        p = _Patient(f"P-{idx + 1:06d}")
        pid = p.pid
        inc_date = date.fromordinal(inc)
        jit = st.imaging_jitter_days

        # who the patient is
        age = min(max(round(self.rng.gauss(st.age_mean, st.age_sd)), st.age_min), st.age_max)
        p.birth_year = inc_date.year - age
        group = self.pick_group(r())
        p.group = group
        site_shares = st.site_shares
        sites = [site for site in _SITES if r() < site_shares.get(site, 0.0)]
        crisis = group == 1 and r() < st.visceral_crisis_share
        if crisis and _VISCERAL.isdisjoint(sites):
            sites = [site for site in _SITES if site in sites or site == "liver"]
        if not sites:
            sites = ["bone" if group == 1 else "lymph_node"]
        p.sites = sites
        p.bone = "bone" in sites
        if group == 1:
            p.er, p.pr = True, r() < st.pr_positive_share_hr_positive
        elif group == 2:
            p.er = r() < st.hr_positive_share_group2
            p.pr = p.er and r() < st.pr_positive_share_hr_positive
            p.her2 = True
        er_low = group == 1 and r() < st.er_low_share_group1
        p.pik3ca = group != 3 and r() < st.pik3ca_mutation_share
        u = r()
        if group == 3 and u < st.brca1_share_group3 + st.brca2_share_group3:
            p.brca = "BRCA1" if u < st.brca1_share_group3 else "BRCA2"
        u = r()
        p.ecog = 0 if u < 0.5 else 1 if u < 0.9 else 2
        p.weight = min(130.0, max(40.0, self.rng.gauss(68.0, 13.0)))
        de_novo = r() < st.de_novo_share

        # how long they can be followed: facts occur on days before `stop`
        end_reason: Literal["death", "lost", "withdrawn", "cutoff"] = "cutoff"
        horizon = self.cutoff
        if st.loss_to_followup_per_year > 0:
            lost = inc + 1 + int(expo(st.loss_to_followup_per_year / 365.25))
            if lost < horizon:
                horizon, end_reason = lost, "lost"
        if st.consent_withdrawal_per_year > 0:
            withdrawn = inc + 1 + int(expo(st.consent_withdrawal_per_year / 365.25))
            if withdrawn < horizon:
                horizon, end_reason = withdrawn, "withdrawn"
        stop = horizon + 1 if end_reason == "cutoff" else horizon

        # the first line the oncologist will choose
        start_low, start_high = st.treatment_start_days
        first_start = inc + start_low + int(r() * (start_high - start_low + 1))
        stratum = "group1_crisis" if crisis else f"group{group}"
        concordant = r() >= st.non_concordant_share
        next_key = (self.first_line if concordant else self.non_concordant)[stratum](r())

        # baseline work-up, before or at inclusion
        agenda: list[_Agenda] = []
        if de_novo:
            specimen_site = "breast" if r() < st.specimen_breast_share_de_novo else "metastasis"
        else:
            specimen_site = (
                "local_recurrence" if r() < st.specimen_local_recurrence_share else "metastasis"
            )
        biopsy_day = inc - int(r() * 22)
        specimen0 = self._specimen_id(biopsy_day)
        ihc0 = self._ihc(p, specimen0, specimen_site, p.er, p.pr, p.her2, er_low)
        ish_result = ihc0
        pending = ihc0["her2_ihc"] == "2+" and r() < st.her2_pending_share
        ish_day = _INF
        if pending:
            ihc0 = {k: v for k, v in ihc0.items()
                    if k not in ("her2_ish_ratio", "her2_copy_number")}
            ihc0["her2_ish"] = "not_done" if r() < 0.8 else "equivocal"
            if r() < st.her2_pending_resolved_share:
                ish_day = min(biopsy_day + 5 + int(r() * 17), first_start)
                push(agenda, (ish_day, ticket(), _A_ISH, "", (), ()))
        if r() < st.baseline_biopsy_share:
            push(agenda, (biopsy_day, ticket(), _A_BIOPSY, "", (), ()))
        push(agenda, (biopsy_day, ticket(), _A_IHC, "", (), ()))
        imaging0_day = inc - int(r() * (_LOOKBACK_DAYS + 1))
        push(agenda, (imaging0_day, ticket(), _A_IMAGING0, "", (), ()))
        if p.bone:
            push(agenda, (imaging0_day, ticket(), _A_BONE0, "", (), ()))
        push(agenda, (inc, ticket(), _A_INCLUDE, "", (), ()))
        if group == 1 and (crisis or r() < st.visceral_crisis_assessed_share):
            crisis_day = inc + int(r() * (min(7, first_start - inc) + 1))
            push(agenda, (crisis_day, ticket(), _A_CRISIS, "", (), ()))

        # journey state
        cur = agenda[0][0]
        yield cur
        line_no = 0
        on_line = False
        line_ref = ""
        drugs_now: list[str] = []
        interval = 0
        next_img = next_bone = _INF
        bone_every = 7 * st.bone_scan_interval_weeks
        assessments = 0
        best = "SD"
        base_sod = nadir = 0
        # ground truth of the first line
        s1 = s2 = progression1 = last_assessment1 = death_day = pfs_drawn = -1
        key1 = regimen1 = None
        misspelt1 = conversion = False
        scope: Literal["stop_followup", "erase"] | None = None

        end, end_code = (first_start, _END_START) if first_start < stop else (stop, _END_HORIZON)
        while True:
            # everything scheduled before the end of this phase
            while True:
                d, c = next_img, 0
                if next_bone < d:
                    d, c = next_bone, 1
                if agenda and agenda[0][0] < d:
                    d, c = agenda[0][0], 2
                if d >= end:
                    break
                if d > cur:
                    cur = d
                    yield d
                if c == 0:  # tumour assessment due
                    next_img = d + interval + int(r() * (2 * jit + 1)) - jit
                    if r() < st.missed_imaging_share:
                        self.n["missed_imaging"] += 1
                        continue
                    assessments += 1
                    sod: int | None = None
                    if r() < st.ne_response_share:
                        response = "NE"
                    else:
                        if best == "SD":
                            response = "SD"
                        elif best == "PR":
                            response = "PR" if assessments >= 2 or r() < 0.6 else "SD"
                        else:
                            response = (
                                "CR" if assessments >= 3 or (assessments == 2 and r() < 0.6)
                                else "PR"
                            )
                        if response == "CR":
                            sod = 0
                        elif response == "PR":
                            sod = round(base_sod * (0.35 + r() * 0.34))
                        else:
                            sod = round(base_sod * (0.82 + r() * 0.3))
                        nadir = min(nadir, sod)
                        if r() >= st.sum_of_diameters_share:
                            sod = None
                    emit(p, d, "imaging.performed", "radiology-ris", f"RIS-{self.bits(36):09X}",
                         self._imaging(self.pick_modality(r()), response, sod,
                                       False if r() < st.new_lesions_field_share else None),
                         True)
                    if line_no == 1:
                        last_assessment1 = d
                    if r() < st.exam_at_imaging_share:
                        self._exam(p, d, line_no)
                    if r() < st.ca153_at_imaging_share:
                        self._lab(p, d, len(_LABS) - 1)
                elif c == 1:  # bone scan due
                    next_bone = d + bone_every + int(r() * (2 * jit + 1)) - jit
                    emit(p, d, "imaging.performed", "radiology-ris", f"RIS-{self.bits(36):09X}",
                         self._imaging("bone_scan", None, None, None))
                else:
                    _, _, code, ref, stopped, added = heapq.heappop(agenda)
                    if code == _A_IHC:
                        emit(p, d, "ihc.recorded", "pathology-lis", specimen0, ihc0, True)
                    elif code == _A_BIOPSY:
                        site = (specimen_site if specimen_site != "metastasis"
                                else self._biopsy_site(p))
                        self._biopsy(p, d, "baseline", specimen0, site)
                    elif code == _A_ISH:
                        emit(p, d, "ihc.recorded", "pathology-lis", specimen0, ish_result)
                    elif code == _A_IMAGING0:
                        modality = self.pick_modality(r())
                        sod = 20 + int(r() * 130) if r() < st.sum_of_diameters_share else None
                        emit(p, d, "imaging.performed", "radiology-ris", f"RIS-{self.bits(36):09X}",
                             self._imaging(modality, None, sod, None))
                    elif code == _A_BONE0:
                        next_bone = d + bone_every + int(r() * (2 * jit + 1)) - jit
                        emit(p, d, "imaging.performed", "radiology-ris", f"RIS-{self.bits(36):09X}",
                             self._imaging("bone_scan", None, None, None))
                    elif code == _A_INCLUDE:
                        version = next(v for since, v in _CONSENT_VERSIONS if inc_date >= since)
                        emit(p, d, "patient.included", "research-crf", f"CRF-{pid}-INC", {
                            "birth_year": p.birth_year,
                            "sex": "male" if r() < st.male_share else "female",
                            "centre": self.pick_centre(r()),
                            "consent_version": version,
                            "presentation": "de_novo" if de_novo else "recurrent",
                            "metastatic_sites": sites,
                        })
                    elif code == _A_CRISIS:
                        if crisis:
                            n_criteria = len(_CRISIS_CRITERIA)
                            first = int(r() * n_criteria)
                            criteria = [_CRISIS_CRITERIA[first]]
                            if r() < 0.3:
                                criteria.append(_CRISIS_CRITERIA[(first + 1) % n_criteria])
                            payload: _Payload = {"present": True, "criteria": criteria}
                        else:
                            payload = {"present": False}
                        emit(p, d, "visceral_crisis.assessed", "research-crf", f"CRF-{pid}-VC",
                             payload)
                    elif code == _A_PROGRESSION_BIOPSY:
                        specimen = self._specimen_id(d)
                        self._biopsy(p, d, "progression", specimen, self._biopsy_site(p))
                        if r() < st.ihc_on_biopsy_share:
                            er = p.er != (r() < st.er_conversion_rate)
                            pr = p.pr != (r() < st.pr_conversion_rate)
                            her2 = p.her2 != (r() < st.her2_conversion_rate)
                            emit(p, d, "ihc.recorded", "pathology-lis", specimen,
                                 self._ihc(p, specimen, "metastasis", er, pr, her2, False), True)
                            if (er or pr) != (p.er or p.pr) or her2 != p.her2:
                                conversion = True
                    elif on_line and ref == line_ref and set(stopped) <= set(drugs_now):
                        drugs_now = [g for g in drugs_now if g not in stopped]
                        drugs_now.extend(g for g in added if g not in drugs_now)
                        interval = self._interval(group, not _CYTOTOXIC.isdisjoint(drugs_now))
                        emit(p, d, "line.modified", "oncology-prescribing", line_ref, {
                            "line_ref": line_ref,
                            "drugs_added": [self._drug_name(g) for g in added],
                            "drugs_stopped": [self._drug_name(g) for g in stopped],
                        })

            # the end of this phase
            if end_code == _END_HORIZON:
                if end_reason != "cutoff":
                    cur = end
                    yield end
                    if end_reason == "lost":
                        self.n["lost"] += 1
                        emit(p, end, "followup.lost", "research-crf", f"CRF-{pid}-LOST", {})
                    else:
                        self.n["withdrawn"] += 1
                        scope = "erase" if r() < st.erase_share else "stop_followup"
                        emit(p, end, "consent.withdrawn", "research-crf", f"CRF-{pid}-WD",
                             {"scope": scope})
                break
            if end > cur:
                cur = end
                yield end
            if end_code == _END_DEATH:
                if on_line and r() < st.line_end_on_death_share:
                    emit(p, end, "line.ended", "oncology-prescribing", line_ref,
                         {"line_ref": line_ref, "reason": "death"})
                emit(p, end, "death.recorded", "research-crf", f"CRF-{pid}-DEATH",
                     {"cause": self.pick_cause(r())})
                self.n["deaths"] += 1
                death_day = horizon = end
                end_reason = "death"
                break
            if end_code == _END_START:
                line_no += 1
                start = end
                key = next_key
                alternatives = REGIMENS[key].alternatives
                generic = alternatives[int(r() * len(alternatives))]
                drugs_now = list(generic)
                interval = self._interval(group, not _CYTOTOXIC.isdisjoint(generic))
                line_ref = f"RX-{self.bits(40):010X}"
                misspelt_before = self.misspelt
                started: _Payload = {
                    "line_ref": line_ref,
                    "drugs": [self._drug_name(g) for g in generic],
                }
                if r() < st.declared_line_number_share:
                    declared = line_no
                    if r() < st.declared_line_number_wrong_share:
                        declared = line_no + 1 if line_no == 1 or r() < 0.5 else line_no - 1
                    started["declared_line_number"] = declared
                if r() < st.intent_share:
                    started["intent"] = "palliative"
                emit(p, start, "line.started", "oncology-prescribing", line_ref, started, True)
                self._exam(p, start, line_no)
                for which in range(len(_LABS)):
                    if r() < st.labs_at_line_start_share:
                        self._lab(p, start, which)
                on_line = True
                # what will end this line
                pfs = max(1, round(expo(math.log(2) / self._median_days(key, line_no))))
                rates = st.death_rate_per_year
                rate = rates[min(line_no, len(rates)) - 1] * st.death_hazard_ratio[group - 1]
                death = start + 1 + int(expo(rate / 365.25)) if rate > 0 else _INF
                toxicity = _INF
                if pfs > 15 and r() < st.toxicity_stop_share:
                    toxicity = start + 14 + int(r() * (pfs - 15))
                end, end_code = start + pfs, _END_PROGRESSION
                if death < end:
                    end, end_code = death, _END_DEATH
                if toxicity < end:
                    end, end_code = toxicity, _END_TOXICITY
                if end >= stop:
                    end, end_code = stop, _END_HORIZON
                next_img = start + interval + int(r() * (2 * jit + 1)) - jit
                assessments = 0
                best = (self.pick_best1 if line_no == 1 else self.pick_best_later)(r())
                base_sod = nadir = 20 + int(r() * 130)
                # changes within the line, planned now, dropped if the line ends first
                taxane = next((g for g in generic if g in _TAXANES), None)
                cycles = st.taxane_cycles_days + int(r() * 29) - 14
                if (group == 2 and taxane is not None and "trastuzumab" in generic
                        and r() < st.taxane_stop_share_group2):
                    push(agenda, (start + cycles, ticket(), _A_MOD_STOP, line_ref, (taxane,), ()))
                if (group == 1 and key == "combination_chemotherapy"
                        and r() < st.maintenance_endocrine_share):
                    chemo = tuple(g for g in generic if g in _CYTOTOXIC)
                    push(agenda, (start + cycles, ticket(), _A_MOD_MAINTENANCE, line_ref, chemo,
                                  ("letrozole",)))
                if key == "paclitaxel+bevacizumab" and r() < st.paclitaxel_stop_share_bevacizumab:
                    push(agenda, (start + cycles + 42, ticket(), _A_MOD_STOP, line_ref,
                                  ("paclitaxel",), ()))
                if p.bone and not p.bone_agent and r() < st.bone_agent_share:
                    p.bone_agent = True
                    agent = "denosumab" if r() < 0.6 else "zoledronic acid"
                    push(agenda, (start + int(r() * 61), ticket(), _A_MOD_ADD, line_ref, (),
                                  (agent,)))
                if taxane is not None and r() < st.taxane_swap_share:
                    other = ("paclitaxel" if taxane != "paclitaxel"
                             else "nab-paclitaxel" if r() < 0.5 else "docetaxel")
                    push(agenda, (start + 21 + int(r() * 100), ticket(), _A_MOD_SWAP, line_ref,
                                  (taxane,), (other,)))
                if line_no == 1:
                    s1, key1, pfs_drawn = start, key, pfs
                    regimen1 = "+".join(sorted(generic))
                    misspelt1 = self.misspelt != misspelt_before
                elif line_no == 2:
                    s2 = start
                continue

            # progression or toxicity: the line stops
            stopped_at = end
            supportive = False
            if end_code == _END_PROGRESSION:
                new_sites: list[str] = []
                if r() < st.new_sites_at_progression_share:
                    candidates = [x for x in _SITES if x not in p.sites and x != "other"]
                    if candidates:
                        new_sites.append(candidates.pop(int(r() * len(candidates))))
                        if candidates and r() < 0.3:
                            new_sites.append(candidates.pop(int(r() * len(candidates))))
                        new_sites = [x for x in _SITES if x in new_sites]
                        p.sites = [x for x in _SITES if x in p.sites or x in new_sites]
                        if "bone" in new_sites:
                            p.bone = True
                            next_bone = stopped_at + bone_every
                pd_imaging = r() < st.pd_imaging_share
                if pd_imaging:
                    sod = round(max(nadir, 10) * (1.22 + r() * 0.4))
                    emit(p, stopped_at, "imaging.performed", "radiology-ris",
                         f"RIS-{self.bits(36):09X}",
                         self._imaging(self.pick_modality(r()), "PD",
                                       sod if r() < st.sum_of_diameters_share else None,
                                       True if new_sites else
                                       (r() < 0.3) if r() < st.new_lesions_field_share else None),
                         True)
                    if line_no == 1:
                        last_assessment1 = stopped_at
                if not pd_imaging or r() < st.progression_documented_share:
                    basis = ("radiological" if pd_imaging or r() < 0.5
                             else "clinical" if r() < 0.7 else "biological")
                    emit(p, stopped_at, "progression.documented", "research-crf",
                         f"CRF-{pid}-PD{line_no}", {"basis": basis, "new_sites": new_sites})
                if line_no == 1:
                    progression1 = stopped_at
                if r() >= st.missing_biopsy_share:
                    biopsy = stopped_at + int(r() * (st.biopsy_delay_max_days + 1))
                    push(agenda, (biopsy, ticket(), _A_PROGRESSION_BIOPSY, "", (), ()))
                stops = st.stop_treatment_after_line
                supportive = line_no >= st.max_lines or r() < stops[min(line_no, len(stops)) - 1]
                if supportive or r() >= st.missing_line_end_share:
                    emit(p, stopped_at, "line.ended", "oncology-prescribing", line_ref,
                         {"line_ref": line_ref, "reason": "progression"})
            else:  # toxicity, or the patient's choice
                reason = "patient_choice" if r() < st.patient_choice_share else "toxicity"
                emit(p, stopped_at, "line.ended", "oncology-prescribing", line_ref,
                     {"line_ref": line_ref, "reason": reason})
                supportive = line_no >= st.max_lines
            on_line = False
            next_img = _INF
            if supportive:
                next_bone = _INF
                end, end_code = self._supportive_care(stopped_at, stop)
            else:
                gap_low, gap_high = st.next_line_gap_days
                gap = (0 if end_code == _END_PROGRESSION and r() < st.same_day_next_line_share
                       else gap_low + int(r() * (gap_high - gap_low + 1)))
                next_key = self._later_regimen(p, line_no + 1)
                next_start = stopped_at + gap
                end, end_code = (
                    (next_start, _END_START) if next_start < stop else (stop, _END_HORIZON)
                )

        if self.truths is None:
            return
        pfs_days: int | None = None
        pfs_event: bool | None = None
        if s1 >= 0:
            if progression1 >= 0:
                pfs_days, pfs_event = progression1 - s1, True
            elif death_day >= 0 and s2 < 0:
                pfs_days, pfs_event = death_day - s1, True
            else:
                pfs_days = last_assessment1 - s1 if last_assessment1 >= 0 else 0
                pfs_event = False
        self.truths.append(PatientTruth(
            patient_id=pid,
            inclusion_date=inc_date,
            group=group,
            visceral_crisis=crisis,
            her2_pending=pending and not ish_day < stop,
            first_line_regimen_key=key1,
            first_line_regimen=regimen1,
            first_line_concordant=concordant if s1 >= 0 else None,
            first_line_start=date.fromordinal(s1) if s1 >= 0 else None,
            first_line_misspelt=misspelt1,
            pfs_drawn_days=pfs_drawn if s1 >= 0 else None,
            pfs_days=pfs_days,
            pfs_event=pfs_event,
            lines=line_no,
            receptor_conversion=conversion,
            end_date=date.fromordinal(horizon),
            end_reason=end_reason,
            withdrawal_scope=scope,
        ))


# --- public API -------------------------------------------------------------------

_TAG_NAMES: Final = ("event", "duplicate", *(f"malformed:{kind}" for kind in MALFORMED_KINDS))


def iter_annotated(settings: SimulationSettings) -> Iterator[tuple[str, bytes]]:
    """Each line (bytes, no newline) in arrival order, with what it is.

    The label is ``event`` (a well-formed event, first sending), ``duplicate``
    (a byte-identical repeat) or ``malformed:<kind>`` with a kind of
    :data:`MALFORMED_KINDS`.  Meant for tests that must tell them apart.
    """
    for tag, line in _Simulation(settings, collect_truth=False).run():
        yield _TAG_NAMES[tag], line


def iter_cohort(settings: SimulationSettings) -> Iterator[bytes]:
    """Each JSON line of the cohort (bytes, no newline), in arrival order."""
    for _, line in _Simulation(settings, collect_truth=False).run():
        yield line


def write_cohort(settings: SimulationSettings, out: BinaryIO) -> SimulationSummary:
    """Write the cohort as JSON Lines to a binary stream; return what was written."""
    simulation = _Simulation(settings, collect_truth=False)
    batch: list[bytes] = []
    lines = 0
    for _, line in simulation.run():
        batch.append(line)
        if len(batch) == 4096:
            batch.append(b"")
            out.write(b"\n".join(batch))
            lines += 4096
            batch.clear()
    if batch:
        lines += len(batch)
        batch.append(b"")
        out.write(b"\n".join(batch))
    return simulation.summary(lines)


def simulate_cohort(out: BinaryIO, settings: SimulationSettings | None = None) -> SimulationSummary:
    """Entry point for the command line: :func:`write_cohort` with default settings."""
    return write_cohort(settings if settings is not None else SimulationSettings(), out)


def truth(settings: SimulationSettings) -> list[PatientTruth]:
    """The drawn ground truth per patient, sorted by patient id (runs the whole simulation)."""
    simulation = _Simulation(settings, collect_truth=True)
    for _ in simulation.run():
        pass
    assert simulation.truths is not None
    return sorted(simulation.truths, key=lambda t: t.patient_id)
