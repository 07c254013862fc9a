"""The scope matrix: every route x (no token, bad token, each scope, wrong centre) -> status.

Generated from the app's own route table, through the OpenAPI document FastAPI
builds from it: each operation's rule is its ``x-required-scope`` mark, so a
route added without a rule fails here, and a rule that is published but not
enforced fails too.  Requests go to a real uvicorn server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from mbcjourney.bootstrap import open_service
from mbcjourney.processors.tokens import Scope
from mbcjourney.service import ServiceConfig, pages, routes
from mbcjourney.service.page_auth import PAGE_KEY
from mbcjourney.service.security import BEARER_SCHEME, CENTRE_KEY, PUBLIC, SCOPE_KEY
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.service import TODAY, bearer, fixed_clock, issue_token, serving

DOC_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}


class Route:
    """One operation of the OpenAPI document: method, path template and its rule."""

    def __init__(self, method: str, path: str, operation: dict[str, Any]) -> None:
        self.method, self.path, self.operation = method.upper(), path, operation

    def rule(self) -> tuple[str, bool]:
        assert SCOPE_KEY in self.operation, f"{self.method} {self.path} has no rule"
        return self.operation[SCOPE_KEY], bool(self.operation.get(CENTRE_KEY))


class Matrix:
    def __init__(self, app: FastAPI, url: str, tokens: dict[str, str], line: bytes,
                 ids: dict[str, dict[str, str]]) -> None:
        self.app, self.url, self.tokens, self.line, self.ids = app, url, tokens, line, ids

    def call(self, route: Route, token: str | None, centre: str = "C01") -> httpx.Response:
        """One request on ``route`` for a resource of ``centre``, with ``token``."""
        method = route.method
        ids = self.ids[centre]
        if route.path.endswith("/erasure"):  # a patient of its own: the others stay readable
            ids = {**ids, "patient_id": ids["erasable"]}
        path = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], route.path)
        headers = bearer(token) if token is not None else {}
        content: bytes | None = None
        if path.endswith("/erasure"):
            headers["Content-Type"] = "application/json"
            content = b'{"reason": "consent withdrawn"}'
        elif path == "/v1/events":
            headers["Content-Type"] = "application/x-ndjson"
            content = self.line
        elif path.endswith("/snooze"):
            headers["Content-Type"] = "application/json"
            content = b'{"until": "2026-12-31"}'
        return httpx.request(method, self.url + path, headers=headers, content=content,
                             timeout=60)

    def routes(self) -> list[Route]:
        paths: dict[str, dict[str, Any]] = self.app.openapi()["paths"]
        return [Route(method, path, op) for path, ops in paths.items()
                for method, op in ops.items()]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    tmp = tmp_path_factory.mktemp("scopes")
    cohort = simulated_cohort(tmp / "cohort.jsonl", patients=40, seed=3)
    db = embedded_log(cohort, tmp / "study.db", received_at=TODAY)
    url = f"sqlite:///{db}"
    tokens = {scope.value: issue_token(url, f"only-{scope.value}", [scope]) for scope in Scope}
    tokens["c01"] = issue_token(url, "coordinator-c01", list(Scope), centres=["C01"])
    with open_service(ServiceConfig(url, rate_limit=None), clock=fixed_clock()) as app, \
            serving(app) as base:
        ids = {centre: _resource_ids(base, tokens, centre) for centre in ("C01", "C02")}
        yield Matrix(app, base, tokens, Path(cohort).read_bytes().split(b"\n")[0], ids)


def _resource_ids(base: str, tokens: dict[str, str], centre: str) -> dict[str, str]:
    """A patient with an alert, of ``centre``, and that alert (found through the API)."""
    answer = httpx.get(f"{base}/v1/alerts", params={"centre": centre, "as_of": "2026-12-01"},
                       headers=bearer(tokens[Scope.PATIENTS_READ.value]), timeout=60)
    assert answer.status_code == 200, answer.text
    alerts = answer.json()["alerts"]
    assert alerts, f"the cohort has no alert in {centre}"
    listed = httpx.get(f"{base}/v1/patients", params={"centre": centre, "limit": 1000},
                       headers=bearer(tokens[Scope.PATIENTS_READ.value]), timeout=60)
    erasable = [p["patient_id"] for p in listed.json()["patients"]
                if p["patient_id"] != alerts[0]["patient_id"]]
    return {"patient_id": alerts[0]["patient_id"], "alert_id": alerts[0]["alert_id"],
            "table": "patients", "erasable": erasable[-1]}


def _rule(route: Route) -> tuple[str, bool]:
    return route.rule()


def test_every_route_has_a_rule_and_only_docs_are_outside_the_table(matrix: Matrix) -> None:
    documented = {r.path for r in matrix.routes()}
    # The pages (HTML for browsers) are left out of the document on purpose; their own
    # matrix is tests/e2e/test_pages_scopes.py, over the pages' route table.
    served = {getattr(r, "path", None) for r in matrix.app.routes} - {None}
    assert served - documented == {*DOC_ROUTES, "/static"}  # the app's own, the pages' CSS
    page_routes = [r for r in pages.router.routes if isinstance(r, APIRoute)]
    assert len(page_routes) == len(pages.router.routes)
    assert not documented & {r.path for r in page_routes}
    assert all(r.openapi_extra and r.openapi_extra[PAGE_KEY] for r in page_routes)
    for path in DOC_ROUTES - {"/docs/oauth2-redirect"}:  # public documents, no patient data
        assert httpx.get(matrix.url + path).status_code == 200
    rules = {r.path: _rule(r)[0] for r in matrix.routes()}
    # no route hidden from the document (include_in_schema=False would hide it from here)
    api_routes = [*routes.router.routes, *(r for r in matrix.app.routes if isinstance(r, APIRoute))]
    assert len(matrix.routes()) == len(api_routes)
    assert {p for p, s in rules.items() if s == PUBLIC} == {"/livez", "/readyz"}
    assert set(rules.values()) == {PUBLIC, *(s.value for s in Scope)}
    # the bearer scheme is declared, and named by exactly the routes that need a token
    document = matrix.app.openapi()
    assert document["components"]["securitySchemes"][BEARER_SCHEME]["scheme"] == "bearer"
    for route in matrix.routes():
        wanted: list[dict[str, list[str]]] = [] if _rule(route)[0] == PUBLIC else [
            {BEARER_SCHEME: []}]
        assert route.operation.get("security") == wanted, f"{route.method} {route.path}"


@pytest.mark.parametrize("credential", ["none", "bad", "revoked-shape"])
def test_without_a_valid_token_only_the_probes_answer(matrix: Matrix, credential: str) -> None:
    token = {"none": None, "bad": "not-a-token",
             "revoked-shape": "mbcj_0123456789abcdef_" + "x" * 43}[credential]
    wrong = []
    for route in matrix.routes():
        scope, _ = _rule(route)
        got = matrix.call(route, token).status_code
        expected = 200 if scope == PUBLIC else 401
        if got != expected:
            wrong.append(f"{route.path}: {got} != {expected}")
    assert not wrong


@pytest.mark.parametrize("scope", list(Scope), ids=lambda s: s.value)
def test_each_scope_opens_its_routes_only(matrix: Matrix, scope: Scope) -> None:
    wrong = []
    for route in matrix.routes():
        rule, _ = _rule(route)
        got = matrix.call(route, matrix.tokens[scope.value]).status_code
        expected = 200 if rule in (PUBLIC, scope.value) else 403
        if got != expected:
            wrong.append(f"{route.path}: {got} != {expected}")
    assert not wrong


def test_a_centre_restricted_token_finds_nothing_of_another_centre(matrix: Matrix) -> None:
    wrong = []
    c02 = matrix.ids["C02"]["patient_id"]
    for route in matrix.routes():
        _, restricted = _rule(route)
        answer = matrix.call(route, matrix.tokens["c01"], centre="C02")
        names_resource = "{patient_id}" in route.path or "{alert_id}" in route.path
        expected = 404 if restricted and names_resource else 200
        if answer.status_code != expected:
            wrong.append(f"{route.path}: {answer.status_code} != {expected}")
        if restricted and answer.status_code == 200 and c02 in answer.text:
            wrong.append(f"{route.path}: shows the C02 patient")
    assert not wrong
    # and the 404 is the very answer an unknown id gets (no existence leak)
    other = httpx.get(f"{matrix.url}/v1/patients/{c02}", headers=bearer(matrix.tokens["c01"]))
    unknown = httpx.get(f"{matrix.url}/v1/patients/NO-SUCH-PATIENT",
                        headers=bearer(matrix.tokens["c01"]))
    assert (other.status_code, other.json()) == (unknown.status_code, unknown.json())
