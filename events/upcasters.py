"""Upcasters: older wire shapes a source system still sends, lifted one version at a time.

An upcaster takes the raw event dict at version N and returns it at version N+1.
They are chained until the registry's current version, so adding v2 of a type
means writing one ``v1 -> v2`` function, never touching older ones.

Shipped: ``ihc.recorded`` v0, in which pathology systems sent HER2 as one free
text field (``"her2": "2+ FISH neg"``) instead of ``her2_ihc`` + ``her2_ish``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mbcjourney.events.errors import InvalidEvent

RawEvent = dict[str, Any]
Upcaster = Callable[[RawEvent], RawEvent]

# Matched against stripped text, with a greedy tail: a lazy ``(.*?)\s*$`` backtracked
# quadratically (a 200 kB field took minutes).  The text is bounded first anyway.
_HER2_TEXT = re.compile(r"(?:ihc\s*)?(0|1\+|2\+|3\+)(.*)", re.IGNORECASE | re.DOTALL)
MAX_HER2_TEXT = 200
_ISH_WORDS = r"(?:fish|ish|sish|cish|ddish)"
_NOT_AMPLIFIED = re.compile(
    rf"{_ISH_WORDS}?\s*(?:neg(?:ative)?|not[\s_-]*amplified|non[\s_-]*amplified|-)$", re.IGNORECASE
)
_AMPLIFIED = re.compile(rf"{_ISH_WORDS}?\s*(?:pos(?:itive)?|amplified|\+)$", re.IGNORECASE)
_EQUIVOCAL = re.compile(rf"{_ISH_WORDS}?\s*equivocal$", re.IGNORECASE)
_ISH_PENDING = re.compile(rf"(?:{_ISH_WORDS}\s*)?(?:pending|not[\s_-]*done|nd)?$", re.IGNORECASE)


def parse_her2_text(text: str) -> tuple[str, str]:
    """Split a free-text HER2 result into (IHC score, ISH result) of wire format v1.

    >>> parse_her2_text("2+ FISH neg")
    ('2+', 'not_amplified')
    """
    if len(text) > MAX_HER2_TEXT:
        raise ValueError(f"HER2 text longer than {MAX_HER2_TEXT} characters")
    match = _HER2_TEXT.fullmatch(text.strip())
    if match is None:
        raise ValueError("HER2 text must start with an IHC score 0, 1+, 2+ or 3+")
    score, rest = match.group(1), match.group(2).strip()
    for pattern, ish in (
        (_NOT_AMPLIFIED, "not_amplified"),
        (_AMPLIFIED, "amplified"),
        (_EQUIVOCAL, "equivocal"),
        (_ISH_PENDING, "not_done"),
    ):
        if pattern.fullmatch(rest):
            return score, ish
    raise ValueError("HER2 ISH part not understood (expected e.g. 'FISH neg', 'ISH amplified')")


def ihc_recorded_v0_to_v1(event: RawEvent) -> RawEvent:
    payload = event.get("payload")
    if not isinstance(payload, dict):
        raise InvalidEvent.single("payload", "must be an object", event_type="ihc.recorded")
    payload = dict(payload)
    her2 = payload.pop("her2", None)
    if not isinstance(her2, str):
        raise InvalidEvent.single(
            "payload.her2", "required free-text HER2 result in schema_version 0",
            event_type="ihc.recorded",
        )
    try:
        payload["her2_ihc"], payload["her2_ish"] = parse_her2_text(her2)
    except ValueError as exc:
        raise InvalidEvent.single("payload.her2", str(exc), event_type="ihc.recorded") from None
    return {**event, "schema_version": 1, "payload": payload}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("ihc.recorded", 0): ihc_recorded_v0_to_v1,
}


def upcast(event: RawEvent, event_type: str, version: int, target: int) -> RawEvent:
    """Apply the chain from ``version`` to ``target``, one step at a time."""
    while version < target:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise InvalidEvent.single(
                "schema_version", f"version {version} of {event_type} is not supported",
                event_type=event_type,
            )
        event = step(event)
        version += 1
    return event
