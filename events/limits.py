"""The limits of the event contract, in one place (README "Limits").

Every entry point (file ingest, ``journey publish``, the Kafka worker, replay, the
HTTP service) admits input through one path, so these hold on every path alike:
a line over a limit is dead-lettered with a reason naming the limit, never
half-processed.

* ``MAX_EVENT_BYTES``: one event as JSON (a JSON Lines line, a Kafka message, an
  HTTP body).  Real events are a few hundred bytes; omics and images travel as
  references.  Kept well below Kafka's default 1 MiB message limit (the broker's
  ``message.max.bytes``), so whatever ingest accepts can also be published, and
  below the worker's changelog delta size.
* ``MAX_JSON_DEPTH``: nesting of arrays and objects.  The parser refuses deeper
  input (the contract itself never nests beyond 3).
* Numbers are finite: ``NaN``, ``Infinity`` and literals that overflow a double
  (``1e400``) are refused where a number is expected.
* ``MAX_RECORD_BYTES``: the largest Kafka record the engine sends (an event, or a
  dead letter cut to ``MAX_EVENT_BYTES``, plus its key and headers): the producer's
  ``max_request_size`` leaves room for it.
* ``EARLIEST_DATE`` / ``LATEST_DATE``: the dates a command-line option may name
  (``--as-of``, ``--cutoff``, ``--known-at``, ``--until``).  Far from the limits of
  Python's ``date`` (year 1-9999), so the dates derived from them (due dates,
  windows, end of day) always exist.
* ``recorded_at`` lies between ``EARLIEST_RECORDED_YEAR`` and the moment the engine
  received the event plus ``RECORDED_AT_SLACK`` (clocks of source systems drift;
  a day also covers every time zone).  ``occurred_at`` years lie within
  ``EARLIEST_CLINICAL_YEAR`` .. ``LATEST_CLINICAL_YEAR`` and not after
  ``recorded_at`` (plus a day: a local clinical date may be the next UTC day).
"""

from __future__ import annotations

from datetime import date, timedelta

MAX_EVENT_BYTES = 256 * 1024
# A Kafka record may carry, besides the event: its key (a patient id, <= 64 bytes), the
# dead-letter headers (reason, origin: a few hundred bytes) and the record batch's own
# overhead.
MAX_RECORD_BYTES = MAX_EVENT_BYTES + 64 * 1024
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2999, 12, 31)
MAX_JSON_DEPTH = 200  # jiter's fixed recursion limit
EARLIEST_CLINICAL_YEAR = 1900
LATEST_CLINICAL_YEAR = 2100
EARLIEST_RECORDED_YEAR = 1900
RECORDED_AT_SLACK = timedelta(days=1)
OCCURRED_AFTER_RECORDED_SLACK_DAYS = 1
