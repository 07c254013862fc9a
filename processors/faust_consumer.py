"""faust's aiokafka consumer, handing each record to its agent without four tasks per record.

Why: faust delivers every fetched record through
``Service.wait_first(callback(message), suspend_flow.wait())``, so that a rebalance
(``suspend_flow``) can interrupt a delivery blocked on a full stream buffer.  That
call wraps both coroutines, and the service's ``stopped`` and ``crashed`` events,
in four tasks and an ``asyncio.wait``, for every record: about half of faust's own
CPU time per record, measured with a count-only agent (10.5 s against 5.5 s for
117,548 records).

Nearly always the delivery does not wait at all: the buffer has room.
:class:`EagerFirst` therefore steps the first coroutine once, in place.
When it finishes in that step, nothing could have interrupted it and no task is
made.  When it suspends, the suspended coroutine goes on inside faust's own
``wait_first``, unchanged, so a rebalance still interrupts it exactly as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.drivers import aiokafka
from mode.services import WaitResults


class _Resumed:
    """A coroutine already stepped once, which yielded ``pending``: awaiting it goes on.

    What a task does with a coroutine, from its second step: ``pending`` (the future
    it waits on, or None to be rescheduled) goes to the awaiting task, and what the
    task sends or throws back goes into the coroutine.
    """

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:  # dropped unfinished: so is the coroutine
                self.coro.close()
                raise
            except BaseException as exc:  # a cancellation (a rebalance won) included
                try:
                    pending = self.coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = self.coro.send(sent)
                except StopIteration as done:
                    return done.value


def _discard(awaitable: object) -> None:
    if inspect.iscoroutine(awaitable):
        awaitable.close()  # never started: closing it avoids "never awaited"


class EagerFirst:
    """For a mode ``Service``: ``wait_first`` lets its first coroutine finish in place.

    Only when it finishes in its first step, that is without waiting on anything:
    then no other awaitable could have come first.
    """

    _stopped: Any
    _crashed: Any

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        first = coros[0] if coros else None
        if (not inspect.iscoroutine(first) or self._stopped.is_set()
                or self._crashed.is_set()):
            results: WaitResults = await super().wait_first(  # type: ignore[misc]
                *coros, timeout=timeout)
            return results
        try:
            pending = first.send(None)
        except StopIteration as done:
            for other in coros[1:]:
                _discard(other)
            return WaitResults([first], [done.value], False)
        except BaseException:
            for other in coros[1:]:
                _discard(other)
            raise  # as faust's own wait_first does with a failed first coroutine
        resumed: WaitResults = await super().wait_first(  # type: ignore[misc]
            _Resumed(first, pending), *coros[1:], timeout=timeout)
        return resumed


class EagerFirstConsumer(EagerFirst, aiokafka.Consumer):
    """faust's aiokafka consumer, delivering records through :class:`EagerFirst`."""


class EagerFirstTransport(aiokafka.Transport):
    """faust's aiokafka transport with :class:`EagerFirstConsumer` as its consumer."""

    Consumer = EagerFirstConsumer


def use_eager_consumer(app: Any) -> None:
    """Make ``app`` consume with :class:`EagerFirstConsumer` (before it starts)."""
    app.transport = EagerFirstTransport(app.conf.broker_consumer, app)
