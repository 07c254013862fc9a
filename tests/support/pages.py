"""Signed-in HTTP clients of the coordinators' pages (real sockets, real sessions)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF field"
    return found.group(1)


@contextmanager
def signed_in(base: str, token: str, **headers: str) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a session opened with ``token``, and that session's CSRF secret."""
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        yield client, _sign_in(client, token)


def _sign_in(client: httpx.Client, token: str) -> str:
    form = client.get("/signin")
    assert form.status_code == 200, form.text
    answer = client.post("/signin", data={"csrf": csrf_of(form.text), "token": token})
    assert answer.status_code == 303, answer.text
    home = client.get(answer.headers["location"], follow_redirects=True)
    assert home.status_code in (200, 403), home.text
    return csrf_of(home.text)
