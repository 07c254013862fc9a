"""A POST /v1/events body as numbered items, each with its original bytes.

Three forms: one JSON event, a JSON array of events, or NDJSON (one event per
line).  The items of an array are cut out of the body as they were sent (not
re-encoded), so a rejected item is dead-lettered with its original bytes.  The
array is split by a scanner that knows only strings, brackets and commas; each
item is then judged by admission like any line of ``journey ingest``.
"""

from __future__ import annotations

import io
import re

from mbcjourney.events.errors import InvalidEvent
from mbcjourney.processors.ingest import numbered_lines

JSON = "application/json"
NDJSON = "application/x-ndjson"
MEDIA_TYPES = (JSON, NDJSON)

# Tokens that matter for splitting: a whole string (escapes included), a bracket, a comma.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)
_BLANK = b" \t\r\n"


def media_type(content_type: str | None) -> str | None:
    """The body's media type if it is one the route takes (parameters such as charset ignored)."""
    if content_type is None:
        return None
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind if kind in MEDIA_TYPES else None


def check_utf8(body: bytes) -> None:
    """Raise a clear error naming the first byte that is not UTF-8."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent.single("body", f"not UTF-8 (byte {exc.start})") from None


def items(body: bytes, kind: str) -> list[tuple[int, bytes]]:
    """(item number from 1, original bytes) of each event in the body."""
    if kind == NDJSON:
        return list(numbered_lines(io.BytesIO(body)))
    stripped = body.strip(_BLANK)
    if not stripped.startswith(b"["):
        return [(1, stripped)] if stripped else []
    return list(enumerate(_array_items(stripped), start=1))


def _array_items(body: bytes) -> list[bytes]:
    """The top-level items of a JSON array, as their bytes; InvalidEvent if it is not one."""
    found: list[bytes] = []
    open_brackets: list[bytes] = []
    start = 1
    closed = False
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            open_brackets.append(b"]" if token == b"[" else b"}")
        elif token in (b"]", b"}"):
            if not open_brackets or open_brackets.pop() != token:
                raise InvalidEvent.single("body", "unbalanced brackets in the JSON array")
            if not open_brackets:
                _add(found, body[start:match.start()], last=True)
                closed = match.end() == len(body) or _rest_blank(body, match.end())
                if not closed:
                    raise InvalidEvent.single("body", "text after the closing ] of the array")
        elif token == b"," and len(open_brackets) == 1:
            _add(found, body[start:match.start()], last=False)
            start = match.end()
    if not closed:
        raise InvalidEvent.single("body", "the JSON array is not closed")
    return found


def _add(found: list[bytes], item: bytes, *, last: bool) -> None:
    item = item.strip(_BLANK)
    if item:
        found.append(item)
    elif not (last and not found):  # "[]" is an empty batch; "[1,,2]" or "[1,]" is not JSON
        raise InvalidEvent.single("body", "an empty item in the JSON array")


def _rest_blank(body: bytes, at: int) -> bool:
    return not body[at:].strip(_BLANK)
