"""FHIR R4B / mCODE resources -> wire-format events (docs/interop.md has the table).

Pure: validated resources in (as their JSON objects), event objects out, plus what
could not be mapped and why.  Every event id is a UUID derived from the resource
type, id and version (and, for a resource that states several facts, the part),
so importing the same export twice yields the same ids: the admission path then
counts them as duplicates.  A fact drawn from several resources (an IHC panel of
TumorMarkerTest observations; an inclusion from a ResearchSubject, its Patient and
the SecondaryCancerConditions) takes its id from all their versions.

Each event's ``source.reference`` is the FHIR ``Type/id/_history/version`` of the
resource it came from (the first of a panel); its *lineage* (``Type/id``) is what
a newer version or an ``entered-in-error`` status retracts (:mod:`.fhir_import`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import orjson

from mbcjourney.events.drugs import drug_for_rxnorm, normalise_drug, vocabulary
from mbcjourney.interop import codes as c

SOURCE_SYSTEM = "fhir"
_NAMESPACE = uuid.UUID("5b0c3a53-7c1e-4b55-9d59-0a8f6f0c1d18")  # of imported event ids
Json = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One validated resource, where it was read, and its bytes as read."""

    type: str
    id: str
    version: str
    data: Json
    origin: str  # file:line or file#entry
    raw: bytes

    @property
    def key(self) -> str:
        return f"{self.type}/{self.id}"

    @property
    def ref(self) -> str:
        return f"{self.type}/{self.id}/_history/{self.version}"


