"""The service as an operator runs it (``journey serve``): tokens, audit trail, clean logs.

* a token is stored only as a hash (the database file never holds it);
* revoked and expired tokens are refused; over its rate a token gets 429 + Retry-After;
* every read of patient data leaves an audit record (``journey audit`` lists it),
  the audit table cannot be rewritten, and a read whose record cannot be written fails;
* the server's debug log holds no token, patient id or payload value.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa

from mbcjourney.processors.tokens import Scope
from tests.e2e.conftest import Journey
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.polling import eventually
from tests.support.service import TODAY, bearer, free_port, issue_token, running_service


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("security")
    cohort = simulated_cohort(tmp / "cohort.jsonl", patients=30, seed=5)
    return cohort, embedded_log(cohort, tmp / "study.db", received_at=TODAY)


def _copy(db: Path, tmp_path: Path) -> str:
    """A copy of the study database with its key store (the pair is the backup unit)."""
    target = tmp_path / "copy.db"
    target.write_bytes(db.read_bytes())
    keys = db.with_name(db.name + ".keys")
    target.with_name(target.name + ".keys").write_bytes(keys.read_bytes())
    return f"sqlite:///{target}"


def _patients(url: str, token: str) -> list[str]:
    answer = httpx.get(f"{url}/v1/patients", headers=bearer(token), params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    return [p["patient_id"] for p in answer.json()["patients"]]


def test_tokens_are_stored_hashed_and_refused_once_revoked_or_expired(
        study: tuple[Path, Path], tmp_path: Path, journey: Journey) -> None:
    db = _copy(study[1], tmp_path)
    created = journey("tokens", "create", "--name", "coordinator", "--scope", "patients:read",
                      "--centre", "C01", "--db", db)
    token = created.stdout.strip()
    assert token.startswith("mbcj_")
    assert "shown once" in created.stderr
    expired = issue_token(db, "last-year", [Scope.PATIENTS_READ], expires_on=date(2025, 12, 31))
    raw = Path(db.removeprefix("sqlite:///")).read_bytes()
    assert token.encode() not in raw
    assert expired.encode() not in raw
    assert token.split("_", 2)[2].encode() not in raw  # not even the secret part
    listed = journey("tokens", "list", "--db", db).stdout
    assert "coordinator" in listed
    assert "C01" in listed
    assert token not in listed

    with running_service(db) as url:
        assert httpx.get(f"{url}/v1/patients", headers=bearer(token)).status_code == 200
        assert httpx.get(f"{url}/v1/patients", headers=bearer(expired)).status_code == 401
        journey("tokens", "revoke", "coordinator", "--db", db)
        refused = httpx.get(f"{url}/v1/patients", headers=bearer(token))
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    again = journey("tokens", "revoke", "coordinator", "--db", db, check=False)
    assert again.returncode == 2
    assert "no unrevoked token" in again.stderr


def test_a_token_over_its_rate_waits(study: tuple[Path, Path], tmp_path: Path) -> None:
    db = _copy(study[1], tmp_path)
    token = issue_token(db, "busy", [Scope.PATIENTS_READ])
    other = issue_token(db, "calm", [Scope.PATIENTS_READ])
    with running_service(db, rate_limit="5/minute") as url:
        codes = [httpx.get(f"{url}/v1/patients", headers=bearer(token)).status_code
                 for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        limited = httpx.get(f"{url}/v1/patients", headers=bearer(token))
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert httpx.get(f"{url}/v1/patients", headers=bearer(other)).status_code == 200


def test_every_patient_read_is_audited_and_the_trail_cannot_be_rewritten(
        study: tuple[Path, Path], tmp_path: Path, journey: Journey) -> None:
    db = _copy(study[1], tmp_path)
    token = issue_token(db, "coordinator-all", [Scope.PATIENTS_READ])
    c01 = issue_token(db, "coordinator-c01", [Scope.PATIENTS_READ], centres=["C01"])
    with running_service(db) as url:
        ids = _patients(url, token)[:5]
        for patient_id in ids:
            assert httpx.get(f"{url}/v1/patients/{patient_id}",
                             headers=bearer(token)).status_code == 200
            assert httpx.get(f"{url}/v1/patients/{patient_id}/events",
                             headers=bearer(token)).status_code == 200
        refused = [p for p in ids if httpx.get(f"{url}/v1/patients/{p}",
                                               headers=bearer(c01)).status_code == 404]
    assert refused, "the first patients span more than C01"

    for patient_id in ids:
        listed = journey("audit", "--patient", patient_id, "--db", db).stdout.splitlines()
        routes = [line.split(",")[5] for line in listed[1:]]
        assert routes.count("/v1/patients/{patient_id}") >= 1
        assert routes.count("/v1/patients/{patient_id}/events") == 1
    denied = journey("audit", "--token", "coordinator-c01", "--db", db).stdout.splitlines()[1:]
    assert sorted(line.split(",")[7] for line in denied if ",404," in line) == sorted(refused)
    assert journey("audit", "--since", "2099-01-01", "--db", db).stdout.count("\n") == 1

    engine = sa.create_engine(db)
    try:
        for statement in ("UPDATE audit_log SET status = 200", "DELETE FROM audit_log"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_a_read_whose_audit_record_cannot_be_written_fails(
        study: tuple[Path, Path], tmp_path: Path) -> None:
    db = _copy(study[1], tmp_path)
    token = issue_token(db, "coordinator", [Scope.PATIENTS_READ])
    with running_service(db) as url:
        patient_id = _patients(url, token)[0]
        engine = sa.create_engine(db)
        try:
            with engine.begin() as conn:  # the audit store breaks (a full disk, a lost role)
                conn.execute(sa.text("CREATE TRIGGER broken BEFORE INSERT ON audit_log "
                                     "BEGIN SELECT RAISE(ABORT, 'disk full'); END"))
        finally:
            engine.dispose()
        answer = httpx.get(f"{url}/v1/patients/{patient_id}", headers=bearer(token))
    assert answer.status_code == 503
    assert patient_id not in answer.text
    assert answer.json()["error"] == "unavailable"


@pytest.fixture(params=[1, 2], ids=["1-process", "2-processes"])
def served(study: tuple[Path, Path], tmp_path: Path, request: pytest.FixtureRequest
           ) -> Iterator[tuple[str, str, Path, int]]:
    """``journey --log-level debug serve [--workers 2]`` as a subprocess; yields
    (url, db, its stderr, its processes)."""
    db = _copy(study[1], tmp_path)
    port = free_port()
    stderr = tmp_path / "serve.stderr"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "mbcjourney", "--log-level", "debug", "serve", "--db", db,
             "--port", str(port), "--workers", str(request.param)], stderr=err,
            stdout=subprocess.DEVNULL, env=os.environ.copy())
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert process.poll() is None, stderr.read_text()
            try:
                return httpx.get(f"{url}/livez").status_code == 200
            except httpx.TransportError:
                return False

        try:
            eventually(up, timeout=60, what="journey serve to answer")
            yield url, db, stderr, request.param
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_the_service_log_holds_no_token_patient_id_or_payload_value(
        served: tuple[str, str, Path, int], study: tuple[Path, Path]) -> None:
    url, db, stderr, processes = served
    token = issue_token(db, "everything", list(Scope))
    lines = study[0].read_bytes().splitlines()
    bad = [b'{"event_type": "death.recorded", "patient_id": "P-SECRET-1", "payload": '
           b'{"cause": "free text about the patient"}}', b"\xff\xfe not utf-8 P-SECRET-2"]
    posted = httpx.post(f"{url}/v1/events", headers={**bearer(token),
                        "Content-Type": "application/x-ndjson"},
                        content=b"\n".join([*lines[:50], *bad]))
    assert posted.status_code == 200
    assert posted.json()["rejected"] == 2
    ids = _patients(url, token)[:3]
    for patient_id in ids:
        for path in (f"/v1/patients/{patient_id}", f"/v1/patients/{patient_id}/events"):
            assert httpx.get(url + path, headers=bearer(token)).status_code == 200
    for path in ("/v1/overdue?centre=C01", "/v1/alerts?open=true", "/v1/exports/lines",
                 "/v1/dead-letters", "/metrics", "/v1/patients/NOBODY"):
        assert httpx.get(url + path, headers=bearer(token)).status_code in (200, 404)

    metrics = httpx.get(f"{url}/metrics", headers=bearer(token)).text
    if processes == 1:  # each process counts its own requests
        assert 'journey_events_total{outcome="rejected"' in metrics
        assert 'route="/v1/patients/{patient_id}",status="200"' in metrics
    log = stderr.read_text(errors="replace")
    records = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(r.get("event") == "http.request" for r in records)  # it does log requests
    regimens = {orjson.loads(line)["payload"].get("drugs", [None])[0] for line in lines[:50]
                if b'"line.started"' in line} - {None}
    secrets = [token, *ids, "P-SECRET-1", "P-SECRET-2", "free text", *regimens]
    assert regimens
    assert not [s for s in secrets if s in log]
    assert not [s for s in secrets if s in metrics]
