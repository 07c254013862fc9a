"""Readable builders of wire-format events for tests: one function per event type."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson

from mbcjourney.events import ClinicalEvent, decode_event

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)


class PatientBuilder:
    """Builds one patient's events; ids are deterministic per (patient, sequence)."""

    def __init__(self, patient_id: str = "P-000001", recorded: str = "2026-11-30T00:00:00Z"):
        self.patient_id = patient_id
        self.recorded = recorded
        self._n = 0

    def raw(self, event_type: str, occurred: str | date, payload: dict[str, Any],
            *, recorded: str | None = None, event_id: str | None = None,
            version: int = 1) -> dict[str, Any]:
        self._n += 1
        return {
            "event_id": event_id or str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                   f"{self.patient_id}/{self._n}")),
            "event_type": event_type,
            "schema_version": version,
            "patient_id": self.patient_id,
            "occurred_at": str(occurred),
            "recorded_at": recorded or self.recorded,
            "source": {"system": "test", "reference": f"ref-{self._n}"},
            "payload": payload,
        }

    def event(self, event_type: str, occurred: str | date, payload: dict[str, Any],
              **kw: Any) -> ClinicalEvent:
        return decode_event(self.raw(event_type, occurred, payload, **kw), received_at=RECEIVED)

    # one helper per common fact -----------------------------------------------------

    def included(self, on: str, sites: tuple[str, ...] = ("liver",), birth_year: int = 1960,
                 **kw: Any) -> ClinicalEvent:
        return self.event("patient.included", on, {
            "birth_year": birth_year, "sex": "female", "centre": "C01", "consent_version": "v1",
            "presentation": "de_novo", "metastatic_sites": list(sites)}, **kw)

    def ihc(self, on: str, er: float = 90, pr: float = 50, her2: str = "0",
            ish: str = "not_done", **extra: Any) -> ClinicalEvent:
        kw = {k: extra.pop(k) for k in ("recorded", "event_id") if k in extra}
        return self.event("ihc.recorded", on, {
            "specimen_id": f"S-{self._n}", "specimen_site": "metastasis", "er_percent": er,
            "pr_percent": pr, "her2_ihc": her2, "her2_ish": ish, **extra}, **kw)

    def crisis(self, on: str, present: bool = True, **kw: Any) -> ClinicalEvent:
        return self.event("visceral_crisis.assessed", on, {"present": present}, **kw)

    def line(self, on: str, ref: str, *drugs: str, declared: int | None = None,
             **kw: Any) -> ClinicalEvent:
        payload: dict[str, Any] = {"line_ref": ref, "drugs": list(drugs)}
        if declared is not None:
            payload["declared_line_number"] = declared
        return self.event("line.started", on, payload, **kw)

    def modified(self, on: str, ref: str, added: tuple[str, ...] = (),
                 stopped: tuple[str, ...] = (), **kw: Any) -> ClinicalEvent:
        return self.event("line.modified", on, {"line_ref": ref, "drugs_added": list(added),
                                                "drugs_stopped": list(stopped)}, **kw)

    def ended(self, on: str, ref: str, reason: str = "progression", **kw: Any) -> ClinicalEvent:
        return self.event("line.ended", on, {"line_ref": ref, "reason": reason}, **kw)

    def imaging(self, on: str, response: str | None = "SD", modality: str = "CT",
                **kw: Any) -> ClinicalEvent:
        payload: dict[str, Any] = {"modality": modality}
        if response is not None:
            payload["recist_response"] = response
        return self.event("imaging.performed", on, payload, **kw)

    def progression(self, on: str, new_sites: tuple[str, ...] = (), **kw: Any) -> ClinicalEvent:
        return self.event("progression.documented", on,
                          {"basis": "radiological", "new_sites": list(new_sites)}, **kw)

    def biopsy(self, on: str, reason: str = "progression", **kw: Any) -> ClinicalEvent:
        return self.event("biopsy.performed", on, {"specimen_id": f"B-{self._n}",
                                                   "site": "liver", "reason": reason}, **kw)

    def death(self, on: str, cause: str = "disease", **kw: Any) -> ClinicalEvent:
        return self.event("death.recorded", on, {"cause": cause}, **kw)

    def lost(self, on: str, **kw: Any) -> ClinicalEvent:
        return self.event("followup.lost", on, {}, **kw)

    def withdrawn(self, on: str, scope: str = "stop_followup", **kw: Any) -> ClinicalEvent:
        return self.event("consent.withdrawn", on, {"scope": scope}, **kw)

    def retract(self, on: str, target: ClinicalEvent, **kw: Any) -> ClinicalEvent:
        return self.event("event.retracted", on, {"target_event_id": str(target.event_id),
                                                  "reason": "entered in error"}, **kw)


def to_jsonl(events: list[ClinicalEvent]) -> bytes:
    from mbcjourney.events import encode_event

    return b"".join(encode_event(e) + b"\n" for e in events)


def dumps(raw: dict[str, Any]) -> bytes:
    return orjson.dumps(raw)
