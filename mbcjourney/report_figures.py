"""The report's pictures, drawn with matplotlib's Agg canvas into PNG bytes.

Figures are built as ``matplotlib.figure.Figure`` objects on a ``FigureCanvasAgg``:
no pyplot figure manager, no global backend switch, never a window.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from lifelines import KaplanMeierFitter
from lifelines.plotting import add_at_risk_counts
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from mbcjourney.projections import LineRow
from mbcjourney.projections.families import (
    FAMILY_COLOURS,
    OFF_TREATMENT_COLOUR,
    PROGRESSION_COLOUR,
    RegimenClass,
)
from mbcjourney.report_stats import (
    DAYS_PER_MONTH,
    GROUP_LABELS,
    months,
)

DPI: Final = 110

GROUP_COLOURS: Final[Mapping[str, str]] = {
    "1": "#0072B2", "2": "#009E73", "3": "#D55E00", "unknown": "#7F7F7F",
}


@dataclass(frozen=True)
class LineSpan:
    number: int
    regimen: str
    family: RegimenClass
    start: date
    end: date  # the line's end, or the end of follow-up while it goes on


@dataclass(frozen=True)
class Timeline:
    """One patient's journey as the swimmer plot draws it."""

    patient_id: str
    group: str
    status: str
    inclusion: date
    end: date  # death, else the last fact date
    lines: tuple[LineSpan, ...]
    progressions: tuple[date, ...]
    imaging: tuple[date, ...]  # tumour assessments (bone scans not drawn)
    biopsies: tuple[date, ...]
    death: date | None

    def at(self, day: date) -> float:
        """Months since inclusion."""
        return months((day - self.inclusion).days)

    @property
    def follow_up_months(self) -> float:
        return self.at(self.end)


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _month_ticks(limit: float) -> list[float]:
    step = 6 if limit <= 60 else 12
    return [float(m) for m in range(0, int(limit) + step, step) if m <= limit]


# --- Kaplan-Meier -------------------------------------------------------------------


def km_figure(by_group: Mapping[str, Sequence[LineRow]]) -> bytes:
    """First-line PFS by group: KM curves with 95 % bands, censor ticks, numbers at risk."""
    figure = _new_figure(10.5, 6.6 + 0.25 * len(by_group))
    ax = figure.add_subplot()
    fitters = []
    longest = 1.0
    for group, rows in by_group.items():
        times = [months(r.pfs_days) for r in rows]
        longest = max(longest, *times)
        label = f"{GROUP_LABELS[group]} (n={len(rows)})"
        fitter = KaplanMeierFitter(label=label).fit(times, [r.pfs_event for r in rows])
        fitter.plot_survival_function(
            ax=ax, ci_show=True, ci_alpha=0.12, show_censors=True, color=GROUP_COLOURS[group],
            censor_styles={"ms": 5, "marker": "|", "mew": 1}, linewidth=1.8,
        )
        fitters.append(fitter)
    ticks = _month_ticks(longest)
    if ticks[-1] < longest:  # end the axis on a tick, so the last at-risk column is there
        ticks.append(ticks[-1] + ticks[1] - ticks[0])
    ax.set_xlim(0, ticks[-1])
    ax.set_xticks(ticks)
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, color="#555555", linestyle=":", linewidth=1)
    ax.text(ax.get_xlim()[1], 0.51, "median", ha="right", va="bottom", fontsize=8,
            color="#555555")
    ax.set_xlabel("Months since the start of the first line (1 month = 30.4375 days)")
    ax.set_ylabel("Progression-free probability")
    ax.set_title("First-line progression-free survival by phenotype group (Kaplan-Meier, 95 % CI)")
    ax.grid(True, color="#EEEEEE")
    ax.legend(loc="upper right", fontsize=9, frameon=True)
    add_at_risk_counts(*fitters, ax=ax, fig=figure, rows_to_show=["At risk"],
                       labels=[GROUP_LABELS[g] for g in by_group], ypos=-0.5)
    figure.tight_layout()
    return _png(figure)


# --- swimmer plot -------------------------------------------------------------------

