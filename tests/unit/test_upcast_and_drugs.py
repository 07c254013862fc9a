"""The shipped upcast (ihc.recorded v0 -> v1) and the drug vocabulary."""

from __future__ import annotations

import pytest

from mbcjourney.errors import InvalidEvent
from mbcjourney.events import decode_event
from mbcjourney.events.catalogue import IhcRecorded
from mbcjourney.events.drugs import normalise_drug
from mbcjourney.events.upcasters import parse_her2_text
from mbcjourney.events.vocabulary import DrugClass
from tests.support.builders import RECEIVED, PatientBuilder, dumps


@pytest.mark.parametrize(
    ("text", "ihc", "ish"),
    [
        ("2+ FISH neg", "2+", "not_amplified"),
        ("2+ fish negative", "2+", "not_amplified"),
        ("2+ ISH not amplified", "2+", "not_amplified"),
        ("2+ SISH pos", "2+", "amplified"),
        ("2+ FISH amplified", "2+", "amplified"),
        ("2+ ISH equivocal", "2+", "equivocal"),
        ("2+", "2+", "not_done"),
        ("2+ FISH pending", "2+", "not_done"),
        ("3+", "3+", "not_done"),
        ("IHC 1+", "1+", "not_done"),
        ("0", "0", "not_done"),
    ],
)
def test_parse_her2_text(text: str, ihc: str, ish: str) -> None:
    assert parse_her2_text(text) == (ihc, ish)


def _v0(her2: str) -> bytes:
    raw = PatientBuilder().raw("ihc.recorded", "2025-03-01", {
        "specimen_id": "S1", "specimen_site": "metastasis", "er_percent": 80,
        "pr_percent": 20, "her2": her2}, version=0)
    return dumps(raw)


def test_v0_event_is_upcast_to_current_version() -> None:
    event = decode_event(_v0("2+ FISH neg"), received_at=RECEIVED)
    assert isinstance(event, IhcRecorded)
    assert event.schema_version == 1
    assert (event.payload.her2_ihc, event.payload.her2_ish) == ("2+", "not_amplified")


@pytest.mark.parametrize("text", ["positive", "4+", "2+ FISH maybe"])
def test_v0_unreadable_her2_is_rejected_on_its_field(text: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(_v0(text), received_at=RECEIVED)
    assert caught.value.errors[0].field == "payload.her2"


@pytest.mark.parametrize(
    ("name", "generic", "drug_class"),
    [
        ("Taxol", "paclitaxel", DrugClass.TAXANE),
        ("TAXOTERE", "docetaxel", DrugClass.TAXANE),
        ("abraxane", "nab-paclitaxel", DrugClass.TAXANE),
        ("Herceptin", "trastuzumab", DrugClass.ANTI_HER2),
        ("Perjeta", "pertuzumab", DrugClass.ANTI_HER2),
        ("Avastin", "bevacizumab", DrugClass.ANTI_ANGIOGENIC),
        ("Ibrance", "palbociclib", DrugClass.CDK46_INHIBITOR),
        ("Kisqali", "ribociclib", DrugClass.CDK46_INHIBITOR),
        ("Verzenio", "abemaciclib", DrugClass.CDK46_INHIBITOR),
        ("Femara", "letrozole", DrugClass.ENDOCRINE),
        ("Faslodex", "fulvestrant", DrugClass.ENDOCRINE),
        ("Adriamycin", "doxorubicin", DrugClass.ANTHRACYCLINE),
        ("Enhertu", "trastuzumab deruxtecan", DrugClass.ADC),
        ("T-DXd", "trastuzumab deruxtecan", DrugClass.ADC),
        ("Lynparza", "olaparib", DrugClass.PARP_INHIBITOR),
        ("Piqray", "alpelisib", DrugClass.PI3K_AKT_MTOR),
        ("Keytruda", "pembrolizumab", DrugClass.IMMUNOTHERAPY),
        ("Xgeva", "denosumab", DrugClass.BONE_TARGETED),
        ("Xeloda", "capecitabine", DrugClass.OTHER_CYTOTOXIC),
        ("zoledronic_acid", "zoledronic acid", DrugClass.BONE_TARGETED),
    ],
)
def test_brand_and_generic_names(name: str, generic: str, drug_class: DrugClass) -> None:
    drug = normalise_drug(name)
    assert (drug.name, drug.drug_class) == (generic, drug_class)


def test_unknown_drug_is_kept_verbatim() -> None:
    drug = normalise_drug(" Paclitaxol ")
    assert drug.name == "Paclitaxol"
    assert not drug.known
