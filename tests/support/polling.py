"""The one way a test waits: poll an observable condition, bounded, and fail saying what for.

Tests never sleep to synchronise.  When something happens elsewhere (a worker
process, a broker, a thread), they poll a condition they can observe with
:func:`eventually` (or :func:`eventually_async` on an event loop); the short
pause between two polls is this module's alone.  A predicate that blocks by
itself (a Kafka ``poll(timeout_ms=...)``) is polled with ``interval=0``.

A predicate may raise ``AssertionError`` to fail at once (a worker died: waiting
longer would only hide it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.05


def _timed_out(timeout: float, what: str, detail: Callable[[], str] | None) -> AssertionError:
    message = f"timed out after {timeout:g}s waiting for {what}"
    if detail is not None:
        message += f": {detail()}"
    return AssertionError(message)


def eventually(predicate: Callable[[], T], *, timeout: float, what: str,
               interval: float = POLL_S, detail: Callable[[], str] | None = None) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Raises ``AssertionError("timed out after <timeout>s waiting for <what>: <detail()>")``
    once ``timeout`` seconds have passed; ``detail`` says what was seen instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        outcome = predicate()
        if outcome:
            return outcome
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, detail)
        if interval > 0:
            time.sleep(interval)


async def eventually_async(predicate: Callable[[], Awaitable[T]], *, timeout: float,
                           what: str, interval: float = POLL_S,
                           detail: Callable[[], str] | None = None) -> T:
    """:func:`eventually` on an event loop, for a coroutine function ``predicate``; the
    pause between two polls yields to the loop."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = await predicate()
        if outcome:
            return outcome
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, detail)
        await asyncio.sleep(interval)
