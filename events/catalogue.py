"""The event catalogue (DESIGN section 4): one frozen model per clinical fact.

Each event is named as a past fact, carries its stable ``event_type`` and
``schema_version``, and validates its payload with units in the field names
(``er_percent``, ``weight_kg``).  Omics files and images stay out of the log:
events carry references only.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from mbcjourney.events.envelope import Envelope, Identifier, Payload, ShortText
from mbcjourney.events.vocabulary import (
    BiopsyReason,
    DeathCause,
    Her2Ihc,
    Her2Ish,
    LineEndReason,
    MetastaticSite,
    Modality,
    Presentation,
    ProgressionBasis,
    RecistResponse,
    Sex,
    SpecimenSite,
    WithdrawalScope,
)

Percent = Annotated[float, Field(ge=0, le=100)]
# No control characters (a newline or tab in a drug name split export rows and
# regimen strings); checked by pydantic-core's own regex engine.
DrugName = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]+$")]


def _unique_sites(sites: list[MetastaticSite]) -> list[MetastaticSite]:
    if len(set(sites)) != len(sites):
        raise ValueError("sites must not repeat")
    return sites


# --- payloads -------------------------------------------------------------------


class PatientIncludedPayload(Payload):
    birth_year: int = Field(ge=1900, le=2100)
    sex: Sex
    centre: Identifier
    consent_version: ShortText
    presentation: Presentation
    metastatic_sites: list[MetastaticSite] = Field(min_length=1)

    _sites = field_validator("metastatic_sites")(_unique_sites)


class IhcRecordedPayload(Payload):
    specimen_id: Identifier
    specimen_site: SpecimenSite
    er_percent: Percent
    pr_percent: Percent
    her2_ihc: Her2Ihc
    her2_ish: Her2Ish
    her2_ish_ratio: float | None = Field(None, gt=0, le=50)
    her2_copy_number: float | None = Field(None, ge=0, le=100)  # mean HER2 signals per cell
    ki67_percent: Percent | None = None


class VisceralCrisisAssessedPayload(Payload):
    present: bool
    criteria: list[ShortText] = Field(default_factory=list)


class LineStartedPayload(Payload):
    line_ref: Identifier
    drugs: list[DrugName] = Field(min_length=1)
    declared_line_number: int | None = Field(None, ge=1, le=50)
    intent: ShortText | None = None


class LineModifiedPayload(Payload):
    line_ref: Identifier
    drugs_added: list[DrugName] = Field(default_factory=list)
    drugs_stopped: list[DrugName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _changes_something(self) -> LineModifiedPayload:
        if not self.drugs_added and not self.drugs_stopped:
            raise ValueError("drugs_added or drugs_stopped must name at least one drug")
        return self


class DrugAdministeredPayload(Payload):
    """One administration (or dispensing) of one drug, as prescribing systems record them.

    For a patient whose source sends no ``line.started``, the lines are derived from
    these (``projections/derived_lines.py``).
    """

    drug: DrugName
    dose: float | None = Field(None, gt=0, le=100_000)
    dose_unit: ShortText | None = None
    route: ShortText | None = None
    regimen_ref: Identifier | None = None  # the source's regimen / order group, if any


class LineEndedPayload(Payload):
    line_ref: Identifier
    reason: LineEndReason


class ImagingPerformedPayload(Payload):
    modality: Modality
    regions: list[ShortText] = Field(default_factory=list)
    recist_response: RecistResponse | None = None
    sum_of_diameters_mm: float | None = Field(None, ge=0, le=2000)
    new_lesions: bool | None = None


class ProgressionDocumentedPayload(Payload):
    basis: ProgressionBasis
    new_sites: list[MetastaticSite] = Field(default_factory=list)

    _sites = field_validator("new_sites")(_unique_sites)


class BiopsyPerformedPayload(Payload):
    specimen_id: Identifier
    site: ShortText
    reason: BiopsyReason
    omics_samples: list[ShortText] = Field(default_factory=list)  # references, never data


class BiomarkerRecordedPayload(Payload):
    assay: ShortText
    marker: ShortText
    result: ShortText
    value: float | None = None
    unit: ShortText | None = None


class LabRecordedPayload(Payload):
    test: ShortText
    loinc: Annotated[str, Field(pattern=r"^\d{1,7}-\d$")] | None = None
    value: float
    unit: ShortText


class ClinicalExamRecordedPayload(Payload):
    ecog: int | None = Field(None, ge=0, le=4)  # ECOG 5 is death: use death.recorded
    weight_kg: float | None = Field(None, ge=20, le=300)

    @model_validator(mode="after")
    def _records_something(self) -> ClinicalExamRecordedPayload:
        if self.ecog is None and self.weight_kg is None:
            raise ValueError("ecog or weight_kg is required")
        return self


class QuestionnaireRecordedPayload(Payload):
    instrument: ShortText
    items: dict[Annotated[str, Field(max_length=64)], float | int | str | None] = Field(
        min_length=1
    )


class DeathRecordedPayload(Payload):
    cause: DeathCause


class FollowupLostPayload(Payload):
    pass


class ConsentWithdrawnPayload(Payload):
    scope: WithdrawalScope


class EventRetractedPayload(Payload):
    target_event_id: UUID
    reason: ShortText


# --- events ---------------------------------------------------------------------


class PatientIncluded(Envelope):
    EVENT_TYPE = "patient.included"
    event_type: Literal["patient.included"]
    schema_version: Literal[1]
    payload: PatientIncludedPayload


class IhcRecorded(Envelope):
    EVENT_TYPE = "ihc.recorded"
    event_type: Literal["ihc.recorded"]
    schema_version: Literal[1]
    payload: IhcRecordedPayload


class VisceralCrisisAssessed(Envelope):
    EVENT_TYPE = "visceral_crisis.assessed"
    event_type: Literal["visceral_crisis.assessed"]
    schema_version: Literal[1]
    payload: VisceralCrisisAssessedPayload


class LineStarted(Envelope):
    EVENT_TYPE = "line.started"
    event_type: Literal["line.started"]
    schema_version: Literal[1]
    payload: LineStartedPayload


class LineModified(Envelope):
    EVENT_TYPE = "line.modified"
    event_type: Literal["line.modified"]
    schema_version: Literal[1]
    payload: LineModifiedPayload


class LineEnded(Envelope):
    EVENT_TYPE = "line.ended"
    event_type: Literal["line.ended"]
    schema_version: Literal[1]
    payload: LineEndedPayload


class DrugAdministered(Envelope):
    EVENT_TYPE = "drug.administered"
    event_type: Literal["drug.administered"]
    schema_version: Literal[1]
    payload: DrugAdministeredPayload


class ImagingPerformed(Envelope):
    EVENT_TYPE = "imaging.performed"
    event_type: Literal["imaging.performed"]
    schema_version: Literal[1]
    payload: ImagingPerformedPayload


class ProgressionDocumented(Envelope):
    EVENT_TYPE = "progression.documented"
    event_type: Literal["progression.documented"]
    schema_version: Literal[1]
    payload: ProgressionDocumentedPayload


class BiopsyPerformed(Envelope):
    EVENT_TYPE = "biopsy.performed"
    event_type: Literal["biopsy.performed"]
    schema_version: Literal[1]
    payload: BiopsyPerformedPayload


class BiomarkerRecorded(Envelope):
    EVENT_TYPE = "biomarker.recorded"
    event_type: Literal["biomarker.recorded"]
    schema_version: Literal[1]
    payload: BiomarkerRecordedPayload


class LabRecorded(Envelope):
    EVENT_TYPE = "lab.recorded"
    event_type: Literal["lab.recorded"]
    schema_version: Literal[1]
    payload: LabRecordedPayload


class ClinicalExamRecorded(Envelope):
    EVENT_TYPE = "clinical_exam.recorded"
    event_type: Literal["clinical_exam.recorded"]
    schema_version: Literal[1]
    payload: ClinicalExamRecordedPayload


class QuestionnaireRecorded(Envelope):
    EVENT_TYPE = "questionnaire.recorded"
    event_type: Literal["questionnaire.recorded"]
    schema_version: Literal[1]
    payload: QuestionnaireRecordedPayload


class DeathRecorded(Envelope):
    EVENT_TYPE = "death.recorded"
    event_type: Literal["death.recorded"]
    schema_version: Literal[1]
    payload: DeathRecordedPayload


class FollowupLost(Envelope):
    EVENT_TYPE = "followup.lost"
    event_type: Literal["followup.lost"]
    schema_version: Literal[1]
    payload: FollowupLostPayload = FollowupLostPayload()


class ConsentWithdrawn(Envelope):
    EVENT_TYPE = "consent.withdrawn"
    event_type: Literal["consent.withdrawn"]
    schema_version: Literal[1]
    payload: ConsentWithdrawnPayload


class EventRetracted(Envelope):
    EVENT_TYPE = "event.retracted"
    event_type: Literal["event.retracted"]
    schema_version: Literal[1]
    payload: EventRetractedPayload


ClinicalEvent = (
    PatientIncluded
    | IhcRecorded
    | VisceralCrisisAssessed
    | LineStarted
    | LineModified
    | LineEnded
    | DrugAdministered
    | ImagingPerformed
    | ProgressionDocumented
    | BiopsyPerformed
    | BiomarkerRecorded
    | LabRecorded
    | ClinicalExamRecorded
    | QuestionnaireRecorded
    | DeathRecorded
    | FollowupLost
    | ConsentWithdrawn
    | EventRetracted
)

EVENT_CLASSES: tuple[type[Envelope], ...] = (
    PatientIncluded,
    IhcRecorded,
    VisceralCrisisAssessed,
    LineStarted,
    LineModified,
    LineEnded,
    DrugAdministered,
    ImagingPerformed,
    ProgressionDocumented,
    BiopsyPerformed,
    BiomarkerRecorded,
    LabRecorded,
    ClinicalExamRecorded,
    QuestionnaireRecorded,
    DeathRecorded,
    FollowupLost,
    ConsentWithdrawn,
    EventRetracted,
)


# --- older shapes still accepted on the wire (upcast on read) ---------------------


class IhcRecordedV0Payload(Payload):
    """``ihc.recorded`` v0: HER2 as one free-text result, e.g. ``"2+ FISH neg"``."""

    specimen_id: Identifier
    specimen_site: SpecimenSite
    er_percent: Percent
    pr_percent: Percent
    her2: ShortText
    ki67_percent: Percent | None = None


class IhcRecordedV0(Envelope):
    EVENT_TYPE = "ihc.recorded"
    SCHEMA_VERSION = 0
    event_type: Literal["ihc.recorded"]
    schema_version: Literal[0]
    payload: IhcRecordedV0Payload


LEGACY_EVENT_CLASSES: tuple[type[Envelope], ...] = (IhcRecordedV0,)
