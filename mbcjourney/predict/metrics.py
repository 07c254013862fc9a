"""The metrics of ``journey predict evaluate``, each with a patient-bootstrap 95 % interval.

* ``c_harrell`` -- Harrell's concordance of the risk score;
* ``c_uno`` -- Uno's IPCW concordance, truncated at the end of the IBS window;
* ``auc`` -- cumulative/dynamic time-dependent AUC at 182 and 365 days;
* ``ibs`` -- integrated Brier score over the IBS window (lower is better);
* ``ipa`` -- index of prediction accuracy, 1 - IBS(model) / IBS(stratified KM)
  (Kattan & Gerds 2018): 0 = no better than the null model;
* ``calibration_slope`` at 365 days -- the coefficient of a Cox model of the outcome
  (follow-up truncated at 365 days) on log(-log S(365)) predicted: 1 is ideal, < 1
  means predictions too extreme (over-fitting);
* ``calibration_in_the_large`` at 365 days -- observed risk by then (1 - Kaplan-Meier)
  minus the mean predicted risk: 0 is ideal, > 0 means risk under-predicted.

Intervals: rows are resampled **by patient** (every line of a drawn patient comes
along), the metric recomputed, and the 2.5th and 97.5th percentiles reported.  The
censoring distribution of the IPCW metrics is the whole cohort's.
"""

from __future__ import annotations

import warnings
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
from sksurv.nonparametric import CensoringDistributionEstimator

from mbcjourney.predict.design import survival_target
from mbcjourney.predict.models import km_curve

HORIZONS = (182, 365)
CALIBRATION_DAYS = 365
IBS_START = 30
IBS_MAX_END = 730
#: Days at which survival is predicted: weekly to three years, plus the horizons.
GRID = np.array(sorted(set(range(7, 1096, 7)) | set(HORIZONS)), dtype=float)
METRICS = ("c_harrell", "c_uno", "auc_182", "auc_365", "ibs", "ipa", "calibration_slope",
           "calibration_in_the_large")


_TIED_RISK = 1e-8  # scikit-survival's tied_tol


def concordance(event: NDArray[np.bool_], time: NDArray[np.float64], risk: NDArray[np.float64],
                weights: NDArray[np.float64] | None = None) -> float:
    """Weighted concordance, the same pairs and ties as scikit-survival's
    ``_estimate_concordance_index`` (Harrell: unit weights; Uno: squared IPCW).

    An event at time t is compared with every row observed longer, and with rows
    censored at t; a tie in risk counts one half.  Rows are taken from the longest
    follow-up down, keeping the risks seen so far sorted, so it costs n log n
    comparisons instead of the library's n^2 (the bootstrap recomputes it hundreds of
    times).
    """
    w = np.ones(len(time)) if weights is None else weights
    order = np.argsort(time, kind="stable")
    t, d, r, w = time[order], event[order], risk[order].tolist(), w[order]
    later: list[float] = []
    numerator = denominator = 0.0
    end = len(t)
    while end > 0:
        start = int(np.searchsorted(t, t[end - 1], side="left"))
        censored = sorted(r[k] for k in range(start, end) if not d[k])
        for k in range(start, end):
            if not d[k] or w[k] == 0:
                continue
            low, high = r[k] - _TIED_RISK, r[k] + _TIED_RISK
            less = bisect_left(later, low) + bisect_left(censored, low)
            ties = (bisect_right(later, high) - bisect_left(later, low)
                    + bisect_right(censored, high) - bisect_left(censored, low))
            numerator += w[k] * (less + 0.5 * ties)
            denominator += w[k] * (len(later) + len(censored))
        for k in range(start, end):
            insort(later, r[k])
        end = start
    return float(numerator / denominator) if denominator > 0 else float("nan")


def uno_weights(reference: NDArray[Any], time: NDArray[np.float64], event: NDArray[np.bool_],
                tau: float) -> NDArray[np.float64]:
    """Squared inverse probability of censoring weights of the events before ``tau``
    (censoring estimated on ``reference``), zero elsewhere: Uno's C."""
    weights = np.zeros(len(time))
    before = time < tau
    if before.any():
        cens = CensoringDistributionEstimator().fit(reference)
        weights[before] = np.square(cens.predict_ipcw(survival_target(event[before],
                                                                      time[before])))
    return weights


def ibs_window(time: NDArray[np.float64]) -> tuple[float, float]:
    """[30 days, min(730 days, the 80th percentile of follow-up)]: where most rows are
    still observed, the same for every model and subgroup."""
    return float(IBS_START), float(min(IBS_MAX_END, np.percentile(time, 80)))


