"""Erasure through the HTTP service: admin scope, centre restrictions, and the patient gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mbcjourney.processors.tokens import Scope
from tests.e2e.conftest import Journey
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.service import TODAY, bearer, issue_token, running_service


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("erasure")
    cohort = simulated_cohort(tmp / "cohort.jsonl", patients=30, seed=4)
    db = f"sqlite:///{embedded_log(cohort, tmp / 'study.db', received_at=TODAY)}"
    tokens = {"admin": issue_token(db, "dpo", [Scope.ADMIN, Scope.PATIENTS_READ]),
              "reader": issue_token(db, "reader", [Scope.PATIENTS_READ]),
              "admin-c02": issue_token(db, "dpo-c02", [Scope.ADMIN, Scope.PATIENTS_READ],
                                       centres=["C02"])}
    with running_service(db, rate_limit=None) as url:
        yield url, db, tokens


def _patients(url: str, token: str) -> list[str]:
    answer = httpx.get(f"{url}/v1/patients", params={"limit": "500"}, headers=bearer(token),
                       timeout=60)
    assert answer.status_code == 200, answer.text
    return [p["patient_id"] for p in answer.json()["patients"]]


def test_an_admin_erases_a_patient_and_it_is_gone_from_every_read(
        api: tuple[str, str, dict[str, str]], journey: Journey, tmp_path: Path) -> None:
    url, db, tokens = api
    victim = _patients(url, tokens["admin"])[0]
    before = httpx.get(f"{url}/v1/patients/{victim}", headers=bearer(tokens["admin"]),
                       timeout=60)
    assert before.status_code == 200
    path = f"{url}/v1/patients/{victim}/erasure"
    body = {"reason": "consent withdrawn"}

    assert httpx.post(path, json=body, timeout=60).status_code == 401
    assert httpx.post(path, json=body, headers=bearer(tokens["reader"]),
                      timeout=60).status_code == 403
    bad = httpx.post(path, json={"reason": ""}, headers=bearer(tokens["admin"]), timeout=60)
    assert bad.status_code in (400, 422)
    assert "reason" in bad.text

    done = httpx.post(path, json=body, headers=bearer(tokens["admin"]), timeout=60)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["erased_by"] == "dpo"
    assert answer["keys_destroyed"] == 1
    assert answer["events_sealed"] > 0
    assert answer["rows_deleted"] > 0
    assert victim not in _patients(url, tokens["admin"])
    assert httpx.get(f"{url}/v1/patients/{victim}", headers=bearer(tokens["admin"]),
                     timeout=60).status_code == 404
    assert victim not in journey("export", "patients", "--db", db).stdout
    again = httpx.post(path, json=body, headers=bearer(tokens["admin"]), timeout=60)
    assert again.json()["newly_recorded"] is False


def test_a_centre_restricted_admin_cannot_erase_another_centres_patient(
        api: tuple[str, str, dict[str, str]]) -> None:
    url, _db, tokens = api
    others = [p for p in _patients(url, tokens["admin"])
              if p not in set(_patients(url, tokens["admin-c02"]))]
    assert others
    refused = httpx.post(f"{url}/v1/patients/{others[0]}/erasure",
                         json={"reason": "consent withdrawn"},
                         headers=bearer(tokens["admin-c02"]), timeout=60)
    assert refused.status_code == 404
    assert others[0] in _patients(url, tokens["admin"])
    unknown = httpx.post(f"{url}/v1/patients/P-NEVER-SEEN/erasure",
                         json={"reason": "consent withdrawn"},
                         headers=bearer(tokens["admin"]), timeout=60)
    assert unknown.status_code == 404
