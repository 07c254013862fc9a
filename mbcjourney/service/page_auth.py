"""Who is looking at a page: the session cookie, its token's scopes, and CSRF on every form.

A coordinator signs in once with a token (:mod:`.pages`); the browser then holds
only a random session id in a cookie that scripts cannot read (``HttpOnly``),
that no other site's page can send (``SameSite=Strict``) and, over HTTPS (the
request's scheme, which uvicorn takes from ``X-Forwarded-Proto`` of a trusted
proxy) or with ``ServiceConfig.secure_cookies``, that travels only encrypted
(``Secure``).  Each request re-checks the session's token: a revoked or expired
token ends the session at once.

Every page route declares :func:`page_rule`: the scope it needs, enforced by a
dependency and marked on the route (``x-required-scope``, as the API's
:func:`~.security.rule`) so the scope-matrix test reads the pages' own route
table.  Every POST must carry the session's CSRF secret in a ``csrf`` field
(:func:`form_of`): without it, 403.  Refusals are pages, not JSON:
:class:`PageError` (rendered by :mod:`.pages`) and :class:`SignInFirst`.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from mbcjourney.processors.sessions import Session
from mbcjourney.processors.tokens import Scope, Token
from mbcjourney.service.security import CENTRE_KEY, PUBLIC, SCOPE_KEY, backend_of

SESSION_COOKIE = "journey_session"
SIGNIN_COOKIE = "journey_signin"  # the sign-in form's CSRF secret (no session yet)
PAGE_KEY = "x-page"


class PageError(Exception):
    """A refusal answered as a page (status and a sentence for the person)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInFirst(Exception):
    """No live session: a GET is sent to the sign-in page, a POST refused (401)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their token (as stored) and their session."""

    token: Token
    session: Session
    session_id: str

    def can(self, scope: Scope) -> bool:
        return scope in self.token.scopes


def secure(request: Request) -> bool:
    """Whether the cookie gets ``Secure``: HTTPS as the client saw it, or configured so."""
    return request.url.scheme == "https" or backend_of(request).config.secure_cookies


def current(request: Request) -> Viewer | None:
    """The live session of the request's cookie, re-checked against its token, or None."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    found = backend_of(request).session(session_id)
    if found is None:
        return None
    session, token = found
    return Viewer(token, session, session_id)


def _viewer(scope: Scope) -> Callable[[Request], Viewer]:
    def signed_in(request: Request) -> Viewer:
        viewer = current(request)
        if viewer is None:
            raise SignInFirst()
        request.state.viewer = viewer
        request.state.token = viewer.token  # what routes.audited records
        request.state.scope = scope.value
        if scope not in viewer.token.scopes:
            raise PageError(403, f"Your token does not have the scope {scope.value}.")
        return viewer

    return signed_in


def page_rule(scope: Scope | None, *, centre_restricted: bool = False) -> dict[str, Any]:
    """Route keyword arguments of a page: its session-and-scope dependency and its mark.

    Pages are left out of the OpenAPI document (they answer HTML to browsers, not
    JSON to clients); the mark stays on the route for the scope-matrix test.
    """
    extra = {SCOPE_KEY: scope.value if scope is not None else PUBLIC,
             CENTRE_KEY: centre_restricted, PAGE_KEY: True}
    kwargs: dict[str, Any] = {"openapi_extra": extra, "include_in_schema": False}
    if scope is not None:
        kwargs["dependencies"] = [Depends(_viewer(scope))]
    return kwargs


def viewer_of(request: Request) -> Viewer:
    found: Viewer = request.state.viewer
    return found


async def form_of(request: Request) -> dict[str, str]:
    """The posted form, once its ``csrf`` field matched the session's secret (else 403)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if request.url.path == "/signin":  # no session yet: the sign-in cookie's secret
        expected = request.cookies.get(SIGNIN_COOKIE)
    else:
        viewer: Viewer | None = (getattr(request.state, "viewer", None)
                                  or await run_in_threadpool(current, request))
        if viewer is None:
            raise SignInFirst()
        request.state.viewer = viewer
        expected = viewer.session.csrf
    given = fields.get("csrf", "")
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PageError(403, "This form has expired or did not come from this site. "
                             "Reload the page and try again.")
    return fields


FormOf = Callable[[Request], Awaitable[dict[str, str]]]
