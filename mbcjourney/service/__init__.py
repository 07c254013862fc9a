"""The HTTP service (``journey serve``): an entry point like the CLI and the worker.

Data flows through it in one direction: a request is authenticated and
authorised (:mod:`.security`), turned into a call of the :class:`.Backend`
(which admits events through the one admission path and reads the store and
the log), audited, and answered.  The app is built by :func:`.create_app` from a
backend that the composition root (:func:`mbcjourney.bootstrap.open_service`)
builds from :class:`.ServiceConfig`.
"""

from __future__ import annotations

from typing import Any

from mbcjourney.service.config import ServiceConfig

__all__ = ["Backend", "ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    """``Backend`` and ``create_app`` on first use: the CLI imports this package for its
    settings, and FastAPI costs every other command a quarter of a second to import."""
    if name == "create_app":
        from mbcjourney.service.app import create_app

        return create_app
    if name == "Backend":
        from mbcjourney.service.backend import Backend

        return Backend
    raise AttributeError(name)
