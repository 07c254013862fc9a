"""Issue 19 item 6: a NUL character (U+0000) in the input never costs a batch's dead letters.

PostgreSQL text cannot hold U+0000: a dead letter's reason or ids read from a line
holding one failed the insert of the whole batch's dead letters, with a traceback
printing row values.  Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.ingest import ingest_lines
from tests.support.builders import PatientBuilder

pytestmark = pytest.mark.integration

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)


def _lines() -> list[tuple[int, bytes]]:
    p = PatientBuilder("P-000001")
    included = p.raw("patient.included", "2024-01-02", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["bone"]})
    nul_key = p.raw("clinical_exam.recorded", "2024-02-01", {"ecog": 0, "x\u0000y": 2})
    nul_id = {**p.raw("clinical_exam.recorded", "2024-02-02", {"ecog": 0}),
              "event_id": "6f1d2c1e\u0000", "patient_id": "P-0\u00001"}
    return list(enumerate([json.dumps(included).encode(), json.dumps(nul_key).encode(),
                           json.dumps(nul_id).encode(), b"not json"], start=1))


def test_issue19_item6_dead_letters_of_lines_holding_nul_are_all_stored(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        log = SqlEventLog(engine)
        log.create()
        lines = _lines()
        summary = ingest_lines(lines, log, origin="nul.jsonl", received_at=RECEIVED)
        assert summary.read == 4
        assert summary.accepted + summary.rejected_total == 4
        letters = log.dead_letters()
        assert len(letters) == summary.rejected_total >= 3
        by_origin = {d.origin: d for d in letters}
        for number, raw in lines[1:]:
            assert by_origin[f"nul.jsonl:{number}"].original == raw  # the exact bytes
        assert all("\x00" not in d.reason for d in letters)
    finally:
        engine.dispose()


def test_database_errors_never_carry_row_values(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert engine.hide_parameters
    finally:
        engine.dispose()
