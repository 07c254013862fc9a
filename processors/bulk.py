"""Settings for bulk work (ingest, rebuild, replay): millions of objects, helper processes."""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

# Young-generation threshold for bulk work: a collection per 100,000 net allocations
# rather than per 700 (CPython's default), which rescanned a batch's survivors over
# and over (a live worker's per-record apply step took twice as long, measured).
BULK_GC_THRESHOLD = (100_000, 50, 100)


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Bulk work allocates millions of acyclic objects: keep the cycle collector out of the way.

    Objects alive now are frozen out of collections and the young-generation
    threshold is raised; reference counting still frees everything promptly.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*BULK_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def process_pool(workers: int, *, niceness: int = 0) -> ProcessPoolExecutor:
    """``workers`` helper processes that end with this one, ``niceness`` below its priority.

    Spawned, so they inherit no state (open databases, threads).  A pool process
    would outlive a parent killed by a signal only the parent gets (``kill``, a
    service stop): blocked on its task queue, it would wait forever, holding its
    memory.  Each watches its parent and exits when the parent has.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_start_helper, initargs=(niceness,))


def _start_helper(niceness: int) -> None:
    if niceness and hasattr(os, "nice"):  # POSIX
        os.nice(niceness)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True,
                         name="exit-with-parent").start()


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # ready once the parent process has ended
    os._exit(1)
