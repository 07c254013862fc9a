"""Code systems and codes of the FHIR / mCODE STU4 mapping (docs/interop.md), in one place.

Standard codes where mCODE names one (LOINC, SNOMED CT, RxNorm); where mCODE has
no element for a field of ours, a code or extension under ``urn:mbc-journey:``,
so a reader can tell our additions from the profile's elements.
"""

from __future__ import annotations

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"

OURS = "urn:mbc-journey"
PATIENT_ID_SYSTEM = f"{OURS}:patient-id"
CENTRE_SYSTEM = f"{OURS}:centre"
LINE_REF_SYSTEM = f"{OURS}:line-ref"
SPECIMEN_SYSTEM = f"{OURS}:specimen-id"
CODE_SYSTEM = f"{OURS}:code"  # our observation codes (visceral crisis, Ki-67, ...)
VALUE_SYSTEM = f"{OURS}:value"  # our coded values (HER2 IHC score, ISH result, ...)
SITE_SYSTEM = f"{OURS}:metastatic-site"
SPECIMEN_SITE_SYSTEM = f"{OURS}:specimen-site"
MODALITY_SYSTEM = f"{OURS}:modality"
RECIST_SYSTEM = f"{OURS}:recist-response"
BIOPSY_REASON_SYSTEM = f"{OURS}:biopsy-reason"
LINE_END_SYSTEM = f"{OURS}:line-end-reason"


def ext(name: str) -> str:
    """The URL of one of our extensions."""
    return f"{OURS}:extension:{name}"


MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition"
PROFILE_PATIENT = f"{MCODE}/mcode-cancer-patient"
PROFILE_SECONDARY = f"{MCODE}/mcode-secondary-cancer-condition"
PROFILE_TUMOR_MARKER = f"{MCODE}/mcode-tumor-marker-test"
PROFILE_ECOG = f"{MCODE}/mcode-ecog-performance-status"
PROFILE_DISEASE_STATUS = f"{MCODE}/mcode-cancer-disease-status"
PROFILE_MED_ADMIN = f"{MCODE}/mcode-cancer-related-medication-administration"
EXT_TERMINATION_REASON = f"{MCODE}/mcode-treatment-termination-reason"
EXT_EVIDENCE_TYPE = f"{MCODE}/mcode-cancer-disease-status-evidence-type"

# Tumour markers (mCODE TumorMarkerTest value set).
ER_PERCENT = "85329-1"  # Cells.estrogen receptor/100 cells in Breast cancer specimen (IHC)
ER_PRESENCE = "85337-4"
PR_PERCENT = "85325-9"
PR_PRESENCE = "85339-0"
HER2_IHC = "85319-2"  # HER2 [Presence] in Breast cancer specimen by Immune stain
HER2_ISH = "85318-4"  # ERBB2 gene duplication [Presence] ... by FISH
HER2_ISH_RATIO = "49683-6"  # ERBB2 gene copy number/Chromosome 17 copy number ... by FISH
# ours: no LOINC in the mCODE value set we are sure of
HER2_COPIES = "her2-copies-per-cell"
KI67 = "ki67-percent"
TUMOUR_MARKER_LOINC = frozenset({ER_PERCENT, ER_PRESENCE, PR_PERCENT, PR_PRESENCE, HER2_IHC,
                                 HER2_ISH, HER2_ISH_RATIO})
TUMOUR_MARKER_OURS = frozenset({HER2_COPIES, KI67})

ECOG = "89247-1"
BODY_WEIGHT = "29463-7"
DISEASE_STATUS = "97509-4"
WORSENED = "271299001"  # SNOMED: Patient's condition worsened (finding)
VISCERAL_CRISIS = "visceral-crisis"
BIOMARKER = "biomarker"
IMAGING_REPORT = "18748-4"  # LOINC: Diagnostic imaging study
BIOPSY = "86273004"  # SNOMED: Biopsy (procedure)

# Metastatic sites: SNOMED "secondary malignant neoplasm of ..." for the five mCODE names.
SITE_SNOMED = {"bone": "94222008", "liver": "94381002", "lung": "94391008",
               "brain": "94225005", "pleura": "94493005"}
SNOMED_SITE = {code: site for site, code in SITE_SNOMED.items()}

# CancerDiseaseStatus evidence type (mCODE value set) <-> progression basis.
BASIS_EVIDENCE = {"radiological": "363679005", "clinical": "5880005",
                  "biological": "386344002"}
EVIDENCE_BASIS = {code: basis for basis, code in BASIS_EVIDENCE.items()}

BREAST_SNOMED = frozenset({"76752008", "80248007", "73056007"})  # breast, left, right

POUND_KG = 0.45359237
