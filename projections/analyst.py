"""Analyst projections: a study question written as a pure function, replayed like a built-in.

Why: analysts need their own derived tables (time from progression to biopsy,
treatment-free intervals, ...) computed from exactly the history the engine's
own projections see -- sorted by clinical time, retractions applied, ``--known-at``
and ``--cutoff`` honoured -- without touching the engine.  A projection is a
Python file; ``journey replay --projection path/to/file.py`` folds any event
source into a new, versioned table with it.  This module is the API, pure like
every projection; loading the file from its path is the processors' job
(:mod:`mbcjourney.processors.analyst_loader`).  Users import both from
:mod:`mbcjourney.analyst`.

Writing one::

    from mbcjourney.analyst import Column, PatientHistory, ClinicalSettings, projection

    @projection("first_event", columns=[Column("event_type", str), Column("on", date)])
    def first_event(history: PatientHistory, settings: ClinicalSettings):
        if history.events:
            first = history.events[0]
            yield {"event_type": first.event_type, "on": first.occurred_on}

The contract:

* The function receives one patient's :class:`PatientHistory` (``events`` sorted
  by clinical time, typed frozen events of :mod:`mbcjourney.events.catalogue`)
  and the study's :class:`ClinicalSettings`; it returns (or yields) rows, each a
  mapping ``{column: value}`` or a sequence in column order.  No I/O, no clock:
  the same history must always give the same rows.
* Every table starts with ``patient_id`` (added for you: do not declare it).
  Columns marked ``key=True`` identify a row together with ``patient_id``;
  without key columns a projection returns at most one row per patient.
* Column types: ``str``, ``int``, ``float``, ``bool``, ``date``, ``datetime``
  (zone-aware).  ``None`` is allowed unless ``nullable=False``; keys never are.
* Patients with nothing in view, and patients who withdrew consent with scope
  ``erase``, are never passed to a projection.
* Reuse the engine's rules rather than re-deriving them: :func:`facts` (the
  clinical facts of the history) and :func:`lines` (numbered treatment lines).

A failure names the patient and the event: an exception raised while iterating
``history.events`` is attributed to the event being processed; otherwise to an
event held in a local variable of the failing frame when there is exactly one;
otherwise to the patient's last event.

Errors (all :class:`~mbcjourney.events.errors.JourneyError`)::

    ProjectionLoadError   the file cannot be imported, holds no projection, or the
                          function has the wrong signature  (a ConfigurationError)
    ProjectionFailed      the projection raised, or returned a row that breaks its
                          declared columns; names the patient and the event
"""

from __future__ import annotations

import inspect
import keyword
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Final

from mbcjourney.events.catalogue import ClinicalEvent
from mbcjourney.events.envelope import Envelope
from mbcjourney.events.errors import ConfigurationError, JourneyError
from mbcjourney.events.vocabulary import WithdrawalScope
from mbcjourney.projections.facts import PatientFacts, collect_facts
from mbcjourney.projections.history import PatientHistory
from mbcjourney.projections.lines import Line, derive_lines
from mbcjourney.projections.settings import ClinicalSettings

__all__ = [
    "ClinicalSettings",
    "Column",
    "PatientHistory",
    "Projection",
    "ProjectionFailed",
    "ProjectionLoadError",
    "Row",
    "erased",
    "facts",
    "lines",
    "projection",
    "same_file",
]

ColumnType = type[str] | type[int] | type[float] | type[bool] | type[date] | type[datetime]
Row = Mapping[str, object] | Sequence[object]
ProjectFunction = Callable[[PatientHistory, ClinicalSettings], Iterable[Row] | None]

SUPPORTED_TYPES: Final[tuple[type, ...]] = (str, int, float, bool, date, datetime)
PATIENT_ID: Final = "patient_id"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_COLUMN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ProjectionLoadError(ConfigurationError):
    """The projection file cannot be used: import error, no projection, wrong signature."""


class ProjectionFailed(JourneyError):
    """A projection raised, or broke its declared columns, on one patient's history."""

    def __init__(self, projection: str, patient_id: str, event_id: str | None, reason: str,
                 location: str | None = None) -> None:
        self.projection = projection
        self.patient_id = patient_id
        self.event_id = event_id
        self.reason = reason
        self.location = location
        where = f" at {location}" if location else ""
        super().__init__(
            f"projection {projection!r} failed on patient {patient_id}, "
            f"event {event_id or '(none)'}: {reason}{where}"
        )


