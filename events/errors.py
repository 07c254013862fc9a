"""One exception tree for the whole engine.

    JourneyError
    ├── InvalidEvent          input that breaks the event contract (field + reason)
    │   └── EventConflict     an event_id reused with different content (dead-lettered too)
    ├── ConfigurationError    bad settings, URL or command-line option
    └── ServiceUnavailable    Kafka / database could not be reached

Infrastructure errors are translated into these where they cross a boundary, so
callers never need to catch SQLAlchemy or Kafka exceptions.  Messages name
fields and reasons, never payload values: they end up in logs.
"""

from __future__ import annotations

from dataclasses import dataclass


class JourneyError(Exception):
    """Root of every error the engine raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One broken rule: the dotted path of the field and why it was refused."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class InvalidEvent(JourneyError):
    """Input that is not a valid event; carries every field error found."""

    def __init__(self, errors: list[FieldError], *, event_type: str | None = None) -> None:
        self.errors = errors
        self.event_type = event_type
        super().__init__("; ".join(str(e) for e in errors))

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the field errors when crossing a process boundary (parallel ingest).
        return (_invalid_event, (self.errors, self.event_type))

    @property
    def reason_code(self) -> str:
        """A short, stable, value-free key for counting rejections by reason."""
        first = self.errors[0]
        return f"{first.field}: {first.reason}"

    def detached(self) -> InvalidEvent:
        """The same error, without the traceback and context of where it was raised.

        Keep this one after handling: a raised error's traceback holds the raising
        frames, and through them everything they referenced (a whole batch of lines),
        in a reference cycle that only the cycle collector can free.
        """
        return InvalidEvent(self.errors, event_type=self.event_type)

    @classmethod
    def single(cls, field: str, reason: str, *, event_type: str | None = None) -> InvalidEvent:
        return cls([FieldError(field, reason)], event_type=event_type)


def _invalid_event(errors: list[FieldError], event_type: str | None) -> InvalidEvent:
    return InvalidEvent(errors, event_type=event_type)


class EventConflict(InvalidEvent):
    """The same event_id arrived again with different content: refused, the first one stays.

    An :class:`InvalidEvent`, so it is dead-lettered and counted like any rejection;
    the reason names the field, never the id (it is input).
    """

    REASON = FieldError("event_id", "already stored with different content")

    def __init__(self, event_type: str | None = None) -> None:
        super().__init__([self.REASON], event_type=event_type)


class ConfigurationError(JourneyError):
    """A setting, URL or option that cannot work."""


class ServiceUnavailable(JourneyError):
    """A required service (Kafka broker, database) did not answer."""
