"""Writing the output contract (DESIGN section 8): CSV, JSON or Parquet, one row per entity.

Dates are ISO ``YYYY-MM-DD``, booleans ``true``/``false``, missing values empty
(CSV) or null (JSON, Parquet).  Column names and order come from the row types.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from mbcjourney.errors import ConfigurationError

FORMATS = ("csv", "json", "parquet")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


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
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
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