def cox_information(x: NDArray[np.float64], time: NDArray[np.float64],
                    event: NDArray[np.bool_], beta: NDArray[np.float64]
                    ) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Breslow partial log-likelihood, its gradient and information matrix at ``beta``."""
    order = np.argsort(time, kind="stable")
    t, d, xs = time[order], event[order].astype(float), x[order]
    eta = xs @ beta
    w = np.exp(eta - eta.max())
    first = np.searchsorted(t, t, side="left")  # risk set of row i: every row from first[i]
    s0 = np.cumsum(w[::-1])[::-1][first]
    s1 = np.cumsum((w[:, None] * xs)[::-1], axis=0)[::-1][first]
    m = s1 / s0[:, None]
    loglik = float(np.sum(d * (eta - eta.max() - np.log(s0))))
    gradient = np.sum(d[:, None] * (xs - m), axis=0)
    last = np.searchsorted(t, t, side="right") - 1  # events at or before row j's time
    c = np.cumsum(d / s0)[last]
    information = (xs * (w * c)[:, None]).T @ xs - (m * d[:, None]).T @ m
    return loglik, gradient, information


def cox_fit(x: NDArray[np.float64], time: NDArray[np.float64], event: NDArray[np.bool_],
            iterations: int = 50) -> NDArray[np.float64]:
    """Newton-Raphson Cox fit (Breslow ties) with step halving; for small designs."""
    beta = np.zeros(x.shape[1])
    loglik, gradient, information = cox_information(x, time, event, beta)
    for _ in range(iterations):
        step = np.linalg.solve(information + 1e-9 * np.eye(len(beta)), gradient)
        for _ in range(30):
            trial = beta + step
            new, g, h = cox_information(x, time, event, trial)
            if new >= loglik - 1e-12:
                break
            step = step / 2
        converged = abs(new - loglik) < 1e-10
        beta, loglik, gradient, information = trial, new, g, h
        if converged:
            break
    return beta


def calibration(survival_365: NDArray[np.float64], time: NDArray[np.float64],
                event: NDArray[np.bool_]) -> tuple[float, float]:
    """(slope, in-the-large) at 365 days, as defined in the module docstring."""
    s = np.clip(survival_365, 1e-6, 1 - 1e-6)
    observed = 1.0 - km_curve(time, event, np.array([float(CALIBRATION_DAYS)]))[0]
    in_the_large = float(observed - np.mean(1.0 - s))
    if np.ptp(s) < 1e-9:
        return float("nan"), in_the_large
    lp = np.log(-np.log(s))
    truncated = np.minimum(time, CALIBRATION_DAYS)
    happened = event & (time <= CALIBRATION_DAYS)
    if not happened.any():
        return float("nan"), in_the_large
    slope = cox_fit(lp[:, None], truncated, happened)[0]
    return float(slope), in_the_large


def point_metrics(reference: NDArray[Any], time: NDArray[np.float64], event: NDArray[np.bool_],
                  risk: NDArray[np.float64], survival: NDArray[np.float64],
                  km_survival: NDArray[np.float64], window: tuple[float, float]
                  ) -> dict[str, float]:
    """Every metric on one set of rows (NaN where it cannot be computed there)."""
    out = dict.fromkeys(METRICS, float("nan"))
    if len(time) < 2 or not event.any():
        return out
    y = survival_target(event, time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["c_harrell"] = concordance(event, time, risk)
        with suppress(ValueError):  # a time beyond the reference's follow-up
            out["c_uno"] = concordance(event, time, risk,
                                       uno_weights(reference, time, event, window[1]))
        for horizon in HORIZONS:
            try:
                auc, _ = cumulative_dynamic_auc(reference, y, risk, [float(horizon)])
                out[f"auc_{horizon}"] = float(auc[0])
            except (ValueError, ZeroDivisionError):
                pass
        mask = (max(window[0], time.min()) <= GRID) & (window[1] >= GRID) & (time.max() > GRID)
        if mask.sum() >= 2:
            try:
                model = integrated_brier_score(reference, y, survival[:, mask], GRID[mask])
                null = integrated_brier_score(reference, y, km_survival[:, mask], GRID[mask])
                out["ibs"] = float(model)
                out["ipa"] = float(1.0 - model / null) if null > 0 else float("nan")
            except (ValueError, ZeroDivisionError):
                pass
    at = int(np.searchsorted(GRID, CALIBRATION_DAYS))
    out["calibration_slope"], out["calibration_in_the_large"] = calibration(
        survival[:, at], time, event)
    return out


def interval_metrics(reference: NDArray[Any], rows: NDArray[np.intp], patients: NDArray[Any],
                     compute: Callable[[NDArray[np.intp]], dict[str, float]],
                     bootstrap: int, seed: int) -> dict[str, dict[str, float | None]]:
    """``compute`` on ``rows`` and on ``bootstrap`` patient resamples of them."""
    value = compute(rows)
    by_patient: dict[Any, list[int]] = {}
    for i in rows:
        by_patient.setdefault(patients[i], []).append(int(i))
    groups = [np.array(v, dtype=np.intp) for v in by_patient.values()]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(bootstrap):
        chosen = rng.integers(0, len(groups), len(groups))
        sample = np.concatenate([groups[k] for k in chosen])
        for name, v in compute(sample).items():
            if not np.isnan(v):
                draws[name].append(v)
    out: dict[str, dict[str, float | None]] = {}
    for name in METRICS:
        low = high = None
        if len(draws[name]) >= max(2, bootstrap // 2):
            low, high = (float(q) for q in np.percentile(draws[name], [2.5, 97.5]))
        v = value[name]
        out[name] = {"value": None if np.isnan(v) else round(v, 4),
                     "low": None if low is None else round(low, 4),
                     "high": None if high is None else round(high, 4)}
    return out


def shaped(flat: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """METRICS.json's shape: ``auc`` holds the two horizons."""
    out: dict[str, Any] = {k: v for k, v in flat.items() if not k.startswith("auc_")}
    out["auc"] = {str(h): flat[f"auc_{h}"] for h in HORIZONS}
    return out
