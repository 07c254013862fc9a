"""``journey fhir import``: a Bulk Data export or Bundles in, events through admission.

Reading: PATH is a Bulk Data export folder (its ``manifest.json``, else every
``*.ndjson`` in it, plus ``*.json`` Bundles), one ``.ndjson`` file or one Bundle
``.json`` file.  Each resource is validated with the pinned ``fhir.resources`` R4B
model of its type; then :mod:`.fhir_map` turns it into events.  The events are
wire-format JSON lines handed to the one admission path (``journey ingest``'s
:func:`~mbcjourney.processors.ingest.ingest_lines`, or ``journey publish``'s),
which validates, deduplicates and dead-letters them like any other input.

Corrections: a resource whose current version states other events than the
log holds for it (same ``Type/id``), or whose status is ``entered-in-error``, or
that the manifest's ``deleted`` list names, gets an ``event.retracted`` for each
event it no longer states; its id is derived from the target's, so a re-import
retracts nothing twice.

A resource that maps to nothing is counted by reason and kept, bytes and reason,
in the dead-letter store, as a data-quality finding.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.events import ClinicalEvent
from mbcjourney.events.catalogue import EventRetracted
from mbcjourney.events.errors import InvalidEvent
from mbcjourney.interop.fhir_map import (
    SOURCE_SYSTEM,
    Json,
    Mapping,
    Resource,
    Unmapped,
    map_resources,
    version_of,
)
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.ingest import IngestSummary
from mbcjourney.processors.publisher import Producer, PublishSummary, publish_lines
from mbcjourney.processors.sealing import Cipher

_RETRACTION_NS = uuid.UUID("0e6f4a0c-55f5-4bb8-9f0b-7f7a3d6cbb21")

StoredLookup = Callable[[Iterable[str] | None], Iterator[tuple[str, list[ClinicalEvent]]]]
"""The log's histories of these patients (None: every patient), e.g. ``SqlEventLog.histories``."""


@dataclass(frozen=True)
class Deletion:
    """An entry of a Bulk Data ``deleted`` file: ``Type/id`` removed at the source."""

    key: str
    origin: str


@dataclass
class Read:
    resources: list[Resource] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)


def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "$"
    return f"{where}: {error['msg']}"


_UNCHECKED = "\x00unchecked"  # a verdict not computed yet (validate where read)


def model_verdict(data: Json) -> str | None:
    """Why the R4B model of ``data``'s type refuses it, or None when it accepts it."""
    kind = str(data["resourceType"])
    try:
        model = _model(kind)
    except (ValueError, KeyError):
        return f"unsupported resource type {kind[:40]}"
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return f"invalid R4B {kind}: {_first_error(exc)}"
    return None


def validated(data: Any, origin: str, raw: bytes, out: Read,
              verdict: str | None = _UNCHECKED) -> None:
    """Validate one resource with its R4B model (unless ``verdict`` was reached in a helper
    process); a Bundle's entries one by one."""
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        out.unmapped.append(Unmapped("?", None, "not a FHIR resource (no resourceType)",
                                     origin, raw))
        return
    kind = data["resourceType"]
    if kind == "Bundle":
        for index, entry in enumerate(data.get("entry") or []):
            request = entry.get("request") if isinstance(entry, dict) else None
            if isinstance(request, dict) and request.get("method") == "DELETE":
                out.deletions.append(Deletion(str(request.get("url", "")), f"{origin}#{index}"))
                continue
            resource = entry.get("resource") if isinstance(entry, dict) else None
            validated(resource, f"{origin}#{index}", orjson.dumps(resource), out)
        return
    rid = data.get("id") if isinstance(data.get("id"), str) else None
    reason = model_verdict(data) if verdict == _UNCHECKED else verdict
    if reason is not None:
        out.unmapped.append(Unmapped(kind[:40], rid, reason, origin, raw))
        return
    if rid is None:
        out.unmapped.append(Unmapped(kind, None, f"{kind} without id", origin, raw))
        return
    out.resources.append(Resource(kind, rid, version_of(data), data, origin, raw))


