"""The HTML report of ``journey predict evaluate``: metrics, pictures, hazard ratios, model card.

One self-contained file (pictures embedded as PNG, drawn on matplotlib's Agg
canvas; no script, nothing fetched).  The model card follows the TRIPOD+AI
items (Collins et al., BMJ 2024): intended use, data source and dates, cohort,
outcome, predictors and missing data, model building, performance (overall and
by group, with intervals), limits.  No patient id or value appears in it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mbcjourney.predict.design import Cohort
from mbcjourney.predict.evaluate import Predictions
from mbcjourney.predict.metrics import GRID, METRICS
from mbcjourney.predict.models import km_curve

TARGET_NAMES = {"pfs": "progression-free survival", "ttp": "time to progression",
                "ttnt": "time to next treatment"}


@dataclass(frozen=True)
class ReportInputs:
    metrics: dict[str, Any]
    predictions: Predictions
    data: Cohort
    hazard_ratios: list[dict[str, Any]]
    spec_hash: str
    content_hash: str
    lines: str  # first | all
    cutoff: date | None
    missing: dict[str, float]  # feature -> share of rows missing
    versions: dict[str, str]


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def calibration_figure(inputs: ReportInputs) -> str:
    """Predicted vs observed (Kaplan-Meier) risk at 365 days, by decile of predicted risk."""
    figure = Figure(figsize=(6.5, 5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    data, p = inputs.data, inputs.predictions
    at = int(np.searchsorted(GRID, 365))
    for name, survival in p.survival.items():
        risk = 1 - survival[:, at]
        edges = np.unique(np.percentile(risk, np.linspace(0, 100, 11)))
        bins = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, max(len(edges) - 2, 0))
        xs, ys = [], []
        for b in np.unique(bins):
            rows = p.rows[bins == b]
            xs.append(float(np.mean(risk[bins == b])))
            ys.append(1 - float(km_curve(data.time[rows], data.event[rows],
                                         np.array([365.0]))[0]))
        axes.plot(xs, ys, marker="o", label=name)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axes.set_xlabel("predicted risk of the event by 365 days")
    axes.set_ylabel("observed risk (Kaplan-Meier) by 365 days")
    axes.set_title("Calibration at 365 days (deciles of predicted risk)")
    axes.legend()
    return _png(figure)


def tertile_figure(inputs: ReportInputs, name: str) -> str:
    """Kaplan-Meier curves of the held-out rows by tertile of ``name``'s predicted risk."""
    figure = Figure(figsize=(6.5, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    data, p = inputs.data, inputs.predictions
    risk = p.risk[name]
    cuts = np.percentile(risk, [100 / 3, 200 / 3])
    tertile = np.searchsorted(cuts, risk, side="right")
    days = np.arange(0, 1096, 7, dtype=float)
    for k, label in enumerate(("low", "middle", "high")):
        rows = p.rows[tertile == k]
        if len(rows):
            axes.step(days / 30.4375, km_curve(data.time[rows], data.event[rows], days),
                      where="post", label=f"{label} risk (n={len(rows)})")
    axes.set_xlabel("months from line start")
    axes.set_ylabel(TARGET_NAMES.get(data.target, data.target))
    axes.set_ylim(0, 1.02)
    axes.set_title(f"{name}: Kaplan-Meier by tertile of held-out predicted risk")
    axes.legend()
    return _png(figure)


def _cell(entry: Any) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "–"
    if entry.get("low") is None:
        return f"{entry['value']:.3f}"
    return f"{entry['value']:.3f} ({entry['low']:.3f}–{entry['high']:.3f})"


def _metric_row(label: str, metrics: dict[str, Any]) -> list[str]:
    cells = [label]
    for name in METRICS:
        if name.startswith("auc_"):
            cells.append(_cell(metrics["auc"][name.removeprefix("auc_")]))
        else:
            cells.append(_cell(metrics[name]))
    return cells


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """body{font-family:sans-serif;max-width:70rem;margin:2rem auto;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}td,th{border:1px solid #ccc;
padding:.2rem .5rem;text-align:right}td:first-child,th:first-child{text-align:left}
img{max-width:100%}.note{color:#555;font-size:.9rem}dt{font-weight:bold}"""


def render(inputs: ReportInputs) -> str:
    m, data = inputs.metrics, inputs.data
    header = ["model", *(n.replace("_", " ") for n in METRICS)]
    overall = [_metric_row(name, entry) for name, entry in m["models"].items()]
    by_group = []
    for name, entry in m["models"].items():
        for group, sub in entry["by_group"].items():
            by_group.append(_metric_row(f"{name}, group {group} ({sub['rows']} rows, "
                                        f"{sub['events']} events)", sub))
    hr_rows = [[r["feature"], f"{r['hr']:.3f}", f"{r['low']:.3f}–{r['high']:.3f}"]
               for r in inputs.hazard_ratios]
    models = [n for n in m["models"] if n != "km"]
    best = max(models, key=lambda n: m["models"][n]["c_harrell"]["value"] or 0) if models else "km"
    validation = m["validation"]
    how = (f"{validation['folds']}-fold cross-validation grouped by patient (seed "
           f"{validation['seed']})" if validation["kind"] == "cross-validation" else
           f"temporal validation: trained on lines started before {validation['split']}, "
           f"tested on the {m['rows']} started on or after it")
    starts = sorted(data.starts)
    missing = [[k, f"{v:.0%}"] for k, v in sorted(inputs.missing.items(), key=lambda kv: -kv[1])
               if v > 0]
    target = TARGET_NAMES.get(data.target, data.target)
    card = f"""
<dl>
<dt>Intended use</dt><dd>Research only: to compare baseline models of {html.escape(target)}
from a line of therapy's start, as a benchmark for new algorithms of the cohort study. Not
validated for, and must not be used for, treatment decisions about individual patients.</dd>
<dt>Data</dt><dd>The study's event log, each line's features as known at the end of its start
day (point-in-time rule, docs/prediction.md); labels up to the data cut-off
({html.escape(str(inputs.cutoff or "none: every fact"))}). Lines started from
{starts[0].isoformat()} to {starts[-1].isoformat()}; {html.escape(inputs.lines)} lines.
Feature spec SHA-256 {inputs.spec_hash[:16]}…, data (feature table) SHA-256
{inputs.content_hash[:16]}….</dd>
<dt>Cohort</dt><dd>{len(data)} lines of {len(set(data.patients))} patients,
{int(data.event.sum())} events; evaluated on {m['rows']} rows ({m['events']} events).
Lines with zero days of follow-up are left out.</dd>
<dt>Outcome</dt><dd>{html.escape(target)} in days from the line start, the engine's
definition (README, Clinical rules).</dd>
<dt>Predictors and missing data</dt><dd>{len(data.columns)} feature columns; every feature
that can be missing has a missing-indicator column, and missing values are imputed with the
training folds' median (categories: their own level). Share missing: see the table.</dd>
<dt>Model building</dt><dd>{html.escape(how)}; imputation, encoding and scaling fitted inside
each training fold; Coxnet's penalty chosen on an inner patient hold-out of the training
rows. Null model: Kaplan-Meier stratified by phenotype group.</dd>
<dt>Performance</dt><dd>Below, overall and by group, with patient-bootstrap 95 % intervals
({m['bootstrap']['replicates']} replicates). Best Harrell C: {html.escape(best)}.</dd>
<dt>Limits</dt><dd>Observational data; treatment was not randomised, so hazard ratios of
line classes are associations, not treatment effects. Lines of the same patient are
correlated (handled by grouping folds and the bootstrap by patient). Calibration is checked
at 365 days only. Groups with few events give wide intervals. Performance may not transport
to other centres or periods (see the temporal split option).</dd>
</dl>"""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Prediction of {html.escape(target)}</title><style>{_STYLE}</style></head><body>
<h1>Prediction of {html.escape(target)}: baseline models</h1>
<p class="note">{html.escape(how)}. Libraries: {html.escape(", ".join(
        f"{k} {v}" for k, v in inputs.versions.items()))}.</p>
<h2>Model card</h2>{card}
<h2>Performance</h2>
<p class="note">C: concordance (Harrell; Uno IPCW to {m['ibs_window_days'][1]:.0f} days);
AUC: cumulative/dynamic at 182 and 365 days; IBS: integrated Brier score over
{m['ibs_window_days'][0]:.0f}–{m['ibs_window_days'][1]:.0f} days (lower is better); IPA:
1 − IBS / IBS of the stratified KM; calibration at 365 days: slope (1 ideal) and in the large
(observed − mean predicted risk, 0 ideal).</p>
{_table(header, overall)}
<h3>By phenotype group</h3>{_table(header, by_group)}
<h2>Calibration</h2><img alt="calibration at 365 days" src="data:image/png;base64,{
        calibration_figure(inputs)}">
<h2>Risk groups</h2><img alt="KM by tertile of predicted risk" src="data:image/png;base64,{
        tertile_figure(inputs, best)}">
<h2>Cox hazard ratios</h2>
<p class="note">Cox model fitted on every row; hazard ratio per unit of each column (flags
and one-hot levels: present vs absent), Wald 95 % interval; light ridge penalty.</p>
{_table(["feature", "hazard ratio", "95 % interval"], hr_rows)}
<h2>Missing data</h2>{_table(["feature", "rows missing"], missing or [["none", "0%"]])}
</body></html>
"""
