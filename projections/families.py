"""Treatment families of a line, and the colours every picture gives them.

One vocabulary for the report's swimmer plot (:mod:`mbcjourney.report_figures`)
and the coordinators' patient timeline (:mod:`mbcjourney.service.pages`): a line
is the same colour wherever a person sees it.  Pure: drug names in, a family out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

from mbcjourney.events.drugs import Drug, normalise_drug
from mbcjourney.events.vocabulary import DrugClass
from mbcjourney.projections.settings import DEFAULT_CLINICAL


class RegimenClass(StrEnum):
    """Treatment families for the swimmer plot, in order of precedence."""

    ADC = "ADC"
    ANTI_HER2 = "Anti-HER2 ± chemotherapy"
    ENDOCRINE_CDK46 = "Endocrine + CDK4/6i"
    CHEMOTHERAPY = "Chemotherapy ± other"
    ENDOCRINE = "Endocrine ± targeted"
    OTHER = "Other / unknown"


def drugs_of(regimen: str) -> tuple[Drug, ...]:
    """The drugs of an exported ``regimen`` (generic names joined by ``+``)."""
    return tuple(normalise_drug(name) for name in regimen.split("+") if name.strip())


def regimen_class(regimen: str,
                  cytotoxic_classes: Iterable[str] = DEFAULT_CLINICAL.cytotoxic_classes
                  ) -> RegimenClass:
    """The family of a line, from its drugs' classes (bone-targeted agents are ignored).

    Any antibody-drug conjugate makes it ``ADC``; else any anti-HER2 drug
    ``ANTI_HER2``; else a CDK4/6 inhibitor ``ENDOCRINE_CDK46``; else a cytotoxic
    drug (``cytotoxic_classes``, as the imaging schedule uses) ``CHEMOTHERAPY``
    (with bevacizumab or immunotherapy too); else an endocrine drug ``ENDOCRINE``
    (with everolimus, alpelisib, capivasertib ...); anything else ``OTHER``.
    """
    classes = {d.drug_class for d in drugs_of(regimen)} - {DrugClass.BONE_TARGETED}
    cytotoxic = set(cytotoxic_classes)
    if DrugClass.ADC in classes:
        return RegimenClass.ADC
    if DrugClass.ANTI_HER2 in classes:
        return RegimenClass.ANTI_HER2
    if DrugClass.CDK46_INHIBITOR in classes:
        return RegimenClass.ENDOCRINE_CDK46
    if any(c.value in cytotoxic for c in classes):
        return RegimenClass.CHEMOTHERAPY
    if DrugClass.ENDOCRINE in classes:
        return RegimenClass.ENDOCRINE
    return RegimenClass.OTHER


#: Okabe-Ito palette (readable with colour-vision deficiency), one colour per family.
FAMILY_COLOURS: Final[Mapping[RegimenClass, str]] = {
    RegimenClass.CHEMOTHERAPY: "#E69F00",
    RegimenClass.ENDOCRINE_CDK46: "#0072B2",
    RegimenClass.ENDOCRINE: "#56B4E9",
    RegimenClass.ANTI_HER2: "#009E73",
    RegimenClass.ADC: "#CC79A7",
    RegimenClass.OTHER: "#7F7F7F",
}
OFF_TREATMENT_COLOUR: Final = "#D9D9D9"
PROGRESSION_COLOUR: Final = "#D55E00"
