"""Event contract: every validation rule names the field and the reason."""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import pytest

from mbcjourney.errors import InvalidEvent
from mbcjourney.events import decode_event, encode_event
from mbcjourney.events.catalogue import IhcRecorded, LineStarted
from mbcjourney.events.codec import decode_stored_row
from tests.support.builders import RECEIVED, PatientBuilder, dumps


def _ihc_raw(**payload: Any) -> dict[str, Any]:
    base = {"specimen_id": "S1", "specimen_site": "metastasis", "er_percent": 90,
            "pr_percent": 40, "her2_ihc": "1+", "her2_ish": "not_done"}
    base.update(payload)
    return PatientBuilder().raw("ihc.recorded", "2026-01-15", base)


def _reject(raw: dict[str, Any] | bytes) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw if isinstance(raw, bytes) else dumps(raw), received_at=RECEIVED)
    return caught.value


def test_design_example_decodes_and_round_trips() -> None:
    raw = (b'{"event_id": "6f1d2c1e-9a57-4c0e-8f5e-2b7f0a1c9d33", "event_type": "ihc.recorded",'
           b' "schema_version": 1, "patient_id": "P-000123", "occurred_at": "2026-01-15",'
           b' "recorded_at": "2026-01-20T10:00:00Z",'
           b' "source": {"system": "pathology-lis", "reference": "S26-00123"},'
           b' "payload": {"specimen_id": "S26-00123", "specimen_site": "metastasis",'
           b' "er_percent": 90, "pr_percent": 40, "her2_ihc": "1+", "her2_ish": "not_done"}}')
    event = decode_event(raw, received_at=RECEIVED)
    assert isinstance(event, IhcRecorded)
    assert event.payload.her2_ihc == "1+"
    assert decode_event(encode_event(event), received_at=RECEIVED) == event


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda r: r.update(event_type="ihc.unknown"), "event_type", "unknown event type"),
        (lambda r: r.pop("event_type"), "event_type", "missing"),
        (lambda r: r.pop("patient_id"), "patient_id", "required field is missing"),
        (lambda r: r.update(schema_version="1"), "schema_version", "integer"),
        (lambda r: r.update(schema_version=9), "schema_version", "newer than supported"),
        (lambda r: r.update(event_id="not-a-uuid"), "event_id", "UUID"),
        (lambda r: r.update(occurred_at="15/01/2026"), "occurred_at", "ISO date"),
        (lambda r: r.update(occurred_at="1850-01-01"), "occurred_at", "year must be between"),
        (lambda r: r.update(occurred_at="2026-02-15"), "occurred_at", "after recorded_at"),
        (lambda r: r.update(recorded_at="2026-01-20T10:00:00"), "recorded_at", "timezone"),
        (lambda r: r["payload"].update(er_percent=150), "payload.er_percent", "less than or equal"),
        (lambda r: r["payload"].update(pr_percent=-1), "payload.pr_percent",
         "greater than or equal"),
        (lambda r: r["payload"].update(her2_ihc="4+"), "payload.her2_ihc", "'0', '1+', '2+'"),
        (lambda r: r["payload"].update(her2_ish="maybe"), "payload.her2_ish", "amplified"),
        (lambda r: r["payload"].update(specimen_site="blood"), "payload.specimen_site", "breast"),
        (lambda r: r["payload"].update(ki67_percent=101), "payload.ki67_percent",
         "less than or equal"),
        (lambda r: r["payload"].pop("er_percent"), "payload.er_percent", "missing"),
        # an unknown key is the sender's text: named by a hash, with the field it may mean
        (lambda r: r["payload"].update(er_pct=5), "payload.#" + blake2b(
            b"er_pct", digest_size=4).hexdigest(), "unknown field (did you mean er_percent?)"),
        (lambda r: r.update(source={"reference": "x"}), "source.system", "missing"),
    ],
)
def test_invalid_ihc_names_field_and_reason(mutate: Any, field: str, reason: str) -> None:
    raw = _ihc_raw()
    raw["recorded_at"] = "2026-01-20T10:00:00Z"
    mutate(raw)
    error = _reject(raw)
    assert error.errors[0].field == field
    assert reason in error.errors[0].reason


