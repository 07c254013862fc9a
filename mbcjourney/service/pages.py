"""The coordinators' pages: sign-in, the overdue worklist, a patient's journey, alerts.

Rendered on the server from Jinja2 templates (``templates/``, autoescaped) and
one stylesheet (``static/``); no script is needed.  The layering is the JSON
API's: a page is signed in and authorised (:mod:`.page_auth`), calls the same
:class:`~.backend.Backend` methods as its ``/v1`` twin, appends the same audit
record (:func:`~.routes.audited`), and answers HTML.  A patient of another
centre is a 404, as in the API (and that denied read is audited, as there).
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi import Path as PathPart
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mbcjourney.engine import AlertRow
from mbcjourney.events.alerts import Assessment
from mbcjourney.events.limits import EARLIEST_DATE, LATEST_DATE
from mbcjourney.processors.tokens import Scope
from mbcjourney.projections import View
from mbcjourney.projections.views import end_of_day
from mbcjourney.service import timeline
from mbcjourney.service.page_auth import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    PageError,
    SignInFirst,
    Viewer,
    current,
    form_of,
    page_rule,
    secure,
    viewer_of,
)
from mbcjourney.service.routes import audited, export_answer
from mbcjourney.service.security import backend_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter()

GROUP_LABELS = {"1": "Group 1 (HR+/HER2−)", "2": "Group 2 (HER2+)",
                "3": "Group 3 (triple negative)", "unknown": "Group unknown"}
KIND_LABELS = {Assessment.IMAGING.value: "Tumour imaging", Assessment.BONE_SCAN.value: "Bone scan",
               Assessment.BIOPSY.value: "Biopsy after progression"}
SHOWS = {"open": "Open, not yet acknowledged", "acknowledged": "Acknowledged, still open",
         "snoozed": "Snoozed", "resolved": "Resolved", "all": "All"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
}


def install(app: FastAPI) -> None:
    """Add the pages, their stylesheet and their refusal pages to ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(PageError)
    async def refused(request: Request, exc: PageError) -> Response:
        return render(request, "error.html", {"status": exc.status, "message": exc.message},
                      status=exc.status)

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, _exc: SignInFirst) -> Response:
        if request.method == "GET":
            return RedirectResponse("/signin", status_code=303)
        return render(request, "error.html", {"status": 401, "message":
                      "You are not signed in (or your session has ended). Sign in again."},
                      status=401)


def render(request: Request, name: str, context: dict[str, Any], *, status: int = 200
           ) -> HTMLResponse:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    page = templates.TemplateResponse(request, name, {
        "viewer": viewer, "csrf": viewer.session.csrf if viewer else None,
        "Scope": Scope, "today": backend_of(request).today(), **context}, status_code=status)
    page.headers.update(_HEADERS)
    return page


def _local(path: str | None, default: str) -> str:
    """Where to go back after a form: only a path of this site (no open redirect)."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return default


def _day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise PageError(400, f"{field}: expected a date like 2026-12-01.") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:  # as the API and the CLI (events/limits.py)
        raise PageError(400, f"{field}: dates from {EARLIEST_DATE} to {LATEST_DATE}.")
    return day


Text = Annotated[str | None, Query(max_length=64)]

# --- signing in and out --------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse, **page_rule(None))
def signin_form(request: Request) -> Response:
    """The sign-in form; its CSRF secret is set in a short cookie (double submit)."""
    if current(request) is not None:
        return RedirectResponse("/worklist", status_code=303)
    return _signin_page(request, None, 200)


def _signin_page(request: Request, message: str | None, status: int) -> Response:
    secret = secrets.token_urlsafe(32)
    page = render(request, "signin.html", {"signin_csrf": secret, "message": message},
                  status=status)
    page.set_cookie(SIGNIN_COOKIE, secret, max_age=3600, path="/signin", httponly=True,
                    samesite="strict", secure=secure(request))
    return page


@router.post("/signin", response_class=HTMLResponse, **page_rule(None))
def signin(request: Request, form: Annotated[dict[str, str], Depends(form_of)]) -> Response:
    """A usable token opens a session; the cookie carries only the session's random id."""
    opened = backend_of(request).sign_in(form.get("token", "").strip())
    if opened is None:
        return _signin_page(request, "This token is unknown, expired or revoked.", 401)
    session_id, _session, _token = opened
    answer = RedirectResponse("/", status_code=303)  # the worklist, or the analyst page
    # A browser-session cookie (no Expires): the server holds the expiry (``session``), so
    # a browser whose clock is wrong can neither stretch nor cut it.
    answer.set_cookie(SESSION_COOKIE, session_id, path="/", httponly=True, samesite="strict",
                      secure=secure(request))
    answer.delete_cookie(SIGNIN_COOKIE, path="/signin", httponly=True, samesite="strict",
                         secure=secure(request))
    return answer


