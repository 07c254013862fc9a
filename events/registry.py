"""Event classes by ``(event_type, schema_version)``: the only way to name an event.

The registry holds the *current* version of every type; older versions reach it
through the upcaster chain in :mod:`mbcjourney.events.upcasters`.
"""

from __future__ import annotations

from mbcjourney.events.catalogue import EVENT_CLASSES
from mbcjourney.events.envelope import Envelope

REGISTRY: dict[tuple[str, int], type[Envelope]] = {
    (cls.EVENT_TYPE, cls.SCHEMA_VERSION): cls for cls in EVENT_CLASSES
}
CURRENT_VERSION: dict[str, int] = {cls.EVENT_TYPE: cls.SCHEMA_VERSION for cls in EVENT_CLASSES}
EVENT_TYPES: tuple[str, ...] = tuple(sorted(CURRENT_VERSION))


def event_class(event_type: str, schema_version: int | None = None) -> type[Envelope] | None:
    """The model for a type at a version (default: current), or None when unknown."""
    version = CURRENT_VERSION.get(event_type) if schema_version is None else schema_version
    if version is None:
        return None
    return REGISTRY.get((event_type, version))
