"""The service answers the same on both deployments, for the same cohort posted to each.

Embedded: ``journey serve --db sqlite:///...``.  Scale-out: ``journey serve --db
postgresql... --bootstrap ...`` publishing to Kafka, with a real ``journey
worker`` writing the PostgreSQL the service reads (rows and the SQL event log).
The same NDJSON batches are posted to each; once the worker has read the topic
to its end, every read route gives the same JSON on both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from mbcjourney.processors.kafkaio import end_offsets
from mbcjourney.processors.tokens import Scope
from tests.integration.test_worker_eventlog import DONE_TIMEOUT_S, Deployment, deployment
from tests.support.cohorts import simulated_cohort
from tests.support.live import Checkpoints, wait_until
from tests.support.service import bearer, issue_token, running_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
__all__ = ["deployment"]  # the fixture, shared with the worker's own equivalence test

BATCH = 2000
READS = ["/v1/patients?limit=1000", "/v1/overdue?as_of=2024-06-30",
         "/v1/overdue?as_of=2026-12-01&centre=C02", "/v1/alerts?as_of=2025-01-31",
         "/v1/exports/lines?format=json&cutoff=2024-03-31",
         "/v1/exports/patients?format=json&known_at=2023-12-31",
         "/v1/exports/findings?format=json"]


def _post(url: str, token: str, lines: list[bytes]) -> list[str]:
    outcomes = []
    for start in range(0, len(lines), BATCH):
        answer = httpx.post(f"{url}/v1/events", content=b"\n".join(lines[start:start + BATCH]),
                            headers={**bearer(token), "Content-Type": "application/x-ndjson"},
                            timeout=120)
        assert answer.status_code == 200, answer.text
        outcomes += [r["outcome"] for r in answer.json()["results"]]
    return outcomes


def _read(url: str, token: str, patients: list[str]) -> dict[str, Any]:
    paths = [*READS, *(f"/v1/patients/{p}" for p in patients),
             *(f"/v1/patients/{p}/events?known_at=2024-01-31" for p in patients)]
    answers = {}
    for path in paths:
        answer = httpx.get(url + path, headers=bearer(token), timeout=120)
        assert answer.status_code == 200, (path, answer.text)
        answers[path] = answer.json()
    return answers


def test_both_deployments_answer_alike(deployment: Deployment, tmp_path: Path) -> None:
    cohort = simulated_cohort(tmp_path / "cohort.jsonl", patients=120, seed=27)
    lines = [line for line in cohort.read_bytes().splitlines() if line.strip()]
    embedded = f"sqlite:///{tmp_path / 'embedded.db'}"
    tokens = {db: issue_token(db, "everything", list(Scope))
              for db in (embedded, deployment.db_url)}

    with running_service(embedded, rate_limit=None) as url:
        posted = _post(url, tokens[embedded], lines)
        patients = [p["patient_id"] for p in httpx.get(
            f"{url}/v1/patients?limit=8", headers=bearer(tokens[embedded])).json()["patients"]]
        expected = _read(url, tokens[embedded], patients)

    checkpoints = Checkpoints(deployment.db_url, deployment.topic)
    try:
        with deployment.worker("worker") as worker, running_service(
                deployment.db_url, rate_limit=None, bootstrap=deployment.bootstrap,
                topic=deployment.topic, dead_letter_topic=deployment.dead_letter_topic) as url:
            published = _post(url, tokens[deployment.db_url], lines)
            ends = end_offsets(deployment.bootstrap, deployment.topic)
            wait_until(lambda: checkpoints.reached(ends), timeout=DONE_TIMEOUT_S,
                       what=f"the worker at the end offsets {ends}", workers=[worker])
            got = _read(url, tokens[deployment.db_url], patients)
    finally:
        checkpoints.close()

    # at the door, the scale-out service judges birth years per request (the workers
    # judge the rest: docs/reliability.md); every other refusal is the embedded one's
    assert 0 < published.count("rejected") <= posted.count("rejected")
    assert posted.count("accepted") > 5000
    assert len(patients) == 8
    assert expected["/v1/patients?limit=1000"]["patients"]
    assert any(expected[f"/v1/patients/{p}"]["open_alerts"] for p in patients)
    for path, answer in expected.items():
        assert got[path] == answer, path
