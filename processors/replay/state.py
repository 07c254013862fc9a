"""What a build is asked and what it records: options, counts, progress (saved with its rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mbcjourney.processors.replay.versions import VersionInfo
from mbcjourney.projections import View

BATCH_PATIENTS = 2000  # patients per committed batch

Advance = Callable[[int], None]
ProgressFactory = Callable[[int | None, str, str], AbstractContextManager[Advance]]


@dataclass(frozen=True)
class ReplayOptions:
    view: View = field(default_factory=View)
    batch_patients: int = BATCH_PATIENTS
    activate: bool = False


DEFAULT_OPTIONS = ReplayOptions()


@dataclass
class Counts:
    """What a build has read and folded; committed with its rows, so never counted twice."""

    read: int = 0  # records read from the source
    events: int = 0  # valid, distinct events folded
    patients: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    erased: int = 0  # records of erased patients (consent withdrawn, key destroyed): skipped

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_json(self) -> dict[str, Any]:
        return {"read": self.read, "events": self.events, "patients": self.patients,
                "duplicates": self.duplicates, "rejected": dict(sorted(self.rejected.items())),
                "erased": self.erased}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Counts:
        return cls(data.get("read", 0), data.get("events", 0), data.get("patients", 0),
                   data.get("duplicates", 0), Counter(data.get("rejected", {})),
                   data.get("erased", 0))


@dataclass
class _Progress:
    phase: str = "stage"
    staged: dict[str, int] | None = None
    folded_through: str | None = None
    counts: Counts = field(default_factory=Counts)

    def as_json(self) -> dict[str, Any]:
        return {"phase": self.phase, "staged": self.staged, "folded_through": self.folded_through,
                "counts": self.counts.as_json()}

    @classmethod
    def of(cls, data: dict[str, Any]) -> _Progress:
        return cls(data["phase"], data.get("staged"), data.get("folded_through"),
                   Counts.of(data.get("counts", {})))


@dataclass(frozen=True)
class ReplayResult:
    info: VersionInfo
    counts: Counts
    resumed_from: str | None  # the phase a resumed build went on from, None for a fresh one
    seconds: float
