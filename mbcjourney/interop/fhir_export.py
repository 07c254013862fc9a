"""``journey fhir export``: each patient's effective history as one mCODE collection Bundle.

The inverse of :mod:`.fhir_map`: what :func:`patient_bundle` writes,
``journey fhir import`` reads back into the same facts (the round trip of
docs/interop.md).  Retracted events are left out (the effective history);
every resource has ``meta.versionId`` 1 and ``meta.lastUpdated`` = the fact's
``recorded_at``.  Resource ids are derived from our event ids.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from mbcjourney.events import ClinicalEvent
from mbcjourney.events.catalogue import (
    BiomarkerRecorded,
    BiopsyPerformed,
    ClinicalExamRecorded,
    ConsentWithdrawn,
    DeathRecorded,
    DrugAdministered,
    FollowupLost,
    IhcRecorded,
    ImagingPerformed,
    LabRecorded,
    LineEnded,
    LineModified,
    LineStarted,
    PatientIncluded,
    ProgressionDocumented,
    QuestionnaireRecorded,
    VisceralCrisisAssessed,
)
from mbcjourney.events.drugs import normalise_drug, rxnorm_code
from mbcjourney.interop import codes as c

Json = dict[str, Any]
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_ID_NS = uuid.UUID("7d3c2f5e-1b7a-4e0e-a8e4-6b2f0e9c4a11")


def fhir_id(text: str) -> str:
    """``text`` when it is a valid FHIR id, else a UUID derived from it."""
    return text if _FHIR_ID.match(text) else str(uuid.uuid5(_ID_NS, text))


def _when(value: date | datetime) -> str:
    return value.isoformat()


def _meta(event: ClinicalEvent, profile: str | None = None,
          also: Iterable[ClinicalEvent | None] = ()) -> Json:
    """Version 1, updated when the last of the facts it states was recorded (a resource
    stating several facts: the import gives each that time, never before it occurred)."""
    latest = max([event.recorded_at, *(e.recorded_at for e in also if e is not None)])
    meta: Json = {"versionId": "1", "lastUpdated": latest.isoformat()}
    if profile:
        meta["profile"] = [profile]
    return meta


def _coding(system: str, code: str, display: str | None = None) -> Json:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, text: str | None = None) -> Json:
    concept: Json = {"coding": [_coding(system, code)]}
    if text:
        concept["text"] = text
    return concept


def _site_concept(site: str) -> Json:
    if site in c.SITE_SNOMED:
        return _concept(c.SNOMED, c.SITE_SNOMED[site], site)
    return _concept(c.SITE_SYSTEM, site, site)


def _ext(name: str, kind: str, value: Any) -> Json:
    return {"url": c.ext(name), kind: value}


def _medication(name: str) -> Json:
    concept: Json = {"text": name}
    code = rxnorm_code(normalise_drug(name).name)
    if code is not None:
        concept["coding"] = [_coding(c.RXNORM, code, normalise_drug(name).name)]
    return concept


class _Writer:
    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self.pid = fhir_id(patient_id)
        self.subject = {"reference": f"Patient/{self.pid}"}
        self.resources: list[Json] = []

    def add(self, resource: Json) -> None:
        self.resources.append(resource)

    def observation(self, event: ClinicalEvent, rid: str, code: Json, profile: str | None,
                    **fields: Any) -> None:
        self.add({"resourceType": "Observation", "id": rid, "meta": _meta(event, profile),
                  "status": "final", "code": code, "subject": self.subject,
                  "effectiveDateTime": _when(event.occurred_at), **fields})


def _patient(w: _Writer, inclusion: PatientIncluded | None, death: DeathRecorded | None,
             anchor: ClinicalEvent) -> Json:
    patient: Json = {
        "resourceType": "Patient", "id": w.pid,
        "meta": _meta(death or inclusion or anchor, c.PROFILE_PATIENT, [inclusion]),
        "identifier": [{"system": c.PATIENT_ID_SYSTEM, "value": w.patient_id}],
    }
    if inclusion is not None:
        p = inclusion.payload
        patient["gender"] = p.sex.value
        patient["birthDate"] = f"{p.birth_year:04d}"
        patient["managingOrganization"] = {
            "identifier": {"system": c.CENTRE_SYSTEM, "value": p.centre}, "display": p.centre}
    if death is not None:
        patient["deceasedDateTime"] = _when(death.occurred_at)
        patient["extension"] = [_ext("death-cause", "valueCode", death.payload.cause.value)]
    return patient


def _subject(w: _Writer, rid: str, event: ClinicalEvent, inclusion: PatientIncluded | None,
             exit_event: ConsentWithdrawn | FollowupLost | None) -> Json:
    subject: Json = {"resourceType": "ResearchSubject", "id": rid,
                     "meta": _meta(event, None, [exit_event]),
                     "status": "on-study", "study": {"display": "mbc-journey cohort"},
                     "individual": w.subject}
    period: Json = {}
    extensions = []
    if inclusion is not None:
        period["start"] = _when(inclusion.occurred_at)
        subject["consent"] = {"display": inclusion.payload.consent_version}
        extensions.append(_ext("presentation", "valueCode", inclusion.payload.presentation.value))
    if isinstance(exit_event, ConsentWithdrawn):
        subject["status"] = "withdrawn"
        period["end"] = _when(exit_event.occurred_at)
        extensions.append(_ext("withdrawal-scope", "valueCode", exit_event.payload.scope.value))
    elif isinstance(exit_event, FollowupLost):
        subject["status"] = "off-study"
        period["end"] = _when(exit_event.occurred_at)
    if period:
        subject["period"] = period
    if extensions:
        subject["extension"] = extensions
    return subject


def _ihc(w: _Writer, event: IhcRecorded) -> None:
    p, eid = event.payload, str(event.event_id)
    common = {
        "category": [_concept("http://terminology.hl7.org/CodeSystem/observation-category",
                              "laboratory")],
        "specimen": {"identifier": {"system": c.SPECIMEN_SYSTEM, "value": p.specimen_id}},
        "bodySite": _concept(c.SPECIMEN_SITE_SYSTEM, p.specimen_site.value),
    }

    def percent(value: float) -> Json:
        return {"valueQuantity": {"value": value, "unit": "%", "system": c.UCUM, "code": "%"}}

    def marker(suffix: str, system: str, code: str, value: Json) -> None:
        w.observation(event, f"{eid}-{suffix}", _concept(system, code), c.PROFILE_TUMOR_MARKER,
                      **common, **value)

    marker("er", c.LOINC, c.ER_PERCENT, percent(p.er_percent))
    marker("pr", c.LOINC, c.PR_PERCENT, percent(p.pr_percent))
    marker("her2", c.LOINC, c.HER2_IHC,
           {"valueCodeableConcept": _concept(c.VALUE_SYSTEM, p.her2_ihc.value)})
    marker("ish", c.LOINC, c.HER2_ISH,
           {"valueCodeableConcept": _concept(c.VALUE_SYSTEM, p.her2_ish.value)})
    if p.her2_ish_ratio is not None:
        marker("ratio", c.LOINC, c.HER2_ISH_RATIO, {"valueQuantity": {"value": p.her2_ish_ratio}})
    if p.her2_copy_number is not None:
        marker("copies", c.CODE_SYSTEM, c.HER2_COPIES,
               {"valueQuantity": {"value": p.her2_copy_number}})
    if p.ki67_percent is not None:
        marker("ki67", c.CODE_SYSTEM, c.KI67, percent(p.ki67_percent))


def _care_plans(w: _Writer, events: Iterable[LineStarted | LineModified | LineEnded]) -> None:
    """One CarePlan per line, as the projection reads the line events (projections/lines)."""
    plans: dict[str, Json] = {}
    running: dict[str, dict[str, Json]] = defaultdict(dict)  # line_ref -> drug -> activity
    for event in events:
        ref = event.payload.line_ref
        when = _when(event.occurred_at)
        if isinstance(event, LineStarted):
            if ref in plans:
                continue  # a repeated line_ref: the projection ignores it
            extensions = []
            if event.payload.declared_line_number is not None:
                extensions.append(_ext("declared-line-number", "valueInteger",
                                       event.payload.declared_line_number))
            if event.payload.intent is not None:
                extensions.append(_ext("intent", "valueString", event.payload.intent))
            plan: Json = {
                "resourceType": "CarePlan", "id": fhir_id(f"{w.patient_id}/line/{ref}"),
                "meta": _meta(event), "status": "active", "intent": "plan",
                "category": [_concept(c.CODE_SYSTEM, "line-of-therapy", "line of therapy")],
                "identifier": [{"system": c.LINE_REF_SYSTEM, "value": ref}],
                "subject": w.subject, "period": {"start": when}, "activity": [],
            }
            if extensions:
                plan["extension"] = extensions
            plans[ref] = plan
            for name in event.payload.drugs:
                _start_drug(plan, running[ref], name, when)
            continue
        plan_or_none = plans.get(ref)
        if plan_or_none is None:
            continue  # before its line.started: the projection ignores it too
        plan_or_none["meta"]["lastUpdated"] = max(
            datetime.fromisoformat(plan_or_none["meta"]["lastUpdated"]),
            event.recorded_at).isoformat()
        if isinstance(event, LineModified):
            for name in event.payload.drugs_stopped:
                activity = running[ref].pop(normalise_drug(name).name, None)
                if activity is not None:
                    activity["detail"]["status"] = "stopped"
                    activity["detail"]["scheduledPeriod"]["end"] = when
            for name in event.payload.drugs_added:
                _start_drug(plan_or_none, running[ref], name, when)
        elif "end" not in plan_or_none["period"]:
            plan_or_none["period"]["end"] = when
            plan_or_none["status"] = "completed"
            plan_or_none.setdefault("extension", []).append({
                "url": c.EXT_TERMINATION_REASON,
                "valueCodeableConcept": _concept(c.LINE_END_SYSTEM, event.payload.reason.value)})
    for plan in plans.values():
        w.add(plan)


def _start_drug(plan: Json, running: dict[str, Json], name: str, when: str) -> None:
    generic = normalise_drug(name).name
    if generic in running:
        return  # already given in this line (the projection keys drugs by generic name)
    activity = {"detail": {"kind": "MedicationRequest", "status": "in-progress",
                           "productCodeableConcept": _medication(name),
                           "scheduledPeriod": {"start": when}}}
    running[generic] = activity
    plan["activity"].append(activity)


def patient_bundle(patient_id: str, events: Sequence[ClinicalEvent]) -> Json:
    """One collection Bundle of the patient's facts (``events`` = the effective history)."""
    w = _Writer(patient_id)
    inclusions = [e for e in events if isinstance(e, PatientIncluded)]
    deaths = [e for e in events if isinstance(e, DeathRecorded)]
    exits = [e for e in events if isinstance(e, ConsentWithdrawn | FollowupLost)]
    w.add(_patient(w, inclusions[0] if inclusions else None, deaths[0] if deaths else None,
                   events[0]))
    for index, inclusion in enumerate(inclusions):
        exit_event = exits.pop(0) if index == 0 and exits else None
        w.add(_subject(w, str(inclusion.event_id), inclusion, inclusion, exit_event))
        for site in inclusion.payload.metastatic_sites:
            w.add({"resourceType": "Condition",
                   "id": f"{inclusion.event_id}-site-{site.value.replace('_', '-')}",
                   "meta": _meta(inclusion, c.PROFILE_SECONDARY),
                   "category": [_concept(
                       "http://terminology.hl7.org/CodeSystem/condition-category",
                       "problem-list-item")],
                   "code": _site_concept(site.value), "subject": w.subject,
                   "onsetDateTime": _when(inclusion.occurred_at)})
    for exit_event in exits:
        w.add(_subject(w, str(exit_event.event_id), exit_event, None, exit_event))
    _care_plans(w, [e for e in events if isinstance(e, LineStarted | LineModified | LineEnded)])
    for event in events:
        eid = str(event.event_id)
        if isinstance(event, IhcRecorded):
            _ihc(w, event)
        elif isinstance(event, VisceralCrisisAssessed):
            w.observation(event, eid, _concept(c.CODE_SYSTEM, c.VISCERAL_CRISIS,
                                               "visceral crisis"), None,
                          valueBoolean=event.payload.present)
        elif isinstance(event, ClinicalExamRecorded):
            weight = event.payload.weight_kg
            quantity = ({"value": weight, "unit": "kg", "system": c.UCUM, "code": "kg"}
                        if weight is not None else None)
            if event.payload.ecog is not None:
                extra: Json = {"valueInteger": event.payload.ecog}
                if quantity is not None:
                    extra["component"] = [{"code": _concept(c.LOINC, c.BODY_WEIGHT),
                                           "valueQuantity": quantity}]
                w.observation(event, eid, _concept(c.LOINC, c.ECOG), c.PROFILE_ECOG, **extra)
            else:
                w.observation(event, eid, _concept(c.LOINC, c.BODY_WEIGHT), None,
                              valueQuantity=quantity)
        elif isinstance(event, ProgressionDocumented):
            extensions = [{"url": c.EXT_EVIDENCE_TYPE, "valueCodeableConcept": _concept(
                c.SNOMED, c.BASIS_EVIDENCE[event.payload.basis.value])}]
            extensions += [_ext("new-site", "valueCodeableConcept", _site_concept(s.value))
                           for s in event.payload.new_sites]
            w.observation(event, eid, _concept(c.LOINC, c.DISEASE_STATUS),
                          c.PROFILE_DISEASE_STATUS, extension=extensions,
                          valueCodeableConcept=_concept(c.SNOMED, c.WORSENED,
                                                        "Patient's condition worsened"))
        elif isinstance(event, LabRecorded):
            p = event.payload
            code = _concept(c.LOINC, p.loinc, p.test) if p.loinc else {"text": p.test}
            w.observation(event, eid, code, None, category=[_concept(
                "http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")],
                valueQuantity={"value": p.value, "unit": p.unit})
        elif isinstance(event, BiomarkerRecorded):
            b = event.payload
            fields: Json = {"method": {"text": b.assay}, "valueString": b.result}
            if b.value is not None:
                quantity = {"value": b.value, **({"unit": b.unit} if b.unit else {})}
                fields["extension"] = [_ext("biomarker-value", "valueQuantity", quantity)]
            w.observation(event, eid, _concept(c.CODE_SYSTEM, c.BIOMARKER, b.marker), None,
                          **fields)
        elif isinstance(event, ImagingPerformed):
            w.add(_imaging(w, event))
        elif isinstance(event, BiopsyPerformed):
            w.add(_biopsy(w, event))
        elif isinstance(event, DrugAdministered):
            w.add(_administration(w, event))
        elif isinstance(event, QuestionnaireRecorded):
            w.add(_questionnaire(w, event))
    return {"resourceType": "Bundle", "id": w.pid, "type": "collection",
            "entry": [{"resource": r} for r in w.resources]}


def _imaging(w: _Writer, event: ImagingPerformed) -> Json:
    p = event.payload
    report: Json = {
        "resourceType": "DiagnosticReport", "id": str(event.event_id), "meta": _meta(event),
        "status": "final",
        "code": {"coding": [_coding(c.LOINC, c.IMAGING_REPORT),
                            _coding(c.MODALITY_SYSTEM, p.modality.value)]},
        "subject": w.subject, "effectiveDateTime": _when(event.occurred_at),
    }
    if p.recist_response is not None:
        report["conclusionCode"] = [_concept(c.RECIST_SYSTEM, p.recist_response.value)]
    extensions = [_ext("region", "valueString", r) for r in p.regions]
    if p.sum_of_diameters_mm is not None:
        extensions.append(_ext("sum-of-diameters-mm", "valueDecimal", p.sum_of_diameters_mm))
    if p.new_lesions is not None:
        extensions.append(_ext("new-lesions", "valueBoolean", p.new_lesions))
    if extensions:
        report["extension"] = extensions
    return report


def _biopsy(w: _Writer, event: BiopsyPerformed) -> Json:
    p = event.payload
    procedure: Json = {
        "resourceType": "Procedure", "id": str(event.event_id), "meta": _meta(event),
        "status": "completed", "code": _concept(c.SNOMED, c.BIOPSY, "Biopsy"),
        "subject": w.subject, "performedDateTime": _when(event.occurred_at),
        "identifier": [{"system": c.SPECIMEN_SYSTEM, "value": p.specimen_id}],
        "bodySite": [{"text": p.site}],
        "reasonCode": [_concept(c.BIOPSY_REASON_SYSTEM, p.reason.value)],
    }
    if p.omics_samples:
        procedure["extension"] = [_ext("omics-sample", "valueString", s)
                                  for s in p.omics_samples]
    return procedure


