"""The feature spec: which built-in and declared features a table holds (TOML).

Example::

    builtin = ["age", "group", "ecog", "liver", "brain", "line_number"]

    [[feature]]
    name = "pik3ca"
    from = "biomarker.recorded"
    where = { marker = "PIK3CA" }
    value = "result"
    window_days = 3650

Every mistake is a :class:`SpecError` naming the file, the line and the key
(``spec.toml line 9, [[feature]] 1, key 'value': ...``): an unknown built-in is an
error, never a silent column of zeros.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

import orjson

from mbcjourney.events.errors import ConfigurationError
from mbcjourney.projections.features import (
    BUILTIN_COLUMNS,
    KEY_COLUMNS,
    LABEL_COLUMNS,
    OBSERVATION_CLASSES,
    DeclaredFeature,
    FeatureSpec,
)

MAX_WINDOW_DAYS = 36_500  # a century: any longer window is a typo
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FEATURE_KEYS = ("name", "from", "where", "value", "window_days")


class SpecError(ConfigurationError):
    """A feature spec that cannot be used: where (line, key) and why."""


def payload_fields(event_type: str) -> dict[str, Any]:
    """The payload fields of ``event_type``'s model (name -> pydantic field info)."""
    payload = OBSERVATION_CLASSES[event_type].model_fields["payload"].annotation
    fields: dict[str, Any] = payload.model_fields  # type: ignore[union-attr]
    return fields


class _Lines:
    """Where keys sit in the TOML text (tomllib gives values, not positions)."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?")

    def __init__(self, text: str) -> None:
        # (line number, table name, occurrence of [[table]], key) for every "key =" line
        self.keys: list[tuple[int, str, int, str]] = []
        self.lines = text.splitlines()
        table, seen = "", {"": 0}
        count: dict[str, int] = {}
        for number, line in enumerate(self.lines, start=1):
            header = self._HEADER.match(line)
            if header:
                table = header.group(1)
                count[table] = count.get(table, 0) + 1
                seen[table] = count[table]
                continue
            key = re.match(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=", line)
            if key:
                self.keys.append((number, table, seen.get(table, 0), key.group(1).strip('"')))

    def of(self, key: str, table: str = "", occurrence: int = 0) -> int | None:
        for number, t, n, k in self.keys:
            if k == key and t == table and (occurrence == 0 or n == occurrence):
                return number
        return None

    def header(self, table: str, occurrence: int) -> int | None:
        n = 0
        for number, line in enumerate(self.lines, start=1):
            match = self._HEADER.match(line)
            if match and match.group(1) == table:
                n += 1
                if n == occurrence:
                    return number
        return None

    def text_after(self, start: int | None, needle: str) -> int | None:
        """The first line at or after ``start`` holding ``needle`` (an array element)."""
        if start is None:
            return None
        for number in range(start, len(self.lines) + 1):
            if needle in self.lines[number - 1]:
                return number
        return start


def _fail(source: str, line: int | None, where: str, reason: str) -> SpecError:
    at = f" line {line}" if line is not None else ""
    return SpecError(f"{source}{at}, {where}: {reason}")


def parse_spec(text: str, source: str = "spec") -> FeatureSpec:
    """The :class:`FeatureSpec` of TOML ``text``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    where = _Lines(text)
    for key in data:
        if key not in ("builtin", "feature"):
            raise _fail(source, where.of(key), f"key {key!r}",
                        "unknown key (expected 'builtin' and [[feature]] tables)")
    builtin_line = where.of("builtin")
    raw_builtin = data.get("builtin", list(BUILTIN_COLUMNS))
    if not isinstance(raw_builtin, list) or not all(isinstance(b, str) for b in raw_builtin):
        raise _fail(source, builtin_line, "key 'builtin'", "must be a list of feature names")
    for name in raw_builtin:
        if name not in BUILTIN_COLUMNS:
            raise _fail(source, where.text_after(builtin_line, f'"{name}"'), "key 'builtin'",
                        f"unknown builtin feature {name!r} (known: {', '.join(BUILTIN_COLUMNS)})")
    if len(set(raw_builtin)) != len(raw_builtin):
        raise _fail(source, builtin_line, "key 'builtin'", "a feature is named twice")
    raw_features = data.get("feature", [])
    if not isinstance(raw_features, list):
        raise _fail(source, where.of("feature"), "key 'feature'",
                    "declare features as [[feature]] tables")
    taken = set(KEY_COLUMNS) | set(LABEL_COLUMNS)
    taken |= {c for name in raw_builtin for c in BUILTIN_COLUMNS[name]}
    declared = []
    for index, raw in enumerate(raw_features, start=1):
        declared.append(_declared(raw, index, where, source, taken))
        taken.update(declared[-1].columns)
    return FeatureSpec(tuple(raw_builtin), tuple(declared))