_BAR_HEIGHT: Final = 0.62
_MARK_STYLES: Final[Mapping[str, Mapping[str, Any]]] = {  # Line2D keyword arguments
    "imaging": {"marker": "|", "markersize": 5, "markeredgewidth": 0.9, "color": "#222222",
                "alpha": 0.75, "label": "tumour imaging"},
    "progression": {"marker": "v", "markersize": 5.5, "color": PROGRESSION_COLOUR,
                    "label": "progression"},
    "biopsy": {"marker": "^", "markersize": 4.5, "markerfacecolor": "white",
               "markeredgecolor": "#222222", "markeredgewidth": 0.8, "label": "biopsy"},
    "death": {"marker": "X", "markersize": 7, "color": "black", "label": "death"},
    "left": {"marker": "o", "markersize": 5.5, "markerfacecolor": "white",
             "markeredgecolor": "black", "label": "lost / withdrawn"},
    "followed": {"marker": ">", "markersize": 5, "color": "#555555",
                 "label": "in follow-up at the data end"},
}
_END_MARKS: Final = frozenset({"death", "left", "followed"})


def swimmer_figure(timelines: Sequence[Timeline], title: str, x_max: float) -> bytes:
    """One horizontal bar per patient from inclusion, coloured by line family, with marks.

    Rows are sorted by follow-up, longest on top; ``x_max`` (months) is shared by
    every panel so that panels compare.
    """
    rows = sorted(timelines, key=lambda t: (t.follow_up_months, t.patient_id))
    figure = _new_figure(12.5, 1.9 + 0.2 * max(len(rows), 8))
    ax = figure.add_subplot()
    # Collected first, drawn with one call per kind: fast for hundreds of rows.
    segments: dict[RegimenClass, tuple[list[int], list[float], list[float]]] = {}
    marks: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("imaging", "biopsy", "progression", "death", "left", "followed")}

    def mark(kind: str, x: float, y: float) -> None:
        marks[kind][0].append(x)
        marks[kind][1].append(y)

    for y, t in enumerate(rows):
        for line in t.lines:
            ys, lefts, widths = segments.setdefault(line.family, ([], [], []))
            ys.append(y)
            lefts.append(t.at(line.start))
            widths.append(max(t.at(line.end) - t.at(line.start), 0.15))
        for day in t.imaging:
            mark("imaging", t.at(day), y)
        for day in t.biopsies:
            mark("biopsy", t.at(day), y - 0.42)
        for day in t.progressions:
            mark("progression", t.at(day), y + 0.42)
        end = t.follow_up_months
        if t.death is not None:
            mark("death", end, y)
        elif t.status in ("lost_to_followup", "withdrawn"):
            mark("left", end, y)
        else:
            mark("followed", end + 0.25, y)
    ax.barh(range(len(rows)), [t.follow_up_months for t in rows], left=0,
            height=_BAR_HEIGHT * 0.35, color=OFF_TREATMENT_COLOUR, zorder=1)
    for family, (rows_y, lefts, widths) in segments.items():
        ax.barh(rows_y, widths, left=lefts, height=_BAR_HEIGHT, color=FAMILY_COLOURS[family],
                edgecolor="white", linewidth=0.8, zorder=2)
    for kind, (xs, marks_y) in marks.items():
        if xs:
            ax.plot(xs, marks_y, linestyle="none", zorder=5 if kind in _END_MARKS else 4,
                    **_MARK_STYLES[kind])
    ax.set_yticks(range(len(rows)), [t.patient_id for t in rows], fontsize=7)
    ax.set_ylim(-0.8, len(rows) - 0.2)
    ticks = _month_ticks(x_max)
    ax.set_xticks(ticks)
    ax.set_xlim(-1.5, x_max + 1.0)  # baseline imaging and biopsy may precede inclusion
    ax.axvline(0, color="#999999", linewidth=0.8, zorder=0)
    ax.set_xlabel(f"Months since inclusion (1 month = {DAYS_PER_MONTH} days)")
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(True, axis="x", color="#EEEEEE", zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles: list[Artist] = [Patch(facecolor=colour, label=family.value)
                             for family, colour in FAMILY_COLOURS.items()]
    handles.append(Patch(facecolor=OFF_TREATMENT_COLOUR, label="no line in progress"))
    handles += [Line2D([], [], linestyle="none", **style) for style in _MARK_STYLES.values()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5,
              frameon=False, title="Line (drugs at start)", title_fontsize=9, alignment="left")
    figure.tight_layout()
    return _png(figure)
