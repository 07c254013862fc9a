"""The whole OpenAPI fuzzed in process: no input gives a 5xx or an answer it does not document.

Every operation of ``/openapi.json`` is called with generated valid and
invalid inputs by four callers: a token with every scope, one restricted to a
centre, no token, and a token the service never issued.  Every answer must be
documented: its status code, content type, headers and body schema
(schemathesis' checks), and no answer may be a server error.  Authorised
callers run every check schemathesis has, including that valid data is
accepted and invalid data refused; unauthorised ones must get 401 from every
route but the probes.

The service reads a small simulated cohort in a temporary SQLite database
under a fixed clock, and a share of the generated patient and alert ids are
swapped for real ones, so the reads and the alert actions answer with data.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext, CheckFunction, not_a_server_error
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case as AnyCase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mbcjourney.bootstrap import open_service
from mbcjourney.processors.tokens import Scope
from mbcjourney.service import Backend, ServiceConfig
from mbcjourney.service.body import NDJSON
from mbcjourney.service.security import PUBLIC, SCOPE_KEY
from tests.support.cohorts import embedded_log, simulated_cohort

RECEIVED = datetime(2026, 6, 30, 12, tzinfo=UTC)  # the cohort's events arrive by the cutoff
NOW = datetime(2026, 7, 1, 9, tzinfo=UTC)  # the service's fixed clock: "today" is 2026-07-01
CENTRE = "C01"

Case = AnyCase[Any]

# About 35 s: 13 operations, 5 callers, schemathesis' examples, coverage and fuzzing phases.
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Service:
    app: FastAPI
    secrets: dict[str, str]  # caller -> bearer token
    patient_ids: list[str]
    alert_ids: list[str]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("api-fuzz")
    cohort = simulated_cohort(folder / "cohort.jsonl", patients=30, seed=14)
    db = embedded_log(cohort, folder / "study.db", received_at=RECEIVED)
    config = ServiceConfig(db_url=f"sqlite:///{db}", rate_limit=None)
    with open_service(config, clock=lambda: NOW) as app:
        backend: Backend = app.state.backend
        _, every = backend.tokens.issue("fuzz-every-scope", list(Scope), now=NOW)
        _, centre = backend.tokens.issue("fuzz-centre", list(Scope), centres=[CENTRE], now=NOW)
        backend.sync()
        patient_ids = sorted(row.patient_id for row in backend.engine.patient_rows())
        alert_ids = [a.alert_id for a in backend.engine.alerts(NOW.date())]
        assert patient_ids, "the cohort must give the fuzzer patients to read"
        assert alert_ids, "the cohort must give the fuzzer alerts to act on"
        yield Service(app, {"every-scope": every, "centre": centre}, patient_ids, alert_ids)


def _openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, from a throwaway service on an empty database.

    Read at import because schemathesis makes one test item per operation at
    collection; its fixture-based loader (``schemathesis.pytest.from_fixture``)
    does not run under pytest 9.2 (it sets ``Node._nodeid``, gone from pytest).
    The cases are sent to the fixture's app (``app=`` of ``call_and_validate``).
    """
    with (tempfile.TemporaryDirectory() as folder,
          open_service(ServiceConfig(db_url=f"sqlite:///{folder}/empty.db"),
                       clock=lambda: NOW) as app):
        return app.openapi()


schema = schemathesis.openapi.from_dict(_openapi_document())
# The bearer header is each test's caller's (valid, missing, unknown, not bearer), never
# generated: a generated "negative" header would be overwritten by the caller's own.
schema.config.generation.update(with_security_parameters=False)
# NDJSON bodies are documented as text: send the generated string as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _bound(case: Case, service: Service) -> Case:
    """``case``, its schema sending to the fixture's app: the checks' own probes (the
    bearer scheme's ``ignored_auth`` re-sends without and with a wrong token) go there."""
    case.operation.schema.app = service.app
    return case


def _with_real_ids(case: Case, service: Service) -> None:
    """Swap about half the generated valid ids for real ones (chosen from the generated id),
    and give half of those snoozes a day the service takes (from today on)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    for name, known in (("patient_id", service.patient_ids), ("alert_id", service.alert_ids)):
        generated = (case.path_parameters or {}).get(name)
        if not isinstance(generated, str):
            continue
        pick = zlib.crc32(generated.encode())
        if pick % 2 == 0:
            case.path_parameters[name] = known[(pick >> 2) % len(known)]
            if isinstance(case.body, dict) and "until" in case.body and pick % 4 == 0:
                case.body["until"] = (NOW.date() + timedelta(days=pick % 90)).isoformat()


# Schema-valid input the service still refuses (400, naming the field) by a rule no static
# schema can state: a cursor it never gave; a snooze day before today (the clock's).
BEYOND_SCHEMA = {"GET /v1/patients": "cursor", "POST /v1/alerts/{alert_id}/snooze": "until"}


def _refused_beyond_schema(case: Case, response: Response) -> bool:
    field = BEYOND_SCHEMA.get(case.operation.label)
    if response.status_code != 400 or field is None:
        return False
    problem = response.json()
    return isinstance(problem, dict) and problem.get("field") == field


@schema.parametrize()
@pytest.mark.parametrize("caller", ["every-scope", "centre"])
@FUZZ
def test_authorised_callers_get_documented_answers(case: Case, service: Service,
                                                   caller: str) -> None:
    """Every check schemathesis has, valid data accepted and invalid data refused included."""
    _with_real_ids(_bound(case, service), service)
    headers = {"Authorization": f"Bearer {service.secrets[caller]}"}
    response = case.call(app=service.app, headers=headers)
    excluded: list[CheckFunction] = []
    if _refused_beyond_schema(case, response):
        excluded.append(positive_data_acceptance)
    if case.media_type == NDJSON:  # any text is NDJSON: each line is answered, even "{}"
        excluded.append(negative_data_rejection)
    case.validate_response(response, headers=headers, excluded_checks=excluded,
                           transport_kwargs={"app": service.app, "headers": headers})


UNAUTHORISED = {
    "no token": {},
    "unknown token": {"Authorization": "Bearer mbcj_0123456789abcdef_" + "x" * 43},
    "not bearer": {"Authorization": "Basic Zm9vOmJhcg=="},
}


def _refused_unless_public(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Without a valid token, every route but the probes answers 401 (to its own method:
    the router answers another one 405 before any route runs)."""
    public = case.operation.definition.raw.get(SCOPE_KEY) == PUBLIC
    own_method = response.request.method == case.operation.method.upper()
    if own_method and not public and response.status_code != 401:
        raise Failure(operation=case.operation.label, title="not refused",
                      message=f"{response.status_code} without a valid token")
    return True


@schema.parametrize()
@pytest.mark.parametrize("caller", list(UNAUTHORISED))
@FUZZ
def test_unauthorised_callers_are_refused_as_documented(case: Case, service: Service,
                                                        caller: str) -> None:
    """The conformance checks and 401 (the data checks assume a caller that may act)."""
    checks: list[CheckFunction] = [
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_headers_conformance, response_schema_conformance, _refused_unless_public]
    _bound(case, service).call_and_validate(app=service.app, headers=UNAUTHORISED[caller],
                                            checks=checks)
