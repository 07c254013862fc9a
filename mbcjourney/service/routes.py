"""The routes under ``/v1``: HTTP in, :class:`~.backend.Backend` calls, JSON out, audited.

Each route names its rule (:func:`~.security.rule`) and the answers it can give
(:data:`ERRORS`), so the OpenAPI document lists every code.  A route that
returns or changes patient-level data appends its audit record before it
returns (:func:`audited`); if that fails, the request fails.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, fields
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, BeforeValidator, ValidationError

from mbcjourney.events.errors import InvalidEvent
from mbcjourney.events.limits import EARLIEST_DATE, LATEST_DATE
from mbcjourney.exports import stream_table
from mbcjourney.processors.audit import AuditRecord, filters_of
from mbcjourney.processors.tokens import Scope, Token
from mbcjourney.projections import LineRow, PatientRow, View
from mbcjourney.projections.findings import Finding
from mbcjourney.projections.views import end_of_day
from mbcjourney.service import body
from mbcjourney.service.config import DEFAULT_PAGE, MAX_PAGE
from mbcjourney.service.models import (
    AlertActionOut,
    AlertsOut,
    DeadLetterOut,
    ErasureIn,
    ErasureOut,
    HistoryOut,
    IngestOut,
    OverdueOut,
    PatientDetailOut,
    PatientPage,
    Problem,
    SnoozeIn,
    iso_day,
)
from mbcjourney.service.security import Caller, backend_of, rule

M = TypeVar("M", bound=BaseModel)

router = APIRouter(prefix="/v1")

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a parameter or the body is not valid"},
    401: {"model": Problem, "description": "no token, or an unknown, expired or revoked one"},
    403: {"model": Problem, "description": "the token lacks the route's scope"},
    429: {"model": Problem, "description": "the token's rate limit is reached (Retry-After)"},
    503: {"model": Problem, "description": "the database or Kafka is unreachable"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such patient or alert, or not of the token's "
          "centres (the same answer for both)"}}

PatientId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Centre = Annotated[str | None, Query(min_length=1, max_length=64)]
# The years of EARLIEST_DATE..LATEST_DATE (1900 to 2999) in the document: JSON Schema has no
# bounds for dates, and a client reads there which dates are refused.
_STUDY_YEARS = {"pattern": r"^(19\d\d|2\d\d\d)-"}
Day = Annotated[date | None, BeforeValidator(iso_day),
                Query(ge=EARLIEST_DATE, le=LATEST_DATE, json_schema_extra=_STUDY_YEARS)]
KnownAt = Annotated[str | None, Query(
    max_length=40, description="as known then: a date (its end, UTC) or an ISO date-time "
                               "with its zone", examples=["2025-06-30", "2025-06-30T12:00:00Z"],
    json_schema_extra={**_STUDY_YEARS, "allOf": [{"anyOf": [{"format": "date"},
                                                          {"format": "date-time"}]}]})]


def audited(request: Request, *, patient_ids: Iterable[str] = (), row_count: int | None = None,
            status: int = 200) -> None:
    """Append the request's audit record (raises if it cannot: the request then fails)."""
    backend = backend_of(request)
    route = request.scope.get("route")
    backend.audit.append(AuditRecord(
        at=backend.clock(), request_id=request.state.request_id,
        token_name=request.state.token.name, scope=request.state.scope,
        method=request.method, route=getattr(route, "path", request.url.path), status=status,
        patient_ids=tuple(patient_ids), row_count=row_count,
        filters=filters_of(request.query_params.multi_items(), _FILTER_NAMES)))


_FILTER_NAMES = ("centre", "group", "status", "as_of", "open", "format", "cutoff", "known_at",
                 "limit")


def _not_found(request: Request, patient_id: str, what: str = "patient") -> HTTPException:
    audited(request, patient_ids=[patient_id], status=404)
    return HTTPException(404, f"no {what} with this id")


# --- events ----------------------------------------------------------------------------


_EVENTS_BODY = {"requestBody": {"required": True, "content": {
    # Any JSON: an item that is not an event object is answered (and dead-lettered) as rejected.
    body.JSON: {"schema": {"description": "an event (an object) or an array of events"}},
    body.NDJSON: {"schema": {"type": "string"}}}}}


@router.post("/events", response_model=IngestOut, tags=["events"],
             **rule(Scope.EVENTS_WRITE, openapi=_EVENTS_BODY),
             responses={**ERRORS, 413: {"model": Problem, "description": "body over the limit"},
                        415: {"model": Problem, "description": "not JSON nor NDJSON"}})
