"""Structured logs: JSON lines on stderr with ids, types, offsets and counts.

Never log payload values or free text: log calls pass identifiers and counts as
keyword arguments, and no processor here renders exceptions with local values.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "warning") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
