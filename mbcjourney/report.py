"""``journey report``: one self-contained HTML file for the study team.

Why: the study team looks at Kaplan-Meier curves, swimmer plots and a few
counts, not at CSV files.  The report reads exactly what the exports and
``journey overdue`` read (the same projections under the same ``--cutoff`` /
``--known-at`` view), plus each patient's imaging, biopsy, progression and
death dates for the swimmer plot, and writes:

* ``report.html`` -- every picture embedded as a base64 PNG, no external file
  or network resource needed;
* ``report_files/*.png`` -- the same pictures beside it, for slides.

Usage::

    journey report --db sqlite:///study.db --output report.html --cutoff 2026-06-30

    from mbcjourney.report import ReportOptions, write_report
    summary = write_report(engine, Path("report.html"), ReportOptions(view=View(cutoff=...)))

See ``docs/report.md`` for how to read each figure and table.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Final

from mbcjourney.engine import EmbeddedEngine, project
from mbcjourney.projections import EVERYTHING, LineRow, PatientRow, View, build_history
from mbcjourney.projections.facts import PatientFacts, collect_facts
from mbcjourney.projections.findings import Finding
from mbcjourney.projections.schedule import DueAssessment
from mbcjourney.report_figures import LineSpan, Timeline, km_figure, swimmer_figure
from mbcjourney.report_stats import (
    DAYS_PER_MONTH,
    GROUP_LABELS,
    MIN_PATIENTS_FOR_VERDICT,
    REAL_WORLD_MEDIAN_MONTHS,
    Table,
    ValidationRow,
    concordance_table,
    conversion_table,
    findings_table,
    first_line_pfs_by_group,
    group_status_table,
    overdue_table,
    pfs_median,
    regimen_class,
    sample_patients,
    validation_rows,
)

Progress = Callable[[int], None]

#: Patients per swimmer panel (one panel per group) and the default sampling seed.
PANEL_SIZE: Final = 60
SAMPLE_SEED: Final = 0


@dataclass(frozen=True)
class ReportOptions:
    view: View = EVERYTHING
    as_of: date | None = None  # overdue "now"; default: the latest fact date in view
    panel_size: int = PANEL_SIZE
    seed: int = SAMPLE_SEED


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, read from the engine under one view."""

    patients: list[PatientRow]
    lines: list[LineRow]
    findings: list[Finding]
    timelines: list[Timeline]
    overdue: list[tuple[DueAssessment, int]]
    as_of: date | None
    not_drawn: int = 0  # reportable patients with no inclusion (cannot be drawn from inclusion)


@dataclass(frozen=True)
class ReportSummary:
    html: Path
    images: list[Path] = field(default_factory=list)
    patients: int = 0


# --- reading --------------------------------------------------------------------------


def _timeline(patient: PatientRow, lines: Sequence[LineRow], facts: PatientFacts,
              cytotoxic_classes: Iterable[str]) -> Timeline | None:
    if patient.inclusion_date is None or facts.last_fact_date is None:
        return None
    death = facts.death.occurred_on if facts.death else None
    end = death or facts.last_fact_date
    spans = tuple(
        LineSpan(row.line_number, row.regimen, regimen_class(row.regimen, cytotoxic_classes),
                 row.start_date, row.end_date or end)
        for row in lines
    )
    return Timeline(
        patient_id=patient.patient_id,
        group=patient.group,
        status=patient.status,
        inclusion=patient.inclusion_date,
        end=max(end, patient.inclusion_date),
        lines=spans,
        progressions=tuple(sorted(set(facts.progression_dates))),
        imaging=tuple(i.occurred_on for i in facts.tumour_assessments),
        biopsies=tuple(b.occurred_on for b in facts.biopsies),
        death=death,
    )


