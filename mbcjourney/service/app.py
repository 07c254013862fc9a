"""The FastAPI app: the routes, the probes, and the answers no client input can turn into a 5xx.

:func:`create_app` takes a built :class:`~.backend.Backend` (the composition
root builds it from settings) and adds, around every request:

* a request id (``X-Request-ID``: the client's if it is a plain token, else new),
  returned in the answer and kept in the audit trail;
* one access log line (method, route template, status, milliseconds, request
  id; never the URL's values, a query, a body or a token) and the metrics;
* error answers as :class:`~.models.Problem`: a validation error is a 400 naming
  the field; an unreachable database or broker a 503; anything unexpected a 500
  logged by type only.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mbcjourney.events.errors import InvalidEvent, ServiceUnavailable
from mbcjourney.processors.tokens import Scope
from mbcjourney.service import pages, routes
from mbcjourney.service.backend import Backend
from mbcjourney.service.metrics import CONTENT_TYPE, Metrics
from mbcjourney.service.models import Health, Problem
from mbcjourney.service.security import SECURITY_SCHEMES, RateLimits, rule

log = structlog.get_logger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CODES = {400: "invalid", 401: "unauthorised", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
          429: "rate_limited", 503: "unavailable"}


def create_app(backend: Backend) -> FastAPI:
    """The service over ``backend``; run it with uvicorn (``journey serve``)."""
    app = FastAPI(
        title="MBC patient-journey engine", version="1",
        description="Events in, patients, alerts and exports out. Every route but the "
                    "probes needs a bearer token with the scope its `x-required-scope` names.",
        docs_url="/docs", redoc_url=None)
    app.state.backend = backend
    app.state.metrics = metrics = Metrics()
    app.state.rate_limits = RateLimits(backend.config.rate_limit,
                                       backend.config.rate_limit_storage)
    app.include_router(routes.router)
    pages.install(app)  # the coordinators' pages (HTML; not in the OpenAPI document)
    _add_probes(app, backend, metrics)
    _add_error_answers(app)
    _declare_security(app)

    @app.middleware("http")
    async def around(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                     ) -> Response:
        given = request.headers.get("x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # a bug: answered and logged by type, never by its message
            log.error("http.failed", method=request.method, error=type(exc).__name__,
                      route=getattr(request.scope.get("route"), "path", "unmatched"),
                      request_id=request_id)
            response = _problem(500, "the service failed; the request id is in the logs")
        seconds = time.perf_counter() - started
        route = getattr(request.scope.get("route"), "path", "unmatched")
        response.headers["X-Request-ID"] = request_id
        metrics.observe(request.method, route, response.status_code, seconds)
        log.info("http.request", method=request.method, route=route,
                 status=response.status_code, ms=round(seconds * 1000, 2),
                 request_id=request_id)
        return response

    return app


def _declare_security(app: FastAPI) -> None:
    """Name the bearer scheme in the document's components (the routes' ``security``
    refers to it; see :func:`~mbcjourney.service.security.rule`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_probes(app: FastAPI, backend: Backend, metrics: Metrics) -> None:
    @app.get("/livez", response_model=Health, tags=["operations"], **rule(None))
    def livez() -> Health:
        """The process answers (no dependency checked)."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["operations"], **rule(None),
             responses={503: {"model": Health, "description": "a dependency is unreachable"}})
    def readyz() -> JSONResponse:
        """The database and, when configured, Kafka are reachable."""
        checks = backend.ready()
        ok = all(checks.values())
        body = Health(status="ok" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], **rule(Scope.ADMIN),
             responses={**routes.ERRORS, 200: {"description": "Prometheus text format",
                                               "content": {CONTENT_TYPE: {
                                                   "schema": {"type": "string"}}}}})
    def metrics_text() -> Response:
        """Prometheus metrics (requests, latencies, events by outcome and reason)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)


def _problem(status: int, detail: str, field: str | None = None,
             headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = Problem(error=_CODES.get(status, "error"), detail=detail, field=field)
    return JSONResponse(body.model_dump(), status_code=status,
                        headers=dict(headers) if headers else None)


def _add_error_answers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if isinstance(detail, dict):
            return _problem(exc.status_code, str(detail.get("reason")), detail.get("field"),
                            exc.headers)
        return _problem(exc.status_code, str(detail), None, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return _problem(400, str(first.get("msg", "invalid")), where)

    @app.exception_handler(InvalidEvent)
    async def invalid_body(_request: Request, exc: InvalidEvent) -> JSONResponse:
        first = exc.errors[0]
        return _problem(400, first.reason, first.field)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(_request: Request, exc: ServiceUnavailable) -> JSONResponse:
        log.warning("http.unavailable", error=type(exc).__name__)
        return _problem(503, "a dependency is unreachable; retry later", None,
                        {"Retry-After": "5"})

    @app.exception_handler(SQLAlchemyError)
    async def database_down(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.warning("http.database_error", error=type(exc).__name__)
        return _problem(503, "the database could not answer; retry later", None,
                        {"Retry-After": "5"})


__all__ = ["create_app"]
