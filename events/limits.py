"""Limits of the input contract, named once; every entry point imports them from here.

* ``MAX_LINE_BYTES``: the longest line (one JSON event, without its newline) that
  ``journey ingest``, ``journey publish`` and the workers accept.  A longer line
  is dead-lettered with the reason :func:`line_too_long_reason` by every path,
  never sent: the Kafka producer's ``max_request_size`` and the topics'
  ``max.message.bytes`` (``infra/topics.txt``) leave room for it, its key and
  headers (:data:`MAX_RECORD_BYTES`).  A real clinical event is a few hundred bytes;
  256 KiB leaves room for long questionnaires and still bounds the memory of a batch.
* ``EARLIEST_DATE`` / ``LATEST_DATE``: the dates a command-line option may name
  (``--as-of``, ``--cutoff``, ``--known-at``, ``--until``).  Far from the limits of
  Python's ``date`` (year 1-9999), so the dates derived from them (due dates,
  windows, end of day) always exist.
"""

from __future__ import annotations

from datetime import date

MAX_LINE_BYTES = 256 * 1024
# A Kafka record may carry, besides the line: its key (a patient id, <= 64 bytes), the
# dead-letter headers (reason, origin: a few hundred bytes) and the record batch's own
# overhead.  The producer's max_request_size and the topics' max.message.bytes.
MAX_RECORD_BYTES = MAX_LINE_BYTES + 64 * 1024

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)


def line_too_long_reason() -> str:
    """The dead-letter reason of a line over :data:`MAX_LINE_BYTES` (the same on every path)."""
    return f"line longer than {MAX_LINE_BYTES} bytes"
