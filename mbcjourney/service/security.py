"""Who is calling and what they may do: bearer tokens, scopes, per-token rate limits.

Every route declares one rule (:func:`rule`): the scope it needs, or
:data:`PUBLIC` for the probes that carry no data.  The rule is both enforced
(a FastAPI dependency) and published in the OpenAPI document
(``x-required-scope``, and the bearer scheme in ``security``), so the scope-matrix
test reads the app's own route table: a route added without a rule fails it.

Order of refusals: no or malformed ``Authorization`` -> 401; a token that is
unknown, expired or revoked -> 401; a valid token without the scope -> 403;
over its rate -> 429 with ``Retry-After``.  Centre restrictions are applied by
the routes and answer 404, the same as an unknown patient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from mbcjourney.processors.tokens import Scope, Token
from mbcjourney.service.backend import Backend

PUBLIC = "public"
SCOPE_KEY = "x-required-scope"
CENTRE_KEY = "x-centre-restricted"
#: The OpenAPI security scheme every non-public route names (``/docs`` shows an
#: "Authorize" button; generated clients send the header).
BEARER_SCHEME = "bearerToken"
SECURITY_SCHEMES: dict[str, Any] = {BEARER_SCHEME: {
    "type": "http", "scheme": "bearer",
    "description": "A token from `journey tokens issue`; its scopes and centres decide "
                   "what it may call and see."}}


class RateLimits:
    """One budget per token name (the ``limits`` library; memory, or a shared storage URI)."""

    def __init__(self, rate: str | None, storage: str) -> None:
        self.item: RateLimitItem | None = parse(rate) if rate else None
        self.limiter = FixedWindowRateLimiter(storage_from_string(storage))

    def retry_after(self, name: str) -> int | None:
        """None when the call may go ahead, else the seconds until the window resets."""
        if self.item is None or self.limiter.hit(self.item, name):
            return None
        reset = self.limiter.get_window_stats(self.item, name).reset_time
        return max(1, math.ceil(reset - time.time()))


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _authenticate(request: Request) -> Token:
    header = request.headers.get("authorization")
    if header is None:
        raise _unauthorised("no bearer token (send Authorization: Bearer <token>)")
    kind, _, presented = header.partition(" ")
    if kind.lower() != "bearer" or not presented.strip():
        raise _unauthorised("the Authorization header is not 'Bearer <token>'")
    backend = backend_of(request)
    token = backend.tokens.verify(presented.strip(), backend.today())
    if token is None:
        raise _unauthorised("the token is unknown, expired or revoked")
    return token


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def require(scope: Scope) -> Callable[[Request], Token]:
    """A dependency: the caller's token, if it has ``scope`` and is within its rate."""

    def authorised(request: Request) -> Token:
        token = _authenticate(request)
        if scope not in token.scopes:
            raise HTTPException(403, f"the token lacks the scope {scope.value}")
        wait = request.app.state.rate_limits.retry_after(token.name)
        if wait is not None:
            raise HTTPException(429, "rate limit reached for this token",
                                headers={"Retry-After": str(wait)})
        request.state.token = token
        request.state.scope = scope.value
        return token

    return authorised


def rule(scope: Scope | None, *, centre_restricted: bool = False,
         openapi: dict[str, Any] | None = None) -> dict[str, Any]:
    """Route keyword arguments: the dependency enforcing ``scope`` and its OpenAPI mark
    (merged into ``openapi``, the route's other OpenAPI additions)."""
    extra: dict[str, Any] = {**(openapi or {}),
                             SCOPE_KEY: scope.value if scope is not None else PUBLIC,
                             CENTRE_KEY: centre_restricted,
                             "security": [] if scope is None else [{BEARER_SCHEME: []}]}
    if scope is None:
        return {"openapi_extra": extra}
    return {"openapi_extra": extra, "dependencies": [Depends(require(scope))]}


async def caller(request: Request) -> Token:
    """The token the route's rule admitted (set by :func:`require`); async: no I/O, so
    no trip through the thread pool."""
    token: Token = request.state.token
    return token


Caller = Annotated[Token, Depends(caller)]