@router.post("/signout", **page_rule(None))  # any session (form_of finds it, or 401)
def signout(request: Request, _form: Annotated[dict[str, str], Depends(form_of)]) -> Response:
    """End the session on the server; the cookie is cleared too."""
    backend_of(request).sign_out(viewer_of(request).session_id)
    answer = RedirectResponse("/signin", status_code=303)
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                         secure=secure(request))
    return answer


@router.get("/", **page_rule(None))
def home(request: Request) -> Response:
    viewer = current(request)
    if viewer is None:
        return RedirectResponse("/signin", status_code=303)
    return RedirectResponse("/worklist" if viewer.can(Scope.PATIENTS_READ) else "/analyst",
                            status_code=303)


# --- the worklist ---------------------------------------------------------------------------


@router.get("/worklist", response_class=HTMLResponse,
            **page_rule(Scope.PATIENTS_READ, centre_restricted=True))
def worklist(request: Request, kind: Text = None, centre: Text = None, group: Text = None
             ) -> Response:
    """Overdue assessments of my centres today, most overdue first (``journey overdue``'s rows)."""
    backend, token = backend_of(request), viewer_of(request).token
    today = backend.today()
    rows = backend.overdue(token, today, centre or None)
    roster = backend.roster(token, centre or None)
    if group:
        rows = [(due, late) for due, late in rows if roster.get(due.patient_id, ("",))[0] == group]
    counts = Counter(due.assessment.value for due, _ in rows)
    if kind:
        rows = [(due, late) for due, late in rows if due.assessment.value == kind]
    rows.sort(key=lambda r: (-r[1], r[0].patient_id, r[0].assessment.value))
    audited(request, patient_ids=sorted({due.patient_id for due, _ in rows}), row_count=len(rows))
    shown = [{"due": due, "late": late, "group": roster.get(due.patient_id, ("", None))[0],
              "centre": roster.get(due.patient_id, ("", None))[1]} for due, late in rows]
    return render(request, "worklist.html", {
        "rows": shown, "counts": counts, "kinds": KIND_LABELS, "groups": GROUP_LABELS,
        "centres": backend.centres(token),
        "chosen": {"kind": kind or "", "centre": centre or "", "group": group or ""}})


# --- a patient ------------------------------------------------------------------------------


@router.get("/patients/{patient_id}", response_class=HTMLResponse,
            **page_rule(Scope.PATIENTS_READ, centre_restricted=True))
def patient(request: Request, patient_id: Annotated[str, PathPart(max_length=64)],
            known_at: Text = None) -> Response:
    """Who the patient is now, the journey drawn, what is due, findings, alerts, history."""
    backend, token = backend_of(request), viewer_of(request).token
    as_known = _day(known_at, "As known on")
    found = backend.patient(token, patient_id)
    facts = backend.facts(token, patient_id) if found is not None else None
    events = backend.history(token, patient_id, end_of_day(as_known) if as_known else None)
    if found is None or facts is None or events is None:
        audited(request, patient_ids=[patient_id], status=404)
        raise PageError(404, "No patient with this id.")
    audited(request, patient_ids=[patient_id], row_count=len(events))
    today = backend.today()
    drawn = timeline.build(facts, found.lines, today, backend.engine.settings.cytotoxic_classes)
    return render(request, "patient.html", {
        "p": found.patient, "centre": found.centre, "lines": found.lines, "timeline": drawn,
        "legend": timeline.legend(), "marks": timeline.MARK_LABELS,
        "due": [(d, d.days_overdue(today)) for d in found.due], "findings": found.findings,
        "alerts": found.open_alerts, "events": events, "known_at": known_at or "",
        "groups": GROUP_LABELS, "kinds": KIND_LABELS, "back": request.url.path})


# --- alerts ---------------------------------------------------------------------------------


@router.get("/alerts", response_class=HTMLResponse,
            **page_rule(Scope.PATIENTS_READ, centre_restricted=True))