def test_not_json_and_not_object() -> None:
    assert _reject(b'{"event_id": ').errors[0].field == "$"
    assert "object" in _reject(b"[1, 2]").errors[0].reason


@pytest.mark.parametrize(
    ("event_type", "payload", "field"),
    [
        ("patient.included", {"birth_year": 1960, "sex": "female", "centre": "C01",
                              "consent_version": "v1", "presentation": "de_novo",
                              "metastatic_sites": ["bone", "bone"]}, "payload.metastatic_sites"),
        ("patient.included", {"birth_year": 1960, "sex": "female", "centre": "C01",
                              "consent_version": "v1", "presentation": "de_novo",
                              "metastatic_sites": ["spleen"]}, "payload.metastatic_sites.0"),
        ("line.started", {"line_ref": "L1", "drugs": []}, "payload.drugs"),
        ("line.started", {"line_ref": "L1", "drugs": ["x"], "declared_line_number": 0},
         "payload.declared_line_number"),
        ("line.modified", {"line_ref": "L1"}, "payload"),
        ("line.ended", {"line_ref": "L1", "reason": "bored"}, "payload.reason"),
        ("imaging.performed", {"modality": "X-ray"}, "payload.modality"),
        ("imaging.performed", {"modality": "CT", "recist_response": "XX"},
         "payload.recist_response"),
        ("imaging.performed", {"modality": "CT", "sum_of_diameters_mm": -3},
         "payload.sum_of_diameters_mm"),
        ("progression.documented", {"basis": "hunch"}, "payload.basis"),
        ("biopsy.performed", {"specimen_id": "B1", "site": "liver", "reason": "fun"},
         "payload.reason"),
        ("death.recorded", {"cause": "magic"}, "payload.cause"),
        ("consent.withdrawn", {"scope": "partial"}, "payload.scope"),
        ("clinical_exam.recorded", {"ecog": 5}, "payload.ecog"),
        ("clinical_exam.recorded", {"weight_kg": 5}, "payload.weight_kg"),
        ("lab.recorded", {"test": "CA 15-3", "value": 30, "unit": "U/mL", "loinc": "abc"},
         "payload.loinc"),
        ("event.retracted", {"target_event_id": "nope", "reason": "typo"},
         "payload.target_event_id"),
    ],
)
def test_payload_rules(event_type: str, payload: dict[str, Any], field: str) -> None:
    raw = PatientBuilder().raw(event_type, "2026-01-15", payload)
    assert _reject(raw).errors[0].field == field


def test_recorded_at_is_set_at_ingest_when_absent() -> None:
    raw = PatientBuilder().raw("death.recorded", "2026-01-15", {"cause": "disease"})
    del raw["recorded_at"]
    event = decode_event(dumps(raw), received_at=RECEIVED)
    assert event.recorded_at == RECEIVED


def test_occurred_at_keeps_date_or_datetime() -> None:
    b = PatientBuilder()
    dated = b.imaging("2026-01-15")
    timed = b.imaging("2026-01-15T08:30:00+01:00")
    assert b'"occurred_at":"2026-01-15"' in encode_event(dated)
    assert timed.occurred_on.isoformat() == "2026-01-15"


def test_events_are_frozen() -> None:
    event = PatientBuilder().line("2026-01-15", "L1", "Taxol")
    assert isinstance(event, LineStarted)
    with pytest.raises(ValueError, match="frozen"):
        event.patient_id = "P-2"  # type: ignore[misc]


@pytest.mark.parametrize("loose", [{"er_percent": "90"}, {"pr_percent": "40", "er_percent": "90"}])
def test_a_number_sent_as_a_string_decodes_to_the_canonical_event(loose: dict[str, Any]) -> None:
    """Bodies are stored as received: every decode path reads a lax form as the canonical one."""
    canonical = _ihc_raw()
    sent = {**canonical, "payload": {**canonical["payload"], **loose}}
    expected = decode_event(dumps(canonical), received_at=RECEIVED)
    assert decode_event(dumps(sent), received_at=RECEIVED) == expected
    assert decode_stored_row("ihc.recorded", 1, dumps(sent)) == expected
