"""The worker's faust consumer hands a record over in place unless the handing over waits.

A real mode ``Service`` carries :class:`EagerFirst`, as faust's consumer does in
the worker; the first coroutine stands for a delivery into a stream buffer, the
second for ``suspend_flow.wait()`` (a rebalance).
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mode import Service

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.faust_app import FETCH_BYTES_PER_PARTITION, create_app
from mbcjourney.processors.faust_consumer import EagerFirst, EagerFirstConsumer
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.worker import ProjectionSink, WorkerConfig


class Delivering(EagerFirst, Service):
    """A service whose wait_first is the consumer's."""


def never() -> asyncio.Event:
    return asyncio.Event()


async def _test_a_delivery_that_does_not_wait_runs_in_place_and_wins() -> None:
    service = Delivering()
    ran_in: list[asyncio.Task[object] | None] = []

    async def deliver() -> str:
        ran_in.append(asyncio.current_task())
        return "delivered"

    suspended = never().wait()
    results = await service.wait_first(deliver(), suspended)

    assert results.results == ["delivered"]
    assert not results.stopped
    assert ran_in == [asyncio.current_task()]  # no task of its own: that is the saving
    assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED  # no "never awaited"


async def _test_a_delivery_that_waits_goes_on_from_where_it_waited() -> None:
    service = Delivering()
    room = asyncio.Event()
    steps: list[str] = []

    async def deliver() -> int:
        steps.append("put")
        await room.wait()  # the stream buffer is full
        steps.append("room")
        return 7

    asyncio.get_running_loop().call_soon(room.set)
    results = await service.wait_first(deliver(), never().wait())

    assert results.results == [7]
    assert steps == ["put", "room"]  # stepped once in place, then resumed, not restarted


async def _test_a_rebalance_interrupts_a_delivery_that_waits() -> None:
    service = Delivering()
    rebalance = asyncio.Event()
    interrupted = asyncio.Event()

    async def deliver() -> None:
        try:
            await never().wait()  # the buffer never has room
        except asyncio.CancelledError:
            interrupted.set()
            raise

    asyncio.get_running_loop().call_soon(rebalance.set)
    results = await service.wait_first(deliver(), rebalance.wait())

    assert results.results == [True]  # the rebalance's Event.wait() came first
    await asyncio.wait_for(interrupted.wait(), timeout=5)  # and the delivery was cancelled


async def _test_a_delivery_that_fails_raises_and_leaves_nothing_pending() -> None:
    service = Delivering()

    async def deliver() -> None:
        raise ValueError("undecodable")

    suspended = never().wait()
    with pytest.raises(ValueError, match="undecodable"):
        await service.wait_first(deliver(), suspended)
    assert inspect.getcoroutinestate(suspended) == inspect.CORO_CLOSED


async def _test_a_stopped_service_answers_as_mode_does() -> None:
    service = Delivering()
    service._stopped.set()

    async def deliver() -> str:
        return "delivered"

    results = await service.wait_first(deliver(), never().wait())

    assert results.stopped  # mode's own path: a stopping consumer delivers nothing more


def test_the_worker_app_consumes_through_the_eager_consumer(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'store.db'}"  # an in-memory database is refused
    store = ProjectionStore(make_engine(db_url))
    with ThreadPoolExecutor(1) as executor:
        app = create_app(WorkerConfig(bootstrap="127.0.0.1:9", db_url=db_url),
                         lambda stop: ProjectionSink(store, "worker:test", executor,
                                                     on_failure=stop))
    assert app.transport.Consumer is EagerFirstConsumer
    assert app.conf.consumer_max_fetch_size == FETCH_BYTES_PER_PARTITION


def test_a_delivery_that_does_not_wait_runs_in_place_and_wins() -> None:
    asyncio.run(_test_a_delivery_that_does_not_wait_runs_in_place_and_wins())


def test_a_delivery_that_waits_goes_on_from_where_it_waited() -> None:
    asyncio.run(_test_a_delivery_that_waits_goes_on_from_where_it_waited())


def test_a_rebalance_interrupts_a_delivery_that_waits() -> None:
    asyncio.run(_test_a_rebalance_interrupts_a_delivery_that_waits())


def test_a_delivery_that_fails_raises_and_leaves_nothing_pending() -> None:
    asyncio.run(_test_a_delivery_that_fails_raises_and_leaves_nothing_pending())


def test_a_stopped_service_answers_as_mode_does() -> None:
    asyncio.run(_test_a_stopped_service_answers_as_mode_does())
