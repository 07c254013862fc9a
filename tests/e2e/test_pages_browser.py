"""The coordinators' pages in a real Chromium (Debian's, driven by Playwright).

The service is the real app on a real uvicorn, over a 2,000-patient simulated
cohort; the browser signs in with a token, clicks the forms a coordinator
clicks, and reads what the pages show.  axe-core (vendored in ``vendor/``) is
injected on every page: no serious or critical violation.  Screenshots of the
worklist, a patient and the alerts are saved under ``.cache/screenshots/pages``.

Chromium is ``JOURNEY_CHROMIUM`` or ``/usr/bin/chromium`` (``infra/chromium/ensure.sh``
installs it; never ``playwright install``).  Without it the tests skip, and
under ``CI=true`` they fail.  Playwright's own API is used (not the plugin's
fixtures), so they run with or without ``-p no:playwright``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from mbcjourney.bootstrap import open_access
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.processors.tokens import Scope
from tests.fixtures.services import in_ci
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.service import TODAY, bearer, issue_token, running_service

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("JOURNEY_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SHOTS = Path(__file__).resolve().parents[2] / ".cache" / "screenshots" / "pages"
PATIENTS = 2000
AS_OF = TODAY.date().isoformat()



def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must not skip)", pytrace=False)
    pytest.skip(reason)


@dataclass
class Site:
    url: str
    db: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("browser")
    db = embedded_log(simulated_cohort(tmp / "cohort.jsonl", patients=PATIENTS, seed=11),
                      tmp / "study.db", received_at=TODAY)
    url = f"sqlite:///{db}"
    tokens = {"c01": issue_token(url, "coord-c01", [Scope.PATIENTS_READ, Scope.ALERTS_WRITE],
                                 centres=["C01"]),
              "reader": issue_token(url, "reader", [Scope.PATIENTS_READ]),
              "analyst": issue_token(url, "analyst", [Scope.EXPORTS_READ])}
    with running_service(url, rate_limit=None) as base:
        yield Site(base, url, tokens)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (run infra/chromium/ensure.sh)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, site: Site) -> Iterator[Any]:
    """A fresh browser context (no cookies) on a laptop-sized window; CSP bypassed only so
    that the test can inject axe-core (the pages themselves run no script)."""
    context = chromium.new_context(base_url=site.url, viewport={"width": 1366, "height": 900},
                                   bypass_csp=True)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, token: str) -> None:
    page.goto("/signin")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/signin" not in page.url, page.content()[:2000]


def no_serious_violations(page: Any) -> None:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations.map("
                          "v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))")
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page.url}: {bad}"


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    sys.stdout.write(f"screenshot: {path}\n")  # shown with -s, or in the captured output
    return path


def c01_ids(site: Site) -> set[str]:
    engine = EmbeddedEngine(site.db)
    try:
        return set(engine.store.patient_ids({"C01"}))
    finally:
        engine.close()


# --- the tests -----------------------------------------------------------------------------


def test_sign_in_then_the_worklist_is_journey_overdue_for_my_centre(page: Any, site: Site
                                                                    ) -> None:
    cli = subprocess.run([sys.executable, "-m", "mbcjourney", "--quiet", "overdue",
                          "--as-of", AS_OF, "--db", site.db, "--format", "json"],
                         capture_output=True, text=True, check=True, timeout=600)
    mine = c01_ids(site)
    expected = sorted((r["patient_id"], r["assessment"], r["due_date"], r["window_end"],
                       int(r["days_overdue"])) for r in json.loads(cli.stdout)
                      if r["patient_id"] in mine)
    assert expected, "the cohort has nothing overdue in C01"
    sign_in(page, site.tokens["c01"])
    page.goto("/worklist")
    rows = page.eval_on_selector_all("#worklist tbody tr[data-patient]", """rows => rows.map(r =>
        [r.dataset.patient, r.dataset.assessment, r.dataset.due, r.cells[6].innerText.trim(),
         parseInt(r.cells[7].innerText)])""")
    assert sorted(tuple(r) for r in rows) == expected
    days = [r[4] for r in rows]
    assert days == sorted(days, reverse=True)  # most overdue first
    counts = Counter(r[1] for r in expected)
    for kind in ("imaging", "bone_scan", "biopsy"):
        assert int(page.inner_text(f".counts .n[data-kind={kind}]")) == counts.get(kind, 0)
    no_serious_violations(page)
    shot(page, "worklist")
    page.get_by_label("Assessment", exact=True).select_option("imaging")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    kinds = page.eval_on_selector_all("#worklist tbody tr[data-patient]",
                                      "rows => rows.map(r => r.dataset.assessment)")
    assert kinds == ["imaging"] * counts["imaging"]


def _open_alert_rows(page: Any) -> list[dict[str, str]]:
    found: list[dict[str, str]] = page.eval_on_selector_all(
        "#alerts tbody tr[data-alert]", "rows => rows.map(r => ({id: r.dataset.alert, "
        "patient: r.cells[0].innerText.trim()}))")
    return found


def test_acknowledge_and_snooze_leave_the_open_list_and_are_audited(page: Any, site: Site
                                                                    ) -> None:
    sign_in(page, site.tokens["c01"])
    page.goto("/alerts")
    before = _open_alert_rows(page)
    assert len(before) >= 2
    no_serious_violations(page)
    shot(page, "alerts")
    acked, snoozed = before[0], before[1]
    page.locator(f"tr[data-alert='{acked['id']}']").get_by_role(
        "button", name="Acknowledge").click()
    page.wait_for_load_state()
    assert page.url.endswith("/alerts")
    row = page.locator(f"tr[data-alert='{snoozed['id']}']")
    row.get_by_label("Snooze until").fill("2026-12-31")
    row.get_by_role("button", name="Snooze").click()
    page.wait_for_load_state()
    after = {r["id"] for r in _open_alert_rows(page)}
    assert after == {r["id"] for r in before} - {acked["id"], snoozed["id"]}
    page.goto("/alerts?show=acknowledged")
    assert acked["id"] in {r["id"] for r in _open_alert_rows(page)}
    assert "acknowledged by coord-c01" in page.inner_text(f"tr[data-alert='{acked['id']}']")
    page.goto("/alerts?show=snoozed")
    assert "snoozed until 2026-12-31" in page.inner_text(f"tr[data-alert='{snoozed['id']}']")
    with open_access(site.db) as (_tokens, audit):
        posted = [(r.route, r.patient_ids, r.status) for r in audit.rows(token="coord-c01")
                  if r.method == "POST"]
    assert ("/alerts/{alert_id}/ack", acked["patient"], 200) in posted
    assert ("/alerts/{alert_id}/snooze", snoozed["patient"], 200) in posted
    # the API agrees: the acknowledged alert carries the coordinator's name
    api = httpx.get(f"{site.url}/v1/alerts", params={"centre": "C01", "open": "true"},
                    headers=bearer(site.tokens["c01"]), timeout=60).json()["alerts"]
    assert {a["alert_id"]: a["acknowledged_by"] for a in api}[acked["id"]] == "coord-c01"


def _expected_marks(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    marks = set()
    for e in events:
        kind, day, body = e["event_type"], e["occurred_at"][:10], e.get("payload") or {}
        if kind == "imaging.performed":
            marks.add(("bone_scan" if body.get("modality") == "bone_scan" else "imaging", day))
            if body.get("recist_response") == "PD":
                marks.add(("progression", day))
        elif kind == "progression.documented":
            marks.add(("progression", day))
        elif kind == "biopsy.performed":
            marks.add(("biopsy", day))
        elif kind == "death.recorded":
            marks.add(("death", day))
    return marks


def _plain_patient(site: Site) -> tuple[str, list[dict[str, Any]]]:
    """A C01 patient with progressions, biopsies and lines, whose history has no
    retraction, correction or finding (so its raw events are what is drawn)."""
    headers = bearer(site.tokens["c01"])
    for patient_id in sorted(c01_ids(site)):
        detail = httpx.get(f"{site.url}/v1/patients/{patient_id}", headers=headers,
                           timeout=60).json()
        if detail["findings"] or len(detail["lines"]) < 2:
            continue
        events = httpx.get(f"{site.url}/v1/patients/{patient_id}/events", headers=headers,
                           timeout=60).json()["events"]
        types = Counter(e["event_type"] for e in events)
        if types["event.retracted"] or types["progression.documented"] == 0 \
                or types["biopsy.performed"] < 2 or len({e["event_id"] for e in events}) \
                != len(events) or any(e.get("corrects") for e in events):
            continue
        return patient_id, events
    raise AssertionError("no plain C01 patient in the cohort")


def test_a_patient_page_draws_the_patients_events(page: Any, site: Site) -> None:
    patient_id, events = _plain_patient(site)
    sign_in(page, site.tokens["c01"])
    answer = page.goto(f"/patients/{patient_id}")
    assert answer.status == 200
    drawn = page.eval_on_selector_all("#timeline g.mark",
                                      "gs => gs.map(g => [g.dataset.kind, g.dataset.date])")
    assert {tuple(m) for m in drawn} == _expected_marks(events)
    bars = page.eval_on_selector_all("#timeline rect.bar", "rs => rs.map(r => "
                                     "[parseInt(r.dataset.line), r.dataset.start])")
    started = sorted(e["occurred_at"][:10] for e in events if e["event_type"] == "line.started")
    assert sorted(b[1] for b in bars) == started  # one bar per line, from its start
    assert sorted(b[0] for b in bars) == list(range(1, len(started) + 1))
    assert page.inner_text("#events caption").startswith(f"{len(events)} event")
    no_serious_violations(page)
    shot(page, "patient")
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, portrait
    shot(page, "patient-tablet")
    # the history as known on an earlier day: only what was recorded by then
    day = sorted(e["recorded_at"] for e in events)[len(events) // 2][:10]
    page.get_by_label("As known on", exact=True).fill(day)
    page.get_by_role("button", name="Show").click()
    page.wait_for_load_state()
    known = sum(e["recorded_at"][:10] <= day for e in events)
    assert page.inner_text("#events caption").startswith(f"{known} event")
    with open_access(site.db) as (_tokens, audit):
        views = [r for r in audit.rows(patient=patient_id, token="coord-c01")
                 if r.route == "/patients/{patient_id}"]
    assert [r.status for r in views] == [200, 200]


def test_a_c01_coordinator_is_refused_a_c02_patient(page: Any, site: Site) -> None:
    engine = EmbeddedEngine(site.db)
    try:
        c02 = engine.store.patient_ids({"C02"})[0]
    finally:
        engine.close()
    sign_in(page, site.tokens["c01"])
    answer = page.goto(f"/patients/{c02}")
    assert answer.status == 404
    assert page.inner_text("h1") == "Not found"
    assert c02 not in page.inner_text("main").replace(f"/patients/{c02}", "")
    no_serious_violations(page)


def test_sign_out_ends_the_session_on_the_server(page: Any, site: Site) -> None:
    sign_in(page, site.tokens["reader"])
    cookies = page.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert page.url.endswith("/signin")
    page.goto("/worklist")
    assert page.url.endswith("/signin")
    # the old cookie, replayed by hand, opens nothing either
    stale = {c["name"]: c["value"] for c in cookies}
    answer = httpx.get(f"{site.url}/worklist", cookies=stale)
    assert (answer.status_code, answer.headers["location"]) == (303, "/signin")
    no_serious_violations(page)


def test_a_form_posted_without_its_csrf_secret_is_refused(page: Any, site: Site) -> None:
    sign_in(page, site.tokens["c01"])
    page.goto("/alerts")
    first = _open_alert_rows(page)[0]
    row = page.locator(f"tr[data-alert='{first['id']}']")
    row.evaluate("r => r.querySelectorAll('input[name=csrf]').forEach(i => i.remove())")
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state()
    assert page.inner_text("h1") == "Not allowed"
    page.goto("/alerts")
    assert first["id"] in {r["id"] for r in _open_alert_rows(page)}  # nothing was done


def test_the_sign_in_and_analyst_pages_are_accessible(page: Any, site: Site) -> None:
    page.goto("/signin")
    no_serious_violations(page)
    page.get_by_label("Access token").fill("mbcj_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "unknown, expired or revoked" in page.inner_text("main")
    sign_in(page, site.tokens["analyst"])
    assert page.url.endswith("/analyst")
    no_serious_violations(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="patients.csv").click()
    header = Path(download.value.path()).read_text().splitlines()[0]
    assert header.startswith("patient_id,")
    page.goto("/analyst")
    page.keyboard.press("Tab")  # the skip link comes first, and shows itself on focus
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    box = page.locator("a.skip").bounding_box()
    assert box is not None
    assert (box["x"] >= 0, box["y"] >= 0) == (True, True)
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring
