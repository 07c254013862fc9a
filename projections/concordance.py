"""First-line concordance with the study protocol (seed/protocol.txt, "Standard treatments").

* Group 1 with visceral crisis: taxane- or anthracycline-based chemotherapy.
* Group 1 without: endocrine therapy combined with a CDK4/6 inhibitor.
* Group 2: paclitaxel or docetaxel + trastuzumab + pertuzumab.
* Group 3: paclitaxel with or without bevacizumab.
Bone-targeted agents (denosumab, zoledronic acid) are supportive care and never
make a regimen discordant; subcutaneous trastuzumab + pertuzumab (Phesgo) counts
as both antibodies.  The result is ``None`` (unknown) when the group is
unknown or no first line has started.
"""

from __future__ import annotations

from collections.abc import Iterable

from mbcjourney.events.drugs import Drug
from mbcjourney.events.vocabulary import DrugClass
from mbcjourney.projections.receptors import Group

SUPPORTIVE_CLASSES = frozenset({DrugClass.BONE_TARGETED})
# Fixed-dose combination products count as each of their components.
FIXED_DOSE_COMPONENTS = {
    "trastuzumab and pertuzumab subcutaneous": frozenset({"trastuzumab", "pertuzumab"}),
}


def active_components(drugs: Iterable[Drug]) -> frozenset[str]:
    """Generic names of the anticancer drugs: supportive care left out, combinations split."""
    return frozenset().union(*(FIXED_DOSE_COMPONENTS.get(d.name, {d.name}) for d in drugs
                               if d.drug_class not in SUPPORTIVE_CLASSES))


def first_line_concordant(group: Group, visceral_crisis: bool, drugs: tuple[Drug, ...]
                          ) -> bool | None:
    if group is Group.UNKNOWN or not drugs:
        return None
    names = active_components(drugs)
    classes = {d.drug_class for d in drugs}
    if group is Group.HR_POSITIVE_HER2_NEGATIVE:
        if visceral_crisis:
            return bool(classes & {DrugClass.TAXANE, DrugClass.ANTHRACYCLINE})
        return DrugClass.ENDOCRINE in classes and DrugClass.CDK46_INHIBITOR in classes
    if group is Group.HER2_POSITIVE:
        return bool(names & {"paclitaxel", "docetaxel"}) and {"trastuzumab", "pertuzumab"} <= names
    return "paclitaxel" in names and names <= {"paclitaxel", "bevacizumab"}
