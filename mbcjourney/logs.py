"""Structured logs: JSON lines on stderr with ids, types, offsets and counts.

Never log payload values or free text: log calls pass identifiers and counts as
keyword arguments, and no processor here renders exceptions with local values.
Records of the libraries underneath (kafka-python, aiokafka, faust) are JSON lines
too, with their ``logger`` name, so stderr stays one machine-readable stream.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_TIMESTAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)
_handler: logging.Handler | None = None


def configure(level: str = "warning", stream: TextIO | None = None) -> None:
    """Log at ``level`` and above to ``stream`` (default: the current ``sys.stderr``)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
    stream = stream if stream is not None else sys.stderr
    _library_records_as_json(numeric, stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _TIMESTAMP,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def _library_records_as_json(level: int, stream: TextIO) -> None:
    """One root handler on ``stream`` rendering stdlib records as JSON lines."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream)
    _handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,  # the traceback's text, no locals
                    structlog.processors.JSONRenderer()],
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           _TIMESTAMP],
    ))
    root.addHandler(_handler)
    root.setLevel(level)
