"""Receptor status of one IHC result (ASCO/CAP 2018, reaffirmed 2023) and the phenotype group.

* ER / PR positive when >= 1 % of nuclei stain; 1-10 % is reported as ER-low.
* HER2 positive: IHC 3+, or IHC 2+ with ISH amplified.  HER2 negative: IHC 0 or
  1+, or 2+ with ISH not amplified; HER2-low = IHC 1+ or 2+/ISH not amplified.
  IHC 2+ without an ISH result (or equivocal): HER2 pending, group unknown.
* When the ISH ratio and mean HER2 copy number are both sent, the ISH result
  follows the ASCO/CAP ISH groups rather than the reported word.
* Group 1 = HR+ HER2-, group 2 = HER2+ (any HR), group 3 = HR- HER2- (triple negative).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mbcjourney.events.catalogue import IhcRecordedPayload
from mbcjourney.events.vocabulary import Her2Ihc, Her2Ish
from mbcjourney.projections.settings import ClinicalSettings


class HrStatus(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    UNKNOWN = "unknown"


class Her2Status(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    PENDING = "pending"
    UNKNOWN = "unknown"


class Group(StrEnum):
    HR_POSITIVE_HER2_NEGATIVE = "1"
    HER2_POSITIVE = "2"
    TRIPLE_NEGATIVE = "3"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReceptorProfile:
    er_positive: bool
    er_low: bool
    pr_positive: bool
    hr_status: HrStatus
    her2_status: Her2Status
    her2_low: bool | None  # None while HER2 is pending
    ish_group: int | None  # ASCO/CAP ISH group 1-5 when ratio and copy number were sent
    ish_result: Her2Ish  # the ISH result the status was derived from
    ish_disagrees: bool  # the reported ISH word contradicts the ratio / copy number
    group: Group


def ish_group(ratio: float, copies: float, s: ClinicalSettings) -> int:
    """ASCO/CAP 2018 dual-probe ISH group (1-5)."""
    if ratio >= s.ish_ratio_threshold:
        return 1 if copies >= s.ish_copy_number_amplified else 2
    if copies >= s.ish_copy_number_high:
        return 3
    return 4 if copies >= s.ish_copy_number_amplified else 5


def ish_result_of_group(group: int, ihc: Her2Ihc) -> Her2Ish:
    """Groups 1 and 5 stand alone; 2-4 need the IHC work-up (for IHC 2+ only group 3 is +)."""
    if group == 1:
        return Her2Ish.AMPLIFIED
    if group == 3 and ihc in (Her2Ihc.TWO_PLUS, Her2Ihc.THREE_PLUS):
        return Her2Ish.AMPLIFIED
    return Her2Ish.NOT_AMPLIFIED


def classify(ihc: IhcRecordedPayload, s: ClinicalSettings) -> ReceptorProfile:
    er_positive = ihc.er_percent >= s.receptor_positive_min_percent
    pr_positive = ihc.pr_percent >= s.receptor_positive_min_percent
    er_low = er_positive and ihc.er_percent <= s.er_low_max_percent
    hr = HrStatus.POSITIVE if er_positive or pr_positive else HrStatus.NEGATIVE

    group_number: int | None = None
    ish = ihc.her2_ish
    disagrees = False
    if ihc.her2_ish_ratio is not None and ihc.her2_copy_number is not None:
        group_number = ish_group(ihc.her2_ish_ratio, ihc.her2_copy_number, s)
        derived = ish_result_of_group(group_number, ihc.her2_ihc)
        disagrees = ish not in (Her2Ish.NOT_DONE, derived)
        ish = derived

    her2_low: bool | None
    if ihc.her2_ihc is Her2Ihc.THREE_PLUS:
        her2, her2_low = Her2Status.POSITIVE, False
    elif ihc.her2_ihc is Her2Ihc.TWO_PLUS:
        if ish is Her2Ish.AMPLIFIED:
            her2, her2_low = Her2Status.POSITIVE, False
        elif ish is Her2Ish.NOT_AMPLIFIED:
            her2, her2_low = Her2Status.NEGATIVE, True
        else:
            her2, her2_low = Her2Status.PENDING, None
    else:
        her2, her2_low = Her2Status.NEGATIVE, ihc.her2_ihc is Her2Ihc.ONE_PLUS

    return ReceptorProfile(
        er_positive=er_positive,
        er_low=er_low,
        pr_positive=pr_positive,
        hr_status=hr,
        her2_status=her2,
        her2_low=her2_low,
        ish_group=group_number,
        ish_result=ish,
        ish_disagrees=disagrees,
        group=phenotype_group(hr, her2),
    )


def phenotype_group(hr: HrStatus, her2: Her2Status) -> Group:
    if her2 is Her2Status.POSITIVE:
        return Group.HER2_POSITIVE
    if her2 is not Her2Status.NEGATIVE or hr is HrStatus.UNKNOWN:
        return Group.UNKNOWN
    return Group.HR_POSITIVE_HER2_NEGATIVE if hr is HrStatus.POSITIVE else Group.TRIPLE_NEGATIVE
