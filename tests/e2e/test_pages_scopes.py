"""The pages' scope matrix: every page route x (no session, each scope, wrong centre) -> status.

Read from the pages' own route table (each route's ``x-required-scope`` mark, as
the API's matrix reads the OpenAPI document), so a page added without a rule
fails here.  Also: CSRF on every form, the cookie's flags, a revoked token ending
its session, and the audit of page views.  Plain HTTP against a real uvicorn.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from mbcjourney.bootstrap import open_access
from mbcjourney.processors.tokens import Scope
from mbcjourney.service import pages
from mbcjourney.service.security import CENTRE_KEY, PUBLIC, SCOPE_KEY
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.pages import csrf_of, signed_in
from tests.support.service import TODAY, bearer, issue_token, running_service

QUERIES = {"/analyst/download": "?table=patients&format=csv"}


@dataclass(frozen=True)
class Page:
    method: str
    path: str
    scope: str
    centre_restricted: bool


def page_routes() -> list[Page]:
    found = []
    for route in pages.router.routes:
        assert isinstance(route, APIRoute)
        extra = route.openapi_extra or {}
        assert SCOPE_KEY in extra, f"{route.path} has no rule"
        for method in sorted(route.methods or ()):
            found.append(Page(method, route.path, extra[SCOPE_KEY], bool(extra[CENTRE_KEY])))
    return found


@dataclass
class Site:
    url: str
    db: str
    tokens: dict[str, str]
    ids: dict[str, dict[str, str]]

    def call(self, client: httpx.Client, page: Page, csrf: str | None, centre: str = "C01"
             ) -> httpx.Response:
        path = re.sub(r"\{(\w+)\}", lambda m: self.ids[centre][m.group(1)], page.path)
        path += QUERIES.get(page.path, "")
        if page.method == "GET":
            return client.get(path)
        data = {"until": "2026-12-31", "next": "/alerts"}
        if csrf is not None:
            data["csrf"] = csrf
        return client.post(path, data=data)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("pages")
    db = embedded_log(simulated_cohort(tmp / "cohort.jsonl", patients=40, seed=3),
                      tmp / "study.db", received_at=TODAY)
    url = f"sqlite:///{db}"
    tokens = {scope.value: issue_token(url, f"only-{scope.value}", [scope]) for scope in Scope}
    tokens["c01"] = issue_token(url, "coordinator-c01", list(Scope), centres=["C01"])
    with running_service(url, rate_limit=None) as base:
        ids = {}
        for centre in ("C01", "C02"):
            answer = httpx.get(f"{base}/v1/alerts", params={"centre": centre, "open": "true"},
                               headers=bearer(tokens["patients:read"]), timeout=60)
            alert = answer.json()["alerts"][0]
            ids[centre] = {"patient_id": alert["patient_id"], "alert_id": alert["alert_id"]}
        yield Site(base, url, tokens, ids)


def test_every_page_has_a_rule() -> None:
    rules = {(p.method, p.path): p.scope for p in page_routes()}
    assert {k for k, v in rules.items() if v == PUBLIC} == {
        ("GET", "/signin"), ("POST", "/signin"), ("POST", "/signout"), ("GET", "/")}
    assert set(rules.values()) == {PUBLIC, "patients:read", "alerts:write", "exports:read"}


def test_without_a_session_a_page_sends_to_sign_in_and_a_form_is_refused(site: Site) -> None:
    wrong = []
    for page in page_routes():
        with httpx.Client(base_url=site.url, timeout=60) as anonymous:
            got = site.call(anonymous, page, csrf="forged")
        if page.path == "/signin":
            expected = 200 if page.method == "GET" else 403  # no sign-in cookie: CSRF fails
        elif page.method == "GET":
            expected = 303
            if got.headers.get("location") != "/signin":
                wrong.append(f"{page.path}: sent to {got.headers.get('location')}")
        else:
            expected = 401
        if got.status_code != expected:
            wrong.append(f"{page.method} {page.path}: {got.status_code} != {expected}")
    assert not wrong


@pytest.mark.parametrize("scope", list(Scope), ids=lambda s: s.value)
def test_each_scope_opens_its_pages_only(site: Site, scope: Scope) -> None:
    wrong = []
    for page in page_routes():
        if page.path in ("/signin", "/signout"):
            continue
        with signed_in(site.url, site.tokens[scope.value]) as (client, csrf):
            got = site.call(client, page, csrf)
        ok = 303 if page.method == "POST" or page.path == "/" else 200
        expected = ok if page.scope in (PUBLIC, scope.value) else 403
        if got.status_code != expected:
            wrong.append(f"{page.method} {page.path}: {got.status_code} != {expected}")
    assert not wrong


def test_every_form_needs_its_csrf_secret(site: Site) -> None:
    with signed_in(site.url, site.tokens["c01"]) as (client, csrf):
        for page in page_routes():
            if page.method != "POST" or page.path == "/signin":
                continue
            for forged in (None, "x" * len(csrf)):
                assert site.call(client, page, forged).status_code == 403, page.path
        assert client.get("/worklist").status_code == 200  # refused forms did not sign out


def test_a_centre_token_finds_no_page_of_another_centre(site: Site) -> None:
    with signed_in(site.url, site.tokens["c01"]) as (client, csrf):
        _refused_elsewhere(site, client, csrf)


def _refused_elsewhere(site: Site, client: httpx.Client, csrf: str) -> None:
    c02 = site.ids["C02"]["patient_id"]
    wrong = []
    for page in page_routes():
        if page.path in ("/signin", "/signout"):
            continue
        got = site.call(client, page, csrf, centre="C02")
        names_resource = "{patient_id}" in page.path or "{alert_id}" in page.path
        expected = 404 if page.centre_restricted and names_resource else (
            303 if page.method == "POST" or page.path == "/" else 200)
        if got.status_code != expected:
            wrong.append(f"{page.method} {page.path}: {got.status_code} != {expected}")
        if page.path != "/analyst/download" and c02 in got.text:
            wrong.append(f"{page.path} shows the C02 patient")
    assert not wrong
    other = client.get(f"/patients/{c02}")
    unknown = client.get("/patients/NO-SUCH-PATIENT")
    assert other.status_code == unknown.status_code == 404
    assert other.text.replace(c02, "ID") == unknown.text.replace("NO-SUCH-PATIENT", "ID")


def test_cookie_flags_follow_the_scheme_the_client_saw(site: Site) -> None:
    for proto, secure in (("http", False), ("https", True)):
        with httpx.Client(base_url=site.url, headers={"X-Forwarded-Proto": proto}) as client:
            form = client.get("/signin")
            # sent by hand: a Secure cookie does not go back over the test's plain http
            secret = form.headers["set-cookie"].split(";")[0]
            assert ("secure" in form.headers["set-cookie"].lower()) is secure
            answer = client.post("/signin", headers={"Cookie": secret},
                                 data={"csrf": csrf_of(form.text), "token": site.tokens["c01"]})
        cookie = next(v for k, v in answer.headers.multi_items()
                      if k == "set-cookie" and v.startswith("journey_session="))
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert ("secure" in flags) is secure, cookie
        assert not any(f.startswith(("expires", "max-age")) for f in flags)


def test_a_revoked_token_ends_its_session_and_page_views_are_audited(site: Site) -> None:
    token = issue_token(site.db, "revoke-me", [Scope.PATIENTS_READ])
    patient_id = site.ids["C01"]["patient_id"]
    with signed_in(site.url, token) as (client, _csrf):
        assert client.get(f"/patients/{patient_id}").status_code == 200
        assert client.get("/patients/NO-SUCH-PATIENT").status_code == 404
        with open_access(site.db) as (tokens, audit):
            rows = audit.rows(token="revoke-me")
            assert tokens.revoke("revoke-me", now=TODAY)
        answer = client.get("/worklist")
        assert (answer.status_code, answer.headers["location"]) == (303, "/signin")
    seen = [(r.route, r.status, r.patient_ids) for r in rows if r.route.startswith("/patients")]
    assert seen == [("/patients/{patient_id}", 200, patient_id),
                    ("/patients/{patient_id}", 404, "NO-SUCH-PATIENT")]


def test_the_study_report_is_served_to_a_token_of_every_centre_only(site: Site) -> None:
    with signed_in(site.url, site.tokens["exports:read"]) as (client, _csrf):
        assert 'href="/analyst/report"' in client.get("/analyst").text
        page = client.get("/analyst/report")
        again = client.get("/analyst/report")  # the same log, the same day: the same report
    assert page.status_code == 200
    assert "Kaplan-Meier" in page.text
    assert 'src="data:image/png;base64,' in page.text  # self-contained
    assert again.text == page.text
    with signed_in(site.url, site.tokens["c01"]) as (client, _csrf):
        refused = client.get("/analyst/report")
    assert refused.status_code == 200
    assert "covers every centre" in refused.text
    assert "Kaplan-Meier" not in refused.text
    engine = sa.create_engine(site.db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT token_name, row_count FROM audit_log WHERE route = '/analyst/report'"
            )).all()
    finally:
        engine.dispose()
    assert ("only-exports:read", rows[0][1]) in rows
    assert rows[0][1] > 0
    assert all(name != "coordinator-c01" for name, _ in rows)


def test_a_date_out_of_the_studys_range_is_a_clear_400(site: Site) -> None:
    patient_id = site.ids["C01"]["patient_id"]
    with signed_in(site.url, site.tokens["c01"]) as (client, _csrf):
        for path in (f"/patients/{patient_id}?known_at=9999-12-31",
                     "/analyst/download?table=patients&format=csv&known_at=9999-12-31",
                     "/analyst/download?table=patients&format=csv&cutoff=0001-01-01"):
            answer = client.get(path)
            assert answer.status_code == 400, path
            assert "dates from" in answer.text
