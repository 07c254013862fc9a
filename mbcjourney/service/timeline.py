"""A patient's journey as an SVG timeline, in the report's swimmer-plot vocabulary.

Lines of therapy are bars coloured by treatment family (the report's colours,
:mod:`mbcjourney.projections.families`); tumour imaging and bone scans are
ticks, progressions and biopsies triangles, death a cross, as in the report.
Each mark carries ``data-kind`` and ``data-date`` so that a test (or a screen
reader's user, through its ``<title>``) can read exactly what is drawn.  Only
geometry is computed here; the template writes the SVG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from mbcjourney.projections import LineRow
from mbcjourney.projections.facts import PatientFacts
from mbcjourney.projections.families import (
    FAMILY_COLOURS,
    OFF_TREATMENT_COLOUR,
    PROGRESSION_COLOUR,
    RegimenClass,
    regimen_class,
)

WIDTH = 960
LEFT, RIGHT = 16, 16  # margins inside the view box
BAR_Y, BAR_H = 62, 26
MARK_LABELS = {"imaging": "tumour imaging", "bone_scan": "bone scan",
               "progression": "progression", "biopsy": "biopsy", "death": "death"}
MARK_Y = {"imaging": 48, "bone_scan": 48, "progression": 110, "biopsy": 30, "death": 75}


@dataclass(frozen=True)
class Bar:
    number: int
    regimen: str
    family: str
    colour: str
    start: date
    end: date
    ongoing: bool
    x: float
    width: float
    ink: str  # the label's colour: whichever of black and white contrasts more


@dataclass(frozen=True)
class Mark:
    kind: str
    label: str
    day: date
    x: float
    y: float


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class Timeline:
    start: date
    end: date
    bars: tuple[Bar, ...]
    marks: tuple[Mark, ...]
    ticks: tuple[Tick, ...]
    follow_up_x: float
    follow_up_width: float
    width: int = WIDTH
    height: int = 150
    off_colour: str = OFF_TREATMENT_COLOUR
    progression_colour: str = PROGRESSION_COLOUR


@dataclass(frozen=True)
class LegendItem:
    label: str
    colour: str


def legend() -> list[LegendItem]:
    """The families in the report's legend order."""
    return [LegendItem(family.value, colour) for family, colour in FAMILY_COLOURS.items()]


def build(facts: PatientFacts, lines: Sequence[LineRow], today: date,
          cytotoxic_classes: Iterable[str]) -> Timeline | None:
    """The timeline from inclusion (or the first fact) to death or ``today``."""
    marks_at = _mark_days(facts)
    days = [d for _, d in marks_at] + [row.start_date for row in lines]
    if facts.inclusion is not None:
        days.append(facts.inclusion.occurred_on)
    if not days:
        return None
    start = min(days)
    death = facts.death.occurred_on if facts.death else None
    end = max([death or max(today, *days), *days])
    if end <= start:
        end = start + timedelta(days=1)
    span = (end - start).days

    def x(day: date) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (day - start).days / span

    classes = tuple(cytotoxic_classes)
    bars = []
    for row in lines:
        family: RegimenClass = regimen_class(row.regimen, classes)
        stop = row.end_date or end
        bars.append(Bar(row.line_number, row.regimen, family.value, FAMILY_COLOURS[family],
                        row.start_date, stop, row.end_date is None, x(row.start_date),
                        max(x(stop) - x(row.start_date), 2.0), _ink(FAMILY_COLOURS[family])))
    marks = tuple(Mark(kind, MARK_LABELS[kind], day, x(day), MARK_Y[kind])
                  for kind, day in sorted(marks_at, key=lambda m: (m[1], m[0])))
    origin = facts.inclusion.occurred_on if facts.inclusion else start
    return Timeline(start, end, tuple(bars), marks, tuple(_ticks(start, end, x)),
                    x(origin), x(end) - x(origin))


def _ink(colour: str) -> str:
    """Black or white text on ``colour`` (#RRGGBB), by WCAG relative luminance."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    on_black, on_white = (luminance + 0.05) / 0.05, 1.05 / (luminance + 0.05)
    return "#000000" if on_black >= on_white else "#ffffff"


def _mark_days(facts: PatientFacts) -> list[tuple[str, date]]:
    found = [("imaging", i.occurred_on) for i in facts.tumour_assessments]
    found += [("bone_scan", i.occurred_on) for i in facts.bone_scans]
    found += [("progression", d) for d in sorted(set(facts.progression_dates))]
    found += [("biopsy", b.occurred_on) for b in facts.biopsies]
    if facts.death is not None:
        found.append(("death", facts.death.occurred_on))
    return found


def _ticks(start: date, end: date, place: Callable[[date], float]) -> list[Tick]:
    """A tick at each 1 January (each July too for journeys under two years)."""
    months = (1, 7) if (end - start).days < 730 else (1,)
    ticks = []
    for year in range(start.year, end.year + 1):
        for month in months:
            day = date(year, month, 1)
            if start <= day <= end:
                ticks.append(Tick(place(day), f"{year}" if month == 1 else f"Jul {year}"))
    return ticks