def load_report_data(engine: EmbeddedEngine, options: ReportOptions,
                     on_patients: Progress | None = None) -> ReportData:
    """One pass over the log under ``options.view`` (journeys and facts), then the overdue pass.

    The rows are those of ``journey export patients|lines|findings`` with the
    same view; the overdue rows those of ``journey overdue --as-of``.
    """
    patients: list[PatientRow] = []
    lines: list[LineRow] = []
    findings: list[Finding] = []
    timelines: list[Timeline] = []
    last_fact: date | None = None
    not_drawn = 0
    cytotoxic = engine.settings.cytotoxic_classes
    for patient_id, events in engine.log.histories():
        journey = project(patient_id, events, engine.settings, options.view)
        if on_patients:
            on_patients(1)
        if not journey.reportable:
            continue
        facts = collect_facts(build_history(patient_id, events, options.view))
        patients.append(journey.patient)
        lines.extend(journey.lines)
        findings.extend(journey.findings)
        timeline = _timeline(journey.patient, journey.lines, facts, cytotoxic)
        if timeline is None:
            not_drawn += 1
        else:
            timelines.append(timeline)
        if facts.last_fact_date and (last_fact is None or facts.last_fact_date > last_fact):
            last_fact = facts.last_fact_date
    as_of = options.as_of or last_fact
    overdue = engine.overdue(as_of, options.view) if as_of else []
    return ReportData(patients, lines, findings, timelines, overdue, as_of, not_drawn)


# --- writing --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Figure:
    name: str  # file name in report_files/
    png: bytes
    alt: str
    caption: str


def _table_html(table: Table, numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = []
    for row in table.rows:
        cells = "".join(
            f'<td class="{"num" if i >= numeric_from else "label"}">{html.escape(c)}</td>'
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f"<h3>{html.escape(table.title)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{note}")


def _figure_html(figure: _Figure, folder: str) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(figure.alt)}">'
            f"<figcaption>{figure.caption} File: <code>{html.escape(folder)}/"
            f"{html.escape(figure.name)}</code>.</figcaption></figure>")


def median_table(data: ReportData) -> Table:
    """First-line median PFS per group, beside the real-world (ESME) figure."""
    rows = []
    for group, group_rows in first_line_pfs_by_group(data.patients, data.lines).items():
        estimate = pfs_median(group_rows)
        real = REAL_WORLD_MEDIAN_MONTHS.get(group)
        rows.append((GROUP_LABELS[group], str(estimate.n), str(estimate.events),
                     estimate.text(), f"{real:.1f}" if real else "–"))
    return Table("First-line median PFS by group",
                 ("group", "patients", "events", "median PFS, months (95 % CI)",
                  "real-world median (ESME), months"), tuple(rows),
                 f"Months = days / {DAYS_PER_MONTH}. NR: not reached (the curve or its "
                 "confidence band stays above 0.5). Events: progression, or death before the "
                 "next line. ESME real-world group 1 figure is 12.3 overall, 14.4 with CDK4/6 "
                 "inhibitors.")


def _verdict(row: ValidationRow) -> str:
    if row.arm is None:
        return "no published reference"
    if row.estimate.n < MIN_PATIENTS_FOR_VERDICT:
        return f"not judged (n < {MIN_PATIENTS_FOR_VERDICT})"
    return "yes" if row.within else "NO"


#: Other first-line regimens with fewer patients than this are summed up in one row.
MIN_PATIENTS_OTHER_REGIMEN: Final = 10


def validation_table(data: ReportData) -> Table:
    rows = []
    rare: list[ValidationRow] = []
    for row in validation_rows(data.patients, data.lines):
        arm = row.arm
        if arm is None and row.estimate.n < MIN_PATIENTS_OTHER_REGIMEN:
            rare.append(row)
            continue
        trial = f"{arm.trial}{f' ({arm.note})' if arm.note else ''}" if arm else "–"
        published = f"{arm.published_months:.1f}" if arm else "–"
        rows.append((row.regimen, row.group, trial, published, str(row.estimate.n),
                     str(row.estimate.events), row.estimate.text(), _verdict(row)))
    if rare:
        rows.append((f"{len(rare)} other first-line regimens, fewer than "
                     f"{MIN_PATIENTS_OTHER_REGIMEN} patients each", "", "–", "–",
                     str(sum(r.estimate.n for r in rare)),
                     str(sum(r.estimate.events for r in rare)), "–", "–"))
    return Table("First-line median PFS: published trials vs this cohort",
                 ("first-line regimen", "group", "published reference (DESIGN §10)",
                  "published median, months", "patients", "events",
                  "recovered median, months (95 % CI)", "published within the CI?"),
                 tuple(rows),
                 "Recovered: Kaplan-Meier median of the exported first-line PFS (journey export "
                 "lines, line 1) of the patients whose inclusion group is the trial's and whose "
                 "first-line drugs at start are exactly the arm's (bone-targeted agents "
                 f"ignored). 95 % CI: lifelines, log(-log) bands. Judged from "
                 f"{MIN_PATIENTS_FOR_VERDICT} patients; with many arms, about one in twenty "
                 "95 % intervals misses by chance alone. Trial populations are selected: a "
                 "real-world cohort is expected to do worse (ESME, table above). Other "
                 "regimens include drugs the vocabulary does not know (see the findings).")


