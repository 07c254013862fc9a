"""Every clinical threshold and interval the engine uses, in one place, each cited.

Projections receive a ``ClinicalSettings`` argument; nothing clinical is a bare
literal elsewhere.  A study can override any value from a TOML or JSON file
(``journey --settings study.toml ...``), e.g.::

    [clinical]
    grace_days = 7
    imaging_interval_weeks_group3 = 6
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mbcjourney.events.errors import ConfigurationError

# Upper bounds of the intervals: ten years is past any study's follow-up, and keeps
# every due date (a date plus an interval plus the grace) a representable date.
_MAX_WEEKS = 520
_MAX_DAYS = 3650


class ClinicalSettings(BaseModel):
    """Study parameters (DESIGN section 5), with the protocol's defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Receptor status: ASCO/CAP 2018 (reaffirmed 2023) -- ER/PR positive at >= 1 %
    # of stained nuclei; 1-10 % reported as "ER-low".
    receptor_positive_min_percent: float = Field(1.0, ge=0, le=100)
    er_low_max_percent: float = Field(10.0, ge=0, le=100)
    # HER2 ISH groups (ASCO/CAP 2018): HER2/CEP17 ratio and mean HER2 copies per cell.
    ish_ratio_threshold: float = Field(2.0, gt=0)
    ish_copy_number_amplified: float = Field(4.0, gt=0)  # group 1 floor, group 5 ceiling
    ish_copy_number_high: float = Field(6.0, gt=0)  # group 3 floor (ratio < 2.0)

    # Imaging cadence: protocol "every 2 to 6 months according to patient group";
    # study defaults inside that range (DESIGN section 5).
    imaging_interval_weeks_group3: int = Field(8, ge=1, le=_MAX_WEEKS)
    imaging_interval_weeks_group1_chemotherapy: int = Field(8, ge=1, le=_MAX_WEEKS)
    imaging_interval_weeks_group2: int = Field(12, ge=1, le=_MAX_WEEKS)
    imaging_interval_weeks_group1_endocrine: int = Field(12, ge=1, le=_MAX_WEEKS)
    # the shortest interval:
    imaging_interval_weeks_unknown_group: int = Field(8, ge=1, le=_MAX_WEEKS)
    grace_days: int = Field(14, ge=0, le=_MAX_DAYS)
    # Bone scan for patients with bone metastases (protocol: "bone scan (for
    # patients with bone metastasis)"); study default every 24 weeks.
    bone_scan_interval_weeks: int = Field(24, ge=1, le=_MAX_WEEKS)
    # Biopsy at each progression (protocol: "metastasis biopsy samples done at
    # baseline and at each progression"); study default within 42 days, no grace.
    biopsy_due_days_after_progression: int = Field(42, ge=0, le=_MAX_DAYS)

    # Lines derived from drug administrations (patients whose source sends no
    # line.started): the rule set of Meng et al., J Biomed Inform 2019 (Merck's
    # line-of-therapy algorithm), with the parameters validated in JMIR Med Inform
    # 2021;9(10):e29017, Table 5 -- a regimen is every drug first given within 28 days
    # of the line's first drug; a new drug after that window starts a new line unless
    # it is an allowed substitution or a maintenance drug; a gap over 180 days without
    # any drug of the line starts a new line (120 days in the pre-refinement variant).
    line_regimen_window_days: int = Field(28, ge=0, le=_MAX_DAYS)
    line_gap_days: int = Field(180, ge=1, le=_MAX_DAYS)
    # Allowed substitutions (same table): each group's drugs are interchangeable.
    line_interchangeable_drugs: tuple[tuple[str, ...], ...] = (
        ("paclitaxel", "nab-paclitaxel"),
        ("cisplatin", "carboplatin"),
    )
    # Maintenance (same table, adapted to breast cancer): "continuation" drugs may go
    # on alone after the rest of the regimen stops (no rule needed: dropping a drug
    # never starts a line); "switch" drugs may be added after the window without a
    # new line once the line's other drugs (continuation drugs aside) have stopped
    # for a whole regimen window -- endocrine maintenance after induction chemotherapy,
    # anti-HER2 therapy continued, as in HR+/HER2+ disease (PERTAIN, PATINA trials).
    line_continuation_maintenance_drugs: tuple[str, ...] = (
        "trastuzumab", "pertuzumab", "trastuzumab and pertuzumab subcutaneous", "bevacizumab",
    )
    line_switch_maintenance_drugs: tuple[str, ...] = (
        "letrozole", "anastrozole", "exemestane", "tamoxifen", "fulvestrant", "goserelin",
        "leuprorelin", "triptorelin",
    )

    # Drug classes that make a line "chemotherapy" for the group 1 cadence.
    cytotoxic_classes: tuple[str, ...] = ("taxane", "anthracycline", "other_cytotoxic")

    # Point-in-time features (journey features, docs/prediction.md).  ECOG and weight:
    # the latest exam within this look-back before the landmark (study default; real-world
    # cohorts take "baseline ECOG" as the latest within a window of 30-90 days before the
    # line start, the window kept wide because visits are 2-3 months apart here).
    feature_exam_lookback_days: int = Field(90, ge=0, le=_MAX_DAYS)
    # Visceral disease: ESO-ESMO ABC 5 (Cardoso 2020) counts lung, liver, pleura and
    # peritoneum as visceral; brain metastases are their own feature.
    visceral_sites: tuple[str, ...] = ("liver", "lung", "pleura", "peritoneum")

    @classmethod
    def from_file(cls, path: Path) -> ClinicalSettings:
        """Load overrides from TOML (``[clinical]`` table) or JSON (``{"clinical": {...}}``)."""
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read settings file {path}: {exc.strerror}") from None
        try:
            data: dict[str, Any] = (
                json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"settings file {path} is not valid: {exc}") from None
        try:
            return cls.model_validate(data.get("clinical", {}))
        except ValidationError as exc:
            raise ConfigurationError(f"settings file {path}: {problems(exc)}") from None


def problems(exc: ValidationError) -> str:
    """Each broken rule as ``field: reason``; never the value given (it may be patient text)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


DEFAULT_CLINICAL = ClinicalSettings()
