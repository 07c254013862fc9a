"""Receptor rules at their boundaries (ASCO/CAP 2018, reaffirmed 2023)."""

from __future__ import annotations

import pytest

from mbcjourney.events.catalogue import IhcRecordedPayload
from mbcjourney.projections.receptors import Group, Her2Status, HrStatus, classify, ish_group
from mbcjourney.settings import DEFAULT_CLINICAL as S


def ihc(er: float = 0, pr: float = 0, her2: str = "0", ish: str = "not_done",
        ratio: float | None = None, copies: float | None = None) -> IhcRecordedPayload:
    return IhcRecordedPayload.model_validate({
        "specimen_id": "S1", "specimen_site": "metastasis", "er_percent": er, "pr_percent": pr,
        "her2_ihc": her2, "her2_ish": ish, "her2_ish_ratio": ratio, "her2_copy_number": copies})


@pytest.mark.parametrize(
    ("er", "positive", "low"),
    [(0, False, False), (0.9, False, False), (1, True, True), (10, True, True),
     (11, True, False), (100, True, False)],
)
def test_er_thresholds(er: float, positive: bool, low: bool) -> None:
    profile = classify(ihc(er=er), S)
    assert (profile.er_positive, profile.er_low) == (positive, low)
    assert profile.hr_status is (HrStatus.POSITIVE if positive else HrStatus.NEGATIVE)


def test_pr_alone_makes_hr_positive() -> None:
    assert classify(ihc(er=0, pr=1), S).hr_status is HrStatus.POSITIVE
    assert classify(ihc(er=0, pr=0.5), S).hr_status is HrStatus.NEGATIVE


@pytest.mark.parametrize(
    ("her2", "ish", "status", "low"),
    [
        ("0", "not_done", Her2Status.NEGATIVE, False),
        ("1+", "not_done", Her2Status.NEGATIVE, True),
        ("2+", "not_amplified", Her2Status.NEGATIVE, True),
        ("2+", "amplified", Her2Status.POSITIVE, False),
        ("2+", "not_done", Her2Status.PENDING, None),
        ("2+", "equivocal", Her2Status.PENDING, None),
        ("3+", "not_done", Her2Status.POSITIVE, False),
    ],
)
def test_her2_status(her2: str, ish: str, status: Her2Status, low: bool | None) -> None:
    profile = classify(ihc(er=50, her2=her2, ish=ish), S)
    assert profile.her2_status is status
    assert profile.her2_low is low


@pytest.mark.parametrize(
    ("er", "her2", "ish", "group"),
    [
        (50, "1+", "not_done", Group.HR_POSITIVE_HER2_NEGATIVE),
        (50, "3+", "not_done", Group.HER2_POSITIVE),
        (0, "2+", "amplified", Group.HER2_POSITIVE),
        (0, "0", "not_done", Group.TRIPLE_NEGATIVE),
        (0, "2+", "not_done", Group.UNKNOWN),
        (1, "2+", "not_amplified", Group.HR_POSITIVE_HER2_NEGATIVE),
        (0.5, "2+", "not_amplified", Group.TRIPLE_NEGATIVE),
    ],
)
def test_phenotype_group(er: float, her2: str, ish: str, group: Group) -> None:
    assert classify(ihc(er=er, her2=her2, ish=ish), S).group is group


@pytest.mark.parametrize(
    ("ratio", "copies", "group", "status_2plus"),
    [
        (2.0, 4.0, 1, Her2Status.POSITIVE),  # ratio >= 2.0, copies >= 4: amplified
        (2.5, 3.9, 2, Her2Status.NEGATIVE),  # ratio >= 2.0, copies < 4
        (1.9, 6.0, 3, Her2Status.POSITIVE),  # ratio < 2.0, copies >= 6: + for IHC 2+
        (1.9, 5.9, 4, Her2Status.NEGATIVE),  # ratio < 2.0, 4 <= copies < 6
        (1.9, 4.0, 4, Her2Status.NEGATIVE),
        (1.9, 3.9, 5, Her2Status.NEGATIVE),  # ratio < 2.0, copies < 4: not amplified
    ],
)
def test_ish_groups_with_ihc_2plus(ratio: float, copies: float, group: int,
                                   status_2plus: Her2Status) -> None:
    assert ish_group(ratio, copies, S) == group
    profile = classify(ihc(er=50, her2="2+", ish="not_done", ratio=ratio, copies=copies), S)
    assert profile.ish_group == group
    assert profile.her2_status is status_2plus


def test_ish_group3_with_ihc_1plus_stays_negative() -> None:
    assert classify(ihc(her2="1+", ratio=1.5, copies=7.0), S).her2_status is Her2Status.NEGATIVE


def test_ratio_and_copies_override_a_contradicting_word() -> None:
    profile = classify(ihc(er=50, her2="2+", ish="amplified", ratio=1.2, copies=2.0), S)
    assert profile.her2_status is Her2Status.NEGATIVE
    assert profile.ish_disagrees
    agreeing = classify(ihc(er=50, her2="2+", ish="not_amplified", ratio=1.2, copies=2.0), S)
    assert not agreeing.ish_disagrees


def test_ratio_without_copy_number_uses_reported_result() -> None:
    profile = classify(ihc(er=50, her2="2+", ish="amplified", ratio=1.2), S)
    assert profile.her2_status is Her2Status.POSITIVE
    assert profile.ish_group is None


def test_thresholds_come_from_settings() -> None:
    strict = S.model_copy(update={"receptor_positive_min_percent": 10.0})
    assert classify(ihc(er=5), strict).hr_status is HrStatus.NEGATIVE
