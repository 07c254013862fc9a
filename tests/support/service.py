"""The HTTP service for tests: a real uvicorn server on a loopback port, in a thread.

Requests go over real sockets to the same app ``journey serve`` runs; the
server's start is awaited on its own ``started`` flag, never a sleep.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import uvicorn
from fastapi import FastAPI

from mbcjourney.bootstrap import open_access, open_service
from mbcjourney.processors.tokens import Scope
from mbcjourney.service import ServiceConfig
from tests.support.polling import eventually

# "Today" of the service in tests: the simulated cohorts' alerts and overdue windows
# are all in the past of this day, so every view has rows.
TODAY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ALL_SCOPES = tuple(Scope)


def fixed_clock(at: datetime = TODAY) -> Callable[[], datetime]:
    return lambda: at


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False,
                                           log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started or not thread.is_alive(), timeout=30,
                   what="uvicorn to start")
        assert thread.is_alive(), "uvicorn stopped at start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_service(db_url: str, *, clock: Callable[[], datetime] | None = None,
                    **config: object) -> Iterator[str]:
    """The service on ``db_url`` served for real; yields its base URL."""
    with open_service(ServiceConfig(db_url, **config),  # type: ignore[arg-type]
                      clock=clock or fixed_clock()) as app, serving(app) as url:
        yield url


def issue_token(db_url: str, name: str, scopes: Iterable[Scope] = ALL_SCOPES, *,
                centres: Iterable[str] = (), expires_on: date | None = None) -> str:
    """A new token on ``db_url``'s token store; returns the token itself."""
    with open_access(db_url, create=True) as (tokens, _audit):
        _token, secret = tokens.issue(name, scopes, centres=centres, expires_on=expires_on,
                                      now=TODAY)
    return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