def alerts(request: Request, show: Text = None, centre: Text = None) -> Response:
    """Open alerts of my centres; acknowledged, snoozed, resolved or all on request."""
    backend, token = backend_of(request), viewer_of(request).token
    chosen = show if show in SHOWS else "open"
    rows = backend.alerts(token, backend.today(), centre or None,
                          open_only=chosen in ("open", "acknowledged"))
    rows = sorted((r for r in rows if _shown(r, chosen)), key=lambda r: (r.window_end,
                                                                         r.patient_id))
    audited(request, patient_ids=sorted({r.patient_id for r in rows}), row_count=len(rows))
    return render(request, "alerts.html", {
        "rows": rows, "shows": SHOWS, "show": chosen, "kinds": KIND_LABELS,
        "centres": backend.centres(token), "centre": centre or "",
        "back": str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")})


def _shown(row: AlertRow, show: str) -> bool:
    """Whether the alerts page lists ``row`` under ``show`` (open: not yet acknowledged)."""
    if show == "open":
        return row.status == "open" and row.acknowledged_by is None
    if show == "acknowledged":
        return row.status == "open" and row.acknowledged_by is not None
    return show == "all" or row.status == show


def _alert_of(request: Request, alert_id: str) -> AlertRow:
    found = backend_of(request).alert(viewer_of(request).token, alert_id)
    if found is None:
        raise PageError(404, "No alert with this id.")
    return found


@router.post("/alerts/{alert_id}/ack", **page_rule(Scope.ALERTS_WRITE, centre_restricted=True))
def acknowledge(request: Request, alert_id: Annotated[str, PathPart(max_length=64)],
                form: Annotated[dict[str, str], Depends(form_of)]) -> Response:
    """Acknowledge (the alert stays open until the assessment is done), then go back."""
    alert = _alert_of(request, alert_id)
    backend_of(request).acknowledge(alert, by=viewer_of(request).token.name)
    audited(request, patient_ids=[alert.patient_id])
    return RedirectResponse(_local(form.get("next"), "/alerts"), status_code=303)


@router.post("/alerts/{alert_id}/snooze",
             **page_rule(Scope.ALERTS_WRITE, centre_restricted=True))
def snooze(request: Request, alert_id: Annotated[str, PathPart(max_length=64)],
           form: Annotated[dict[str, str], Depends(form_of)]) -> Response:
    """Hide the alert from the open list until a day (inclusive), then go back."""
    backend = backend_of(request)
    until = _day(form.get("until"), "Snooze until")
    if until is None or not backend.today() <= until <= LATEST_DATE:
        raise PageError(400, "Snooze until: choose a day from today on.")
    alert = _alert_of(request, alert_id)
    backend.snooze(alert, until, by=viewer_of(request).token.name)
    audited(request, patient_ids=[alert.patient_id])
    return RedirectResponse(_local(form.get("next"), "/alerts"), status_code=303)


# --- analysts -------------------------------------------------------------------------------

TABLES = ("patients", "lines", "findings")
FORMATS = ("csv", "json", "parquet")


@router.get("/analyst", response_class=HTMLResponse, **page_rule(Scope.EXPORTS_READ))
def analyst(request: Request) -> Response:
    """Links to the pseudonymised tables, downloaded with this session."""
    return render(request, "analyst.html", {"tables": TABLES, "formats": FORMATS})


@router.get("/analyst/report", response_class=HTMLResponse, **page_rule(Scope.EXPORTS_READ))
def report(request: Request) -> Response:
    """The study report of the whole cohort (``journey report``), for a token of every centre."""
    if viewer_of(request).token.centres:
        return render(request, "analyst.html", {"tables": TABLES, "formats": FORMATS,
                                                "report_refused": True})
    try:
        html, patients = backend_of(request).report()
    except ImportError:  # the report's plotting libraries: the `report` extra
        raise PageError(503, "This server has no report libraries (install the "
                             "'report' extra).") from None
    audited(request, row_count=patients)
    return HTMLResponse(html)


@router.get("/analyst/download", **page_rule(Scope.EXPORTS_READ))
def download(request: Request, table: Text = None,
             fmt: Annotated[str, Query(alias="format", max_length=8)] = "csv",
             cutoff: Text = None, known_at: Text = None) -> Response:
    """``GET /v1/exports/{table}`` for a signed-in browser (same rows, same audit)."""
    if table not in TABLES or fmt not in FORMATS:
        raise PageError(400, "Choose a table and a format.")
    view = View(_day(cutoff, "Cut-off"),
                end_of_day(known) if (known := _day(known_at, "As known on")) else None)
    return export_answer(request, viewer_of(request).token, table, fmt, view)