def _verdicts(lines: list[bytes]) -> list[str | None]:
    """A helper process's share: each NDJSON line's model verdict (Bundles left unchecked)."""
    verdicts: list[str | None] = []
    for line in lines:
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            verdicts.append(_UNCHECKED)
            continue
        if (not isinstance(data, dict) or not isinstance(data.get("resourceType"), str)
                or data["resourceType"] == "Bundle"):
            verdicts.append(_UNCHECKED)
        else:
            verdicts.append(model_verdict(data))
    return verdicts


def _ndjson_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    with path.open("rb") as stream:
        for number, line in enumerate(stream, start=1):
            line = line.strip()
            if line:
                yield f"{path.name}:{number}", line


def _one(origin: str, line: bytes, out: Read, verdict: str | None) -> None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        out.unmapped.append(Unmapped("?", None, "line is not JSON", origin, line))
        return
    validated(data, origin, line, out, verdict)


VALIDATE_BATCH = 2000  # NDJSON lines per helper task
PARALLEL_FROM_BYTES = 16 << 20  # below this, starting helper processes costs more than it saves


def _read_lines(items: Iterable[tuple[str, bytes]], out: Read, workers: int) -> None:
    """Validate NDJSON lines in order: here, or the model checks in ``workers`` processes
    (the R4B models' validation is nearly all of an import's time)."""
    if workers <= 0:
        for origin, line in items:
            _one(origin, line, out, _UNCHECKED)
        return
    from collections import deque
    from concurrent.futures import Future
    from itertools import islice

    from mbcjourney.processors.bulk import process_pool

    pool = process_pool(workers)
    pending: deque[tuple[list[tuple[str, bytes]], Future[list[str | None]]]] = deque()

    def drain(keep: int) -> None:
        while len(pending) > keep:
            batch, future = pending.popleft()
            for (origin, line), verdict in zip(batch, future.result(), strict=True):
                _one(origin, line, out, verdict)

    try:
        iterator = iter(items)
        while batch := list(islice(iterator, VALIDATE_BATCH)):
            pending.append((batch, pool.submit(_verdicts, [line for _, line in batch])))
            drain(4 * workers)
        drain(0)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _bundle(path: Path, out: Read) -> None:
    raw = path.read_bytes()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        out.unmapped.append(Unmapped("Bundle", None, "Bundle file is not JSON", path.name, raw))
        return
    validated(data, path.name, raw, out)


def _manifest_files(folder: Path, manifest: Json, key: str) -> list[Path]:
    files = []
    for item in manifest.get(key) or []:
        url = str(item.get("url", "")) if isinstance(item, dict) else ""
        files.append(folder / url.rstrip("/").rsplit("/", 1)[-1])
    return files


def read_path(path: Path, workers: int | None = None) -> Read:
    """Every resource under PATH, validated, and every deletion a manifest lists.

    ``workers`` helper processes check NDJSON lines against the models (default: one
    per CPU for inputs over 16 MiB, none below)."""
    out = Read()
    ndjson: list[Path] = []
    bundles: list[Path] = []
    if path.is_dir():
        manifest_path = path / "manifest.json"
        if manifest_path.exists():
            manifest = orjson.loads(manifest_path.read_bytes())
            ndjson += _manifest_files(path, manifest, "output")
            ndjson += _manifest_files(path, manifest, "deleted")
        else:
            ndjson += sorted(path.glob("*.ndjson"))
        bundles += [f for f in sorted(path.glob("*.json")) if f.name != "manifest.json"]
    elif path.suffix == ".ndjson":
        ndjson.append(path)
    else:
        bundles.append(path)
    if workers is None:
        size = sum(f.stat().st_size for f in ndjson if f.exists())
        workers = (os.cpu_count() or 1) if size >= PARALLEL_FROM_BYTES else 0
    _read_lines((item for f in ndjson for item in _ndjson_lines(f)), out, workers)
    for file in bundles:
        _bundle(file, out)
    return out


@dataclass
class Prepared:
    """What an import sends to admission, and what it could not map."""

    lines: list[bytes]
    read: Read
    mapping: Mapping
    retractions: int

    @property
    def unmapped(self) -> list[Unmapped]:
        return self.read.unmapped + self.mapping.unmapped

    def unmapped_by_reason(self) -> list[tuple[str, int]]:
        counts = Counter(u.reason for u in self.unmapped)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _lineage(event: ClinicalEvent) -> str | None:
    if event.source.system != SOURCE_SYSTEM or event.source.reference is None:
        return None
    return event.source.reference.rsplit("/_history/", 1)[0]


def _retraction(target: ClinicalEvent, reason: str, recorded_at: str) -> Json:
    return {
        "event_id": str(uuid.uuid5(_RETRACTION_NS, str(target.event_id))),
        "event_type": "event.retracted", "schema_version": 1,
        "patient_id": target.patient_id, "occurred_at": target.occurred_at.isoformat(),
        "recorded_at": recorded_at,
        "source": {"system": SOURCE_SYSTEM, "reference": target.source.reference},
        "payload": {"target_event_id": str(target.event_id), "reason": reason},
    }


def prepare_import(path: Path, received_at: datetime, stored: StoredLookup | None
                   ) -> Prepared:
    """Read, validate and map PATH; retract what the log holds that the input supersedes."""
    read = read_path(path)
    mapping = map_resources(read.resources, received_at)
    events = list(mapping.events)
    retractions = 0
    if stored is not None:
        withdrawn = dict(mapping.withdrawn)
        withdrawn.update({d.key: "deleted at the source" for d in read.deletions})
        patients: set[str] | None = set(mapping.patients_of.values())
        if read.deletions:
            patients = None  # a deletion names no patient: look through the whole log
        now = received_at.isoformat()
        for _, history in stored(patients):
            for event in history:
                if isinstance(event, EventRetracted):
                    continue
                lineage = _lineage(event)
                if lineage is None:
                    continue
                target = str(event.event_id)
                if lineage in withdrawn:
                    events.append(_retraction(event, f"FHIR: {withdrawn[lineage]}", now))
                    retractions += 1
                elif lineage in mapping.lineages and target not in mapping.lineages[lineage]:
                    events.append(_retraction(event, "FHIR: superseded by a newer version", now))
                    retractions += 1
    lines = [orjson.dumps(event) for event in events]
    return Prepared(lines, read, mapping, retractions)


def import_into(engine: EmbeddedEngine, path: Path, *, received_at: datetime,
                on_batch: Callable[[int], None] | None = None) -> tuple[Prepared, IngestSummary]:
    """``journey fhir import --db``: map PATH, admit its events into the embedded log
    (``journey ingest``'s path), dead-letter what could not be mapped, project."""
    prepared = prepare_import(path, received_at, engine.log.histories)
    engine.log.dead_letter([
        DeadLetter.of(u.raw, InvalidEvent.single(
            f"{u.resource_type}/{u.resource_id}" if u.resource_id else u.resource_type, u.reason),
                      f"fhir:{u.origin}", received_at)
        for u in prepared.unmapped])
    summary = engine.ingest(enumerate(prepared.lines, start=1), origin=f"fhir:{path.name}",
                            received_at=received_at, on_batch=on_batch)
    engine.catch_up()
    return prepared, summary


def publish_import(producer: Producer, path: Path, *, received_at: datetime,
                   topic: str, dead_letter_topic: str, cipher: Cipher | None = None
                   ) -> tuple[Prepared, PublishSummary]:
    """``journey fhir import --bootstrap``: map PATH and publish its events through
    ``journey publish``'s admission.  No log to read: versions are compared within the
    input only, and unmapped resources are counted, not stored."""
    prepared = prepare_import(path, received_at, None)
    summary = publish_lines(enumerate(prepared.lines, start=1), producer,
                            origin=f"fhir:{path.name}", received_at=received_at, topic=topic,
                            dead_letter_topic=dead_letter_topic, cipher=cipher)
    return prepared, summary