_CSS: Final = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
       margin: 2rem auto; max-width: 1200px; color: #222; line-height: 1.4; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem;
     margin-top: 2.5rem; } h3 { font-size: 1.05rem; margin-bottom: .4rem; }
table { border-collapse: collapse; margin: .3rem 0 .3rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; }
th { background: #f3f3f3; text-align: left; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.note, figcaption { font-size: .85rem; color: #555; max-width: 1100px; }
figure { margin: 1rem 0 2rem 0; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
dl.params { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; }
dl.params dt { font-weight: 600; } dl.params dd { margin: 0; }
nav a { margin-right: 1rem; }
"""


def _instant(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "all facts recorded"


def render_html(data: ReportData, options: ReportOptions, figures: dict[str, list[_Figure]],
                folder: str) -> str:
    view = options.view
    with_line = len({row.patient_id for row in data.lines if row.line_number == 1})
    params = (
        ("Patients", f"{len(data.patients)} ({with_line} with a first line)"),
        ("Data cut-off", view.cutoff.isoformat() if view.cutoff else "none (all facts)"),
        ("Known at", _instant(view.known_at)),
        ("Overdue as of", data.as_of.isoformat() if data.as_of else "–"),
    )
    param_html = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in params)
    swimmers = "".join(_figure_html(f, folder) for f in figures["swimmer"])
    km = "".join(_figure_html(f, folder) for f in figures["km"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Metastatic breast cancer cohort — study report</title>
<style>{_CSS}</style></head>
<body>
<h1>Metastatic breast cancer cohort — study report</h1>
<dl class="params">{param_html}</dl>
<nav><a href="#cohort">Cohort</a><a href="#pfs">First-line PFS</a>
<a href="#validation">Validation against published trials</a><a href="#swimmer">Journeys</a>
<a href="#quality">Follow-up and data quality</a><a href="#methods">Methods</a></nav>

<h2 id="cohort">Cohort</h2>
{_table_html(group_status_table(data.patients))}
{_table_html(concordance_table(data.patients, data.lines))}
{_table_html(conversion_table(data.patients))}

<h2 id="pfs">First-line progression-free survival</h2>
{km}
{_table_html(median_table(data))}

<h2 id="validation">Validation against published trials</h2>
{_table_html(validation_table(data), numeric_from=3)}

<h2 id="swimmer">Patient journeys (swimmer plots)</h2>
{swimmers}

<h2 id="quality">Follow-up and data quality</h2>
{_table_html(overdue_table(data.overdue))}
<p class="note">As of {html.escape(data.as_of.isoformat() if data.as_of else "–")}: the
schedule is evaluated with "now" = that date (facts occurred and recorded by then), as
<code>journey overdue --as-of</code> does. Patients: distinct patients with that assessment
overdue.</p>
{_table_html(findings_table(data.findings))}

<h2 id="methods">Methods</h2>
<p class="note">Every figure and table is computed from the engine's analytic outputs under
the data view above (<code>journey export patients|lines|findings</code> with the same
<code>--cutoff</code> and <code>--known-at</code>); patients who withdrew consent with scope
<em>erase</em> are absent. PFS (DESIGN §8): from the line's start to the first progression
(progression.documented or a RECIST PD imaging), death before the next line's start is an
event; otherwise censored at the last tumour assessment on the line. Durations are calendar
days, shown in months of {DAYS_PER_MONTH} days. Kaplan-Meier estimates and confidence
intervals: lifelines (log(-log) transformed Greenwood bands; the median's CI is where those
bands cross 0.5).</p>
</body></html>
"""


def _swimmer_figures(data: ReportData, options: ReportOptions) -> list[_Figure]:
    by_group: dict[str, list[Timeline]] = {g: [] for g in GROUP_LABELS}
    for t in data.timelines:
        by_group[t.group].append(t)
    chosen = sample_patients({g: [t.patient_id for t in ts] for g, ts in by_group.items()},
                             options.panel_size, options.seed)
    x_max = max((t.follow_up_months for t in data.timelines), default=12.0)
    figures = []
    for group, members in by_group.items():
        if not members:
            continue
        keep = set(chosen[group])
        panel = [t for t in members if t.patient_id in keep]
        sampled = len(panel) < len(members)
        how = (f"a random sample of {len(panel)} of the {len(members)} patients of this group "
               f"(chosen by a seeded hash of the patient id, seed {options.seed}; the same "
               "data and seed always give the same sample)" if sampled
               else f"all {len(members)} patients of this group")
        title = f"{GROUP_LABELS[group]}: {len(panel)} of {len(members)} patients"
        caption = (
            f"<strong>{html.escape(GROUP_LABELS[group])}</strong> — {how}, longest follow-up on "
            "top. Each bar runs from inclusion to death or the last fact; coloured segments are "
            "lines of therapy (family from the drugs at the line's start; white gaps separate "
            "consecutive lines), the thin grey bar time with no line in progress. Ticks: tumour "
            "imaging (bone scans not drawn); red ▼ above the bar: progression; ▵ below: biopsy; "
            "✕: death; ○: lost to follow-up or withdrawn; ▸: still followed at the end of the "
            "data."
        )
        figures.append(_Figure(f"swimmer_group_{group}.png",
                               swimmer_figure(panel, title, x_max),
                               f"Swimmer plot, {GROUP_LABELS[group]}", caption))
    if data.not_drawn:
        figures[-1:] = [
            _Figure(f.name, f.png, f.alt, f.caption + f" {data.not_drawn} patient(s) with no "
                    "inclusion event are not drawn.") for f in figures[-1:]
        ]
    return figures


#: Groups with fewer first-line patients than this are left out of the KM plot (not the table).
MIN_PATIENTS_PER_CURVE: Final = 20


def _km_figures(data: ReportData) -> list[_Figure]:
    every = first_line_pfs_by_group(data.patients, data.lines)
    by_group = {g: rows for g, rows in every.items() if len(rows) >= MIN_PATIENTS_PER_CURVE}
    if not by_group:
        return []
    day0 = sum(1 for rows in by_group.values() for r in rows if r.pfs_days == 0)
    left_out = [f"{GROUP_LABELS[g]} (n={len(rows)})" for g, rows in every.items()
                if g not in by_group]
    caption = (
        "Kaplan-Meier estimate of first-line progression-free survival by phenotype group at "
        "inclusion, with 95 % confidence bands; vertical ticks are censored lines. Below the "
        "plot: lines still at risk after each time (lifelines' count, so a line whose PFS "
        "is 0 days -- mostly censored: no tumour assessment on it yet -- is not in the first "
        "column"
        f"{f'; here {day0} such lines' if day0 else ''}). Months = days / {DAYS_PER_MONTH}. "
        "Where a curve crosses the dotted 0.5 line is the median (table below)."
    )
    if left_out:
        caption += (f" Not drawn (fewer than {MIN_PATIENTS_PER_CURVE} patients; in the table): "
                    f"{html.escape(', '.join(left_out))}.")
    return [_Figure("km_first_line_pfs.png", km_figure(by_group),
                    "Kaplan-Meier curves of first-line PFS by group", caption)]


def write_report(engine: EmbeddedEngine, output: Path, options: ReportOptions | None = None,
                 on_patients: Progress | None = None) -> ReportSummary:
    """Write ``output`` (HTML) and ``<stem>_files/*.png`` beside it."""
    options = options or ReportOptions()
    data = load_report_data(engine, options, on_patients)
    figures = {"km": _km_figures(data), "swimmer": _swimmer_figures(data, options)}
    folder = output.parent / f"{output.stem}_files"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (*folder.glob("km_*.png"), *folder.glob("swimmer_*.png")):
        stale.unlink()  # pictures of an earlier run (e.g. a group since gone)
    images = []
    for figure in (*figures["km"], *figures["swimmer"]):
        path = folder / figure.name
        path.write_bytes(figure.png)
        images.append(path)
    output.write_text(render_html(data, options, figures, folder.name), encoding="utf-8")
    return ReportSummary(output, images, len(data.patients))
