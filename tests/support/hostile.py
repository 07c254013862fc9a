"""A hostile-input corpus: lines a careless or malicious source system might send.

Each line must be either accepted or dead-lettered with a contract reason, with
the same verdict on every path (``tests/integration/test_admission_paths.py``).
The corpus is made of

* named cases, one per defect class of issue #19 (:func:`named_cases`), and
* mutations of valid events (:func:`mutations`): a seeded fuzzer that deletes,
  retypes, repeats and bloats fields, so each run of the suite sees the same lines.

``python -m tests.support.hostile tests/corpus/hostile.jsonl`` writes the corpus
file that is committed (and checked to be what this module makes).
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson

from tests.support.builders import PatientBuilder, dumps

SEED = 19
MUTATIONS = 600


def _inclusion(p: PatientBuilder, on: str, birth_year: int = 1950) -> dict[str, Any]:
    return p.raw("patient.included", on, {
        "birth_year": birth_year, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["bone", "liver"]})


def _valid_journey(pid: str) -> list[dict[str, Any]]:
    p = PatientBuilder(pid)
    return [
        _inclusion(p, "2024-01-10"),
        p.raw("ihc.recorded", "2024-01-05", {
            "specimen_id": "S-1", "specimen_site": "metastasis", "er_percent": 90,
            "pr_percent": 40, "her2_ihc": "1+", "her2_ish": "not_done"}),
        p.raw("line.started", "2024-01-15", {"line_ref": "L1",
                                              "drugs": ["letrozole", "palbociclib"]}),
        p.raw("imaging.performed", "2024-04-10", {"modality": "CT", "recist_response": "SD"}),
        p.raw("lab.recorded", "2024-04-11", {"test": "CA 15-3", "value": 31.5, "unit": "U/mL"}),
        p.raw("questionnaire.recorded", "2024-04-12", {
            "instrument": "EQ-5D", "items": {"mobility": 1, "pain": 2}}),
    ]


def named_cases() -> list[bytes]:
    """One or more lines per defect class, in an order that exercises the rules."""
    lines: list[bytes] = []
    for n in range(1, 4):
        lines += [dumps(e) for e in _valid_journey(f"P-H{n:04d}")]
    p = PatientBuilder("P-H0001")
    # a fact before birth, with the inclusion already known (refused everywhere)
    lines.append(dumps(p.raw("death.recorded", "1933-05-01", {"cause": "unknown"},
                             event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, "P-H0001/death")))))
    # a fact before birth arriving before the inclusion: stored, left out by projections
    q = PatientBuilder("P-H0100")
    lines.append(dumps(q.raw("death.recorded", "1933-05-01", {"cause": "unknown"})))
    lines.append(dumps(_inclusion(q, "2024-02-01")))
    # an inclusion dated before its own birth year
    lines.append(dumps(_inclusion(PatientBuilder("P-H0101"), "1940-01-01", birth_year=1950)))
    # recorded_at that overflows in UTC; far in the future; before 1900
    for recorded in ("9999-12-31T23:00:00-05:00", "2090-01-01T00:00:00Z",
                     "1850-01-01T00:00:00Z"):
        lines.append(dumps(p.raw("clinical_exam.recorded", "2024-05-01", {"ecog": 1},
                                 recorded=recorded)))
    # non-finite numbers
    lab = p.raw("lab.recorded", "2024-05-02", {"test": "CEA", "value": 1.0, "unit": "ng/mL"})
    text = dumps(lab).decode()
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        lines.append(text.replace('"value":1.0', f'"value":{literal}').encode())
    quest = p.raw("questionnaire.recorded", "2024-05-03", {"instrument": "Q", "items": {"a": 1}})
    lines.append(dumps(quest).decode().replace('"a":1', '"a":NaN').encode())
    # numeric strings and numbers as times
    lines.append(dumps(p.raw("clinical_exam.recorded", "20240115", {"ecog": 1})))
    r = p.raw("clinical_exam.recorded", "2024-05-04", {"ecog": 1})
    r["recorded_at"] = 1700000000
    lines.append(dumps(r))
    r = p.raw("clinical_exam.recorded", "2024-05-04", {"ecog": 1})
    r["recorded_at"] = "1700000000"
    lines.append(dumps(r))
    # a repeated key, at the top level and inside the payload
    exam = dumps(p.raw("clinical_exam.recorded", "2024-05-05", {"ecog": 1})).decode()
    lines.append(exam.replace('"payload":{', '"payload":{"ecog":4,').encode())
    lines.append(exam.replace('{"event_id"', '{"patient_id":"P-H0003","event_id"', 1).encode())
    # upper-case event id, then the same id (lower case) with other content: a conflict
    same = p.raw("clinical_exam.recorded", "2024-05-06", {"ecog": 1})
    upper = dict(same, event_id=same["event_id"].upper())
    lines.append(dumps(upper))
    lines.append(dumps(dict(same, payload={"ecog": 2})))
    lines.append(dumps(same))  # a duplicate
    # free text in keys: never echoed
    lines.append(dumps(p.raw("questionnaire.recorded", "2024-05-07", {
        "instrument": "Q", "items": {"I feel very low since my husband left": "x" * 10}})))
    lines.append(dumps(p.raw("clinical_exam.recorded", "2024-05-07", {
        "ecog": 1, "Mrs Smith says": 1})))
    # a NUL character in a key and in a value
    lines.append(exam.replace('"ecog":1', '"ec\\u0000og":1').encode())
    lines.append(dumps(p.raw("lab.recorded", "2024-05-08", {
        "test": "CA\u000015-3", "value": 1.0, "unit": "U/mL"})))
    # the HER2 v0 upcaster's worst case, and a valid v0 event
    v0 = p.raw("ihc.recorded", "2024-05-09", {
        "specimen_id": "S-9", "specimen_site": "metastasis", "er_percent": 90,
        "pr_percent": 40, "her2": "2+" + " " * 200_000 + "x"}, version=0)
    lines.append(dumps(v0))
    lines.append(dumps(p.raw("ihc.recorded", "2024-05-10", {
        "specimen_id": "S-10", "specimen_site": "metastasis", "er_percent": 90,
        "pr_percent": 40, "her2": "2+ FISH neg"}, version=0)))
    # over the size limit; deep nesting; not JSON; not an object; empty object
    lines.append(dumps(p.raw("lab.recorded", "2024-05-11", {
        "test": "x" * 300_000, "value": 1.0, "unit": "U"})))
    lines.append(b'{"a":' * 300 + b"1" + b"}" * 300)
    lines += [b"{not json", b"[1,2,3]", b"{}", b'"just a string"', b"\xff\xfe garbage"]
    # an integer beyond 64 bits where recorded_at must be filled in (found by the fuzzer)
    big = p.raw("clinical_exam.recorded", "2024-05-12", {"ecog": 1})
    del big["recorded_at"]
    lines.append(dumps(big).replace(b'"ecog":1', b'"ecog":99999999999999999999999'))
    # CSV formula text in a drug name (accepted as an unknown drug; escaped on export)
    lines.append(dumps(PatientBuilder("P-H0002").raw("line.modified", "2024-06-01", {
        "line_ref": "L1", "drugs_added": ['=HYPERLINK("http://x")'], "drugs_stopped": []})))
    return lines


def _mutate(rng: random.Random, event: dict[str, Any]) -> dict[str, Any] | bytes:
    """One random mutation of a valid event (a dict, or raw bytes when not JSON-able)."""
    event = orjson.loads(orjson.dumps(event))
    target = event if rng.random() < 0.4 else event["payload"]
    keys = list(target)
    choice = rng.randrange(9)
    key = rng.choice(keys) if keys else "x"
    if choice == 0 and keys:
        del target[key]
    elif choice == 1:
        target[key] = rng.choice([None, True, 0, -1, 1e308, "", "x" * 70, [], {}, [1], "2+"])
    elif choice == 2:
        target[rng.choice(["extra", "ER %", "note", "Ünïcødé", "a" * 100])] = rng.choice(
            [1, "free text", None])
    elif choice == 3:
        # a reused id stays within the patient: across patients, see docs/reliability.md
        reused = str(uuid.uuid5(uuid.NAMESPACE_URL, event["patient_id"]))
        event["event_id"] = rng.choice(["", "not-a-uuid", reused, event["event_id"].upper()])
    elif choice == 4:
        event["occurred_at"] = rng.choice(["2024-13-01", "2024-02-30", "1899-12-31",
                                           "2101-01-01", "2024-01-01T25:00", "2024",
                                           "2024-01-01T10:00:00+14:00", "yesterday"])
    elif choice == 5:
        event["recorded_at"] = rng.choice(["2024-01-01", "2024-01-01T00:00:00",
                                           "2024-01-01T00:00:00+25:00", None, 0])
    elif choice == 6:
        event["schema_version"] = rng.choice([0, 2, "1", 1.0, -1, None])
    elif choice == 7:
        event["event_type"] = rng.choice(["patient.Included", "", "unknown.type", 1])
    else:
        text = orjson.dumps(event)
        cut = rng.randrange(1, len(text))
        return text[:cut]
    return event


def mutations(count: int = MUTATIONS, seed: int = SEED) -> list[bytes]:
    rng = random.Random(seed)
    valid = [e for n in range(4, 10) for e in _valid_journey(f"P-M{n:04d}")]
    lines: list[bytes] = []
    for _ in range(count):
        mutated = _mutate(rng, rng.choice(valid))
        lines.append(mutated if isinstance(mutated, bytes) else dumps(mutated))
    return lines


def corpus() -> list[bytes]:
    return named_cases() + mutations()


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in corpus()) + b"\n")
    print(f"{out}: {len(corpus())} lines")  # noqa: T201
