"""``journey predict evaluate``: cross-validated (or temporal) predictions and their metrics.

Cross-validation is grouped by patient (all lines of a patient fall in the same
fold), shuffled with ``--seed``; each model, with its design (imputation,
encoding, scaling), is fitted on the training folds only and predicts the held-out
fold.  Metrics are computed on the pooled out-of-fold predictions.  With
``--temporal-split DATE`` the models are trained once on the lines started before
DATE and tested on those started on or after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import GroupKFold

from mbcjourney.errors import ConfigurationError
from mbcjourney.predict.design import Cohort, Design
from mbcjourney.predict.metrics import (
    GRID,
    HORIZONS,
    cox_information,
    ibs_window,
    interval_metrics,
    point_metrics,
    shaped,
)
from mbcjourney.predict.models import fit, risk_score, survival_at

_HORIZON_INDEX = int(np.searchsorted(GRID, 365))


@dataclass(frozen=True)
class EvaluateOptions:
    models: tuple[str, ...] = ("km", "cox", "coxnet", "gbsa")
    folds: int = 5
    seed: int = 0
    temporal_split: date | None = None
    bootstrap: int = 200


@dataclass
class Predictions:
    """Held-out predictions of every model for the rows in ``rows`` of the cohort."""

    rows: NDArray[np.intp]
    survival: dict[str, NDArray[np.float64]] = field(default_factory=dict)  # rows x GRID
    risk: dict[str, NDArray[np.float64]] = field(default_factory=dict)


def held_out(data: Cohort, options: EvaluateOptions) -> Predictions:
    n = len(data)
    if options.temporal_split is not None:
        before = np.array([s < options.temporal_split for s in data.starts])
        train, test = np.flatnonzero(before), np.flatnonzero(~before)
        if len(train) == 0 or len(test) == 0 or not data.event[train].any():
            raise ConfigurationError(
                f"--temporal-split {options.temporal_split}: needs lines (with events) "
                "started before it and lines started on or after it")
        splits = [(train, test)]
        rows = test
    else:
        patients = len(set(data.patients))
        if not 2 <= options.folds <= patients:
            raise ConfigurationError(f"--folds must be from 2 to the number of patients "
                                     f"({patients})")
        splitter = GroupKFold(n_splits=options.folds, shuffle=True, random_state=options.seed)
        splits = [(tr, te) for tr, te in splitter.split(np.zeros(n), groups=data.patients)]
        rows = np.arange(n)
    out = Predictions(rows)
    position = np.full(n, -1)
    position[rows] = np.arange(len(rows))
    for name in options.models:
        survival = np.empty((len(rows), len(GRID)))
        risk = np.empty(len(rows))
        for train, test in splits:
            model = fit(name, data.take(train), options.seed)
            part = data.take(test)
            s = survival_at(model, part, GRID)
            survival[position[test]] = s
            risk[position[test]] = risk_score(model, part, s, _HORIZON_INDEX)
        out.survival[name], out.risk[name] = survival, risk
    return out


def evaluate(data: Cohort, options: EvaluateOptions) -> tuple[dict[str, Any], Predictions]:
    """METRICS.json's content, and the predictions it was computed from."""
    predictions = held_out(data, options)
    rows = predictions.rows
    reference = data.y  # the censoring distribution of the IPCW metrics
    window = ibs_window(data.time[rows])
    km = predictions.survival["km"]

    def subset_metrics(name: str, among: NDArray[np.intp]) -> dict[str, Any]:
        def compute(sample: NDArray[np.intp]) -> dict[str, float]:
            local = np.searchsorted(rows, sample) if options.temporal_split else sample
            return point_metrics(reference, data.time[sample], data.event[sample],
                                 predictions.risk[name][local],
                                 predictions.survival[name][local], km[local], window)
        return shaped(interval_metrics(reference, among, data.patients, compute,
                                       options.bootstrap, options.seed))

    models: dict[str, Any] = {}
    groups = sorted({str(g) for g in data.strata[rows]})
    for name in options.models:
        entry = subset_metrics(name, rows)
        entry["by_group"] = {}
        for g in groups:
            among = rows[np.array([str(s) == g for s in data.strata[rows]])]
            entry["by_group"][g] = {"rows": len(among), "events": int(data.event[among].sum()),
                                    **subset_metrics(name, among)}
        models[name] = entry
    metrics: dict[str, Any] = {
        "target": data.target,
        "rows": len(rows),
        "events": int(data.event[rows].sum()),
        "patients": len(set(data.patients[rows])),
        "validation": ({"kind": "temporal", "split": options.temporal_split.isoformat(),
                        "train_rows": int(len(data) - len(rows))}
                       if options.temporal_split else
                       {"kind": "cross-validation", "folds": options.folds,
                        "grouped_by": "patient", "seed": options.seed}),
        "horizons_days": list(HORIZONS),
        "ibs_window_days": list(window),
        "bootstrap": {"replicates": options.bootstrap, "resampled": "patients",
                      "interval": "percentile 95 %"},
        "models": models,
    }
    return metrics, predictions


def hazard_ratios(data: Cohort, seed: int = 0) -> list[dict[str, Any]]:
    """The Cox model fitted on every row: hazard ratio per unit of each design column
    (a flag or one-hot level: present vs absent), with Wald 95 % intervals."""
    model = fit("cox", data, seed)
    design: Design = model.named_steps["design"]
    beta = np.asarray(model.named_steps["model"].coef_, dtype=float)
    x = design.transform(data.x)
    _, _, information = cox_information(x, data.time, data.event, beta)
    try:
        se = np.sqrt(np.clip(np.diag(np.linalg.pinv(information)), 0, None))
    except np.linalg.LinAlgError:
        se = np.full(len(beta), np.nan)
    scales = design.scales()
    rows = []
    for name, b, s, scale in zip(design.names(), beta, se, scales, strict=True):
        per_unit, se_unit = b / scale, s / scale
        rows.append({"feature": name, "log_hr": round(float(per_unit), 5),
                     "se": round(float(se_unit), 5),
                     "hr": float(np.exp(per_unit)),
                     "low": float(np.exp(per_unit - 1.96 * se_unit)),
                     "high": float(np.exp(per_unit + 1.96 * se_unit))})
    return rows
