"""Admission under generated hostile input: a verdict, never a crash, never an echo.

Hypothesis grows the hostile corpus of ``tests/support/hostile.py``: any JSON value
in any field, sender-chosen keys anywhere, truncated bytes.  Admission must answer
with an event or an :class:`InvalidEvent` naming contract fields only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbcjourney.errors import InvalidEvent
from mbcjourney.events.codec import decode_stored
from mbcjourney.processors.admission import decode_record
from tests.support.hostile import _valid_journey

RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)
TEMPLATES = _valid_journey("P-PROP01")
MARK = "Zq"  # every generated key starts with it, so an echo is recognisable

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
marked_keys = st.text(min_size=2, max_size=40).map(lambda text: MARK + text)


@st.composite
def hostile_events(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    event: dict[str, Any] = orjson.loads(orjson.dumps(draw(st.sampled_from(TEMPLATES))))
    added: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        payload = event.get("payload")
        where = payload if isinstance(payload, dict) and draw(st.booleans()) else event
        action = draw(st.sampled_from(["set", "add", "delete"]))
        if action == "set" and where:
            where[draw(st.sampled_from(sorted(where)))] = draw(json_values)
        elif action == "add":
            key = draw(marked_keys)
            added.append(key)
            where[key] = draw(json_values)
        elif where:
            del where[draw(st.sampled_from(sorted(where)))]
    payload = event.get("payload")
    final: dict[str, Any] = payload if isinstance(payload, dict) else {}
    added = [key for key in added if key in event or key in final]  # not deleted since
    try:
        raw = orjson.dumps(event)
    except TypeError:  # a generated integer beyond 64 bits: write it as text
        raw = json.dumps(event).encode()
    if draw(st.integers(0, 9)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw, added


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_events())
def test_admission_answers_with_a_verdict_and_never_echoes_a_key(
        case: tuple[bytes, list[str]]) -> None:
    raw, added = case
    outcome: InvalidEvent | None = None
    try:
        event, body = decode_record(raw, received_at=RECEIVED)
    except InvalidEvent as error:
        outcome = error
    if outcome is not None:
        assert outcome.errors
        assert MARK not in str(outcome), str(outcome)
        assert all(e.field and e.reason for e in outcome.errors)
    else:
        assert decode_stored(body) == event  # what is stored reads back as admitted
        assert not added  # an unknown key is never accepted
        assert event.patient_id == "P-PROP01"
