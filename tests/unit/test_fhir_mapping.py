"""Worked examples of the FHIR -> event mapping (docs/interop.md).

The first resources are the mCODE implementation guide's own examples
(HL7/fhir-mCODE-ig, ``input/fsh/EX_ExtendedExample.fsh`` and ``EX_Basic.fsh``),
written by hand as JSON from their FSH; names, addresses and notes left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.events.catalogue import ClinicalExamRecorded, EventRetracted
from mbcjourney.interop import codes as c
from mbcjourney.interop.fhir_import import Prepared, import_into, prepare_import
from mbcjourney.projections import build_history
from mbcjourney.projections.settings import DEFAULT_CLINICAL
from mbcjourney.projections.views import project

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)
Json = dict[str, Any]
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition"
JENNY = {"reference": "Patient/cancer-patient-jenny-m"}
JOHN = {"reference": "Patient/cancer-patient-john-anyperson"}


def _loinc(code: str, display: str | None = None) -> Json:
    coding = {"system": c.LOINC, "code": code}
    return {"coding": [coding | ({"display": display} if display else {})]}


def _sct(code: str, display: str) -> Json:
    return {"coding": [{"system": c.SNOMED, "code": code, "display": display}]}


def _rxn(code: str, display: str) -> Json:
    return {"coding": [{"system": c.RXNORM, "code": code, "display": display}]}


def _profile(name: str) -> Json:
    return {"profile": [f"{MCODE}/mcode-{name}"]}


# --- HL7/fhir-mCODE-ig EX_ExtendedExample.fsh (Jenny M) -----------------------------------

JENNY_RESOURCES: list[Json] = [
    {"resourceType": "Patient", "id": "cancer-patient-jenny-m", "meta": _profile("cancer-patient"),
     "identifier": [{"use": "usual", "system": "http://hospital.example.org",
                     "value": "MRN1234"}],
     "gender": "female", "birthDate": "1965-01-01"},
    {"resourceType": "Observation", "id": "ecog-performance-status-jenny-m",
     "meta": _profile("ecog-performance-status"), "status": "final",
     "category": [{"coding": [{"system":
                               "http://terminology.hl7.org/CodeSystem/observation-category",
                               "code": "survey"}]}],
     "code": _loinc("89247-1", "ECOG Performance Status score"), "subject": JENNY,
     "effectiveDateTime": "2018-04-12", "valueInteger": 0,
     "method": _sct("5880005", "Physical examination procedure (procedure)")},
    {"resourceType": "Observation", "id": "bodyweight-jenny-m-2018-03-16", "status": "final",
     "code": _loinc("29463-7", "Body weight"), "subject": JENNY,
     "effectiveDateTime": "2018-03-06",
     "valueQuantity": {"value": 155.0, "unit": "lb", "system": c.UCUM, "code": "[lb_av]"}},
    {"resourceType": "Observation", "id": "tumor-marker-test-er-jenny-m",
     "meta": _profile("tumor-marker-test"), "status": "final",
     "code": _loinc("85337-4", "Estrogen receptor Ag [Presence] in Breast cancer specimen by "
                               "Immune stain"),
     "subject": JENNY, "effectiveDateTime": "2018-03-10",
     "valueCodeableConcept": _loinc("LA6576-8", "Positive")},
    {"resourceType": "Observation", "id": "tumor-marker-test-pr-jenny-m",
     "meta": _profile("tumor-marker-test"), "status": "final",
     "code": _loinc("85339-0", "Progesterone receptor Ag [Presence] in Breast cancer specimen "
                               "by Immune stain"),
     "subject": JENNY, "effectiveDateTime": "2018-03-10",
     "valueCodeableConcept": _loinc("LA6577-6", "Negative")},
    {"resourceType": "Observation", "id": "tumor-marker-test-her2-jenny-m",
     "meta": _profile("tumor-marker-test"), "status": "final",
     "code": _loinc("48676-1", "HER2 [Interpretation] in Tissue"),
     "subject": JENNY, "effectiveDateTime": "2018-03-10",
     "valueCodeableConcept": _loinc("LA6577-6", "Negative")},
    {"resourceType": "MedicationAdministration",
     "id": "cancer-related-medication-admin-doxorubicin-jenny-m",
     "meta": _profile("cancer-related-medication-administration"), "status": "completed",
     "medicationCodeableConcept": _rxn("1790099",
                                       "10 ML doxorubicin hydrochloride 2 MG/ML Injection"),
     "subject": JENNY, "effectiveDateTime": "2018-04-22",
     "dosage": {"dose": {"value": 105.96, "unit": "mg", "system": c.UCUM, "code": "mg"},
                "route": _sct("47625008", "Intravenous route (qualifier value)")}},
    {"resourceType": "MedicationAdministration",
     "id": "cancer-related-medication-admin-cyclophosphamide-jenny-m",
     "meta": _profile("cancer-related-medication-administration"), "status": "completed",
     "medicationCodeableConcept": _rxn("3002", "cyclophosphamide"),
     "subject": JENNY, "effectiveDateTime": "2018-04-22",
     "dosage": {"dose": {"value": 932.59, "unit": "mg", "system": c.UCUM, "code": "mg"},
                "route": _sct("47625008", "Intravenous route (qualifier value)")}},
    {"resourceType": "MedicationAdministration",
     "id": "cancer-related-medication-admin-paclitaxel-jenny-m",
     "meta": _profile("cancer-related-medication-administration"), "status": "completed",
     "medicationCodeableConcept": _rxn("56946", "PACLitaxel"),
     "subject": JENNY, "effectiveDateTime": "2018-04-22",
     "dosage": {"dose": {"value": 272.01, "unit": "mg", "system": c.UCUM, "code": "mg"},
                "route": _sct("47625008", "Intravenous route (qualifier value)")}},
    {"resourceType": "Observation", "id": "cancer-disease-status-jenny-m",
     "meta": _profile("cancer-disease-status"), "status": "final",
     "code": _loinc("97509-4", "Cancer Disease Progression"), "subject": JENNY,
     "effectiveDateTime": "2018-11-01",
     "valueCodeableConcept": _sct("268910001", "Patient's condition improved (finding)")},
    {"resourceType": "Procedure", "id": "us-core-procedure-biopsy-jenny-m",
     "status": "completed",
     "code": _sct("723990008", "Biopsy of breast using ultrasonographic guidance (procedure)"),
     "subject": JENNY, "performedDateTime": "2018-03-06",
     "bodySite": [_sct("80248007", "Left breast structure (body structure)")]},
    {"resourceType": "Practitioner", "id": "us-core-practitioner-owen-oncologist"},
]

# --- HL7/fhir-mCODE-ig EX_Basic.fsh (John Anyperson), with a ResearchSubject of ours -------

JOHN_RESOURCES: list[Json] = [
    {"resourceType": "Patient", "id": "cancer-patient-john-anyperson",
     "meta": _profile("cancer-patient"), "gender": "male", "birthDate": "1951-01-20",
     "managingOrganization": {"identifier": {"system": c.CENTRE_SYSTEM, "value": "C07"}}},
    {"resourceType": "Condition", "id": "secondary-cancer-condition-brain-mets",
     "meta": _profile("secondary-cancer-condition"),
     "code": _sct("94225005", "Secondary malignant neoplasm of brain"),
     "subject": JOHN, "onsetDateTime": "2019-05-01"},
    {"resourceType": "Condition", "id": "primary-cancer-condition-nsclc",
     "code": _sct("254637007", "Non-small cell lung cancer (disorder)"), "subject": JOHN},
    {"resourceType": "ResearchSubject", "id": "john-in-cohort", "status": "on-study",
     "period": {"start": "2019-05-20"}, "study": {"display": "mbc-journey cohort"},
     "individual": JOHN, "consent": {"display": "v2"},
     "extension": [{"url": c.ext("presentation"), "valueCode": "de_novo"}]},
    {"resourceType": "MedicationRequest", "id": "cancer-related-medication-request-cisplatin",
     "status": "completed", "intent": "order", "authoredOn": "2019-06-15",
     "medicationCodeableConcept": _rxn("309311", "cisplatin 1 MG/ML Injectable Solution"),
     "subject": JOHN,
     "dosageInstruction": [{"route": _sct("47625008", "Intravenous use"),
                            "doseAndRate": [{"doseQuantity": {"value": 75, "unit": "mg/m2"}}]}]},
]


def _bundle(resources: list[Json]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "collection",
                         "entry": [{"resource": r} for r in resources]})


def _prepare(tmp_path: Path, resources: list[Json]) -> Prepared:
    path = tmp_path / "bundle.json"
    path.write_bytes(_bundle(resources))
    return prepare_import(path, RECEIVED, None)


def _by_type(prepared: Prepared) -> dict[str, list[Json]]:
    found: dict[str, list[Json]] = {}
    for event in prepared.mapping.events:
        found.setdefault(event["event_type"], []).append(event)
    return found


def test_jenny_m_extended_example(tmp_path: Path) -> None:
    prepared = _prepare(tmp_path, JENNY_RESOURCES)
    events = _by_type(prepared)
    exams = sorted((e["occurred_at"], e["payload"]) for e in events["clinical_exam.recorded"])
    assert exams == [("2018-03-06", {"weight_kg": 70.3}), ("2018-04-12", {"ecog": 0})]
    given = sorted((e["payload"]["drug"], e["payload"]["dose"], e["payload"]["route"])
                   for e in events["drug.administered"])
    assert given == [("cyclophosphamide", 932.59, "Intravenous route (qualifier value)"),
                     ("doxorubicin", 105.96, "Intravenous route (qualifier value)"),
                     ("paclitaxel", 272.01, "Intravenous route (qualifier value)")]
    assert {e["patient_id"] for e in prepared.mapping.events} == {"cancer-patient-jenny-m"}
    [biopsy] = events["biopsy.performed"]
    assert biopsy["payload"]["site"] == "Left breast structure (body structure)"
    assert biopsy["source"] == {"system": "fhir", "reference":
                                biopsy["source"]["reference"]}
    assert biopsy["source"]["reference"].startswith("Procedure/us-core-procedure-biopsy-jenny-m/")
    reasons = dict(prepared.unmapped_by_reason())
    assert reasons == {
        "tumour-marker panel incomplete: ER without a percent; PR without a percent; "
        "no HER2 IHC score; no specimen; no specimen site (bodySite)": 2,
        "TumorMarkerTest with unsupported code LOINC|48676-1": 1,
        "CancerDiseaseStatus other than worsened (271299001): not a progression": 1,
        "Practitioner: no clinical fact of the cohort (context only)": 1,
    }
    assert not events.get("ihc.recorded")


def test_john_anyperson_inclusion_with_a_secondary_condition(tmp_path: Path) -> None:
    prepared = _prepare(tmp_path, JOHN_RESOURCES)
    events = _by_type(prepared)
    [included] = events["patient.included"]
    assert included["occurred_at"] == "2019-05-20"
    assert included["payload"] == {"birth_year": 1951, "sex": "male", "centre": "C07",
                                   "consent_version": "v2", "presentation": "de_novo",
                                   "metastatic_sites": ["brain"]}
    [cisplatin] = events["drug.administered"]
    assert cisplatin["payload"]["drug"] == "cisplatin"
    assert cisplatin["occurred_at"] == "2019-06-15"
    assert dict(prepared.unmapped_by_reason()) == {
        "Condition: not a SecondaryCancerCondition with a known metastatic site": 1}


def _percent(code: str, value: float, suffix: str) -> Json:
    return {"resourceType": "Observation", "id": f"tm-{suffix}",
            "meta": _profile("tumor-marker-test"), "status": "final", "code": _loinc(code),
            "subject": JOHN, "effectiveDateTime": "2019-05-10",
            "specimen": {"reference": "Specimen/S19-001"},
            "bodySite": _sct("94225005", "Secondary malignant neoplasm of brain"),
            "valueQuantity": {"value": value, "unit": "%"}}


def test_a_tumour_marker_panel_becomes_one_ihc(tmp_path: Path) -> None:
    her2 = {"resourceType": "Observation", "id": "tm-her2", "status": "final",
            "code": _loinc("85319-2"), "subject": JOHN, "effectiveDateTime": "2019-05-10",
            "specimen": {"reference": "Specimen/S19-001"},
            "valueCodeableConcept": {"text": "2+"}}
    ish = {"resourceType": "Observation", "id": "tm-ish", "status": "final",
           "code": _loinc("85318-4"), "subject": JOHN, "effectiveDateTime": "2019-05-10",
           "specimen": {"reference": "Specimen/S19-001"},
           "valueCodeableConcept": _loinc("LA6576-8", "Positive")}
    prepared = _prepare(tmp_path, [*JOHN_RESOURCES, _percent("85329-1", 0, "er"),
                                   _percent("85325-9", 5, "pr"), her2, ish])
    [ihc] = _by_type(prepared)["ihc.recorded"]
    assert ihc["payload"] == {"specimen_id": "S19-001", "specimen_site": "metastasis",
                              "er_percent": 0, "pr_percent": 5, "her2_ihc": "2+",
                              "her2_ish": "amplified"}
    assert ihc["source"]["reference"].startswith("Observation/tm-er/_history/")


def _engine(tmp_path: Path) -> EmbeddedEngine:
    return EmbeddedEngine(f"sqlite:///{tmp_path / 'fhir.db'}")


def test_bad_input_is_counted_by_reason_and_nothing_else_is_lost(tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    folder.mkdir()
    good = [r for r in JENNY_RESOURCES if r["resourceType"] in ("Patient",
                                                                "MedicationAdministration")]
    no_subject = {"resourceType": "Observation", "id": "no-subject", "status": "final",
                  "code": _loinc("718-7", "Hemoglobin"), "effectiveDateTime": "2018-04-20",
                  "valueQuantity": {"value": 13.5, "unit": "g/dl"}}
    unknown_marker = {"resourceType": "Observation", "id": "marker-x",
                      "meta": _profile("tumor-marker-test"), "status": "final",
                      "code": _loinc("99999-9"), "subject": JENNY,
                      "effectiveDateTime": "2018-03-10", "valueQuantity": {"value": 1}}
    claim = {"resourceType": "Claim", "id": "c1", "status": "active",
             "type": {"text": "oral"}, "use": "claim", "patient": JENNY,
             "created": "2018-04-22", "provider": {"display": "x"},
             "priority": {"text": "normal"}, "insurance": [
                 {"sequence": 1, "focal": True, "coverage": {"display": "x"}}]}
    invalid = {"resourceType": "Observation", "id": "bad-date", "status": "final",
               "code": {"text": "x"}, "subject": JENNY, "effectiveDateTime": "yesterday"}
    lines = [orjson.dumps(r) for r in [*good, no_subject, unknown_marker, claim, invalid]]
    (folder / "resources.ndjson").write_bytes(b"\n".join([*lines, b"{not json"]) + b"\n")
    (folder / "broken.json").write_bytes(b'{"resourceType": "Bundle", "entry": [')
    engine = _engine(tmp_path)
    try:
        prepared, summary = import_into(engine, folder, received_at=RECEIVED)
        reasons = dict(prepared.unmapped_by_reason())
        assert reasons.pop("Observation without subject") == 1
        assert reasons.pop("TumorMarkerTest with unsupported code LOINC|99999-9") == 1
        assert reasons.pop("unsupported resource type Claim") == 1
        assert reasons.pop("Bundle file is not JSON") == 1
        assert reasons.pop("line is not JSON") == 1
        [invalid_reason] = reasons
        assert invalid_reason.startswith("invalid R4B Observation: effectiveDateTime")
        assert summary.accepted == 3  # the three administrations
        assert summary.rejected_total == 0
        letters = engine.log.dead_letters()
        assert len(letters) == len(prepared.unmapped) == 6
        assert any("TumorMarkerTest with unsupported code" in d.reason for d in letters)
    finally:
        engine.close()


def _ecog(version: str, score: int, status: str = "final") -> Json:
    return {"resourceType": "Observation", "id": "ecog-1",
            "meta": {"versionId": version, "lastUpdated": "2026-01-02T00:00:00Z"},
            "status": status, "code": _loinc("89247-1"), "subject": JOHN,
            "effectiveDateTime": "2019-06-01", "valueInteger": score}


def _ecogs(engine: EmbeddedEngine) -> list[int | None]:
    histories = engine.log.histories(["cancer-patient-john-anyperson"])
    events = build_history("cancer-patient-john-anyperson", next(histories)[1]).events
    return [e.payload.ecog for e in events if isinstance(e, ClinicalExamRecorded)]


def test_a_newer_version_is_a_retraction_plus_the_new_fact(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    path = tmp_path / "b.json"
    try:
        path.write_bytes(_bundle([*JOHN_RESOURCES, _ecog("1", 1)]))
        import_into(engine, path, received_at=RECEIVED)
        assert _ecogs(engine) == [1]
        path.write_bytes(_bundle([*JOHN_RESOURCES, _ecog("2", 2)]))
        prepared, summary = import_into(engine, path, received_at=RECEIVED)
        assert prepared.retractions == 1
        assert summary.accepted == 2  # the retraction and the new fact
        assert _ecogs(engine) == [2]
        _, again = import_into(engine, path, received_at=RECEIVED)
        assert again.accepted == 0
        assert again.duplicates == again.read
        # both versions in one input: the newer one wins, the older is counted
        path.write_bytes(_bundle([_ecog("3", 3), _ecog("2", 2), *JOHN_RESOURCES]))
        prepared, _ = import_into(engine, path, received_at=RECEIVED)
        assert prepared.mapping.superseded == 1
        assert _ecogs(engine) == [3]
        path.write_bytes(_bundle([*JOHN_RESOURCES, _ecog("4", 3, "entered-in-error")]))
        import_into(engine, path, received_at=RECEIVED)
        assert _ecogs(engine) == []
    finally:
        engine.close()


def test_a_bulk_data_deletion_retracts_the_deleted_resource(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    folder = tmp_path / "bulk"
    folder.mkdir()
    try:
        (folder / "Observation.ndjson").write_bytes(orjson.dumps(_ecog("1", 1)) + b"\n")
        (folder / "Patient.ndjson").write_bytes(orjson.dumps(JOHN_RESOURCES[0]) + b"\n")
        manifest = {"output": [{"type": "Observation", "url": "Observation.ndjson"},
                               {"type": "Patient", "url": "Patient.ndjson"}]}
        (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
        import_into(engine, folder, received_at=RECEIVED)
        assert _ecogs(engine) == [1]
        deleted = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Observation/ecog-1"}}]}
        (folder / "Observation.ndjson").write_bytes(b"")
        (folder / "deleted.ndjson").write_bytes(orjson.dumps(deleted) + b"\n")
        manifest["deleted"] = [{"type": "Bundle", "url": "deleted.ndjson"}]
        (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
        prepared, _ = import_into(engine, folder, received_at=RECEIVED)
        assert prepared.retractions == 1
        assert _ecogs(engine) == []
        histories = dict(engine.log.histories(["cancer-patient-john-anyperson"]))
        [retraction] = [e for e in histories["cancer-patient-john-anyperson"]
                        if isinstance(e, EventRetracted)]
        assert retraction.payload.reason == "FHIR: deleted at the source"
    finally:
        engine.close()


def test_administrations_from_fhir_derive_lines(tmp_path: Path) -> None:
    def given(day: str, rx: str, name: str, n: int) -> Json:
        return {"resourceType": "MedicationAdministration", "id": f"ma-{n}",
                "status": "completed", "medicationCodeableConcept": _rxn(rx, name),
                "subject": JOHN, "effectiveDateTime": day}

    weekly = [given(f"2019-06-{d:02d}", "56946", "paclitaxel", d) for d in (3, 10, 17, 24)]
    later = [given("2020-02-03", "56946", "paclitaxel", 99)]  # 224 days after the last: > 180
    prepared = _prepare(tmp_path, [*JOHN_RESOURCES, *weekly, *later])
    from mbcjourney.events import decode_event

    events = [decode_event(e, received_at=RECEIVED) for e in prepared.mapping.events]
    journey = project("cancer-patient-john-anyperson", events, DEFAULT_CLINICAL)
    assert [(r.line_number, r.regimen, str(r.start_date), r.line_source)
            for r in journey.lines] == [(1, "cisplatin+paclitaxel", "2019-06-03", "derived"),
                                        (2, "paclitaxel", "2020-02-03", "derived")]


def test_helper_processes_reach_the_same_verdicts(tmp_path: Path) -> None:
    from mbcjourney.interop.fhir_import import read_path

    lines = [orjson.dumps(r) for r in [*JENNY_RESOURCES, *JOHN_RESOURCES]]
    lines += [b"{broken", orjson.dumps({"resourceType": "Claim", "id": "x"}),
              orjson.dumps({"resourceType": "Observation", "id": "bad",
                            "effectiveDateTime": "yesterday"})]
    (tmp_path / "all.ndjson").write_bytes(b"\n".join(lines))
    here, helped = read_path(tmp_path, workers=0), read_path(tmp_path, workers=1)
    assert [(r.key, r.origin) for r in helped.resources] == [
        (r.key, r.origin) for r in here.resources]
    assert [(u.origin, u.reason) for u in helped.unmapped] == [
        (u.origin, u.reason) for u in here.unmapped]
    assert len(here.unmapped) == 3


def test_a_version_that_states_nothing_retracts_what_the_first_stated(tmp_path: Path) -> None:
    def status(version: str, value: str) -> Json:
        return {"resourceType": "Observation", "id": "cds-1",
                "meta": {"versionId": version}, "status": "final",
                "code": _loinc("97509-4"), "subject": JOHN, "effectiveDateTime": "2019-09-01",
                "valueCodeableConcept": _sct(value, "status")}

    engine = _engine(tmp_path)
    path = tmp_path / "b.json"
    try:
        path.write_bytes(_bundle([*JOHN_RESOURCES, status("1", "271299001")]))
        import_into(engine, path, received_at=RECEIVED)
        journey = project("cancer-patient-john-anyperson",
                          next(engine.log.histories(["cancer-patient-john-anyperson"]))[1],
                          DEFAULT_CLINICAL)
        assert journey.lines[0].progression_date is not None
        path.write_bytes(_bundle([*JOHN_RESOURCES, status("2", "268910001")]))  # improved
        prepared, _ = import_into(engine, path, received_at=RECEIVED)
        assert prepared.retractions == 1
        journey = project("cancer-patient-john-anyperson",
                          next(engine.log.histories(["cancer-patient-john-anyperson"]))[1],
                          DEFAULT_CLINICAL)
        assert journey.lines[0].progression_date is None
    finally:
        engine.close()


def test_a_metastatic_site_after_inclusion_is_counted_not_dropped(tmp_path: Path) -> None:
    later = {"resourceType": "Condition", "id": "liver-later",
             "code": _sct("94381002", "Secondary malignant neoplasm of liver"),
             "subject": JOHN, "onsetDateTime": "2020-01-01"}
    prepared = _prepare(tmp_path, [*JOHN_RESOURCES, later])
    [included] = _by_type(prepared)["patient.included"]
    assert included["payload"]["metastatic_sites"] == ["brain"]
    assert dict(prepared.unmapped_by_reason())[
        "SecondaryCancerCondition after the inclusion: a site found later is a progression's "
        "new site (CancerDiseaseStatus)"] == 1


def test_bootstrap_publishes_the_same_events_keyed_by_patient(tmp_path: Path) -> None:
    from mbcjourney.interop.fhir_import import publish_import

    class Sent:
        def get(self, timeout: float | None = None) -> None:
            return None

    class FakeProducer:
        def __init__(self) -> None:
            self.sent: list[tuple[str, bytes | None, bytes | None, Any]] = []

        def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                 headers: Any = None) -> Sent:
            self.sent.append((topic, key, value, headers))
            return Sent()

        def flush(self, timeout: float | None = None) -> None:
            pass

    path = tmp_path / "b.json"
    path.write_bytes(_bundle([*JOHN_RESOURCES, _ecog("1", 1), {"resourceType": "Claim"}]))
    producer = FakeProducer()
    prepared, summary = publish_import(producer, path, received_at=RECEIVED, topic="ev",
                                       dead_letter_topic="dl")
    assert summary.published == len(prepared.mapping.events) == 3
    assert {(topic, key) for topic, key, _, _ in producer.sent} == {
        ("ev", b"cancer-patient-john-anyperson")}
    assert sorted(orjson.loads(value or b"")["event_id"] for _, _, value, _ in producer.sent) == \
        sorted(e["event_id"] for e in prepared.mapping.events)
    assert len(prepared.unmapped) == 2  # the Claim (invalid R4B), the primary condition
