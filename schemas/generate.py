"""JSON Schema per event type and version, generated from the event models.

The committed files under ``schemas/v<N>/`` are the contract source systems code
against; a test fails when they drift from the models.  Regenerate with
``journey schemas export``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mbcjourney.events.catalogue import EVENT_CLASSES, LEGACY_EVENT_CLASSES


def default_directory() -> Path:
    return Path(__file__).resolve().parent


def schema_documents() -> dict[str, dict[str, Any]]:
    """Relative file name -> schema document, for every event type and version."""
    documents = {}
    for cls in (*EVENT_CLASSES, *LEGACY_EVENT_CLASSES):
        schema = cls.model_json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:mbc-journey:event:{cls.EVENT_TYPE}:v{cls.SCHEMA_VERSION}",
            **schema,
        }
        documents[f"v{cls.SCHEMA_VERSION}/{cls.EVENT_TYPE}.json"] = schema
    return documents


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    written = []
    for name, document in schema_documents().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written
