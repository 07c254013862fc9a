"""Controlled vocabularies of the wire format (DESIGN section 4): one enum each."""

from __future__ import annotations

from enum import StrEnum


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Presentation(StrEnum):
    DE_NOVO = "de_novo"
    RECURRENT = "recurrent"


class MetastaticSite(StrEnum):
    BONE = "bone"
    LIVER = "liver"
    LUNG = "lung"
    PLEURA = "pleura"
    BRAIN = "brain"
    LYMPH_NODE = "lymph_node"
    SKIN = "skin"
    PERITONEUM = "peritoneum"
    OTHER = "other"


class SpecimenSite(StrEnum):
    BREAST = "breast"
    LOCAL_RECURRENCE = "local_recurrence"
    METASTASIS = "metastasis"


class Her2Ihc(StrEnum):
    ZERO = "0"
    ONE_PLUS = "1+"
    TWO_PLUS = "2+"
    THREE_PLUS = "3+"


class Her2Ish(StrEnum):
    AMPLIFIED = "amplified"
    NOT_AMPLIFIED = "not_amplified"
    EQUIVOCAL = "equivocal"
    NOT_DONE = "not_done"


class LineEndReason(StrEnum):
    PROGRESSION = "progression"
    TOXICITY = "toxicity"
    COMPLETED = "completed"
    PATIENT_CHOICE = "patient_choice"
    DEATH = "death"
    OTHER = "other"


class Modality(StrEnum):
    CT = "CT"
    PET_CT = "PET-CT"
    BONE_SCAN = "bone_scan"
    MRI = "MRI"
    OTHER = "other"


class RecistResponse(StrEnum):
    """RECIST 1.1 overall response."""

    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NE = "NE"


class ProgressionBasis(StrEnum):
    RADIOLOGICAL = "radiological"
    CLINICAL = "clinical"
    BIOLOGICAL = "biological"


class BiopsyReason(StrEnum):
    BASELINE = "baseline"
    PROGRESSION = "progression"
    OTHER = "other"


class DeathCause(StrEnum):
    DISEASE = "disease"
    TREATMENT = "treatment"
    OTHER = "other"
    UNKNOWN = "unknown"


class WithdrawalScope(StrEnum):
    STOP_FOLLOWUP = "stop_followup"
    ERASE = "erase"


class DrugClass(StrEnum):
    TAXANE = "taxane"
    ANTHRACYCLINE = "anthracycline"
    OTHER_CYTOTOXIC = "other_cytotoxic"
    ANTI_HER2 = "anti_her2"
    CDK46_INHIBITOR = "cdk46_inhibitor"
    ENDOCRINE = "endocrine"
    ANTI_ANGIOGENIC = "anti_angiogenic"
    IMMUNOTHERAPY = "immunotherapy"
    PARP_INHIBITOR = "parp_inhibitor"
    ADC = "adc"
    PI3K_AKT_MTOR = "pi3k_akt_mtor"
    BONE_TARGETED = "bone_targeted"
    UNKNOWN = "unknown"