async def post_events(request: Request, token: Caller) -> Response:
    """Admit one event, a JSON array of events, or NDJSON: each answered in input order.

    The same validation, idempotency and dead-lettering as ``journey ingest``: an
    NDJSON line is judged as a line of a file (one that is not UTF-8 is rejected,
    the others go on); a JSON body that is not UTF-8, or an array that is not
    JSON, is refused whole (400) and dead-lettered as it came.
    """
    backend = backend_of(request)
    kind = body.media_type(request.headers.get("content-type"))
    if kind is None:
        raise HTTPException(415, "send application/json or application/x-ndjson")
    raw = await _read_body(request, backend.config.max_body_bytes)
    try:
        if kind == body.JSON:  # JSON text is UTF-8 (RFC 8259); NDJSON is judged line by line
            body.check_utf8(raw)
        items = body.items(raw, kind)
    except InvalidEvent as refused:  # the body as a whole: dead-lettered, then a 400
        await run_in_threadpool(backend.refuse_body, raw, refused, origin=f"http:{token.name}")
        raise
    results = await run_in_threadpool(backend.admit, items, origin=f"http:{token.name}")
    request.app.state.metrics.count_events(results)
    out = [{"item": r.item, "outcome": r.outcome, "event_id": r.event_id,
            "field": r.error.errors[0].field if r.error is not None else None,
            "reason": r.error.errors[0].reason if r.error is not None else None}
           for r in results]
    tally = Counter(r.outcome for r in results)
    return _json({"accepted": tally["accepted"], "duplicates": tally["duplicate"],
                  "rejected": tally["rejected"], "results": out})  # IngestOut, unvalidated


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# --- patients --------------------------------------------------------------------------


@router.get("/patients", response_model=PatientPage, tags=["patients"],
            **rule(Scope.PATIENTS_READ, centre_restricted=True), responses=ERRORS)
def list_patients(request: Request, token: Caller, centre: Centre = None,
                  group: Annotated[str | None, Query(max_length=8)] = None,
                  status: Annotated[str | None, Query(max_length=24)] = None,
                  cursor: Annotated[str | None, Query(max_length=200)] = None,
                  limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
                  ) -> dict[str, Any]:
    """Patients by id, filtered; follow ``next_cursor`` for the next page."""
    after = _cursor_id(cursor)
    found = backend_of(request).patients(token, centre=centre, group=group, status=status,
                                         after=after, limit=limit)
    audited(request, patient_ids=[row.patient_id for row, _ in found], row_count=len(found))
    next_cursor = (_cursor_of(found[-1][0].patient_id) if len(found) == limit else None)
    return {"patients": [{**asdict(row), "centre": centre_of} for row, centre_of in found],
            "next_cursor": next_cursor}


def _cursor_of(patient_id: str) -> str:
    return base64.urlsafe_b64encode(patient_id.encode()).decode()


def _cursor_id(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise _bad("cursor", "not a cursor this service gave") from None


@router.get("/patients/{patient_id}", response_model=PatientDetailOut, tags=["patients"],
            **rule(Scope.PATIENTS_READ, centre_restricted=True),
            responses={**ERRORS, **NOT_FOUND})
def get_patient(request: Request, token: Caller, patient_id: PatientId) -> Response:
    """The patient row, lines, due assessments, data-quality findings and open alerts."""
    found = backend_of(request).patient(token, patient_id)
    if found is None:
        raise _not_found(request, patient_id)
    audited(request, patient_ids=[patient_id])
    return _json({"patient": {**asdict(found.patient), "centre": found.centre},
                  "lines": found.lines, "due_assessments": found.due,
                  "findings": found.findings, "open_alerts": found.open_alerts})


def _json(body: Any) -> Response:
    """``body`` (rows as dataclasses) as JSON by orjson, in the documented shape: the
    hottest route skips re-validating rows its own types made (the fuzz test checks
    the answers against the document)."""
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/patients/{patient_id}/events", response_model=HistoryOut, tags=["patients"],
            **rule(Scope.PATIENTS_READ, centre_restricted=True),
            responses={**ERRORS, **NOT_FOUND})
def get_history(request: Request, token: Caller, patient_id: PatientId,
                known_at: KnownAt = None,
                ) -> dict[str, Any]:
    """The patient's events in log order, as known at ``known_at`` (default: now)."""
    instant = _instant(known_at)
    events = backend_of(request).history(token, patient_id, instant)
    if events is None:
        raise _not_found(request, patient_id)
    audited(request, patient_ids=[patient_id], row_count=len(events))
    return {"patient_id": patient_id, "known_at": instant.isoformat() if instant else None,
            "events": events}