@dataclass(frozen=True)
class Column:
    """One output column: a name, a Python type, and whether it is part of the row's key."""

    name: str
    type: ColumnType
    key: bool = False
    nullable: bool = True

    def __post_init__(self) -> None:
        if not _COLUMN.match(self.name) or keyword.iskeyword(self.name):
            raise ProjectionLoadError(
                f"column {self.name!r}: use lower-case letters, digits and _ (at most 63)")
        if self.name == PATIENT_ID:
            raise ProjectionLoadError("column 'patient_id' is added for you: do not declare it")
        if self.type not in SUPPORTED_TYPES:
            names = ", ".join(t.__name__ for t in SUPPORTED_TYPES)
            raise ProjectionLoadError(f"column {self.name!r}: type must be one of {names}")

    @property
    def allows_none(self) -> bool:
        return self.nullable and not self.key


@dataclass(frozen=True)
class Projection:
    """A named projection: declared columns and the pure function that produces the rows."""

    name: str
    columns: tuple[Column, ...]
    function: ProjectFunction
    description: str = ""
    source_file: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ProjectionLoadError(
                f"projection name {self.name!r}: use lower-case letters, digits and _, "
                "starting with a letter (at most 31)")
        if not self.columns:
            raise ProjectionLoadError(f"projection {self.name!r} declares no columns")
        names = [c.name for c in self.columns]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ProjectionLoadError(f"projection {self.name!r}: repeated column(s) "
                                      f"{', '.join(repeated)}")

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column of the table, ``patient_id`` first."""
        return (PATIENT_ID, *(c.name for c in self.columns))

    @property
    def key_names(self) -> tuple[str, ...]:
        return (PATIENT_ID, *(c.name for c in self.columns if c.key))

    def rows(self, history: PatientHistory, settings: ClinicalSettings
             ) -> list[tuple[object, ...]]:
        """The checked rows of one patient (``patient_id`` first), or ``ProjectionFailed``."""
        tracked = _Tracked(history.events)
        view = replace(history, events=tracked)
        try:
            produced = self.function(view, settings)
            raw = [] if produced is None else list(produced)
        except Exception as exc:
            raise self._failure(history, tracked, exc) from exc
        return self._check(history, raw)

    # --- checking -----------------------------------------------------------------

    def _check(self, history: PatientHistory, raw: list[Row]) -> list[tuple[object, ...]]:
        pid = history.patient_id
        last = _last_event_id(history)
        keyed = any(c.key for c in self.columns)
        if not keyed and len(raw) > 1:
            raise ProjectionFailed(self.name, pid, last, f"returned {len(raw)} rows but "
                                   "declares no key column (at most one row per patient)")
        rows: list[tuple[object, ...]] = []
        seen: set[tuple[object, ...]] = set()
        for number, row in enumerate(raw, start=1):
            values = self._values(row, pid, last, number)
            key = tuple(v for v, c in zip(values, self.columns, strict=True) if c.key)
            if keyed and key in seen:
                raise ProjectionFailed(self.name, pid, last, f"row {number}: repeated key "
                                       f"({', '.join(c.name for c in self.columns if c.key)})")
            seen.add(key)
            rows.append((pid, *values))
        return rows

    def _values(self, row: Row, pid: str, last: str | None, number: int) -> list[object]:
        names = [c.name for c in self.columns]
        if isinstance(row, Mapping):
            extra = sorted(set(map(str, row)) - set(names))
            if extra:
                raise ProjectionFailed(self.name, pid, last,
                                       f"row {number}: undeclared column(s) {', '.join(extra)}")
            values = [row.get(n) for n in names]
        elif isinstance(row, Sequence) and not isinstance(row, str | bytes):
            if len(row) != len(names):
                raise ProjectionFailed(self.name, pid, last, f"row {number}: {len(row)} values "
                                       f"for {len(names)} declared columns")
            values = list(row)
        else:
            raise ProjectionFailed(self.name, pid, last, f"row {number}: a row must be a "
                                   f"mapping or a sequence, not {type(row).__name__}")
        return [_checked(self.name, c, v, pid, last, number)
                for c, v in zip(self.columns, values, strict=True)]

    def _failure(self, history: PatientHistory, tracked: _Tracked, exc: Exception
                 ) -> ProjectionFailed:
        event = tracked.current
        frames = traceback.extract_tb(exc.__traceback__)
        location = None
        if self.source_file is not None:
            own = [f for f in frames if same_file(f.filename, self.source_file)]
            if own:
                location = f"{Path(own[-1].filename).name}:{own[-1].lineno}"
        if event is None:
            event = _event_in_locals(exc.__traceback__, self.source_file)
        event_id = str(event.event_id) if event is not None else _last_event_id(history)
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return ProjectionFailed(self.name, history.patient_id, event_id, reason, location)


def _checked(projection: str, column: Column, value: object, pid: str, last: str | None,
             number: int) -> object:
    def fail(why: str) -> ProjectionFailed:
        return ProjectionFailed(projection, pid, last, f"row {number}, column "
                                f"{column.name!r}: {why}")

    if value is None:
        if not column.allows_none:
            raise fail("must not be empty (None)")
        return None
    kind = column.type
    if kind is float and type(value) is int:
        return float(value)
    if kind is int or kind is float:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    elif kind is date:
        ok = isinstance(value, date) and not isinstance(value, datetime)
    elif kind is datetime:
        ok = isinstance(value, datetime) and value.tzinfo is not None
        if isinstance(value, datetime) and not ok:
            raise fail("a datetime must carry a time zone")
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise fail(f"expected {kind.__name__}, got {type(value).__name__}")
    if isinstance(value, str) and type(value) is not str:  # StrEnum members: store the text
        return str(value)
    return value


class _Tracked(tuple[ClinicalEvent, ...]):
    """``history.events`` that remembers which event an ongoing iteration handed out."""

    current: ClinicalEvent | None

    def __new__(cls, events: Iterable[ClinicalEvent]) -> _Tracked:
        self = super().__new__(cls, events)
        self.current = None
        return self

    def __iter__(self) -> Iterator[ClinicalEvent]:
        try:
            for event in tuple.__iter__(self):
                self.current = event
                yield event
        finally:  # exhausted, or abandoned by break / an exception after the loop
            self.current = None


def same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file (a traceback's file and a projection's)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def _event_in_locals(tb: TracebackType | None, source_file: str | None) -> ClinicalEvent | None:
    """The one event held in the innermost frame of the projection's file, if exactly one."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if source_file is not None and not same_file(frame.f_code.co_filename, source_file):
            continue
        found = {id(v): v for v in frame.f_locals.values() if isinstance(v, Envelope)}
        if found:
            return next(iter(found.values())) if len(found) == 1 else None  # type: ignore[return-value]
    return None


def _last_event_id(history: PatientHistory) -> str | None:
    return str(history.events[-1].event_id) if history.events else None


# --- declaring ------------------------------------------------------------------------


def projection(name: str, columns: Sequence[Column], description: str = ""
               ) -> Callable[[ProjectFunction], Projection]:
    """Declare a projection: ``@projection("name", columns=[Column(...), ...])``."""

    def declare(function: ProjectFunction) -> Projection:
        source = inspect.getsourcefile(function)
        return Projection(name, tuple(columns), function,
                          description or inspect.getdoc(function) or "", source)

    return declare


# --- helpers: the engine's own rules ------------------------------------------------------


def facts(history: PatientHistory) -> PatientFacts:
    """The clinical facts of the history, as every built-in projection reads them."""
    return collect_facts(history)


def lines(history: PatientHistory) -> list[Line]:
    """Treatment lines numbered by the engine (start, end, end reason, regimen)."""
    return derive_lines(collect_facts(history))[0]


def erased(history: PatientHistory) -> bool:
    """Whether the patient leaves every analytic output (consent withdrawn, scope ``erase``)."""
    withdrawn = collect_facts(history).withdrawn
    return withdrawn is not None and withdrawn.payload.scope is WithdrawalScope.ERASE
