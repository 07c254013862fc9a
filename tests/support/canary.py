"""A canary patient: events carrying strings found nowhere else, to look for in raw bytes."""

from __future__ import annotations

import orjson

from tests.support.builders import PatientBuilder

CANARY = "P-CANARY"
MARKS = [b"CANARY-REF-7f3a91", b"CANARY-SPEC-55e2c0", b"CANARY-BIOPSY-0d4b6e"]


def canary_lines() -> list[bytes]:
    p = PatientBuilder(CANARY)
    events = [
        p.raw("patient.included", "2021-03-14", {
            "birth_year": 1957, "sex": "female", "centre": "C01", "consent_version": "v1",
            "presentation": "de_novo", "metastatic_sites": ["liver", "bone"]}),
        p.raw("ihc.recorded", "2021-03-20", {
            "specimen_id": MARKS[1].decode(), "specimen_site": "metastasis", "er_percent": 80,
            "pr_percent": 30, "her2_ihc": "1+", "her2_ish": "not_done"}),
        p.raw("line.started", "2021-04-02", {"line_ref": "L1", "drugs": ["letrozole",
                                                                          "palbociclib"]}),
        p.raw("biopsy.performed", "2021-09-09", {"specimen_id": MARKS[2].decode(),
                                                 "site": "liver", "reason": "progression"}),
    ]
    events[0]["source"]["reference"] = MARKS[0].decode()
    bad = p.raw("ihc.recorded", "2021-05-01", {  # refused: dead-lettered with its bytes
        "specimen_id": MARKS[1].decode() + "-2", "specimen_site": "metastasis",
        "er_percent": 150, "pr_percent": 30, "her2_ihc": "1+", "her2_ish": "not_done"})
    return [orjson.dumps(e) for e in [*events, bad]]