@router.get("/overdue", response_model=list[OverdueOut], tags=["patients"],
            **rule(Scope.PATIENTS_READ, centre_restricted=True), responses=ERRORS)
def get_overdue(request: Request, token: Caller, as_of: Day = None, centre: Centre = None
                ) -> list[dict[str, Any]]:
    """Assessments overdue on ``as_of`` (default today, UTC), as ``journey overdue`` lists them."""
    backend = backend_of(request)
    rows = backend.overdue(token, as_of or backend.today(), centre)
    audited(request, patient_ids=sorted({due.patient_id for due, _ in rows}), row_count=len(rows))
    return [{"patient_id": due.patient_id, "assessment": due.assessment.value,
             "last_done": due.last_done, "due_date": due.due_date,
             "window_end": due.window_end, "days_overdue": late} for due, late in rows]


# --- alerts ----------------------------------------------------------------------------


@router.get("/alerts", response_model=AlertsOut, tags=["alerts"],
            **rule(Scope.PATIENTS_READ, centre_restricted=True), responses=ERRORS)
def get_alerts(request: Request, token: Caller, centre: Centre = None,
               open_only: Annotated[bool, Query(alias="open")] = False, as_of: Day = None,
               ) -> dict[str, Any]:
    """Alerts raised by ``as_of`` (default today); ``open=true``: open and not snoozed."""
    backend = backend_of(request)
    rows = backend.alerts(token, as_of or backend.today(), centre, open_only=open_only)
    audited(request, patient_ids=sorted({r.patient_id for r in rows}), row_count=len(rows))
    return {"alerts": [asdict(r) for r in rows]}


AlertId = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                       r"[0-9a-f]{12}$")]


@router.post("/alerts/{alert_id}/ack", response_model=AlertActionOut, tags=["alerts"],
             **rule(Scope.ALERTS_WRITE, centre_restricted=True),
             responses={**ERRORS, **NOT_FOUND})
def ack_alert(request: Request, token: Caller, alert_id: AlertId) -> dict[str, Any]:
    """Acknowledge an alert (it stays open until the assessment is done)."""
    backend = backend_of(request)
    alert = backend.alert(token, alert_id)
    if alert is None:
        raise HTTPException(404, "no alert with this id")
    backend.acknowledge(alert, by=token.name)
    audited(request, patient_ids=[alert.patient_id])
    return {"alert_id": alert_id, "action": "acknowledged", "by": token.name}


def _json_body(model: type[M]) -> tuple[Callable[[Request], Awaitable[M]], dict[str, Any]]:
    """A dependency reading ``model`` from the body, and its OpenAPI request body.

    The body is read once the rule has admitted the caller: FastAPI parses a declared
    body before any dependency runs, so a caller without a token learnt of a malformed
    one (400).
    """
    async def read(request: Request) -> M:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError([{**error, "loc": ("body", *error["loc"])}
                                          for error in exc.errors(include_url=False)]) from None

    return read, {"requestBody": {"required": True, "content": {
        body.JSON: {"schema": model.model_json_schema()}}}}


_snooze_body, _SNOOZE_BODY = _json_body(SnoozeIn)


@router.post("/alerts/{alert_id}/snooze", response_model=AlertActionOut, tags=["alerts"],
             **rule(Scope.ALERTS_WRITE, centre_restricted=True, openapi=_SNOOZE_BODY),
             responses={**ERRORS, **NOT_FOUND})
def snooze_alert(request: Request, token: Caller, alert_id: AlertId,
                 snooze: Annotated[SnoozeIn, Depends(_snooze_body)]) -> dict[str, Any]:
    """Hide an alert from the open list until a day (inclusive)."""
    backend = backend_of(request)
    if not backend.today() <= snooze.until <= LATEST_DATE:
        raise _bad("until", "must be a day from today on")
    alert = backend.alert(token, alert_id)
    if alert is None:
        raise HTTPException(404, "no alert with this id")
    backend.snooze(alert, snooze.until, by=token.name)
    audited(request, patient_ids=[alert.patient_id])
    return {"alert_id": alert_id, "action": "snoozed", "by": token.name, "until": snooze.until}


# --- exports ---------------------------------------------------------------------------

_TABLES: dict[str, type[Any]] = {"patients": PatientRow, "lines": LineRow, "findings": Finding}
_MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json",
          "parquet": "application/vnd.apache.parquet"}
