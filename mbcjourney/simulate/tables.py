"""The simulator's static tables: sites, drug names, labs, source systems, malformations.

Data, not logic: every value here is what a hospital source system may send, or a
constant the journey steps share.  The regimen table and its mixes are package data
(``regimens.csv``, ``regimen_mixes.json``, read by :mod:`.regimens`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from types import MappingProxyType
from typing import Final

DAYS_PER_MONTH: Final = 365.25 / 12

#: Independent probability of each metastatic site at inclusion (default).
SITE_SHARES: Final[Mapping[str, float]] = MappingProxyType({
    "bone": 0.70,
    "liver": 0.30,
    "lung": 0.25,
    "pleura": 0.10,
    "brain": 0.06,
    "lymph_node": 0.35,
    "skin": 0.04,
    "peritoneum": 0.03,
    "other": 0.03,
})

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

SITES: Final = ("bone", "liver", "lung", "pleura", "brain", "lymph_node", "skin", "peritoneum",
                "other")
VISCERAL: Final = frozenset({"liver", "lung", "pleura", "peritoneum"})
CYTOTOXIC: Final = frozenset({
    "paclitaxel", "nab-paclitaxel", "docetaxel", "doxorubicin", "cyclophosphamide",
    "capecitabine", "eribulin", "gemcitabine", "carboplatin", "trastuzumab deruxtecan",
    "trastuzumab emtansine", "sacituzumab govitecan",
})
TAXANES: Final = ("paclitaxel", "docetaxel", "nab-paclitaxel")
BRANDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
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
DRUG_SWAPS: Final[Mapping[str, str]] = MappingProxyType({
    "paclitaxel": "docetaxel", "docetaxel": "paclitaxel", "taxol": "Taxotere",
    "taxotere": "Taxol", "letrozole": "anastrozole", "anastrozole": "letrozole",
    "femara": "Arimidex", "arimidex": "Femara", "palbociclib": "ribociclib",
    "ribociclib": "palbociclib", "ibrance": "Kisqali", "kisqali": "Ibrance",
    "capecitabine": "gemcitabine", "xeloda": "Gemzar", "eribulin": "vinorelbine",
})
#: Regimens given only to patients with the marker (a ``Patient`` attribute).
TARGETED: Final[Mapping[str, str]] = MappingProxyType({
    "olaparib": "brca", "fulvestrant+alpelisib": "pik3ca",
    "fulvestrant+capivasertib": "pik3ca", "elacestrant": "esr1",
})
UNKNOWN_DRUGS: Final = ("ETU-4471 (trial drug)", "chimio orale", "protocole local 12")
REGIONS: Final[Mapping[str, list[str]]] = MappingProxyType({
    "CT": ["chest", "abdomen", "pelvis"], "PET-CT": ["whole_body"], "MRI": ["liver"],
    "bone_scan": ["whole_body"],
})
CRISIS_CRITERIA: Final = (
    "liver_dysfunction", "lymphangitic_lung_involvement", "bone_marrow_infiltration",
    "symptomatic_visceral_disease",
)
#: (test, LOINC, unit, mean, sd, decimals) of the line-start panel; CA 15-3 is last.
LABS: Final = (
    ("hemoglobin", "718-7", "g/dL", 12.4, 1.3, 1),
    ("neutrophils", "751-8", "10*9/L", 4.2, 1.4, 1),
    ("alanine aminotransferase", "1742-6", "U/L", 26.0, 9.0, 0),
    ("creatinine", "2160-0", "mg/dL", 0.80, 0.15, 2),
    ("CA 15-3", "6875-9", "U/mL", 45.0, 30.0, 0),
)
#: Consent version in force from each date.
CONSENT_VERSIONS: Final = ((date(2023, 9, 1), "2.0"), (date(2022, 10, 1), "1.1"),
                           (date(1900, 1, 1), "1.0"))
SYSTEM_DELAY: Final[Mapping[str, tuple[int, int]]] = MappingProxyType({
    # system -> (minimum days, extra days skewed low) between occurring and recording
    "research-crf": (0, 14), "pathology-lis": (2, 12), "oncology-prescribing": (0, 2),
    "radiology-ris": (0, 3), "biobank": (0, 3), "omics-lab": (21, 25), "lab-lis": (0, 2),
})
UNKNOWN_TYPES: Final = ("ihc.recieved", "tumour_board.held", "line.paused", "imaging.perfomed",
                        "Patient.Included")
BAD_DATES: Final = ("2024-02-30", "31/12/2023", "2023-13-01", "yesterday")
#: A required payload field per type, removed by the ``missing_field`` malformation.
REQUIRED_PAYLOAD_FIELD: Final[Mapping[str, str]] = MappingProxyType({
    "patient.included": "birth_year", "ihc.recorded": "er_percent",
    "visceral_crisis.assessed": "present", "line.started": "drugs",
    "line.modified": "line_ref", "line.ended": "reason", "imaging.performed": "modality",
    "progression.documented": "basis", "biopsy.performed": "specimen_id",
    "biomarker.recorded": "marker", "lab.recorded": "value", "death.recorded": "cause",
    "consent.withdrawn": "scope", "event.retracted": "target_event_id",
})
REQUIRED_ENVELOPE: Final = ("event_id", "event_type", "schema_version", "patient_id",
                            "occurred_at", "source", "payload")
RETRACTION_REASONS: Final = ("data entry error", "wrong value transcribed",
                             "result amended by source")

INF: Final = 1 << 40  # a day that never comes
DAY: Final = 86_400
WORKDAY_START: Final = 7 * 3600
WORKDAY_SECONDS: Final = 12 * 3600
LOOKBACK_DAYS: Final = 28  # baseline biopsy / imaging precede inclusion by at most this
UUID_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
UUID_SET: Final = (0x4000 << 64) | (0x8000 << 48)

# what a line is (the tag of each line in the merge)
TAG_EVENT: Final = 0
TAG_DUPLICATE: Final = 1
TAG_MALFORMED: Final = 2  # + index in MALFORMED_KINDS
TAG_NAMES: Final = ("event", "duplicate", *(f"malformed:{kind}" for kind in MALFORMED_KINDS))

# phase ends of a journey
END_START, END_PROGRESSION, END_DEATH, END_TOXICITY, END_HORIZON = range(5)
# one-off agenda items
(A_BIOPSY, A_IHC, A_IMAGING0, A_BONE0, A_INCLUDE, A_CRISIS, A_ISH, A_MOD_STOP,
 A_MOD_MAINTENANCE, A_MOD_ADD, A_MOD_SWAP, A_PROGRESSION_BIOPSY) = range(12)

#: Known effects on the progression-free hazard (``SimulationSettings.known_effects``), per
#: unit.  Chosen inside the range published estimates report, mostly small real-world
#: CDK4/6-inhibitor series with wide intervals; values to keep the simulation honest, not a
#: meta-analysis (checked in 2026-12 against the figures each source reports):
#: * ``ecog`` per ECOG point at the line start: 1.35 -- conservative: PFS HR 3.68
#:   (1.70-7.96) for ECOG >= 2 vs 0-1 (Lee et al., Cancer Res Treat 2021;53(2), 169
#:   patients, 8 centres) and about 3.1 (1.25-7.7) for PS >= 1 vs 0 (ESMO Congress 2021,
#:   abstract 327P, 61 patients);
#: * ``liver`` metastases: 1.50 -- conservative: PFS HR 2.01 in a multivariable model
#:   (Cancers 2024;16(9):1760, 86 patients) and about 2.2 (1.0-4.8) (ESMO 2021, 327P);
#: * ``brain`` metastases: 1.60 -- an assumption: an independent adverse PFS factor on
#:   CDK4/6 inhibitors (Liu et al., Cancer Innov 2024;3(6):e143), no hazard ratio verified;
#: * ``endocrine_resistance`` (an endocrine drug given in an earlier line): 1.80 --
#:   between the within-cohort ratios of median PFS, 28.2 vs 19.8 months first vs second
#:   line on CDK4/6 inhibitors (Mayo Clinic cohort, PMC9829187) and 12.0 vs 7.4 months
#:   endocrine-sensitive vs resistant (PALOMA-3 subgroups, Breast 2022;66:324), and the
#:   cross-trial 24.8 vs 9.5 months (PALOMA-2, Finn et al., NEJM 2016; PALOMA-3,
#:   Cristofanilli et al., Lancet Oncol 2016); a ratio of medians is a hazard ratio only
#:   under a constant hazard;
#: * ``ki67_per_10`` per 10 percentage points of Ki-67: 1.10 (1.33 over 30 points) --
#:   median TTP 20.3 / 10.8 / 8 months for Ki-67 < 10 / 10-25 / > 25 % on first-line
#:   endocrine therapy (Delpech et al., Breast Cancer Res Treat 2012;135:619);
#: * ``age_per_10`` per 10 years of age over 60: 0.93 -- weak evidence: PFS HR 0.99 per
#:   year (0.98-1.01) after CDK4/6 inhibitors (Oncologist 2023;28(8):682); age < 60
#:   adverse for PFS on palbociclib (Wang et al., BMC Cancer 2024).
PFS_HAZARD_RATIOS: dict[str, float] = {
    "ecog": 1.35, "liver": 1.50, "brain": 1.60, "endocrine_resistance": 1.80,
    "ki67_per_10": 1.10, "age_per_10": 0.93,
}
ENDOCRINE_DRUGS = frozenset({"anastrozole", "letrozole", "exemestane", "fulvestrant",
                             "elacestrant", "tamoxifen"})
