"""``journey worker``: check the topics, open PostgreSQL, build the faust app, run it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.worker.config import WorkerConfig
from mbcjourney.processors.worker.sink import ProjectionSink


def run_worker(config: WorkerConfig) -> NoReturn:
    """Check the topics, open PostgreSQL, build the faust app and run it until stopped."""
    from mbcjourney.processors.db import make_engine
    from mbcjourney.processors.faust_app import create_app, run_app, use_uvloop
    from mbcjourney.processors.kafkaio import require_topics

    use_uvloop()  # before the app exists: the app binds the event loop policy
    require_topics(config.bootstrap, {config.topic: config.partitions,
                                      config.dead_letter_topic: None})
    engine = make_engine(config.db_url)
    store = ProjectionStore(engine)
    store.create()
    alerting = None
    if config.alerts is not None:
        from mbcjourney.processors.alerting_live import open_live_alerting

        alerting = open_live_alerting(config.alerts, store, bootstrap=config.bootstrap,
                                      topic=config.topic, consumer=config.consumer)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journey-sink")
    try:
        sink = ProjectionSink(store, config.consumer, executor,
                              write=alerting.alerts.write if alerting is not None else None)
        app = create_app(config, sink, alerting.alerts if alerting is not None else None)
        run_app(app, config)
    finally:
        executor.shutdown(wait=True)
        if alerting is not None:
            alerting.close()
        engine.dispose()