def _administration(w: _Writer, event: DrugAdministered) -> Json:
    p = event.payload
    given: Json = {
        "resourceType": "MedicationAdministration", "id": str(event.event_id),
        "meta": _meta(event, c.PROFILE_MED_ADMIN), "status": "completed",
        "medicationCodeableConcept": _medication(p.drug), "subject": w.subject,
        "effectiveDateTime": _when(event.occurred_at),
    }
    dosage: Json = {}
    if p.dose is not None:
        dosage["dose"] = {"value": p.dose, **({"unit": p.dose_unit} if p.dose_unit else {})}
    if p.route is not None:
        dosage["route"] = {"text": p.route}
    if dosage:
        given["dosage"] = dosage
    if p.regimen_ref is not None:
        given["extension"] = [_ext("regimen-ref", "valueString", p.regimen_ref)]
    return given


def _questionnaire(w: _Writer, event: QuestionnaireRecorded) -> Json:
    items = []
    for link, value in event.payload.items.items():
        item: Json = {"linkId": link}
        if isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            item["answer"] = [{"valueInteger": value}]
        elif isinstance(value, float):
            item["answer"] = [{"valueDecimal": value}]
        else:
            item["answer"] = [{"valueString": value}]
        items.append(item)
    return {"resourceType": "QuestionnaireResponse", "id": str(event.event_id),
            "meta": _meta(event), "status": "completed",
            "questionnaire": f"{c.OURS}:questionnaire:{quote(event.payload.instrument, safe='')}",
            "subject": w.subject, "authored": _when(event.occurred_at), "item": items}


