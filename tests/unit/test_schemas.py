"""The committed JSON Schemas are the contract: they must match the models."""

from __future__ import annotations

import json

import jsonschema
import pytest

from mbcjourney.schemas.generate import default_directory, render, schema_documents
from tests.support.builders import PatientBuilder


def test_committed_schemas_match_the_models() -> None:
    directory = default_directory()
    documents = schema_documents()
    committed = {p.relative_to(directory).as_posix() for p in directory.glob("v*/*.json")}
    assert committed == set(documents), "run `journey schemas export` and commit the result"
    for name, document in documents.items():
        on_disk = (directory / name).read_text(encoding="utf-8")
        assert on_disk == render(document), f"{name} drifted: run `journey schemas export`"


def test_schema_accepts_a_valid_event_and_refuses_a_bad_one() -> None:
    schema = json.loads((default_directory() / "v1" / "ihc.recorded.json").read_text())
    raw = PatientBuilder().raw("ihc.recorded", "2026-01-15", {
        "specimen_id": "S1", "specimen_site": "metastasis", "er_percent": 90,
        "pr_percent": 40, "her2_ihc": "1+", "her2_ish": "not_done"})
    jsonschema.validate(raw, schema)
    raw["payload"]["er_percent"] = 150
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, schema)
