"""Settings for bulk work (ingest, rebuild, replay) that allocates millions of objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Bulk work allocates millions of acyclic objects: keep the cycle collector out of the way.

    Objects alive now are frozen out of collections and the young-generation
    threshold is raised; reference counting still frees everything promptly.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
