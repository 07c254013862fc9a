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

from mbcjourney.events.drugs import Drug
from mbcjourney.events.vocabulary import DrugClass
from mbcjourney.projections.receptors import Group

_SUPPORTIVE = {DrugClass.BONE_TARGETED}
# Fixed-dose combination products count as each of their components.
_COMPONENTS = {"trastuzumab and pertuzumab subcutaneous": {"trastuzumab", "pertuzumab"}}


def first_line_concordant(group: Group, visceral_crisis: bool, drugs: tuple[Drug, ...]
                          ) -> bool | None:
    if group is Group.UNKNOWN or not drugs:
        return None
    names = set[str]().union(*(_COMPONENTS.get(d.name, {d.name}) for d in drugs
                               if d.drug_class not in _SUPPORTIVE))
    classes = {d.drug_class for d in drugs}
    if group is Group.HR_POSITIVE_HER2_NEGATIVE:
        if visceral_crisis:
            return bool(classes & {DrugClass.TAXANE, DrugClass.ANTHRACYCLINE})
        return DrugClass.ENDOCRINE in classes and DrugClass.CDK46_INHIBITOR in classes
    if group is Group.HER2_POSITIVE:
        return bool(names & {"paclitaxel", "docetaxel"}) and {"trastuzumab", "pertuzumab"} <= names
    return "paclitaxel" in names and names <= {"paclitaxel", "bevacizumab"}
