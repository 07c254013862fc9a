"""Clinical facts as immutable, typed events: the contract source systems code against.

Decode raw input with :func:`decode_event`; everything downstream works with the
frozen event classes of :mod:`mbcjourney.events.catalogue`.
"""

from mbcjourney.events.catalogue import EVENT_CLASSES, ClinicalEvent
from mbcjourney.events.codec import decode_event, decode_stored, decode_with_body, encode_event
from mbcjourney.events.registry import CURRENT_VERSION, EVENT_TYPES

__all__ = [
    "CURRENT_VERSION",
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "ClinicalEvent",
    "decode_event",
    "decode_stored",
    "decode_with_body",
    "encode_event",
]