_EXPORT_SCHEMAS = {"json": {"type": "array", "items": {"type": "object"}},  # one per row
                   "parquet": {"type": "string", "format": "binary"}}


@router.get("/exports/{table}", tags=["exports"], **rule(Scope.EXPORTS_READ),
            response_class=StreamingResponse,
            responses={**ERRORS, 200: {"description": "the table", "content": {
                media: {"schema": _EXPORT_SCHEMAS.get(fmt, {"type": "string"})}
                for fmt, media in _MEDIA.items()}}})
def get_export(request: Request, token: Caller,
               table: Literal["patients", "lines", "findings"],
               fmt: Annotated[Literal["csv", "json", "parquet"], Query(alias="format")] = "csv",
               cutoff: Day = None,
               known_at: KnownAt = None,
               ) -> StreamingResponse:
    """An output-contract table (pseudonymised: ids, codes and dates, no free text), streamed."""
    return export_answer(request, token, table, fmt, View(cutoff, _instant(known_at)))


def export_answer(request: Request, token: Token, table: str, fmt: str, view: View
                  ) -> StreamingResponse:
    """The table's rows under ``view`` streamed as ``fmt``, audited (the pages' downloads too)."""
    rows = backend_of(request).table(token, table, view)
    audited(request, row_count=len(rows))
    names = tuple(f.name for f in fields(_TABLES[table]))
    values = [tuple(getattr(r, n) for n in names) for r in rows]
    return StreamingResponse(stream_table(names, values, fmt), media_type=_MEDIA[fmt],
                             headers={"Content-Disposition":
                                      f'attachment; filename="{table}.{fmt}"'})


# --- administration --------------------------------------------------------------------


_erasure_body, _ERASURE_BODY = _json_body(ErasureIn)


@router.post("/patients/{patient_id}/erasure", response_model=ErasureOut, tags=["admin"],
             **rule(Scope.ADMIN, centre_restricted=True, openapi=_ERASURE_BODY),
             responses={**ERRORS, **NOT_FOUND})
def erase_patient(request: Request, token: Caller, patient_id: PatientId,
                  erasure: Annotated[ErasureIn, Depends(_erasure_body)]) -> dict[str, Any]:
    """Erase a patient for good (consent withdrawn), as ``journey erase`` does: an
    erasure record (by this token's name), the data key destroyed, derived rows deleted.
    Running it again is harmless; a patient never seen, or of another centre, is a 404."""
    backend = backend_of(request)
    result = backend.erase(token, patient_id, erasure.reason)
    if result is None:
        raise HTTPException(404, "no patient with this id")
    audited(request, patient_ids=[patient_id])
    return {"patient_id": patient_id, "erased_by": token.name,
            "newly_recorded": result.newly_recorded, "keys_destroyed": result.keys_destroyed,
            "events_sealed": result.events_sealed,
            "rows_deleted": sum(result.rows_deleted.values()),
            "dead_letters_deleted": result.dead_letters_deleted}


@router.get("/dead-letters", response_model=list[DeadLetterOut], tags=["admin"],
            **rule(Scope.ADMIN), responses=ERRORS)
def get_dead_letters(request: Request, token: Caller,
                     limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
                     ) -> list[dict[str, Any]]:
    """The newest rejected inputs: reason and origin (their bytes stay in the store)."""
    letters = backend_of(request).dead_letters(limit)
    audited(request, patient_ids=sorted({d.patient_id for d in letters if d.patient_id}),
            row_count=len(letters))
    return [{"reason": d.reason, "origin": d.origin, "received_at": d.received_at.isoformat(),
             "event_type": d.event_type, "event_id": d.event_id, "size": len(d.original)}
            for d in letters]


def _instant(value: str | None) -> datetime | None:
    """``known_at``: a date means the end of that day (UTC), as on the command line."""
    if value is None:
        return None
    try:
        moment = (end_of_day(date.fromisoformat(value)) if len(value) == 10
                  else datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise _bad("known_at", "expected a date YYYY-MM-DD or an ISO date-time") from None
    if moment.tzinfo is None:
        raise _bad("known_at", "a date-time needs its zone (Z or +HH:MM), or give a date")
    try:
        day = moment.astimezone(UTC).date()
    except OverflowError:
        day = LATEST_DATE + timedelta(days=1)
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise _bad("known_at", "outside the dates the study can hold")
    return moment


def _bad(field: str, reason: str) -> HTTPException:
    return HTTPException(400, {"field": field, "reason": reason})