def _declared(raw: dict[str, Any], index: int, lines: _Lines, source: str, taken: set[str]
              ) -> DeclaredFeature:
    def fail(key: str, reason: str) -> SpecError:
        line = lines.of(key, "feature", index) if key in raw else lines.header("feature", index)
        return _fail(source, line, f"[[feature]] {index}, key {key!r}", reason)

    for key in raw:
        if key not in _FEATURE_KEYS:
            raise fail(key, f"unknown key (expected {', '.join(_FEATURE_KEYS)})")
    for key in ("name", "from", "value", "window_days"):
        if key not in raw:
            raise fail(key, "required")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", "must be lower-case letters, digits and _ (starting with a letter)")
    if name in taken or f"{name}_missing" in taken:
        raise fail("name", f"{name!r} is already a column of the table")
    event_type = raw["from"]
    if not isinstance(event_type, str) or event_type not in OBSERVATION_CLASSES:
        raise fail("from", f"unknown event type (one of {', '.join(sorted(OBSERVATION_CLASSES))})")
    fields = payload_fields(event_type)
    value = raw["value"]
    if not isinstance(value, str) or value not in fields:
        raise fail("value", f"{event_type} has no payload field {value!r} "
                            f"(fields: {', '.join(fields)})")
    window = raw["window_days"]
    if isinstance(window, bool) or not isinstance(window, int) or not (
            0 <= window <= MAX_WINDOW_DAYS):
        raise fail("window_days", f"must be a whole number of days from 0 to {MAX_WINDOW_DAYS}")
    conditions = raw.get("where", {})
    if not isinstance(conditions, dict):
        raise fail("where", "must be an inline table, e.g. where = { marker = \"PIK3CA\" }")
    pairs: list[tuple[str, str | int | float | bool]] = []
    for field_name, wanted in conditions.items():
        if field_name not in fields:
            raise fail("where", f"{event_type} has no payload field {field_name!r}")
        if not isinstance(wanted, str | int | float | bool):
            raise fail("where", f"{field_name!r} must equal a text, number or true/false")
        pairs.append((field_name, wanted))
    return DeclaredFeature(name, event_type, value, window, tuple(sorted(pairs)))


def load_spec(path: Path) -> FeatureSpec:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from None
    return parse_spec(text, str(path))


def spec_document(spec: FeatureSpec) -> dict[str, Any]:
    """The spec as plain data (what a model artefact records)."""
    return {"builtin": list(spec.builtin),
            "feature": [{"name": d.name, "from": d.event_type, "where": dict(d.where),
                         "value": d.value, "window_days": d.window_days}
                        for d in spec.declared]}


def spec_from_document(document: dict[str, Any]) -> FeatureSpec:
    declared = tuple(DeclaredFeature(f["name"], f["from"], f["value"], f["window_days"],
                                     tuple(sorted(f["where"].items())))
                     for f in document["feature"])
    return FeatureSpec(tuple(document["builtin"]), declared)


def spec_hash(spec: FeatureSpec) -> str:
    """SHA-256 of the spec's canonical JSON: the same features, the same hash."""
    return hashlib.sha256(orjson.dumps(spec_document(spec), option=orjson.OPT_SORT_KEYS)
                          ).hexdigest()
