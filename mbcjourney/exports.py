"""Writing the output contract (DESIGN section 8): CSV, JSON or Parquet, one row per entity.

Dates are ISO ``YYYY-MM-DD``, booleans ``true``/``false``, missing values empty
(CSV) or null (JSON, Parquet).  Column names and order come from the row types.

CSV is opened in spreadsheets, and some text in it comes from source systems (an
unknown drug name, a dead letter's event id): a text cell that starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is written with a leading ``'``, so
a spreadsheet shows it as text rather than running it as a formula (OWASP, "CSV
injection").  A cell holding a comma, a quote, a line feed or a carriage return is
quoted (the ``csv`` module leaves a lone carriage return unquoted, which splits the
row for most readers).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from mbcjourney.errors import ConfigurationError

FORMATS = ("csv", "json", "parquet")


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTED_IF_HELD = (",", '"', "\n", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    return str(value)


def _csv_field(text: str) -> str:
    if any(c in text for c in _QUOTED_IF_HELD):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_line(cells: Iterable[str]) -> str:
    return ",".join(map(_csv_field, cells)) + "\n"


def _json_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> bytes:
    """The table as bytes in ``fmt``."""
    if fmt == "csv":
        text = io.StringIO()
        text.write(_csv_line(columns))
        for row in rows:
            text.write(_csv_line(map(_cell, row)))
        return text.getvalue().encode()
    if fmt == "json":
        records = [dict(zip(columns, map(_json_value, row), strict=True)) for row in rows]
        return orjson.dumps(records, option=orjson.OPT_INDENT_2) + b"\n"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {c: [_json_value(r[i]) if not isinstance(r[i], date) else r[i] for r in rows]
                for i, c in enumerate(columns)}
        table = pa.table(data)
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    raise ConfigurationError(f"--format must be one of {', '.join(FORMATS)}")


_STREAM_ROWS = 1000  # rows per chunk of a streamed CSV or JSON table


def stream_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str
                 ) -> Iterator[bytes]:
    """The table in ``fmt`` as chunks of bytes (the HTTP service streams them).

    CSV and JSON go out a thousand rows at a time, byte for byte what
    :func:`render` gives; Parquet is one chunk (its footer needs every row).
    """
    if fmt == "csv":
        yield _csv_line(columns).encode()
        for start in range(0, len(rows), _STREAM_ROWS):
            yield "".join(_csv_line(map(_cell, row))
                          for row in rows[start:start + _STREAM_ROWS]).encode()
    elif fmt == "json":
        if not rows:
            yield b"[]\n"
            return
        for start in range(0, len(rows), _STREAM_ROWS):
            chunk = render(columns, rows[start:start + _STREAM_ROWS], "json")
            inner = chunk[1:-2].rstrip()  # without this chunk's own "[" and "\n]\n"
            yield (b"[" if start == 0 else b",") + inner
        yield b"\n]\n"
    else:
        yield render(columns, rows, fmt)


def write_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str,
                output: Path | None, stdout: BinaryIO) -> None:
    body = render(columns, rows, fmt)
    if output is None:
        if fmt == "parquet":
            raise ConfigurationError("--format parquet needs --output FILE")
        stdout.write(body)
        stdout.flush()
    else:
        output.write_bytes(body)
