"""POST /v1/events is ``journey ingest`` over HTTP: the same log, dead letters and exports.

A simulated cohort with the hostile corpus mixed in is posted as NDJSON batches
by 8 concurrent clients to a real server, and ingested from the same file with
``journey ingest``.  Each client carries whole groups of lines that share a
patient or an event id, in file order (as a source system sends one patient's
facts in order); which of two such lines comes first is the only order the
outcome depends on.  Posting everything again changes nothing.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from mbcjourney.bootstrap import open_engine
from mbcjourney.processors.eventlog import events_table
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.processors.tokens import Scope
from tests.e2e.conftest import Journey
from tests.support.cohorts import simulated_cohort
from tests.support.hostile import corpus
from tests.support.service import bearer, issue_token, running_service

CLIENTS = 8
BATCH_LINES = 400


def _groups(lines: list[bytes]) -> list[list[bytes]]:
    """The lines split into CLIENTS lists; lines sharing a patient or event id stay together."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys: list[str] = []
    for line in lines:
        try:
            data: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            data = None
        ids = [f"{name}={data[name]}" for name in ("patient_id", "event_id")
               if isinstance(data, dict) and isinstance(data.get(name), str)]
        if not ids:
            ids = ["none"]
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
        keys.append(ids[0])
    clients: list[list[bytes]] = [[] for _ in range(CLIENTS)]
    slots: dict[str, int] = {}
    for key, line in zip(keys, lines, strict=True):
        root = find(key)
        clients[slots.setdefault(root, len(slots) % CLIENTS)].append(line)
    return clients


def _post_all(url: str, token: str, lines: list[bytes]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    with httpx.Client(base_url=url, headers=bearer(token), timeout=120) as client:
        for start in range(0, len(lines), BATCH_LINES):
            answer = client.post("/v1/events", content=b"\n".join(
                lines[start:start + BATCH_LINES]) + b"\n",
                headers={"Content-Type": "application/x-ndjson"})
            assert answer.status_code == 200, answer.text
            outcomes.update(item["outcome"] for item in answer.json()["results"])
    return outcomes


def _post_concurrently(url: str, token: str, groups: list[list[bytes]]) -> Counter[str]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return sum(pool.map(lambda g: _post_all(url, token, g), groups), Counter())


def _without_arrival(body: str) -> str:
    data = orjson.loads(body)
    data.pop("recorded_at", None)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def _state(db: str) -> tuple[set[tuple[str, ...]], Counter[str], list[Any], list[Any], list[Any]]:
    with open_engine(db) as engine:
        with engine.engine.connect() as conn:
            t = events_table
            # an event sent without recorded_at is stamped on arrival: compare the rest
            log = {(*map(str, row[:3]), _without_arrival(
                (engine.log.open_body(row[1], row[3]) or b"").decode()))
                for row in conn.execute(
                    select(t.c.event_id, t.c.patient_id, t.c.event_type, t.c.body))}
        letters = Counter(d.reason for d in engine.log.dead_letters())
        return (log, letters, engine.patient_rows(), engine.line_rows(), engine.finding_rows())


@pytest.mark.slow
def test_http_ingest_equals_journey_ingest_and_posting_twice_changes_nothing(
        tmp_path: Path, journey: Journey) -> None:
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=150, seed=11)
    with cohort.open("rb") as stream:
        lines = [raw for _, raw in numbered_lines(stream)]
    lines += [line.replace(b"\n", b" ") for line in corpus()]
    lines = [line for line in lines if line.strip()]
    source = tmp_path / "all.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    via_cli = f"sqlite:///{tmp_path / 'cli.db'}"
    ingested = journey("ingest", str(source), "--db", via_cli, check=False)
    assert ingested.returncode == 1, ingested.stderr  # 1: done, with lines dead-lettered

    via_http = f"sqlite:///{tmp_path / 'http.db'}"
    token = issue_token(via_http, "source-system", [Scope.EVENTS_WRITE])
    groups = _groups(lines)
    assert sum(map(len, groups)) == len(lines)
    assert all(groups)
    with running_service(via_http, clock=lambda: datetime.now(UTC), rate_limit=None) as url:
        first = _post_concurrently(url, token, groups)
        after_first = _state(via_http)
        again = _post_concurrently(url, token, groups)
    expected = _state(via_cli)

    log, letters, patients, lines_rows, findings = after_first
    assert log == expected[0]  # every event id, with the very content stored
    assert letters == expected[1]  # every dead letter, by reason
    assert (patients, lines_rows, findings) == expected[2:]  # identical exports
    assert len(log) > 8000
    assert sum(letters.values()) > 300
    assert first["accepted"] == len(log)
    assert first["rejected"] == sum(letters.values())
    # posting twice changes nothing: every event a duplicate, every refusal the same
    assert again == Counter({"duplicate": first["accepted"] + first["duplicate"],
                             "rejected": first["rejected"]})
    assert _state(via_http) == after_first
