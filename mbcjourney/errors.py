"""The exception tree, re-exported: it lives with the events (:mod:`mbcjourney.events.errors`).

Kept so that ``from mbcjourney.errors import JourneyError`` goes on working.
"""

from mbcjourney.events.errors import (
    ConfigurationError,
    EventConflict,
    FieldError,
    InvalidEvent,
    JourneyError,
    ServiceUnavailable,
)

__all__ = [
    "ConfigurationError",
    "EventConflict",
    "FieldError",
    "InvalidEvent",
    "JourneyError",
    "ServiceUnavailable",
]
