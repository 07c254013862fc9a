"""Baseline phases of ``python -m bench.live``, each in its own process.

    python -m bench.live_phases raw-consume BOOTSTRAP TOPIC EXPECTED
        aiokafka reads the topic from the beginning and does nothing with it
        (consume + nothing); prints a Measurement as its last line.
    python -m bench.live_phases faust-noop BOOTSTRAP TOPIC EXPECTED APP_ID [stock|worker]
        the same through a faust agent that only counts (faust's own cost), with
        faust's own consumer or with the worker's (eager delivery, larger fetches).
    python -m bench.live_phases raw-latency BOOTSTRAP TOPIC EXPECTED OUT
        prints "ready" once positioned at the topic's end, then records the wall
        clock at which each (partition, offset) arrived, into OUT (JSON).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Measurement, emit, measure_here
from mbcjourney.processors.kafkaio import topic_partitions


async def _consume(bootstrap: str, topic: str, expected: int) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p)
                      for p in range(topic_partitions(bootstrap, [topic])[topic])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count = 0
        while count < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            count += sum(len(records) for records in batches.values())
        return count
    finally:
        await consumer.stop()


def raw_consume(bootstrap: str, topic: str, expected: str) -> None:
    emit(measure_here("raw aiokafka consume (baseline)",
                      lambda: asyncio.run(_consume(bootstrap, topic, int(expected)))))


def faust_noop(bootstrap: str, topic: str, expected: str, app_id: str,
               consumer: str = "stock") -> None:
    """A faust agent that only counts: what faust itself costs per record."""
    import faust
    import mode.loop

    from mbcjourney.processors.faust_app import FETCH_BYTES_PER_PARTITION
    from mbcjourney.processors.faust_consumer import use_eager_consumer

    mode.loop.use("uvloop")
    wanted = int(expected)
    worker_consumer = consumer == "worker"
    fetch: dict[str, Any] = (
        {"consumer_max_fetch_size": FETCH_BYTES_PER_PARTITION} if worker_consumer else {})
    app = faust.App(app_id, broker=f"kafka://{bootstrap}",
                    datadir=Path(tempfile.gettempdir()) / app_id,
                    store="memory://", web_enabled=False, autodiscover=False,
                    consumer_auto_offset_reset="earliest", topic_partitions=4, **fetch)
    if worker_consumer:
        use_eager_consumer(app)
    label = "faust agent, count only" + (", worker's consumer" if worker_consumer else "")
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    state: dict[str, Any] = {"count": 0, "start": 0.0}

    async def count(stream: Any) -> None:
        async for events in stream.take_events(2000, within=0.2):
            if not state["count"]:
                state["start"] = time.perf_counter()
            state["count"] += len(events)
            if state["count"] >= wanted:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                emit(Measurement(label, state["count"],
                                 time.perf_counter() - state["start"], peak))
                sys.stdout.flush()
                os._exit(0)  # a benchmark phase: no graceful faust shutdown needed

    app.agent(source, name="count")(count)
    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


async def _arrivals(bootstrap: str, topic: str, expected: int) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    seen: dict[str, float] = {}
    try:
        partitions = [TopicPartition(topic, p)
                      for p in range(topic_partitions(bootstrap, [topic])[topic])]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while len(seen) < expected:
            batches = await consumer.getmany(timeout_ms=500)
            now = time.time()
            for tp, records in batches.items():
                for record in records:
                    seen[f"{tp.partition}:{record.offset}"] = now
    finally:
        await consumer.stop()
    return seen


def raw_latency(bootstrap: str, topic: str, expected: str, out: str) -> None:
    seen = asyncio.run(_arrivals(bootstrap, topic, int(expected)))
    with open(out, "w") as f:
        json.dump(seen, f)


PHASES: dict[str, Callable[..., None]] = {
    "raw-consume": raw_consume, "faust-noop": faust_noop, "raw-latency": raw_latency}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    PHASES[name](*args)