def version_of(data: Json) -> str:
    """``meta.versionId``; without one, a digest of the content (same content, same id)."""
    meta = data.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("versionId"), str):
        return str(meta["versionId"])
    return "sha-" + hashlib.sha1(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass(frozen=True)
class Unmapped:
    """A resource that states no fact we can record, and why (a data-quality finding)."""

    resource_type: str
    resource_id: str | None
    reason: str
    origin: str
    raw: bytes


@dataclass
class Mapping:
    """What a set of resources becomes."""

    events: list[Json] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    # lineage (Type/id) -> ids of the events its current version states
    lineages: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    patients_of: dict[str, str] = field(default_factory=dict)  # lineage -> patient id
    withdrawn: dict[str, str] = field(default_factory=dict)  # lineage -> reason (retract all)
    superseded: int = 0  # older versions of a resource met in the same input


def _codings(concept: Any) -> list[tuple[str, str]]:
    if not isinstance(concept, dict):
        return []
    return [(str(cd.get("system", "")), str(cd.get("code", "")))
            for cd in concept.get("coding", []) if isinstance(cd, dict)]


def _code_in(concept: Any, system: str) -> str | None:
    for sys_, code in _codings(concept):
        if sys_ == system:
            return code
    return None


def _concepts(value: Any) -> list[Any]:
    return value if isinstance(value, list) else ([value] if value else [])


def _text(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    for cd in concept.get("coding", []):
        if isinstance(cd, dict) and isinstance(cd.get("display"), str):
            return str(cd["display"])
    return None


def _ext(data: Json, name: str) -> list[Json]:
    url = c.ext(name)
    return [e for e in data.get("extension", []) if isinstance(e, dict) and e.get("url") == url]


def _ext_value(data: Json, name: str, kind: str) -> Any:
    found = _ext(data, name)
    return found[0].get(kind) if found else None


def _ref_id(reference: Any, resource_type: str) -> str | None:
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if isinstance(ref, str):
        parts = ref.split("/")
        if len(parts) >= 2 and parts[-2] == resource_type:
            return parts[-1]
        if len(parts) >= 4 and parts[-4] == resource_type:  # Type/id/_history/v
            return parts[-3]
    return None


_WORD = re.compile(r"[a-z0-9][a-z0-9\-]*")


def drug_name(concept: Any) -> str | None:
    """Our drug name for a medication concept: its text or RxNorm ingredient, else a known
    generic name inside its display (``10 ML doxorubicin hydrochloride 2 MG/ML Injection``)."""
    if not isinstance(concept, dict):
        return None
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    code = _code_in(concept, c.RXNORM)
    if code is not None and (drug := drug_for_rxnorm(code)) is not None:
        return drug.name
    display = _text(concept)
    if display is None:
        return None
    if normalise_drug(display).known:
        return display
    words = _WORD.findall(display.casefold())
    for size in (3, 2, 1):  # the longest known name inside the display
        for start in range(len(words) - size + 1):
            name = " ".join(words[start:start + size])
            if name.replace(" ", "").replace("-", "") in vocabulary():
                return normalise_drug(name).name
    return None


class _Mapper:
    def __init__(self, received_at: datetime) -> None:
        self.out = Mapping()
        self.recorded_default = received_at.isoformat()
        self.patient_ids: dict[str, str] = {}  # FHIR Patient id -> our patient id
        self.patients: dict[str, Resource] = {}
        self.subjects: dict[str, list[Resource]] = defaultdict(list)  # patient -> ResearchSubject
        self.sites: dict[str, list[Resource]] = defaultdict(list)  # patient -> secondary conds
        self.markers: dict[tuple[str, str, str], list[tuple[Resource, str, Any]]] = (
            defaultdict(list))

    # --- helpers -------------------------------------------------------------------

    def skip(self, res: Resource, reason: str) -> None:
        self.out.unmapped.append(Unmapped(res.type, res.id, reason, res.origin, res.raw))

    def patient(self, res: Resource, element: str = "subject") -> str | None:
        fhir_id = _ref_id(res.data.get(element), "Patient")
        if fhir_id is None:
            return None
        return self.patient_ids.get(fhir_id, fhir_id)

    def emit(self, res: Resource, part: str, event_type: str, patient: str, occurred: Any,
             payload: Json, *, members: Iterable[Resource] = ()) -> None:
        keys = sorted({res.ref, *(m.ref for m in members)})
        event_id = str(uuid.uuid5(_NAMESPACE, "|".join(keys) + "#" + part))
        meta = res.data.get("meta")
        recorded = meta.get("lastUpdated") if isinstance(meta, dict) else None
        self.out.events.append({
            "event_id": event_id, "event_type": event_type, "schema_version": 1,
            "patient_id": patient, "occurred_at": occurred,
            "recorded_at": recorded or self.recorded_default,
            "source": {"system": SOURCE_SYSTEM, "reference": res.ref},
            "payload": payload,
        })
        self.out.lineages[res.key].add(event_id)
        self.out.patients_of[res.key] = patient

    # --- the resources -----------------------------------------------------------------

    def run(self, resources: Iterable[Resource]) -> Mapping:
        latest: dict[str, Resource] = {}
        for res in resources:
            held = latest.get(res.key)
            if held is not None:
                self.out.superseded += 1
                if _version_order(res.version) <= _version_order(held.version):
                    continue
            latest[res.key] = res
        ordered = list(latest.values())
        for res in ordered:
            if res.type == "Patient":
                self.patients[res.id] = res
                for ident in res.data.get("identifier", []):
                    if isinstance(ident, dict) and ident.get("system") == c.PATIENT_ID_SYSTEM:
                        self.patient_ids[res.id] = str(ident.get("value"))
        for res in ordered:
            # A resource in the input states what its current version maps to, maybe
            # nothing: what the log holds beyond that is retracted (fhir_import).
            self.out.lineages.setdefault(res.key, set())
            owner = (self.patient_ids.get(res.id, res.id) if res.type == "Patient" else
                     self.patient(res, "individual" if res.type == "ResearchSubject"
                                  else "subject"))
            if owner is not None:
                self.out.patients_of.setdefault(res.key, owner)
            status = res.data.get("status")
            if status == "entered-in-error":
                self.out.withdrawn[res.key] = "entered-in-error"
                patient = self.patient(res, "individual" if res.type == "ResearchSubject"
                                       else "subject")
                if res.type == "Patient":
                    patient = self.patient_ids.get(res.id, res.id)
                if patient is not None:
                    self.out.patients_of[res.key] = patient
                continue
            handler = _HANDLERS.get(res.type)
            if handler is None:
                self.skip(res, f"unsupported resource type {res.type}")
                continue
            handler(self, res)
        self.inclusions()
        self.panels()
        return self.out

    def on_patient(self, res: Resource) -> None:
        pid = self.patient_ids.get(res.id, res.id)
        died = res.data.get("deceasedDateTime")
        if isinstance(died, str):
            cause = _ext_value(res.data, "death-cause", "valueCode") or "unknown"
            self.emit(res, "death", "death.recorded", pid, died, {"cause": cause})

    def on_research_subject(self, res: Resource) -> None:
        pid = self.patient(res, "individual")
        if pid is None:
            self.skip(res, "ResearchSubject without individual (a Patient reference)")
            return
        self.subjects[pid].append(res)
        period = res.data.get("period") or {}
        end = period.get("end")
        status = res.data.get("status")
        if status == "withdrawn" and isinstance(end, str):
            scope = _ext_value(res.data, "withdrawal-scope", "valueCode") or "stop_followup"
            self.emit(res, "withdrawn", "consent.withdrawn", pid, end, {"scope": scope})
        elif status == "off-study" and isinstance(end, str):
            self.emit(res, "lost", "followup.lost", pid, end, {})

    def on_condition(self, res: Resource) -> None:
        pid = self.patient(res)
        if pid is None:
            self.skip(res, "Condition without subject")
            return
        site = _site(res.data.get("code")) or next(
            (s for s in map(_site, _concepts(res.data.get("bodySite"))) if s), None)
        profiles = (res.data.get("meta") or {}).get("profile", [])
        if site is None or (c.PROFILE_SECONDARY not in profiles and res.data.get("code")
                            and _site(res.data.get("code")) is None):
            self.skip(res, "Condition: not a SecondaryCancerCondition with a known metastatic site")
            return
        self.sites[pid].append(res)

    def inclusions(self) -> None:
        used_conditions: set[str] = set()
        for pid, subjects in self.subjects.items():
            for res in subjects:
                start = (res.data.get("period") or {}).get("start")
                if not isinstance(start, str):
                    if res.data.get("status") not in ("withdrawn", "off-study"):
                        self.skip(res, "ResearchSubject without period.start (inclusion date)")
                    continue
                fhir_patient = _ref_id(res.data.get("individual"), "Patient")
                patient = self.patients.get(fhir_patient or "")
                if patient is None:
                    self.skip(res, "ResearchSubject: its Patient is not in the input")
                    continue
                sites, used = [], []
                for cond in self.sites.get(pid, []):
                    onset = cond.data.get("onsetDateTime")
                    if onset is None or str(onset)[:10] <= start[:10]:
                        site = _site(cond.data.get("code")) or next(
                            (s for s in map(_site, _concepts(cond.data.get("bodySite"))) if s),
                            None)
                        if site is not None and site not in sites:
                            sites.append(site)
                        used.append(cond)
                        used_conditions.add(cond.key)
                birth = str(patient.data.get("birthDate", ""))
                centre = _ref_identifier(patient.data.get("managingOrganization"),
                                         c.CENTRE_SYSTEM)
                payload: Json = {
                    "birth_year": int(birth[:4]) if birth[:4].isdigit() else None,
                    "sex": patient.data.get("gender"),
                    "centre": centre,
                    "consent_version": (res.data.get("consent") or {}).get("display"),
                    "presentation": _ext_value(res.data, "presentation", "valueCode"),
                    "metastatic_sites": sites,
                }
                self.emit(res, "included", "patient.included", pid, start,
                          {k: v for k, v in payload.items() if v is not None},
                          members=[patient, *used])
        for pid, conds in self.sites.items():
            for cond in conds:
                if pid not in self.subjects:
                    self.skip(cond, "SecondaryCancerCondition: no ResearchSubject (inclusion) "
                                    "for its patient")
                elif cond.key not in used_conditions:
                    self.skip(cond, "SecondaryCancerCondition after the inclusion: a site found "
                                    "later is a progression's new site (CancerDiseaseStatus)")

    def on_observation(self, res: Resource) -> None:
        data = res.data
        pid = self.patient(res)
        if pid is None:
            self.skip(res, "Observation without subject")
            return
        when = data.get("effectiveDateTime") or (data.get("effectivePeriod") or {}).get("start")
        if not isinstance(when, str):
            self.skip(res, "Observation without effective[x]")
            return
        code = data.get("code")
        loinc, ours = _code_in(code, c.LOINC), _code_in(code, c.CODE_SYSTEM)
        profiles = (data.get("meta") or {}).get("profile", [])
        if loinc in c.TUMOUR_MARKER_LOINC or ours in c.TUMOUR_MARKER_OURS:
            specimen = (_ref_id(data.get("specimen"), "Specimen")
                        or _ref_identifier(data.get("specimen"), c.SPECIMEN_SYSTEM) or "")
            self.markers[(pid, specimen, when)].append((res, loinc or ours or "", data))
        elif c.PROFILE_TUMOR_MARKER in profiles:
            self.skip(res, f"TumorMarkerTest with unsupported code {_first_code(code)}")
        elif loinc == c.ECOG:
            payload: Json = {"ecog": data.get("valueInteger")}
            for comp in data.get("component", []):
                if _code_in(comp.get("code"), c.LOINC) == c.BODY_WEIGHT:
                    payload["weight_kg"] = _kg(comp.get("valueQuantity"))
            self.emit(res, "exam", "clinical_exam.recorded", pid, when,
                      {k: v for k, v in payload.items() if v is not None})
        elif loinc == c.BODY_WEIGHT:
            self.emit(res, "exam", "clinical_exam.recorded", pid, when,
                      {"weight_kg": _kg(data.get("valueQuantity"))})
        elif loinc == c.DISEASE_STATUS:
            if _code_in(data.get("valueCodeableConcept"), c.SNOMED) != c.WORSENED:
                self.skip(res, "CancerDiseaseStatus other than worsened (271299001): "
                               "not a progression")
                return
            evidence = next((e.get("valueCodeableConcept") for e in data.get("extension", [])
                             if e.get("url") == c.EXT_EVIDENCE_TYPE), None)
            basis = c.EVIDENCE_BASIS.get(_code_in(evidence, c.SNOMED) or "", "clinical")
            new_sites = [s for s in (_site(e.get("valueCodeableConcept"))
                                     for e in _ext(data, "new-site")) if s]
            self.emit(res, "progression", "progression.documented", pid, when,
                      {"basis": basis, "new_sites": new_sites})
        elif ours == c.VISCERAL_CRISIS:
            self.emit(res, "crisis", "visceral_crisis.assessed", pid, when,
                      {"present": data.get("valueBoolean")})
        elif ours == c.BIOMARKER:
            payload = {"assay": (data.get("method") or {}).get("text"),
                       "marker": _text(code), "result": data.get("valueString")}
            quantity = _ext_value(data, "biomarker-value", "valueQuantity")
            if isinstance(quantity, dict):
                payload["value"] = quantity.get("value")
                payload["unit"] = quantity.get("unit")
            self.emit(res, "biomarker", "biomarker.recorded", pid, when,
                      {k: v for k, v in payload.items() if v is not None})
        elif isinstance(data.get("valueQuantity"), dict) and _is_lab(data):
            quantity = data["valueQuantity"]
            payload = {"test": _text(code) or loinc, "loinc": loinc,
                       "value": quantity.get("value"), "unit": quantity.get("unit")
                       or quantity.get("code")}
            self.emit(res, "lab", "lab.recorded", pid, when,
                      {k: v for k, v in payload.items() if v is not None})
        else:
            self.skip(res, f"Observation with unmapped code {_first_code(code)}")

    def panels(self) -> None:
        for (pid, specimen, when), members in self.markers.items():
            values: Json = {}
            problems: list[str] = []
            site: str | None = None
            for _, code, data in members:
                site = site or _specimen_site(data.get("bodySite"))
                quantity = (data.get("valueQuantity") or {}).get("value")
                if code in (c.ER_PERCENT, c.ER_PRESENCE, c.PR_PERCENT, c.PR_PRESENCE):
                    name = "er_percent" if code in (c.ER_PERCENT, c.ER_PRESENCE) else "pr_percent"
                    if quantity is None:
                        if name not in values:
                            problems.append(f"{name[:2].upper()} without a percent")
                    else:
                        values[name] = quantity
                elif code == c.HER2_IHC:
                    score = _her2_score(data)
                    if score is None:
                        problems.append("HER2 IHC without a score 0, 1+, 2+ or 3+")
                    else:
                        values["her2_ihc"] = score
                elif code == c.HER2_ISH:
                    values["her2_ish"] = _ish(data.get("valueCodeableConcept"))
                elif code == c.HER2_ISH_RATIO and quantity is not None:
                    values["her2_ish_ratio"] = quantity
                elif code == c.HER2_COPIES and quantity is not None:
                    values["her2_copy_number"] = quantity
                elif code == c.KI67 and quantity is not None:
                    values["ki67_percent"] = quantity
            problems += [f"no {label}" for name, label in
                         (("er_percent", "ER %"), ("pr_percent", "PR %"),
                          ("her2_ihc", "HER2 IHC score")) if name not in values
                         and not any(p.startswith(label[:2]) for p in problems)]
            if not specimen:
                problems.append("no specimen")
            if site is None:
                problems.append("no specimen site (bodySite)")
            if problems:
                reason = "tumour-marker panel incomplete: " + "; ".join(sorted(set(problems)))
                for res, _, _ in members:
                    self.skip(res, reason)
                continue
            ordered = sorted((m[0] for m in members), key=lambda r: r.key)
            payload = {"specimen_id": specimen, "specimen_site": site,
                       "her2_ish": "not_done", **values}
            self.emit(ordered[0], "ihc", "ihc.recorded", pid, when, payload,
                      members=ordered[1:])
            for extra in ordered[1:]:
                self.out.lineages[extra.key].update(self.out.lineages[ordered[0].key])
                self.out.patients_of[extra.key] = pid

    def on_medication_administration(self, res: Resource) -> None:
        self._medication(res, res.data.get("effectiveDateTime") or (
            res.data.get("effectivePeriod") or {}).get("start"), res.data.get("dosage") or {},
            _ext_value(res.data, "regimen-ref", "valueString"))

    def on_medication_request(self, res: Resource) -> None:
        if res.data.get("status") in ("draft", "cancelled"):
            self.skip(res, f"MedicationRequest with status {res.data.get('status')}: no drug given")
            return
        dosage = (res.data.get("dosageInstruction") or [{}])[0]
        dose = ((dosage.get("doseAndRate") or [{}])[0]).get("doseQuantity")
        group = (res.data.get("groupIdentifier") or {}).get("value")
        self._medication(res, res.data.get("authoredOn"),
                         {"route": dosage.get("route"), "dose": dose}, group)

    def _medication(self, res: Resource, when: Any, dosage: Json, regimen: Any) -> None:
        pid = self.patient(res)
        if pid is None:
            self.skip(res, f"{res.type} without subject")
            return
        if not isinstance(when, str):
            self.skip(res, f"{res.type} without a date (effective[x] / authoredOn)")
            return
        drug = drug_name(res.data.get("medicationCodeableConcept"))
        if drug is None:
            self.skip(res, f"{res.type}: medication is not a code or text we can name "
                           "(medicationReference is not followed)")
            return
        payload: Json = {"drug": drug}
        dose = dosage.get("dose")
        if isinstance(dose, dict) and dose.get("value") is not None:
            payload["dose"] = dose["value"]
            payload["dose_unit"] = dose.get("unit") or dose.get("code")
        route = _text(dosage.get("route"))
        if route:
            payload["route"] = route
        if isinstance(regimen, str) and re.fullmatch(r"[A-Za-z0-9._:/-]{1,64}", regimen):
            payload["regimen_ref"] = regimen
        self.emit(res, "given", "drug.administered", pid, when,
                  {k: v for k, v in payload.items() if v is not None})

    def on_care_plan(self, res: Resource) -> None:
        data = res.data
        pid = self.patient(res)
        if pid is None:
            self.skip(res, "CarePlan without subject")
            return
        line_ref = next((i.get("value") for i in data.get("identifier", [])
                         if i.get("system") == c.LINE_REF_SYSTEM), res.id)
        period = data.get("period") or {}
        start = period.get("start")
        if not isinstance(start, str):
            self.skip(res, "CarePlan without period.start (line start)")
            return
        at_start: list[str] = []
        changes: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
        for activity in data.get("activity", []):
            detail = activity.get("detail") or {}
            name = drug_name(detail.get("productCodeableConcept"))
            if name is None:
                continue
            scheduled = detail.get("scheduledPeriod") or {}
            began = scheduled.get("start", start)
            if began == start:
                at_start.append(name)
            else:
                changes[began][0].append(name)
            if isinstance(scheduled.get("end"), str):
                changes[scheduled["end"]][1].append(name)
        payload: Json = {"line_ref": line_ref, "drugs": at_start}
        declared = _ext_value(data, "declared-line-number", "valueInteger")
        if declared is not None:
            payload["declared_line_number"] = declared
        intent = _ext_value(data, "intent", "valueString")
        if intent is not None:
            payload["intent"] = intent
        self.emit(res, "started", "line.started", pid, start, payload)
        for index, (day, (added, stopped)) in enumerate(sorted(changes.items())):
            self.emit(res, f"modified-{index}", "line.modified", pid, day,
                      {"line_ref": line_ref, "drugs_added": added, "drugs_stopped": stopped})
        reason = next((_code_in(e.get("valueCodeableConcept"), c.LINE_END_SYSTEM)
                       for e in data.get("extension", []) if e.get("url") ==
                       c.EXT_TERMINATION_REASON), None)
        if isinstance(period.get("end"), str) and reason is not None:
            self.emit(res, "ended", "line.ended", pid, period["end"],
                      {"line_ref": line_ref, "reason": reason})

    def on_diagnostic_report(self, res: Resource) -> None:
        data = res.data
        pid = self.patient(res)
        if pid is None:
            self.skip(res, "DiagnosticReport without subject")
            return
        modality = _code_in(data.get("code"), c.MODALITY_SYSTEM)
        when = data.get("effectiveDateTime")
        if modality is None or not isinstance(when, str):
            self.skip(res, "DiagnosticReport: not an imaging report with a modality and a date")
            return
        payload: Json = {"modality": modality}
        response = next((_code_in(cc, c.RECIST_SYSTEM) for cc in data.get("conclusionCode", [])
                         if _code_in(cc, c.RECIST_SYSTEM)), None)
        if response is not None:
            payload["recist_response"] = response
        diameters = _ext_value(data, "sum-of-diameters-mm", "valueDecimal")
        if diameters is not None:
            payload["sum_of_diameters_mm"] = diameters
        new = _ext_value(data, "new-lesions", "valueBoolean")
        if new is not None:
            payload["new_lesions"] = new
        regions = [e.get("valueString") for e in _ext(data, "region")]
        if regions:
            payload["regions"] = regions
        self.emit(res, "imaging", "imaging.performed", pid, when, payload)

    def on_procedure(self, res: Resource) -> None:
        data = res.data
        pid = self.patient(res)
        if pid is None:
            self.skip(res, "Procedure without subject")
            return
        text = (_text(data.get("code")) or "").casefold()
        if c.BIOPSY not in [code for _, code in _codings(data.get("code"))] and \
                "biopsy" not in text:
            self.skip(res, f"Procedure other than a biopsy: {_first_code(data.get('code'))}")
            return
        when = data.get("performedDateTime") or (data.get("performedPeriod") or {}).get("start")
        if not isinstance(when, str):
            self.skip(res, "Procedure without performed[x]")
            return
        specimen = next((i.get("value") for i in data.get("identifier", [])
                         if i.get("system") == c.SPECIMEN_SYSTEM), res.id)
        site = next((t for t in map(_text, _concepts(data.get("bodySite"))) if t), "unknown")
        reason = next((_code_in(cc, c.BIOPSY_REASON_SYSTEM) for cc in data.get("reasonCode", [])
                       if _code_in(cc, c.BIOPSY_REASON_SYSTEM)), "other")
        payload: Json = {"specimen_id": specimen[:64], "site": site, "reason": reason,
                         "omics_samples": [e.get("valueString") for e in
                                           _ext(data, "omics-sample")]}
        self.emit(res, "biopsy", "biopsy.performed", pid, when, payload)

    def on_questionnaire_response(self, res: Resource) -> None:
        data = res.data
        pid = self.patient(res)
        if pid is None:
            self.skip(res, "QuestionnaireResponse without subject")
            return
        when = data.get("authored")
        if not isinstance(when, str):
            self.skip(res, "QuestionnaireResponse without authored")
            return
        instrument = unquote(str(data.get("questionnaire", "")).removeprefix(
            f"{c.OURS}:questionnaire:"))
        items: Json = {}
        for item in data.get("item", []):
            answers = item.get("answer") or [{}]
            answer = answers[0]
            items[str(item.get("linkId"))] = next(
                (answer[k] for k in ("valueDecimal", "valueInteger", "valueString")
                 if k in answer), None)
        self.emit(res, "questionnaire", "questionnaire.recorded", pid, when,
                  {"instrument": instrument or "unknown", "items": items})

    def on_informational(self, res: Resource) -> None:
        self.skip(res, f"{res.type}: no clinical fact of the cohort (context only)")


def _version_order(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)


def _first_code(concept: Any) -> str:
    pairs = _codings(concept)
    if not pairs:
        return "(no code)"
    system, code = pairs[0]
    short = {c.LOINC: "LOINC", c.SNOMED: "SNOMED"}.get(system, system)
    return f"{short}|{code}"


def _ref_identifier(reference: Any, system: str) -> str | None:
    if isinstance(reference, dict):
        ident = reference.get("identifier")
        if isinstance(ident, dict) and ident.get("system") == system:
            return str(ident.get("value"))
    return None


def _site(concept: Any) -> str | None:
    code = _code_in(concept, c.SNOMED)
    if code in c.SNOMED_SITE:
        return c.SNOMED_SITE[code]
    return _code_in(concept, c.SITE_SYSTEM)


def _specimen_site(sites: Any) -> str | None:
    for concept in _concepts(sites):
        ours = _code_in(concept, c.SPECIMEN_SITE_SYSTEM)
        if ours is not None:
            return ours
        if _code_in(concept, c.SNOMED) in c.BREAST_SNOMED:
            return "breast"
        if _site(concept) is not None:
            return "metastasis"
    return None


_SCORE = re.compile(r"^\s*([0-3])\s*(\+)?\s*$")


def _her2_score(data: Json) -> str | None:
    if isinstance(data.get("valueInteger"), int) and 0 <= data["valueInteger"] <= 3:
        score = data["valueInteger"]
        return "0" if score == 0 else f"{score}+"
    concept = data.get("valueCodeableConcept")
    candidates = [code for _, code in _codings(concept)]
    if (text := _text(concept)) is not None:
        candidates.append(text)
    for candidate in candidates:
        match = _SCORE.match(candidate)
        if match:
            return "0" if match.group(1) == "0" else f"{match.group(1)}+"
    return None


_ISH_ANSWERS = {"LA6576-8": "amplified", "LA6577-6": "not_amplified",
                "LA11884-6": "equivocal"}


def _ish(concept: Any) -> str:
    ours = _code_in(concept, c.VALUE_SYSTEM)
    if ours is not None:
        return ours
    return _ISH_ANSWERS.get(_code_in(concept, c.LOINC) or "", "equivocal")


def _kg(quantity: Any) -> float | None:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return None
    value = float(quantity["value"])
    unit = str(quantity.get("code") or quantity.get("unit") or "kg")
    return round(value * c.POUND_KG, 1) if unit in ("[lb_av]", "lb", "lbs") else value


def _is_lab(data: Json) -> bool:
    for concept in _concepts(data.get("category")):
        if "laboratory" in [code for _, code in _codings(concept)]:
            return True
    return _code_in(data.get("code"), c.LOINC) is not None


_HANDLERS = {
    "Patient": _Mapper.on_patient,
    "ResearchSubject": _Mapper.on_research_subject,
    "Condition": _Mapper.on_condition,
    "Observation": _Mapper.on_observation,
    "MedicationAdministration": _Mapper.on_medication_administration,
    "MedicationRequest": _Mapper.on_medication_request,
    "CarePlan": _Mapper.on_care_plan,
    "DiagnosticReport": _Mapper.on_diagnostic_report,
    "Procedure": _Mapper.on_procedure,
    "QuestionnaireResponse": _Mapper.on_questionnaire_response,
    "Practitioner": _Mapper.on_informational,
    "PractitionerRole": _Mapper.on_informational,
    "Organization": _Mapper.on_informational,
    "Specimen": _Mapper.on_informational,
    "ResearchStudy": _Mapper.on_informational,
}
SUPPORTED_TYPES = frozenset(_HANDLERS)


def map_resources(resources: Iterable[Resource], received_at: datetime) -> Mapping:
    """Every resource's events (or the reason it has none)."""
    return _Mapper(received_at).run(resources)