def validate_bundle(bundle: Json) -> None:
    """Raise pydantic's ValidationError unless the R4B models accept the bundle."""
    from fhir.resources.R4B.bundle import Bundle

    Bundle.model_validate(bundle)


def write_bundles(bundles: Iterable[Json], output: Path, *, ndjson: bool) -> tuple[int, int]:
    """Bundles as ``<patient>.json`` files, or (``ndjson``) a Bulk Data export folder:
    ``<Type>.ndjson`` per resource type and ``manifest.json``.  (patients, resources)."""
    output.mkdir(parents=True, exist_ok=True)
    patients = resources = 0
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for bundle in bundles:
        patients += 1
        resources += len(bundle["entry"])
        if ndjson:
            for entry in bundle["entry"]:
                by_type[entry["resource"]["resourceType"]].append(orjson.dumps(entry["resource"]))
        else:
            (output / f"{bundle['id']}.json").write_bytes(orjson.dumps(bundle))
    if ndjson:
        for kind, lines in sorted(by_type.items()):
            (output / f"{kind}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
        manifest = {"transactionTime": datetime.now(UTC).isoformat(),
                    "request": "journey fhir export",
                    "requiresAccessToken": False,
                    "output": [{"type": kind, "url": f"{kind}.ndjson"} for kind in sorted(by_type)],
                    "error": []}
        (output / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return patients, resources
