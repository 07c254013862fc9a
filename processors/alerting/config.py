"""``journey worker --alerts``: the options, and the clock "today" is read from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ALERTS_TOPIC = "mbc.alerts"
DEFAULT_INTERVAL_S = 60.0

Clock = Callable[[], datetime]
"""Returns "now" as an aware datetime; the CLI passes :func:`system_clock`, tests a fake."""


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AlertConfig:
    """``journey worker --alerts`` options."""

    interval_s: float = DEFAULT_INTERVAL_S
    topic: str = ALERTS_TOPIC
    webhooks: Path | None = None
    clock: Clock = system_clock
