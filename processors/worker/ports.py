"""What the batch processor writes to, as small ports (the unit tests pass fakes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from mbcjourney.processors.applied_events import PendingRow
from mbcjourney.processors.deadletters import DeadLetter
from mbcjourney.processors.kafkaio import SourceRecord
from mbcjourney.processors.store import Checkpoint
from mbcjourney.projections import Journey


class Changelog(Protocol):
    """Makes a history delta durable; the awaitable resolves once the broker has it."""

    def append(self, partition: int, offset: int, value: bytes) -> Awaitable[Any]: ...


class DeadLetters(Protocol):
    def send(self, letter: DeadLetter) -> Awaitable[Any]: ...


class Ranges(Protocol):
    async def read(self, partition: int, start: int, end: int) -> list[SourceRecord]: ...


RowWriter = Callable[[Sequence[Journey], Sequence[Checkpoint], Sequence[PendingRow]], object]
"""Writes rows, checkpoints and the applied events into the SQL log in ONE transaction."""
